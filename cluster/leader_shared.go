package cluster

import (
	"context"
	"slices"
	"sync"
)

// ElectFunc runs lead on one replica at a time (Elector.Run, Config.Elect): each time this
// replica wins, with a context that ends when it loses or ctx ends.
type ElectFunc func(ctx context.Context, lead func(ctx context.Context)) error

// SharedElection lets several works that must each happen once (the controller's passes,
// the BMC poller) follow one Lease: one campaign, and in each term every work runs, so
// they all move together to the new leader. A second Lease (or a second campaign for the
// same one) could leave the controller on one replica and the poller on another, and
// costs its own renewals.
type SharedElection struct {
	run   ElectFunc
	mu    sync.Mutex
	works []func(ctx context.Context)
	want  int
}

// ShareElection shares run among works works. The campaign starts only once every one has
// joined through Elect: the controller joins once its Node cache has synced, and a
// replica must not win the Lease before it could do the work.
func ShareElection(run ElectFunc, works int) *SharedElection {
	return &SharedElection{run: run, want: works}
}

// Elect is one work's ElectFunc: lead runs in every term of this replica until ctx ends.
// The call that completes the set runs the campaign; the others wait for ctx.
func (s *SharedElection) Elect(ctx context.Context, lead func(ctx context.Context)) error {
	s.mu.Lock()
	s.works = append(s.works, func(term context.Context) {
		// A work that stops (its ctx ends) before the term does stops alone.
		work, cancel := context.WithCancel(term)
		defer cancel()
		stop := context.AfterFunc(ctx, cancel)
		defer stop()
		lead(work)
	})
	last := len(s.works) == s.want
	s.mu.Unlock()
	if !last {
		<-ctx.Done()
		return nil
	}
	return s.run(ctx, s.lead)
}

// lead runs every work for one term and returns when all have stopped, so the Lease is
// released (or campaigned for again) only once none runs.
func (s *SharedElection) lead(term context.Context) {
	s.mu.Lock()
	works := slices.Clone(s.works)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range works {
		wg.Go(func() { w(term) })
	}
	wg.Wait()
}
