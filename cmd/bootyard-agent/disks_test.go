package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bootyard/bootyard/agentapi"
)

// fakeSys builds a sysfs tree as the kernel lays it out: the disk's directory under
// devices/, /sys/block/NAME a link to it, and device a link to its parent device.
type fakeSys struct {
	t    *testing.T
	root string
}

func (f fakeSys) disk(name, devPath, parentRel string, files map[string]string) {
	f.t.Helper()
	dir := filepath.Join(f.root, "devices", devPath, name)
	for p, v := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(v), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	os.MkdirAll(dir, 0o755)
	if parentRel != "" {
		if err := os.Symlink(parentRel, filepath.Join(dir, "device")); err != nil {
			f.t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(f.root, "block"), 0o755)
	if err := os.Symlink(dir, filepath.Join(f.root, "block", name)); err != nil {
		f.t.Fatal(err)
	}
}

func (f fakeSys) file(rel, v string) {
	full := filepath.Join(f.root, "devices", rel)
	os.MkdirAll(filepath.Dir(full), 0o755)
	os.WriteFile(full, []byte(v), 0o644)
}

func TestReadDisks_ReadsIdentityFromSysfsAsUdevWouldNameIt(t *testing.T) {
	f := fakeSys{t, t.TempDir()}
	// virtio-blk with serial=
	f.disk("vda", "pci0000:00/0000:00:04.0/virtio1/block", "../../../virtio1",
		map[string]string{"size": "2097152\n", "removable": "0\n", "queue/rotational": "1\n", "serial": "VIRT-1\n"})
	f.file("pci0000:00/0000:00:04.0/virtio1/vendor", "0x554d4551\n")
	// NVMe: model and serial on the controller, wwid on the namespace
	f.disk("nvme0n1", "pci0000:00/0000:00:05.0/nvme/nvme0", "../../nvme0",
		map[string]string{"size": "4194304\n", "removable": "0\n", "queue/rotational": "0\n", "nsid": "1\n",
			"wwid": "nvme.1b36-4e564d452d31-51454d55204e564d65204374726c-00000001\n"})
	f.file("pci0000:00/0000:00:05.0/nvme/nvme0/model", "QEMU NVMe Ctrl                          \n")
	f.file("pci0000:00/0000:00:05.0/nvme/nvme0/serial", "NVME-1              \n")
	// SATA on AHCI: serial from VPD page 0x80, WWN from the naa wwid, the port's number
	f.disk("sda", "pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/block", "../../../2:0:0:0",
		map[string]string{"size": "8388608\n", "removable": "0\n", "queue/rotational": "1\n"})
	f.file("pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/model", "QEMU HARDDISK   \n")
	f.file("pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/vendor", "ATA     \n")
	f.file("pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/vpd_pg80", "\x00\x80\x00\x14SATA-1              ")
	f.file("pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/wwid", "naa.5000C500A1B2C3D4\n")
	f.file("pci0000:00/0000:00:1f.2/ata3/ata_port/ata3/port_no", "3\n")
	// a USB stick, a loop device and an empty card reader
	f.disk("sdb", "pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host3/target3:0:0/3:0:0:0/block", "../../../3:0:0:0",
		map[string]string{"size": "1024\n", "removable": "1\n", "queue/rotational": "0\n"})
	f.disk("loop0", "virtual/block", "", map[string]string{"size": "100\n", "removable": "0\n"})
	f.disk("sdc", "pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host4/target4:0:0/4:0:0:0/block", "../../../4:0:0:0",
		map[string]string{"size": "0\n", "removable": "1\n"})

	got, err := readDisks(filepath.Join(f.root, "block"), "/dev")
	if err != nil {
		t.Fatal(err)
	}
	want := []agentapi.Disk{
		{Name: "sda", Path: "/dev/sda", Size: 8388608 * 512, Model: "QEMU HARDDISK", Vendor: "ATA", Serial: "SATA-1",
			WWN: "0x5000c500a1b2c3d4", Transport: "sata", Rotational: true, ByPath: "/dev/disk/by-path/pci-0000:00:1f.2-ata-3",
			ByID: []string{"/dev/disk/by-id/ata-QEMU_HARDDISK_SATA-1", "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"}},
		{Name: "sdb", Path: "/dev/sdb", Size: 1024 * 512, Transport: "usb", Removable: true},
		{Name: "vda", Path: "/dev/vda", Size: 2097152 * 512, Serial: "VIRT-1", Transport: "virtio", Rotational: true,
			ByPath: "/dev/disk/by-path/pci-0000:00:04.0", ByID: []string{"/dev/disk/by-id/virtio-VIRT-1"}},
		{Name: "nvme0n1", Path: "/dev/nvme0n1", Size: 4194304 * 512, Model: "QEMU NVMe Ctrl", Serial: "NVME-1",
			WWN: "nvme.1b36-4e564d452d31-51454d55204e564d65204374726c-00000001", Transport: "nvme",
			ByPath: "/dev/disk/by-path/pci-0000:00:05.0-nvme-1",
			ByID:   []string{"/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_NVME-1", "/dev/disk/by-id/nvme-nvme.1b36-4e564d452d31-51454d55204e564d65204374726c-00000001"}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d disks %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Path != w.Path || g.Size != w.Size || g.Model != w.Model || g.Vendor != w.Vendor ||
			g.Serial != w.Serial || g.WWN != w.WWN || g.Transport != w.Transport || g.Rotational != w.Rotational ||
			g.Removable != w.Removable || g.ByPath != w.ByPath || !slices.Equal(g.ByID, w.ByID) {
			t.Errorf("disk %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}
