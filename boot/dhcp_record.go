package boot

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/bootyard/bootyard/node"
)

type bootRecord struct {
	mac  node.MAC
	seen node.BootInfo
}

// recordRepeat is how long an identical record from the same MAC is not sent again: one
// PXE boot sends DISCOVER, REQUEST and (after iPXE loads) both again, one record is enough.
const recordRepeat = 30 * time.Second

// noteBoot queues a discovery record for a network-booting client. It never blocks the
// reply: when the recorder is behind, the record is dropped and counted.
func (s *DHCPServer) noteBoot(mac node.MAC, c bootClient, ip netip.Addr) {
	if !c.netboot() {
		return
	}
	seen := node.BootInfo{Arch: c.arch, Firmware: c.firmware(), VendorClass: c.vendorClass, UserClass: c.userClass, LastSeen: s.now()}
	if c.arch == archUnknownKey {
		seen.Arch = 0
	}
	if ip.IsValid() {
		seen.IP = ip.String()
	}
	select {
	case s.boots <- bootRecord{mac: mac, seen: seen}:
	default:
		s.stats.bootRecordDrop.Add(1)
	}
}

// recordWriters is how many boot records are written at once. The store's group commit
// (bbolt's Batch) merges concurrent writes into one transaction, so a storm's records
// cost a few commits instead of one each, in turn: written one at a time, 1,000
// machines' records took longer than their TFTP transfers, and each machine's script
// request then found its MAC not yet recorded and wrote the discovery itself, holding
// its HTTP connection, goroutine and buffers through a commit. With 8 writers the
// storm's peak was 2–4 MiB lower but its records took more transactions (server CPU 5.7
// against main's 5.5 ms a machine in one series); 32 kept the CPU at main's.
const recordWriters = 32

// recordBoots writes the queued records until boots is closed, skipping repeats. The
// records of one MAC always go to the same writer, so they are written in the order
// they were seen (a later record merges over an earlier one).
func (s *DHCPServer) recordBoots(ctx context.Context) {
	type last struct {
		seen node.BootInfo
		at   time.Time
	}
	var writers sync.WaitGroup
	shards := make([]chan bootRecord, recordWriters)
	for i := range shards {
		shards[i] = make(chan bootRecord, 16)
		writers.Go(func() {
			for r := range shards[i] {
				s.recordBoot(ctx, r)
			}
		})
	}
	defer func() {
		for _, c := range shards {
			close(c)
		}
		writers.Wait()
	}()
	sent := make(map[node.MAC]last)
	for r := range s.boots {
		prev, ok := sent[r.mac]
		p, q := prev.seen, r.seen
		if ok && r.seen.LastSeen.Sub(prev.at) < recordRepeat &&
			p.Arch == q.Arch && p.Firmware == q.Firmware && p.VendorClass == q.VendorClass && p.UserClass == q.UserClass && p.IP == q.IP {
			continue
		}
		if len(sent) > 100_000 {
			clear(sent) // a flood of spoofed MACs must not grow this without bound
		}
		sent[r.mac] = last{seen: r.seen, at: r.seen.LastSeen}
		shards[recordShard(r.mac)] <- r
	}
}

// recordShard is the writer that owns mac's records: by the MAC's hash, the one the
// shared-lease offers use (macSlot).
func recordShard(mac node.MAC) int {
	return int(macSlot(mac) % recordWriters)
}

func (s *DHCPServer) recordBoot(ctx context.Context, r bootRecord) {
	defer s.recoverTask("recording a boot")
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := s.inv.RecordBoot(rctx, r.mac, r.seen)
	s.stats.bootRecords.Add(1)
	if err != nil {
		s.log.Warn("dhcp: recording boot failed", slog.String("mac", r.mac.String()), slog.Any("err", err))
	}
}
