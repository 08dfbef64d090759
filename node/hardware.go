package node

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/bootyard/bootyard/agentapi"
)

// Hardware is a node's latest inspection: what the agent found, and when.
type Hardware struct {
	InspectedAt time.Time `json:"inspectedAt"`
	agentapi.Inventory
}

// InspectRequest is a pending inspection: the machine's next network boot runs the
// agent in inspect mode instead of what its state calls for.
type InspectRequest struct {
	After       agentapi.AfterInspect `json:"after"`
	RequestedAt time.Time             `json:"requestedAt"`
}

// ParseAfterInspect accepts "", poweroff, wait or reboot.
func ParseAfterInspect(s string) (agentapi.AfterInspect, error) {
	switch a := agentapi.AfterInspect(s); a {
	case "":
		return agentapi.PowerOffAfterInspect, nil
	case agentapi.PowerOffAfterInspect, agentapi.WaitAfterInspect, agentapi.RebootAfterInspect:
		return a, nil
	}
	return "", fmt.Errorf("after %q: %w: want poweroff, wait or reboot", s, ErrInvalid)
}

// Inspectable says whether a node in state s may be inspected: not while an agent is
// writing or wiping its disks, nor while it is being removed from the cluster.
func (s State) Inspectable() bool {
	switch s {
	case StateProvisioning, StateWiping, StateDeleting:
		return false
	}
	return true
}

// RequestInspection records that n's next network boot inspects it.
func (n *Node) RequestInspection(after agentapi.AfterInspect, source string, now time.Time) (Event, error) {
	if !n.State.Inspectable() {
		return Event{}, fmt.Errorf("node %s is %s: an agent is at work on its disks; inspect it later: %w", n.Name, n.State, ErrIllegalTransition)
	}
	n.Inspect = &InspectRequest{After: after, RequestedAt: now}
	return NewEvent(n.Name, EventLog, "inspection requested: the next network boot runs the agent in inspect mode, then "+string(after), source, now), nil
}

// AdoptBMC makes the BMC address the latest inspection found the node's BMC (IPMI).
// Credentials are the operator's to enter; an inspection never sees them.
func (n *Node) AdoptBMC(source string, now time.Time) (Event, error) {
	if n.Hardware == nil || n.Hardware.BMC == nil {
		return Event{}, fmt.Errorf("node %s: %w: its inspection found no BMC address (inspect it first)", n.Name, ErrConflict)
	}
	addr, err := netip.ParseAddr(n.Hardware.BMC.Address)
	if err != nil {
		return Event{}, fmt.Errorf("node %s: inspected BMC address %q: %w", n.Name, n.Hardware.BMC.Address, ErrInvalid)
	}
	// The address came over IPMI's in-band LAN configuration, so the BMC speaks IPMI over
	// LAN; a BMC already set keeps its user and password, whose entry stays the operator's.
	if n.BMC == nil {
		n.BMC = &BMC{Protocol: BMCIPMI}
	}
	n.BMC.Address = addr.String()
	return NewEvent(n.Name, EventLog, "BMC address "+addr.String()+" adopted from the inspection of "+n.Hardware.InspectedAt.Format(time.RFC3339), source, now), nil
}

// Summary is the inspection in one line: enough to tell machines apart.
func (h *Hardware) Summary() string {
	if h == nil {
		return ""
	}
	var parts []string
	if s := strings.TrimSpace(h.System.Vendor + " " + h.System.Product); s != "" {
		parts = append(parts, s)
	}
	if h.CPU.Model != "" || h.CPU.Threads > 0 {
		cpu := h.CPU.Model
		if h.CPU.Sockets > 1 {
			cpu = fmt.Sprintf("%d× %s", h.CPU.Sockets, cpu)
		}
		parts = append(parts, strings.TrimSpace(fmt.Sprintf("%s %dC/%dT", cpu, h.CPU.Cores, h.CPU.Threads)))
	}
	if h.MemoryBytes > 0 {
		parts = append(parts, FormatBytes(h.MemoryBytes)+" RAM")
	}
	if len(h.Disks) > 0 {
		sizes := make([]string, len(h.Disks))
		for i, d := range h.Disks {
			sizes[i] = FormatBytes(d.Size)
			if d.Transport != "" {
				sizes[i] += " " + d.Transport
			}
		}
		parts = append(parts, fmt.Sprintf("%d disks (%s)", len(h.Disks), strings.Join(sizes, ", ")))
	}
	return strings.Join(parts, ", ")
}

// FormatBytes prints a size in binary units, one decimal.
func FormatBytes(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTP"[exp])
}

// HardwareFilter selects nodes by their latest inspection. A zero filter selects every
// node; any other selects only inspected nodes, since a machine never inspected has no
// memory or disks to compare.
type HardwareFilter struct {
	MinMemory int64 // bytes
	MinDisks  int
	// Text is found, case-insensitively, in the system's vendor, product or serial, the
	// CPU model, or a disk's model, vendor, serial or WWN.
	Text string
}

// IsZero reports whether f filters nothing.
func (f HardwareFilter) IsZero() bool { return f.MinMemory <= 0 && f.MinDisks <= 0 && f.Text == "" }

// Matches reports whether h passes f (a nil h passes only the zero filter).
func (f HardwareFilter) Matches(h *Hardware) bool {
	if f.IsZero() {
		return true
	}
	if h == nil || h.MemoryBytes < f.MinMemory || len(h.Disks) < f.MinDisks {
		return false
	}
	if f.Text == "" {
		return true
	}
	text := strings.ToLower(f.Text)
	has := func(s string) bool { return s != "" && strings.Contains(strings.ToLower(s), text) }
	// Vendor and product together too, as the tables print them: "dell inc. poweredge".
	if has(h.System.Vendor+" "+h.System.Product) || has(h.System.Serial) || has(h.CPU.Model) {
		return true
	}
	for _, d := range h.Disks {
		if has(d.Model) || has(d.Vendor) || has(d.Serial) || has(d.WWN) {
			return true
		}
	}
	return false
}

// Clone is a deep copy of h, for stores that hand out copies of a cached node.
func (h *Hardware) Clone() *Hardware {
	if h == nil {
		return nil
	}
	c := *h
	c.Disks = slices.Clone(h.Disks)
	for i := range c.Disks {
		c.Disks[i].ByID = slices.Clone(c.Disks[i].ByID)
	}
	c.NICs = slices.Clone(h.NICs)
	if h.BMC != nil {
		b := *h.BMC
		c.BMC = &b
	}
	if h.Firmware.SecureBoot != nil {
		sb := *h.Firmware.SecureBoot
		c.Firmware.SecureBoot = &sb
	}
	return &c
}
