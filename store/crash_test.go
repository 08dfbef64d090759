//go:build unix

package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

// crashChildEnv carries the database path to the child process; the child runs only
// when it is set.
const crashChildEnv = "BOOTYARD_STORE_CRASH_CHILD_DB"

// crashImports is how many acknowledged imports the parent waits for before the kill.
const crashImports = 300

// crashSpec is the i-th node the child imports: every other one has a second MAC.
func crashSpec(i int) node.Node {
	spec := workerSpec(fmt.Sprintf("crash-%05d", i), coreMAC(i))
	if i%2 == 0 {
		spec.MACs = append(spec.MACs, coreMAC(0x400000+i))
	}
	return spec
}

// crashExtraMAC is the MAC the child's update adds to every third node.
func crashExtraMAC(i int) node.MAC { return coreMAC(0x800000 + i) }

// TestHelperCrashChild is not a test: it is the child process of
// TestStore_AcknowledgedWritesSurviveSIGKILL, which re-executes the test binary with
// crashChildEnv set. It imports (and every third time updates) nodes until it is killed,
// writing one "ack" line to stdout after each call returns. os.Stdout is unbuffered, so
// each line leaves the process as soon as it is written.
func TestHelperCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		return
	}
	s, err := Open(path, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	// Bounded, so an orphaned child cannot run forever; the parent kills it long before.
	for i := 0; i < 100*crashImports; i++ {
		spec := crashSpec(i)
		if _, err := s.ImportNode(ctx, spec, "crash"); err != nil {
			fmt.Fprintln(os.Stderr, "child: import:", err)
			os.Exit(2)
		}
		if _, err := fmt.Fprintf(os.Stdout, "ack import %d\n", i); err != nil {
			os.Exit(3) // the parent is gone
		}
		if i%3 != 0 {
			continue
		}
		if _, err := s.UpdateNode(ctx, spec.Name, func(n *node.Node) ([]node.Event, error) {
			n.MACs = append(n.MACs, crashExtraMAC(i))
			ev, err := n.Transition(node.StateProvisioning, "crash test", "crash", time.Now().UTC())
			return []node.Event{ev}, err
		}); err != nil {
			fmt.Fprintln(os.Stderr, "child: update:", err)
			os.Exit(2)
		}
		if _, err := fmt.Fprintf(os.Stdout, "ack update %d\n", i); err != nil {
			os.Exit(3)
		}
	}
	os.Exit(0)
}

func TestStore_AcknowledgedWritesSurviveSIGKILL(t *testing.T) {
	path := tempStorePath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A child that stalls is killed too, so the test ends either way; the check below
	// then fails for want of acknowledgements.
	watchdog := time.AfterFunc(2*time.Minute, func() { cmd.Process.Signal(syscall.SIGKILL) })
	defer watchdog.Stop()

	imported := map[int]bool{}
	updated := map[int]bool{}
	killed := false
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		var i int
		line := lines.Text()
		switch {
		case strings.HasPrefix(line, "ack import "):
			fmt.Sscanf(line, "ack import %d", &i)
			imported[i] = true
		case strings.HasPrefix(line, "ack update "):
			fmt.Sscanf(line, "ack update %d", &i)
			updated[i] = true
		default:
			continue // the testing package's own output
		}
		if !killed && len(imported) >= crashImports {
			// Killed in the middle of whatever it is doing: lines already written are
			// still read below, and each of them was acknowledged.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill child %d: %v", cmd.Process.Pid, err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !exit.Sys().(syscall.WaitStatus).Signaled() || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL; stderr:\n%s", err, stderr.String())
	}
	if len(imported) < crashImports {
		t.Fatalf("child acknowledged %d imports before it died, want %d; stderr:\n%s", len(imported), crashImports, stderr.String())
	}
	t.Logf("child killed after %d acknowledged imports and %d updates", len(imported), len(updated))

	ctx := context.Background()
	s := openTestStore(t, path)
	for i := range imported {
		spec := crashSpec(i)
		n, err := s.GetNode(ctx, spec.Name)
		if err != nil {
			t.Errorf("acknowledged import %s is lost: %v", spec.Name, err)
			continue
		}
		for _, m := range spec.MACs {
			if got, err := s.NodeByMAC(ctx, m); err != nil || got.Name != spec.Name {
				t.Errorf("MAC %s of %s answers %q, %v", m, spec.Name, got.Name, err)
			}
		}
		if updated[i] && (n.State != node.StateProvisioning || !n.HasMAC(crashExtraMAC(i))) {
			t.Errorf("acknowledged update of %s is lost: %s %v", spec.Name, n.State, n.MACs)
		}
	}
	// The store still takes writes after the crash.
	if _, err := s.ImportNode(ctx, workerSpec("after-crash", coreMAC(0xfffff0)), "test"); err != nil {
		t.Fatalf("import after the crash: %v", err)
	}
	closeAndCheck(t, s)
}
