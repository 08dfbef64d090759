package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// StormConfig is a boot storm: Machines simulated UEFI machines, Concurrent of them
// booting at once, each doing what a rack does after a power cut:
//
//  1. DHCP as the PXE ROM (PXEClient, architecture 7): a lease, siaddr and ipxe.efi,
//  2. TFTP of that file from the leased address,
//  3. DHCP again as iPXE (user class iPXE, option 175): the script's URL,
//  4. HTTP GET of the script from the leased address.
type StormConfig struct {
	// DHCP is the DORA set-up shared by every machine: the port-68 socket, the server
	// address, MAC prefix, timeout and retries. Its Clients and Exchanges are unused.
	DHCP       Config
	Machines   int
	Concurrent int
	// TFTP is the read each machine makes; Server and File come from the DHCP answer.
	TFTP TFTPRequest
	// ListenUDP opens a UDP socket on the leased address, and DialTCP a connection from
	// it, where the machines live (their namespace).
	ListenUDP func(ip netip.Addr) (*net.UDPConn, error)
	DialTCP   func(ctx context.Context, ip netip.Addr, server string) (net.Conn, error)
}

// Phases of one machine's boot, in order.
var Phases = [...]string{"dhcp-pxe", "tftp", "dhcp-ipxe", "http", "machine"}

// PhaseTimes are one phase's percentiles over the machines that booted.
type PhaseTimes struct{ P50, P99, Max time.Duration }

// StormResult is what a storm measured.
type StormResult struct {
	Booted, Failures int
	NAKs             int // DHCP restarts after a NAK (the machines then booted or failed)
	Elapsed          time.Duration
	Rate             float64 // machines booted per second
	Phases           map[string]PhaseTimes
	Errors           []string // the first few distinct failures
}

func (r StormResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d machines (%d failed, %d DHCP restarts after NAK) in %s: %.1f machines/s", r.Booted, r.Failures,
		r.NAKs, r.Elapsed.Round(time.Millisecond), r.Rate)
	for _, p := range Phases {
		t := r.Phases[p]
		fmt.Fprintf(&b, "; %s p50 %s p99 %s", p, t.P50.Round(100*time.Microsecond), t.P99.Round(100*time.Microsecond))
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, "; errors: %s", strings.Join(r.Errors, " | "))
	}
	return b.String()
}

// Storm boots cfg.Machines machines, cfg.Concurrent at a time.
func Storm(ctx context.Context, cfg StormConfig) (StormResult, error) {
	if cfg.DHCP.Conn == nil || cfg.Machines <= 0 || cfg.Concurrent <= 0 || cfg.ListenUDP == nil || cfg.DialTCP == nil {
		return StormResult{}, errors.New("loadgen: a storm needs a DHCP socket, machines, concurrency and socket openers")
	}
	cfg.DHCP = cfg.DHCP.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, stop, err := startDemux(ctx, cfg.DHCP.Conn)
	if err != nil {
		return StormResult{}, err
	}
	defer stop()

	var naks atomic.Int64
	var mu sync.Mutex
	var res StormResult
	lat := make([][]time.Duration, len(Phases))
	res.Elapsed = forEach(ctx, cfg.Concurrent, cfg.Machines, func(w, i int) {
		// Spread, not consecutive: dnsmasq picks an address by a hash of the MAC that
		// maps consecutive MACs to consecutive addresses, so a storm of them collides on
		// its (unreserved) offers and is NAKed half the time. Real NICs in a rack are not
		// that regular; both servers get the same MACs.
		mac := cfg.DHCP.mac(uint32(i) * 0x9e3779b1)
		times, err := bootMachine(ctx, cfg, d, mac, uint32(w), &naks)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Failures++
			if msg := err.Error(); len(res.Errors) < 5 && !slices.Contains(res.Errors, msg) {
				res.Errors = append(res.Errors, msg)
			}
			return
		}
		res.Booted++
		for p, t := range times {
			lat[p] = append(lat[p], t)
		}
	})
	res.NAKs = int(naks.Load())
	if res.Elapsed > 0 {
		res.Rate = float64(res.Booted) / res.Elapsed.Seconds()
	}
	res.Phases = make(map[string]PhaseTimes, len(Phases))
	for p, name := range Phases {
		var t PhaseTimes
		t.P50, t.P99, t.Max = percentiles(lat[p])
		res.Phases[name] = t
	}
	return res, ctx.Err()
}

// The classes a UEFI x64 PXE ROM and then iPXE send (RFC 4578, iPXE's option 175 with
// its HTTP feature flag), so servers choose the binary and then the script.
var (
	pxeOptions = []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7}),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName),
	}
	ipxeOptions = []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003010")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7}),
		dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE")),
		dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), []byte{0x13, 1, 1}),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionBootfileName),
	}
)

// maxNAKRestarts bounds how often a machine starts DHCP over after a NAK.
const maxNAKRestarts = 4

// doraRestarting is a client's DHCP as RFC 2131 (3.1, step 5) has it: a NAK sends it
// back to DISCOVER. A server that offers one free address to two machines at once (dnsmasq
// does, under a storm) NAKs the second REQUEST; naks counts those restarts.
func doraRestarting(ctx context.Context, cfg Config, d *demux, mac [6]byte, worker uint32, naks *atomic.Int64, mods ...dhcpv4.Modifier) (*dhcpv4.DHCPv4, error) {
	for i := 0; ; i++ {
		ack, err := dora(ctx, cfg, d, mac, worker, mods...)
		if !errors.Is(err, errNAK) || i == maxNAKRestarts {
			return ack, err
		}
		naks.Add(1)
	}
}

// bootMachine runs one machine's boot and returns each phase's duration.
func bootMachine(ctx context.Context, cfg StormConfig, d *demux, mac [6]byte, worker uint32, naks *atomic.Int64) ([len(Phases)]time.Duration, error) {
	var times [len(Phases)]time.Duration
	t0 := time.Now()
	ack, err := doraRestarting(ctx, cfg.DHCP, d, mac, worker, naks, pxeOptions...)
	if err != nil {
		return times, fmt.Errorf("dhcp-pxe: %w", err)
	}
	ip := yourIP(ack)
	file := ack.BootFileNameOption()
	if file == "" {
		file = ack.BootFileName
	}
	tftpServer, ok := netip.AddrFromSlice(ack.ServerIPAddr.To4())
	if !ok || tftpServer.IsUnspecified() || file == "" {
		return times, fmt.Errorf("dhcp-pxe: no TFTP server or boot file in the ACK (siaddr %s, file %q)", ack.ServerIPAddr, file)
	}
	t1 := time.Now()
	times[0] = t1.Sub(t0)

	conn, err := cfg.ListenUDP(ip)
	if err != nil {
		return times, fmt.Errorf("tftp: socket on %s: %w", ip, err)
	}
	req := cfg.TFTP
	req.Server, req.File = netip.AddrPortFrom(tftpServer, 69), file
	_, err = TFTPGet(ctx, conn, req, io.Discard)
	conn.Close()
	if err != nil {
		return times, fmt.Errorf("tftp from %s: %w", ip, err)
	}
	t2 := time.Now()
	times[1] = t2.Sub(t1)

	ack, err = doraRestarting(ctx, cfg.DHCP, d, mac, worker, naks, ipxeOptions...)
	if err != nil {
		return times, fmt.Errorf("dhcp-ipxe: %w", err)
	}
	script := ack.BootFileNameOption()
	if script == "" {
		script = ack.BootFileName
	}
	if got := yourIP(ack); got != ip {
		return times, fmt.Errorf("dhcp-ipxe: leased %s, the PXE ROM had %s", got, ip)
	}
	t3 := time.Now()
	times[2] = t3.Sub(t2)

	if err := getScript(ctx, cfg, ip, script); err != nil {
		return times, fmt.Errorf("http from %s: %w", ip, err)
	}
	t4 := time.Now()
	times[3] = t4.Sub(t3)
	times[4] = t4.Sub(t0)
	return times, nil
}

// getScript fetches the iPXE script over one HTTP/1.1 connection from the leased address
// and checks it is one.
func getScript(ctx context.Context, cfg StormConfig, ip netip.Addr, script string) error {
	u, err := url.Parse(script)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("script URL %q is not http", script)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	conn, err := cfg.DialTCP(ctx, ip, host)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, script, nil)
	if err != nil {
		return err
	}
	req.Close = true
	req.Header.Set("User-Agent", "iPXE/1.21.1")
	if err := req.Write(conn); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "#!ipxe") {
		return fmt.Errorf("GET %s: %s, %d bytes, want an iPXE script", script, resp.Status, len(body))
	}
	return nil
}
