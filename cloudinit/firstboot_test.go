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
func stubInstaller(code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "#!/bin/sh\necho \"ran version=$INSTALL_LLMOS_VERSION args=$#\" >> \"$STUB_LOG\"\nexit %d\n", code)
	})
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

// runScript runs script with sh as cloud-init's runcmd would, with the console and
// logger redirected into dir so the test machine's console and journal stay quiet.
func runScript(t *testing.T, dir, script string) (exitCode int, output string) {
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
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "logger"), []byte("#!/bin/sh\necho \"$*\" >> \""+dir+"/journal\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", path)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "BOOTYARD_CONSOLE="+filepath.Join(dir, "console"))
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

func TestFirstBootScript_WaitsForTheServerThenRunsTheInstallerOnce(t *testing.T) {
	tests := []struct {
		name        string
		role        string
		readyAfter  time.Duration // -1: the server never answers
		installExit int
		waitLimit   time.Duration
		wantExit    int
		wantRuns    int
		wantStatus  string
		wantConsole string
	}{
		{name: "server late by a few seconds: waits, installs once", role: "worker", readyAfter: 3 * time.Second,
			waitLimit: time.Minute, wantRuns: 1, wantStatus: "installed", wantConsole: "waiting for https://"},
		{name: "second server also waits for its server", role: "server", readyAfter: 3 * time.Second,
			waitLimit: time.Minute, wantRuns: 1, wantStatus: "installed", wantConsole: "waiting for https://"},
		{name: "server never answers: gives up, reports, never installs", role: "worker", readyAfter: -1,
			waitLimit: 3 * time.Second, wantExit: 1, wantRuns: 0, wantStatus: "failed", wantConsole: "giving up after"},
		{name: "installer fails: reports the exit status", role: "worker", readyAfter: 0, installExit: 3,
			waitLimit: time.Minute, wantExit: 1, wantRuns: 1, wantStatus: "failed", wantConsole: "installer failed with exit status 3"},
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
			exit, out := runScript(t, dir, firstBootScriptOf(t, ud))
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
			bootyard.mu.Lock()
			defer bootyard.mu.Unlock()
			if bootyard.badKeys > 0 {
				t.Errorf("%d callbacks with a wrong key", bootyard.badKeys)
			}
			if len(bootyard.reports) != 1 || bootyard.reports[0].Get("status") != tt.wantStatus {
				t.Fatalf("reports = %v, want one with status %s\n%s", bootyard.reports, tt.wantStatus, out)
			}
			for _, text := range []string{out, string(console), bootyard.reports[0].Get("reason")} {
				if strings.Contains(text, testToken) {
					t.Errorf("token leaked into the script's output or report")
				}
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
	if exit, out := runScript(t, dir, firstBootScriptOf(t, ud)); exit != 0 {
		t.Fatalf("exit %d\n%s", exit, out)
	}
	if len(bootyard.reports) != 1 || bootyard.reports[0].Get("status") != "installed" {
		t.Errorf("reports = %v, want one installed", bootyard.reports)
	}
}
