package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/node"
)

func inspected(mem int64, disks ...int64) *node.Hardware {
	hw := &node.Hardware{InspectedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Inventory: agentapi.Inventory{
		System: agentapi.System{Vendor: "Dell Inc.", Product: "PowerEdge R650"}, CPU: agentapi.CPU{Model: "Xeon Gold 6338", Sockets: 2, Cores: 64, Threads: 128},
		MemoryBytes: mem, Firmware: agentapi.Firmware{Mode: "uefi"}}}
	for i, s := range disks {
		hw.Disks = append(hw.Disks, agentapi.Disk{Name: "sd" + string(rune('a'+i)), Path: "/dev/sd" + string(rune('a'+i)), Size: s, Serial: "S" + string(rune('0'+i)), Transport: "sata"})
	}
	return hw
}

func TestPrintNode_ShowsTheLatestInspection(t *testing.T) {
	var buf bytes.Buffer
	n := node.Node{Name: "w-1", State: node.StateDiscovered, Hardware: inspected(256<<30, 480<<30, 4000<<30)}
	n.Hardware.BMC = &agentapi.BMC{Address: "10.0.0.9", Channel: 1}
	printNode(&buf, n, nil)
	for _, want := range []string{"Inspected:", "2026-12-01T10:00:00Z", "Dell Inc. PowerEdge R650", "Xeon Gold 6338: 2 sockets, 64 cores, 128 threads",
		"256.0 GiB", "/dev/sda 480.0G sata serial=S0", "/dev/sdb 3.9T sata serial=S1", "BMC found:", "10.0.0.9 (channel 1)"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestNodeList_HardwareFilterKeepsOnlyMatchingInspectedNodes(t *testing.T) {
	nodes := []node.Node{
		{Name: "big", Hardware: inspected(512<<30, 1<<40, 1<<40, 1<<40)},
		{Name: "small", Hardware: inspected(16<<30, 1<<40)},
		{Name: "uninspected"},
	}
	tests := []struct {
		f    hardwareFilter
		want string
	}{
		{hardwareFilter{minMemory: "64G"}, "big"},
		{hardwareFilter{minDisks: 2}, "big"},
		{hardwareFilter{text: "poweredge"}, "big,small"},
		{hardwareFilter{minMemory: "1", minDisks: 1}, "big,small"},
	}
	for _, tt := range tests {
		if err := tt.f.parse(); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range nodes {
			if tt.f.keep(n) {
				got = append(got, n.Name)
			}
		}
		if strings.Join(got, ",") != tt.want {
			t.Errorf("%+v kept %v, want %s", tt.f, got, tt.want)
		}
	}
	bad := hardwareFilter{minMemory: "lots"}
	if err := bad.parse(); err == nil {
		t.Error("--min-memory lots accepted")
	}
}
