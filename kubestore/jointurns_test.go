package kubestore_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit/turntest"
	"github.com/bootyard/bootyard/internal/kubetest"
	"github.com/bootyard/bootyard/store"
)

// TestJoinTurns runs the join queue's rules, as the in-memory keeper passes them,
// against the queue replicas share on a real API server: each case in a namespace of
// its own.
func TestJoinTurns(t *testing.T) {
	api := startAPI(t)
	var seq atomic.Int64
	turntest.Run(t, func(t *testing.T, ttl time.Duration, now func() time.Time) turntest.Keeper {
		st := openIn(t, api, fmt.Sprintf("turns-%d", seq.Add(1)), store.Limits{})
		return st.JoinTurns(ttl, now)
	})
}

// testReplicaJoinTurn: servers asking two replicas at once still join one at a time.
// Many rounds of two servers racing, each through its own replica: exactly one is told
// "go" each round, and the other replica names it as the holder.
func testReplicaJoinTurn(t *testing.T, api *kubetest.API, ns string) {
	a, b := twoReplicas(t, api, ns)
	turns := [2]turntest.Keeper{a.JoinTurns(0, nil), b.JoinTurns(0, nil)}
	for round := range 10 {
		names := [2]string{fmt.Sprintf("cp-a%d", round), fmt.Sprintf("cp-b%d", round)}
		var ok [2]bool
		var holder [2]string
		var errs [2]error
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok[i], holder[i], errs[i] = turns[i].Take(t.Context(), names[i], 30*time.Minute)
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v, %v", round, errs[0], errs[1])
		}
		if ok[0] == ok[1] {
			t.Fatalf("round %d: both replicas said %v (holders %q, %q): want exactly one grant", round, ok[0], holder[0], holder[1])
		}
		winner := names[0]
		if ok[1] {
			winner = names[1]
		}
		if holder[0] != winner || holder[1] != winner {
			t.Fatalf("round %d: holders %q, %q; want both %q", round, holder[0], holder[1], winner)
		}
		for i, k := range turns {
			if got, held, err := k.Holder(t.Context()); err != nil || !held || got.Node != winner {
				t.Fatalf("round %d: replica %d's Holder = %+v, %v, %v; want %s", round, i, got, held, err, winner)
			}
		}
		// The winner reports joined through the other replica: the queue is free again.
		other := turns[0]
		if winner == names[0] {
			other = turns[1]
		}
		if err := other.Release(t.Context(), winner); err != nil {
			t.Fatal(err)
		}
		if got, held, err := turns[0].Holder(t.Context()); err != nil || held {
			t.Fatalf("round %d: after release Holder = %+v, %v, %v; want free", round, got, held, err)
		}
	}
}
