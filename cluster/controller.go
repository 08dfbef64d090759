package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/bootyard/bootyard/node"
)

// source names the cluster integration in events.
const source = "cluster"

// Controller keeps the inventory in line with the cluster and carries deletions out.
type Controller struct {
	cfg    Config
	client kubernetes.Interface
	inv    Inventory
	log    *slog.Logger

	factory informers.SharedInformerFactory
	nodes   corelisters.NodeLister
	synced  atomic.Bool

	// kick asks the loop for a reconcile and a deletion sweep now; it holds one signal,
	// so a burst of Node updates costs one pass.
	kick chan struct{}

	mu      sync.Mutex
	running map[string]bool // deletions in progress, by Bootyard node name
	force   map[string]bool // --force of the deletion the API started
	fences  map[string]int  // Kubernetes Nodes fenced per Bootyard node (fence.go)
	wg      sync.WaitGroup

	tokenNoted atomic.Bool // the missing-token-Secret log line was written
}

// New builds a controller; Run starts it.
func New(cfg Config, client kubernetes.Interface, inv Inventory) *Controller {
	cfg = cfg.withDefaults()
	// The informer's own resync adds nothing: the loop reconciles on its own clock.
	factory := informers.NewSharedInformerFactory(client, 0)
	c := &Controller{
		cfg: cfg, client: client, inv: inv, log: cfg.Logger.With(slog.String("component", "cluster")),
		factory: factory, nodes: factory.Core().V1().Nodes().Lister(),
		kick: make(chan struct{}, 1), running: map[string]bool{}, force: map[string]bool{},
	}
	nudge := func(any) { c.nudge() }
	if _, err := factory.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: nudge,
		UpdateFunc: func(old, cur any) {
			// Kubelets rewrite their Node for heartbeats; only what Bootyard records or
			// matches on is worth a pass.
			o, ok1 := old.(*corev1.Node)
			n, ok2 := cur.(*corev1.Node)
			if !ok1 || !ok2 || fingerprint(o) != fingerprint(n) {
				c.nudge()
			}
		},
		DeleteFunc: nudge,
	}); err != nil {
		// Only fails once the informer has stopped, which cannot be the case here.
		c.log.Error("node informer handler", slog.Any("err", err))
	}
	return c
}

// Connected reports that deletions go through the cluster: true whenever a controller
// exists, even before its first sync (unfinished deletions wait for it).
func (c *Controller) Connected() bool { return true }

// Synced reports whether the Node cache has been filled once.
func (c *Controller) Synced() bool { return c.synced.Load() }

func (c *Controller) nudge() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run watches Nodes until ctx is cancelled and runs the passes (on the leader only, with
// Config.Elect), then waits for running deletion steps to stop.
func (c *Controller) Run(ctx context.Context) error {
	c.factory.Start(ctx.Done())
	defer c.factory.Shutdown()
	c.log.Info("watching cluster Nodes")
	if !cache.WaitForCacheSync(ctx.Done(), c.factory.Core().V1().Nodes().Informer().HasSynced) {
		c.wg.Wait()
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("cluster: node cache never synced")
	}
	c.synced.Store(true)
	c.log.Info("cluster Nodes synced")
	if c.cfg.Elect != nil {
		return c.cfg.Elect(ctx, c.lead)
	}
	c.lead(ctx)
	return nil
}

// lead runs the passes until ctx ends (shutdown, or the replica lost the leader Lease),
// then waits for the deletion steps it started: they run in ctx and stop with it, and
// their recorded steps let the next leader resume them.
func (c *Controller) lead(ctx context.Context) {
	tick := time.NewTicker(c.cfg.Resync)
	defer tick.Stop()
	c.pass(ctx, true)
	for {
		select {
		case <-ctx.Done():
			c.wg.Wait()
			return
		case <-c.kick:
			c.pass(ctx, false)
		case <-tick.C:
			c.pass(ctx, true)
		}
	}
}

// pass is one round: inventory from the cluster, fencing, unfinished deletions, and on
// the resync clock (not on every Node change) the join token.
func (c *Controller) pass(ctx context.Context, resync bool) {
	if err := c.reconcile(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("reconcile with the cluster", slog.Any("err", err))
	}
	if err := c.sweepDeletions(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("resume deletions", slog.Any("err", err))
	}
	if resync {
		c.syncJoinToken(ctx)
	}
}

// clusterNodes is the informer's view of every Node.
func (c *Controller) clusterNodes() ([]*corev1.Node, error) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list cached nodes: %w", err)
	}
	return nodes, nil
}

// errNoChange aborts an UpdateNode whose fresh read shows nothing to write.
var errNoChange = errors.New("no change")

// update is inv.UpdateNode where errNoChange is success.
func (c *Controller) update(ctx context.Context, name string, fn func(n *node.Node) ([]node.Event, error)) error {
	_, err := c.inv.UpdateNode(ctx, name, fn)
	if errors.Is(err, errNoChange) {
		return nil
	}
	return err
}

func (c *Controller) event(ctx context.Context, name string, t node.EventType, reason string) {
	if err := c.inv.AppendEvents(ctx, node.NewEvent(name, t, reason, source, c.cfg.Now())); err != nil && ctx.Err() == nil {
		c.log.Warn("record event", slog.String("node", name), slog.String("reason", reason), slog.Any("err", err))
	}
}
