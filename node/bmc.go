package node

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// BMCProtocol is how Bootyard talks to a machine's baseboard management controller.
type BMCProtocol string

const (
	BMCIPMI    BMCProtocol = "ipmi"    // IPMI v2.0 over LAN (RMCP+), UDP port 623
	BMCRedfish BMCProtocol = "redfish" // DMTF Redfish over HTTPS
)

// BMCPasswordKey is the node secret that holds the BMC password (see store.SetNodeSecret):
// the password lives apart from the node record, so no read of the record can leak it.
const BMCPasswordKey = "bmc-password"

// BMC is how to reach a node's management controller for out-of-band power. The password
// is not here: it is a node secret, and PasswordSet only says whether one is stored.
type BMC struct {
	Protocol BMCProtocol `json:"protocol"`
	// Address is host or host:port; the port defaults to 623 (IPMI) or 443 (Redfish).
	Address string `json:"address"`
	// PlainHTTP speaks Redfish over http:// (emulators, lab BMCs); never for IPMI.
	PlainHTTP bool   `json:"plainHTTP,omitempty"`
	User      string `json:"user,omitempty"`
	// SystemID picks the Redfish ComputerSystem (Members of /redfish/v1/Systems) when the
	// BMC manages more than one; empty means the only one.
	SystemID string `json:"systemID,omitempty"`
	// InsecureTLS skips the Redfish certificate check. Off by default: BMCs often carry
	// self-signed certificates, and turning the check off is the operator's explicit choice.
	InsecureTLS bool `json:"insecureTLS,omitempty"`
	// KeepPowerOn leaves the machine running after a deletion's wipe; by default Bootyard
	// powers it off, so a wiped machine does not sit in the installer's idle loop.
	KeepPowerOn bool `json:"keepPowerOn,omitempty"`
	PasswordSet bool `json:"passwordSet"`
}

// ParseBMCURL parses ipmi://host[:port], redfish://host[:port] (HTTPS) or
// redfish+http://host[:port] into the connection part of a BMC. User info in the URL is
// refused: a password there would be stored in the node record and shown everywhere.
func ParseBMCURL(s string) (BMC, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Host == "" {
		return BMC{}, fmt.Errorf("bmc %q: %w: want ipmi://HOST[:PORT] or redfish://HOST[:PORT]", s, ErrInvalid)
	}
	if u.User != nil {
		return BMC{}, fmt.Errorf("bmc %q: %w: no user or password in the URL; give them as the BMC user and password", redactURL(u), ErrInvalid)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
		return BMC{}, fmt.Errorf("bmc %q: %w: no path or query; give the Redfish system as the BMC system ID", s, ErrInvalid)
	}
	var b BMC
	switch u.Scheme {
	case "ipmi":
		b.Protocol = BMCIPMI
	case "redfish", "redfish+https":
		b.Protocol = BMCRedfish
	case "redfish+http":
		b.Protocol, b.PlainHTTP = BMCRedfish, true
	default:
		return BMC{}, fmt.Errorf("bmc %q: %w: scheme must be ipmi, redfish or redfish+http", s, ErrInvalid)
	}
	b.Address = u.Host
	if err := b.checkAddress(); err != nil {
		return BMC{}, fmt.Errorf("bmc %q: %w", s, err)
	}
	return b, nil
}

func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// URL is the BMC's address in the form ParseBMCURL reads.
func (b *BMC) URL() string {
	scheme := string(b.Protocol)
	if b.PlainHTTP {
		scheme += "+http"
	}
	return scheme + "://" + b.Address
}

// HostPort is the address with the protocol's default port filled in.
func (b *BMC) HostPort() string {
	if _, _, err := net.SplitHostPort(b.Address); err == nil {
		return b.Address
	}
	port := "623"
	if b.Protocol == BMCRedfish {
		port = "443"
		if b.PlainHTTP {
			port = "80"
		}
	}
	return net.JoinHostPort(strings.Trim(b.Address, "[]"), port)
}

func (b *BMC) checkAddress() error {
	host, port := b.Address, ""
	if h, p, err := net.SplitHostPort(b.Address); err == nil {
		host, port = h, p
	}
	if host == "" || strings.ContainsAny(host, " /@") {
		return fmt.Errorf("%w: address %q", ErrInvalid, b.Address)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: port %q", ErrInvalid, port)
		}
	}
	return nil
}

// Validate checks a BMC setting.
func (b *BMC) Validate() error {
	switch b.Protocol {
	case BMCIPMI:
		if b.PlainHTTP || b.SystemID != "" || b.InsecureTLS {
			return fmt.Errorf("bmc: %w: plain HTTP, system ID and TLS settings are Redfish's, not IPMI's", ErrInvalid)
		}
		// RMCP+ carries at most 16 bytes of user name (IPMI v2.0 §13.17).
		if len(b.User) > 16 {
			return fmt.Errorf("bmc: %w: an IPMI user name has at most 16 characters", ErrInvalid)
		}
	case BMCRedfish:
	default:
		return fmt.Errorf("bmc: %w: protocol %q must be ipmi or redfish", ErrInvalid, b.Protocol)
	}
	if err := b.checkAddress(); err != nil {
		return fmt.Errorf("bmc: %w", err)
	}
	if strings.ContainsAny(b.User, "\n\r\x00") || strings.ContainsAny(b.SystemID, "/\n\r\x00?#") {
		return fmt.Errorf("bmc: %w: user or system ID has characters it cannot have", ErrInvalid)
	}
	return nil
}

// PowerReading is a machine's power as its BMC last reported it, recorded when it changes
// (never per poll: a write per poll per node would load the store for nothing).
type PowerReading struct {
	// State is on, off or unknown (bmc.PowerState's values).
	State string `json:"state"`
	// Since is when the poller first saw State.
	Since time.Time `json:"since"`
	// Error is why the BMC stopped answering, as at its first failed poll; empty while it
	// answers. State is then the last state it reported.
	Error string `json:"error,omitempty"`
}
