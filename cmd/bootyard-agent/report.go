package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/bootyard/bootyard/agentapi"
)

// Limits of POST /agent/v1/log (the server caps lines per request and their length).
const (
	maxLogLines    = 100
	maxLogLineLen  = 1024
	maxQueuedLines = 2000
)

// shipper queues log lines and the latest progress of each phase, and sends them to
// Bootyard every interval, so neither the disk writer nor a slow network waits on the
// other. Before the API is reachable it only queues.
type shipper struct {
	// sending makes flushes one at a time, so no line is sent twice.
	sending  sync.Mutex
	mu       sync.Mutex
	lines    []string
	dropped  int
	progress []agentapi.Progress // latest per phase, in phase order, not yet sent
	last     *agentapi.Progress  // the last progress sent
	lastSent time.Time
	api      *apiClient
}

// heartbeat is how often the last progress is sent again when nothing moved (a long
// discard, a stalled download), so Bootyard's watchdog, which fails a node whose agent
// went silent, sees the agent is alive.
const heartbeat = time.Minute

// add queues a log line.
func (s *shipper) add(line string) {
	if len(line) > maxLogLineLen {
		line = line[:maxLogLineLen]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lines) >= maxQueuedLines {
		s.dropped++
		return
	}
	s.lines = append(s.lines, line)
}

// setProgress records the phase's latest progress; only the newest is ever sent.
func (s *shipper) setProgress(p agentapi.Progress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.progress {
		if s.progress[i].Phase == p.Phase {
			s.progress[i] = p
			return
		}
	}
	s.progress = append(s.progress, p)
}

func (s *shipper) connect(api *apiClient) {
	s.mu.Lock()
	s.api = api
	s.mu.Unlock()
}

// flush sends what is queued. Failures keep the lines for the next try, except on a
// rejected token, after which nothing will ever be accepted.
func (s *shipper) flush(ctx context.Context) error {
	s.sending.Lock()
	defer s.sending.Unlock()
	s.mu.Lock()
	api := s.api
	if api == nil {
		// Not connected yet: keep everything for the first flush that can send.
		s.mu.Unlock()
		return nil
	}
	progress := s.progress
	s.progress = nil
	if len(progress) == 0 && s.last != nil && time.Since(s.lastSent) >= heartbeat {
		progress = []agentapi.Progress{*s.last}
	}
	if n := len(progress); n > 0 {
		s.last, s.lastSent = &progress[n-1], time.Now()
	}
	lines := s.lines[:min(len(s.lines), maxLogLines)]
	s.mu.Unlock()
	var errs []error
	for _, p := range progress {
		if err := api.progress(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(lines) > 0 {
		err := api.log(ctx, lines)
		s.mu.Lock()
		if err == nil || errors.Is(err, errTokenRejected) {
			s.lines = s.lines[len(lines):]
		}
		s.mu.Unlock()
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// run flushes every interval until ctx ends, then once more.
func (s *shipper) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Errors here are not logged: a log line about a failed log upload would
			// queue itself forever. The console has every line anyway.
			_ = s.flush(ctx)
		}
	}
}

// teeHandler writes every record to the console and queues its text for Bootyard.
type teeHandler struct {
	console slog.Handler
	text    slog.Handler
	buf     *lineBuffer
}

func newTeeHandler(console io.Writer, s *shipper) *teeHandler {
	buf := &lineBuffer{ship: s}
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	return &teeHandler{console: slog.NewTextHandler(console, opts), text: slog.NewTextHandler(buf, opts), buf: buf}
}

func (h *teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.console.Enabled(ctx, l)
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	return errors.Join(h.console.Handle(ctx, r), h.text.Handle(ctx, r))
}

func (h *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &teeHandler{console: h.console.WithAttrs(as), text: h.text.WithAttrs(as), buf: h.buf}
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	return &teeHandler{console: h.console.WithGroup(name), text: h.text.WithGroup(name), buf: h.buf}
}

// lineBuffer turns the text handler's writes (one record each) into queued lines.
type lineBuffer struct{ ship *shipper }

func (b *lineBuffer) Write(p []byte) (int, error) {
	line := string(p)
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	b.ship.add(line)
	return len(p), nil
}
