package web

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/node"
)

// TestUI_DiscoveredMachineShowsItsHardwareBeforeImport: an inspected machine nobody
// imported shows vendor, model, CPU, memory and disks in the discovered table, so the
// operator can tell it from the next one, and its page lists each disk.
func TestUI_DiscoveredMachineShowsItsHardwareBeforeImport(t *testing.T) {
	h := newUI(t, uiOptions{})
	mac := node.MAC{0x52, 0x54, 0, 0xbe, 0xef, 0x01}
	for _, m := range []node.MAC{mac, {0x52, 0x54, 0, 0xbe, 0xef, 0x02}} {
		if err := h.st.RecordBoot(t.Context(), m, node.BootInfo{Firmware: "uefi", Arch: 7}); err != nil {
			t.Fatal(err)
		}
	}
	name := node.DefaultName(mac)
	if _, err := h.st.UpdateNode(t.Context(), name, func(n *node.Node) ([]node.Event, error) {
		n.Hardware = &node.Hardware{InspectedAt: time.Now().UTC(), Inventory: agentapi.Inventory{
			System: agentapi.System{Vendor: "Supermicro", Product: "SYS-1029U"},
			CPU:    agentapi.CPU{Model: "Xeon Silver 4214", Sockets: 2, Cores: 24, Threads: 48}, MemoryBytes: 192 << 30,
			Disks: []agentapi.Disk{
				{Name: "nvme0n1", Path: "/dev/nvme0n1", Size: 480 << 30, Transport: "nvme", Serial: "S4GN0001"},
				{Name: "sda", Path: "/dev/sda", Size: 4000 << 30, Transport: "sata", Serial: "ZC1A", Rotational: true},
			}}}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := newBrowser(t, h)
	base := h.srv.URL
	browserSignIn(t, ctx, base+"/ui/nodes",
		chromedp.WaitVisible("table.discovered", chromedp.ByQuery))
	var rows []string
	run(t, ctx, "read the discovered table",
		chromedp.Evaluate(`[...document.querySelectorAll("table.discovered tbody tr")].map(r => r.innerText)`, &rows))
	var inspected, other string
	for _, r := range rows {
		switch {
		case strings.Contains(r, "52:54:00:be:ef:01"):
			inspected = r
		case strings.Contains(r, "52:54:00:be:ef:02"):
			other = r
		}
	}
	for _, want := range []string{"Supermicro SYS-1029U", "Xeon Silver 4214", "192.0 GiB RAM", "2 disks (480.0 GiB nvme, 3.9 TiB sata)"} {
		if !strings.Contains(inspected, want) {
			t.Errorf("the inspected machine's row %q lacks %q", inspected, want)
		}
	}
	if !strings.Contains(other, "not inspected") {
		t.Errorf("the other machine's row %q does not say it is not inspected", other)
	}

	// Typing the vendor into the search box finds the machine by its hardware: no node
	// name starts with it, so the page searches hardware and narrows the discovered table.
	var found []string
	run(t, ctx, "search the hardware",
		chromedp.SetValue("#filter-q", "supermicro", chromedp.ByID),
		chromedp.Click("#filter-submit", chromedp.ByID),
		chromedp.WaitVisible("#search-note", chromedp.ByID),
		chromedp.Evaluate(`[...document.querySelectorAll("table.discovered tbody tr")].map(r => r.innerText)`, &found))
	if len(found) != 1 || !strings.Contains(found[0], "52:54:00:be:ef:01") {
		t.Errorf("searching supermicro left the discovered rows %q, want the inspected machine's alone", found)
	}

	var hw, disks string
	run(t, ctx, "open the machine's page",
		chromedp.Navigate(base+"/ui/nodes/"+name),
		chromedp.WaitVisible("#node-hardware", chromedp.ByID),
		chromedp.Text("#node-hardware", &hw, chromedp.ByID),
		chromedp.Evaluate(`document.querySelector("section.summary").innerText`, &disks))
	if !strings.Contains(hw, "Supermicro SYS-1029U") || !strings.Contains(hw, "inspected") {
		t.Errorf("hardware on the page: %q", hw)
	}
	for _, want := range []string{"/dev/nvme0n1 480.0 GiB nvme serial=S4GN0001", "/dev/sda 3.9 TiB sata serial=ZC1A"} {
		if !strings.Contains(disks, want) {
			t.Errorf("the page lacks %q:\n%s", want, disks)
		}
	}
}
