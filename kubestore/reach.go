package kubestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/bootyard/bootyard/node"
)

// reach remembers that the API server could not be reached, so that machines stop
// waiting on it. Behind a partition every request hangs until its timeout (a TLS
// handshake's 10 s, a lease write's 4 s): a machine that renews its lease, asks for its
// seed or has its boot recorded would wait that long each time, and a DHCP client
// retransmits or gives up first. Once a request fails for want of an answer, writes fail
// at once (a lease renewal is then accepted from the cache, anything else answers 503)
// until any answer comes back: the renewal flush asks every renewalFlushInterval.
// Reads are not cut short: the informers retry on their own, and a read that answers is
// what says the API server is back.
//
// The state is one atomic word, read on every request of the store (a DHCP server's
// lease writes included), so a request that finds the API server answering takes no lock.
type reach struct {
	log  *slog.Logger
	now  func() time.Time
	down atomic.Int64 // Unix nanoseconds since no request got an answer; 0 while they do
}

// since is when the API server stopped answering, and whether it still is not.
func (r *reach) since() (time.Time, bool) {
	d := r.down.Load()
	return time.Unix(0, d), d != 0
}

func (r *reach) answered() {
	if d := r.down.Swap(0); d != 0 {
		r.log.Info("the Kubernetes API server answers again", slog.Duration("unreachable_for", r.now().Sub(time.Unix(0, d)).Round(time.Millisecond)))
	}
}

func (r *reach) unanswered(err error) {
	if r.down.CompareAndSwap(0, r.now().UnixNano()) {
		r.log.Warn("the Kubernetes API server does not answer: writes fail at once until it does (lease renewals are accepted from the cache)", slog.Any("err", err))
	}
}

// wrap is the rest.Config's WrapTransport.
func (r *reach) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if since, down := r.since(); down && req.Method != http.MethodGet {
			return nil, &unreachableError{since: since}
		}
		resp, err := rt.RoundTrip(req)
		switch {
		case err == nil:
			r.answered()
		case noAnswer(err):
			r.unanswered(err)
			return nil, &unreachableError{cause: err}
		}
		return resp, err
	})
}

// noAnswer reports whether a transport error means the API server did not answer: a
// refused or reset connection, a timeout (the request's own deadline included). A
// caller that gave up (context.Canceled) says nothing about the API server.
func noAnswer(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// unreachableError is a request the API server did not answer, or one not sent because
// it has not answered since. It is a timeout (net.Error) and node.ErrUnavailable, so
// callers treat it as the outage it is and operators get a 503.
type unreachableError struct {
	since time.Time // not sent: no answer since then
	cause error     // sent, no answer
}

func (e *unreachableError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("the Kubernetes API server did not answer: %v", e.cause)
	}
	return "the Kubernetes API server has not answered since " + e.since.UTC().Format(time.RFC3339) + "; not sent"
}

func (e *unreachableError) Unwrap() []error {
	if e.cause != nil {
		return []error{node.ErrUnavailable, e.cause}
	}
	return []error{node.ErrUnavailable}
}

func (e *unreachableError) Timeout() bool   { return true }
func (e *unreachableError) Temporary() bool { return true }
