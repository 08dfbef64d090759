package cloudinit_test

import (
	"context"
	"errors"
	"fmt"
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
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
)

// fakeBootyard records what the first-boot script reports; join-turn always says go
// (the turn logic is tested with the real handler in package web).
type fakeBootyard struct {
	key     string
	mu      sync.Mutex
	reports []url.Values
	badKeys int
}

func (f *fakeBootyard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(cloudinit.CallbackKeyHeader) != f.key {
		f.mu.Lock()
		f.badKeys++
		f.mu.Unlock()
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/phone-home"):
		r.ParseForm()
		f.mu.Lock()
		f.reports = append(f.reports, r.PostForm)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case strings.HasSuffix(r.URL.Path, "/join-turn"):
		fmt.Fprintln(w, "go")
	default:
		http.NotFound(w, r)
	}
}

// lateServer answers /ping with pong only once ready is set, as a k3s server that is
// still booting; every other path answers 401, as cluster-info does without a token.
type lateServer struct {
	ready atomic.Bool
	pings atomic.Int32
}

func (l *lateServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/ping" {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	l.pings.Add(1)
	if !l.ready.Load() {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprint(w, "pong")
}

// stubInstaller is the "installer" the script downloads: it appends one line per run to
// $STUB_LOG (passed through the cluster's installer environment) and exits with code.
// Like LLMOS's install.sh it only queues the join, here with the stand-in systemctl
// (fakeSystemd): the join unit then writes the bootstrapped stamp or fails.
func stubInstaller(code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "#!/bin/sh\necho \"ran version=$INSTALL_LLMOS_VERSION args=$#\" >> \"$STUB_LOG\"\n"+
			"[ %d -eq 0 ] && systemctl restart --no-block llmos\nexit %d\n", code, code)
	})
}

// fakeSystemd is a stand-in systemctl and journalctl, driven by files in root (the
// script's BOOTYARD_ROOT): `systemctl --version` prints $FAKE_SYSTEMD_VERSION; a
// (re)start of llmos appends to root/starts and then plays the next word of
// root/outcomes: "ok" writes the bootstrapped stamp a moment later, as the real unit
// would after its join; "fail" leaves the unit failed; "hang" does nothing. journalctl
// prints root/journal.
const fakeSystemctl = `#!/bin/sh
root="$BOOTYARD_ROOT"
case "$1" in
--version) echo "systemd $FAKE_SYSTEMD_VERSION (fake)"; echo "+PAM +AUDIT"; exit 0 ;;
daemon-reload) echo daemon-reload >> "$root/reloads"; exit 0 ;;
reset-failed) rm -f "$root/failed"; echo reset >> "$root/resets"; exit 0 ;;
is-failed) [ -e "$root/failed" ]; exit $? ;;
restart)
  n=$(($(cat "$root/starts" 2>/dev/null | wc -l) + 1))
  echo "start $n" >> "$root/starts"
  rm -f "$root/failed"
  outcome=$(sed -n "${n}p" "$root/outcomes" 2>/dev/null)
  case "$outcome" in
  ok) (sleep 2; mkdir -p "$root/var/lib/llmos"; touch "$root/var/lib/llmos/bootstrapped") >/dev/null 2>&1 & ;;
  fail) touch "$root/failed" ;;
  esac
  exit 0 ;;
esac
echo "fake systemctl: unexpected $*" >&2
exit 1
`

// journalLines is what the fake journal holds: more than the 20 lines the script sends,
// the first of which must therefore not be sent.
func journalLines() string {
	var b strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "llmos[42]: bootstrap line %02d\n", i)
	}
	b.WriteString("llmos[42]: cluster-info: 401 Unauthorized\n")
	return b.String()
}

// firstBootScriptOf extracts the script user-data delivers, exactly as written.
func firstBootScriptOf(t *testing.T, userData []byte) string {
	t.Helper()
	var doc struct {
		WriteFiles []struct{ Path, Content string } `json:"write_files"`
	}
	if err := yaml.Unmarshal(userData, &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range doc.WriteFiles {
		if strings.HasSuffix(f.Path, "/firstboot.sh") {
			return f.Content
		}
	}
	t.Fatalf("no first-boot script in user-data:\n%s", userData)
	return ""
}

// scriptEnv is how one run of the script sees its machine.
type scriptEnv struct {
	systemd      string   // what systemctl --version reports
	outcomes     []string // the join unit's outcome per start: ok, fail, hang
	failedBefore bool     // the unit is failed from an earlier run when the script starts
}

// runScript runs script with sh as cloud-init's runcmd would, with the console and
// logger redirected into dir so the test machine's console and journal stay quiet, and
// systemctl and journalctl replaced by fakeSystemctl acting on dir/root.
func runScript(t *testing.T, dir, script string, env scriptEnv) (exitCode int, output string) {
	t.Helper()
	needTool(t, "curl")
	path := filepath.Join(dir, "firstboot.sh")
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("sh -n: the script does not parse: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "bin")
	root := filepath.Join(dir, "root")
	for _, d := range []string{bin, root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tools := map[string]string{
		"logger":     "#!/bin/sh\necho \"$*\" >> \"" + dir + "/journal\"\n",
		"systemctl":  fakeSystemctl,
		"journalctl": "#!/bin/sh\n[ \"$*\" = \"-u llmos.service --no-pager -o cat -n 20\" ] || exit 1\ntail -n 20 \"$BOOTYARD_ROOT/journal\"\n",
	}
	for name, body := range tools {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if env.systemd == "" {
		env.systemd = "252"
	}
	if env.outcomes == nil {
		env.outcomes = []string{"ok"}
	}
	files := map[string]string{"outcomes": strings.Join(env.outcomes, "\n") + "\n", "journal": journalLines()}
	if env.failedBefore {
		files["failed"] = ""
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", path)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "BOOTYARD_CONSOLE="+filepath.Join(dir, "console"),
		"BOOTYARD_ROOT="+root, "FAKE_SYSTEMD_VERSION="+env.systemd)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("run script: %v\n%s", err, out)
	return -1, ""
}

// statuses lists the reported statuses in order.
func (f *fakeBootyard) statuses() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reports {
		out = append(out, r.Get("status"))
	}
	return out
}

func TestFirstBootScript_WaitsForTheServerThenRunsTheInstallerOnce(t *testing.T) {
	tests := []struct {
		name         string
		role         string
		readyAfter   time.Duration // -1: the server never answers
		installExit  int
		waitLimit    time.Duration
		wantExit     int
		wantRuns     int
		wantStatuses []string
		wantConsole  string
	}{
		{name: "server late by a few seconds: waits, installs once, waits for the stamp", role: "worker", readyAfter: 3 * time.Second,
			waitLimit: time.Minute, wantRuns: 1, wantStatuses: []string{"joining", "joined"}, wantConsole: "waiting for https://"},
		{name: "second server also waits for its server", role: "server", readyAfter: 3 * time.Second,
			waitLimit: time.Minute, wantRuns: 1, wantStatuses: []string{"joining", "joined"}, wantConsole: "waiting for https://"},
		{name: "server never answers: gives up, reports, never installs", role: "worker", readyAfter: -1,
			waitLimit: 3 * time.Second, wantExit: 1, wantRuns: 0, wantStatuses: []string{"failed"}, wantConsole: "giving up after"},
		{name: "installer fails: reports the exit status", role: "worker", readyAfter: 0, installExit: 3,
			waitLimit: time.Minute, wantExit: 1, wantRuns: 1, wantStatuses: []string{"failed"}, wantConsole: "installer failed with exit status 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			late := &lateServer{}
			k3s := httptest.NewTLSServer(late)
			defer k3s.Close()
			if tt.readyAfter == 0 {
				late.ready.Store(true)
			} else if tt.readyAfter > 0 {
				timer := time.AfterFunc(tt.readyAfter, func() { late.ready.Store(true) })
				defer timer.Stop()
			}
			install := httptest.NewServer(stubInstaller(tt.installExit))
			defer install.Close()
			bootyard := &fakeBootyard{}
			by := httptest.NewServer(bootyard)
			defer by.Close()

			k3sURL, _ := url.Parse(k3s.URL)
			port, _ := strconv.Atoi(k3sURL.Port())
			r := newRenderer(t, cloudinit.Config{AdvertiseURL: by.URL, Join: cloudinit.LLMOS{ClusterInfoPort: port},
				WaitLimit: tt.waitLimit, WaitFirstDelay: time.Second, WaitMaxDelay: 2 * time.Second})
			s := fixtureSettings()
			s.ServerURL = k3s.URL
			s.InstallURL = install.URL + "/install.sh"
			stubLog := filepath.Join(dir, "installer-runs")
			s.InstallEnv = map[string]string{"INSTALL_LLMOS_VERSION": "v-test", "STUB_LOG": stubLog}
			n := fixtureNodes(t)[tt.role]
			bootyard.key = r.CallbackKey(n, s)
			ud, err := r.UserData(n, s, true)
			if err != nil {
				t.Fatal(err)
			}
			exit, out := runScript(t, dir, firstBootScriptOf(t, ud), scriptEnv{})
			if exit != tt.wantExit {
				t.Errorf("exit = %d, want %d\n%s", exit, tt.wantExit, out)
			}
			runs, _ := os.ReadFile(stubLog)
			if got := strings.Count(string(runs), "ran version=v-test args=0\n"); got != tt.wantRuns || len(runs) != got*len("ran version=v-test args=0\n") {
				t.Errorf("installer ran %d times (log %q), want %d, with the environment and no arguments", got, runs, tt.wantRuns)
			}
			if tt.readyAfter > 0 && late.pings.Load() < 2 {
				t.Errorf("/ping asked %d times; the script did not wait", late.pings.Load())
			}
			console, _ := os.ReadFile(filepath.Join(dir, "console"))
			if !strings.Contains(string(console), tt.wantConsole) {
				t.Errorf("console lacks %q:\n%s", tt.wantConsole, console)
			}
			if got := bootyard.statuses(); !slices.Equal(got, tt.wantStatuses) {
				t.Fatalf("reports %v, want %v\n%s", got, tt.wantStatuses, out)
			}
			bootyard.mu.Lock()
			defer bootyard.mu.Unlock()
			if bootyard.badKeys > 0 {
				t.Errorf("%d callbacks with a wrong key", bootyard.badKeys)
			}
			for _, text := range []string{out, string(console), bootyard.reports[0].Get("reason")} {
				if strings.Contains(text, testToken) {
					t.Errorf("token leaked into the script's output or report")
				}
			}
		})
	}
}

// TestFirstBootScript_RetriesTheJoinTheWayTheRunningSystemdAllows drives the join with a
// stand-in systemctl reporting systemd 239 (RHEL 8: Restart= on a oneshot unit is
// refused) and 252 (Debian 12): only 252 gets the restart drop-in; on 239 the script
// restarts the failed unit itself, a bounded number of times; a join that keeps failing
// is reported failed with the unit's last 20 journal lines.
func TestFirstBootScript_RetriesTheJoinTheWayTheRunningSystemdAllows(t *testing.T) {
	tests := []struct {
		name         string
		systemd      string
		outcomes     []string
		wantDropIn   bool
		wantStarts   int // the installer's start plus the script's restarts
		wantStatuses []string
		wantReason   string
	}{
		{"systemd 239, fails once then joins: Bootyard restarts it", "239", []string{"fail", "ok"}, false, 2,
			[]string{"joining", "joined"}, "finished the join"},
		{"systemd 239, keeps failing: two restarts, then failed with the log", "239", []string{"fail", "fail", "fail", "fail"}, false, 3,
			[]string{"joining", "failed"}, "failed after"},
		{"systemd 252: the drop-in restarts it, the script never does", "252", []string{"ok"}, true, 1,
			[]string{"joining", "joined"}, "finished the join"},
		{"systemd 252, failed for good (start limit hit): reported at once", "252", []string{"fail"}, true, 1,
			[]string{"joining", "failed"}, "(0 restarts by Bootyard)"},
		{"systemctl without a version: Bootyard retries", "", []string{"fail", "ok"}, false, 2,
			[]string{"joining", "joined"}, "finished the join"},
		{"rerun after a failure: the old failed state is reset first", "252", []string{"ok"}, true, 1,
			[]string{"joining", "joined"}, "finished the join"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			install := httptest.NewServer(stubInstaller(0))
			defer install.Close()
			bootyard := &fakeBootyard{}
			by := httptest.NewServer(bootyard)
			defer by.Close()
			r := newRenderer(t, cloudinit.Config{AdvertiseURL: by.URL, JoinRetries: 2,
				WaitFirstDelay: time.Second, WaitMaxDelay: time.Second})
			s := fixtureSettings()
			s.InstallURL = install.URL + "/install.sh"
			s.InstallEnv = map[string]string{"STUB_LOG": filepath.Join(dir, "installer-runs")}
			n := fixtureNodes(t)["cluster-init"] // no server to wait for
			bootyard.key = r.CallbackKey(n, s)
			ud, err := r.UserData(n, s, true)
			if err != nil {
				t.Fatal(err)
			}
			version := tt.systemd
			if version == "" {
				version = "unknown"
			}
			env := scriptEnv{systemd: version, outcomes: tt.outcomes, failedBefore: strings.HasPrefix(tt.name, "rerun")}
			exit, out := runScript(t, dir, firstBootScriptOf(t, ud), env)
			failed := tt.wantStatuses[len(tt.wantStatuses)-1] == "failed"
			if (exit != 0) != failed {
				t.Errorf("exit %d\n%s", exit, out)
			}
			root := filepath.Join(dir, "root")
			dropIn, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/llmos.service.d/10-bootyard-restart.conf"))
			if gotDropIn := err == nil; gotDropIn != tt.wantDropIn {
				t.Errorf("drop-in written: %v, want %v", gotDropIn, tt.wantDropIn)
			}
			if tt.wantDropIn {
				for _, want := range []string{"Restart=on-failure", "StartLimitBurst=3", "StartLimitIntervalSec=2700s"} {
					if !strings.Contains(string(dropIn), want) {
						t.Errorf("drop-in lacks %q:\n%s", want, dropIn)
					}
				}
				if reloads, _ := os.ReadFile(filepath.Join(root, "reloads")); len(reloads) == 0 {
					t.Errorf("no daemon-reload after writing the drop-in")
				}
			}
			// systemd refuses a start once the unit hit its start limit, until reset-failed:
			// a rerun of the script must clear it before the installer restarts the unit.
			if resets, _ := os.ReadFile(filepath.Join(root, "resets")); len(resets) == 0 {
				t.Errorf("no systemctl reset-failed before the installer")
			}
			starts, _ := os.ReadFile(filepath.Join(root, "starts"))
			if got := strings.Count(string(starts), "start "); got != tt.wantStarts {
				t.Errorf("llmos started %d times, want %d\n%s", got, tt.wantStarts, out)
			}
			if got := bootyard.statuses(); !slices.Equal(got, tt.wantStatuses) {
				t.Fatalf("reports %v, want %v\n%s", got, tt.wantStatuses, out)
			}
			bootyard.mu.Lock()
			defer bootyard.mu.Unlock()
			last := bootyard.reports[len(bootyard.reports)-1]
			if !strings.Contains(last.Get("reason"), tt.wantReason) {
				t.Errorf("last reason %q lacks %q", last.Get("reason"), tt.wantReason)
			}
			log := last.Get("log")
			if failed {
				lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
				if len(lines) != 20 || lines[0] != "llmos[42]: bootstrap line 12" || !strings.HasSuffix(log, "cluster-info: 401 Unauthorized") {
					t.Errorf("failed report carries %d journal lines, want the last 20:\n%s", len(lines), log)
				}
			} else if log != "" {
				t.Errorf("a join that worked sent a log: %q", log)
			}
		})
	}
}

func TestFirstBootScript_WithoutJoinOnlyPhonesHome(t *testing.T) {
	dir := t.TempDir()
	bootyard := &fakeBootyard{}
	by := httptest.NewServer(bootyard)
	defer by.Close()
	r := newRenderer(t, cloudinit.Config{AdvertiseURL: by.URL})
	n, s := fixtureNodes(t)["server"], fixtureSettings()
	n.State = node.StateWiping
	bootyard.key = r.CallbackKey(n, s)
	ud, err := r.UserData(n, s, false)
	if err != nil {
		t.Fatal(err)
	}
	if exit, out := runScript(t, dir, firstBootScriptOf(t, ud), scriptEnv{}); exit != 0 {
		t.Fatalf("exit %d\n%s", exit, out)
	}
	if len(bootyard.reports) != 1 || bootyard.reports[0].Get("status") != "installed" {
		t.Errorf("reports = %v, want one installed", bootyard.reports)
	}
}
