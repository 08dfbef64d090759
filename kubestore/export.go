package kubestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// listPage is how many objects one list request returns: a 10,000-node inventory in
// pages keeps each response (and the API server's memory for it) small.
const listPage = 500

// listAll lists every object of resource in the namespace, page by page, matching
// selector ("" for all), and calls each with every page's items.
func listAll[L any, PL interface {
	*L
	runtime.Object
	GetContinue() string
}](ctx context.Context, s *Store, resource, selector string, each func(PL) error) error {
	cont := ""
	for {
		list := PL(new(L))
		req := s.rc.Get().Namespace(s.ns).Resource(resource).Param("limit", fmt.Sprint(listPage))
		if selector != "" {
			req = req.Param("labelSelector", selector)
		}
		if cont != "" {
			req = req.Param("continue", cont)
		}
		if err := req.Do(ctx).Into(list); err != nil {
			return fmt.Errorf("list %s: %w", resource, kindErr(err))
		}
		if err := each(list); err != nil {
			return err
		}
		if cont = list.GetContinue(); cont == "" {
			return nil
		}
	}
}

// nodeSecrets lists every node's Secret (labelled with its node), by node name.
func (s *Store) nodeSecrets(ctx context.Context) (map[string]*corev1.Secret, error) {
	out := map[string]*corev1.Secret{}
	opts := metav1.ListOptions{LabelSelector: labelNode, Limit: listPage}
	for {
		list, err := s.core.CoreV1().Secrets(s.ns).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list node secrets: %w", kindErr(err))
		}
		for i := range list.Items {
			sec := &list.Items[i]
			if name := sec.Labels[labelNode]; name != "" && sec.Name == nodeSecretName(name) {
				out[name] = sec
			}
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			return out, nil
		}
	}
}

// NodeSecrets returns every secret of the node by key (empty when it has none), from its
// Secret.
func (s *Store) NodeSecrets(ctx context.Context, nodeName string) (map[string][]byte, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	sec, err := s.secret(ctx, nodeSecretName(nodeName))
	if err != nil || sec == nil {
		return nil, err
	}
	return secretData(sec), nil
}

// secretData is sec's values, nil when it has none (an export omits an empty set).
func secretData(sec *corev1.Secret) map[string][]byte {
	if sec == nil || len(sec.Data) == 0 {
		return nil
	}
	return sec.Data
}

func eventSpec(e node.Event) v1alpha1.BootyardEventSpec {
	return v1alpha1.BootyardEventSpec{Node: e.Node, Seq: int64(e.Seq), Time: formatTime(e.Time), Type: string(e.Type), From: string(e.From),
		To: string(e.To), Reason: e.Reason, Source: e.Source, Percent: e.Percent, Bytes: e.Bytes}
}

func toEvent(sp v1alpha1.BootyardEventSpec) node.Event {
	return node.Event{Seq: uint64(sp.Seq), Time: parseTime(sp.Time), Node: sp.Node, Type: node.EventType(sp.Type),
		From: node.State(sp.From), To: node.State(sp.To), Reason: sp.Reason, Source: sp.Source, Percent: sp.Percent, Bytes: sp.Bytes}
}

// ExportRecords calls fn with every record of the inventory in the order and form the
// bbolt store exports (pivot.Exporter), so a diff of the two exports is the check that a
// pivot lost nothing: the header, the settings with the cluster Secret's token and
// environment and the admin password hash, images by name, nodes by name each with its
// history and its Secret's values, leases by address. Each kind is read with paged
// lists straight from the API server, not from this replica's caches; the API server has
// no snapshot across kinds, so export an inventory no replica is changing (the pivot's
// source is stopped, and a target is exported before its relays point at it).
func (s *Store) ExportRecords(ctx context.Context, fn func(store.Record) error) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if err := fn(store.Record{Kind: store.RecordHeader, Format: store.RecordFormatName, Version: store.RecordFormatVersion}); err != nil {
		return err
	}
	settings, err := s.settingsRecord(ctx)
	if err != nil {
		return err
	}
	if err := fn(store.Record{Kind: store.RecordSettings, Settings: settings}); err != nil {
		return err
	}
	var images []store.Image
	if err := listAll(ctx, s, resImages, "", func(l *v1alpha1.BootyardImageList) error {
		for i := range l.Items {
			img, err := toImage(&l.Items[i], "") // the settings say which is the default
			if err != nil {
				return err
			}
			images = append(images, img)
		}
		return nil
	}); err != nil {
		return err
	}
	slices.SortFunc(images, func(a, b store.Image) int { return strings.Compare(a.Name, b.Name) })
	for i := range images {
		if err := fn(store.Record{Kind: store.RecordImage, Image: &images[i]}); err != nil {
			return err
		}
	}
	var nodes []node.Node
	if err := listAll(ctx, s, resNodes, "", func(l *v1alpha1.BootyardNodeList) error {
		for i := range l.Items {
			n, err := toNode(&l.Items[i])
			if err != nil {
				return err
			}
			nodes = append(nodes, n)
		}
		return nil
	}); err != nil {
		return err
	}
	slices.SortFunc(nodes, func(a, b node.Node) int { return strings.Compare(a.Name, b.Name) })
	events := map[string][]node.Event{}
	if err := listAll(ctx, s, resEvents, "", func(l *v1alpha1.BootyardEventList) error {
		for _, it := range l.Items {
			events[it.Spec.Node] = append(events[it.Spec.Node], toEvent(it.Spec))
		}
		return nil
	}); err != nil {
		return err
	}
	secrets, err := s.nodeSecrets(ctx)
	if err != nil {
		return err
	}
	for i := range nodes {
		n := &nodes[i]
		history := events[n.Name]
		slices.SortFunc(history, func(a, b node.Event) int { return compareSeq(a.Seq, b.Seq) })
		if err := fn(store.Record{Kind: store.RecordNode, Node: n, Events: history, Secrets: secretData(secrets[n.Name])}); err != nil {
			return err
		}
	}
	var leases []store.Lease
	if err := listAll(ctx, s, resLeaseBlocks, "", func(l *v1alpha1.BootyardLeaseBlockList) error {
		for i := range l.Items {
			_, block, err := blockLeases(&l.Items[i])
			if err != nil {
				return err
			}
			for _, lease := range block {
				leases = append(leases, lease)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// The bbolt store keys a lease by its address's bytes: the same order here.
	slices.SortFunc(leases, func(a, b store.Lease) int { return bytes.Compare(a.IP.AsSlice(), b.IP.AsSlice()) })
	for _, l := range leases {
		if err := fn(store.Record{Kind: store.RecordLease, Lease: store.NewLeaseRecord(l)}); err != nil {
			return err
		}
	}
	return nil
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// settingsRecord reads the settings object and its Secrets as an export's record, without
// creating the object when there is none (an export only reads).
func (s *Store) settingsRecord(ctx context.Context) (*store.SettingsRecord, error) {
	c, _, err := s.storedSettings(ctx)
	if err != nil {
		return nil, err
	}
	hash, err := s.AdminPasswordHash(ctx)
	if err != nil {
		return nil, err
	}
	return store.NewSettingsRecord(c, hash)
}

// storedSettings reads the settings from the API server; zero settings and false when
// the object does not exist.
func (s *Store) storedSettings(ctx context.Context) (node.ClusterSettings, bool, error) {
	o := &v1alpha1.BootyardSettings{}
	err := s.rc.Get().Namespace(s.ns).Resource(resSettings).Name(settingsName).Do(ctx).Into(o)
	if apierrors.IsNotFound(err) {
		return node.ClusterSettings{}, false, nil
	}
	if err != nil {
		return node.ClusterSettings{}, false, fmt.Errorf("cluster settings: %w", kindErr(err))
	}
	c, err := s.parseSettings(ctx, o)
	return c, true, err
}

// errSeqRange: the Kubernetes store keeps sequence numbers as int64.
var errSeqRange = errors.New("event sequence number out of range")

func checkSeqs(events []node.Event) error {
	for _, e := range events {
		if e.Seq > math.MaxInt64 {
			return fmt.Errorf("node %s event %d: %w: %w", e.Node, e.Seq, errSeqRange, node.ErrInvalid)
		}
	}
	return nil
}
