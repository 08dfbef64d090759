package rootdisk

import (
	"errors"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/agentapi"
)

const gib = 1 << 30

// server is a machine with a small boot SSD, two big data disks that differ only in
// serial, and a USB stick.
var server = []agentapi.Disk{
	{Name: "sda", Path: "/dev/sda", Size: 4000 * gib, Model: "ST4000NM0035-1V4", Vendor: "ATA", Serial: "ZC1A", WWN: "0x5000c500a1b2c3d4",
		Transport: "sata", Rotational: true, ByPath: "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"},
	{Name: "sdb", Path: "/dev/sdb", Size: 4000 * gib, Model: "ST4000NM0035-1V4", Vendor: "ATA", Serial: "ZC1B", WWN: "0x5000c500a1b2c3d5",
		Transport: "sata", Rotational: true, ByPath: "/dev/disk/by-path/pci-0000:00:1f.2-ata-2"},
	{Name: "nvme0n1", Path: "/dev/nvme0n1", Size: 480 * gib, Model: "SAMSUNG MZ1LB480HAJQ-00007  ", Serial: "S4GN ", Transport: "nvme",
		ByPath: "/dev/disk/by-path/pci-0000:01:00.0-nvme-1"},
	{Name: "sdc", Path: "/dev/sdc", Size: 32 * gib, Model: "Cruzer", Serial: "USB1", Transport: "usb", Removable: true},
}

func TestSelect_InstallsOnlyOnTheOneDiskTheHintsName(t *testing.T) {
	tests := []struct {
		hints, want string
	}{
		{"serial=ZC1B", "/dev/sdb"},
		{"serial=s4gn", "/dev/nvme0n1"}, // case and sysfs padding aside
		{"wwn=5000C500A1B2C3D4", "/dev/sda"},
		{"size>=400G,size<1T", "/dev/nvme0n1"},
		{"size==480", "/dev/nvme0n1"},
		{"rotational=false", "/dev/nvme0n1"},
		{"model=<in> samsung", "/dev/nvme0n1"},
		{"name=sdb", "/dev/sdb"},
		{"name=/dev/sda", "/dev/sda"},
		{"by_path=pci-0000:00:1f.2-ata-2", "/dev/sdb"},
		{"vendor=ATA,serial!=ZC1A", "/dev/sdb"},
		{"serial=<or> ZC1A <or> NOPE", "/dev/sda"},
	}
	for _, tt := range tests {
		t.Run(tt.hints, func(t *testing.T) {
			h, err := Parse(tt.hints)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Select(h, server, 10*gib)
			if err != nil {
				t.Fatalf("Select: %v", err)
			}
			if c.Disk.Path != tt.want {
				t.Errorf("selected %s, want %s", c.Disk.Path, tt.want)
			}
			if !strings.Contains(c.Reason, tt.want) {
				t.Errorf("reason %q does not name the disk", c.Reason)
			}
		})
	}
}

func TestSelect_NoMatchOrSeveralFailsAndListsTheCandidates(t *testing.T) {
	tests := []struct {
		hints   string
		kind    error
		listed  []string
		omitted []string
	}{
		{"size>=1T", ErrAmbiguous, []string{"/dev/sda", "serial=ZC1A", "/dev/sdb", "serial=ZC1B"}, []string{"nvme0n1"}},
		{"serial=NOPE", ErrNoDisk, []string{"/dev/sda", "/dev/sdb", "/dev/nvme0n1"}, []string{"sdc"}},
		// The USB stick is never a candidate, even by name.
		{"name=sdc", ErrNoDisk, []string{"/dev/sda"}, []string{"Cruzer"}},
		{"serial=S4GN,size>=500G", ErrNoDisk, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.hints, func(t *testing.T) {
			h, err := Parse(tt.hints)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Select(h, server, gib)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("Select = %v, want %v", err, tt.kind)
			}
			for _, s := range tt.listed {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not list %s", err, s)
				}
			}
			for _, s := range tt.omitted {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q lists %s", err, s)
				}
			}
		})
	}
}

func TestSelect_WithoutHintsTakesTheSmallestFixedDiskThatFits(t *testing.T) {
	c, err := Select(Hints{}, server, 10*gib)
	if err != nil || c.Disk.Path != "/dev/nvme0n1" {
		t.Fatalf("Select = %+v, %v; want /dev/nvme0n1 (the USB stick is smaller but removable)", c.Disk, err)
	}
	if !strings.Contains(c.Reason, "smallest non-removable disk that fits") {
		t.Errorf("reason %q does not say why", c.Reason)
	}
	// An image bigger than the SSD goes to the first of the equal data disks.
	c, err = Select(Hints{}, server, 1000*gib)
	if err != nil || c.Disk.Path != "/dev/sda" {
		t.Errorf("Select(1000G) = %+v, %v; want /dev/sda", c.Disk, err)
	}
	if _, err := Select(Hints{}, server, 5000*gib); !errors.Is(err, ErrNoDisk) {
		t.Errorf("Select(5000G) = %v, want ErrNoDisk", err)
	}
	// A hinted disk must still hold the image.
	h, _ := Parse("serial=S4GN")
	if _, err := Select(h, server, 1000*gib); !errors.Is(err, ErrNoDisk) || !strings.Contains(err.Error(), "needs") {
		t.Errorf("hinted disk too small: %v", err)
	}
	if _, err := Select(Hints{}, server[3:], 0); !errors.Is(err, ErrNoDisk) {
		t.Errorf("only a removable disk: %v, want ErrNoDisk", err)
	}
}
