package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bootyard/bootyard/ipxe"
	"github.com/bootyard/bootyard/node"
)

// TFTPConfig configures the read-only TFTP server for the iPXE binaries.
type TFTPConfig struct {
	// Listen is host:port. cmd defaults it to port 69 of the DHCP interface's address.
	Listen string
	// Timeout is how long the server first waits for each ACK before resending (default
	// 2s, or the client's RFC 2349 timeout option); it doubles with each resend of the
	// same window. Firmware clients only ever resend their last ACK, and slowly, so a
	// lost DATA packet costs the server's timeout, not theirs.
	Timeout time.Duration
	// Retries is how many times a window is resent before the transfer is abandoned (default 5).
	Retries int
	// MaxBlockSize caps the negotiated blksize, 8..65464 (default: the path MTU to the
	// client minus the IP, UDP and TFTP headers, found per transfer).
	MaxBlockSize int
	// MaxWindowSize caps the negotiated RFC 7440 windowsize (default 64): blocks sent
	// before waiting for an ACK, for clients that ask (EDK2 does).
	MaxWindowSize int
	// MaxTransfers bounds the transfers in flight (default 4096); a request beyond it is
	// answered "server busy" and the firmware retries. Each costs a socket and, when its
	// client is gone without a word, lives through the whole backoff: a flood of read
	// requests must not exhaust descriptors for the machines that really boot.
	MaxTransfers int
	// Generated, if set, is asked first about every read (GRUB's configs); nil serves
	// only the allow-list.
	Generated TFTPGenerated
}

// TFTPServer serves the iPXE binaries over TFTP (RFC 1350) with blksize (RFC 2348),
// timeout and tsize (RFC 2349) and windowsize (RFC 7440). It never accepts writes.
//
// The sender is ours rather than pin/tftp's: pin/tftp v3.1.0 cannot negotiate windowsize
// (its "anticipate" window is not RFC 7440 and is never offered to a client), reads the
// file through a per-transfer buffer, and allocates per packet. Here each transfer is a
// goroutine with a connected socket (the RFC 1350 TID) that sends slices of one shared
// copy of the file, a whole window per sendmmsg.
type TFTPServer struct {
	cfg   TFTPConfig
	addr  *net.UDPAddr
	bins  TFTPFiles
	files *bootFiles
	log   *slog.Logger
	stats tftpCounters

	mu    sync.Mutex
	bound net.Addr
}

// TFTPFiles is what the TFTP server needs of the iPXE binaries (*ipxe.Binaries).
type TFTPFiles interface {
	// Lookup finds an allow-listed binary.
	Lookup(name string) (ipxe.Binary, bool)
	// Open opens an allow-listed binary and returns its size.
	Open(name string) (*os.File, int64, error)
	Dir() string
	Names() []string
}

// NewTFTP checks the configuration. Run binds the socket.
func NewTFTP(cfg TFTPConfig, bins TFTPFiles, logger *slog.Logger) (*TFTPServer, error) {
	if bins == nil {
		return nil, errors.New("tftp: no iPXE binaries")
	}
	if logger == nil {
		logger = slog.Default()
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.Listen)
	if err != nil || cfg.Listen == "" {
		return nil, fmt.Errorf("tftp listen address %q: %w: want HOST:PORT", cfg.Listen, node.ErrInvalid)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	if cfg.MaxBlockSize != 0 && (cfg.MaxBlockSize < minBlockSize || cfg.MaxBlockSize > maxBlockSize) {
		return nil, fmt.Errorf("tftp max block size %d: %w: want %d..%d", cfg.MaxBlockSize, node.ErrInvalid, minBlockSize, maxBlockSize)
	}
	if cfg.MaxBlockSize == 0 {
		cfg.MaxBlockSize = maxBlockSize
	}
	if cfg.MaxWindowSize < 0 || cfg.MaxWindowSize > maxWindowSize {
		return nil, fmt.Errorf("tftp max window size %d: %w: want 1..%d", cfg.MaxWindowSize, node.ErrInvalid, maxWindowSize)
	}
	if cfg.MaxWindowSize == 0 {
		cfg.MaxWindowSize = 64
	}
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = 4096
	}
	return &TFTPServer{cfg: cfg, addr: addr, bins: bins, files: newBootFiles(bins),
		log: logger.With(slog.String("service", "tftp"))}, nil
}

// Addr is the bound address once Run is serving, nil before.
func (s *TFTPServer) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

// Run binds the socket and serves until ctx is cancelled; it returns once the socket is
// closed and in-flight transfers have ended. A bind failure is returned at once.
//
// Per-transfer sockets are opened on the goroutine that calls Run, so a caller that
// runs it on a thread inside a network namespace keeps every transfer there too.
func (s *TFTPServer) Run(ctx context.Context) error {
	conn, err := net.ListenUDP("udp", s.addr)
	if err != nil {
		return fmt.Errorf("tftp: listen on %s: %w", s.addr, err)
	}
	growReadBuffer(conn, requestReadBuffer, s.log)
	s.mu.Lock()
	s.bound = conn.LocalAddr()
	s.mu.Unlock()
	s.log.Info("tftp serving", slog.String("addr", conn.LocalAddr().String()),
		slog.String("dir", s.bins.Dir()), slog.Int("files", len(s.bins.Names())),
		slog.Int("max_window", s.cfg.MaxWindowSize))

	// Cancelling closes the request socket, which ends the loop below; each transfer
	// closes its own socket on the same signal.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var transfers sync.WaitGroup
	buf := make([]byte, maxRequestLen)
	var serveErr error
	for {
		n, peer, err := conn.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				serveErr = err
			}
			break
		}
		s.handleRequest(ctx, conn, buf[:n], peer, &transfers)
	}
	conn.Close()
	transfers.Wait()
	s.mu.Lock()
	s.bound = nil
	s.mu.Unlock()
	if serveErr != nil {
		return fmt.Errorf("tftp: serve %s: %w", s.addr, serveErr)
	}
	s.log.Info("tftp stopped", slog.String("addr", s.addr.String()))
	return nil
}

// errNotFound, errAccess and errReadOnly are what the client sees in the ERROR packet.
var (
	errNotFound = errors.New("file not found")
	errAccess   = errors.New("access violation: only iPXE binaries are served")
	errReadOnly = errors.New("access violation: this server is read-only")
)

// handleRequest answers one datagram on the request port. Refusals are answered from
// the request port; a served read gets its own socket and goroutine.
func (s *TFTPServer) handleRequest(ctx context.Context, conn *net.UDPConn, p []byte, peer *net.UDPAddr, transfers *sync.WaitGroup) {
	defer s.recoverRequest(conn, peer)
	req, err := parseRequest(p)
	if err != nil {
		s.stats.malformed.Add(1)
		s.log.Debug("tftp malformed packet", slog.String("client", peer.String()), slog.Int("bytes", len(p)))
		return
	}
	client := peer.String()
	if req.op == opWRQ {
		s.stats.writesRefused.Add(1)
		s.log.Warn("tftp write refused", slog.String("client", client), slog.String("file", quoteShort(req.filename)))
		_, _ = conn.WriteToUDP(errorPacket(errCodeAccess, errReadOnly.Error()), peer)
		return
	}
	s.stats.requests.Add(1)
	name, gen := s.generated(ctx, req.filename, peer)
	if err := ipxe.CheckName(name); gen == nil && err != nil {
		if errors.Is(err, node.ErrInvalid) {
			s.stats.malformed.Add(1)
		} else {
			s.stats.refused.Add(1)
		}
		s.log.Warn("tftp request refused", slog.String("client", client), slog.String("file", quoteShort(req.filename)),
			slog.String("reason", err.Error()))
		_, _ = conn.WriteToUDP(errorPacket(errCodeAccess, errAccess.Error()), peer)
		return
	}
	f, err := gen, error(nil)
	if f == nil {
		f, err = s.files.get(name)
	}
	if err != nil {
		if errors.Is(err, node.ErrNotFound) {
			s.stats.notFound.Add(1)
			s.log.Info("tftp file not found", slog.String("client", client), slog.String("file", req.filename))
		} else {
			s.stats.failed.Add(1)
			s.log.Error("tftp open failed", slog.String("file", req.filename), slog.Any("err", err))
		}
		_, _ = conn.WriteToUDP(errorPacket(errCodeNotFound, errNotFound.Error()), peer)
		return
	}
	if s.stats.active.Load() >= int64(s.cfg.MaxTransfers) {
		s.stats.busy.Add(1)
		s.log.Warn("tftp busy: too many transfers in flight", slog.String("client", client),
			slog.Int("max_transfers", s.cfg.MaxTransfers))
		_, _ = conn.WriteToUDP(errorPacket(errCodeUndefined, "server busy"), peer)
		return
	}
	// The transfer's own socket, connected to the client: its port is our TID, the kernel
	// drops datagrams from any other address or port, and an ICMP port unreachable from
	// a client that went away ends the transfer at once.
	local := &net.UDPAddr{IP: s.addr.IP}
	tc, err := net.DialUDP("udp", local, peer)
	if err != nil {
		// Not the client's fault: no socket for the transfer (descriptor exhaustion).
		s.stats.failed.Add(1)
		s.log.Error("tftp transfer socket", slog.String("client", client), slog.Any("err", err))
		_, _ = conn.WriteToUDP(errorPacket(errCodeUndefined, "server busy"), peer)
		return
	}
	data := f.bytes(req.netascii)
	opts := negotiate(req, int64(len(data)), min(s.cfg.MaxBlockSize, pathMTUBlockSize(tc)),
		s.cfg.MaxWindowSize, s.cfg.Timeout, s.cfg.Retries)
	s.stats.negotiated(opts)
	// Counted here, on the request loop, so the MaxTransfers check above is exact.
	s.stats.active.Add(1)
	transfers.Go(func() {
		defer s.recoverTransfer(req.filename)
		stop := context.AfterFunc(ctx, func() { tc.Close() })
		defer stop()
		defer tc.Close()
		defer s.stats.active.Add(-1)
		t := newTransfer(tc, data, opts)
		err := t.run()
		sent := int64(min(t.acked*opts.blksize, len(data)))
		s.stats.bytes.Add(uint64(sent))
		s.stats.retransmits.Add(uint64(t.retransmits))
		if err != nil {
			s.stats.failed.Add(1)
			s.log.Warn("tftp transfer failed", slog.String("client", client), slog.String("file", req.filename),
				slog.Int64("sent", sent), slog.Int("size", len(data)), slog.Int("blksize", opts.blksize),
				slog.Int("windowsize", opts.window), slog.Int("retransmits", t.retransmits), slog.Any("err", err))
			return
		}
		s.stats.served.Add(1)
		s.log.Info("tftp served", slog.String("client", client), slog.String("file", req.filename),
			slog.Int("bytes", len(data)), slog.Int("blksize", opts.blksize), slog.Int("windowsize", opts.window),
			slog.Int("retransmits", t.retransmits))
	})
}

// pathMTUBlockSize is the largest blksize whose DATA datagram fits the path MTU to the
// connected peer (IP_MTU), so a block is never fragmented: a lost fragment loses the
// whole block. Without an answer it is 1468, right for Ethernet.
func pathMTUBlockSize(c *net.UDPConn) int {
	const ipUDPTFTPHeaders = 20 + 8 + 4
	mtu := 1500
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU); err == nil && v > 0 {
				mtu = v
			}
		})
	}
	return max(minBlockSize, min(maxBlockSize, mtu-ipUDPTFTPHeaders))
}

// quoteShort keeps a hostile file name from flooding a log line.
func quoteShort(s string) string {
	const limit = 64
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return fmt.Sprintf("%q", s)
}
