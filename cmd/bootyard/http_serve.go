package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/bootyard/bootyard/machine"
)

// shutdownTimeout bounds how long SIGTERM waits for in-flight requests.
const shutdownTimeout = 10 * time.Second

// operatorAndMachines is the handler of the operator listener: the machine endpoints
// by their paths, everything else (API, pages, /healthz, /metrics) the operator's.
func operatorAndMachines(operator, machines http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if machine.Serves(r.URL.Path) {
			machines.ServeHTTP(w, r)
			return
		}
		operator.ServeHTTP(w, r)
	})
}

// serveHTTP runs h on ln until ctx is cancelled, then stops accepting and lets in-flight
// requests finish (bounded by shutdownTimeout). ln may be a TLS listener.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: image downloads and event streams last long by design.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
