package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/store"
)

func TestImageCLI_AddListRemoveAgainstARealServer(t *testing.T) {
	bin := buildBinary(t)
	data := t.TempDir()
	addr := freePort(t)
	startServer(t, bin, data, addr)
	work := t.TempDir()
	content := []byte(strings.Repeat("a disk image block\n", 4096))
	if err := os.WriteFile(filepath.Join(work, "debian.raw"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	wantSum := hex.EncodeToString(sum[:])

	cli := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--server", "http://" + addr, "--data-dir", data}, args...)...)
		cmd.Dir = work // --file takes a path relative to here
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	steps := []struct {
		args    []string
		wantErr bool
		want    string
	}{
		// debian.raw is outside the server's images directory: the CLI uploads a copy.
		{[]string{"image", "add", "debian", "--file", "debian.raw", "--sha256", strings.Repeat("0", 64)}, true, "sha256 mismatch"},
		{[]string{"image", "add", "remote", "--url", "http://mirror.example/x.raw.zst"}, true, "does not download"},
		{[]string{"image", "add", "debian", "--file", "debian.raw"}, false, "uploading a copy"},
		{[]string{"image", "add", "inplace", "--file", filepath.Join(data, "images", "debian.raw")}, false,
			"added inplace: raw, 76.0 KiB, sha256 " + wantSum + ", file " + filepath.Join(data, "images", "debian.raw")},
		{[]string{"image", "add", "copy", "--file", "debian.raw", "--upload", "--format", "raw"}, false, "uploading debian.raw [=="},
		{[]string{"image", "rm", "inplace"}, false, "removed inplace"},
		{[]string{"image", "rm", "copy"}, false, "removed copy"},
		{[]string{"image", "add", "remote", "--url", "http://mirror.example/x.raw.zst", "--sha256", wantSum, "--default"}, false, "the cluster default"},
		{[]string{"node", "import", "52:54:00:12:34:56", "--role", "worker", "--name", "w-1", "--image", "fedora"}, true, `image "fedora"`},
		{[]string{"node", "import", "52:54:00:12:34:56", "--role", "worker", "--name", "w-1", "--image", "debian"}, false, "imported w-1"},
		{[]string{"image", "rm", "debian"}, true, "used by node(s) w-1"},
		{[]string{"image", "list"}, false, "remote*"},
		{[]string{"image", "rm", "remote"}, false, "removed remote"},
	}
	for _, st := range steps {
		out, err := cli(st.args...)
		if (err != nil) != st.wantErr || !strings.Contains(out, st.want) {
			t.Errorf("bootyard %s: err=%v, output %q; want error=%v containing %q", strings.Join(st.args, " "), err, out, st.wantErr, st.want)
		}
	}
	out, err := cli("image", "list", "-o", "json")
	var imgs []store.Image
	if err != nil || json.Unmarshal([]byte(out), &imgs) != nil || len(imgs) != 1 || imgs[0].File != filepath.Join(data, "images", "debian.raw") ||
		imgs[0].SHA256 != wantSum {
		t.Fatalf("image list -o json: %v %s; want debian uploaded into the images directory", err, out)
	}

	// The server streams what the catalog names, and the agent files from <data>/agent.
	get := func(path string) (int, []byte) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, body := get("/images/debian"); code != 200 || string(body) != string(content) {
		t.Errorf("GET /images/debian: %d, %d bytes; want the file", code, len(body))
	}
	if code, body := get("/agent/vmlinuz"); code != 404 || !strings.Contains(string(body), "make images") {
		t.Errorf("GET /agent/vmlinuz before the agent is built: %d %q; want 404 saying how to build it", code, body)
	}
	if err := os.MkdirAll(filepath.Join(data, "agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "agent", "vmlinuz"), []byte("KERNEL"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/agent/vmlinuz"); code != 200 || string(body) != "KERNEL" {
		t.Errorf("GET /agent/vmlinuz: %d %q", code, body)
	}
}
