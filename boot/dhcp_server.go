package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// Inventory is what the DHCP server needs to know about machines.
type Inventory interface {
	// Reservations lists the nodes' static addresses; re-read every ReservationRefresh.
	Reservations(ctx context.Context) ([]store.Reservation, error)
	// RecordBoot notes a PXE/iPXE client's firmware (creating a discovered node for an
	// unknown MAC). Called off the packet path.
	RecordBoot(ctx context.Context, mac node.MAC, seen node.BootInfo) error
}

// LeaseStore is the durable copy of the leases.
type LeaseStore interface {
	Leases(ctx context.Context) ([]store.Lease, error)
	PutLeases(ctx context.Context, leases ...store.Lease) error
}

// DHCPServer answers DHCP on one interface, in full or proxy mode.
type DHCPServer struct {
	cfg    DHCPConfig
	link   link
	inv    Inventory
	log    *slog.Logger
	now    func() time.Time
	pools  []*subnetPool // pools[0] is the interface's own subnet (full mode)
	table  *leaseTable
	resv   atomic.Pointer[reservations]
	limit  *macLimiter
	commit *leaseCommitter
	boots  chan bootRecord
	// refreshNow asks the refresh loop for a reservations refresh; its one slot
	// coalesces a burst of node changes (a bulk import of 100,000 nodes with addresses)
	// into one refresh instead of one per node.
	refreshNow chan struct{}
	stats      dhcpCounters
	// exhaustedLog holds back repeats of "pool exhausted", which every DISCOVER of a
	// flood would otherwise log.
	exhaustedLog logThrottle
	// handlePacket is handle; tests put a handler that panics in its place to prove
	// that a panic costs one packet, not the server.
	handlePacket func(ctx context.Context, b []byte, port int, peer netip.AddrPort) ([]byte, netip.AddrPort, bool)

	scriptPrefix string // <advertise>/boot.ipxe?mac=
	httpPrefix   string // <advertise>/ipxe/
	tftpServer   netip.Addr

	conn      *net.UDPConn // port 67
	proxyConn *net.UDPConn // port 4011, proxy mode only
	closeOnce sync.Once
}

// NewDHCP resolves the interface, loads the leases and static addresses, and opens the
// sockets (in the caller's network namespace). Run serves them; Close releases them if
// Run is never called.
func NewDHCP(cfg DHCPConfig, inv Inventory, leases LeaseStore, logger *slog.Logger) (*DHCPServer, error) {
	l, err := resolveInterface(cfg.Interface)
	if err != nil {
		return nil, err
	}
	s, err := newDHCP(cfg, l, inv, leases, logger)
	if err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// newDHCP builds everything but the sockets; tests and the fuzz target drive handle
// directly on it.
func newDHCP(cfg DHCPConfig, l link, inv Inventory, leases LeaseStore, logger *slog.Logger) (*DHCPServer, error) {
	cfg.setDefaults()
	if err := cfg.validate(l); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &DHCPServer{
		cfg: cfg, link: l, inv: inv, log: logger.With(slog.String("component", "dhcp"), slog.String("interface", l.name)),
		now:   func() time.Time { return time.Now().UTC() },
		limit: newMACLimiter(cfg.PerMACRate, cfg.PerMACBurst),
		boots: make(chan bootRecord, 1024),

		refreshNow: make(chan struct{}, 1),
	}
	s.commit = newLeaseCommitter(leases, &s.stats, cfg.Workers)
	s.handlePacket = s.handle
	advertise := strings.TrimRight(cfg.AdvertiseURL, "/")
	s.scriptPrefix = advertise + "/boot.ipxe?mac="
	s.httpPrefix = advertise + "/ipxe/"
	s.tftpServer = cfg.TFTPServer
	if !s.tftpServer.IsValid() {
		s.tftpServer = l.addr
	}
	if cfg.Mode == ModeFull {
		s.pools = append(s.pools, newSubnetPool(l.subnet, cfg.Range, cfg.Router, cfg.DNS, l.addr))
		for _, r := range cfg.Relayed {
			dns := r.DNS
			if dns == nil {
				dns = cfg.DNS
			}
			s.pools = append(s.pools, newSubnetPool(r.Subnet, r.Range, r.Router, dns, l.addr))
		}
	}
	ctx := context.Background()
	all, err := leases.Leases(ctx)
	if err != nil {
		return nil, fmt.Errorf("dhcp: load leases: %w", err)
	}
	s.table = newLeaseTable(all)
	s.table.sharedLeases = cfg.SharedLeases
	if err := s.RefreshReservations(ctx); err != nil {
		return nil, err
	}
	s.log.Info("dhcp ready", slog.String("mode", string(cfg.Mode)), slog.String("address", l.addr.String()),
		slog.String("subnet", l.subnet.String()), slog.Int("leases", len(all)))
	return s, nil
}

func (s *DHCPServer) listen() error {
	var err error
	// server4's socket is bound to the interface (SO_BINDTODEVICE) with SO_BROADCAST:
	// replies to clients without an address go out as broadcasts on that link only.
	s.conn, err = server4.NewIPv4UDPConn(s.link.name, &net.UDPAddr{Port: s.cfg.ServerPort})
	if err != nil {
		return fmt.Errorf("dhcp: listen on %s port %d: %w", s.link.name, s.cfg.ServerPort, err)
	}
	growReadBuffer(s.conn, requestReadBuffer, s.log)
	if s.cfg.Mode == ModeProxy {
		s.proxyConn, err = server4.NewIPv4UDPConn(s.link.name, &net.UDPAddr{Port: s.cfg.ProxyPort})
		if err != nil {
			s.conn.Close()
			return fmt.Errorf("dhcp: listen on %s port %d: %w", s.link.name, s.cfg.ProxyPort, err)
		}
	}
	return nil
}

// Close releases the sockets. Run calls it on the way out.
func (s *DHCPServer) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.conn != nil {
			err = s.conn.Close()
		}
		if s.proxyConn != nil {
			err = errors.Join(err, s.proxyConn.Close())
		}
	})
	return err
}

// Addr is the server's address on its interface (the server identifier).
func (s *DHCPServer) Addr() netip.Addr { return s.link.addr }

// Stats returns the counters.
func (s *DHCPServer) Stats() DHCPStats {
	st := s.stats.snapshot()
	st.ActiveLeases = uint64(s.table.activeCount(s.now()))
	return st
}

// RefreshReservations re-reads the nodes' static addresses now. Call it after importing
// or editing a node with an IP to close the ReservationRefresh window.
func (s *DHCPServer) RefreshReservations(ctx context.Context) error {
	list, err := s.inv.Reservations(ctx)
	if err != nil {
		return fmt.Errorf("dhcp: load reservations: %w", err)
	}
	r := newReservations(list)
	prev, now := s.resv.Load(), s.now()
	for ip, res := range r.byIP {
		if prev != nil && prev.byIP[ip] != nil {
			continue // warned when the reservation first appeared
		}
		if mac, ok := s.table.holder(ip, now); ok && r.reservedForOther(ip, mac) {
			s.log.Warn("static address is leased to another client; it gets a NAK at its next renewal",
				slog.String("ip", ip.String()), slog.String("node", res.Node), slog.String("holder", mac.String()))
		}
	}
	s.resv.Store(r)
	return nil
}

// NodeChanged asks for a reservations refresh when a node's change touches them: a
// node imported or changed with a static address is reserved at once, not at the next
// periodic refresh, so the pool cannot offer it in between. Requests made while one is
// pending are folded into it.
func (s *DHCPServer) NodeChanged(before, after node.Node) {
	if before.IP == after.IP && !(after.IP.IsValid() && before.State != after.State) {
		return
	}
	select {
	case s.refreshNow <- struct{}{}:
	default: // a refresh is already pending and will see this change
	}
}

type packet struct {
	buf  []byte
	n    int
	peer netip.AddrPort
	conn *net.UDPConn
	port int
}

var errServerClosed = errors.New("dhcp server closed")

// Run serves until ctx is cancelled, then stops reading, lets in-flight handlers and
// lease commits finish, closes the sockets and returns nil.
func (s *DHCPServer) Run(ctx context.Context) error {
	if s.conn == nil {
		return errors.New("dhcp: Run needs a server made by NewDHCP")
	}
	bufs := &sync.Pool{New: func() any { b := make([]byte, 1500); return &b }}

	var commits, recorders sync.WaitGroup
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	commits.Go(func() { s.commit.run(bg) })
	recorders.Go(func() { s.recordBoots(bg) })
	recorders.Go(func() { s.refreshLoop(ctx) })

	work := newHandlerPool(s.cfg.Workers, 4*s.cfg.Workers, handlerIdle, func(p packet) {
		s.serve(ctx, p)
		bufs.Put(&p.buf)
	})
	var readers sync.WaitGroup
	readers.Go(func() { s.read(s.conn, s.cfg.ServerPort, work, bufs) })
	if s.proxyConn != nil {
		readers.Go(func() { s.read(s.proxyConn, s.cfg.ProxyPort, work, bufs) })
	}

	<-ctx.Done()
	// Order: stop accepting (closing the sockets ends the readers), finish the handlers
	// (their lease commits included), then the committer and the recorder.
	s.Close()
	readers.Wait()
	work.close()
	close(s.commit.requests)
	commits.Wait()
	close(s.boots)
	recorders.Wait()
	s.log.Info("dhcp stopped")
	return nil
}

func (s *DHCPServer) read(conn *net.UDPConn, port int, work *handlerPool, bufs *sync.Pool) {
	for !s.readOne(conn, port, work, bufs) {
	}
}

// readOne reads and queues one datagram; closed is true once the socket is closed.
func (s *DHCPServer) readOne(conn *net.UDPConn, port int, work *handlerPool, bufs *sync.Pool) (closed bool) {
	defer s.recoverTask("reading a datagram")
	bp := bufs.Get().(*[]byte)
	buf := *bp
	n, peer, err := conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		bufs.Put(bp)
		if errors.Is(err, net.ErrClosed) {
			return true
		}
		s.log.Warn("dhcp read failed", slog.Any("err", err))
		time.Sleep(10 * time.Millisecond) // a persistent error must not spin a core
		return false
	}
	s.stats.received.Add(1)
	mac, ok := peekMAC(buf[:n])
	if !ok {
		s.stats.malformed.Add(1)
		bufs.Put(bp)
		return false
	}
	if !s.limit.allow(mac, time.Now()) {
		s.stats.rateLimited.Add(1)
		bufs.Put(bp)
		return false
	}
	if !work.submit(packet{buf: buf, n: n, peer: peer, conn: conn, port: port}) {
		s.stats.queueFull.Add(1)
		bufs.Put(bp)
	}
	return false
}

// peekMAC reads chaddr without parsing the packet, for the rate limiter: a BOOTREQUEST
// of at least the fixed header plus cookie, Ethernet hardware type and length.
func peekMAC(b []byte) (node.MAC, bool) {
	const fixedHeader = 236 + 4
	if len(b) < fixedHeader || b[0] != 1 || b[1] != 1 || b[2] != 6 {
		return node.MAC{}, false
	}
	return node.MACFromBytes(b[28:34])
}

func (s *DHCPServer) serve(ctx context.Context, p packet) {
	defer s.recoverPacket(p.peer, p.port)
	reply, dst, ok := s.handlePacket(ctx, p.buf[:p.n], p.port, p.peer)
	if !ok {
		return
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		// Guarded: building these attributes costs allocations the hot path should not pay.
		s.log.Debug("dhcp reply", slog.String("from", p.peer.String()), slog.Int("port", p.port),
			slog.String("to", dst.String()), slog.Int("bytes", len(reply)))
	}
	if _, err := p.conn.WriteToUDPAddrPort(reply, dst); err != nil {
		s.stats.sendErrors.Add(1)
		s.log.Warn("dhcp send failed", slog.String("to", dst.String()), slog.Any("err", err))
	}
}

func (s *DHCPServer) refreshLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ReservationRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refreshOnce(ctx)
		case <-s.refreshNow:
			s.refreshOnce(ctx)
		}
	}
}

func (s *DHCPServer) refreshOnce(ctx context.Context) {
	defer s.recoverTask("refreshing reservations")
	if err := s.RefreshReservations(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("dhcp reservations refresh failed; keeping the previous snapshot", slog.Any("err", err))
	}
}
