package kubestore_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// BenchmarkLeaseBlockWrite is one lease block write after another, through PutLeases,
// with a second replica's store watching the blocks (as in the two-replica DORA
// benchmark): a block of 1 lease and of 64, each op a renewal that rewrites the whole
// block. It reports the API server's and etcd's CPU per write (their processes' CPU
// time, so the API server's idle work over the run is in it too): what a write costs
// and how much of it the block's size is, which sets an exchange's wait on this store.
func BenchmarkLeaseBlockWrite(b *testing.B) {
	api := startAPI(b)
	for _, lines := range []int{1, 64} {
		b.Run(fmt.Sprintf("leases=%d", lines), func(b *testing.B) {
			ns := fmt.Sprintf("lease-write-%d", lines)
			writer, watcher := openIn(b, api, ns, store.Limits{}), openIn(b, api, ns, store.Limits{})
			defer writer.Close()
			defer watcher.Close()
			ctx := context.Background()
			expires := time.Now().Add(time.Hour).UTC()
			lease := func(i int) store.Lease {
				return store.Lease{IP: netip.AddrFrom4([4]byte{10, 64, 1, byte(i)}), MAC: node.MAC{2, 0xbe, 0, 0, 0, byte(i)},
					State: store.LeaseActive, Expires: expires}
			}
			block := make([]store.Lease, lines)
			for i := range block {
				block[i] = lease(i)
			}
			if err := writer.PutLeases(ctx, block...); err != nil {
				b.Fatal(err)
			}
			cpu0, writes0 := apiCPU(b), apiLeaseWrites(b, api)
			b.ResetTimer()
			for i := range b.N {
				expires = expires.Add(time.Second)
				if err := writer.PutLeases(ctx, lease(i%lines)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu1, writes1 := apiCPU(b), apiLeaseWrites(b, api)
			if got := writes1 - writes0; got != float64(b.N) {
				b.Errorf("%.0f API writes for %d renewals, want one each", got, b.N)
			}
			for _, proc := range []string{"kube-apiserver", "etcd"} {
				b.ReportMetric(float64((cpu1[proc]-cpu0[proc]).Microseconds())/1000/float64(b.N), proc+"-ms/write")
			}
		})
	}
}
