package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Leader election defaults: client-go's usual 15 s / 10 s / 2 s. The lease duration is
// how long a replica that died without releasing (SIGKILL, power loss, a partition)
// keeps the work stopped; the renew deadline is how long a leader that cannot reach the
// API server goes on before it stops its work, and it must be shorter than the lease so
// that it has stopped before anyone else may start.
const (
	DefaultLeaseName     = "bootyard-leader"
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
	// defaultLeaseNamespace is deploy/rbac.yaml's namespace, where the Lease Role is.
	defaultLeaseNamespace = "bootyard-system"
	// serviceAccountNamespace is where Kubernetes tells a pod its own namespace.
	serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)

// LeaderConfig says which Lease the replicas compete for and how.
type LeaderConfig struct {
	// Namespace and Name of the Lease; an empty Namespace is the pod's own (from
	// POD_NAMESPACE or the service account mount), else bootyard-system.
	Namespace, Name string
	// Identity names this replica in the Lease: the pod name (POD_NAME) or host name when empty.
	Identity                                  string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Logger                                    *slog.Logger
}

func (c LeaderConfig) withDefaults() (LeaderConfig, error) {
	if c.Name == "" {
		c.Name = DefaultLeaseName
	}
	if c.Namespace == "" {
		c.Namespace = podNamespace()
	}
	if c.Identity == "" {
		c.Identity = os.Getenv("POD_NAME")
	}
	if c.Identity == "" {
		host, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("leader election identity: %w", err)
		}
		c.Identity = host
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = DefaultRenewDeadline
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = DefaultRetryPeriod
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if !(c.RetryPeriod > 0 && c.RetryPeriod < c.RenewDeadline && c.RenewDeadline < c.LeaseDuration) {
		return c, fmt.Errorf("leader election: want 0 < retry period (%s) < renew deadline (%s) < lease duration (%s)",
			c.RetryPeriod, c.RenewDeadline, c.LeaseDuration)
	}
	return c, nil
}

func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile(serviceAccountNamespace); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	return defaultLeaseNamespace
}

// Elector runs the work that must happen once among replicas (the controller's passes:
// reconcile, deletions, the join token) on whichever replica holds the Lease.
type Elector struct {
	cfg  LeaderConfig
	lock resourcelock.Interface
	// termMu is held while a term's work runs: a replica that lost the Lease and
	// wins it back never runs the work twice at once, and shutdown releases the
	// Lease only once the work has stopped.
	termMu sync.Mutex
}

// NewElector builds an elector on a Lease lock through client.
func NewElector(cfg LeaderConfig, client kubernetes.Interface) (*Elector, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.Logger = cfg.Logger.With(slog.String("component", "leader-election"), slog.String("identity", cfg.Identity))
	return &Elector{cfg: cfg, lock: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}}, nil
}

// Run campaigns for the Lease until ctx ends. Each time this replica wins it, lead runs
// with a context that ends when the Lease is lost (the renew deadline passed without
// reaching the API server) or ctx ends. On ctx's end the Lease is released once lead
// has returned, so the next replica starts at once instead of after the lease duration;
// a replica killed outright releases nothing and the others wait out the lease.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	log := e.cfg.Logger
	log.Info("campaigning for the leader Lease", slog.String("lease", e.cfg.Namespace+"/"+e.cfg.Name))
	for {
		// The election's own context outlives ctx until the work has stopped: releasing
		// the Lease while the work still runs would let two replicas run it.
		electCtx, stopElection := context.WithCancel(context.WithoutCancel(ctx))
		unregister := context.AfterFunc(ctx, func() {
			e.termMu.Lock()
			defer e.termMu.Unlock()
			stopElection()
		})
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            e.lock,
			LeaseDuration:   e.cfg.LeaseDuration,
			RenewDeadline:   e.cfg.RenewDeadline,
			RetryPeriod:     e.cfg.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            e.cfg.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(termCtx context.Context) { e.term(ctx, termCtx, lead) },
				// client-go requires it; the term's context already tells the work, and
				// the loop below logs the loss.
				OnStoppedLeading: func() {},
				OnNewLeader: func(identity string) {
					log.Info("leader", slog.String("leader", identity), slog.Bool("self", identity == e.cfg.Identity))
				},
			},
		})
		if err != nil {
			unregister()
			stopElection()
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(electCtx)
		unregister()
		stopElection()
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("lost the leader Lease: leader-only work stopped; campaigning again")
		// Wait for the lost term's work to return before campaigning again.
		e.termMu.Lock()
		e.termMu.Unlock() //nolint:staticcheck // an empty critical section is the wait
	}
}

// term runs lead for one term: until the Lease is lost (termCtx) or the replica stops (ctx).
func (e *Elector) term(ctx, termCtx context.Context, lead func(ctx context.Context)) {
	e.termMu.Lock()
	defer e.termMu.Unlock()
	// client-go starts this in a goroutine and does not wait for it: a term that ended
	// before the goroutine ran must not start its work late.
	if termCtx.Err() != nil || ctx.Err() != nil {
		return
	}
	work, cancel := context.WithCancel(termCtx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	e.cfg.Logger.Info("acquired the leader Lease: starting leader-only work")
	lead(work)
	e.cfg.Logger.Info("leader-only work stopped")
}
