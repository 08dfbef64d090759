package machine

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/ipxe"
	"github.com/bootyard/bootyard/node"
)

// Inspection: a node with a pending InspectRequest boots the agent in inspect mode,
// whatever its state calls for otherwise (a discovered machine too); the agent reports
// its inventory with done, which is stored on the node and ends the request. No state
// changes: an inspection is not a step of the lifecycle.

// nodeAction is the agent action n calls for: an inspection when one is pending and
// the state allows it, else what the state calls for.
func nodeAction(n node.Node) (agentapi.Action, bool) {
	if n.Inspect != nil && n.State.Inspectable() {
		return agentapi.Inspect, true
	}
	return ActionFor(n.State)
}

// scriptKind is the iPXE script n gets.
func scriptKind(n node.Node) ipxe.Kind {
	if a, _ := nodeAction(n); a == agentapi.Inspect {
		return ipxe.KindInspect
	}
	return ipxe.KindFor(n.State)
}

func (a *Agent) inspectTask(c echo.Context, ac agentCall) error {
	n := ac.node
	after := agentapi.PowerOffAfterInspect
	if n.Inspect != nil && n.Inspect.After != "" {
		after = n.Inspect.After
	}
	a.tokens.markStarted(ac.key)
	ev := node.NewEvent(n.Name, node.EventLog, "agent started inspect from "+peerAddr(c.Request()).String()+", then "+string(after), "agent", time.Now().UTC())
	if err := a.inv.AppendEvents(c.Request().Context(), ev); err != nil {
		a.log.Error("record agent start", slog.String("node", n.Name), slog.Any("err", err))
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, agentapi.Task{Node: n.Name, Action: agentapi.Inspect, AfterInspect: after})
}

// Bounds of an inventory: more than any server holds.
const (
	maxInventoryDisks = 256
	maxInventoryNICs  = 256
	maxInventoryIDs   = 16
	maxInventoryText  = 128
)

// cleanInventory checks an agent's inventory at the edge: bounded counts, sizes that
// make sense, every string one printable line of bounded length.
func cleanInventory(inv *agentapi.Inventory, clean func(string, int) string) (agentapi.Inventory, error) {
	if inv == nil {
		return agentapi.Inventory{}, badField("inventory", fmt.Errorf("%w: an inspection's done must carry the inventory", node.ErrInvalid))
	}
	out := *inv
	if len(out.Disks) > maxInventoryDisks || len(out.NICs) > maxInventoryNICs {
		return agentapi.Inventory{}, badField("inventory", fmt.Errorf("%w: %d disks and %d NICs, at most %d of each", node.ErrInvalid, len(out.Disks), len(out.NICs), maxInventoryDisks))
	}
	if out.MemoryBytes < 0 || out.CPU.Sockets < 0 || out.CPU.Cores < 0 || out.CPU.Threads < 0 {
		return agentapi.Inventory{}, badField("inventory", fmt.Errorf("%w: negative memory or CPU counts", node.ErrInvalid))
	}
	t := func(s string) string { return clean(s, maxInventoryText) }
	out.System = agentapi.System{Vendor: t(out.System.Vendor), Product: t(out.System.Product), Serial: t(out.System.Serial), UUID: t(out.System.UUID)}
	out.Firmware.Mode = t(out.Firmware.Mode)
	out.CPU.Model = t(out.CPU.Model)
	out.Disks = make([]agentapi.Disk, len(inv.Disks))
	for i, d := range inv.Disks {
		if d.Size < 0 || len(d.ByID) > maxInventoryIDs {
			return agentapi.Inventory{}, badField("inventory", fmt.Errorf("%w: disk %d: negative size or too many ids", node.ErrInvalid, i))
		}
		ids := make([]string, len(d.ByID))
		for j, id := range d.ByID {
			ids[j] = t(id)
		}
		out.Disks[i] = agentapi.Disk{Name: t(d.Name), Path: t(d.Path), ByPath: t(d.ByPath), ByID: ids, Size: d.Size,
			Model: t(d.Model), Vendor: t(d.Vendor), Serial: t(d.Serial), WWN: t(d.WWN), Transport: t(d.Transport),
			Rotational: d.Rotational, Removable: d.Removable}
	}
	out.NICs = make([]agentapi.NIC, len(inv.NICs))
	for i, n := range inv.NICs {
		out.NICs[i] = agentapi.NIC{Name: t(n.Name), MAC: t(n.MAC), Driver: t(n.Driver), Link: n.Link, SpeedMbps: max(n.SpeedMbps, 0), PCIAddress: t(n.PCIAddress)}
	}
	if inv.BMC != nil {
		addr, err := netip.ParseAddr(inv.BMC.Address)
		if err != nil {
			return agentapi.Inventory{}, badField("inventory", fmt.Errorf("%w: BMC address %q", node.ErrInvalid, t(inv.BMC.Address)))
		}
		out.BMC = &agentapi.BMC{Address: addr.String(), Channel: inv.BMC.Channel}
	}
	return out, nil
}

// inspectDone stores the inventory on the node, ends the request and the token.
func (a *Agent) inspectDone(c echo.Context, ac agentCall, in agentapi.Done) error {
	inv, err := cleanInventory(in.Inventory, a.cleaner(c))
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	hw := &node.Hardware{InspectedAt: now, Inventory: inv}
	n, err := a.inv.UpdateNode(c.Request().Context(), ac.node.Name, func(cur *node.Node) ([]node.Event, error) {
		if err := checkGrant(ac.grant, *cur); err != nil {
			return nil, err
		}
		cur.Hardware, cur.Inspect = hw, nil
		msg := "inspected: " + hw.Summary()
		if inv.BMC != nil {
			msg += ", BMC at " + inv.BMC.Address
		}
		return []node.Event{node.NewEvent(cur.Name, node.EventLog, msg, "agent", now)}, nil
	})
	if err != nil {
		return err
	}
	a.tokens.revokeKey(ac.key)
	a.log.Info("node inspected", slog.String("node", n.Name), slog.String("hardware", hw.Summary()))
	return c.JSON(http.StatusOK, map[string]any{"node": n.Name, "state": n.State})
}

// inspectFailed ends a failed or abandoned inspection: the request is dropped (the
// machine would otherwise inspect on every boot) and the node keeps its state.
func (a *Agent) inspectFailed(ctx context.Context, g agentGrant, reason string) error {
	_, err := a.inv.UpdateNode(ctx, g.node, func(cur *node.Node) ([]node.Event, error) {
		if err := checkGrant(g, *cur); err != nil {
			return nil, err
		}
		cur.Inspect = nil
		return []node.Event{node.NewEvent(cur.Name, node.EventWarning, reason+"; request it again to retry", "agent", time.Now().UTC())}, nil
	})
	return err
}

func inspectReason(s string) string { return "inspect failed: " + strings.TrimSpace(s) }
