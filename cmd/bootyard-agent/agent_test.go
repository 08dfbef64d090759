package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/images/agenttest"
	"github.com/bootyard/bootyard/images/disk"
	"github.com/bootyard/bootyard/images/disk/disktest"
)

const mib = 1 << 20

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name    string
		cmdline string
		wantErr bool
		wantURL string
		wantMAC string
	}{
		{"bootyard's own", "initrd=initramfs.gz console=ttyS0,115200 console=tty0 quiet bootyard.url=http://10.0.0.1:8080 bootyard.token=ab12 bootyard.mac=52:54:00:12:34:56\n",
			false, "http://10.0.0.1:8080", "52:54:00:12:34:56"},
		{"no token", "bootyard.url=http://10.0.0.1:8080 bootyard.mac=52:54:00:12:34:56", true, "", ""},
		{"no url", "bootyard.token=x bootyard.mac=52:54:00:12:34:56", true, "", ""},
		{"url without scheme", "bootyard.url=10.0.0.1:8080 bootyard.token=x bootyard.mac=52:54:00:12:34:56", true, "", ""},
		{"bad mac", "bootyard.url=http://h bootyard.token=x bootyard.mac=zz", true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseCmdline(tt.cmdline)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (p.URL.String() != tt.wantURL || p.MAC.String() != tt.wantMAC || p.Token != "ab12") {
				t.Errorf("params = %v %v %q", p.URL, p.MAC, string(p.Token))
			}
		})
	}
}

func TestToken_NeverPrinted(t *testing.T) {
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", slog.Any("token", Token("s3cret")))
	if strings.Contains(buf.String(), "s3cret") {
		t.Errorf("log line shows the token: %s", buf.String())
	}
}

// rig is a fake Bootyard, a sparse disk (or two) and an installer wired to them.
type rig struct {
	api    *agenttest.Server
	in     *installer
	disks  []string
	image  []byte
	output *bytes.Buffer
}

func newRig(t *testing.T, action string, ndisks int, cidata map[string][]byte) *rig {
	t.Helper()
	dir := t.TempDir()
	imgPath := filepath.Join(dir, "image.raw")
	if err := disktest.GPTImage(imgPath, 16*mib); err != nil {
		t.Fatal(err)
	}
	image, err := os.ReadFile(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(image)
	// A fake /sys/block and /dev: vda, vdb... as sparse files.
	sys, dev := filepath.Join(dir, "sys"), filepath.Join(dir, "dev")
	os.MkdirAll(sys, 0o755)
	var disks []string
	for i := range ndisks {
		name := "vd" + string(rune('a'+i))
		os.MkdirAll(filepath.Join(sys, name), 0o755)
		os.WriteFile(filepath.Join(sys, name, "removable"), []byte("0\n"), 0o644)
		os.WriteFile(filepath.Join(sys, name, "size"), []byte("131072\n"), 0o644)
		os.MkdirAll(dev, 0o755)
		if err := disktest.SparseDisk(filepath.Join(dev, name), 64*mib); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, filepath.Join(dev, name))
	}
	api := agenttest.New("tok", agenttest.Task{
		Node: "cp-1", Action: agentapi.Action(action),
		Image:  &agenttest.Image{Name: "test", URL: "/images/test", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(image)), Format: "raw"},
		CIData: cidata,
	}, image)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	client := newAPIClient(base, "tok")
	ship := &shipper{}
	ship.connect(client)
	out := &bytes.Buffer{}
	log := slog.New(newTeeHandler(out, ship))
	return &rig{api: api, image: image, disks: disks, output: out,
		in: &installer{api: client, ship: ship, log: log, sysBlock: sys, devDir: dev}}
}

func (r *rig) run(t *testing.T) error {
	t.Helper()
	task, err := r.in.api.task(context.Background())
	if err != nil {
		t.Fatalf("task: %v", err)
	}
	return r.in.perform(context.Background(), task)
}

func readCIDATAUserData(t *testing.T, path string) []byte {
	t.Helper()
	d, err := disk.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	parts := disk.ReadPartitions(d)
	if len(parts) != 2 {
		t.Fatalf("%s has partitions %v, want the image's and CIDATA", path, parts)
	}
	all, err := io.ReadAll(io.NewSectionReader(d.File(), parts[1].Offset, parts[1].Length))
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func TestInstall_WritesTheImageAddsCIDATAAndReportsDone(t *testing.T) {
	cidata := map[string][]byte{"meta-data": []byte("instance-id: cp-1\n"), "user-data": []byte("#cloud-config\ntoken: K10join\n")}
	r := newRig(t, "install", 1, cidata)
	if err := r.run(t); err != nil {
		t.Fatalf("perform: %v", err)
	}
	rep := r.api.Report()
	if len(rep.Done) != 1 || rep.Done[0] != "install" || len(rep.Failed) != 0 {
		t.Fatalf("report: done %v failed %v", rep.Done, rep.Failed)
	}
	phases := map[string]agenttest.Progress{}
	for _, p := range rep.Progress {
		phases[p.Phase] = p
	}
	if w := phases["write"]; w.Percent != 100 || w.Bytes != int64(len(r.image)) {
		t.Errorf("last write progress = %+v, want 100%% of %d bytes", w, len(r.image))
	}
	if _, ok := phases["cidata"]; !ok {
		t.Errorf("no cidata progress in %+v", rep.Progress)
	}
	if len(rep.Logs) == 0 || !strings.Contains(strings.Join(rep.Logs, "\n"), "image written and verified") {
		t.Errorf("log lines sent: %q", rep.Logs)
	}
	got, err := os.ReadFile(r.disks[0])
	if err != nil {
		t.Fatal(err)
	}
	// The image's partition (from 1 MiB to its backup GPT) is on the disk unchanged.
	end := len(r.image) - 33*512
	if !bytes.Equal(got[mib:end], r.image[mib:end]) {
		t.Error("the image's partition differs on the disk")
	}
	if !bytes.Contains(readCIDATAUserData(t, r.disks[0]), []byte("K10join")) {
		t.Error("CIDATA does not hold the user-data")
	}
}

func TestInstall_ChecksumMismatchFailsWithoutReportingDone(t *testing.T) {
	r := newRig(t, "install", 1, map[string][]byte{"meta-data": []byte("x")})
	r.api.ImageBytes = append([]byte(nil), r.image...)
	r.api.ImageBytes[2*mib] ^= 0xff
	err := r.run(t)
	if err == nil || !strings.Contains(reason(err), "checksum mismatch") {
		t.Fatalf("err = %v, want a checksum mismatch", err)
	}
	if rep := r.api.Report(); len(rep.Done) != 0 {
		t.Errorf("done reported after a checksum mismatch: %v", rep.Done)
	}
}

func TestInstall_RefusesUnexpectedCIDATAFiles(t *testing.T) {
	r := newRig(t, "install", 1, map[string][]byte{"meta-data": []byte("x"), "../etc/shadow": []byte("x")})
	if err := r.run(t); err == nil {
		t.Fatal("a task with an unexpected cidata file was carried out")
	}
}

func TestInstall_NoDiskFails(t *testing.T) {
	r := newRig(t, "install", 0, map[string][]byte{"meta-data": []byte("x")})
	err := r.run(t)
	if err == nil || !strings.Contains(err.Error(), "disk missing") {
		t.Fatalf("err = %v, want disk missing", err)
	}
}

func TestWipe_WipesEveryDiskAndReinstallsWithoutJoinData(t *testing.T) {
	r := newRig(t, "wipe", 2, map[string][]byte{"meta-data": []byte("instance-id: cp-1\n"), "user-data": []byte("#cloud-config\nhostname: cp-1\n")})
	// Both disks hold an earlier install with join data.
	for _, d := range r.disks {
		dev, err := disk.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(r.image)
		if _, err := disk.WriteImage(context.Background(), dev, dev.Size(), bytes.NewReader(r.image),
			disk.Image{Format: disk.FormatRaw, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(r.image))}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := disk.AddCIDATA(dev, int64(len(r.image)), map[string][]byte{"meta-data": []byte("x"), "user-data": []byte("token: K10join")}); err != nil {
			t.Fatal(err)
		}
		dev.Close()
	}
	if err := r.run(t); err != nil {
		t.Fatalf("perform: %v", err)
	}
	rep := r.api.Report()
	if len(rep.Done) != 1 || rep.Done[0] != "wipe" {
		t.Fatalf("done = %v, failed = %v", rep.Done, rep.Failed)
	}
	// done carries the read-back of both disks, taken before the reinstall.
	if len(rep.Wiped) != len(r.disks) {
		t.Fatalf("done carried %d read-backs %+v, want one per disk (%d)", len(rep.Wiped), rep.Wiped, len(r.disks))
	}
	for i, c := range rep.Wiped {
		if c.Disk != r.disks[i] || !c.Blank || c.Size != 64*mib {
			t.Errorf("read-back %d = %+v, want %s blank, 64 MiB", i, c, r.disks[i])
		}
	}
	for i, d := range r.disks {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("K10join")) {
			t.Errorf("%s still holds the join token", d)
		}
		parts := 0
		if dev, err := disk.Open(d); err == nil {
			parts = len(disk.ReadPartitions(dev))
			dev.Close()
		}
		if want := map[bool]int{true: 2, false: 0}[i == 0]; parts != want {
			t.Errorf("%s has %d partitions after the wipe, want %d (reinstalled on the first disk only)", d, parts, want)
		}
	}
	if !bytes.Contains(readCIDATAUserData(t, r.disks[0]), []byte("hostname: cp-1")) {
		t.Error("the reinstall's CIDATA does not hold the new user-data")
	}
}
