package kubestore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
)

// annotationJoinTurn on the settings object holds the server join queue's state
// (cloudinit.TurnState as JSON), written conditional on the object's version.
const annotationJoinTurn = "bootyard.io/join-turn"

// JoinTurns is the server join queue every replica shares: the rules are
// cloudinit.TurnState's, the state is on the settings object, and every change is a
// patch conditional on the version read, so when two replicas grant the turn to two
// servers at once the API server takes one grant and the other replica reads again and
// answers "wait". Reads go to the API server, not the cache: a waiting server polls every
// few seconds and a stale "free" would let it in. A wait costs a read; only a grant, a
// renewal (about once a minute from the holder) or a release writes.
//
// While the API server cannot be reached no turn is granted: the join unit asks again.
type JoinTurns struct {
	s   *Store
	ttl time.Duration
	now func() time.Time
}

// JoinTurns returns the shared queue; ttl <= 0 means cloudinit.DefaultTurnTTL, now nil
// the wall clock.
func (s *Store) JoinTurns(ttl time.Duration, now func() time.Time) *JoinTurns {
	if ttl <= 0 {
		ttl = cloudinit.DefaultTurnTTL
	}
	if now == nil {
		now = func() time.Time { return time.Now().UTC() }
	}
	return &JoinTurns{s: s, ttl: ttl, now: now}
}

// Take is cloudinit.TurnState.Take on the shared state.
func (j *JoinTurns) Take(ctx context.Context, name string, limit time.Duration) (ok bool, holder string, err error) {
	err = j.update(ctx, "take the join turn for "+name, func(st *cloudinit.TurnState) bool {
		var changed bool
		ok, holder, changed = st.Take(name, limit, j.ttl, j.now())
		return changed
	})
	return ok, holder, err
}

// Release ends name's turn; releasing a turn one does not hold does nothing to it.
func (j *JoinTurns) Release(ctx context.Context, name string) error {
	return j.update(ctx, "release the join turn of "+name, func(st *cloudinit.TurnState) bool { return st.Release(name) })
}

// Holder reports who is mid-join, since when and until when, if anyone. It writes
// nothing: an expired turn reads as free, and the next Take clears it.
func (j *JoinTurns) Holder(ctx context.Context) (cloudinit.Turn, bool, error) {
	o, err := j.s.settingsObj(ctx)
	if err != nil {
		return cloudinit.Turn{}, false, fmt.Errorf("read the join turn: %w", err)
	}
	st, err := turnState(o)
	if err != nil {
		return cloudinit.Turn{}, false, err
	}
	st.Expire(j.now(), j.ttl)
	return st.Turn, st.Turn.Node != "", nil
}

// update reads the state, applies fn and, when fn says it changed, writes it back
// conditional on the version read, again from a fresh read on a conflict.
func (j *JoinTurns) update(ctx context.Context, what string, fn func(*cloudinit.TurnState) (changed bool)) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	for attempt := 0; attempt < maxConflictRetries; attempt++ {
		o, err := j.s.settingsObj(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		st, err := turnState(o)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if !fn(&st) {
			return nil
		}
		b, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("%s: encode: %w", what, err)
		}
		body, pt := patchMeta(map[string]string{annotationJoinTurn: string(b)}, o.ResourceVersion)
		err = j.s.rc.Patch(pt).Namespace(j.s.ns).Resource(resSettings).Name(settingsName).Body(body).Do(ctx).Error()
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, kindErr(err))
		}
		return nil
	}
	return fmt.Errorf("%s: %w: %w", what, errTooManyConflicts, node.ErrConflict)
}

// turnState decodes the queue's state from the settings object; none is a free queue.
func turnState(o *v1alpha1.BootyardSettings) (cloudinit.TurnState, error) {
	var st cloudinit.TurnState
	raw, ok := o.Annotations[annotationJoinTurn]
	if !ok || raw == "" {
		return st, nil
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return cloudinit.TurnState{}, fmt.Errorf("the join turn annotation %s: %w", annotationJoinTurn, err)
	}
	return st, nil
}
