package cluster

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
)

// fakeCurl records its arguments (NUL-separated), and whether the files holding the
// node's callback key and the join token were still there when it ran, then exits with
// $FAKE_CURL_EXIT.
const fakeCurl = `#!/bin/sh
printf '%s\0' "$@" >>"$CURL_CALLS"
printf '\n' >>"$CURL_CALLS"
for f in etc/llmos/config.yaml var/lib/cloud/instance/user-data.txt usr/local/lib/bootyard/firstboot.sh; do
  if [ -e "$ROOT/$f" ]; then echo "$f: there" >>"$CURL_SEEN"; else echo "$f: gone" >>"$CURL_SEEN"; fi
done
exit "${FAKE_CURL_EXIT:-0}"
`

// curlCall is one recorded curl invocation, read the way curl reads it.
type curlCall struct {
	url    string
	header []string
	form   url.Values
}

func parseCurlCalls(t *testing.T, path string) []curlCall {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var calls []curlCall
	for _, rec := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\x00\n") {
		if rec == "" {
			continue
		}
		args := strings.Split(strings.TrimSuffix(rec, "\x00"), "\x00")
		c := curlCall{form: url.Values{}}
		for i := 0; i < len(args); i++ {
			switch a := args[i]; a {
			case "-H":
				i++
				c.header = append(c.header, args[i])
			case "--data-urlencode":
				i++
				k, v, _ := strings.Cut(args[i], "=")
				c.form.Add(k, v)
			case "-m", "--retry", "--retry-delay", "-o":
				i++
			default:
				if !strings.HasPrefix(a, "-") {
					c.url = a
				}
			}
		}
		calls = append(calls, c)
	}
	return calls
}

// The host script reports its own outcome to Bootyard, because on a real node the
// kubelet that would report the pod's exit is stopped by LLMOS's uninstall. The report
// carries the exit status and the end of the log, with the node's callback key read from
// the machine before the cleanup removes the files that hold it.
func TestUninstallHostScript_ReportsItsOutcomeToBootyard(t *testing.T) {
	tests := []struct {
		name       string
		binDir     string // where the fake install put llmos-uninstall.sh
		uninstall  int    // what the fake llmos-uninstall.sh exits with
		keyOnlyIn  string // "" both; "user-data": the first-boot script is gone, cloud-init's copy holds the key
		curlFails  bool
		wantExit   int
		wantLog    string
		wantReport bool
	}{
		{name: "success", binDir: "/usr/local/bin", wantReport: true, wantLog: "bootyard: uninstall finished"},
		{name: "LLMOS's script fails", binDir: "/usr/local/bin", uninstall: 5, wantExit: 5, wantReport: true, wantLog: "exited with status 5"},
		{name: "LLMOS's script is nowhere", binDir: "/somewhere/else", wantExit: 3, wantReport: true, wantLog: "LLMOS is installed"},
		{name: "the key only in cloud-init's user-data, which the cleanup removes", binDir: "/usr/local/bin",
			keyOnlyIn: "user-data", wantReport: true, wantLog: "bootyard: uninstall finished"},
		{name: "no first-boot script and no user-data: no report", binDir: "/usr/local/bin", keyOnlyIn: "nowhere",
			wantLog: "no Bootyard callback key"},
		{name: "Bootyard unreachable: the exit status stays the uninstall's", binDir: "/usr/local/bin", curlFails: true,
			wantReport: true, wantLog: "could not report exit status 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			fb := newFirstBootRerun(t)
			ud := fb.userData(t, root, filepath.Join(t.TempDir(), "installer-runs"))
			fakeMachine(t, root, tt.binDir, ud)
			switch tt.keyOnlyIn {
			case "user-data":
				if err := os.Remove(filepath.Join(root, "usr/local/lib/bootyard/firstboot.sh")); err != nil {
					t.Fatal(err)
				}
			case "nowhere":
				for _, p := range []string{"usr/local/lib/bootyard/firstboot.sh", "var/lib/cloud/instances/iid-gpu-7-g1/user-data.txt"} {
					if err := os.Remove(filepath.Join(root, p)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tt.binDir == "/somewhere/else" {
				// The unit names no directory the script looks in.
				if err := os.Remove(filepath.Join(root, "etc/systemd/system/llmos.service")); err != nil {
					t.Fatal(err)
				}
			}
			bin := t.TempDir()
			writeTree(t, bin, map[string]string{"curl": fakeCurl})
			tmp := t.TempDir()
			calls, seen, logPath := filepath.Join(tmp, "calls"), filepath.Join(tmp, "seen"), filepath.Join(tmp, "log")
			logFile, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer logFile.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "sh", "-c", uninstallEnv(nil)+uninstallHostScript)
			curlExit := "0"
			if tt.curlFails {
				curlExit = "7"
			}
			cmd.Env = append(os.Environ(), "PATH="+filepath.Join(bin)+":"+os.Getenv("PATH"), "ROOT="+root, "DISKS=/dev/null",
				"BOOTYARD_UNINSTALL_LOG="+logPath, "CURL_CALLS="+calls, "CURL_SEEN="+seen,
				"FAKE_UNINSTALL_EXIT="+strconv.Itoa(tt.uninstall), "FAKE_CURL_EXIT="+curlExit)
			cmd.Stdout, cmd.Stderr = logFile, logFile
			_ = cmd.Run()
			if cmd.ProcessState == nil {
				t.Fatal("the host script did not run")
			}
			out, _ := os.ReadFile(logPath)
			if code := cmd.ProcessState.ExitCode(); code != tt.wantExit {
				t.Fatalf("exit %d, want %d\n%s", code, tt.wantExit, out)
			}
			if !strings.Contains(string(out), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, out)
			}
			got := parseCurlCalls(t, calls)
			if !tt.wantReport {
				if len(got) != 0 {
					t.Fatalf("curl called %d times, want no report: %+v", len(got), got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("curl called %d times, want one report\n%s", len(got), out)
			}
			c := got[0]
			wantURL := fb.bootyard.URL + "/nocloud/52:54:00:00:02:07/uninstall-report"
			if c.url != wantURL {
				t.Errorf("report to %q, want %q", c.url, wantURL)
			}
			key := uninstallTestKey(t, fb)
			if len(c.header) != 1 || c.header[0] != cloudinit.CallbackKeyHeader+": "+key {
				t.Errorf("headers %q, want the node's callback key %s", c.header, key)
			}
			if s := c.form.Get("status"); s != strconv.Itoa(tt.wantExit) {
				t.Errorf("reported status %q, want %d", s, tt.wantExit)
			}
			if l := c.form.Get("log"); !strings.Contains(l, tt.wantLog) && !tt.curlFails {
				t.Errorf("reported log lacks %q:\n%s", tt.wantLog, l)
			}
			if strings.Contains(c.form.Get("log"), uninstallToken) {
				t.Error("the report carries the join token")
			}
			// The report describes the finished run: when it is sent the cleanup is over
			// (on success the token and cloud-init's copy of the key are gone), so the key
			// it carries was read before.
			seenNow, _ := os.ReadFile(seen)
			if tt.wantExit == 0 {
				for _, gone := range []string{"etc/llmos/config.yaml: gone", "var/lib/cloud/instance/user-data.txt: gone"} {
					if !strings.Contains(string(seenNow), gone) {
						t.Errorf("at the report: want %q, curl saw:\n%s", gone, seenNow)
					}
				}
			} else if !strings.Contains(string(seenNow), "etc/llmos/config.yaml: there") {
				t.Errorf("a failed uninstall keeps the join data; curl saw:\n%s", seenNow)
			}
		})
	}
}

// uninstallTestKey is the callback key the renderer of newFirstBootRerun gives gpu-7.
func uninstallTestKey(t *testing.T, fb *firstBootRerun) string {
	t.Helper()
	ud := fb.userData(t, t.TempDir(), filepath.Join(t.TempDir(), "log"))
	for _, l := range strings.Split(string(ud), "\n") {
		if k, ok := strings.CutPrefix(strings.TrimSpace(l), "KEY='"); ok {
			return strings.TrimSuffix(k, "'")
		}
	}
	t.Fatal("no KEY in the rendered user-data")
	return ""
}
