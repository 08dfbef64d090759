// Package turntest is the behaviour every server join queue must have, run against the
// in-memory keeper and the one replicas share on the Kubernetes API alike.
package turntest

import (
	"context"
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
)

// Keeper is the join queue under test.
type Keeper interface {
	Take(ctx context.Context, name string, limit time.Duration) (ok bool, holder string, err error)
	Release(ctx context.Context, name string) error
	Holder(ctx context.Context) (cloudinit.Turn, bool, error)
}

// New makes an empty keeper whose holders go silent after ttl, on the clock now. Each
// call must return a keeper with a state of its own.
type New func(t *testing.T, ttl time.Duration, now func() time.Time) Keeper

// Run runs every case against keepers from newKeeper.
func Run(t *testing.T, newKeeper New) {
	t.Run("OneServerAtATime", func(t *testing.T) { oneServerAtATime(t, newKeeper) })
	t.Run("HolderShowsWhoSinceAndUntil", func(t *testing.T) { holderShowsWhoSinceAndUntil(t, newKeeper) })
}

func oneServerAtATime(t *testing.T, newKeeper New) {
	type step struct {
		after   time.Duration // clock advance before the step
		op      string        // take or release
		name    string
		wantOK  bool
		wantWho string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"the first asker gets the turn, the second waits", []step{
			{op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
			{op: "take", name: "cp-2", wantOK: false, wantWho: "cp-1"},
		}},
		{"asking again while holding renews, others still wait", []step{
			{op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
			{after: 12 * time.Minute, op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
			{after: 12 * time.Minute, op: "take", name: "cp-2", wantOK: false, wantWho: "cp-1"},
		}},
		{"release hands the turn on", []step{
			{op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
			{op: "release", name: "cp-1"},
			{op: "take", name: "cp-2", wantOK: true, wantWho: "cp-2"},
		}},
		{"a stranger's release does not end the turn", []step{
			{op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
			{op: "release", name: "cp-2"},
			{op: "take", name: "cp-3", wantOK: false, wantWho: "cp-1"},
		}},
		{"a holder that went silent past the TTL stops blocking", []step{
			{op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
			{after: 19 * time.Minute, op: "take", name: "cp-2", wantOK: false, wantWho: "cp-1"},
			{after: time.Minute, op: "take", name: "cp-2", wantOK: true, wantWho: "cp-2"},
		}},
		{"renewals never pass the cap: the next server goes after 30 minutes", []step{
			{op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
			{after: 10 * time.Minute, op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
			{after: 10 * time.Minute, op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
			{after: 9 * time.Minute, op: "take", name: "cp-2", wantOK: false, wantWho: "cp-1"},
			{after: time.Minute, op: "take", name: "cp-1", wantOK: false, wantWho: ""}, // its cap ran out: others first
			{op: "take", name: "cp-2", wantOK: true, wantWho: "cp-2"},
			{op: "take", name: "cp-1", wantOK: false, wantWho: "cp-2"},
		}},
		{"a capped holder alone gets the turn again after another cap period", []step{
			{op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
			{after: 30 * time.Minute, op: "take", name: "cp-1", wantOK: false, wantWho: ""},
			{after: 29 * time.Minute, op: "take", name: "cp-1", wantOK: false, wantWho: ""},
			{after: time.Minute, op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
		}},
		{"a capped holder that reports back may take a new turn at once", []step{
			{op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
			{after: 30 * time.Minute, op: "take", name: "cp-1", wantOK: false, wantWho: ""},
			{op: "release", name: "cp-1"},
			{op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			turns := newKeeper(t, 20*time.Minute, func() time.Time { return now })
			for i, s := range tt.steps {
				now = now.Add(s.after)
				if s.op == "release" {
					if err := turns.Release(t.Context(), s.name); err != nil {
						t.Fatalf("step %d: Release(%s): %v", i, s.name, err)
					}
					continue
				}
				ok, who, err := turns.Take(t.Context(), s.name, 30*time.Minute)
				if err != nil || ok != s.wantOK || who != s.wantWho {
					t.Fatalf("step %d: Take(%s) = %v, %s, %v; want %v, %s", i, s.name, ok, who, err, s.wantOK, s.wantWho)
				}
			}
		})
	}
}

func holderShowsWhoSinceAndUntil(t *testing.T, newKeeper New) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	turns := newKeeper(t, 20*time.Minute, func() time.Time { return now })
	holder := func() (cloudinit.Turn, bool) {
		t.Helper()
		got, held, err := turns.Holder(t.Context())
		if err != nil {
			t.Fatalf("Holder: %v", err)
		}
		return got, held
	}
	if _, held := holder(); held {
		t.Fatal("a new keeper has a holder")
	}
	take := func() {
		t.Helper()
		if ok, who, err := turns.Take(t.Context(), "cp-1", 30*time.Minute); !ok || err != nil {
			t.Fatalf("Take(cp-1) = %v, %s, %v", ok, who, err)
		}
	}
	take()
	now = now.Add(5 * time.Minute)
	take()
	got, held := holder()
	want := cloudinit.Turn{Node: "cp-1", Since: start, Renewed: now, Until: start.Add(30 * time.Minute)}
	if !held || got.Node != want.Node || !got.Since.Equal(want.Since) || !got.Renewed.Equal(want.Renewed) || !got.Until.Equal(want.Until) {
		t.Fatalf("Holder() = %+v, %v; want %+v", got, held, want)
	}
	now = start.Add(30 * time.Minute)
	if got, held := holder(); held {
		t.Fatalf("Holder() after the cap = %+v, want none", got)
	}
}
