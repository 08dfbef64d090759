package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store/storetest"
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

// TestNodeList_HardwareFlagsFilterOnTheServerSoLimitCountsMatches: the flags become the
// API's parameters, so --limit 1 prints a match even when the first nodes by name are
// not inspected, and a bad size is the API's 422 naming the parameter.
func TestNodeList_HardwareFlagsFilterOnTheServerSoLimitCountsMatches(t *testing.T) {
	cli, st := inProcessCLIStore(t)
	for i, name := range []string{"a-uninspected", "big", "small"} {
		if _, err := cli("node", "import", fmt.Sprintf("52:54:00:17:00:%02x", i+1), "--role", "worker", "--name", name); err != nil {
			t.Fatal(err)
		}
	}
	for name, hw := range map[string]*node.Hardware{"big": inspected(512<<30, 1<<40, 1<<40, 1<<40), "small": inspected(16<<30, 1<<40)} {
		storetest.SetHardware(t, st, name, hw)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--min-memory", "64G"}, "big"},
		{[]string{"--min-disks", "2"}, "big"},
		{[]string{"--hardware", "poweredge"}, "big,small"},
		{[]string{"--hardware", "S1"}, "big"}, // the second disk's serial
		{[]string{"--min-memory", "1", "--limit", "1"}, "big"},
		{[]string{"--min-disks", "1", "--limit", "1", "--chunk-size", "1", "--name", "s"}, "small"},
	}
	for _, tt := range tests {
		out, err := cli(append([]string{"node", "list", "-o", "json"}, tt.args...)...)
		var listed []node.Node
		if err != nil || json.Unmarshal([]byte(out), &listed) != nil {
			t.Fatalf("%v: %v\n%s", tt.args, err, out)
		}
		var got []string
		for _, n := range listed {
			got = append(got, n.Name)
		}
		if strings.Join(got, ",") != tt.want {
			t.Errorf("%v listed %v, want %s", tt.args, got, tt.want)
		}
	}
	if out, err := cli("node", "list", "--min-memory", "lots"); err == nil || !strings.Contains(out+err.Error(), "minMemory") {
		t.Errorf("--min-memory lots: %v\n%s", err, out)
	}
}
