package boot

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

// gatedInventory holds every RecordBoot until release is closed, counting how many wait
// at once, and remembers the calls in the order they were made.
type gatedInventory struct {
	testInventory
	release  chan struct{}
	mu       sync.Mutex
	inFlight int
	most     int
}

func (g *gatedInventory) RecordBoot(ctx context.Context, mac node.MAC, seen node.BootInfo) error {
	g.mu.Lock()
	g.inFlight++
	g.most = max(g.most, g.inFlight)
	g.mu.Unlock()
	<-g.release
	g.mu.Lock()
	g.inFlight--
	g.mu.Unlock()
	return g.testInventory.RecordBoot(ctx, mac, seen)
}

func (g *gatedInventory) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight
}

func recorderOnly(inv Inventory) *DHCPServer {
	return &DHCPServer{inv: inv, log: quietLogger(), boots: make(chan bootRecord, 1024),
		now: func() time.Time { return time.Now().UTC() }}
}

func TestDHCP_BootRecordsOfDifferentMachinesAreWrittenTogether(t *testing.T) {
	// A storm's records must reach the store's group commit together: one at a time,
	// they fell seconds behind the machines they describe.
	inv := &gatedInventory{release: make(chan struct{})}
	s := recorderOnly(inv)
	done := make(chan struct{})
	go func() { s.recordBoots(context.Background()); close(done) }()

	// One MAC for each writer, so every one has a record to write.
	macs := map[int]node.MAC{}
	for i := 0; len(macs) < recordWriters; i++ {
		mac := mustMAC(fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff))
		if _, ok := macs[recordShard(mac)]; !ok {
			macs[recordShard(mac)] = mac
		}
	}
	for _, mac := range macs {
		s.boots <- bootRecord{mac: mac, seen: node.BootInfo{Firmware: "uefi", LastSeen: time.Now()}}
	}
	waitUntil(t, fmt.Sprintf("%d records are being written at once", recordWriters), func() bool {
		return inv.waiting() == recordWriters
	})
	close(inv.release)
	close(s.boots)
	<-done
	if got := len(inv.recorded()); got != recordWriters {
		t.Errorf("%d records written, want %d", got, recordWriters)
	}
}

func TestDHCP_BootRecordsOfOneMachineAreWrittenInTheOrderSeen(t *testing.T) {
	// A PXE boot and the iPXE boot after it are two records of one MAC; the later one
	// merges over the earlier one in the store, so they must not be written reordered.
	inv := &gatedInventory{release: make(chan struct{})}
	close(inv.release)
	s := recorderOnly(inv)
	done := make(chan struct{})
	go func() { s.recordBoots(context.Background()); close(done) }()

	mac := mustMAC("52:54:00:aa:00:01")
	var want []string
	at := time.Now()
	for i := range 50 {
		ip := fmt.Sprintf("10.77.0.%d", 100+i)
		want = append(want, ip)
		s.boots <- bootRecord{mac: mac, seen: node.BootInfo{Firmware: "uefi", IP: ip, LastSeen: at}}
		// Other machines' records in between, to every writer.
		s.boots <- bootRecord{mac: mustMAC(fmt.Sprintf("52:54:00:bb:00:%02x", i)), seen: node.BootInfo{Firmware: "bios", LastSeen: at}}
	}
	close(s.boots)
	<-done
	var got []string
	for _, r := range inv.recorded() {
		if r.mac == mac {
			got = append(got, r.seen.IP)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("records of %s written in the order %v, want %v", mac, got, want)
	}
	if n := len(inv.recorded()); n != 100 {
		t.Errorf("%d records written, want 100", n)
	}
}
