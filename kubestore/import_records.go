package kubestore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// importIndex is what an import compares node records with besides the node cache: every
// node's history and Secret, listed once at the first node record and kept current by
// the import's own writes. One list of each instead of one per node is what makes a
// 10,000-node pivot minutes shorter; the price is that events another replica appends
// during the import are not seen by it (the pivot's target takes no machine traffic yet).
type importIndex struct {
	mu      sync.Mutex
	events  map[string]map[string]*v1alpha1.BootyardEvent // node → object name → event
	secrets map[string]*corev1.Secret                     // node → its Secret
}

// importState loads the index once per Store.
type importState struct {
	mu  sync.Mutex
	idx *importIndex
}

func (s *Store) importIndex(ctx context.Context) (*importIndex, error) {
	s.imports.mu.Lock()
	defer s.imports.mu.Unlock()
	if s.imports.idx != nil {
		return s.imports.idx, nil
	}
	idx := &importIndex{events: map[string]map[string]*v1alpha1.BootyardEvent{}}
	if err := listAll(ctx, s, resEvents, "", func(l *v1alpha1.BootyardEventList) error {
		for i := range l.Items {
			e := &l.Items[i]
			if idx.events[e.Spec.Node] == nil {
				idx.events[e.Spec.Node] = map[string]*v1alpha1.BootyardEvent{}
			}
			idx.events[e.Spec.Node][e.Name] = e
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var err error
	if idx.secrets, err = s.nodeSecrets(ctx); err != nil {
		return nil, err
	}
	s.imports.idx = idx
	return idx, nil
}

// ImportRecord writes one exported record (pivot.Importer), as the bbolt store does: a
// record replaces what it names (the node of that name with its whole history and
// secrets, the image of that name, the lease on that address, the settings), a record
// already stored exactly so is ImportUnchanged and writes nothing, and with dryRun it
// only reads. A node whose MAC another node owns is ErrConflict and nothing of it is
// written. A record is several requests here, not one transaction: one that fails
// half-way is finished by importing the file again. History keeps the exported sequence
// numbers; events appended later are numbered after them (by the clock).
func (s *Store) ImportRecord(ctx context.Context, rec store.Record, dryRun bool) (store.ImportOutcome, error) {
	if err := ctxErr(ctx); err != nil {
		return store.ImportFailed, err
	}
	if err := rec.Validate(); err != nil {
		return store.ImportFailed, err
	}
	var out store.ImportOutcome
	var err error
	switch rec.Kind {
	case store.RecordHeader:
		return store.ImportUnchanged, nil
	case store.RecordSettings:
		out, err = s.importSettings(ctx, rec.Settings, dryRun)
	case store.RecordImage:
		out, err = s.importImage(ctx, *rec.Image, dryRun)
	case store.RecordNode:
		out, err = s.importNodeRecord(ctx, rec, dryRun)
	case store.RecordLease:
		out, err = s.importLease(ctx, rec.Lease.Lease(), dryRun)
	}
	if err != nil {
		return store.ImportFailed, fmt.Errorf("import %s %s: %w", rec.Kind, rec.Name(), err)
	}
	return out, nil
}

func outcomeOf(existed, same bool) store.ImportOutcome {
	switch {
	case !existed:
		return store.ImportCreated
	case same:
		return store.ImportUnchanged
	}
	return store.ImportUpdated
}

func (s *Store) importSettings(ctx context.Context, rec *store.SettingsRecord, dryRun bool) (store.ImportOutcome, error) {
	want, err := rec.ClusterSettings()
	if err != nil {
		return store.ImportFailed, err
	}
	have, existed, err := s.storedSettings(ctx)
	if err != nil {
		return store.ImportFailed, err
	}
	hash, err := s.AdminPasswordHash(ctx)
	if err != nil {
		return store.ImportFailed, err
	}
	// Compare in the export's form, as the bbolt store does.
	wantRec, err := store.NewSettingsRecord(want, []byte(rec.AdminPasswordHash))
	if err != nil {
		return store.ImportFailed, err
	}
	haveRec, err := store.NewSettingsRecord(have, hash)
	if err != nil {
		return store.ImportFailed, err
	}
	sameCluster := bytes.Equal(wantRec.Cluster, haveRec.Cluster)
	out := outcomeOf(existed, sameCluster && wantRec.AdminPasswordHash == haveRec.AdminPasswordHash)
	if dryRun || out == store.ImportUnchanged {
		return out, nil
	}
	if !sameCluster || !existed {
		if _, err := s.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error { *c = want; return nil }); err != nil {
			return store.ImportFailed, err
		}
	}
	if rec.AdminPasswordHash != "" && rec.AdminPasswordHash != string(hash) {
		if err := s.SetAdminPasswordHash(ctx, []byte(rec.AdminPasswordHash)); err != nil {
			return store.ImportFailed, err
		}
	}
	return out, nil
}

func (s *Store) importImage(ctx context.Context, img store.Image, dryRun bool) (store.ImportOutcome, error) {
	img.Default = false // the settings say which is the default
	want := s.fromImage(img)
	have := &v1alpha1.BootyardImage{}
	err := s.rc.Get().Namespace(s.ns).Resource(resImages).Name(img.Name).Do(ctx).Into(have)
	existed := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return store.ImportFailed, kindErr(err)
	}
	out := outcomeOf(existed, existed && reflect.DeepEqual(have.Spec, want.Spec) && have.Annotations[annotationExtra] == want.Annotations[annotationExtra])
	if dryRun || out == store.ImportUnchanged {
		return out, nil
	}
	if existed {
		want.ResourceVersion = have.ResourceVersion // conditional on the version compared with
		err = s.rc.Put().Namespace(s.ns).Resource(resImages).Name(img.Name).Body(want).Do(ctx).Error()
	} else {
		err = s.rc.Post().Namespace(s.ns).Resource(resImages).Body(want).Do(ctx).Error()
	}
	if err != nil {
		return store.ImportFailed, kindErr(err)
	}
	return out, nil
}

func (s *Store) importLease(ctx context.Context, l store.Lease, dryRun bool) (store.ImportOutcome, error) {
	l.IP = l.IP.Unmap()
	have, err := s.getBlock(ctx, blockName(blockOf(l.IP)))
	if err != nil {
		return store.ImportFailed, err
	}
	var held store.Lease
	existed := false
	if have != nil {
		held, existed = have.leases[l.IP]
	}
	out := outcomeOf(existed, existed && toRecord(held) == toRecord(l))
	if dryRun || out == store.ImportUnchanged {
		return out, nil
	}
	// An import restores the record as exported, whatever the address holds now.
	if err := s.writeLeases(ctx, []store.Lease{l}, true)[l.IP]; err != nil {
		return store.ImportFailed, err
	}
	return out, nil
}

// sameNodeObj reports whether the object want (built on have) stores what have does. The
// encoded forms are compared: a nil and an empty list are the same stored object.
func sameNodeObj(want, have *v1alpha1.BootyardNode) bool {
	if !maps.Equal(want.Labels, have.Labels) || !maps.Equal(want.Annotations, have.Annotations) {
		return false
	}
	wantStatus, haveStatus := want.Status, have.Status
	wantStatus.Hardware, haveStatus.Hardware = canonicalHardware(want.Status.Hardware), canonicalHardware(have.Status.Hardware)
	for _, p := range [][2]any{{want.Spec, have.Spec}, {wantStatus, haveStatus}} {
		a, errA := json.Marshal(p[0])
		b, errB := json.Marshal(p[1])
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			return false
		}
	}
	return true
}

// canonicalHardware re-encodes an inspection as node.Hardware encodes it: the API server
// hands back an open-schema field with its keys in its own order, so the bytes of an
// unchanged inspection differ from what the store wrote.
func canonicalHardware(raw *runtime.RawExtension) *runtime.RawExtension {
	if raw == nil || len(raw.Raw) == 0 {
		return raw
	}
	var hw node.Hardware
	if err := json.Unmarshal(raw.Raw, &hw); err != nil {
		return raw // compared as it is: a difference, and the import rewrites it
	}
	b, err := json.Marshal(&hw)
	if err != nil {
		return raw
	}
	return &runtime.RawExtension{Raw: b}
}

func (s *Store) importNodeRecord(ctx context.Context, rec store.Record, dryRun bool) (store.ImportOutcome, error) {
	n := *rec.Node
	if err := checkSeqs(rec.Events); err != nil {
		return store.ImportFailed, err
	}
	if err := s.checkMACs(&n, n.Name); err != nil {
		return store.ImportFailed, err
	}
	idx, err := s.importIndex(ctx)
	if err != nil {
		return store.ImportFailed, err
	}
	cur, existed := s.nodes.get(n.Name)
	var base *v1alpha1.BootyardNode
	if existed {
		base = cur.obj
	}
	want := s.fromNode(&n, base)
	sameNode := existed && sameNodeObj(want, base)

	wantEvents := make(map[string]v1alpha1.BootyardEventSpec, len(rec.Events))
	for _, e := range rec.Events {
		wantEvents[eventName(n.Name, int64(e.Seq))] = eventSpec(e)
	}
	idx.mu.Lock()
	haveEvents := maps.Clone(idx.events[n.Name])
	haveSecret := idx.secrets[n.Name]
	idx.mu.Unlock()
	sameHistory := len(haveEvents) == len(wantEvents)
	for name, sp := range wantEvents {
		if e, ok := haveEvents[name]; !ok || e.Spec != sp {
			sameHistory = false
		}
	}
	sameSecrets := maps.EqualFunc(secretData(haveSecret), rec.Secrets, bytes.Equal)
	out := outcomeOf(existed, sameNode && sameHistory && sameSecrets)
	if dryRun || out == store.ImportUnchanged {
		return out, nil
	}

	var before node.Node
	if existed {
		before = cloneNode(cur.n)
	}
	switch {
	case !existed:
		// No MAC claim (createNode's list per MAC): that list scans every node, and a
		// 10,000-node pivot would spend minutes on it. The MACs were checked against the
		// cache above; the pivot's target takes no machine traffic that could discover
		// one of them meanwhile.
		created, err := s.createNodeObj(ctx, s.fromNode(&n, nil))
		if apierrors.IsAlreadyExists(err) {
			return store.ImportFailed, fmt.Errorf("name %s: %w", n.Name, node.ErrConflict)
		}
		if err != nil {
			return store.ImportFailed, fmt.Errorf("create node: %w", kindErr(err))
		}
		if _, err := s.writeNodeObj(ctx, s.fromNode(&n, created), created); err != nil {
			return store.ImportFailed, fmt.Errorf("create node %s: status: %w", n.Name, kindErr(err))
		}
	case !sameNode:
		if _, err := s.writeNodeObj(ctx, want, base); err != nil {
			return store.ImportFailed, fmt.Errorf("write node: %w", kindErr(err))
		}
	}
	if !sameHistory {
		if err := s.replaceHistory(ctx, idx, n.Name, haveEvents, wantEvents); err != nil {
			return store.ImportFailed, err
		}
	}
	if !sameSecrets {
		if err := s.replaceNodeSecret(ctx, idx, n.Name, haveSecret, rec.Secrets); err != nil {
			return store.ImportFailed, err
		}
	}
	s.updated(before, n)
	return out, nil
}

// replaceHistory makes the node's history exactly want: the history is replaced, not
// merged, as in the bbolt store (two histories of one node would interleave numbers
// that mean different events).
func (s *Store) replaceHistory(ctx context.Context, idx *importIndex, nodeName string, have map[string]*v1alpha1.BootyardEvent, want map[string]v1alpha1.BootyardEventSpec) error {
	kept := map[string]*v1alpha1.BootyardEvent{}
	for name := range have {
		if _, ok := want[name]; ok {
			continue
		}
		err := s.rc.Delete().Namespace(s.ns).Resource(resEvents).Name(name).Do(ctx).Error()
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("drop event %s: %w", name, kindErr(err))
		}
	}
	for name, sp := range want {
		o := &v1alpha1.BootyardEvent{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name, Labels: map[string]string{labelNode: nodeName}}, Spec: sp}
		written := &v1alpha1.BootyardEvent{}
		var err error
		if e, ok := have[name]; ok {
			if e.Spec == sp {
				kept[name] = e
				continue
			}
			o.ResourceVersion = e.ResourceVersion
			err = s.rc.Put().Namespace(s.ns).Resource(resEvents).Name(name).Body(o).Do(ctx).Into(written)
		} else {
			err = s.rc.Post().Namespace(s.ns).Resource(resEvents).Body(o).Do(ctx).Into(written)
		}
		if err != nil {
			return fmt.Errorf("write event %s: %w", name, kindErr(err))
		}
		kept[name] = written
	}
	idx.mu.Lock()
	idx.events[nodeName] = kept
	idx.mu.Unlock()
	s.events.mu.Lock()
	delete(s.events.counts, nodeName) // recounted at the next append
	s.events.mu.Unlock()
	return nil
}

// replaceNodeSecret makes want the node's whole set of secrets.
func (s *Store) replaceNodeSecret(ctx context.Context, idx *importIndex, nodeName string, have *corev1.Secret, want map[string][]byte) error {
	secrets := s.core.CoreV1().Secrets(s.ns)
	var written *corev1.Secret
	var err error
	switch {
	case len(want) == 0:
		err = secrets.Delete(ctx, nodeSecretName(nodeName), metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			err = nil
		}
	case have == nil:
		written, err = secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: nodeSecretName(nodeName),
			Labels: map[string]string{labelNode: nodeName}}, Type: corev1.SecretTypeOpaque, Data: want}, metav1.CreateOptions{})
	default:
		sec := have.DeepCopy()
		sec.Data = maps.Clone(want)
		written, err = secrets.Update(ctx, sec, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("secret of %s: %w", nodeName, kindErr(err))
	}
	idx.mu.Lock()
	if written == nil {
		delete(idx.secrets, nodeName)
	} else {
		idx.secrets[nodeName] = written
	}
	idx.mu.Unlock()
	return nil
}
