package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// fakeCurl records its arguments (NUL-separated), and whether the files holding the
// node's callback key and the join token were still there when it ran, then exits with
// $FAKE_CURL_EXIT.
const fakeCurl = `#!/bin/sh
printf '%s\0' "$@" >>"$CURL_CALLS"
printf '\n' >>"$CURL_CALLS"
for f in etc/llmos/config.yaml var/lib/cloud/instances/iid-gpu-7-g1/user-data.txt usr/local/lib/bootyard/firstboot.sh; do
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
			calls, seen := filepath.Join(tmp, "calls"), filepath.Join(tmp, "seen")
			curlExit := "0"
			if tt.curlFails {
				curlExit = "7"
			}
			code, out := runHostScriptToLog(t, root, "PATH="+bin+":"+os.Getenv("PATH"), "CURL_CALLS="+calls, "CURL_SEEN="+seen,
				"FAKE_UNINSTALL_EXIT="+strconv.Itoa(tt.uninstall), "FAKE_CURL_EXIT="+curlExit)
			if code != tt.wantExit {
				t.Fatalf("exit %d, want %d\n%s", code, tt.wantExit, out)
			}
			if !strings.Contains(out, tt.wantLog) {
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
				for _, gone := range []string{"etc/llmos/config.yaml: gone", "var/lib/cloud/instances/iid-gpu-7-g1/user-data.txt: gone"} {
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

// hostReports stands in for the machine endpoint's record of the host's report
// (machine.recordUninstallReport): the report on the node, in one store transaction.
func hostReports(t *testing.T, st *store.Store, name string, rc int, log ...string) {
	t.Helper()
	if _, err := st.UpdateNode(context.Background(), name, func(n *node.Node) ([]node.Event, error) {
		if n.State != node.StateDeleting && n.FailedFrom != node.StateDeleting {
			return nil, fmt.Errorf("node is %s: %w", n.State, node.ErrConflict)
		}
		n.UninstallReport = &node.UninstallReport{ExitStatus: rc, Log: log, From: "10.20.0.31", At: time.Now().UTC()}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// On a real k3s node LLMOS's uninstall stops the kubelet, so the helper pod stays Running
// for good as the API server sees it. The host's own report ends the step instead: a
// success deletes the Node, a failure fails the step with the status and the log tail and
// keeps the Node; a retry discards the old failure and waits for the new run's word.
func TestDeletion_TheHostsReportEndsTheUninstallWhileThePodStaysRunning(t *testing.T) {
	st := openStore(t)
	importNode(t, st, "gpu-3", node.RoleWorker, "52:54:00:00:00:13", node.StateActive)
	cs := fakeCluster(kubeNode("gpu-3", true))
	setHelperStatus(cs, corev1.PodRunning, 0, "")
	cfg := testConfig(nil)
	// Far longer than any run of this test: only the report can end the wait.
	cfg.UninstallTimeout = 10 * waitTimeout
	c := startController(t, cs, st, cfg)
	ctx := context.Background()
	const podName = "bootyard-uninstall-gpu-3-g1"
	podCreated := func() bool {
		_, err := cs.CoreV1().Pods(cfg.withDefaults().HelperNamespace).Get(ctx, podName, metav1.GetOptions{})
		return err == nil
	}

	deleteThroughAPI(t, st, c, "gpu-3", node.DeleteUninstall, false)
	eventually(t, "the uninstall pod runs", podCreated)
	hostReports(t, st, "gpu-3", 4, "bootyard: removed cloud-init's instance data", "bootyard: cannot remove /etc/llmos/config.yaml")
	eventually(t, "the failure report fails the step", func() bool { return nodeState(t, st, "gpu-3").State == node.StateFailed })
	n := nodeState(t, st, "gpu-3")
	if want := "stopped at uninstall: the host reported exit status 4: bootyard: removed cloud-init's instance data | bootyard: cannot remove /etc/llmos/config.yaml (from 10.20.0.31)"; !strings.Contains(n.StateReason, want) {
		t.Fatalf("failed with %q, want it to say %q", n.StateReason, want)
	}
	if _, err := cs.CoreV1().Nodes().Get(ctx, "gpu-3", metav1.GetOptions{}); err != nil {
		t.Fatalf("after a failed uninstall the Node must stay: %v", err)
	}

	// The operator fixes the host and retries: the old failure must not decide again.
	// The pod of the first attempt is still "Running" and is adopted.
	retryNode(t, st, "gpu-3")
	eventually(t, "the retry clears the old failure report", func() bool { return nodeState(t, st, "gpu-3").UninstallReport == nil })
	if got := nodeState(t, st, "gpu-3").State; got != node.StateDeleting {
		t.Fatalf("after the retry the node is %s, want it deleting until the host reports", got)
	}
	hostReports(t, st, "gpu-3", 0, "bootyard: uninstall finished: this machine has no join data left")
	if n := deletionEnds(t, st, "gpu-3", node.StateDeleted); n.UninstallReport != nil {
		t.Fatalf("report %+v kept after the deletion ended", n.UninstallReport)
	}
	wantPrefixes(t, clusterEvents(t, st, "gpu-3"), []string{
		"removing from the cluster: quorum check, cordon, drain, uninstall, delete Node",
		"quorum check: done before this run",
		"cordon: done before this run",
		"drain: done before this run",
		"uninstall: the host reported exit status 0: llmos-uninstall.sh ran and the join data is removed (pod " + podName + ")",
		"delete Node: Node gpu-3 deleted",
		"→ deleted:",
	})
	if p, err := cs.CoreV1().Pods(cfg.withDefaults().HelperNamespace).Get(ctx, podName, metav1.GetOptions{}); err == nil && p.Status.Phase != corev1.PodRunning {
		t.Errorf("pod phase %s: the test's pod was meant to stay Running", p.Status.Phase)
	}
}

// A Bootyard restarted after the host reported success (but before it recorded the step)
// takes the report: no new pod, straight on to deleting the Node.
func TestDeletion_ASuccessReportFromBeforeARestartCompletesTheStep(t *testing.T) {
	st := openStore(t)
	importNode(t, st, "gpu-4", node.RoleWorker, "52:54:00:00:00:14", node.StateActive)
	uninstallingAfter(t, st, "gpu-4", "quorum check", "cordon", "drain")
	hostReports(t, st, "gpu-4", 0, "bootyard: uninstall finished")
	cs := fakeCluster(kubeNode("gpu-4", false))
	var helpers atomic.Int32
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		helpers.Add(1)
		return true, nil, errors.New("no pod may be created: the host already reported")
	})
	startController(t, cs, st, testConfig(nil))
	deletionEnds(t, st, "gpu-4", node.StateDeleted)
	wantPrefixes(t, clusterEvents(t, st, "gpu-4"), []string{
		"removing from the cluster",
		"quorum check: done before this run",
		"cordon: done before this run",
		"drain: done before this run",
		"uninstall: the host reported exit status 0 before this run: bootyard: uninstall finished (from 10.20.0.31)",
		"delete Node: Node gpu-4 deleted",
		"→ deleted:",
	})
	if helpers.Load() != 0 {
		t.Errorf("%d helper pods created after the host's report", helpers.Load())
	}
}

// A host that reports after Bootyard stopped waiting (a slow uninstall) is not lost: the
// report waits on the failed node, and the operator's retry goes on from it.
func TestDeletion_ALateReportLetsTheRetryGoOn(t *testing.T) {
	st := openStore(t)
	importNode(t, st, "gpu-5", node.RoleWorker, "52:54:00:00:00:15", node.StateActive)
	cs := fakeCluster(kubeNode("gpu-5", true))
	setHelperStatus(cs, corev1.PodRunning, 0, "")
	c := startController(t, cs, st, testConfig(nil))

	deleteThroughAPI(t, st, c, "gpu-5", node.DeleteUninstall, false)
	eventually(t, "the wait for the uninstall times out", func() bool { return nodeState(t, st, "gpu-5").State == node.StateFailed })
	if n := nodeState(t, st, "gpu-5"); !strings.Contains(n.StateReason, "no report from the host") {
		t.Fatalf("failed with %q, want the timeout", n.StateReason)
	}
	hostReports(t, st, "gpu-5", 0, "bootyard: uninstall finished")
	retryNode(t, st, "gpu-5")
	deletionEnds(t, st, "gpu-5", node.StateDeleted)
	wantPrefixes(t, clusterEvents(t, st, "gpu-5"), []string{
		"removing from the cluster",
		"quorum check: done before this run",
		"cordon: done before this run",
		"drain: done before this run",
		"uninstall: the host reported exit status 0 before this run",
		"delete Node: Node gpu-5 deleted",
		"→ deleted:",
	})
}

// deletionEnds waits until name's deletion run ends and checks where it ended.
func deletionEnds(t *testing.T, st *store.Store, name string, want node.State) node.Node {
	t.Helper()
	eventually(t, name+" leaves deleting", func() bool { return nodeState(t, st, name).State != node.StateDeleting })
	n := nodeState(t, st, name)
	if n.State != want {
		t.Fatalf("state %s (%s), want %s", n.State, n.StateReason, want)
	}
	return n
}

// uninstallingAfter puts name where a controller before a restart left it: deleting in
// uninstall mode, with steps recorded as done.
func uninstallingAfter(t *testing.T, st *store.Store, name string, steps ...string) {
	t.Helper()
	if _, err := st.UpdateNode(context.Background(), name, func(n *node.Node) ([]node.Event, error) {
		n.DeleteMode = node.DeleteUninstall
		ev, err := n.Transition(node.StateDeleting, "deletion requested", "api", time.Now().UTC())
		for _, s := range steps {
			n.RecordDeletionStep(s)
		}
		return []node.Event{ev}, err
	}); err != nil {
		t.Fatal(err)
	}
}

// runHostScriptToLog runs the host script as the pod's transient unit does: its output
// goes to the file BOOTYARD_UNINSTALL_LOG names, whose end the report carries. It returns
// the exit status and that log.
func runHostScriptToLog(t *testing.T, root string, env ...string) (int, string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", uninstallEnv(nil)+uninstallHostScript)
	cmd.Env = append(append(os.Environ(), "ROOT="+root, "DISKS=/dev/null", "BOOTYARD_UNINSTALL_LOG="+logPath), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	_ = cmd.Run()
	out, _ := os.ReadFile(logPath)
	if cmd.ProcessState == nil {
		t.Fatalf("the host script did not run\n%s", out)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}
