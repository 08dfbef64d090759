package bmc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// memInventory is a poller inventory in memory: nodes, secrets and the events written.
type memInventory struct {
	mu      sync.Mutex
	nodes   []node.Node
	secrets map[string]string
	events  []node.Event
	writes  int // node updates (UpdateNode)
}

func (m *memInventory) ListNodes(context.Context) ([]node.Node, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]node.Node(nil), m.nodes...), nil
}

func (m *memInventory) GetNode(_ context.Context, ref string) (node.Node, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nodes {
		if n.Name == ref {
			return n, nil
		}
	}
	return node.Node{}, node.ErrNotFound
}

// node is the named node as stored (zero when there is none).
func (m *memInventory) node(name string) node.Node {
	n, _ := m.GetNode(context.Background(), name)
	return n
}

func (m *memInventory) NodeSecret(_ context.Context, name, _ string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.secrets[name]; ok {
		return []byte(v), nil
	}
	return nil, node.ErrNotFound
}

func (m *memInventory) AppendEvents(_ context.Context, evs ...node.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, evs...)
	return nil
}

func (m *memInventory) UpdateNode(_ context.Context, name string, fn store.UpdateFunc) (node.Node, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.nodes {
		if m.nodes[i].Name != name {
			continue
		}
		n := m.nodes[i]
		evs, err := fn(&n)
		if err != nil {
			return node.Node{}, err
		}
		m.nodes[i], m.events = n, append(m.events, evs...)
		m.writes++
		return n, nil
	}
	return node.Node{}, node.ErrNotFound
}

func (m *memInventory) reasons(name string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, e := range m.events {
		if e.Node == name {
			out = append(out, string(e.Type)+": "+e.Reason)
		}
	}
	return out
}

// scriptedBMC answers PowerStatus from a script: an error while failing is set.
type scriptedBMC struct {
	mu      sync.Mutex
	failing bool
	asked   int
}

func (s *scriptedBMC) PowerStatus(context.Context) (PowerState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	if s.failing {
		return PowerUnknown, errors.New("no answer")
	}
	return PowerOn, nil
}
func (s *scriptedBMC) PowerOn(context.Context) error                 { return nil }
func (s *scriptedBMC) PowerOff(context.Context) error                { return nil }
func (s *scriptedBMC) PowerCycle(context.Context) error              { return nil }
func (s *scriptedBMC) PowerReset(context.Context) error              { return nil }
func (s *scriptedBMC) SetBootOnce(context.Context, BootDevice) error { return nil }

func (s *scriptedBMC) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked
}

func bmcNode(name, url string) node.Node {
	b, err := node.ParseBMCURL(url)
	if err != nil {
		panic(err)
	}
	b.User = "admin"
	return node.Node{Name: name, BMC: &b}
}

func TestPoller_FailingBMCBacksOffExponentiallyAndRecovers(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	bad, good := &scriptedBMC{failing: true}, &scriptedBMC{}
	inv := &memInventory{nodes: []node.Node{bmcNode("bad", "ipmi://10.0.0.1"), bmcNode("good", "ipmi://10.0.0.2"), {Name: "nobmc"}}}
	p := NewPoller(PollerConfig{Interval: time.Minute, MaxBackoff: 10 * time.Minute, Env: Env{Now: clock,
		NewController: func(t Target, _ DialConfig) (Controller, error) {
			if t.BMC.Address == "10.0.0.1" {
				return bad, nil
			}
			return good, nil
		}}}, inv)
	ctx := context.Background()

	// Minute by minute for 40 minutes: the good BMC is asked every minute, the bad one
	// after 2, 4, 8 minutes and then every 10 (the cap).
	var badAt []int
	for minute := 0; minute <= 40; minute++ {
		now = time.Date(2026, 1, 1, 0, minute, 0, 0, time.UTC)
		before := bad.count()
		p.PollDue(ctx)
		if bad.count() > before {
			badAt = append(badAt, minute)
		}
	}
	if want := []int{0, 2, 6, 14, 24, 34}; !equalInts(badAt, want) {
		t.Fatalf("failing BMC asked at minutes %v, want %v", badAt, want)
	}
	if good.count() != 41 {
		t.Fatalf("healthy BMC asked %d times in 41 minutes, want 41", good.count())
	}
	o, _ := p.Observation(inv.node("bad"))
	if o.Failures != 6 || o.Power != PowerUnknown || o.Err == "" {
		t.Fatalf("bad observation %+v", o)
	}
	if _, ok := p.Observation(inv.node("nobmc")); ok {
		t.Fatal("a node without a BMC was polled")
	}
	// One warning when it stopped answering, not one per poll.
	if r := inv.reasons("bad"); len(r) != 1 || !strings.HasPrefix(r[0], "warning: BMC not answering: ") {
		t.Fatalf("events of the failing BMC: %q", r)
	}
	if got := testutil.ToFloat64(p.errors.WithLabelValues("ipmi")); got != 6 {
		t.Fatalf("error counter %v, want 6", got)
	}

	// It answers again: asked at its next due time, backoff reset, one event saying so.
	bad.mu.Lock()
	bad.failing = false
	bad.mu.Unlock()
	now = now.Add(10 * time.Minute)
	p.PollDue(ctx)
	if o, _ := p.Observation(inv.node("bad")); o.Failures != 0 || o.Power != PowerOn || !o.Next.Equal(now.Add(time.Minute)) {
		t.Fatalf("recovered observation %+v", o)
	}
	if r := inv.reasons("bad"); len(r) != 2 || r[1] != "power: BMC answering again: power on" {
		t.Fatalf("events after recovery: %q", r)
	}
	if err := testutil.CollectAndCompare(p, strings.NewReader(powerGauge(0, 2, 0)), "bootyard_bmc_power_state_nodes"); err != nil {
		t.Fatal(err)
	}

	// A node whose BMC moves starts afresh: the old address's failures are not its own.
	// The inventory is read again once an interval has passed.
	inv.mu.Lock()
	inv.nodes[0] = bmcNode("bad", "ipmi://10.0.0.3")
	inv.mu.Unlock()
	now = now.Add(time.Minute)
	p.PollDue(ctx)
	if o, _ := p.Observation(inv.node("bad")); o.Failures != 0 {
		t.Fatalf("moved BMC kept the old failures: %+v", o)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPoller_HangingBMCsNeverHoldTheFleet points the real IPMI and Redfish clients at
// endpoints that take the packets and never answer (a UDP socket that reads and drops, a
// TCP listener that accepts and stays silent), beside a healthy Redfish BMC, with one
// poll slot: every poll round still ends, the hanging ones are warnings with a timeout,
// and the healthy one is read every round.
func TestPoller_HangingBMCsNeverHoldTheFleet(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := udp.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	var held []net.Conn
	var heldMu sync.Mutex
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
		}
	}()
	defer func() {
		heldMu.Lock()
		defer heldMu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	svc := newRedfishService(t, true, "1")
	healthy := bmcNode("healthy", "redfish://"+strings.TrimPrefix(svc.srv.URL, "https://"))
	healthy.BMC.User, healthy.BMC.InsecureTLS = svc.user, true
	inv := &memInventory{
		nodes: []node.Node{bmcNode("hang-ipmi", "ipmi://"+udp.LocalAddr().String()),
			bmcNode("hang-redfish", "redfish://"+tcp.Addr().String()), healthy},
		secrets: map[string]string{"healthy": svc.pw},
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := NewPoller(PollerConfig{Interval: time.Minute, Concurrency: 1, Env: Env{Now: func() time.Time { return now },
		Dial: DialConfig{Timeout: 300 * time.Millisecond}}}, inv)
	for round := 0; round < 3; round++ {
		p.PollDue(context.Background()) // returns: that is the point
		now = now.Add(time.Minute)
		if o, ok := p.Observation(inv.node("healthy")); !ok || o.Err != "" || o.Power != PowerOff {
			t.Fatalf("round %d: healthy BMC %+v", round, o)
		}
	}
	for _, name := range []string{"hang-ipmi", "hang-redfish"} {
		o, _ := p.Observation(inv.node(name))
		if o.Err == "" || o.Failures == 0 {
			t.Fatalf("%s: %+v, want a failure", name, o)
		}
		if !strings.Contains(o.Err, "deadline") && !strings.Contains(o.Err, "timeout") && !strings.Contains(o.Err, "Timeout") {
			t.Fatalf("%s failed for another reason than its silence: %s", name, o.Err)
		}
	}
	// Both hanging BMCs were asked at minute 0 and, backing off, not at minute 1; asked
	// again at minute 2.
	if o, _ := p.Observation(inv.node("hang-ipmi")); o.Failures != 2 {
		t.Fatalf("hang-ipmi failures %d after 3 rounds (asked at 0 and 2), want 2", o.Failures)
	}
}

// switchBMC reports a power state the test sets, or fails while failing is set.
type switchBMC struct {
	scriptedBMC
	state PowerState
}

func (s *switchBMC) PowerStatus(ctx context.Context) (PowerState, error) {
	st, err := s.scriptedBMC.PowerStatus(ctx)
	if err != nil {
		return st, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, nil
}

// TestPoller_RecordWritesTheNodeOnlyWhenItsPowerChanges: with Record, a poll that sees
// what is recorded writes nothing; a change of state, the BMC going quiet and its return
// are one write each, an on/off change one event; a poller that never polled (another
// replica's) answers from the record, and a stopped one forgets what it saw.
func TestPoller_RecordWritesTheNodeOnlyWhenItsPowerChanges(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	start := now
	sw := &switchBMC{state: PowerOn}
	inv := &memInventory{nodes: []node.Node{bmcNode("m1", "ipmi://10.0.0.1")}}
	env := Env{Now: func() time.Time { return now }, NewController: func(Target, DialConfig) (Controller, error) { return sw, nil }}
	leader := NewPoller(PollerConfig{Interval: time.Minute, Record: true, Env: env}, inv)
	follower := NewPoller(PollerConfig{Interval: time.Minute, Record: true, Env: env}, inv)
	steps := []struct {
		state   PowerState
		failing bool
		writes  int // node writes so far
		want    node.PowerReading
	}{
		{PowerOn, false, 1, node.PowerReading{State: "on", Since: now}},
		{PowerOn, false, 1, node.PowerReading{State: "on", Since: now}},
		{PowerOff, false, 2, node.PowerReading{State: "off", Since: now.Add(20 * time.Minute)}},
		{PowerOff, false, 2, node.PowerReading{State: "off", Since: now.Add(20 * time.Minute)}},
		{PowerOff, true, 3, node.PowerReading{State: "off", Since: now.Add(20 * time.Minute), Error: "no answer"}},
		{PowerOff, true, 3, node.PowerReading{State: "off", Since: now.Add(20 * time.Minute), Error: "no answer"}},
		{PowerOn, false, 4, node.PowerReading{State: "on", Since: now.Add(60 * time.Minute)}},
	}
	for i, st := range steps {
		sw.mu.Lock()
		sw.state, sw.failing = st.state, st.failing
		sw.mu.Unlock()
		now = start.Add(time.Duration(i) * 10 * time.Minute) // past any backoff
		leader.PollDue(context.Background())
		n, _ := inv.GetNode(context.Background(), "m1")
		if inv.writes != st.writes || n.Power == nil || *n.Power != st.want {
			t.Fatalf("step %d: %d writes, record %+v; want %d, %+v", i, inv.writes, n.Power, st.writes, st.want)
		}
		o, ok := follower.Observation(inv.node("m1"))
		if !ok || !o.Recorded || string(o.Power) != st.want.State || o.Err != st.want.Error {
			t.Fatalf("step %d: the follower shows %+v, %v; want the record %+v", i, o, ok, st.want)
		}
		if lo, _ := leader.Observation(inv.node("m1")); lo.Recorded || !lo.Since.Equal(st.want.Since) {
			t.Fatalf("step %d: the leader shows %+v, want its own poll since %s", i, lo, st.want.Since)
		}
	}
	var power []string
	for _, r := range inv.reasons("m1") {
		if strings.HasPrefix(r, "power: BMC reports") {
			power = append(power, r)
		}
	}
	if want := []string{"power: BMC reports power off (was on)", "power: BMC reports power on (was off)"}; strings.Join(power, "|") != strings.Join(want, "|") {
		t.Fatalf("power-change events %q, want %q", power, want)
	}

	// The next leader's first poll agrees with the record: no write, and the state's
	// time is the record's, not the poll's.
	next := NewPoller(PollerConfig{Interval: time.Minute, Record: true, Env: env}, inv)
	now = now.Add(time.Minute)
	next.PollDue(context.Background())
	if o, _ := next.Observation(inv.node("m1")); inv.writes != 4 || o.Recorded || o.Power != PowerOn || !o.Since.Equal(start.Add(60*time.Minute)) {
		t.Fatalf("a new leader's first poll: %d writes, shows %+v; want 4 writes, on since %s", inv.writes, o, start.Add(60*time.Minute))
	}

	// A leader that stops (lost the Lease) serves the record, not what it last polled.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = leader.Run(ctx)
	if o, ok := leader.Observation(inv.node("m1")); !ok || !o.Recorded {
		t.Fatalf("a stopped poller shows %+v, %v; want the record", o, ok)
	}
}

// TestPoller_RecordReportsTheGaugeOnlyWhilePolling: with Record (replicas, the poller on
// the Lease holder only), a replica that does not poll has no power-state series rather
// than a false 0 beside the leader's counts; it has them from its first poll until it
// stops. Without Record the gauge is always there.
func TestPoller_RecordReportsTheGaugeOnlyWhilePolling(t *testing.T) {
	sw := &switchBMC{state: PowerOn}
	inv := &memInventory{nodes: []node.Node{bmcNode("m1", "ipmi://10.0.0.1")}}
	env := Env{NewController: func(Target, DialConfig) (Controller, error) { return sw, nil }}
	const gauge = "bootyard_bmc_power_state_nodes"
	series := func(p *Poller) int { return testutil.CollectAndCount(p, gauge) }

	follower := NewPoller(PollerConfig{Interval: time.Minute, Record: true, Env: env}, inv)
	if n := series(follower); n != 0 {
		t.Fatalf("a replica that does not poll reports %d power-state series, want none", n)
	}
	follower.PollDue(context.Background()) // it took the Lease
	if err := testutil.CollectAndCompare(follower, strings.NewReader(powerGauge(0, 1, 0)), gauge); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = follower.Run(ctx) // and lost it
	if n := series(follower); n != 0 {
		t.Fatalf("a poller that stopped reports %d power-state series, want none", n)
	}

	if n := series(NewPoller(PollerConfig{Env: env}, inv)); n != 3 {
		t.Fatalf("without Record a poller that has not polled yet reports %d series, want 3 zeros", n)
	}
}

// powerGauge is the exposition of bootyard_bmc_power_state_nodes with these counts.
func powerGauge(off, on, unknown int) string {
	return fmt.Sprintf(`# HELP bootyard_bmc_power_state_nodes Nodes with a BMC by the power state last polled (unknown: not answered yet, or the last poll failed).
# TYPE bootyard_bmc_power_state_nodes gauge
bootyard_bmc_power_state_nodes{state="off"} %d
bootyard_bmc_power_state_nodes{state="on"} %d
bootyard_bmc_power_state_nodes{state="unknown"} %d
`, off, on, unknown)
}
