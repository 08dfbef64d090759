package kubestore_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

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
			reportAPICPUPerWrite(b, cpu0, cpu1)
		})
	}
}

// BenchmarkConfigMapWrite is the floor under BenchmarkLeaseBlockWrite on this machine:
// the same 64 lines updated in a ConfigMap, a built-in type the API server handles
// without a custom resource's schema walk, one update after another with a watch open
// on the namespace. It is not a design option (the issue wants custom resources); it
// tells how much of a block write's cost is the API server's per-write work on these
// cores, whatever is written.
func BenchmarkConfigMapWrite(b *testing.B) {
	api := startAPI(b)
	ctx := context.Background()
	ns := "configmap-write"
	openIn(b, api, ns, store.Limits{}) // creates the namespace
	cfg := rest.CopyConfig(api.AdminConfig)
	cfg.QPS, cfg.Burst = 1000, 1000 // as the store's client: client-go's default of 5/s would be the measure
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	cms := client.CoreV1().ConfigMaps(ns)
	w, err := cms.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	go func() {
		for range w.ResultChan() {
		}
	}()
	lines := make([]string, 64)
	expires := time.Now().Add(time.Hour).UTC()
	render := func() string {
		for i := range lines {
			lines[i] = fmt.Sprintf("10.64.1.%d 02:be:00:00:00:%02x active %s", i, i, expires.Format(time.RFC3339))
		}
		return strings.Join(lines, "\n")
	}
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "block"},
		Data: map[string]string{"leases": render()}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	cpu0 := apiCPU(b)
	b.ResetTimer()
	for range b.N {
		expires = expires.Add(time.Second)
		cm.Data["leases"] = render()
		if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu1 := apiCPU(b)
	reportAPICPUPerWrite(b, cpu0, cpu1)
}
