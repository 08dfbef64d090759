package cloudinit_test

import (
	"testing"

	"github.com/bootyard/bootyard/cloudinit"
)

// BenchmarkUserData measures rendering a server's user-data from scratch (YAML marshal,
// script template, extra cloud-config merge): the cost of a cache miss.
func BenchmarkUserData(b *testing.B) {
	r := newRenderer(b, cloudinit.Config{})
	n, s := fixtureNodes(b)["server"], fixtureSettings()
	b.ReportAllocs()
	var size int
	for b.Loop() {
		ud, err := r.UserData(n, s, true)
		if err != nil {
			b.Fatal(err)
		}
		size = len(ud)
	}
	b.SetBytes(int64(size))
}

// BenchmarkCachedFiles measures the NoCloud handler's hot path: a cache hit.
func BenchmarkCachedFiles(b *testing.B) {
	c := cloudinit.NewCache(newRenderer(b, cloudinit.Config{}))
	n, s := fixtureNodes(b)["server"], fixtureSettings()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Files(n, s, true); err != nil {
			b.Fatal(err)
		}
	}
}
