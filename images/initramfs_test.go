package images_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/bootyard/bootyard/images"
)

// repoRoot is the module's root, where `make images` keeps .cache/kernel.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// kernel returns the agent kernel from the repository's cache, fetching it (apt-get
// download, dpkg -x) when `make images` has not yet.
func kernel(t testing.TB) images.Kernel {
	t.Helper()
	for _, tool := range []string{"apt-get", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: cannot fetch Debian's kernel package", tool)
		}
	}
	k, err := images.FetchKernel(context.Background(), filepath.Join(repoRoot(t), ".cache", "kernel"), slog.Default())
	if err != nil {
		t.Fatalf("FetchKernel: %v", err)
	}
	return k
}

var agentBuild struct {
	once sync.Once
	path string
	err  error
}

// agentBinary builds cmd/bootyard-agent statically, once per test binary.
func agentBinary(t testing.TB) string {
	t.Helper()
	agentBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "bootyard-agent-")
		if err != nil {
			agentBuild.err = err
			return
		}
		agentBuild.path = filepath.Join(dir, "bootyard-agent")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", agentBuild.path, "./cmd/bootyard-agent")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			agentBuild.err = fmt.Errorf("go build agent: %v: %s", err, out)
		}
	})
	if agentBuild.err != nil {
		t.Fatal(agentBuild.err)
	}
	return agentBuild.path
}

type cpioFile struct {
	name  string
	mode  uint32
	rdev  [2]uint32
	data  []byte
	index int
}

// readCPIO parses a newc archive: an independent reader of what the builder writes.
func readCPIO(t *testing.T, r io.Reader) map[string]cpioFile {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]cpioFile{}
	for off, i := 0, 0; ; i++ {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad cpio header at %d", off)
		}
		field := func(n int) uint32 {
			v, err := strconv.ParseUint(string(b[off+6+8*n:off+14+8*n]), 16, 32)
			if err != nil {
				t.Fatalf("cpio field %d at %d: %v", n, off, err)
			}
			return uint32(v)
		}
		mode, size, rmaj, rmin, namesize := field(1), field(6), field(9), field(10), field(11)
		name := string(b[off+110 : off+110+int(namesize)-1])
		off = (off + 110 + int(namesize) + 3) &^ 3
		data := b[off : off+int(size)]
		off = (off + int(size) + 3) &^ 3
		if name == "TRAILER!!!" {
			return files
		}
		files[name] = cpioFile{name: name, mode: mode, rdev: [2]uint32{rmaj, rmin}, data: data, index: i}
	}
}

func TestBuildInitramfs_AgentIsInitAndEveryModuleFollowsItsDependencies(t *testing.T) {
	k := kernel(t)
	agent := agentBinary(t)
	var buf bytes.Buffer
	rep, err := images.BuildInitramfs(context.Background(), &buf, images.InitramfsSpec{Agent: agent, Kernel: k})
	if err != nil {
		t.Fatalf("BuildInitramfs: %v", err)
	}
	if rep.Bytes != int64(buf.Len()) {
		t.Errorf("report says %d bytes, wrote %d", rep.Bytes, buf.Len())
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	files := readCPIO(t, zr)

	want, _ := os.ReadFile(agent)
	if f := files["init"]; !bytes.Equal(f.data, want) || f.mode != 0o100755 {
		t.Errorf("init: mode %o, %d bytes; want the agent (%d bytes) executable", f.mode, len(f.data), len(want))
	}
	if c := files["dev/console"]; c.mode != 0o020600 || c.rdev != [2]uint32{5, 1} {
		t.Errorf("dev/console: mode %o rdev %v, want a 5:1 character device", c.mode, c.rdev)
	}
	modRoot := "lib/modules/" + k.Version + "/"
	dep, ok := files[modRoot+"modules.dep"]
	if !ok {
		t.Fatal("no modules.dep")
	}
	lines := strings.Split(strings.TrimSpace(string(dep.data)), "\n")
	if len(lines) != len(rep.Modules) {
		t.Errorf("modules.dep has %d lines, the report %d modules", len(lines), len(rep.Modules))
	}
	seen := map[string]bool{}
	for _, line := range lines {
		mod, deps, _ := strings.Cut(line, ":")
		f, ok := files[modRoot+mod]
		if !ok || !bytes.HasPrefix(f.data, []byte("\x7fELF")) {
			t.Errorf("%s: listed in modules.dep but not an ELF file in the archive", mod)
			continue
		}
		for _, d := range strings.Fields(deps) {
			if df, ok := files[modRoot+d]; !ok || df.index > f.index {
				t.Errorf("%s depends on %s, which is missing or comes after it", mod, d)
			}
		}
		seen[strings.TrimSuffix(filepath.Base(mod), ".ko")] = true
	}
	for _, m := range []string{"virtio_net", "virtio_blk", "virtio_pci", "virtio_scsi", "e1000", "e1000e", "igb", "ixgbe", "ahci", "nvme", "virtio_ring", "libahci"} {
		if !seen[m] && !contains(rep.Builtin, m) {
			t.Errorf("module %s is neither in the initramfs nor built in", m)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestBuildInitramfs_RefusesADynamicallyLinkedAgent(t *testing.T) {
	k := kernel(t)
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to stand in for a dynamically linked agent")
	}
	_, err = images.BuildInitramfs(context.Background(), io.Discard, images.InitramfsSpec{Agent: sh, Kernel: k})
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Fatalf("err = %v, want a refusal of a dynamic binary", err)
	}
}

func TestBuildInitramfs_UnknownModuleIsAnError(t *testing.T) {
	k := kernel(t)
	_, err := images.BuildInitramfs(context.Background(), io.Discard, images.InitramfsSpec{Agent: agentBinary(t), Kernel: k, Modules: []string{"no_such_driver"}})
	if err == nil || !strings.Contains(err.Error(), "no_such_driver") {
		t.Fatalf("err = %v, want it to name the missing module", err)
	}
}

func TestWriteAgentFiles_PutsKernelAndInitramfsWhereServeFindsThem(t *testing.T) {
	k := kernel(t)
	dir := filepath.Join(t.TempDir(), "agent")
	if _, err := images.WriteAgentFiles(context.Background(), dir, images.InitramfsSpec{Agent: agentBinary(t), Kernel: k}); err != nil {
		t.Fatalf("WriteAgentFiles: %v", err)
	}
	want, _ := os.ReadFile(k.Vmlinuz)
	if got, _ := os.ReadFile(filepath.Join(dir, images.AgentKernel)); !bytes.Equal(got, want) {
		t.Error("vmlinuz differs from the kernel package's")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("agent dir holds %d entries, want exactly the two files (no temporaries)", len(entries))
	}
}
