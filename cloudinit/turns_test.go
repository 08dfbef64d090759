package cloudinit_test

import (
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
)

func TestJoinTurns_OneServerAtATime(t *testing.T) {
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
			turns := cloudinit.NewJoinTurns(20*time.Minute, func() time.Time { return now })
			for i, s := range tt.steps {
				now = now.Add(s.after)
				if s.op == "release" {
					turns.Release(s.name)
					continue
				}
				ok, who := turns.Take(s.name, 30*time.Minute)
				if ok != s.wantOK || who != s.wantWho {
					t.Fatalf("step %d: Take(%s) = %v, %s; want %v, %s", i, s.name, ok, who, s.wantOK, s.wantWho)
				}
			}
		})
	}
}

func TestJoinTurns_HolderShowsWhoSinceAndUntil(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	turns := cloudinit.NewJoinTurns(20*time.Minute, func() time.Time { return now })
	if _, held := turns.Holder(); held {
		t.Fatal("a new keeper has a holder")
	}
	turns.Take("cp-1", 30*time.Minute)
	now = now.Add(5 * time.Minute)
	turns.Take("cp-1", 30*time.Minute)
	got, held := turns.Holder()
	want := cloudinit.Turn{Node: "cp-1", Since: start, Renewed: now, Until: start.Add(30 * time.Minute)}
	if !held || got != want {
		t.Fatalf("Holder() = %+v, %v; want %+v", got, held, want)
	}
	now = start.Add(30 * time.Minute)
	if got, held := turns.Holder(); held {
		t.Fatalf("Holder() after the cap = %+v, want none", got)
	}
}
