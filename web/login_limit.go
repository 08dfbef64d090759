package web

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Failed sign-ins spend from a bucket per source: a burst of loginFailureBurst, then one
// more every loginFailureEvery. That caps online guessing from one source at a few
// thousand a day, and a guesser elsewhere on the network never makes the operator wait:
// the operator's own address has its own full bucket.
const (
	loginFailureBurst = 10
	loginFailureEvery = 5 * time.Second
	// maxLoginSources bounds the limiter's memory: past it, the source seen least
	// recently is forgotten (it comes back with a full bucket, which costs a guesser
	// with that many addresses little more than the addresses themselves).
	maxLoginSources = 4096
)

// loginLimiter is the per-source failure budget: a bounded map, least recently used out.
type loginLimiter struct {
	mu      sync.Mutex
	max     int
	every   time.Duration
	burst   int
	bySrc   map[netip.Prefix]*list.Element
	lru     *list.List // front = most recent; values are *loginSource
	nowFunc func() time.Time
}

type loginSource struct {
	key     netip.Prefix
	limiter *rate.Limiter
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{max: maxLoginSources, every: loginFailureEvery, burst: loginFailureBurst,
		bySrc: make(map[netip.Prefix]*list.Element), lru: list.New(), nowFunc: time.Now}
}

// loginSourceKey groups addresses the way one guesser holds them: an IPv4 address, or
// the /64 of an IPv6 one (a single host can use any address of its /64). An address that
// does not parse shares one key with every other such, which only ever slows those down.
func loginSourceKey(ip string) netip.Prefix {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.WithZone("").Prefix(64)
	return p
}

// allowed reports whether src may try a password now. It spends nothing.
func (l *loginLimiter) allowed(src netip.Prefix) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.bySrc[src]
	if !ok {
		return true
	}
	return el.Value.(*loginSource).limiter.TokensAt(l.nowFunc()) >= 1
}

// failed spends one try of src's budget.
func (l *loginLimiter) failed(src netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.nowFunc()
	el, ok := l.bySrc[src]
	if ok {
		l.lru.MoveToFront(el)
	} else {
		if l.lru.Len() >= l.max {
			oldest := l.lru.Back()
			l.lru.Remove(oldest)
			delete(l.bySrc, oldest.Value.(*loginSource).key)
		}
		el = l.lru.PushFront(&loginSource{key: src, limiter: rate.NewLimiter(rate.Every(l.every), l.burst)})
		l.bySrc[src] = el
	}
	el.Value.(*loginSource).limiter.AllowN(now, 1)
}

// sources is how many sources the limiter remembers (for tests of the bound).
func (l *loginLimiter) sources() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
