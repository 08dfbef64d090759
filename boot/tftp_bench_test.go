package boot

import (
	"context"
	"io"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/bootyard/bootyard/boot/netns"
)

// BenchmarkTFTP1MiB fetches the 1 MiB ipxe.efi with pin/tftp's client, 10 transfers at a
// time, over a namespace's loopback, per blksize. The dnsmasq sub-benchmarks run the same
// client against dnsmasq's TFTP server on the same machine, as the yardstick.
func BenchmarkTFTP1MiB(b *testing.B) {
	netns.Require(b)
	servers := []string{"bootyard"}
	if _, err := exec.LookPath("dnsmasq"); err == nil {
		servers = append(servers, "dnsmasq")
	}
	for _, server := range servers {
		for _, blksize := range []int{512, 1468} {
			b.Run("server="+server+"/blksize="+strconv.Itoa(blksize), func(b *testing.B) {
				ns := netns.New(b, "tbench")
				dir, _ := tftpTestDir(b)
				switch server {
				case "bootyard":
					lab := &tftpLab{ns: ns, dir: dir}
					bins, err := ipxeBinaries(dir)
					if err != nil {
						b.Fatal(err)
					}
					lab.srv = startTFTPIn(b, ns, TFTPConfig{Listen: "127.0.0.1:69"}, bins)
				case "dnsmasq":
					startDnsmasqTFTP(b, ns, dir)
				}
				benchFetch(b, ns, "ipxe.efi", blksize)
			})
		}
	}
}

func benchFetch(b *testing.B, ns *netns.NS, file string, blksize int) {
	c, err := tftp.NewClient("127.0.0.1:69")
	if err != nil {
		b.Fatal(err)
	}
	c.SetBlockSize(blksize)
	c.RequestTSize(true)
	// Warm up (and wait for the server): the first request may race the bind.
	for i := 0; ; i++ {
		var wt io.WriterTo
		err := ns.Do(func() error { var err error; wt, err = c.Receive(file, "octet"); return err })
		if err == nil {
			if _, err = wt.WriteTo(io.Discard); err == nil {
				break
			}
		}
		if i == 50 {
			b.Fatalf("warm-up fetch: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var failed atomic.Uint64
	b.SetBytes(1 << 20)
	b.SetParallelism(5) // 10 transfers at a time on this machine's GOMAXPROCS of 2
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var wt io.WriterTo
			err := ns.Do(func() error { var err error; wt, err = c.Receive(file, "octet"); return err })
			if err == nil {
				var n int64
				n, err = wt.WriteTo(io.Discard)
				if err == nil && n != 1<<20 {
					failed.Add(1)
				}
			}
			if err != nil {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(failed.Load()), "failed")
}

// startDnsmasqTFTP runs dnsmasq as a TFTP-only server (no DNS, no DHCP) inside ns.
func startDnsmasqTFTP(b *testing.B, ns *netns.NS, dir string) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, "dnsmasq", "--keep-in-foreground", "--port=0", "--enable-tftp",
		"--tftp-root="+dir, "--listen-address=127.0.0.1", "--bind-interfaces", "--conf-file=/dev/null",
		"--pid-file=", "--user=root", "--tftp-max=100", "--log-facility=/dev/null")
	if err := cmd.Start(); err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); _ = cmd.Wait() })
}
