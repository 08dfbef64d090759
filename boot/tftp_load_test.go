package boot

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/loadgen"
	"github.com/bootyard/bootyard/boot/netns"
)

// TestTFTPLoad_EveryMachineGetsTheWholeFileFromBothServers runs the load generator of
// BenchmarkTFTPConcurrent against Bootyard's server and dnsmasq (where installed), lock-step
// and windowed: every read must bring the file's bytes, block by block, and Bootyard's
// server must count each read served.
func TestTFTPLoad_EveryMachineGetsTheWholeFileFromBothServers(t *testing.T) {
	netns.Require(t)
	servers := []string{"bootyard"}
	if _, err := exec.LookPath("dnsmasq"); err == nil {
		servers = append(servers, "dnsmasq")
	} else {
		t.Log("dnsmasq is not installed: Bootyard's server only")
	}
	const machines, transfers = 30, 90
	for _, server := range servers {
		for _, window := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/windowsize=%d", server, window), func(t *testing.T) {
				lab := &tftpLab{ns: netns.New(t, "tload")}
				lab.dir, _ = tftpTestDir(t)
				switch server {
				case "bootyard":
					bins, err := ipxeBinaries(lab.dir)
					if err != nil {
						t.Fatal(err)
					}
					lab.srv = startTFTPIn(t, lab.ns, TFTPConfig{Listen: "127.0.0.1:69", MaxWindowSize: 16}, bins)
				case "dnsmasq":
					startDnsmasqTFTP(t, lab.ns, lab.dir)
				}
				clients := openLoadClients(t, lab.ns, machines)
				req := loadgen.TFTPRequest{Server: tftpServerPort, File: "ipxe.efi", BlockSize: 1468, WindowSize: window, Timeout: time.Second}
				warmLoad(t, clients, req)
				var before TFTPStats
				if lab.srv != nil {
					// The warm-up's read is counted when its last ACK arrives.
					waitFor(t, "the warm-up read to end", func() bool { return lab.srv.Stats().Active == 0 })
					before = lab.srv.Stats()
				}
				want := fileBytes(t, lab, "ipxe.efi")
				res, err := loadgen.TFTPLoad(context.Background(), loadgen.TFTPLoadConfig{Clients: clients, Transfers: transfers,
					Request: req, Expect: want})
				if err != nil {
					t.Fatal(err)
				}
				t.Log(res)
				if res.Transfers != transfers || res.Failures != 0 || res.Bytes != int64(transfers*len(want)) {
					t.Fatalf("%d whole reads, %d failed, %d bytes: want %d of %d bytes (first failure %v)",
						res.Transfers, res.Failures, res.Bytes, transfers, len(want), res.Err)
				}
				if lab.srv != nil {
					waitFor(t, "the server to count every read", func() bool { return lab.srv.Stats().Active == 0 })
					if st := lab.srv.Stats(); st.Served != before.Served+transfers {
						t.Errorf("server served %d→%d, want %d more", before.Served, st.Served, transfers)
					}
					if st := lab.srv.Stats(); st.Failed != before.Failed {
						t.Errorf("server stats %+v: failed reads", st)
					}
				}
			})
		}
	}
}

// TestTFTPLoad_LostBlocksAreRecoveredAgainstBootyard loses blocks in the load's machines
// (the first copy of block 100 of every read, and in a window the block after it too):
// every read must still end whole, through the server's resend or the machine's re-sent ACK.
func TestTFTPLoad_LostBlocksAreRecoveredAgainstBootyard(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{Timeout: 100 * time.Millisecond, Retries: 5, MaxWindowSize: 16})
	const machines, transfers = 10, 30
	clients := openLoadClients(t, lab.ns, machines)
	want := fileBytes(t, lab, "ipxe.efi")
	for _, window := range []int{1, 8} {
		t.Run(fmt.Sprintf("windowsize=%d", window), func(t *testing.T) {
			before := lab.srv.Stats()
			// Each read sees block 100 once unless it is lost: lose the first transfers
			// copies of it (from any machine), so every read loses it at least once.
			var lost atomic.Int64
			req := loadgen.TFTPRequest{Server: tftpServerPort, File: "ipxe.efi", BlockSize: 1468, WindowSize: window,
				Timeout: 300 * time.Millisecond, Retries: 10,
				Drop: func(block uint16) bool { return block == 100 && lost.Add(1) <= transfers }}
			res, err := loadgen.TFTPLoad(context.Background(), loadgen.TFTPLoadConfig{Clients: clients, Transfers: transfers,
				Request: req, Expect: want})
			if err != nil {
				t.Fatal(err)
			}
			t.Log(res)
			if res.Transfers != transfers || res.Failures != 0 {
				t.Fatalf("%d whole reads, %d failed: want %d (first failure %v)", res.Transfers, res.Failures, transfers, res.Err)
			}
			waitFor(t, "the server to count every read", func() bool { return lab.srv.Stats().Active == 0 })
			if after := lab.srv.Stats(); after.Served != before.Served+transfers {
				t.Errorf("server served %d→%d, want %d more", before.Served, after.Served, transfers)
			}
			if after := lab.srv.Stats(); after.Retransmits == before.Retransmits && res.Resends == 0 {
				t.Errorf("%d blocks lost and neither the server resent (stats %+v) nor a machine re-sent", lost.Load(), after)
			}
		})
	}
}

// openLoadClients opens the load generator's machines, 127.1.0.1 on, in ns.
func openLoadClients(t testing.TB, ns *netns.NS, machines int) *loadgen.TFTPClients {
	t.Helper()
	var clients *loadgen.TFTPClients
	if err := ns.Do(func() error {
		var err error
		clients, err = loadgen.OpenTFTPClients(netip.MustParseAddr("127.1.0.1"), machines, tftpClientLoops())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clients.Close() })
	return clients
}
