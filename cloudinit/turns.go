package cloudinit

import (
	"sync"
	"time"
)

// DefaultTurnTTL bounds how long one server may hold the join turn without reporting
// back: long enough for a slow image pull, short enough that a machine that died
// mid-join does not block the rest of the rack for long.
const DefaultTurnTTL = 20 * time.Minute

// JoinTurns lets server nodes join one at a time, as LLMOS asks. A server is mid-join
// from the moment it is given the turn until it phones home (or the TTL passes).
//
// The state is in memory on purpose: waiting servers poll it every few seconds, and a
// store write per poll would cost an fsync each. If Bootyard restarts, the worst case is
// that a second server goes ahead while one is mid-join; its join unit then retries
// (Restart=on-failure) instead of failing for good.
type JoinTurns struct {
	mu     sync.Mutex
	ttl    time.Duration
	now    func() time.Time
	holder string
	since  time.Time
}

// NewJoinTurns makes an empty turn keeper; ttl <= 0 means DefaultTurnTTL.
func NewJoinTurns(ttl time.Duration, now func() time.Time) *JoinTurns {
	if ttl <= 0 {
		ttl = DefaultTurnTTL
	}
	if now == nil {
		now = time.Now
	}
	return &JoinTurns{ttl: ttl, now: now}
}

// Take gives name the turn if nobody (or name itself) holds it or the holder's time ran
// out. It returns false and the current holder otherwise. Asking again while holding
// the turn renews it.
func (t *JoinTurns) Take(name string) (ok bool, holder string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.holder != "" && t.holder != name && now.Sub(t.since) < t.ttl {
		return false, t.holder
	}
	t.holder, t.since = name, now
	return true, name
}

// Release ends name's turn; releasing a turn one does not hold does nothing.
func (t *JoinTurns) Release(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.holder == name {
		t.holder = ""
	}
}

// Holder reports who is mid-join, if anyone.
func (t *JoinTurns) Holder() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.holder == "" || t.now().Sub(t.since) >= t.ttl {
		return "", false
	}
	return t.holder, true
}
