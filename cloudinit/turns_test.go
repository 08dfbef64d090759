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
			{after: 15 * time.Minute, op: "take", name: "cp-1", wantOK: true, wantWho: "cp-1"},
			{after: 15 * time.Minute, op: "take", name: "cp-2", wantOK: false, wantWho: "cp-1"},
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
				ok, who := turns.Take(s.name)
				if ok != s.wantOK || who != s.wantWho {
					t.Fatalf("step %d: Take(%s) = %v, %s; want %v, %s", i, s.name, ok, who, s.wantOK, s.wantWho)
				}
			}
		})
	}
}
