package bmc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/common"
	"github.com/stmcginnis/gofish/redfish"
)

// redfishBMC speaks DMTF Redfish with github.com/stmcginnis/gofish.
type redfishBMC struct {
	t   Target
	cfg DialConfig
}

func newRedfish(t Target, cfg DialConfig) *redfishBMC { return &redfishBMC{t: t, cfg: cfg} }

func (b *redfishBMC) endpoint() string {
	scheme := "https://"
	if b.t.BMC.PlainHTTP {
		scheme = "http://"
	}
	return scheme + b.t.BMC.HostPort()
}

// connect logs in with a session (SessionService, the Redfish way: one password check,
// then a token) and falls back to HTTP basic auth when the service offers no sessions.
// Wrong credentials (401) are not retried: a second login attempt only brings a BMC's
// lockout closer.
func (b *redfishBMC) connect(ctx context.Context) (*gofish.APIClient, error) {
	cfg := gofish.ClientConfig{
		Endpoint:   b.endpoint(),
		Username:   b.t.BMC.User,
		Password:   b.t.Password.Reveal(),
		Insecure:   b.t.BMC.InsecureTLS,
		HTTPClient: b.cfg.HTTPClient,
	}
	c, err := gofish.ConnectContext(ctx, cfg)
	if err == nil {
		return c, nil
	}
	if ctx.Err() != nil || httpStatus(err) == http.StatusUnauthorized || httpStatus(err) == http.StatusForbidden {
		return nil, err
	}
	cfg.BasicAuth = true
	c, berr := gofish.ConnectContext(ctx, cfg)
	if berr != nil {
		return nil, fmt.Errorf("session login: %w; basic auth: %w", err, berr)
	}
	return c, nil
}

// httpStatus is the HTTP status of a gofish error, 0 when it is not one.
func httpStatus(err error) int {
	var e *common.Error
	if errors.As(err, &e) {
		return e.HTTPReturnedStatusCode
	}
	return 0
}

// withSystem connects, finds the ComputerSystem and runs fn on it, within the timeout.
func (b *redfishBMC) withSystem(ctx context.Context, what string, fn func(sys *redfish.ComputerSystem) error) error {
	ctx, cancel := bounded(ctx, b.cfg.Timeout)
	defer cancel()
	err := func() error {
		c, err := b.connect(ctx)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		// Deleting the session frees one of the BMC's session slots; it runs in the same
		// bounded context, so a BMC that stops answering cannot hold the caller.
		defer c.Logout()
		sys, err := b.system(c)
		if err != nil {
			return err
		}
		return fn(sys)
	}()
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return fmt.Errorf("redfish %s %s: %w", b.endpoint(), what, err)
	}
	return nil
}

// system picks the ComputerSystem: the one named by the system ID, or the only one.
func (b *redfishBMC) system(c *gofish.APIClient) (*redfish.ComputerSystem, error) {
	systems, err := c.Service.Systems()
	if err != nil {
		return nil, fmt.Errorf("list systems: %w", err)
	}
	ids := make([]string, 0, len(systems))
	for _, s := range systems {
		if b.t.BMC.SystemID != "" && s.ID == b.t.BMC.SystemID {
			return s, nil
		}
		ids = append(ids, s.ID)
	}
	switch {
	case b.t.BMC.SystemID != "":
		return nil, fmt.Errorf("no system %q among %s", b.t.BMC.SystemID, strings.Join(ids, ", "))
	case len(systems) == 1:
		return systems[0], nil
	case len(systems) == 0:
		return nil, errors.New("the service lists no systems")
	}
	return nil, fmt.Errorf("%d systems (%s): set the BMC system ID", len(systems), strings.Join(ids, ", "))
}

func (b *redfishBMC) PowerStatus(ctx context.Context) (PowerState, error) {
	state := PowerUnknown
	err := b.withSystem(ctx, "power status", func(sys *redfish.ComputerSystem) error {
		switch sys.PowerState {
		case redfish.OnPowerState, redfish.PoweringOffPowerState, redfish.PausedPowerState:
			// Powering off is still on: a status is what the machine draws now.
			state = PowerOn
		case redfish.OffPowerState, redfish.PoweringOnPowerState:
			state = PowerOff
		default:
			return fmt.Errorf("unknown PowerState %q", sys.PowerState)
		}
		return nil
	})
	return state, err
}

// reset posts ComputerSystem.Reset with the first of types the system allows (all are
// allowed when it lists none).
func reset(sys *redfish.ComputerSystem, types ...redfish.ResetType) error {
	for _, t := range types {
		if len(sys.SupportedResetTypes) == 0 || slices.Contains(sys.SupportedResetTypes, t) {
			return sys.Reset(t)
		}
	}
	return fmt.Errorf("%w: none of the reset types %v (the system allows %v)", ErrUnsupported, types, sys.SupportedResetTypes)
}

func (b *redfishBMC) PowerOn(ctx context.Context) error {
	return b.withSystem(ctx, "power on", func(sys *redfish.ComputerSystem) error {
		return reset(sys, redfish.OnResetType, redfish.ForceOnResetType)
	})
}

func (b *redfishBMC) PowerOff(ctx context.Context) error {
	return b.withSystem(ctx, "power off", func(sys *redfish.ComputerSystem) error {
		return reset(sys, redfish.ForceOffResetType)
	})
}

func (b *redfishBMC) PowerReset(ctx context.Context) error {
	return b.withSystem(ctx, "power reset", func(sys *redfish.ComputerSystem) error {
		return reset(sys, redfish.ForceRestartResetType)
	})
}

// PowerCycle power-cycles a running machine and powers on a stopped one: many services
// refuse ForceRestart or PowerCycle while the system is off.
func (b *redfishBMC) PowerCycle(ctx context.Context) error {
	return b.withSystem(ctx, "power cycle", func(sys *redfish.ComputerSystem) error {
		if sys.PowerState == redfish.OffPowerState {
			return reset(sys, redfish.OnResetType, redfish.ForceOnResetType)
		}
		return reset(sys, redfish.PowerCycleResetType, redfish.ForceRestartResetType)
	})
}

func (b *redfishBMC) SetBootOnce(ctx context.Context, dev BootDevice) error {
	target := redfish.PxeBootSourceOverrideTarget
	if dev == BootDisk {
		target = redfish.HddBootSourceOverrideTarget
	}
	return b.withSystem(ctx, "boot once "+string(dev), func(sys *redfish.ComputerSystem) error {
		boot := redfish.Boot{
			BootSourceOverrideTarget:  target,
			BootSourceOverrideEnabled: redfish.OnceBootSourceOverrideEnabled,
		}
		// The mode only when known: a service that cannot switch modes may refuse it.
		switch b.t.Mode {
		case ModeUEFI:
			boot.BootSourceOverrideMode = redfish.UEFIBootSourceOverrideMode
		case ModeBIOS:
			boot.BootSourceOverrideMode = redfish.LegacyBootSourceOverrideMode
		}
		return sys.SetBoot(boot)
	})
}
