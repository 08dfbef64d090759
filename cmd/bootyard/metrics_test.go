package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/netns"
)

// scrape reads /metrics into "name{labels}" → value.
func scrape(t *testing.T, lab *labServer) map[string]float64 {
	t.Helper()
	req, err := http.NewRequest("GET", lab.url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	// /metrics is private without --metrics-token: the admin token reads it.
	req.Header.Set("Authorization", "Bearer "+lab.token)
	resp, err := lab.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetrics_CountOneDHCPExchangeOneTFTPTransferAndOneRefusedNoCloudRequest drives each
// service once with a real client inside the lab namespace and reads the counters.
func TestMetrics_CountOneDHCPExchangeOneTFTPTransferAndOneRefusedNoCloudRequest(t *testing.T) {
	netns.Require(t)
	for _, tool := range []string{"busybox", "curl"} {
		if _, err := os.Stat("/usr/bin/" + tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	if _, err := os.Stat("/usr/lib/ipxe/ipxe.efi"); err != nil {
		t.Skip("Debian package ipxe not installed")
	}
	bin := buildBinary(t)
	lab := startLab(t, bin)
	before := scrape(t, lab)
	for _, k := range []string{`bootyard_dhcp_leases{status="free"}`, `bootyard_nodes{state="registered"}`} {
		if _, ok := before[k]; !ok {
			t.Errorf("metric %s missing before any traffic", k)
		}
	}
	if before[`bootyard_dhcp_leases{status="free"}`] != 51 {
		t.Errorf("free leases %v, want 51 (10.77.0.100-150)", before[`bootyard_dhcp_leases{status="free"}`])
	}

	client := netns.New(t, "mc")
	netns.Link(t, lab.ns, "vlab0", client, "eth0")
	lab.ns.Enslave("vlab0", "br0")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// One DHCP exchange: DISCOVER/OFFER/REQUEST/ACK, from busybox's client.
	if out, err := client.Exec(ctx, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-s", "/bin/true"); err != nil {
		t.Fatalf("udhcpc: %v\n%s", err, out)
	}
	// One TFTP transfer, with an address of the client's own outside the range.
	client.AddAddr("eth0", netip.MustParsePrefix("10.77.0.50/24"))
	if out, err := client.Exec(ctx, "curl", "-sS", "-o", "/dev/null", "tftp://10.77.0.1/ipxe.efi"); err != nil {
		t.Fatalf("curl tftp: %v\n%s", err, out)
	}
	// One refused NoCloud request: nobody owns this MAC.
	resp, err := lab.client.Get(lab.url + "/nocloud/52:54:00:de:ad:01/user-data")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 4 {
		t.Fatalf("NoCloud for an unknown MAC answered %d", resp.StatusCode)
	}

	// One iPXE script, for a machine nobody imported.
	if resp, err := lab.client.Get(lab.url + "/boot.ipxe?mac=52:54:00:de:ad:02"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}

	after := scrape(t, lab)
	tests := []struct {
		metric string
		delta  float64
	}{
		{`bootyard_dhcp_packets_total{result="received",type="discover"}`, 1},
		{`bootyard_dhcp_packets_total{result="sent",type="offer"}`, 1},
		{`bootyard_dhcp_packets_total{result="received",type="request"}`, 1},
		{`bootyard_dhcp_packets_total{result="sent",type="ack"}`, 1},
		{`bootyard_dhcp_leases{status="in_use"}`, 1},
		{`bootyard_dhcp_leases{status="free"}`, -1},
		{`bootyard_tftp_transfers_total{result="served"}`, 1},
		{`bootyard_tftp_bytes_total`, 0}, // checked below against the file size
		{`bootyard_tftp_windowsize_count`, 1},
		{`bootyard_tftp_windowsize_bucket{le="1"}`, 1}, // curl does not ask for a window
		{`bootyard_tftp_transfers_active`, 0},
		{`bootyard_nocloud_requests_total{outcome="refused"}`, 1},
		{`bootyard_ipxe_scripts_total{state="discovered"}`, 1},
		{`bootyard_nodes{state="discovered"}`, 1},
	}
	for _, tc := range tests {
		got := after[tc.metric] - before[tc.metric]
		if tc.metric == `bootyard_tftp_bytes_total` {
			info, err := os.Stat("/usr/lib/ipxe/ipxe.efi")
			if err != nil {
				t.Fatal(err)
			}
			if got != float64(info.Size()) {
				t.Errorf("%s grew by %v, want the file's %d bytes", tc.metric, got, info.Size())
			}
			continue
		}
		if got != tc.delta {
			t.Errorf("%s changed by %v, want %v (before %v, after %v)", tc.metric, got, tc.delta, before[tc.metric], after[tc.metric])
		}
	}
}
