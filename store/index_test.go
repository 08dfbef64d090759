package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// checkSecondaryIndexes checks that every index bucket holds exactly the entries the
// stored nodes imply (rebuilt here from the records) and that the counts by state agree.
// closeAndCheck runs it, so every store test that writes nodes also checks the indexes.
func checkSecondaryIndexes(t *testing.T, tx *bolt.Tx, byName map[string]node.Node) {
	t.Helper()
	want := map[string]map[string]string{}
	for _, b := range indexBuckets {
		want[string(b)] = map[string]string{}
	}
	counts := map[node.State]uint64{}
	for _, n := range byName {
		want[string(bucketStateIndex)][string(joinKey(string(n.State), n.Name))] = ""
		want[string(bucketRoleIndex)][string(joinKey(string(n.Role), n.Name))] = string(n.State)
		want[string(bucketImageIndex)][string(joinKey(n.Image, n.Name))] = string(n.State)
		for k, v := range n.Labels {
			want[string(bucketLabelIndex)][string(joinKey(k, v, n.Name))] = ""
			want[string(bucketLabelKeyIndex)][string(joinKey(k, n.Name))] = v
		}
		if n.IP.IsValid() {
			want[string(bucketIPIndex)][string(ipKey(n.IP.Addr(), n.Name))] = ""
		}
		counts[n.State]++
	}
	for st, c := range counts {
		want[string(bucketStateCounts)][string(st)] = string(encodeUint(c))
	}
	for _, name := range indexBuckets {
		b := tx.Bucket(name)
		if b == nil {
			t.Errorf("checkIndexes: bucket %s is missing", name)
			continue
		}
		got := map[string]string{}
		_ = b.ForEach(func(k, v []byte) error {
			got[string(k)] = string(v)
			return nil
		})
		if !maps.Equal(got, want[string(name)]) {
			extra, missing := diffKeys(got, want[string(name)]), diffKeys(want[string(name)], got)
			t.Errorf("checkIndexes: %s disagrees with the nodes: %d entries not implied by any node (%q), %d missing (%q)",
				name, len(extra), extra, len(missing), missing)
		}
	}
}

func diffKeys(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

func TestQuorumNodes_ServersInFullOthersByNameRoleAndState(t *testing.T) {
	ctx := t.Context()
	s := openTestStore(t, tempStorePath(t))
	fillInventory(t, s, 120)
	if err := s.RecordBoot(ctx, coreMAC(0xffff), node.BootInfo{Firmware: "bios"}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.QuorumNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]node.Node{}
	for _, n := range got {
		byName[n.Name] = n
	}
	if len(byName) != len(all) {
		t.Fatalf("QuorumNodes has %d nodes, the store %d", len(byName), len(all))
	}
	for _, n := range all {
		q := byName[n.Name]
		if q.Role != n.Role || q.State != n.State {
			t.Errorf("%s: role/state %s/%s, want %s/%s", n.Name, q.Role, q.State, n.Role, n.State)
		}
		if n.Role == node.RoleServer && (q.ClusterInit != n.ClusterInit || !slices.Equal(q.MACs, n.MACs)) {
			t.Errorf("server %s not given in full: %+v", n.Name, q)
		}
	}
	if servers, want := node.ServerCount(got), node.ServerCount(all); servers != want {
		t.Fatalf("ServerCount %d over QuorumNodes, %d over every node", servers, want)
	}
}

// TestOpen_MigrationIndexesAVersion1File: a file written before the indexes existed (no
// index buckets, schema version 1) gets every index and count built when it is opened.
// downgradeFile makes the closed store file at path look as an older version wrote it:
// without buckets that version did not have, and with its schema number.
func downgradeFile(t *testing.T, path string, version uint64, buckets ...[]byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, encodeUint(version))
	}); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_MigrationIndexesAVersion1File(t *testing.T) {
	path := tempStorePath(t)
	s := openTestStore(t, path)
	fillInventory(t, s, 60)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	downgradeFile(t, path, 1, indexBuckets...)
	s = openTestStore(t, path)
	page, err := s.QueryNodes(t.Context(), NodeQuery{State: node.StateProvisioning})
	if err != nil || page.Total != 10 {
		t.Fatalf("provisioning nodes after the migration: %v, total %d", err, page.Total)
	}
	closeAndCheck(t, s)
}

// TestRemoveImage_ReadsTheImageIndexWhichFollowsChangesAndIsBuiltForAVersion3File: a file
// written before the image index gets it at open (migration 3 → 4), and the index moves
// with a node's image and state, so RemoveImage refuses exactly while a live node uses
// the image.
func TestRemoveImage_ReadsTheImageIndexWhichFollowsChangesAndIsBuiltForAVersion3File(t *testing.T) {
	ctx := context.Background()
	path := tempStorePath(t)
	s := openTestStore(t, path)
	for _, name := range []string{"debian", "ubuntu"} {
		if _, err := s.AddImage(ctx, diskImage(name), false); err != nil { // debian is the default
			t.Fatal(err)
		}
	}
	for i, image := range []string{"ubuntu", "", "ubuntu"} {
		spec := workerSpec(fmt.Sprintf("w%d", i), coreMAC(i+1))
		spec.Image = image
		if _, err := s.ImportNode(ctx, spec, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	downgradeFile(t, path, 3, bucketImageIndex)
	s = openTestStore(t, path)
	users := func(image string) []string {
		t.Helper()
		err := s.RemoveImage(ctx, image)
		var inUse *ImageInUseError
		if err == nil {
			return nil
		}
		if !errors.As(err, &inUse) {
			t.Fatalf("RemoveImage(%s): %v", image, err)
		}
		return inUse.Nodes
	}
	if got := users("ubuntu"); !slices.Equal(got, []string{"w0", "w2"}) {
		t.Fatalf("ubuntu's users after the migration: %v", got)
	}
	if got := users("debian"); !slices.Equal(got, []string{"w1"}) {
		t.Fatalf("debian's users (the default): %v", got)
	}
	if _, err := s.UpdateNode(ctx, "w0", func(n *node.Node) ([]node.Event, error) { n.Image = "debian"; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	moveTo(t, s, "w2", node.StateDeleting, node.StateDeleted)
	if got := users("ubuntu"); got != nil {
		t.Fatalf("ubuntu still in use by %v after w0 moved to debian and w2 was deleted", got)
	}
	if got := users("debian"); !slices.Equal(got, []string{"w0", "w1"}) {
		t.Fatalf("debian's users: %v", got)
	}
	closeAndCheck(t, s)
}
