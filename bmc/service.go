package bmc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/bootyard/bootyard/node"
)

// Inventory is what the power service needs from the store.
type Inventory interface {
	GetNode(ctx context.Context, ref string) (node.Node, error)
	NodeSecret(ctx context.Context, nodeName, key string) ([]byte, error)
	AppendEvents(ctx context.Context, events ...node.Event) error
}

// Env is what the power service and the poller share: how to reach BMCs, where to log,
// the clock.
type Env struct {
	Dial   DialConfig
	Logger *slog.Logger
	Now    func() time.Time
	// NewController builds a node's Controller; nil means New. Tests put a fake here.
	NewController func(Target, DialConfig) (Controller, error)
}

func (e Env) withDefaults() Env {
	if e.Logger == nil {
		e.Logger = slog.Default()
	}
	if e.Now == nil {
		e.Now = func() time.Time { return time.Now().UTC() }
	}
	if e.NewController == nil {
		e.NewController = New
	}
	if e.Dial.Timeout <= 0 {
		e.Dial.Timeout = DefaultTimeout
	}
	return e
}

// ServiceConfig tunes the power service.
type ServiceConfig struct {
	Env
}

// Service runs power commands on inventory nodes through their BMCs and records each one,
// with its outcome, as an event of the node.
type Service struct {
	inv Inventory
	cfg ServiceConfig
	log *slog.Logger
}

// NewService builds the power service.
func NewService(cfg ServiceConfig, inv Inventory) *Service {
	cfg.Env = cfg.Env.withDefaults()
	return &Service{inv: inv, cfg: cfg, log: cfg.Logger}
}

// Request is one power command: an action, optionally after setting the next boot device.
type Request struct {
	Action   Action     `json:"action"`
	BootOnce BootDevice `json:"bootOnce,omitempty"`
	// Why is the lifecycle step that asked, for the event; empty for an operator's command.
	Why string `json:"-"`
}

func (r Request) String() string {
	s := "power " + string(r.Action)
	if r.BootOnce != "" {
		s = "boot once " + string(r.BootOnce) + ", " + s
	}
	if r.Why != "" {
		s += " (" + r.Why + ")"
	}
	return s
}

// Result is what a power command did.
type Result struct {
	Node     string     `json:"node"`
	Action   Action     `json:"action"`
	BootOnce BootDevice `json:"bootOnce,omitempty"`
	// Power is the state a status read, or PowerUnknown after a command.
	Power PowerState `json:"power"`
}

// ErrNoBMC means the node has no BMC settings.
var ErrNoBMC = fmt.Errorf("no BMC configured: %w", node.ErrConflict)

// ErrBMCFailed wraps a BMC that did not do what it was asked (unreachable, refused).
var ErrBMCFailed = errors.New("BMC request failed")

// controller builds the Controller of the node named name, with its password.
func (s *Service) controller(ctx context.Context, name string) (node.Node, Controller, node.Secret, error) {
	n, err := s.inv.GetNode(ctx, name)
	if err != nil {
		return node.Node{}, nil, "", err
	}
	if n.BMC == nil {
		return n, nil, "", fmt.Errorf("node %s: %w", n.Name, ErrNoBMC)
	}
	pw, err := s.inv.NodeSecret(ctx, n.Name, node.BMCPasswordKey)
	if err != nil && !errors.Is(err, node.ErrNotFound) {
		return n, nil, "", fmt.Errorf("node %s: read the BMC password: %w", n.Name, err)
	}
	secret := node.Secret(pw)
	c, err := s.cfg.NewController(Target{BMC: *n.BMC, Password: secret, Mode: firmwareMode(n.Boot)}, s.cfg.Dial)
	return n, c, secret, err
}

// Do runs req on the node named name (a name or a MAC) and records it as an event.
func (s *Service) Do(ctx context.Context, name string, req Request, source string) (Result, error) {
	n, c, secret, err := s.controller(ctx, name)
	if err != nil {
		return Result{}, err
	}
	res := Result{Node: n.Name, Action: req.Action, BootOnce: req.BootOnce, Power: PowerUnknown}
	err = s.run(ctx, c, req, &res)
	if req.Action == ActionStatus && req.BootOnce == "" {
		// A status read changes nothing: it is not history worth keeping.
		return res, s.failed(err, secret)
	}
	reason := req.String() + ": done"
	if err != nil {
		reason = req.String() + ": failed: " + scrub(err.Error(), secret)
	}
	s.record(ctx, n.Name, reason, source)
	return res, s.failed(err, secret)
}

func (s *Service) run(ctx context.Context, c Controller, req Request, res *Result) error {
	if req.BootOnce != "" {
		if err := c.SetBootOnce(ctx, req.BootOnce); err != nil {
			return err
		}
	}
	switch req.Action {
	case ActionStatus:
		st, err := c.PowerStatus(ctx)
		res.Power = st
		return err
	case ActionOn:
		return c.PowerOn(ctx)
	case ActionOff:
		return c.PowerOff(ctx)
	case ActionCycle:
		return c.PowerCycle(ctx)
	case ActionReset:
		return c.PowerReset(ctx)
	}
	return fmt.Errorf("power action %q: %w", req.Action, node.ErrInvalid)
}

// failed wraps a BMC error for the caller, with any copy of the password masked.
func (s *Service) failed(err error, secret node.Secret) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrBMCFailed, scrub(err.Error(), secret))
}

func (s *Service) record(ctx context.Context, name, reason, source string) {
	ev := node.NewEvent(name, node.EventPower, reason, source, s.cfg.Now())
	if err := s.inv.AppendEvents(ctx, ev); err != nil {
		s.log.Warn("record power event", slog.String("node", name), slog.Any("err", err))
	}
	s.log.Info("bmc", slog.String("node", name), slog.String("outcome", reason), slog.String("source", source))
}

// scrub masks the password wherever a library's error text might have echoed it.
func scrub(msg string, secret node.Secret) string {
	if pw := secret.Reveal(); len(pw) >= 4 {
		msg = strings.ReplaceAll(msg, pw, "[redacted]")
	}
	return msg
}
