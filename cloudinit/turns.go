package cloudinit

import (
	"sync"
	"time"
)

// DefaultTurnTTL bounds how long one server may hold the join turn without asking again:
// the installer runs between the grant and the first renewal, so this covers a slow
// download; after that the first-boot script renews about every minute.
const DefaultTurnTTL = 20 * time.Minute

// Turn is one server's hold on the join turn.
type Turn struct {
	Node    string    `json:"node"`
	Since   time.Time `json:"since"`   // when it was granted
	Renewed time.Time `json:"renewed"` // the holder's last ask
	// Until is the cap: the turn ends then however often it is renewed.
	Until time.Time `json:"until"`
}

// JoinTurns lets server nodes join one at a time, as LLMOS asks. A server holds the turn
// from the grant until it reports joined or failed (Release), or until it goes silent for
// the TTL, or until the cap given with the grant passes, renewals included: one server
// that never finishes must not keep the rest of the rack out for good.
//
// The state is in memory on purpose: waiting servers poll it every few seconds, and a
// store write per poll would cost an fsync each. If Bootyard restarts, the worst case is
// that a second server goes ahead while one is mid-join; its join unit then retries
// instead of failing for good.
type JoinTurns struct {
	mu  sync.Mutex
	ttl time.Duration
	now func() time.Time
	cur Turn // Node "" when free
	// capped is the last holder whose cap ran out, and when. It cannot take a new turn
	// for another cap period (its renewals keep asking) unless it releases, so a waiting
	// server goes first; one string, not a map, so it stays bounded.
	capped   string
	cappedAt time.Time
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

// Take gives name the turn, capped at limit from now, if nobody holds it (or the
// holder's time ran out). Asking again while holding renews the TTL, never the cap. It
// returns false and the current holder otherwise; holder is "" when name's own cap ran
// out and it must let others go first.
func (t *JoinTurns) Take(name string, limit time.Duration) (ok bool, holder string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.expire(now)
	switch {
	case t.cur.Node == name:
		t.cur.Renewed = now
		return true, name
	case t.cur.Node != "":
		return false, t.cur.Node
	case t.capped == name && now.Sub(t.cappedAt) < limit:
		return false, ""
	}
	t.cur = Turn{Node: name, Since: now, Renewed: now, Until: now.Add(limit)}
	return true, name
}

// expire frees the turn whose holder went silent or whose cap passed.
func (t *JoinTurns) expire(now time.Time) {
	switch {
	case t.cur.Node == "":
	case !now.Before(t.cur.Until):
		t.capped, t.cappedAt = t.cur.Node, now
		t.cur = Turn{}
	case now.Sub(t.cur.Renewed) >= t.ttl:
		t.cur = Turn{}
	}
}

// Release ends name's turn; releasing a turn one does not hold does nothing to it.
func (t *JoinTurns) Release(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur.Node == name {
		t.cur = Turn{}
	}
	if t.capped == name {
		t.capped = ""
	}
}

// Holder reports who is mid-join, since when and until when, if anyone.
func (t *JoinTurns) Holder() (Turn, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(t.now())
	return t.cur, t.cur.Node != ""
}
