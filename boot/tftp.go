package boot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/bootyard/bootyard/ipxe"
	"github.com/bootyard/bootyard/node"
)

// TFTPConfig configures the read-only TFTP server for the iPXE binaries.
type TFTPConfig struct {
	// Listen is host:port. cmd defaults it to port 69 of the DHCP interface's address.
	Listen string
	// Timeout is how long the server waits for each ACK before resending the block
	// (default 2s). Firmware clients only ever resend their last ACK, and slowly, so a
	// lost DATA packet costs the server's timeout, not theirs.
	Timeout time.Duration
	// Retries is how many times a block is sent before the transfer is abandoned (default 5).
	Retries int
	// MaxBlockSize caps the negotiated blksize, 513..65464 (default: the interface MTU
	// minus headers, which pin/tftp finds per request; it cannot be capped at 512).
	MaxBlockSize int
	// MaxTransfers caps the read transfers in flight (default 512) and
	// MaxTransfersPerClient those from one address (default 16): a PXE ROM fetches one
	// file at a time, and a request past a cap is refused at once (the ROM retries).
	MaxTransfers, MaxTransfersPerClient int
}

// TFTPFiles is what the TFTP server needs of the iPXE binaries (*ipxe.Binaries).
type TFTPFiles interface {
	// Open opens an allow-listed binary and returns its size.
	Open(name string) (*os.File, int64, error)
	Dir() string
	Names() []string
}

// TFTPServer serves the iPXE binaries over TFTP (RFC 1350) with blksize (RFC 2348) and
// tsize (RFC 2349) negotiated by pin/tftp. It never accepts writes.
type TFTPServer struct {
	cfg   TFTPConfig
	addr  *net.UDPAddr
	bins  TFTPFiles
	log   *slog.Logger
	stats tftpCounters
	bufs  sync.Pool // *bufio.Reader, so a transfer costs no 64 KiB allocation
	slots *transferSlots

	mu    sync.Mutex
	bound net.Addr
}

// readBufferSize batches file reads: pin/tftp reads one block per call, and 512-byte
// read syscalls would cost more than the packets.
const readBufferSize = 64 << 10

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
	if cfg.MaxBlockSize != 0 && (cfg.MaxBlockSize <= 512 || cfg.MaxBlockSize > 65464) {
		// pin/tftp ignores a cap of 512 or less: refuse it rather than silently not cap.
		return nil, fmt.Errorf("tftp max block size %d: %w: want 513..65464", cfg.MaxBlockSize, node.ErrInvalid)
	}
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = 512
	}
	if cfg.MaxTransfersPerClient <= 0 {
		cfg.MaxTransfersPerClient = 16
	}
	s := &TFTPServer{cfg: cfg, addr: addr, bins: bins, log: logger.With(slog.String("service", "tftp")),
		slots: newTransferSlots(cfg.MaxTransfers, cfg.MaxTransfersPerClient)}
	s.bufs.New = func() any { return bufio.NewReaderSize(nil, readBufferSize) }
	return s, nil
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
	srv := tftp.NewServer(s.serveRead, s.refuseWrite)
	srv.SetTimeout(s.cfg.Timeout)
	srv.SetRetries(s.cfg.Retries)
	// pin/tftp's default backoff sleeps up to a second before each retransmission, on top
	// of the timeout; a PXE ROM on a lossy link would wait that long for every lost block.
	srv.SetBackoff(func(int) time.Duration { return 0 })
	if s.cfg.MaxBlockSize > 0 {
		srv.SetBlockSize(s.cfg.MaxBlockSize)
	}
	srv.SetHook(tftpHook{s})

	s.mu.Lock()
	s.bound = conn.LocalAddr()
	s.mu.Unlock()
	s.log.Info("tftp serving", slog.String("addr", conn.LocalAddr().String()),
		slog.String("dir", s.bins.Dir()), slog.Int("files", len(s.bins.Names())))

	stopped := make(chan struct{})
	served := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-served:
		}
		// Shutdown closes the socket, then waits for in-flight transfers, which end within
		// Timeout × Retries.
		srv.Shutdown()
		close(stopped)
	}()
	err = srv.Serve(conn)
	close(served)
	<-stopped
	s.mu.Lock()
	s.bound = nil
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("tftp: serve %s: %w", s.addr, err)
	}
	s.log.Info("tftp stopped", slog.String("addr", s.addr.String()))
	return nil
}

// errNotFound, errAccess and errReadOnly are what the client sees in the ERROR packet.
var (
	errNotFound = errors.New("file not found")
	errAccess   = errors.New("access violation: only iPXE binaries are served")
	errReadOnly = errors.New("access violation: this server is read-only")
	errBusy     = errors.New("server busy: too many transfers in flight, retry")
)

// serveRead answers an RRQ. Only names in the allow-list are opened; the file is
// streamed through a pooled buffer, with tsize taken from the open file.
func (s *TFTPServer) serveRead(filename string, rf io.ReaderFrom) (err error) {
	defer s.recoverTransfer(filename, &err)
	s.stats.requests.Add(1)
	peer := remoteAddrOf(rf)
	if !s.slots.acquire(peer) {
		s.stats.busy.Add(1)
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("tftp request refused: too many transfers in flight", slog.String("client", peer.String()))
		}
		return errBusy
	}
	defer s.slots.release(peer)
	client := remoteOf(rf)
	if err := ipxe.CheckName(filename); err != nil {
		if errors.Is(err, node.ErrInvalid) {
			s.stats.malformed.Add(1)
		} else {
			s.stats.refused.Add(1)
		}
		s.log.Warn("tftp request refused", slog.String("client", client), slog.String("file", quoteShort(filename)),
			slog.String("reason", err.Error()))
		return errAccess
	}
	f, size, err := s.bins.Open(filename)
	if err != nil {
		if errors.Is(err, node.ErrNotFound) {
			s.stats.notFound.Add(1)
			s.log.Info("tftp file not found", slog.String("client", client), slog.String("file", filename))
			return errNotFound
		}
		s.stats.failed.Add(1)
		s.log.Error("tftp open failed", slog.String("file", filename), slog.Any("err", err))
		return errNotFound
	}
	defer f.Close()
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		// Setting the size ourselves spares pin/tftp three seeks, and makes tsize right
		// even though the buffered reader below cannot seek.
		ot.SetSize(size)
	}
	br := s.bufs.Get().(*bufio.Reader)
	br.Reset(f)
	defer func() {
		br.Reset(nil)
		s.bufs.Put(br)
	}()
	n, err := rf.ReadFrom(br)
	s.stats.bytes.Add(uint64(max(n, 0)))
	if err != nil {
		// pin/tftp has already sent the client an ERROR packet.
		s.stats.failed.Add(1)
		s.log.Warn("tftp transfer failed", slog.String("client", client), slog.String("file", filename),
			slog.Int64("sent", n), slog.Int64("size", size), slog.Any("err", err))
		return nil
	}
	s.stats.served.Add(1)
	s.log.Info("tftp served", slog.String("client", client), slog.String("file", filename), slog.Int64("bytes", n))
	return nil
}

// refuseWrite answers every WRQ with an error: nothing is ever written or acknowledged.
func (s *TFTPServer) refuseWrite(filename string, wt io.WriterTo) (err error) {
	defer s.recoverTransfer(filename, &err)
	s.stats.writesRefused.Add(1)
	client := ""
	if it, ok := wt.(tftp.IncomingTransfer); ok {
		a := it.RemoteAddr()
		client = a.String()
	}
	s.log.Warn("tftp write refused", slog.String("client", client), slog.String("file", quoteShort(filename)))
	return errReadOnly
}

// remoteAddrOf is the client's address, the key of the per-client transfer cap.
func remoteAddrOf(rf io.ReaderFrom) netip.Addr {
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		a := ot.RemoteAddr()
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

func remoteOf(rf io.ReaderFrom) string {
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		a := ot.RemoteAddr()
		return a.String()
	}
	return ""
}

// quoteShort keeps a hostile file name from flooding a log line.
func quoteShort(s string) string {
	const limit = 64
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// tftpHook sees what pin/tftp does not hand to a handler: packets on the request port
// it could not parse (short, unknown opcode, no file name or mode). Failures of
// transfers the handlers saw carry a file name and are counted there.
type tftpHook struct{ s *TFTPServer }

func (h tftpHook) OnSuccess(tftp.TransferStats) {}

func (h tftpHook) OnFailure(st tftp.TransferStats, err error) {
	if st.RemoteAddr != nil || err == nil {
		// A transfer's own failure (it has a peer): the handler that started it counted it.
		return
	}
	if strings.HasPrefix(err.Error(), "listen") {
		// Not the client's fault: no socket for the transfer (descriptor exhaustion).
		h.s.stats.failed.Add(1)
		h.s.log.Error("tftp transfer socket", slog.Any("err", err))
		return
	}
	h.s.stats.malformed.Add(1)
	h.s.log.Debug("tftp malformed packet", slog.Any("err", err))
}
