package cluster

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// leaderHelperEnv carries a helper replica's settings: kubeconfig, identity and
// heartbeat file, separated by "|".
const leaderHelperEnv = "BOOTYARD_LEADER_HELPER"

// Short leases keep the failover test short; the ratios are the defaults'.
const (
	testLeaseDuration = 4 * time.Second
	testRenewDeadline = 3 * time.Second
	testRetryPeriod   = 500 * time.Millisecond
)

// TestLeaderElectionHelperProcess is not a test of its own: it is the replica the
// failover tests start as a separate process, so that killing it with SIGKILL is a real
// death that releases nothing. Without leaderHelperEnv it does nothing.
func TestLeaderElectionHelperProcess(t *testing.T) {
	spec := os.Getenv(leaderHelperEnv)
	if spec == "" {
		return
	}
	parts := strings.Split(spec, "|")
	kubeconfigPath, identity, heartbeats := parts[0], parts[1], parts[2]
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	restCfg, err := RESTConfig(kubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewClient(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewElector(LeaderConfig{Namespace: DefaultHelperNamespace, Identity: identity, LeaseDuration: testLeaseDuration,
		RenewDeadline: testRenewDeadline, RetryPeriod: testRetryPeriod, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}, client)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(heartbeats, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	term := 0
	// The leader-only work: a heartbeat line every 50 ms while the term lasts. Each
	// line is one write(2), so a SIGKILL loses none that was written.
	err = e.Run(ctx, func(ctx context.Context) {
		term++
		for ctx.Err() == nil {
			fmt.Fprintf(f, "%d %d\n", term, time.Now().UnixNano())
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// replica is a helper process competing for the Lease.
type replica struct {
	id, heartbeats, logPath string
	cmd                     *exec.Cmd
	exited                  chan struct{}
}

func startReplica(t *testing.T, api *kubeAPI, dir, id string) *replica {
	t.Helper()
	r := &replica{id: id, heartbeats: filepath.Join(dir, id+".beats"), logPath: filepath.Join(dir, id+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(os.Args[0], "-test.run=^TestLeaderElectionHelperProcess$")
	r.cmd.Env = append(os.Environ(), leaderHelperEnv+"="+strings.Join([]string{api.bootyardKubeconfig, id, r.heartbeats}, "|"))
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); logFile.Close(); close(r.exited) }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill() // by the PID started here
		<-r.exited
		if t.Failed() {
			b, _ := os.ReadFile(r.logPath)
			t.Logf("%s log (end):\n%s", id, b[max(0, len(b)-4096):])
		}
	})
	return r
}

// beat is one heartbeat of the leader-only work.
type beat struct {
	term int
	at   time.Time
}

func (r *replica) beats(t *testing.T) []beat {
	t.Helper()
	f, err := os.Open(r.heartbeats)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []beat
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		term, ns, ok := strings.Cut(sc.Text(), " ")
		tn, err1 := strconv.Atoi(term)
		n, err2 := strconv.ParseInt(ns, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			continue // a line cut short by SIGKILL
		}
		out = append(out, beat{tn, time.Unix(0, n)})
	}
	return out
}

func (r *replica) logSays(t *testing.T, s string) bool {
	t.Helper()
	b, _ := os.ReadFile(r.logPath)
	return strings.Contains(string(b), s)
}

func (api *kubeAPI) leaseHolder(t *testing.T) string {
	t.Helper()
	l, err := api.admin.CoordinationV1().Leases(DefaultHelperNamespace).Get(context.Background(), DefaultLeaseName, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// checkHandover checks that the old leader's work never ran once the new leader's had
// started, and that the new leader ran nothing while the old one led.
func checkHandover(t *testing.T, old, next []beat) {
	t.Helper()
	if len(old) == 0 || len(next) == 0 {
		t.Fatalf("handover without work on both sides: %d and %d heartbeats", len(old), len(next))
	}
	if last, first := old[len(old)-1].at, next[0].at; !last.Before(first) {
		t.Fatalf("leader-only work overlapped: the old leader beat at %s, after the new leader's first beat at %s", last.Format(time.StampMicro), first.Format(time.StampMicro))
	}
}

func TestLeaderElection_AKilledLeaderIsReplacedAndTheWorkNeverRunsTwice(t *testing.T) {
	api := startKubeAPI(t)
	dir := t.TempDir()

	a := startReplica(t, api, dir, "replica-a")
	eventually(t, "replica-a leads (RBAC grants the Lease)", func() bool { return len(a.beats(t)) > 0 })
	b := startReplica(t, api, dir, "replica-b")
	eventually(t, "replica-b sees replica-a as the leader", func() bool { return b.logSays(t, "leader=replica-a") })
	if got := b.beats(t); len(got) != 0 {
		t.Fatalf("replica-b ran leader-only work while replica-a led: %d heartbeats", len(got))
	}

	// SIGKILL: nothing is released; replica-b must wait the lease out, then take over.
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	killed := time.Now()
	eventually(t, "replica-b takes over", func() bool { return len(b.beats(t)) > 0 })
	first := b.beats(t)[0].at
	t.Logf("takeover after SIGKILL: %v (lease duration %v)", first.Sub(killed).Round(time.Millisecond), testLeaseDuration)
	checkHandover(t, a.beats(t), b.beats(t))
	if h := api.leaseHolder(t); h != "replica-b" {
		t.Fatalf("Lease held by %q after the takeover, want replica-b", h)
	}

	// SIGTERM: the leader stops its work, then releases the Lease, so the next replica
	// need not wait the lease out.
	c := startReplica(t, api, dir, "replica-c")
	eventually(t, "replica-c sees replica-b as the leader", func() bool { return c.logSays(t, "leader=replica-b") })
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-b.exited
	stopped := time.Now()
	eventually(t, "replica-c takes over", func() bool { return len(c.beats(t)) > 0 })
	t.Logf("takeover after SIGTERM (Lease released): %v", c.beats(t)[0].at.Sub(stopped).Round(time.Millisecond))
	checkHandover(t, b.beats(t), c.beats(t))
	if !b.logSays(t, "leader-only work stopped") {
		t.Fatal("replica-b exited without stopping its work first")
	}
}
