package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// TestSharedElection_EveryWorkRunsInEveryTermOfOneCampaign: two works share one election.
// The campaign starts only when both have joined, each term runs both, and a term ends
// only when both have stopped.
func TestSharedElection_EveryWorkRunsInEveryTermOfOneCampaign(t *testing.T) {
	var campaigns atomic.Int32
	var mu sync.Mutex
	var ran []string
	terms := 2
	finished := make(chan struct{})
	run := func(ctx context.Context, lead func(ctx context.Context)) error {
		defer close(finished)
		campaigns.Add(1)
		for range terms {
			term, lose := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { lead(term); close(done) }()
			lose()
			<-done
			mu.Lock()
			ran = append(ran, "term end")
			mu.Unlock()
		}
		return nil
	}
	s := ShareElection(run, 2)
	ctx, cancel := context.WithCancel(context.Background())
	work := func(name string) func(ctx context.Context) {
		return func(ctx context.Context) {
			<-ctx.Done()
			mu.Lock()
			ran = append(ran, name)
			mu.Unlock()
		}
	}
	errs := make(chan error, 2)
	go func() { errs <- s.Elect(ctx, work("poller")) }()
	go func() { errs <- s.Elect(ctx, work("controller")) }()
	<-finished
	cancel()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := campaigns.Load(); n != 1 {
		t.Fatalf("%d campaigns, want 1", n)
	}
	if len(ran) != 6 || ran[2] != "term end" || ran[5] != "term end" {
		t.Fatalf("ran %q, want both works then the term's end, twice", ran)
	}
}
