package cloudinit

import (
	"context"
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

// TurnState is the server join queue's whole state, kept in memory by JoinTurns or, when
// several replicas serve machines, in a shared store (kubestore.JoinTurns) that applies
// these same rules under the API server's optimistic concurrency.
type TurnState struct {
	Turn Turn `json:"turn"` // Node "" when free
	// Capped is the last holder whose cap ran out, and when. It cannot take a new turn
	// for another cap period (its renewals keep asking) unless it releases, so a waiting
	// server goes first; one name, not a map, so it stays bounded.
	Capped   string    `json:"capped,omitempty"`
	CappedAt time.Time `json:"cappedAt,omitzero"`
}

// Take gives name the turn, capped at limit from now, if nobody holds it (or the
// holder's time ran out after ttl of silence). Asking again while holding renews the
// TTL, never the cap. It returns false and the current holder otherwise; holder is ""
// when name's own cap ran out and it must let others go first. changed says whether the
// state must be written back.
func (s *TurnState) Take(name string, limit, ttl time.Duration, now time.Time) (ok bool, holder string, changed bool) {
	changed = s.Expire(now, ttl)
	switch {
	case s.Turn.Node == name:
		s.Turn.Renewed = now
		return true, name, true
	case s.Turn.Node != "":
		return false, s.Turn.Node, changed
	case s.Capped == name && now.Sub(s.CappedAt) < limit:
		return false, "", changed
	}
	s.Turn = Turn{Node: name, Since: now, Renewed: now, Until: now.Add(limit)}
	return true, name, true
}

// Expire frees the turn whose holder went silent for ttl or whose cap passed; it
// reports whether it did.
func (s *TurnState) Expire(now time.Time, ttl time.Duration) bool {
	switch {
	case s.Turn.Node == "":
		return false
	case !now.Before(s.Turn.Until):
		s.Capped, s.CappedAt = s.Turn.Node, now
		s.Turn = Turn{}
	case now.Sub(s.Turn.Renewed) >= ttl:
		s.Turn = Turn{}
	default:
		return false
	}
	return true
}

// Release ends name's turn and its cap; releasing a turn one does not hold does
// nothing to it. It reports whether the state changed.
func (s *TurnState) Release(name string) bool {
	changed := false
	if s.Turn.Node == name {
		s.Turn, changed = Turn{}, true
	}
	if s.Capped == name {
		s.Capped, s.CappedAt, changed = "", time.Time{}, true
	}
	return changed
}

// JoinTurns lets server nodes join one at a time, as LLMOS asks. A server holds the turn
// from the grant until it reports joined or failed (Release), or until it goes silent for
// the TTL, or until the cap given with the grant passes, renewals included: one server
// that never finishes must not keep the rest of the rack out for good.
//
// This keeper holds the state in memory, for one appliance: waiting servers poll it every
// few seconds, and a store write per poll would cost an fsync each. If Bootyard restarts,
// the worst case is that a second server goes ahead while one is mid-join; its join unit
// then retries instead of failing for good. Replicas share kubestore's keeper instead.
type JoinTurns struct {
	mu    sync.Mutex
	ttl   time.Duration
	now   func() time.Time
	state TurnState
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

// Take is TurnState.Take on the keeper's state; it never fails.
func (t *JoinTurns) Take(_ context.Context, name string, limit time.Duration) (ok bool, holder string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ok, holder, _ = t.state.Take(name, limit, t.ttl, t.now())
	return ok, holder, nil
}

// Release ends name's turn; releasing a turn one does not hold does nothing to it.
func (t *JoinTurns) Release(_ context.Context, name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.state.Release(name)
	return nil
}

// Holder reports who is mid-join, since when and until when, if anyone.
func (t *JoinTurns) Holder(context.Context) (Turn, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.state.Expire(t.now(), t.ttl)
	return t.state.Turn, t.state.Turn.Node != "", nil
}
