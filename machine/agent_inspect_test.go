package machine

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/node"
)

// TestAgentInspect_ADiscoveredMachineReportsItsHardwareAndStaysDiscovered walks an
// inspection of a machine nobody imported: requested, booted (only by the machine's
// own address), reported, stored, and over.
func TestAgentInspect_ADiscoveredMachineReportsItsHardwareAndStaysDiscovered(t *testing.T) {
	h := newAgentHarness(t)
	ctx := context.Background()
	mac := agentMAC(9)
	if err := h.st.RecordBoot(ctx, mac, node.BootInfo{Firmware: "uefi"}); err != nil {
		t.Fatal(err)
	}
	h.seen.Saw(mac, loopback)
	name := node.DefaultName(mac)
	if _, err := h.st.UpdateNode(ctx, name, func(n *node.Node) ([]node.Event, error) {
		ev, err := n.RequestInspection(agentapi.RebootAfterInspect, "test", time.Now().UTC())
		return []node.Event{ev}, err
	}); err != nil {
		t.Fatal(err)
	}
	scriptPath := "/boot.ipxe?mac=" + strings.ReplaceAll(mac.String(), ":", "-") + "&platform=efi&arch=x86_64"

	// Another address asking for the machine's script gets no token.
	code, script := h.doFrom(clientFrom("127.0.0.2"), "GET", scriptPath, "", "")
	if code != 200 || tokenOnCmdline.Match(script) {
		t.Fatalf("a foreign address got %d:\n%s", code, script)
	}
	code, script = h.do("GET", scriptPath, "", "")
	m := tokenOnCmdline.FindSubmatch(script)
	if code != 200 || m == nil || !strings.Contains(string(script), "report the hardware, change no disk") {
		t.Fatalf("the machine's own script: %d\n%s", code, script)
	}
	token := string(m[1])
	code, body := h.do("GET", "/agent/v1/task", token, "")
	var task agentapi.Task
	if code != 200 || json.Unmarshal(body, &task) != nil {
		t.Fatalf("task: %d %s", code, body)
	}
	if task.Action != agentapi.Inspect || task.AfterInspect != agentapi.RebootAfterInspect || task.Image != nil || len(task.CIData) != 0 {
		t.Errorf("task = %+v, want an inspect task with nothing else", task)
	}

	// A done without an inventory, or with nonsense, is refused and changes nothing.
	for _, bad := range []string{`{"action":"inspect"}`, `{"action":"inspect","inventory":{"memoryBytes":-1}}`,
		`{"action":"inspect","inventory":{"bmc":{"address":"not an address"}}}`} {
		if code, body := h.do("POST", "/agent/v1/done", token, bad); code != 422 {
			t.Errorf("done %s: %d %s, want 422", bad, code, body)
		}
	}
	if n := h.node(name); n.Hardware != nil || n.Inspect == nil {
		t.Fatalf("a refused report changed the node: %+v %+v", n.Hardware, n.Inspect)
	}

	inv := agentapi.Inventory{
		System:   agentapi.System{Vendor: "QEMU\x1b[31m", Product: "Standard PC (Q35 + ICH9, 2009)", Serial: "SN1", UUID: "4c4c4544-0000"},
		Firmware: agentapi.Firmware{Mode: "uefi"}, CPU: agentapi.CPU{Model: "QEMU Virtual CPU", Sockets: 1, Cores: 2, Threads: 2},
		MemoryBytes: 2 << 30,
		Disks:       []agentapi.Disk{{Name: "vda", Path: "/dev/vda", Size: 1 << 30, Serial: "V1", Transport: "virtio"}},
		NICs:        []agentapi.NIC{{Name: "eth0", MAC: mac.String(), Driver: "virtio_net", Link: true}},
		BMC:         &agentapi.BMC{Address: "10.0.0.9", Channel: 1},
	}
	b, _ := json.Marshal(agentapi.Done{Action: agentapi.Inspect, Inventory: &inv})
	if code, body := h.do("POST", "/agent/v1/done", token, string(b)); code != 200 {
		t.Fatalf("done: %d %s", code, body)
	}
	n := h.node(name)
	if n.State != node.StateDiscovered || n.Inspect != nil || n.Hardware == nil {
		t.Fatalf("after the report: state %s, request %+v, hardware %+v", n.State, n.Inspect, n.Hardware)
	}
	hw := n.Hardware
	if strings.ContainsRune(hw.System.Vendor, 0x1b) || hw.System.Serial != "SN1" || hw.MemoryBytes != 2<<30 ||
		len(hw.Disks) != 1 || hw.Disks[0].Serial != "V1" || hw.BMC == nil || hw.BMC.Address != "10.0.0.9" || hw.InspectedAt.IsZero() {
		t.Errorf("stored hardware %+v", hw)
	}
	logs := h.events(name, node.EventLog)
	if len(logs) == 0 || !strings.Contains(logs[len(logs)-1].Reason, "inspected: ") || !strings.Contains(logs[len(logs)-1].Reason, "BMC at 10.0.0.9") {
		t.Errorf("no inspected event: %+v", logs)
	}
	// The token is spent and the next boot waits again.
	if code, _ := h.do("GET", "/agent/v1/task", token, ""); code != 401 {
		t.Errorf("the spent token still works: %d", code)
	}
	if code, script := h.do("GET", scriptPath, "", ""); code != 200 || tokenOnCmdline.Match(script) {
		t.Errorf("the script after the inspection: %d\n%s", code, script)
	}
}

func TestAgentInspect_ARegisteredNodeIsInspectedBeforeItsInstallStarts(t *testing.T) {
	h := newAgentHarness(t)
	ctx := context.Background()
	h.importSeen(node.Node{Name: "w-1", MACs: []node.MAC{agentMAC(1)}, Role: node.RoleWorker})
	if _, err := h.st.UpdateNode(ctx, "w-1", func(n *node.Node) ([]node.Event, error) {
		ev, err := n.RequestInspection(agentapi.PowerOffAfterInspect, "test", time.Now().UTC())
		return []node.Event{ev}, err
	}); err != nil {
		t.Fatal(err)
	}
	code, script := h.do("GET", "/boot.ipxe?mac="+strings.ReplaceAll(agentMAC(1).String(), ":", "-")+"&platform=efi&arch=x86_64", "", "")
	if code != 200 || !strings.Contains(string(script), "inspection requested") {
		t.Fatalf("script: %d\n%s", code, script)
	}
	if got := h.node("w-1").State; got != node.StateRegistered {
		t.Errorf("state %s after the inspect script, want registered (the install waits)", got)
	}
	m := tokenOnCmdline.FindSubmatch(script)
	if m == nil {
		t.Fatal("no token")
	}
	if code, body := h.do("POST", "/agent/v1/failed", string(m[1]), `{"reason":"no disks"}`); code/100 != 2 {
		t.Fatalf("failed: %d %s", code, body)
	}
	n := h.node("w-1")
	if n.State != node.StateRegistered || n.Inspect != nil {
		t.Errorf("after a failed inspection: %s, request %+v; want registered and the request dropped", n.State, n.Inspect)
	}
	if w := h.events("w-1", node.EventWarning); len(w) == 0 || !strings.Contains(w[len(w)-1].Reason, "inspect failed: no disks") {
		t.Errorf("warnings %+v", w)
	}
}

func TestAgentInspect_InspectDiscoveredInspectsANewMachineOnItsFirstBootOnly(t *testing.T) {
	h := newAgentHarness(t, func(c *IPXEConfig) { c.InspectDiscovered = true })
	mac := agentMAC(20)
	h.seen.Saw(mac, loopback)
	path := "/boot.ipxe?mac=" + strings.ReplaceAll(mac.String(), ":", "-") + "&platform=pcbios&arch=i386"
	code, script := h.do("GET", path, "", "")
	m := tokenOnCmdline.FindSubmatch(script)
	if code != 200 || m == nil || !strings.Contains(string(script), "inspection requested") {
		t.Fatalf("first boot: %d\n%s", code, script)
	}
	code, body := h.do("GET", "/agent/v1/task", string(m[1]), "")
	var task agentapi.Task
	if code != 200 || json.Unmarshal(body, &task) != nil || task.Action != agentapi.Inspect || task.AfterInspect != agentapi.RebootAfterInspect {
		t.Fatalf("task: %d %s", code, body)
	}
	if code, body := h.do("POST", "/agent/v1/failed", string(m[1]), `{"reason":"test"}`); code/100 != 2 {
		t.Fatalf("failed: %d %s", code, body)
	}
	// A failed inspection is not retried on every boot: the machine waits for import.
	if code, script := h.do("GET", path, "", ""); code != 200 || tokenOnCmdline.Match(script) {
		t.Errorf("second boot: %d\n%s", code, script)
	}
	if n := h.node(node.DefaultName(mac)); n.State != node.StateDiscovered || n.Inspect != nil {
		t.Errorf("node %s, request %+v", n.State, n.Inspect)
	}
}
