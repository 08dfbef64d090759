package bmc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
)

// ipmiBMC speaks IPMI v2.0 over LAN (RMCP+, "lanplus") with github.com/bougou/go-ipmi.
type ipmiBMC struct {
	t   Target
	cfg DialConfig
}

func newIPMI(t Target, cfg DialConfig) *ipmiBMC { return &ipmiBMC{t: t, cfg: cfg} }

// session opens an RMCP+ session, runs fn in it and closes it, all within the timeout.
func (b *ipmiBMC) session(ctx context.Context, what string, fn func(ctx context.Context, c *client.Client) error) error {
	ctx, cancel := bounded(ctx, b.cfg.Timeout)
	defer cancel()
	host, portStr, err := net.SplitHostPort(b.t.BMC.HostPort())
	if err != nil {
		return fmt.Errorf("ipmi %s: %w", what, err)
	}
	port, _ := strconv.Atoi(portStr)
	run := func() error {
		c, err := client.NewClient(host, port, b.t.BMC.User, b.t.Password.Reveal())
		if err != nil {
			return err
		}
		// Cipher suite 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128) is the one every
		// IPMI v2.0 BMC must support (§22.15.2). Pinning it skips the cipher-suite
		// discovery, which some BMCs (OpenIPMI's ipmi_sim among them) never answer, so
		// every connection would first wait out that query's retries.
		c.WithCipherSuiteID(types.CipherSuiteID3)
		if err := c.Connect(ctx); err != nil {
			return fmt.Errorf("open session: %w", err)
		}
		err = fn(ctx, c)
		// Closing frees one of the BMC's few session slots (often four); a failure to
		// close is not the caller's failure.
		_ = c.Close(ctx)
		return err
	}
	if b.cfg.IPMIDo != nil {
		err = b.cfg.IPMIDo(run)
	} else {
		err = run()
	}
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return fmt.Errorf("ipmi %s %s: %w", b.t.BMC.HostPort(), what, err)
	}
	return nil
}

func (b *ipmiBMC) PowerStatus(ctx context.Context) (PowerState, error) {
	state := PowerUnknown
	err := b.session(ctx, "power status", func(ctx context.Context, c *client.Client) error {
		st, err := c.GetChassisStatus(ctx)
		if err != nil {
			return err
		}
		state = PowerOff
		if st.PowerIsOn {
			state = PowerOn
		}
		return nil
	})
	return state, err
}

func (b *ipmiBMC) control(ctx context.Context, what string, ctl chassis.ChassisControl) error {
	return b.session(ctx, what, func(ctx context.Context, c *client.Client) error {
		_, err := c.ChassisControl(ctx, ctl)
		return err
	})
}

func (b *ipmiBMC) PowerOn(ctx context.Context) error {
	return b.control(ctx, "power on", chassis.ChassisControlPowerUp)
}

func (b *ipmiBMC) PowerOff(ctx context.Context) error {
	return b.control(ctx, "power off", chassis.ChassisControlPowerDown)
}

func (b *ipmiBMC) PowerReset(ctx context.Context) error {
	return b.control(ctx, "power reset", chassis.ChassisControlHardReset)
}

// PowerCycle cycles a running machine and powers on a stopped one: the IPMI spec lets a
// BMC ignore a power cycle while the chassis is off (IPMI v2.0 §28.3), and what the
// caller wants either way is a machine that boots now.
func (b *ipmiBMC) PowerCycle(ctx context.Context) error {
	return b.session(ctx, "power cycle", func(ctx context.Context, c *client.Client) error {
		st, err := c.GetChassisStatus(ctx)
		if err != nil {
			return err
		}
		ctl := chassis.ChassisControlPowerCycle
		if !st.PowerIsOn {
			ctl = chassis.ChassisControlPowerUp
		}
		_, err = c.ChassisControl(ctx, ctl)
		return err
	})
}

func (b *ipmiBMC) SetBootOnce(ctx context.Context, dev BootDevice) error {
	sel := types.BootDeviceSelectorForcePXE
	if dev == BootDisk {
		sel = types.BootDeviceSelectorForceHardDrive
	}
	return b.session(ctx, "boot once "+string(dev), func(ctx context.Context, c *client.Client) error {
		// Valid, next boot only (persist false). The BIOS/EFI bit follows the firmware the
		// machine was seen with; unknown stays legacy, ipmitool's default.
		bootType := types.BIOSBootTypeLegacy
		if b.t.Mode == ModeUEFI {
			bootType = types.BIOSBootTypeEFI
		}
		return c.SetBootDevice(ctx, sel, bootType, false)
	})
}
