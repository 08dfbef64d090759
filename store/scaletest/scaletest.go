// Package scaletest holds what the scale figures of issue 13 share across packages: the
// inventory size they run at and how they time work on a shared machine.
package scaletest

import (
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Nodes is the inventory size of the scale figures: small (def) in `make test`, the
// issue's 100,000 with BOOTYARD_SCALE_NODES=100000 (see the README's "Measured here").
func Nodes(t testing.TB, def int) int {
	v := os.Getenv("BOOTYARD_SCALE_NODES")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 400 {
		t.Fatalf("BOOTYARD_SCALE_NODES=%q: want a number of at least 400", v)
	}
	return n
}

// Time runs fn runs times and returns the 99th percentile and the median.
func Time(runs int, fn func()) (p99, median time.Duration) {
	d := make([]time.Duration, runs)
	for i := range d {
		start := time.Now()
		fn()
		d[i] = time.Since(start)
	}
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*99/100)], d[len(d)/2]
}

// CPU is the user and system CPU this process has used: on a shared, loaded machine it
// says more about the work than the wall clock does.
func CPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
