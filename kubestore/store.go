// Package kubestore keeps Bootyard's inventory on the Kubernetes API: nodes, images,
// settings, leases and events as bootyard.io custom resources, secrets in Secrets. It
// implements store.Backend; reads come from informer caches, writes use resourceVersion
// preconditions so two replicas never both win one change.
package kubestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// Resource names of the bootyard.io API.
const (
	resNodes       = "bootyardnodes"
	resImages      = "bootyardimages"
	resSettings    = "bootyardsettings"
	resLeaseBlocks = "bootyardleaseblocks"
	resEvents      = "bootyardevents"

	// settingsName is the one BootyardSettings object; clusterSecret and adminSecret are
	// the Secrets beside it.
	settingsName  = "cluster"
	clusterSecret = "bootyard-cluster"
	adminSecret   = "bootyard-admin"

	labelNode = "bootyard.io/node"
	labelRole = "bootyard.io/role"
	// labelMACPrefix + a MAC's 12 hex digits marks a node holding that MAC.
	labelMACPrefix = "mac.bootyard.io/"
	// annotationQuorumEpoch on the settings object is bumped by every deletion: two
	// deletions that planned against the same servers cannot both bump it.
	annotationQuorumEpoch = "bootyard.io/quorum-epoch"
	// annotationClusterInit on the settings object names the server that starts the
	// cluster, claimed conditional on the object's version (settleClusterInit).
	annotationClusterInit = "bootyard.io/cluster-init"
)

// DefaultNamespace holds Bootyard's objects unless Options says otherwise.
const DefaultNamespace = "bootyard-system"

// renewalFlushInterval is how often renewals accepted while the API server was
// unreachable are retried.
const renewalFlushInterval = 2 * time.Second

// maxConflictRetries bounds the re-read-and-reapply loop of one write. Each conflict
// means another writer won; a few in a row on one object is contention worth an error.
const maxConflictRetries = 16

// Options tune New.
type Options struct {
	Namespace string
	Logger    *slog.Logger
	// OnUpdate is called after each committed import or node update, as store.Options says.
	OnUpdate func(before, after node.Node)
	Limits   store.Limits
	// SyncTimeout bounds the first list of nodes and leases (0: one minute).
	SyncTimeout time.Duration
}

// Store is the Kubernetes-backed inventory. It is safe for concurrent use.
type Store struct {
	rc       rest.Interface
	core     kubernetes.Interface
	reach    *reach // whether the API server answers, for every request of rc and core
	ns       string
	log      *slog.Logger
	now      func() time.Time
	onUpdate func(before, after node.Node)
	limits   store.Limits

	nodes    *nodeCache
	leases   *leaseCache
	settings settingsCache
	events   *eventLog
	bounds   struct{ discoveredEvicted, eventsDropped atomic.Uint64 }

	// pending holds lease renewals accepted from the cache while the API server was
	// unreachable, by address, until flushRenewals writes them.
	pendingMu      sync.Mutex
	pending        map[netip.Addr]store.Lease
	renewedOffline atomic.Uint64

	blockQueues blockQueues // this replica's writes waiting for their lease block

	imports importState // what ImportRecord compares node records with

	synced   []cache.InformerSynced // the informers' first lists, for Ready
	stop     context.CancelFunc
	stopped  sync.WaitGroup
	resvMu   sync.Mutex
	resvGen  uint64
	resvList []store.Reservation
	resvOK   bool
}

var _ store.Backend = (*Store)(nil)

// New connects to the API server, starts the node, lease and settings informers and
// returns once the caches hold a first full list (the CRDs must be installed: deploy/crds).
func New(ctx context.Context, cfg *rest.Config, opts Options) (*Store, error) {
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SyncTimeout <= 0 {
		opts.SyncTimeout = time.Minute
	}
	limits, err := opts.Limits.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("kubernetes store: %w", err)
	}
	rch := &reach{log: opts.Logger, now: time.Now}
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(rch.wrap)
	rc, err := newRESTClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes store: %w", err)
	}
	core, err := kubernetes.NewForConfig(highQPS(cfg))
	if err != nil {
		return nil, fmt.Errorf("kubernetes store: %w", err)
	}
	// The informers retry a missing resource forever: say at once what is wrong instead.
	probe := rc.Get().Namespace(opts.Namespace).Resource(resNodes).Param("limit", "1").Do(ctx).Error()
	switch {
	case apierrors.IsNotFound(probe):
		return nil, fmt.Errorf("kubernetes store: the API server has no bootyard.io resources: install the CRDs (kubectl apply -f deploy/crds/): %w", probe)
	case apierrors.IsForbidden(probe):
		return nil, fmt.Errorf("kubernetes store: this identity may not list bootyardnodes in namespace %s (RBAC): %w", opts.Namespace, probe)
	case probe != nil:
		return nil, fmt.Errorf("kubernetes store: %w", probe)
	}
	s := &Store{rc: rc, core: core, reach: rch, ns: opts.Namespace, log: opts.Logger, onUpdate: opts.OnUpdate, limits: limits,
		now: func() time.Time { return time.Now().UTC() }, nodes: newNodeCache(), leases: newLeaseCache(), pending: make(map[netip.Addr]store.Lease), blockQueues: blockQueues{waiting: map[string][]*blockRequest{}}}
	s.events = &eventLog{s: s, counts: make(map[string]int)}
	runCtx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	nodeInf := s.informer(resNodes, &v1alpha1.BootyardNode{}, func() runtime.Object { return &v1alpha1.BootyardNodeList{} })
	nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.nodes.put(o.(*v1alpha1.BootyardNode)) },
		UpdateFunc: func(_, o any) { s.nodes.put(o.(*v1alpha1.BootyardNode)) },
		DeleteFunc: func(o any) {
			if n, ok := unwrapTombstone(o).(*v1alpha1.BootyardNode); ok {
				s.nodes.remove(n.Name, resourceVersion(n.ResourceVersion))
			}
		},
	})
	leaseInf := s.informer(resLeaseBlocks, &v1alpha1.BootyardLeaseBlock{}, func() runtime.Object { return &v1alpha1.BootyardLeaseBlockList{} })
	leaseInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.leases.put(o.(*v1alpha1.BootyardLeaseBlock)) },
		UpdateFunc: func(_, o any) { s.leases.put(o.(*v1alpha1.BootyardLeaseBlock)) },
		DeleteFunc: func(o any) {
			if l, ok := unwrapTombstone(o).(*v1alpha1.BootyardLeaseBlock); ok {
				s.leases.remove(l.Name, resourceVersion(l.ResourceVersion))
			}
		},
	})
	settingsInf := s.informer(resSettings, &v1alpha1.BootyardSettings{}, func() runtime.Object { return &v1alpha1.BootyardSettingsList{} })
	settingsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.settings.put(o.(*v1alpha1.BootyardSettings)) },
		UpdateFunc: func(_, o any) { s.settings.put(o.(*v1alpha1.BootyardSettings)) },
	})
	for _, inf := range []cache.SharedIndexInformer{nodeInf, leaseInf, settingsInf} {
		s.stopped.Add(1)
		go func() {
			defer s.stopped.Done()
			inf.RunWithContext(runCtx)
		}()
	}
	s.stopped.Add(1)
	go func() {
		defer s.stopped.Done()
		s.flushRenewals(runCtx, renewalFlushInterval)
	}()
	syncCtx, cancelSync := context.WithTimeout(ctx, opts.SyncTimeout)
	defer cancelSync()
	s.synced = []cache.InformerSynced{nodeInf.HasSynced, leaseInf.HasSynced, settingsInf.HasSynced}
	if !cache.WaitForCacheSync(syncCtx.Done(), s.synced...) {
		s.Close()
		return nil, fmt.Errorf("kubernetes store: the node, lease and settings caches did not sync within %s (are the CRDs of deploy/crds installed, and may this identity list them in %s?)", opts.SyncTimeout, s.ns)
	}
	return s, nil
}

// Ready reports whether the node, lease and settings caches hold their first full list:
// a replica answers machines and operators from them, so it is not ready before.
func (s *Store) Ready() bool {
	for _, synced := range s.synced {
		if !synced() {
			return false
		}
	}
	return true
}

// Close stops the informers. The API server keeps everything; there is nothing to flush.
func (s *Store) Close() error {
	s.stop()
	s.stopped.Wait()
	return nil
}

// BoundStats counts what the limits threw away since New.
func (s *Store) BoundStats() store.BoundStats {
	return store.BoundStats{DiscoveredEvicted: s.bounds.discoveredEvicted.Load(), EventsDropped: s.bounds.eventsDropped.Load()}
}

// highQPS lifts client-go's default 5 requests a second: the DHCP path writes a lease per
// acknowledged client, and the API server's own priority and fairness is the limit that
// matters.
func highQPS(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	if c.QPS == 0 {
		c.QPS, c.Burst = 1000, 2000
	}
	return c
}

func newRESTClient(cfg *rest.Config) (rest.Interface, error) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c := highQPS(cfg)
	c.GroupVersion = &v1alpha1.GroupVersion
	c.APIPath = "/apis"
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = "bootyard"
	}
	return rest.RESTClientFor(c)
}

// informer lists and watches one resource of the namespace.
func (s *Store) informer(resource string, obj runtime.Object, newList func() runtime.Object) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list := newList()
			err := s.rc.Get().Namespace(s.ns).Resource(resource).VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(list)
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			return s.rc.Get().Namespace(s.ns).Resource(resource).VersionedParams(&opts, metav1.ParameterCodec).Watch(ctx)
		},
	}
	return cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{})
}

func unwrapTombstone(o any) any {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return o
}

// resourceVersion reads an object's resourceVersion as the number etcd makes it, to keep
// the newer of two copies (the informer's and one this replica just wrote).
func resourceVersion(rv string) uint64 {
	v, _ := strconv.ParseUint(rv, 10, 64)
	return v
}

// kindErr maps API errors to the node package's kinds, which web turns into statuses.
func kindErr(err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: %w", node.ErrNotFound, err)
	case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err):
		return fmt.Errorf("%w: %w", node.ErrConflict, err)
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return fmt.Errorf("%w: %w", node.ErrInvalid, err)
	}
	return err
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kubernetes store: %w", err)
	}
	return nil
}

var errTooManyConflicts = errors.New("too many concurrent writers")
