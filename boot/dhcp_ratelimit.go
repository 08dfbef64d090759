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
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

// limiterMaxMACs bounds memory when a flood spoofs random MACs: past it, idle buckets are
// swept at once instead of once a minute.
const limiterMaxMACs = 100_000

func newMACLimiter(rate, burst float64) *macLimiter {
	return &macLimiter{rate: rate, burst: burst, buckets: make(map[node.MAC]*tokenBucket)}
}

func (l *macLimiter) allow(mac node.MAC, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute || len(l.buckets) > limiterMaxMACs {
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
}
