package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// ImportUpdated: the record existed and was replaced by the imported one.
const ImportUpdated ImportOutcome = "updated"

// ExportRecords calls fn with every record of the inventory, from one read transaction
// (one consistent snapshot): the header, the settings, images by name, nodes by name
// with their histories, leases by address. The order and the encoding are deterministic,
// so exporting the same inventory twice gives the same bytes: a diff of two exports is
// the check that a pivot lost nothing. fn must not call the store.
func (s *Store) ExportRecords(ctx context.Context, fn func(Record) error) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		if err := fn(Record{Kind: RecordHeader, Format: RecordFormatName, Version: RecordFormatVersion}); err != nil {
			return err
		}
		c, err := getClusterSettings(tx)
		if err != nil {
			return err
		}
		settings, err := NewSettingsRecord(c, tx.Bucket(bucketSettings).Get(keyAdminPassword))
		if err != nil {
			return err
		}
		if err := fn(Record{Kind: RecordSettings, Settings: settings}); err != nil {
			return err
		}
		if b := tx.Bucket(bucketImages); b != nil {
			if err := b.ForEach(func(k, v []byte) error {
				var img Image
				if err := json.Unmarshal(v, &img); err != nil {
					return fmt.Errorf("decode image %s: %w", k, err)
				}
				img.Default = false // the settings say which is the default
				return fn(Record{Kind: RecordImage, Image: &img})
			}); err != nil {
				return err
			}
		}
		// bbolt iterates keys in byte order, which is name order.
		if err := tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			var n node.Node
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("decode node %s: %w", k, err)
			}
			events, err := storedEvents(tx, n.Name)
			if err != nil {
				return err
			}
			secrets, err := storedNodeSecrets(tx, n.Name)
			if err != nil {
				return err
			}
			return fn(Record{Kind: RecordNode, Node: &n, Events: events, Secrets: secrets})
		}); err != nil {
			return err
		}
		return forEachLease(tx, func(l Lease) error {
			return fn(Record{Kind: RecordLease, Lease: NewLeaseRecord(l)})
		})
	})
}

func storedEvents(tx *bolt.Tx, name string) ([]node.Event, error) {
	b := tx.Bucket(bucketEvents).Bucket([]byte(name))
	if b == nil {
		return nil, nil
	}
	var out []node.Event
	err := b.ForEach(func(k, v []byte) error {
		var e node.Event
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decode event %s/%d: %w", name, decodeUint(k), err)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// ImportRecord writes one exported record, all of it or nothing, and says whether it
// created, updated or left unchanged what the store held: importing the same record
// twice is unchanged the second time and adds no event. A record replaces what it
// names (the node of that name with its whole history, the image of that name, the
// lease on that address, the settings); a node whose MAC belongs to another node is
// ErrConflict and nothing of it is written. With dryRun it only reads and returns the
// outcome an import would have. Concurrent callers share commits (bbolt's Batch), so an
// importer that calls from several goroutines pays one fsync per group, not per record.
func (s *Store) ImportRecord(ctx context.Context, rec Record, dryRun bool) (ImportOutcome, error) {
	if err := ctxErr(ctx); err != nil {
		return ImportFailed, err
	}
	if err := rec.Validate(); err != nil {
		return ImportFailed, err
	}
	if rec.Kind == RecordHeader {
		return ImportUnchanged, nil
	}
	var outcome ImportOutcome
	apply := func(write bool) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			var err error
			switch rec.Kind {
			case RecordSettings:
				outcome, err = importSettings(tx, rec.Settings, write)
			case RecordImage:
				outcome, err = importImage(tx, rec.Image, write)
			case RecordNode:
				outcome, err = importNodeRecord(tx, rec.Node, rec.Events, rec.Secrets, write)
			case RecordLease:
				outcome, err = importLease(tx, rec.Lease.Lease(), write)
			}
			return err
		}
	}
	var err error
	if dryRun {
		err = s.db.View(apply(false))
	} else {
		err = s.db.Batch(apply(true))
	}
	if err != nil {
		return ImportFailed, fmt.Errorf("import %s %s: %w", rec.Kind, rec.Name(), err)
	}
	return outcome, nil
}

func outcomeOf(existed, same bool) ImportOutcome {
	switch {
	case !existed:
		return ImportCreated
	case same:
		return ImportUnchanged
	}
	return ImportUpdated
}

func importSettings(tx *bolt.Tx, rec *SettingsRecord, write bool) (ImportOutcome, error) {
	c, err := rec.ClusterSettings()
	if err != nil {
		return ImportFailed, err
	}
	// Compare in the stored form, so a record with its keys in another order is the same.
	cur, err := getClusterSettings(tx)
	if err != nil {
		return ImportFailed, err
	}
	want, err := NewSettingsRecord(c, []byte(rec.AdminPasswordHash))
	if err != nil {
		return ImportFailed, err
	}
	have, err := NewSettingsRecord(cur, tx.Bucket(bucketSettings).Get(keyAdminPassword))
	if err != nil {
		return ImportFailed, err
	}
	existed := tx.Bucket(bucketSettings).Get(keyCluster) != nil
	out := outcomeOf(existed, bytes.Equal(want.Cluster, have.Cluster) && want.AdminPasswordHash == have.AdminPasswordHash)
	if !write || out == ImportUnchanged {
		return out, nil
	}
	if err := putClusterSettings(tx, c); err != nil {
		return ImportFailed, err
	}
	if rec.AdminPasswordHash != "" {
		if err := tx.Bucket(bucketSettings).Put(keyAdminPassword, []byte(rec.AdminPasswordHash)); err != nil {
			return ImportFailed, err
		}
	}
	return out, nil
}

func importImage(tx *bolt.Tx, img *Image, write bool) (ImportOutcome, error) {
	stored := *img
	stored.Default = false
	v, err := json.Marshal(stored)
	if err != nil {
		return ImportFailed, fmt.Errorf("encode image %s: %w", img.Name, err)
	}
	var have []byte
	if b := tx.Bucket(bucketImages); b != nil {
		have = b.Get([]byte(img.Name))
	}
	out := outcomeOf(have != nil, bytes.Equal(have, v))
	if !write || out == ImportUnchanged {
		return out, nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketImages)
	if err != nil {
		return ImportFailed, fmt.Errorf("create bucket %s: %w", bucketImages, err)
	}
	return out, b.Put([]byte(img.Name), v)
}

// importNodeRecord stores n exactly as exported (state, generation, timestamps, deletion
// steps) with its history under the exported sequence numbers and exactly the exported
// secrets. The node's MACs must be free or already its own.
func importNodeRecord(tx *bolt.Tx, n *node.Node, events []node.Event, secrets map[string][]byte, write bool) (ImportOutcome, error) {
	v, err := json.Marshal(n)
	if err != nil {
		return ImportFailed, fmt.Errorf("encode node %s: %w", n.Name, err)
	}
	encoded := make([][]byte, len(events))
	for i, e := range events {
		if encoded[i], err = json.Marshal(e); err != nil {
			return ImportFailed, fmt.Errorf("encode event %s/%d: %w", n.Name, e.Seq, err)
		}
	}
	for _, m := range n.MACs {
		if owner := tx.Bucket(bucketMACIndex).Get(m[:]); owner != nil && string(owner) != n.Name {
			return ImportFailed, fmt.Errorf("MAC %s belongs to node %s: %w", m, owner, node.ErrConflict)
		}
	}
	have := tx.Bucket(bucketNodes).Get([]byte(n.Name))
	haveSecrets, err := storedNodeSecrets(tx, n.Name)
	if err != nil {
		return ImportFailed, err
	}
	sameSecrets := maps.EqualFunc(haveSecrets, secrets, bytes.Equal)
	out := outcomeOf(have != nil, bytes.Equal(have, v) && sameHistory(tx, n.Name, events, encoded) && sameSecrets)
	if !write || out == ImportUnchanged {
		return out, nil
	}
	if !sameSecrets {
		if err := replaceNodeSecrets(tx, n.Name, secrets); err != nil {
			return ImportFailed, err
		}
	}
	var old *node.Node
	if have != nil {
		prev, err := getNode(tx, n.Name)
		if err != nil {
			return ImportFailed, err
		}
		old = &prev
	}
	stored := *n
	if err := putNode(tx, &stored, old); err != nil {
		return ImportFailed, err
	}
	// The history is replaced, not merged: merging two histories of one node would
	// interleave sequence numbers that mean different events.
	if err := deleteEventTotals(tx, n.Name); err != nil {
		return ImportFailed, err
	}
	if tx.Bucket(bucketEvents).Bucket([]byte(n.Name)) != nil {
		if err := tx.Bucket(bucketEvents).DeleteBucket([]byte(n.Name)); err != nil {
			return ImportFailed, err
		}
	}
	if len(events) == 0 {
		return out, nil
	}
	b, err := tx.Bucket(bucketEvents).CreateBucket([]byte(n.Name))
	if err != nil {
		return ImportFailed, fmt.Errorf("events bucket %s: %w", n.Name, err)
	}
	var totals eventTotals
	for i, e := range events {
		if err := b.Put(encodeUint(e.Seq), encoded[i]); err != nil {
			return ImportFailed, err
		}
		totals.count++
		totals.bytes += uint64(len(encoded[i]))
	}
	// The next event continues the exported numbering.
	if err := b.SetSequence(events[len(events)-1].Seq); err != nil {
		return ImportFailed, err
	}
	return out, putEventTotals(tx, n.Name, totals)
}

// sameHistory reports whether the stored history of name is exactly events.
func sameHistory(tx *bolt.Tx, name string, events []node.Event, encoded [][]byte) bool {
	b := tx.Bucket(bucketEvents).Bucket([]byte(name))
	if b == nil {
		return len(events) == 0
	}
	if getEventTotals(tx, name).count != uint64(len(events)) {
		return false
	}
	for i, e := range events {
		if !bytes.Equal(b.Get(encodeUint(e.Seq)), encoded[i]) {
			return false
		}
	}
	return true
}

func importLease(tx *bolt.Tx, l Lease, write bool) (ImportOutcome, error) {
	var have []byte
	if b := tx.Bucket(bucketLeases); b != nil {
		have = b.Get(l.IP.AsSlice())
	}
	out := outcomeOf(have != nil, bytes.Equal(have, encodeLease(l)))
	if !write || out == ImportUnchanged {
		return out, nil
	}
	byIP, byMAC, err := leaseBuckets(tx)
	if err != nil {
		return ImportFailed, err
	}
	return out, putLease(byIP, byMAC, l)
}
