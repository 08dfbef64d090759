package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/bootyard/bootyard/cluster"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/web"
)

// clusterOptions connect Bootyard to the Kubernetes cluster it provisions.
type clusterOptions struct {
	leader          leaderOptions
	kubeconfig      string
	drainTimeout    time.Duration
	rebootTimeout   time.Duration
	helperNamespace string
	helperImage     string
	// outOfBand is the BMC power deletions and the fence fall back on (set by serve).
	outOfBand cluster.OutOfBand
	// leaderWork is other work that must happen once (the BMC poller, with
	// --leader-elect): it follows the controller's Lease, on one election.
	leaderWork []func(ctx context.Context)
}

// kubeconfigOff turns the integration off even when Bootyard runs in a pod.
const kubeconfigOff = "none"

func (c *clusterOptions) register(f *pflag.FlagSet) {
	f.StringVar(&c.kubeconfig, "kubeconfig", "", `kubeconfig of the cluster (default: the in-cluster config when running as a pod; "none": no cluster integration)`)
	f.DurationVar(&c.drainTimeout, "drain-timeout", cluster.DefaultDrainTimeout, "how long a deletion waits for evictions PodDisruptionBudgets hold back (then it stops, or with --force deletes the pods)")
	f.DurationVar(&c.rebootTimeout, "reboot-timeout", cluster.DefaultRebootTimeout, "how long a deletion waits for the network-boot (or uninstall) pod to run on the node")
	f.StringVar(&c.helperNamespace, "helper-namespace", cluster.DefaultHelperNamespace, "namespace of the privileged network-boot and uninstall pods (deploy/rbac.yaml creates it)")
	f.StringVar(&c.helperImage, "helper-image", cluster.DefaultHelperImage, "image of the helper pods; it needs only nsenter, the rest runs from the host")
	c.leader.register(f)
}

// start runs the cluster controller in g when a kubeconfig is given or Bootyard runs in a
// pod, and sets deps.Cluster. It returns web.Config's ClusterConnected (nil: not connected).
func (c *clusterOptions) start(ctx context.Context, g *errgroup.Group, st store.Backend, deps *web.Deps, log *slog.Logger) (func() bool, error) {
	if c.kubeconfig == kubeconfigOff {
		if c.leader.enabled {
			return nil, errors.New("--leader-elect needs the cluster integration (--kubeconfig, or running in a pod)")
		}
		log.Info("cluster integration off (--kubeconfig none)")
		return nil, nil
	}
	restCfg, err := cluster.RESTConfig(c.kubeconfig)
	if errors.Is(err, cluster.ErrNotConfigured) && c.leader.enabled {
		return nil, errors.New("--leader-elect needs the cluster integration (--kubeconfig, or running in a pod)")
	}
	if errors.Is(err, cluster.ErrNotConfigured) {
		log.Info("cluster integration off (no --kubeconfig, not running in a pod): deletions go straight to the wipe")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	client, err := cluster.NewClient(restCfg)
	if err != nil {
		return nil, err
	}
	if c.drainTimeout <= 0 || c.rebootTimeout <= 0 {
		return nil, fmt.Errorf("--drain-timeout and --reboot-timeout must be positive")
	}
	elect, err := c.leader.elect(client, log)
	if err != nil {
		return nil, err
	}
	if elect != nil && len(c.leaderWork) > 0 {
		shared := cluster.ShareElection(elect, 1+len(c.leaderWork))
		for _, work := range c.leaderWork {
			g.Go(func() error { return shared.Elect(ctx, work) })
		}
		elect = shared.Elect
	}
	ctrl := cluster.New(cluster.Config{
		Elect:           elect,
		HelperNamespace: c.helperNamespace,
		HelperImage:     c.helperImage,
		DrainTimeout:    c.drainTimeout,
		RebootTimeout:   c.rebootTimeout,
		Logger:          log,
		OutOfBand:       c.outOfBand,
	}, client, st)
	log.Info("cluster integration on", slog.String("server", restCfg.Host))
	g.Go(func() error { return ctrl.Run(ctx) })
	deps.Cluster = ctrl
	return ctrl.Connected, nil
}
