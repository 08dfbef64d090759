package boot

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// partialLeaseStore writes every lease but those of refused, as the Kubernetes backend
// does when another replica holds an address.
type partialLeaseStore struct {
	refused netip.Addr
	batches [][]store.Lease
}

func (p *partialLeaseStore) Leases(context.Context) ([]store.Lease, error) { return nil, nil }

func (p *partialLeaseStore) PutLeases(_ context.Context, leases ...store.Lease) error {
	p.batches = append(p.batches, leases)
	for _, l := range leases {
		if l.IP == p.refused {
			return store.LeaseErrors{l.IP: node.ErrConflict}
		}
	}
	return nil
}

func TestLeaseCommit_APartlyWrittenBatchFailsOnlyTheRefusedLeases(t *testing.T) {
	ok, refused := netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.11")
	st := &partialLeaseStore{refused: refused}
	c := newLeaseCommitter(st, &dhcpCounters{}, 2)
	results := map[netip.Addr]chan error{ok: make(chan error, 1), refused: make(chan error, 1)}
	for ip, res := range results {
		go func() {
			res <- c.commit(context.Background(), store.Lease{IP: ip, MAC: node.MAC{2, 0, 0, 0, 0, ip.As4()[3]}, State: store.LeaseActive, Expires: time.Now().Add(time.Hour)})
		}()
	}
	// Both requests wait in the queue before the committer starts, so they share a batch.
	deadline := time.Now().Add(10 * time.Second)
	for len(c.requests) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the requests never reached the queue")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.run(ctx)
	if err := <-results[ok]; err != nil {
		t.Errorf("the written lease failed: %v", err)
	}
	if err := <-results[refused]; !errors.Is(err, node.ErrConflict) {
		t.Errorf("the refused lease: %v, want its conflict", err)
	}
	if len(st.batches) != 1 || len(st.batches[0]) != 2 {
		t.Errorf("batches %v, want one of two", st.batches)
	}
	if got := c.counters.leasesCommitted.Load(); got != 1 || c.counters.commitErrors.Load() != 1 {
		t.Errorf("counted %d committed, %d errors; want 1 and 1", got, c.counters.commitErrors.Load())
	}
}
