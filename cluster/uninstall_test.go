package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/images/disk"
	"github.com/bootyard/bootyard/images/disk/disktest"
	"github.com/bootyard/bootyard/node"
)

// uninstallToken is the join token in the fake machine's files; the test looks for it
// everywhere afterwards.
const uninstallToken = "K10uninstall-test-token::server:0a1b2c"

// fakeUninstall stands in for the llmos-uninstall.sh LLMOS's installer writes: it notes
// that it ran and whether the LLMOS config was still there (Bootyard's cleanup must come
// after it), removes what the real one removes (the unit, the binary, itself) and exits
// with $FAKE_UNINSTALL_EXIT.
const fakeUninstall = `#!/bin/sh
if [ -f "$ROOT/etc/llmos/config.yaml" ]; then echo "ran with config" >>"$ROOT/uninstall-runs"; else echo "ran without config" >>"$ROOT/uninstall-runs"; fi
rm -f "$ROOT/etc/systemd/system/llmos.service" "$(dirname "$0")/llmos"
rm -rf "$ROOT/var/lib/llmos"
rm -f "$0"
exit "${FAKE_UNINSTALL_EXIT:-0}"
`

// fakeMachine lays out an installed LLMOS node under root: the files cloud-init wrote
// from user-data (the LLMOS config with the token, the first-boot script), an LLMOS
// install with its binary and uninstall script in binDir and its unit naming that
// directory, and cloud-init's instance data and seed holding the user-data.
func fakeMachine(t *testing.T, root, binDir string, userData []byte) {
	t.Helper()
	var doc struct {
		WriteFiles []struct{ Path, Content string } `json:"write_files"`
	}
	if err := yaml.Unmarshal(userData, &doc); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"/etc/systemd/system/llmos.service":                   "[Service]\nType=oneshot\nExecStart=" + binDir + "/llmos bootstrap \\\n",
		binDir + "/llmos":                                     "#!/bin/sh\n",
		binDir + "/llmos-uninstall.sh":                        fakeUninstall,
		"/var/lib/llmos/bootstrapped":                         "",
		"/var/lib/cloud/instances/iid-gpu-7-g1/user-data.txt": string(userData),
		"/var/lib/cloud/instances/iid-gpu-7-g1/obj.pkl":       "pickled " + string(userData),
		"/var/lib/cloud/seed/nocloud/user-data":               string(userData),
	}
	for _, f := range doc.WriteFiles {
		files[f.Path] = f.Content
	}
	writeTree(t, root, files)
	if err := os.Symlink("/var/lib/cloud/instances/iid-gpu-7-g1", filepath.Join(root, "var/lib/cloud/instance")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/llmos/config.yaml")); err != nil {
		t.Fatalf("user-data wrote no LLMOS config: %v", err)
	}
}

// writeTree writes files (path → content, all executable) under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// run runs cmd and returns its exit status and output; only a command that could not
// run at all fails the test.
func run(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil {
		t.Fatalf("run %s: %v\n%s", cmd.Path, err, out)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// runHostScript runs the uninstall exactly as the helper pod hands it to the host, with
// ROOT and DISKS pointing at the test's machine.
func runHostScript(t *testing.T, root, disks string, installEnv map[string]string, env ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", uninstallEnv(installEnv)+uninstallHostScript)
	cmd.Env = append(os.Environ(), append([]string{"ROOT=" + root, "DISKS=" + disks}, env...)...)
	return run(t, cmd)
}

func TestUninstallHostScript_FindsLLMOSsUninstallScriptWhereTheInstallerPutIt(t *testing.T) {
	tests := []struct {
		name     string
		binDir   string            // where the fake install put llmos and llmos-uninstall.sh
		unit     bool              // the llmos.service unit names binDir
		settings map[string]string // the cluster's installer settings, which Bootyard passes on
		exit     int               // what the fake llmos-uninstall.sh exits with
		wantExit int
		wantRan  bool
		wantOut  string
	}{
		{name: "the default /usr/local/bin", binDir: "/usr/local/bin", wantRan: true, wantOut: "running "},
		{name: "/opt/bin, where the installer goes when /usr/local/bin is read-only", binDir: "/opt/bin", wantRan: true},
		{name: "INSTALL_LLMOS_BIN_DIR from the cluster's installer settings", binDir: "/srv/llmos",
			settings: map[string]string{"INSTALL_LLMOS_BIN_DIR": "/srv/llmos", "INSTALL_LLMOS_VERSION": "v0.3.1"}, wantRan: true},
		{name: "a BIN_DIR only the installed unit still names", binDir: "/var/opt/llmos/bin", unit: true, wantRan: true},
		{name: "LLMOS installed but the script is nowhere LLMOS puts it: exit 3", binDir: "/somewhere/else",
			wantExit: 3, wantOut: "LLMOS is installed"},
		{name: "the script fails: its status, and the join data stays", binDir: "/usr/local/bin", exit: 5,
			wantExit: 5, wantRan: true, wantOut: "exited with status 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			files := map[string]string{
				tt.binDir + "/llmos":              "#!/bin/sh\n",
				tt.binDir + "/llmos-uninstall.sh": fakeUninstall,
				"/etc/llmos/config.yaml":          "token: " + uninstallToken + "\n",
				"/var/lib/llmos/bootstrapped":     "",
			}
			if tt.unit {
				files["/etc/systemd/system/llmos.service"] = "[Service]\nExecStart=" + tt.binDir + "/llmos bootstrap \\\n\t'--debug'\n"
			}
			writeTree(t, root, files)
			// DISKS names no block device: these cases must not look at the test machine's disks.
			code, out := runHostScript(t, root, "/dev/null", tt.settings, "FAKE_UNINSTALL_EXIT="+strconv.Itoa(tt.exit))
			if code != tt.wantExit {
				t.Fatalf("exit %d, want %d\n%s", code, tt.wantExit, out)
			}
			runs, _ := os.ReadFile(filepath.Join(root, "uninstall-runs"))
			if got := string(runs) == "ran with config\n"; got != tt.wantRan {
				t.Errorf("uninstall runs %q, want ran (before the config was removed): %v\n%s", runs, tt.wantRan, out)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out)
			}
			_, err := os.Stat(filepath.Join(root, "etc/llmos/config.yaml"))
			if removed := errors.Is(err, fs.ErrNotExist); removed != (tt.wantExit == 0) {
				t.Errorf("config removed %v after exit %d: the join data goes exactly when the uninstall succeeded", removed, code)
			}
		})
	}
}

// loopDisk attaches the disk image at img as a loop device with its partitions and
// detaches it when the test ends. It needs root and the loop driver, as the wipe tests do.
func loopDisk(t *testing.T, img string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot attach a loop device for the CIDATA removal")
	}
	for _, tool := range []string{"losetup", "partx", "blkid", "lsblk", "wipefs", "sfdisk", "sgdisk", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s on this machine (util-linux, gdisk, e2fsprogs)", tool)
		}
	}
	out, err := exec.Command("losetup", "--find", "--show", "--partscan", img).CombinedOutput()
	if err != nil {
		t.Skipf("cannot attach a loop device here: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("detach %s: %v %s", dev, err, out)
		}
	})
	// Without udev the kernel's partition scan can lag: ask for it and wait until it shows.
	_ = exec.Command("partx", "--update", dev).Run()
	eventually(t, dev+"'s partitions appear", func() bool {
		_, err := os.Stat(filepath.Join("/sys/class/block", filepath.Base(dev)+"p2"))
		return err == nil
	})
	return dev
}

func blkidLabel(t *testing.T, dev string) string {
	t.Helper()
	out, _ := exec.Command("blkid", "-p", "-o", "value", "-s", "LABEL", dev).Output()
	return strings.TrimSpace(string(out))
}

// devicesLabelled is what `blkid -t LABEL=...` finds among dev and its partitions.
func devicesLabelled(t *testing.T, dev, label string) []string {
	t.Helper()
	out, _ := exec.Command("blkid", "-c", "/dev/null", "-o", "device", "-t", "LABEL="+label).Output()
	var found []string
	for _, d := range strings.Fields(string(out)) {
		if strings.HasPrefix(d, dev) {
			found = append(found, d)
		}
	}
	return found
}

func sha256Of(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// firstBootRerun serves what the rendered first-boot script talks to: a k3s server that
// answers /ping, the installer (a stub that records whether it found the LLMOS config and
// copies it into its log) and Bootyard's phone-home and join-turn.
type firstBootRerun struct {
	k3s, installer, bootyard *httptest.Server

	mu sync.Mutex
	// reports are the uninstall reports Bootyard's stand-in received, as it parsed them.
	reports []*http.Request
}

// uninstallReports returns the uninstall reports received so far.
func (f *firstBootRerun) uninstallReports() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reports)
}

func newFirstBootRerun(t *testing.T) *firstBootRerun {
	t.Helper()
	f := &firstBootRerun{}
	*f = firstBootRerun{
		k3s: httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong") })),
		installer: httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `#!/bin/sh
c="$STUB_ROOT/etc/llmos/config.yaml"
if [ -f "$c" ]; then echo "installer ran with config:" >>"$STUB_LOG"; cat "$c" >>"$STUB_LOG"; else echo "installer ran without config" >>"$STUB_LOG"; fi
`)
		})),
		bootyard: httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/join-turn") {
				fmt.Fprintln(w, "go")
				return
			}
			if strings.HasSuffix(r.URL.Path, "/uninstall-report") {
				if err := r.ParseForm(); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				f.mu.Lock()
				f.reports = append(f.reports, r)
				f.mu.Unlock()
			}
			w.WriteHeader(http.StatusNoContent)
		})),
	}
	t.Cleanup(func() { f.k3s.Close(); f.installer.Close(); f.bootyard.Close() })
	return f
}

// userData renders the worker's user-data with the installer pointed at the stub, which
// looks for the LLMOS config under root.
func (f *firstBootRerun) userData(t *testing.T, root, stubLog string) []byte {
	t.Helper()
	u, _ := url.Parse(f.k3s.URL)
	port, _ := strconv.Atoi(u.Port())
	r, err := cloudinit.NewRenderer(cloudinit.Config{AdvertiseURL: f.bootyard.URL, Join: cloudinit.LLMOS{ClusterInfoPort: port},
		CallbackSecret: []byte("uninstall-test"), WaitLimit: 5 * time.Second, WaitFirstDelay: time.Second, WaitMaxDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := node.ParseMAC("52:54:00:00:02:07")
	n := node.Node{Name: "gpu-7", MACs: []node.MAC{mac}, Role: node.RoleWorker, State: node.StateProvisioning, Generation: 1}
	s := node.ClusterSettings{ServerURL: f.k3s.URL, Token: node.Secret(uninstallToken), InstallURL: f.installer.URL + "/install.sh",
		InstallEnv: map[string]string{"STUB_ROOT": root, "STUB_LOG": stubLog}}
	ud, err := r.UserData(n, s, true)
	if err != nil {
		t.Fatal(err)
	}
	return ud
}

// rerun runs the first-boot script the machine has, as its own error message tells an
// operator to, and returns what the installer saw this time. The script may wait, report
// or fail as it likes; only what reaches the installer counts.
func (f *firstBootRerun) rerun(t *testing.T, root, stubLog string) string {
	t.Helper()
	before, _ := os.ReadFile(stubLog)
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// The machine's logger, systemctl and journalctl must not reach the test machine's.
	for _, tool := range []string{"logger", "systemctl", "journalctl"} {
		if err := os.WriteFile(filepath.Join(bin, tool), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(root, "usr/local/lib/bootyard/firstboot.sh"))
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "BOOTYARD_CONSOLE="+filepath.Join(root, "console"))
	out, _ := cmd.CombinedOutput()
	after, _ := os.ReadFile(stubLog)
	if !bytes.HasPrefix(after, before) {
		t.Fatalf("installer log rewritten")
	}
	t.Logf("first-boot script output:\n%s", out)
	return string(after[len(before):])
}

// The machine keeps its OS after an uninstall; what it must not keep is a way back into
// the cluster without new input from Bootyard. The test builds an installed LLMOS node
// under a directory (config with the token, first-boot script, cloud-init's instance
// data and seed) on a GPT or MBR disk with a CIDATA partition, runs the uninstall exactly as
// the helper pod hands it to the host, then reruns the machine's own first-boot script.
func TestUninstallHostScript_LeavesNoWayToRejoinWithoutNewInput(t *testing.T) {
	for _, tt := range []struct {
		table string
		build func(path string, size int64) error
	}{{"gpt", disktest.GPTImage}, {"dos", disktest.MBRImage}} {
		t.Run(tt.table, func(t *testing.T) { uninstallLeavesNoWayToRejoin(t, tt.build) })
	}
}

func uninstallLeavesNoWayToRejoin(t *testing.T, build func(path string, size int64) error) {
	const mib = 1 << 20
	root := t.TempDir()
	stubLog := filepath.Join(t.TempDir(), "installer-runs")
	fb := newFirstBootRerun(t)
	ud := fb.userData(t, root, stubLog)
	fakeMachine(t, root, "/opt/llmos/bin", ud)

	// The disk: the OS partition, and CIDATA with the node's NoCloud files, as Bootyard's
	// installer leaves it.
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := build(img, 32*mib); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64*mib); err != nil {
		t.Fatal(err)
	}
	d, err := disk.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	cidata, err := disk.AddCIDATA(d, 32*mib, map[string][]byte{"user-data": ud, "meta-data": []byte("instance-id: iid-gpu-7-g1\n")})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	dev := loopDisk(t, img)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "osroot", dev+"p1").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %sp1: %v %s", dev, err, out)
	}
	if got := devicesLabelled(t, dev, "CIDATA"); len(got) != 1 || got[0] != dev+"p2" {
		t.Fatalf("before: blkid finds CIDATA on %v, want %sp2", got, dev)
	}
	osBefore := sha256Of(t, dev+"p1")

	// The control: before the uninstall, rerunning the first-boot script rejoins.
	if saw := fb.rerun(t, root, stubLog); !strings.Contains(saw, "installer ran with config") || !strings.Contains(saw, uninstallToken) {
		t.Fatalf("before the uninstall the rerun should reach the installer with the join data; it saw:\n%s", saw)
	}

	code, out := runHostScript(t, root, dev, nil)
	if code != 0 {
		t.Fatalf("uninstall exit %d\n%s", code, out)
	}
	t.Logf("uninstall output:\n%s", out)
	// The host's report reached Bootyard (the real curl against its stand-in), with the
	// node's key and the exit status, though the uninstall removed cloud-init's copy of it.
	if reps := fb.uninstallReports(); len(reps) != 1 || reps[0].PostForm.Get("status") != "0" ||
		reps[0].Header.Get(cloudinit.CallbackKeyHeader) != uninstallTestKey(t, fb) {
		t.Errorf("uninstall reports %d, want one with status 0 and the node's key", len(reps))
	}
	if runs, _ := os.ReadFile(filepath.Join(root, "uninstall-runs")); string(runs) != "ran with config\n" {
		t.Errorf("llmos-uninstall.sh runs %q: want one run, before Bootyard removed the config", runs)
	}
	for _, gone := range []string{"etc/llmos/config.yaml", "var/lib/cloud/instance", "var/lib/cloud/instances/iid-gpu-7-g1", "var/lib/cloud/seed", "opt/llmos/bin/llmos-uninstall.sh"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there (%v)", gone, err)
		}
	}
	// No file left on the machine holds the token.
	if err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(uninstallToken)) {
			t.Errorf("%s still holds the join token", p)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// CIDATA is gone from the disk; the OS partition is untouched.
	if got := devicesLabelled(t, dev, "CIDATA"); len(got) != 0 {
		t.Errorf("after: blkid still finds CIDATA on %v", got)
	}
	// The filesystem signature itself is gone too, not only the table entry: a table
	// restored from its backup, or recreated by hand, finds no CIDATA there.
	if out, _ := exec.Command("blkid", "-p", "-o", "value", "-s", "LABEL", "-O", strconv.FormatInt(cidata.Offset, 10), img).Output(); len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("the bytes where CIDATA was still carry the label %q", bytes.TrimSpace(out))
	}
	if l := blkidLabel(t, dev+"p1"); l != "osroot" {
		t.Errorf("OS partition label %q, want osroot", l)
	}
	if h := sha256Of(t, dev+"p1"); h != osBefore {
		t.Error("the OS partition's bytes changed")
	}
	table, err := exec.Command("sfdisk", "--dump", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(table), img+"1 :") || strings.Contains(string(table), img+"2 :") {
		t.Errorf("partition table after the uninstall, want partition 1 only:\n%s", table)
	}
	if _, err := os.Stat(filepath.Join("/sys/class/block", filepath.Base(dev)+"p2")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the kernel still has %sp2 (%v)", dev, err)
	}
	if got := devicesLabelled(t, dev, "osroot"); len(got) != 1 {
		t.Errorf("blkid finds the OS partition on %v, want it once", got)
	}

	// The rerun no longer rejoins: the installer finds no config and no token.
	saw := fb.rerun(t, root, stubLog)
	if strings.Contains(saw, uninstallToken) || strings.Contains(saw, "installer ran with config") {
		t.Errorf("after the uninstall the rerun reached the installer with join data:\n%s", saw)
	}

	// Running it again (a retry after a lost pod) finds nothing left to do, and succeeds.
	if code, out := runHostScript(t, root, dev, nil); code != 0 || !strings.Contains(out, "nothing to uninstall") {
		t.Errorf("second run: exit %d\n%s", code, out)
	}
}

// The pod's own script, on a host without systemd: it must exit with the uninstall's
// status and print its output, which becomes the pod's termination message on failure.
// It runs in its own mount namespace with fresh /run and /var/log, the host paths it writes.
func TestUninstallPodScript_ExitsWithTheUninstallsStatusAndPrintsItsOutput(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot give the pod script its own /run and /var/log")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare on this machine")
	}
	tests := []struct {
		name     string
		host     string
		wantExit int
	}{
		{"success", "echo bootyard: uninstall finished\nexit 0\n", 0},
		{"LLMOS's script failed", "echo bootyard: running llmos-uninstall.sh\necho 'bootyard: llmos-uninstall.sh exited with status 3' >&2\nexit 3\n", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c",
				`mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/log || exit 99
sh -c "$POD_SCRIPT"
rc=$?
echo "--- host log"
cat /var/log/bootyard-uninstall.log
exit $rc`)
			cmd.Env = append(os.Environ(), "POD_SCRIPT="+uninstallPodScript, uninstallEnvVar+"="+tt.host)
			code, out := run(t, cmd)
			if code == 99 {
				t.Skipf("cannot mount tmpfs in a new mount namespace here:\n%s", out)
			}
			if code != tt.wantExit {
				t.Errorf("exit %d, want %d\n%s", code, tt.wantExit, out)
			}
			podLog, hostLog, _ := strings.Cut(out, "--- host log\n")
			for _, line := range strings.Split(strings.TrimSpace(tt.host), "\n") {
				if msg, ok := strings.CutPrefix(line, "echo "); ok {
					msg = strings.Trim(strings.TrimSuffix(msg, " >&2"), "'")
					if !strings.Contains(podLog, msg) || !strings.Contains(hostLog, msg) {
						t.Errorf("%q missing from the pod's output or the host's log:\n%s", msg, out)
					}
				}
			}
		})
	}
}
