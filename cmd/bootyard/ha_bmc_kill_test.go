package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/netns"
	"github.com/bootyard/bootyard/node"
)

// TestHA_AKilledLeadersBMCPollingMovesToTheNextLeader is the BMC poller's failover as a
// crash, not a shutdown: three `serve` processes with --leader-elect on a real API
// server, a Redfish BMC on the machines' bridge that counts power reads by source
// address (each replica has its own). Only the Lease holder polls; after it is killed
// with SIGKILL (no Lease released: the others wait out its lease duration), the new
// leader, and only it, polls, and records what it sees for every replica to show, with
// one event per change.
func TestHA_AKilledLeadersBMCPollingMovesToTheNextLeader(t *testing.T) {
	netns.Require(t)
	lab := startHALab(t, "--bmc-poll-interval", "1s")
	fake := &countingRedfish{power: "On", reads: map[string]int{}}
	var ln net.Listener
	if err := lab.cli.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", "10.73.0.100:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: fake}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	leader, err := lab.leader(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Registered through the leader: an import with a BMC powers the machine on to
	// network-boot it, from the replica that imported it (an action, not a poll).
	body := fmt.Sprintf(`{"macs":["52:54:00:73:00:01"],"role":"worker","name":"m1","bmc":"redfish+http://%s","bmcUser":"admin","bmcPassword":"secret"}`, ln.Addr())
	if _, err := lab.post(t.Context(), leader, "/api/v1/nodes", []byte(body)); err != nil {
		t.Fatalf("register m1 with its BMC: %v", err)
	}
	src := func(r *haReplica) string { host, _, _ := strings.Cut(r.addr, ":"); return host }
	othersRead := func(not ...*haReplica) map[string]int {
		reads := map[string]int{}
		for _, r := range lab.replicas {
			if !slices.Contains(not, r) && fake.readsFrom(src(r)) > 0 {
				reads[r.id] = fake.readsFrom(src(r))
			}
		}
		return reads
	}

	waitFor(t, time.Minute, "the leader polls the BMC three times", func() bool { return fake.readsFrom(src(leader)) >= 3 })
	if reads := othersRead(leader); len(reads) > 0 {
		t.Fatalf("followers polled the BMC (%v) beside the leader %s", reads, leader.id)
	}
	for _, r := range lab.replicas {
		waitFor(t, time.Minute, r.id+" shows the leader's reading: on", func() bool { return lab.power(t, r, "m1").State == "on" })
	}

	t.Logf("killing the leader %s (pid %d) with SIGKILL", leader.id, leader.pid())
	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-leader.exited
	next, err := lab.leader(leader)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the new leader "+next.id+" polls the BMC", func() bool { return fake.readsFrom(src(next)) >= 2 })
	fake.set("Off", false)
	var survivors []*haReplica
	for _, r := range lab.replicas {
		if r != leader {
			survivors = append(survivors, r)
			waitFor(t, time.Minute, r.id+" shows the new leader's reading: off", func() bool { return lab.power(t, r, "m1").State == "off" })
		}
	}
	if reads := othersRead(leader, next); len(reads) > 0 {
		t.Fatalf("a replica that never held the Lease polled the BMC: %v", reads)
	}
	// The power-state gauge is the leader's; the other replica has no series, not a 0.
	for _, r := range survivors {
		code, metrics := lab.get(t, r, "/metrics")
		has := strings.Contains(string(metrics), `bootyard_bmc_power_state_nodes{state="off"} 1`)
		if code != http.StatusOK || has != (r == next) || (r != next && strings.Contains(string(metrics), "bootyard_bmc_power_state_nodes{")) {
			t.Errorf("%s (leader: %v) /metrics answered %d with power-state series:\n%s", r.id, r == next, code, grepLines(string(metrics), "bootyard_bmc_power_state_nodes"))
		}
	}

	// One event for the change, written by the new leader alone.
	var events []node.Event
	lab.getJSON(t, survivors[0], "/api/v1/nodes/m1/events", &events)
	offs := 0
	for _, e := range events {
		if e.Source == "bmc-poller" && e.Reason == "BMC reports power off (was on)" {
			offs++
		}
	}
	if offs != 1 {
		t.Fatalf("%d events of the change to off, want 1: %+v", offs, events)
	}
}

// power is the recorded power reading of a node as replica r's API shows it (zero when
// there is none yet, or the node is not in its cache yet).
func (lab *haLab) power(t *testing.T, r *haReplica, name string) node.PowerReading {
	t.Helper()
	var n node.Node
	if !lab.getJSON(t, r, "/api/v1/nodes/"+name, &n) || n.Power == nil {
		return node.PowerReading{}
	}
	return *n.Power
}

// getJSON reads path from replica r's API into v; false when it answers other than 200.
func (lab *haLab) getJSON(t *testing.T, r *haReplica, path string, v any) bool {
	t.Helper()
	code, body := lab.get(t, r, path)
	if code != http.StatusOK {
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: GET %s: %v", r.id, path, err)
	}
	return true
}

// get is GET path on replica r, as the admin.
func (lab *haLab) get(t *testing.T, r *haReplica, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+r.addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+haAdminTok)
	resp, err := lab.http.Do(req)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", r.id, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", r.id, path, err)
	}
	return resp.StatusCode, body
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
