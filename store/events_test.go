package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

func TestEvents_AreAppendedInOrderWithIncreasingSeq(t *testing.T) {
	ctx := context.Background()
	path := tempStorePath(t)
	s := openTestStore(t, path)
	if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1)), "api"); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i := range 5 {
		ev := node.NewEvent("w1", node.EventProgress, fmt.Sprintf("step %d", i), "agent", at.Add(time.Duration(i)*time.Second))
		ev.Percent = 20 * (i + 1)
		if err := s.AppendEvents(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AppendEvents(ctx,
		node.NewEvent("w1", node.EventLog, "step 5", "agent", at),
		node.NewEvent("w1", node.EventLog, "step 6", "agent", at),
	); err != nil {
		t.Fatal(err)
	}
	closeAndCheck(t, s)
	s = openTestStore(t, path)

	events, err := s.Events(ctx, "w1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 8 {
		t.Fatalf("%d events, want the import and 7 more", len(events))
	}
	if events[0].To != node.StateRegistered {
		t.Fatalf("first event = %+v, want the import", events[0])
	}
	for i, e := range events[1:] {
		if e.Reason != fmt.Sprintf("step %d", i) {
			t.Fatalf("event %d = %q, want step %d", i+1, e.Reason, i)
		}
	}
	if events[1].Percent != 20 || events[5].Percent != 100 || events[1].Source != "agent" {
		t.Fatalf("event fields lost: %+v", events[1:6])
	}
	for i := 1; i < len(events); i++ {
		if events[i].Seq <= events[i-1].Seq {
			t.Fatalf("Seq not increasing: %d then %d", events[i-1].Seq, events[i].Seq)
		}
	}
	// After a reopen the sequence carries on, it does not restart.
	if err := s.AppendEvents(ctx, node.NewEvent("w1", node.EventLog, "after reopen", "agent", at)); err != nil {
		t.Fatal(err)
	}
	last, err := s.Events(ctx, "w1", 1)
	if err != nil || len(last) != 1 || last[0].Reason != "after reopen" || last[0].Seq <= events[7].Seq {
		t.Fatalf("event after reopen = %+v, %v", last, err)
	}
	closeAndCheck(t, s)
}

func TestEvents_ConcurrentAppendsAreAllKeptWithDistinctSeq(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1)), "api"); err != nil {
		t.Fatal(err)
	}
	const writers, each = 20, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.AppendEvents(ctx, node.NewEvent("w1", node.EventLog, fmt.Sprintf("%d/%d", w, i), "agent", time.Now())); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	events, err := s.Events(ctx, "w1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1+writers*each {
		t.Fatalf("%d events, want %d", len(events), 1+writers*each)
	}
	// Each writer's own events stay in the order it wrote them.
	next := make([]int, writers)
	for i, e := range events {
		if i > 0 && e.Seq <= events[i-1].Seq {
			t.Fatalf("Seq not increasing at %d", i)
		}
		var w, n int
		if _, err := fmt.Sscanf(e.Reason, "%d/%d", &w, &n); err != nil {
			continue // the import
		}
		if n != next[w] {
			t.Fatalf("writer %d: event %d came where %d was due", w, n, next[w])
		}
		next[w]++
	}
	closeAndCheck(t, s)
}

func TestEvents_LimitKeepsTheNewestOldestFirst(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1)), "api"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		if err := s.AppendEvents(ctx, node.NewEvent("w1", node.EventLog, fmt.Sprint(i), "agent", time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	// The import's reason is "imported"; the log lines are 1..4.
	tests := []struct {
		limit int
		want  []string
	}{
		{0, []string{"imported", "1", "2", "3", "4"}},
		{-1, []string{"imported", "1", "2", "3", "4"}},
		{1, []string{"4"}},
		{3, []string{"2", "3", "4"}},
		{5, []string{"imported", "1", "2", "3", "4"}},
		{50, []string{"imported", "1", "2", "3", "4"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.limit), func(t *testing.T) {
			events, err := s.Events(ctx, "w1", tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range events {
				got = append(got, e.Reason)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Events(limit %d) = %q, want %q", tt.limit, got, tt.want)
			}
		})
	}
	closeAndCheck(t, s)
}

func TestEvents_OfAnUnknownNodeAreNotFound(t *testing.T) {
	s := openTestStore(t, tempStorePath(t))
	if _, err := s.Events(context.Background(), "ghost", 0); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("Events(ghost) = %v, want ErrNotFound", err)
	}
	closeAndCheck(t, s)
}

func TestAppendEvents_RefusesEventsNoNodeOwns(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1)), "api"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		events  []node.Event
		wantErr error
	}{
		{"event without a node", []node.Event{{Type: node.EventLog, Reason: "orphan"}}, nil},
		// A node removed between a handler's lookup and its write: the event must not
		// become the start of the history of the next node to take that name.
		{"event for a removed node", []node.Event{node.NewEvent("ghost", node.EventWarning, "late", "nocloud", time.Now())}, node.ErrNotFound},
		{"one bad event spoils the call", []node.Event{
			node.NewEvent("w1", node.EventLog, "good", "agent", time.Now()),
			node.NewEvent("ghost", node.EventLog, "bad", "agent", time.Now()),
		}, node.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.AppendEvents(ctx, tt.events...)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("AppendEvents = %v, want an error (%v)", err, tt.wantErr)
			}
		})
	}
	if got := history(t, s, "w1"); len(got) != 1 {
		t.Fatalf("history of w1 = %v, want only the import", got)
	}
	if _, err := s.ImportNode(ctx, workerSpec("ghost", coreMAC(2)), "api"); err != nil {
		t.Fatal(err)
	}
	if got := history(t, s, "ghost"); len(got) != 1 {
		t.Fatalf("a new node inherited events written before it existed: %v", got)
	}
	if err := s.AppendEvents(ctx); err != nil {
		t.Fatalf("AppendEvents() with no events = %v", err)
	}
	closeAndCheck(t, s)
}
