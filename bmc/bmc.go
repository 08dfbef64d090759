// Package bmc drives machines' power out of band, through their baseboard management
// controllers (IPMI v2.0 over LAN, Redfish): the protocol clients, the power state poller
// and the lifecycle actions (power on to install, network boot to wipe, power off).
package bmc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/bootyard/bootyard/node"
)

// PowerState is what a BMC says about the machine's power.
type PowerState string

const (
	PowerOn      PowerState = "on"
	PowerOff     PowerState = "off"
	PowerUnknown PowerState = "unknown" // not asked yet, or the BMC did not answer
)

// PowerStates lists the states in the order tables and metrics show them.
var PowerStates = []PowerState{PowerOn, PowerOff, PowerUnknown}

// BootDevice is where the machine boots from next, once.
type BootDevice string

const (
	BootPXE  BootDevice = "pxe"
	BootDisk BootDevice = "disk"
)

// ParseBootDevice accepts pxe or disk (and "" for none).
func ParseBootDevice(s string) (BootDevice, error) {
	switch BootDevice(s) {
	case "", BootPXE, BootDisk:
		return BootDevice(s), nil
	}
	return "", fmt.Errorf("boot device %q: %w: want pxe or disk", s, node.ErrInvalid)
}

// Action is a power command.
type Action string

const (
	ActionStatus Action = "status"
	ActionOn     Action = "on"
	ActionOff    Action = "off"   // hard power off
	ActionCycle  Action = "cycle" // off, then on; from off, simply on
	ActionReset  Action = "reset" // warm reset without removing power
)

// ParseAction accepts status, on, off, cycle or reset.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case ActionStatus, ActionOn, ActionOff, ActionCycle, ActionReset:
		return a, nil
	}
	return "", fmt.Errorf("power action %q: %w: want status, on, off, cycle or reset", s, node.ErrInvalid)
}

// Controller is one machine's BMC. Every method is bounded by ctx; the implementations
// open a session per call and close it, so a Controller holds no connection between calls.
type Controller interface {
	PowerStatus(ctx context.Context) (PowerState, error)
	PowerOn(ctx context.Context) error
	PowerOff(ctx context.Context) error
	PowerCycle(ctx context.Context) error
	PowerReset(ctx context.Context) error
	// SetBootOnce makes the next boot, and only the next, use dev.
	SetBootOnce(ctx context.Context, dev BootDevice) error
}

// Target is everything needed to reach one BMC.
type Target struct {
	BMC      node.BMC
	Password node.Secret
	// Mode is the firmware the machine last network-booted with, for the boot-once
	// request: BMCs that honour the request's BIOS/UEFI bit would otherwise switch a UEFI
	// machine to a legacy network boot.
	Mode FirmwareMode
}

// FirmwareMode is how the machine boots.
type FirmwareMode string

const (
	ModeUnknown FirmwareMode = "" // never seen network-booting: the BMC's default
	ModeBIOS    FirmwareMode = "bios"
	ModeUEFI    FirmwareMode = "uefi"
)

// firmwareMode reads the mode from what the machine's DHCP requests said: option 93 is 0
// for BIOS and names an EFI architecture otherwise (RFC 4578); iPXE sends it too, so a
// node last seen as "ipxe" still has its firmware's architecture.
func firmwareMode(b node.BootInfo) FirmwareMode {
	switch {
	case b.LastSeen.IsZero() && b.FirstSeen.IsZero():
		return ModeUnknown
	case b.Firmware == "bios" || (b.Firmware == "ipxe" && b.Arch == 0):
		return ModeBIOS
	case b.Firmware == "uefi" || b.Firmware == "uefi-http" || (b.Firmware == "ipxe" && b.Arch != 0xffff):
		return ModeUEFI
	}
	return ModeUnknown
}

// DialConfig tunes the protocol clients.
type DialConfig struct {
	// Timeout bounds every Controller call that comes with no earlier deadline.
	Timeout time.Duration
	// HTTPClient, when set, carries Redfish requests (tests: a namespace's dialer). Its
	// TLS settings are the caller's; Target.BMC.InsecureTLS is not applied to it.
	HTTPClient *http.Client
	// IPMIDo, when set, runs each IPMI exchange (tests: inside a network namespace).
	IPMIDo func(fn func() error) error
}

// DefaultTimeout bounds one BMC call: an IPMI session setup is four UDP round trips and a
// Redfish call a TLS handshake and two or three requests; ten seconds is slow hardware,
// not a dead one.
const DefaultTimeout = 10 * time.Second

// ErrUnsupported means the BMC refused a command it does not implement.
var ErrUnsupported = errors.New("not supported by this BMC")

// New returns the Controller for t.
func New(t Target, cfg DialConfig) (Controller, error) {
	if err := t.BMC.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	switch t.BMC.Protocol {
	case node.BMCIPMI:
		return newIPMI(t, cfg), nil
	case node.BMCRedfish:
		return newRedfish(t, cfg), nil
	}
	return nil, fmt.Errorf("bmc: %w: protocol %q", node.ErrInvalid, t.BMC.Protocol)
}

// bounded gives ctx the configured timeout unless it already ends sooner.
func bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
