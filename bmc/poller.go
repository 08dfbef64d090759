package bmc

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bootyard/bootyard/node"
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
	address  string
}

// PollerInventory is what the poller reads.
type PollerInventory interface {
	ListNodes(ctx context.Context) ([]node.Node, error)
	NodeSecret(ctx context.Context, nodeName, key string) ([]byte, error)
	AppendEvents(ctx context.Context, events ...node.Event) error
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

func (p *Poller) Collect(ch chan<- prometheus.Metric) {
	counts := map[PowerState]int{}
	p.mu.Lock()
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
	p.errors.Collect(ch)
}

// Observation is the last poll of the node named name.
func (p *Poller) Observation(name string) (Observation, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, ok := p.obs[name]
	if !ok {
		return Observation{}, false
	}
	return *o, true
}

// Run polls until ctx ends, looking for due BMCs every tick (a tenth of the interval, at
// least a second), so a changed inventory and expired backoffs are picked up promptly.
func (p *Poller) Run(ctx context.Context) error {
	tick := max(p.cfg.Interval/10, time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		p.PollDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// PollDue polls, at most Concurrency at once, every BMC whose next poll is due, and
// returns when they have all answered or timed out. One goroutine calls it (Run).
func (p *Poller) PollDue(ctx context.Context) {
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
			o = &Observation{Power: PowerUnknown, address: n.BMC.URL()}
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
		o.Power, o.At, o.Err, o.Failures = st, now, "", 0
		o.Next = now.Add(p.cfg.Interval)
	} else {
		o.Err = err.Error()
		o.Failures++
		o.Next = now.Add(p.backoff(o.Failures))
	}
	failures, next := o.Failures, o.Next
	p.mu.Unlock()

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
