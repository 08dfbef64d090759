package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// Inventory is what the cluster integration needs from the store.
type Inventory interface {
	// QueryNodes pages the inventory (reconcile); QueryNodeNames reads the deleting
	// nodes' names from the state index (the deletion sweep).
	QueryNodes(ctx context.Context, q store.NodeQuery) (store.NodePage, error)
	QueryNodeNames(ctx context.Context, q store.NodeQuery) (store.NamePage, error)
	GetNode(ctx context.Context, ref string) (node.Node, error)
	UpdateNode(ctx context.Context, name string, fn store.UpdateFunc) (node.Node, error)
	AppendEvents(ctx context.Context, events ...node.Event) error
	ClusterSettings(ctx context.Context) (node.ClusterSettings, error)
	UpdateClusterSettings(ctx context.Context, fn func(*node.ClusterSettings) error) (node.ClusterSettings, error)
}

// Config tunes the integration. Zero values take the defaults below.
type Config struct {
	// HelperNamespace holds the privileged reboot and uninstall pods; deploy/ creates it
	// with the privileged Pod Security level.
	HelperNamespace string
	// HelperImage runs nsenter; everything else the helper pods run is the host's own.
	HelperImage string
	// DrainTimeout bounds the wait for evictions that PodDisruptionBudgets hold back.
	DrainTimeout time.Duration
	// RebootTimeout bounds the wait for the network-boot pod to run: a dead node never
	// runs it, and its deletion must go on so the next power cycle wipes it.
	RebootTimeout time.Duration
	// UninstallTimeout bounds the wait for the uninstall pod to finish: LLMOS's uninstall
	// stops k3s and removes its data, which takes minutes on a loaded node.
	UninstallTimeout time.Duration
	// EvictionRetry is the pause between eviction rounds while a budget refuses.
	EvictionRetry time.Duration
	// Resync is how often the inventory is compared with the cluster and unfinished
	// deletions are resumed, beyond the informer's own notifications.
	Resync time.Duration
	// Elect, when set, runs lead on one replica at a time (Elector.Run): the passes
	// (reconcile, deletions, the join token) run only there, while every replica keeps
	// the Node cache for the API's live quorum check. Nil runs them here, unconditionally.
	Elect  func(ctx context.Context, lead func(ctx context.Context)) error
	Logger *slog.Logger
	Now    func() time.Time
	// OutOfBand drives machines through their BMCs (package bmc); nil: Bootyard has none,
	// and a machine Kubernetes cannot reboot waits for its next power cycle.
	OutOfBand OutOfBand
}

// OutOfBand is the BMC power the deletion and the fence fall back on. Each call records
// its own event with the outcome.
type OutOfBand interface {
	// Netboot boots the machine once from the network and power-cycles it.
	Netboot(ctx context.Context, name, why string) error
	PowerOff(ctx context.Context, name, why string) error
}

// Defaults.
const (
	DefaultHelperNamespace  = "bootyard-system"
	DefaultHelperImage      = "docker.io/library/busybox:1.37"
	DefaultDrainTimeout     = 5 * time.Minute
	DefaultRebootTimeout    = 60 * time.Second
	DefaultUninstallTimeout = 10 * time.Minute
	defaultEvictionRetry    = 5 * time.Second
	defaultResync           = 10 * time.Second
)

func (c Config) withDefaults() Config {
	if c.HelperNamespace == "" {
		c.HelperNamespace = DefaultHelperNamespace
	}
	if c.HelperImage == "" {
		c.HelperImage = DefaultHelperImage
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.RebootTimeout <= 0 {
		c.RebootTimeout = DefaultRebootTimeout
	}
	if c.UninstallTimeout <= 0 {
		c.UninstallTimeout = DefaultUninstallTimeout
	}
	if c.EvictionRetry <= 0 {
		c.EvictionRetry = defaultEvictionRetry
	}
	if c.Resync <= 0 {
		c.Resync = defaultResync
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = func() time.Time { return time.Now().UTC() }
	}
	return c
}

// ErrNotConfigured means neither a kubeconfig nor an in-cluster config is available:
// Bootyard runs without the integration.
var ErrNotConfigured = errors.New("no kubeconfig given and not running in a pod")

// RESTConfig loads the kubeconfig file at path or, when path is empty and Bootyard runs
// as a pod, the in-cluster service account config.
func RESTConfig(path string) (*rest.Config, error) {
	if path != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
		}
		return cfg, nil
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, ErrNotConfigured
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster config: %w", err)
	}
	return cfg, nil
}

// NewClient builds the clientset for cfg, identifying Bootyard to the API server.
func NewClient(cfg *rest.Config) (kubernetes.Interface, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "bootyard"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return cs, nil
}
