package bmc

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// Observation is the poller's last word on one node's power.
type Observation struct {
	Power PowerState `json:"power"`
	// At is when the BMC last answered; zero when it never did.
	At time.Time `json:"at,omitzero"`
	// Err is why the last poll failed; empty when it succeeded.
	Err string `json:"error,omitempty"`
	// Failures counts polls failed in a row; the next poll waits Interval·2^Failures,
	// capped at MaxBackoff.
	Failures int       `json:"failures,omitempty"`
	Next     time.Time `json:"next"`
	// Recorded says the observation is the node record's (PollerConfig.Record): another
	// replica polled. At, Failures and Next are then unknown here.
	Recorded bool `json:"recorded,omitempty"`
	// Since is when Power was first seen: by this poller, or with Record since the
	// recorded state began (on any replica).
	Since   time.Time `json:"since,omitzero"`
	address string
	// record is the node's recorded reading as this poller last knew it (with Record).
	record *node.PowerReading
}

// polled reports whether this poller has asked the BMC since it started.
func (o *Observation) polled() bool { return !o.At.IsZero() || o.Failures > 0 }

// PollerInventory is what the poller reads, and writes with PollerConfig.Record.
type PollerInventory interface {
	ListNodes(ctx context.Context) ([]node.Node, error)
	NodeSecret(ctx context.Context, nodeName, key string) ([]byte, error)
	AppendEvents(ctx context.Context, events ...node.Event) error
	UpdateNode(ctx context.Context, name string, fn store.UpdateFunc) (node.Node, error)
}

// PollerConfig tunes the poller.
type PollerConfig struct {
	// Interval is how often a healthy BMC is asked; 0 means one minute.
	Interval time.Duration
	// MaxBackoff caps the wait after failures; 0 means 30 minutes.
	MaxBackoff time.Duration
	// Concurrency bounds the BMCs asked at once; 0 means 8. BMCs are slow (an IPMI
	// session is four round trips, a Redfish login a TLS handshake), so polls overlap;
	// bounded, because a fleet of dead BMCs must not become a fleet of goroutines.
	Concurrency int
	// Record keeps each node's power reading in its node record (node.Node.Power), written
	// only when it changes (state, or the BMC stopping or starting to answer), never per
	// poll; a change between on and off is also an event. Observation answers from the
	// record for a node this poller has not polled since it started. For several replicas
	// on one store, where only the leader runs the poller: the others show what it saw.
	Record bool
	Env
}

// Poller reads every BMC's power state in the background, each at its own pace: a BMC
// that fails is asked again after an exponentially growing wait, so dead BMCs cost little
// and never hold the others up (every call is bounded by the dial timeout).
type Poller struct {
	inv PollerInventory
	cfg PollerConfig
	log *slog.Logger

	mu  sync.Mutex
	obs map[string]*Observation // by node name

	// withBMC is the inventory's nodes that have a BMC, as last read at loadedAt: the
	// inventory is read once per interval, not at every tick (at 100,000 nodes a full
	// read is the poller's biggest cost).
	withBMC  []node.Node
	loadedAt time.Time

	// polling is set from the first PollDue until Run returns: with Record, a poller that
	// is not polling (another replica holds the Lease) has no counts of its own to report.
	polling bool

	errors *prometheus.CounterVec
	states *prometheus.Desc
}

// NewPoller builds the poller; Run starts it.
func NewPoller(cfg PollerConfig, inv PollerInventory) *Poller {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Minute
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	cfg.Env = cfg.Env.withDefaults()
	return &Poller{inv: inv, cfg: cfg, log: cfg.Logger, obs: map[string]*Observation{},
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootyard_bmc_poll_errors_total",
			Help: "BMC power-state polls that failed (no answer in time, refused login, protocol error), by protocol.",
		}, []string{"protocol"}),
		states: prometheus.NewDesc("bootyard_bmc_power_state_nodes",
			"Nodes with a BMC by the power state last polled (unknown: not answered yet, or the last poll failed).", []string{"state"}, nil),
	}
}

// Describe and Collect make the poller a prometheus.Collector.
func (p *Poller) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.states
	p.errors.Describe(ch)
}

// Collect reports the power-state gauge only while this poller polls, or always without
// Record: on a replica that does not hold the Lease the series are absent, not zero, so a
// query or an alert over every replica sees the leader's counts and no replica's false 0.
func (p *Poller) Collect(ch chan<- prometheus.Metric) {
	p.errors.Collect(ch)
	counts := map[PowerState]int{}
	p.mu.Lock()
	if p.cfg.Record && !p.polling {
		p.mu.Unlock()
		return
	}
	for _, o := range p.obs {
		st := o.Power
		if o.Err != "" {
			st = PowerUnknown
		}
		counts[st]++
	}
	p.mu.Unlock()
	for _, st := range PowerStates {
		ch <- prometheus.MustNewConstMetric(p.states, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}

// Observation is the last poll of n's BMC or, with Record, when this poller has not
// polled it (it runs on another replica), n's recorded reading. It takes the node the
// caller has read (a page's row, as its store has it) rather than reading it again: the
// nodes page asks for every row it shows, at every tick of its live stream.
func (p *Poller) Observation(n node.Node) (Observation, bool) {
	p.mu.Lock()
	o, ok := p.obs[n.Name]
	var out Observation
	if ok {
		out = *o
	}
	p.mu.Unlock()
	if !p.cfg.Record || (ok && out.polled()) {
		return out, ok
	}
	if n.BMC == nil || n.Power == nil {
		return Observation{}, false
	}
	return Observation{Power: PowerState(n.Power.State), Err: n.Power.Error, Since: n.Power.Since, Recorded: true}, true
}

// Run polls until ctx ends, looking for due BMCs every tick (a tenth of the interval, at
// least a second), so a changed inventory and expired backoffs are picked up promptly.
//
// When Run returns, the poller forgets what it saw: with leader election a replica that
// lost the Lease must not serve its last observations for ever (Observation falls back on
// the record the new leader keeps), and one that wins it again starts afresh.
func (p *Poller) Run(ctx context.Context) error {
	tick := max(p.cfg.Interval/10, time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	defer p.forget()
	for {
		p.PollDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (p *Poller) forget() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.obs = map[string]*Observation{}
	p.withBMC, p.loadedAt = nil, time.Time{}
	p.polling = false
}

// PollDue polls, at most Concurrency at once, every BMC whose next poll is due, and
// returns when they have all answered or timed out. One goroutine calls it (Run).
func (p *Poller) PollDue(ctx context.Context) {
	p.mu.Lock()
	p.polling = true
	p.mu.Unlock()
	now := p.cfg.Now()
	nodes, err := p.nodes(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("bmc poller: list nodes", slog.Any("err", err))
		}
		return
	}
	live := make(map[string]bool, len(nodes))
	var due []node.Node
	p.mu.Lock()
	for _, n := range nodes {
		if n.BMC == nil {
			continue
		}
		live[n.Name] = true
		o, ok := p.obs[n.Name]
		if !ok || o.address != n.BMC.URL() {
			// New, or a BMC that moved: its history of failures is not this one's.
			o = &Observation{Power: PowerUnknown, address: n.BMC.URL(), record: n.Power}
			p.obs[n.Name] = o
		}
		if !o.Next.After(now) {
			due = append(due, n)
		}
	}
	for name := range p.obs {
		if !live[name] {
			delete(p.obs, name)
		}
	}
	p.mu.Unlock()

	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, n := range due {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func(n node.Node) {
			defer func() { <-sem; wg.Done() }()
			p.poll(ctx, n)
		}(n)
	}
	wg.Wait()
}

// nodes is the inventory's nodes with a BMC, read again once an interval has passed.
func (p *Poller) nodes(ctx context.Context, now time.Time) ([]node.Node, error) {
	if p.withBMC != nil && now.Sub(p.loadedAt) < p.cfg.Interval {
		return p.withBMC, nil
	}
	all, err := p.inv.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	withBMC := make([]node.Node, 0)
	for _, n := range all {
		if n.BMC != nil {
			withBMC = append(withBMC, n)
		}
	}
	p.withBMC, p.loadedAt = withBMC, now
	return withBMC, nil
}

func (p *Poller) poll(ctx context.Context, n node.Node) {
	st, err := p.ask(ctx, n)
	if ctx.Err() != nil {
		return // shutting down: not the BMC's fault
	}
	now := p.cfg.Now()
	p.mu.Lock()
	o, ok := p.obs[n.Name]
	if !ok {
		p.mu.Unlock()
		return
	}
	wasFailing := o.Failures > 0
	if err == nil {
		if st != o.Power {
			o.Since = now
		}
		o.Power, o.At, o.Err, o.Failures = st, now, "", 0
		o.Next = now.Add(p.cfg.Interval)
	} else {
		o.Err = err.Error()
		o.Failures++
		o.Next = now.Add(p.backoff(o.Failures))
	}
	failures, next := o.Failures, o.Next
	var want *node.PowerReading
	if p.cfg.Record {
		want = reading(o.record, st, err, now)
		if want == nil && o.record != nil {
			o.Since = o.record.Since // a new leader's first poll: the state is older than its term
		}
	}
	p.mu.Unlock()
	if want != nil {
		p.record(ctx, n.Name, *want)
	}

	switch {
	case err != nil:
		p.errors.WithLabelValues(string(n.BMC.Protocol)).Inc()
		p.log.Debug("bmc poll failed", slog.String("node", n.Name), slog.Int("failures", failures), slog.Any("err", err))
		if failures == 1 {
			// One warning when the BMC stops answering, not one per poll.
			p.event(ctx, n.Name, node.EventWarning, "BMC not answering: "+err.Error()+"; asking again at "+next.Format(time.RFC3339))
		}
	case wasFailing:
		p.event(ctx, n.Name, node.EventPower, "BMC answering again: power "+string(st))
	}
}

// ask reads the power state with the dial timeout, whatever the BMC does.
func (p *Poller) ask(ctx context.Context, n node.Node) (PowerState, error) {
	pw, err := p.inv.NodeSecret(ctx, n.Name, node.BMCPasswordKey)
	if err != nil && !errors.Is(err, node.ErrNotFound) {
		return PowerUnknown, err
	}
	secret := node.Secret(pw)
	c, err := p.cfg.NewController(Target{BMC: *n.BMC, Password: secret}, p.cfg.Dial)
	if err != nil {
		return PowerUnknown, err
	}
	ctx, cancel := bounded(ctx, p.cfg.Dial.Timeout)
	defer cancel()
	st, err := c.PowerStatus(ctx)
	if err != nil {
		return PowerUnknown, errors.New(scrub(err.Error(), secret))
	}
	return st, nil
}

// backoff is the wait after failures polls failed in a row.
func (p *Poller) backoff(failures int) time.Duration {
	d := p.cfg.Interval
	for i := 0; i < failures && d < p.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.cfg.MaxBackoff)
}

func (p *Poller) event(ctx context.Context, name string, t node.EventType, reason string) {
	if err := p.inv.AppendEvents(ctx, node.NewEvent(name, t, reason, "bmc-poller", p.cfg.Now())); err != nil && ctx.Err() == nil {
		p.log.Warn("bmc poller: record event", slog.String("node", name), slog.Any("err", err))
	}
}

// reading is the power reading to record after a poll, nil when the recorded one (prev)
// still holds: a changed state, the BMC's first failed poll, or its first answer after
// failing. Repeated failures keep the first error: a record that changed with every
// failure's text would be a write per poll of a dead BMC.
func reading(prev *node.PowerReading, st PowerState, err error, now time.Time) *node.PowerReading {
	switch {
	case err == nil && (prev == nil || prev.State != string(st)):
		return &node.PowerReading{State: string(st), Since: now}
	case err == nil && prev.Error != "":
		return &node.PowerReading{State: prev.State, Since: prev.Since}
	case err != nil && prev == nil:
		return &node.PowerReading{State: string(PowerUnknown), Since: now, Error: err.Error()}
	case err != nil && prev.Error == "":
		return &node.PowerReading{State: prev.State, Since: prev.Since, Error: err.Error()}
	}
	return nil
}

// errReadingUnchanged aborts a record whose fresh node already holds the reading.
var errReadingUnchanged = errors.New("power reading unchanged")

// record writes want into the node's record, with an event when the machine went from on
// to off or back, unless the record already says so (a previous leader wrote it).
func (p *Poller) record(ctx context.Context, name string, want node.PowerReading) {
	var stored node.PowerReading
	_, err := p.inv.UpdateNode(ctx, name, func(n *node.Node) ([]node.Event, error) {
		prev := n.Power
		if prev != nil && prev.State == want.State && prev.Error == want.Error {
			stored = *prev
			return nil, errReadingUnchanged
		}
		if prev != nil && prev.State == want.State {
			want.Since = prev.Since // the machine was in this state before the BMC went quiet
		}
		n.Power, stored = &want, want
		if prev == nil || prev.State == want.State || want.State == string(PowerUnknown) || prev.State == string(PowerUnknown) {
			return nil, nil
		}
		return []node.Event{node.NewEvent(name, node.EventPower, "BMC reports power "+want.State+" (was "+prev.State+")", "bmc-poller", want.Since)}, nil
	})
	if err != nil && !errors.Is(err, errReadingUnchanged) {
		if ctx.Err() == nil {
			p.log.Warn("bmc poller: record power", slog.String("node", name), slog.Any("err", err))
		}
		return // the record this poller knows is unchanged, so its next poll tries again
	}
	p.mu.Lock()
	if o, ok := p.obs[name]; ok {
		o.record, o.Since = &stored, stored.Since
	}
	p.mu.Unlock()
}
