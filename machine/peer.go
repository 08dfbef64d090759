package machine

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"unicode"
)

// peerAddr is the request's socket peer: the only source address a machine endpoint
// believes. X-Forwarded-For and friends are the requester's own claims.
func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// printable replaces every character that is not printable (control characters,
// escape sequences, invalid UTF-8) with a space: text from machines reaches events,
// logs, terminals and pages.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || (r != unicode.ReplacementChar && unicode.IsPrint(r)) {
			return r
		}
		return ' '
	}, s)
}

// maxRefusalKeys bounds the set of (node, address) pairs whose refusal was recorded:
// past it the set starts over, so a flood of addresses costs memory once, not forever.
const maxRefusalKeys = 4096

// onceKeys is a bounded set answering "is this the first time?": events that would
// repeat on every poll are written once per key. Keys are built from what requesters
// send, so the set is capped and starts over when full.
type onceKeys struct {
	max  int
	mu   sync.Mutex
	seen map[string]struct{}
}

func newOnceKeys(max int) *onceKeys {
	return &onceKeys{max: max, seen: make(map[string]struct{})}
}

// first reports whether key is new, and remembers it.
func (o *onceKeys) first(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.seen[key]; ok {
		return false
	}
	if len(o.seen) >= o.max {
		clear(o.seen)
	}
	o.seen[key] = struct{}{}
	return true
}

// len is how many keys are held, for tests.
func (o *onceKeys) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.seen)
}
