package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/images/disk/disktest"
	"github.com/bootyard/bootyard/node"
)

// installImageSize is the test image's size: 64 MiB, or BOOTYARD_INSTALL_E2E_IMAGE_MIB
// MiB to measure power-on to installed with a larger image (1024 for the 1 GiB figure).
// The disk is 192 MiB larger than the image.
func installImageSize(t *testing.T) int64 {
	v := os.Getenv("BOOTYARD_INSTALL_E2E_IMAGE_MIB")
	if v == "" {
		return 64 << 20
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 16 {
		t.Fatalf("BOOTYARD_INSTALL_E2E_IMAGE_MIB=%q: want a number of MiB, at least 16", v)
	}
	return int64(n) << 20
}

// installLab is `bootyard serve` in a test namespace (DHCP full mode on the bridge)
// with the agent's kernel and initramfs in its data directory.
type installLab struct {
	*labServer
	data string
}

func startInstallLab(t *testing.T, bin, data string) *installLab {
	t.Helper()
	return &installLab{labServer: startLabIn(t, bin, data, "--advertise-url", "http://10.77.0.1:8080"), data: data}
}

func (l *installLab) node(t *testing.T, name string) node.Node {
	t.Helper()
	var n node.Node
	if code := l.api(t, "GET", "/api/v1/nodes/"+name, "", &n); code != 200 {
		t.Fatalf("GET node %s: %d", name, code)
	}
	return n
}

// get fetches a path from Bootyard as a machine would (no admin token).
func (l *installLab) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := l.client.Get(l.url + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// waitPowerOff waits for the agent's reboot, which -no-reboot turns into QEMU's exit.
func (v *vm) waitPowerOff(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-v.exited:
	case <-time.After(limit):
		t.Fatalf("the VM did not reboot within %s of the node's change", limit)
	}
}

func (l *installLab) waitState(t *testing.T, name string, want node.State, limit time.Duration) {
	t.Helper()
	waitFor(t, limit, fmt.Sprintf("node %s to be %s", name, want), func() bool {
		n := l.node(t, name)
		if n.State == node.StateFailed {
			t.Fatalf("node %s failed: %s", name, n.StateReason)
		}
		return n.State == want
	})
}

// buildAgentFiles puts the agent's kernel and initramfs in <data>/agent, as
// `bootyard image build-agent` does.
func buildAgentFiles(t *testing.T, data string) {
	t.Helper()
	k, agent := buildAgentFilesWith(t, t.TempDir())
	if _, err := images.WriteAgentFiles(context.Background(), filepath.Join(data, "agent"), images.InitramfsSpec{Agent: agent, Kernel: k}); err != nil {
		t.Fatal(err)
	}
}

// buildAgentFilesWith builds the static agent into dir and returns it with the agent
// kernel from the repository's cache (fetched there on first use).
func buildAgentFilesWith(t *testing.T, dir string) (images.Kernel, string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	agent := filepath.Join(dir, "bootyard-agent")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", agent, "./cmd/bootyard-agent")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build agent: %v\n%s", err, out)
	}
	k, err := images.FetchKernel(context.Background(), filepath.Join(root, ".cache", "kernel"), slog.Default())
	if err != nil {
		t.Fatalf("agent kernel: %v", err)
	}
	return k, agent
}

// TestInstall_VMInstallsWithJoinDataAndDeletionWipesItAway drives the whole issue on
// real firmware: import → PXE → agent → image and CIDATA on the disk → installed; delete
// → PXE → wipe and reinstall without join data → deleted.
func TestInstall_VMInstallsWithJoinDataAndDeletionWipesItAway(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU under TCG four times: skipped with -short")
	}
	requireFirmware(t)
	bin := buildBinary(t)
	agentData := t.TempDir()
	buildAgentFiles(t, agentData)

	imgPath := filepath.Join(t.TempDir(), "test.raw")
	imageSize := installImageSize(t)
	diskSize := imageSize + 192<<20
	if err := disktest.GPTImage(imgPath, imageSize); err != nil {
		t.Fatal(err)
	}
	image, err := os.ReadFile(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	partEnd := imageSize - 33*512
	wantPart := sha256.Sum256(image[1<<20 : partEnd])

	tests := []struct {
		name string
		mac  string
		uefi bool
	}{
		{"bios", "52:54:00:77:01:01", false},
		{"uefi", "52:54:00:77:01:02", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			if err := os.CopyFS(filepath.Join(data, "agent"), os.DirFS(filepath.Join(agentData, "agent"))); err != nil {
				t.Fatal(err)
			}
			lab := startInstallLab(t, bin, data)
			joinToken := "K10" + randomHex(16) + "::server:" + randomHex(8)
			// A hard link: the server reads image files only from its images directory.
			if err := os.Link(imgPath, lab.imagePath("test.raw")); err != nil {
				t.Fatal(err)
			}
			if code := lab.api(t, "POST", "/api/v1/images", `{"name":"test","file":"`+lab.imagePath("test.raw")+`","default":true}`, nil); code/100 != 2 {
				t.Fatalf("add image: %d", code)
			}
			if code := lab.api(t, "PATCH", "/api/v1/cluster", `{"serverURL":"https://10.77.0.10:6443","token":"`+joinToken+`"}`, nil); code/100 != 2 {
				t.Fatalf("cluster settings: %d", code)
			}
			name := "w-" + tc.name
			if code := lab.api(t, "POST", "/api/v1/nodes", `{"macs":["`+tc.mac+`"],"role":"worker","name":"`+name+`"}`, nil); code != 201 {
				t.Fatalf("import: %d", code)
			}
			diskPath := filepath.Join(t.TempDir(), "disk.img")
			if err := disktest.SparseDisk(diskPath, diskSize); err != nil {
				t.Fatal(err)
			}

			vm := startVM(t, lab.ns, tc.mac, vmOptions{uefi: tc.uefi, disk: diskPath, noReboot: true, limit: 15 * time.Minute})
			lab.waitState(t, name, node.StateInstalled, 10*time.Minute)
			t.Logf("%s: power-on to installed in %s (TCG, %d MiB image)", tc.name, time.Since(vm.start).Round(time.Second), imageSize>>20)
			vm.waitPowerOff(t, 5*time.Minute)
			d := readFile(t, diskPath)
			if got := sha256.Sum256(d[1<<20 : partEnd]); got != wantPart {
				t.Error("the image's partition on the disk does not have the image's sha256")
			}
			if ud := cidataUserData(t, diskPath, diskSize); !bytes.Contains(ud, []byte(joinToken)) {
				t.Errorf("CIDATA user-data lacks the join token:\n%s", ud)
			}
			lab.checkAgentEvents(t, name)

			if code := lab.api(t, "DELETE", "/api/v1/nodes/"+name, `{"confirm":"`+name+`"}`, nil); code/100 != 2 {
				t.Fatalf("delete: %d", code)
			}
			if st := lab.node(t, name).State; st != node.StateWiping {
				t.Fatalf("deleted installed node is %s, want wiping", st)
			}
			vm = startVM(t, lab.ns, tc.mac, vmOptions{uefi: tc.uefi, disk: diskPath, noReboot: true, limit: 15 * time.Minute})
			lab.waitState(t, name, node.StateDeleted, 10*time.Minute)
			t.Logf("%s: power-on to deleted (wiped and reinstalled) in %s", tc.name, time.Since(vm.start).Round(time.Second))
			vm.waitPowerOff(t, 5*time.Minute)
			d = readFile(t, diskPath)
			if bytes.Contains(d, []byte(joinToken)) {
				t.Error("the disk holds the join token after the wipe")
			}
			if got := sha256.Sum256(d[1<<20 : partEnd]); got != wantPart {
				t.Error("the reinstalled image's partition does not have the image's sha256")
			}
			if ud := cidataUserData(t, diskPath, diskSize); len(ud) == 0 || bytes.Contains(ud, []byte(joinToken)) {
				t.Errorf("CIDATA user-data after the wipe is empty or holds the token:\n%s", ud)
			}
			code, body := lab.get(t, "/nocloud/"+tc.mac+"/user-data")
			if bytes.Contains(body, []byte(joinToken)) {
				t.Errorf("NoCloud user-data of the deleted node (%d) holds the join token", code)
			}
		})
	}
}

// checkAgentEvents checks that the agent's progress and log lines became node events.
func (l *installLab) checkAgentEvents(t *testing.T, name string) {
	t.Helper()
	var events []node.Event
	l.api(t, "GET", "/api/v1/nodes/"+name+"/events", "", &events)
	progress, logs := 0, 0
	for _, e := range events {
		switch e.Type {
		case node.EventProgress:
			progress++
		case node.EventLog:
			logs++
			if strings.Contains(e.Reason, "mb_per_s") {
				t.Logf("agent: %s", e.Reason)
			}
		}
	}
	if progress == 0 || logs == 0 {
		t.Errorf("node %s has %d progress and %d log events from the agent, want both", name, progress, logs)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cidataUserData reads user-data from the disk's CIDATA partition, checking on the way
// that the GPT is valid with its backup header at the disk's end.
func cidataUserData(t *testing.T, path string, diskSize int64) []byte {
	t.Helper()
	ud, err := disktest.ReadCIDATA(path, diskSize, "user-data")
	if err != nil {
		t.Fatal(err)
	}
	return ud
}
