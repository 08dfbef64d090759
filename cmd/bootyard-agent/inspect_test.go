package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bootyard/bootyard/agentapi"
)

func TestInspect_ReportsTheHardwareAndWritesNoDisk(t *testing.T) {
	r := newRig(t, "inspect", 2, nil)
	r.api.Task.Image = nil
	r.api.Task.AfterInspect = agentapi.RebootAfterInspect
	// A fake NIC: a driver, carrier and speed, as sysfs shows them.
	net := t.TempDir()
	nicDir := filepath.Join(net, "eth7")
	os.MkdirAll(filepath.Join(nicDir, "device"), 0o755)
	os.WriteFile(filepath.Join(nicDir, "carrier"), []byte("1\n"), 0o644)
	os.WriteFile(filepath.Join(nicDir, "speed"), []byte("10000\n"), 0o644)
	os.Symlink("../../../bus/pci/drivers/ixgbe", filepath.Join(nicDir, "device", "driver"))
	// A virtio NIC: its device is the virtio device under the PCI function.
	virtio := filepath.Join(net, "devices", "pci0000:00", "0000:00:03.0", "virtio0")
	os.MkdirAll(virtio, 0o755)
	os.MkdirAll(filepath.Join(net, "eth8"), 0o755)
	os.Symlink(virtio, filepath.Join(net, "eth8", "device"))
	fw := t.TempDir()
	os.MkdirAll(filepath.Join(fw, "efi", "efivars"), 0o755)
	os.WriteFile(filepath.Join(fw, "efi", "efivars", "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"), []byte{6, 0, 0, 0, 1}, 0o644)
	r.in.inspector = &inspector{sysBlock: r.in.sysBlock, devDir: r.in.devDir, sysNet: net, sysFirmware: fw,
		ipmiDevice: filepath.Join(t.TempDir(), "ipmi0"), log: r.in.log}

	var before [][32]byte
	for _, d := range r.disks {
		before = append(before, fileSum(t, d))
	}
	if err := r.run(t); err != nil {
		t.Fatalf("perform: %v", err)
	}
	rep := r.api.Report()
	if len(rep.Done) != 1 || rep.Done[0] != "inspect" || len(rep.Inventory) != 1 {
		t.Fatalf("done %v, inventories %d", rep.Done, len(rep.Inventory))
	}
	inv := rep.Inventory[0]
	if len(inv.Disks) != 2 || inv.Disks[0].Name != "vda" || inv.Disks[0].Size != 64<<20 {
		t.Errorf("disks %+v, want vda and vdb of 64 MiB", inv.Disks)
	}
	// CPU and memory come from this host's real /sys and /proc through ghw.
	if inv.CPU.Threads < 1 || inv.CPU.Sockets < 1 || inv.MemoryBytes < 1<<20 {
		t.Errorf("cpu %+v memory %d: ghw read nothing", inv.CPU, inv.MemoryBytes)
	}
	if inv.Firmware.Mode != "uefi" || inv.Firmware.SecureBoot == nil || !*inv.Firmware.SecureBoot {
		t.Errorf("firmware %+v, want uefi with Secure Boot on", inv.Firmware)
	}
	if inv.BMC != nil {
		t.Errorf("BMC %+v without an IPMI device", inv.BMC)
	}
	nic := r.in.inspector.nic("eth7", "52:54:00:AA:BB:CC", nil)
	if nic != (agentapi.NIC{Name: "eth7", MAC: "52:54:00:aa:bb:cc", Driver: "ixgbe", Link: true, SpeedMbps: 10000}) {
		t.Errorf("nic = %+v", nic)
	}
	if v := r.in.inspector.nic("eth8", "52:54:00:aa:bb:cd", nil); v.PCIAddress != "0000:00:03.0" {
		t.Errorf("virtio nic = %+v, want PCI address 0000:00:03.0", v)
	}
	for i, d := range r.disks {
		if fileSum(t, d) != before[i] {
			t.Errorf("inspection changed %s", d)
		}
	}
}

func TestInspect_NoIPMIDeviceIsNotAnError(t *testing.T) {
	_, err := lanAddress(context.Background(), filepath.Join(t.TempDir(), "ipmi0"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lanAddress without a device = %v, want os.ErrNotExist", err)
	}
}

// The ioctl numbers as Linux's headers define them on x86-64 (strace shows them so):
// a struct laid out differently would change them.
func TestIPMI_IoctlNumbersMatchTheKernels(t *testing.T) {
	if ipmictlSendCommand != 0x8028690d || ipmictlReceiveMsgTrun != 0xc030690b {
		t.Errorf("IPMICTL_SEND_COMMAND %#x, IPMICTL_RECEIVE_MSG_TRUNC %#x; want 0x8028690d, 0xc030690b",
			ipmictlSendCommand, ipmictlReceiveMsgTrun)
	}
}
