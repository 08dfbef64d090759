package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jaypipes/ghw"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/firmware"
)

// inspector gathers the machine's inventory. ghw reads what it covers (DMI identity,
// processors, memory, NIC names, MACs and PCI addresses); the rest (disk identity
// without udev, NIC driver and link, firmware, the BMC) comes from sysfs, efivarfs
// and the IPMI device here. Paths are fields so tests can point them at a fake tree.
type inspector struct {
	sysBlock, devDir string
	sysNet           string // /sys/class/net
	sysFirmware      string // /sys/firmware
	ipmiDevice       string // /dev/ipmi0
	log              *slog.Logger
}

func newInspector(log *slog.Logger) *inspector {
	return &inspector{sysBlock: "/sys/block", devDir: "/dev", sysNet: "/sys/class/net", sysFirmware: "/sys/firmware",
		ipmiDevice: "/dev/ipmi0", log: log}
}

// inventory gathers everything; a part that cannot be read is logged and left empty,
// since a partial inventory still tells machines apart.
func (in *inspector) inventory(ctx context.Context) (agentapi.Inventory, error) {
	var inv agentapi.Inventory
	disks, err := readDisks(in.sysBlock, in.devDir)
	if err != nil {
		return inv, err
	}
	inv.Disks = disks
	opts := []any{ghw.WithDisableTools(), ghw.WithNullAlerter()}
	if p, err := ghw.Product(opts...); err == nil {
		inv.System = agentapi.System{Vendor: known(p.Vendor), Product: known(p.Name), Serial: known(p.SerialNumber), UUID: known(p.UUID)}
	} else {
		in.log.Warn("inspect: DMI not readable", slog.Any("err", err))
	}
	if c, err := ghw.CPU(opts...); err == nil {
		inv.CPU = agentapi.CPU{Sockets: len(c.Processors), Cores: int(c.TotalCores), Threads: int(c.TotalHardwareThreads)}
		if len(c.Processors) > 0 {
			inv.CPU.Model = c.Processors[0].Model
		}
	} else {
		in.log.Warn("inspect: CPU not readable", slog.Any("err", err))
	}
	if m, err := ghw.Memory(opts...); err == nil {
		inv.MemoryBytes = m.TotalPhysicalBytes
		if inv.MemoryBytes <= 0 {
			inv.MemoryBytes = m.TotalUsableBytes
		}
	} else {
		in.log.Warn("inspect: memory not readable", slog.Any("err", err))
	}
	if n, err := ghw.Network(opts...); err == nil {
		for _, nic := range n.NICs {
			if nic.IsVirtual {
				continue // lo, bridges, bonds: not hardware
			}
			inv.NICs = append(inv.NICs, in.nic(nic.Name, nic.MACAddress, nic.PCIAddress))
		}
	} else {
		in.log.Warn("inspect: NICs not readable", slog.Any("err", err))
	}
	inv.Firmware = in.firmware()
	bmcCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	bmc, err := lanAddress(bmcCtx, in.ipmiDevice)
	switch {
	case errors.Is(err, os.ErrNotExist):
		in.log.Info("inspect: no in-band IPMI device: no BMC address")
	case err != nil:
		in.log.Warn("inspect: BMC LAN address not read", slog.Any("err", err))
	default:
		inv.BMC = bmc
	}
	return inv, nil
}

// nic completes what ghw found with the driver, link and speed sysfs knows.
func (in *inspector) nic(name, mac string, pci *string) agentapi.NIC {
	dir := filepath.Join(in.sysNet, name)
	n := agentapi.NIC{Name: name, MAC: strings.ToLower(mac)}
	if pci != nil {
		n.PCIAddress = *pci
	} else if real, err := filepath.EvalSymlinks(filepath.Join(dir, "device")); err == nil {
		// A virtio NIC's device is the virtio bus device; ghw finds no PCI address
		// there, but the PCI function is its parent.
		n.PCIAddress = closestPCI(real)
	}
	if drv, err := os.Readlink(filepath.Join(dir, "device", "driver")); err == nil {
		n.Driver = filepath.Base(drv)
	}
	n.Link = readTrim(filepath.Join(dir, "carrier")) == "1"
	// speed is -1 (or unreadable) while the link is down.
	if s, err := strconv.Atoi(readTrim(filepath.Join(dir, "speed"))); err == nil && s > 0 && n.Link {
		n.SpeedMbps = s
	}
	return n
}

// firmware says how the machine booted, as firmware.Read reads it (the one reading of
// the SecureBoot variable): the mode, and Secure Boot's state under UEFI (nil when
// unreadable).
func (in *inspector) firmware() agentapi.Firmware {
	f, err := firmware.Read(filepath.Join(in.sysFirmware, "efi"))
	if !f.UEFI {
		return agentapi.Firmware{Mode: "bios"}
	}
	fw := agentapi.Firmware{Mode: "uefi"}
	if err != nil {
		in.log.Warn("inspect: Secure Boot state unknown", slog.Any("err", err))
		return fw
	}
	fw.SecureBoot = &f.SecureBoot
	return fw
}

// known drops ghw's placeholder for a value it could not read.
func known(s string) string {
	s = strings.TrimSpace(s)
	if s == "unknown" || s == "None" || s == "Not Specified" || s == "To be filled by O.E.M." {
		return ""
	}
	return s
}

// inspect runs an inspect task: gather, report, then power off, reboot or wait. No
// disk is opened for writing.
func (in *installer) inspect(ctx context.Context, t agentapi.Task, ins *inspector) error {
	inv, err := ins.inventory(ctx)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	in.log.Info("inspected", slog.String("vendor", inv.System.Vendor), slog.String("product", inv.System.Product),
		slog.String("cpu", inv.CPU.Model), slog.Int("threads", inv.CPU.Threads), slog.Int64("memory", inv.MemoryBytes),
		slog.Int("disks", len(inv.Disks)), slog.Int("nics", len(inv.NICs)), slog.Bool("bmc", inv.BMC != nil))
	if err := in.ship.flush(ctx); err != nil {
		in.log.Warn("could not send the last log lines", slog.Any("err", err))
	}
	if err := in.api.done(ctx, agentapi.Done{Action: agentapi.Inspect, Inventory: &inv}); err != nil {
		return fmt.Errorf("report inspection: %w", err)
	}
	return nil
}
