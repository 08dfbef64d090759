package boot

import (
	"sync"
	"time"

	"github.com/bootyard/bootyard/node"
)

// macLimiter is a token bucket per client MAC, checked by the socket reader before a
// packet is parsed or queued: a flood from one MAC spends only its own tokens and cannot
// starve the other clients' share of the queue and the handlers.
type macLimiter struct {
	mu      sync.Mutex
	rate    float64 // tokens per second
	burst   float64
	buckets map[node.MAC]*tokenBucket
	swept   time.Time
	maxMACs int // see limiterMaxMACs
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

// limiterMaxMACs bounds memory when a flood spoofs random MACs: past it, idle buckets are
// swept at once instead of once a minute, and if the flood is faster than buckets refill
// (none is idle), arbitrary buckets are dropped down to limiterKeepFraction of the cap.
// A dropped bucket only means that MAC starts again with a full burst, which a flood of
// made-up MACs gets anyway; dropping an eighth at a time keeps the cost per packet
// constant instead of a sweep of the whole map on every packet past the cap.
const (
	limiterMaxMACs      = 100_000
	limiterKeepFraction = 7.0 / 8
)

func newMACLimiter(rate, burst float64) *macLimiter {
	return &macLimiter{rate: rate, burst: burst, buckets: make(map[node.MAC]*tokenBucket), maxMACs: limiterMaxMACs}
}

func (l *macLimiter) allow(mac node.MAC, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute || len(l.buckets) >= l.maxMACs {
		l.sweep(now)
	}
	b := l.buckets[mac]
	if b == nil {
		b = &tokenBucket{tokens: l.burst, last: now}
		l.buckets[mac] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets buckets that have refilled: they carry no information.
func (l *macLimiter) sweep(now time.Time) {
	l.swept = now
	for mac, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, mac)
		}
	}
	if len(l.buckets) < l.maxMACs {
		return
	}
	keep := int(float64(l.maxMACs) * limiterKeepFraction)
	for mac := range l.buckets {
		if len(l.buckets) <= keep {
			break
		}
		delete(l.buckets, mac)
	}
}
