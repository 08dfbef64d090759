package node

import (
	"testing"

	"github.com/bootyard/bootyard/agentapi"
)

func TestHardwareFilter_MatchesMemoryDisksAndText(t *testing.T) {
	big := &Hardware{Inventory: agentapi.Inventory{
		System:      agentapi.System{Vendor: "Dell Inc.", Product: "PowerEdge R650", Serial: "7XK2Q"},
		CPU:         agentapi.CPU{Model: "Intel Xeon Gold 6338"},
		MemoryBytes: 512 << 30,
		Disks: []agentapi.Disk{
			{Name: "sda", Size: 480 << 30, Model: "MZ7LH480", Serial: "S4F1NX0", WWN: "0x5002538e"},
			{Name: "nvme0n1", Size: 4 << 40, Model: "Samsung PM9A3", Vendor: "Samsung"},
		},
	}}
	tests := []struct {
		name string
		f    HardwareFilter
		hw   *Hardware
		want bool
	}{
		{"zero filter, uninspected", HardwareFilter{}, nil, true},
		{"any filter, uninspected", HardwareFilter{MinDisks: 0, Text: "dell"}, nil, false},
		{"memory at the bound", HardwareFilter{MinMemory: 512 << 30}, big, true},
		{"memory above", HardwareFilter{MinMemory: 513 << 30}, big, false},
		{"disk count at the bound", HardwareFilter{MinDisks: 2}, big, true},
		{"disk count above", HardwareFilter{MinDisks: 3}, big, false},
		{"vendor, any case", HardwareFilter{Text: "DELL"}, big, true},
		{"vendor and product as printed", HardwareFilter{Text: "inc. poweredge"}, big, true},
		{"system serial", HardwareFilter{Text: "7xk2q"}, big, true},
		{"CPU model", HardwareFilter{Text: "gold 6338"}, big, true},
		{"disk model", HardwareFilter{Text: "pm9a3"}, big, true},
		{"disk serial", HardwareFilter{Text: "S4F1NX0"}, big, true},
		{"disk WWN", HardwareFilter{Text: "5002538e"}, big, true},
		{"text nowhere", HardwareFilter{Text: "supermicro"}, big, false},
		{"text and a failing bound", HardwareFilter{Text: "dell", MinDisks: 3}, big, false},
	}
	for _, tt := range tests {
		if got := tt.f.Matches(tt.hw); got != tt.want {
			t.Errorf("%s: %+v matches %v, want %v", tt.name, tt.f, got, tt.want)
		}
	}
}

func TestHardwareClone_SharesNothingWithTheOriginal(t *testing.T) {
	on := true
	h := &Hardware{Inventory: agentapi.Inventory{Firmware: agentapi.Firmware{SecureBoot: &on},
		Disks: []agentapi.Disk{{Name: "sda", ByID: []string{"ata-X"}}}, NICs: []agentapi.NIC{{Name: "eth0"}},
		BMC: &agentapi.BMC{Address: "10.0.0.9"}}}
	c := h.Clone()
	*c.Firmware.SecureBoot = false
	c.Disks[0].Name, c.Disks[0].ByID[0], c.NICs[0].Name, c.BMC.Address = "sdb", "ata-Y", "eth1", "10.0.0.10"
	if !*h.Firmware.SecureBoot || h.Disks[0].Name != "sda" || h.Disks[0].ByID[0] != "ata-X" || h.NICs[0].Name != "eth0" || h.BMC.Address != "10.0.0.9" {
		t.Errorf("changing the clone changed the original: %+v", h)
	}
	if (*Hardware)(nil).Clone() != nil {
		t.Error("a nil inspection cloned to a non-nil one")
	}
}
