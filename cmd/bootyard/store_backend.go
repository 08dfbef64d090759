package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/cluster"
	"github.com/bootyard/bootyard/kubestore"
	"github.com/bootyard/bootyard/machine"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/web"
)

// storeOptions choose where the inventory lives.
type storeOptions struct {
	backend   string
	namespace string
}

const (
	storeBbolt      = "bbolt"
	storeKubernetes = "kubernetes"
)

func (s *storeOptions) register(f *pflag.FlagSet) {
	f.StringVar(&s.backend, "store", storeBbolt, `where the inventory lives: bbolt (one file in the data directory) or kubernetes (bootyard.io custom resources and Secrets on the cluster's API, from --kubeconfig or in-cluster; install deploy/crds first)`)
	f.StringVar(&s.namespace, "store-namespace", kubestore.DefaultNamespace, "namespace of the inventory's objects with --store kubernetes")
}

// joinTurns is the server join queue: the machines take and release turns, the
// operator's cluster view shows the holder.
type joinTurns interface {
	machine.JoinTurns
	web.JoinTurnHolder
}

// openStore opens the chosen backend, with the join queue that goes with it: in memory
// beside bbolt (one appliance), on the API server beside the Kubernetes store, so that
// replicas hand out one turn between them. onUpdate observes every committed node change.
func (o *serveOptions) openStore(ctx context.Context, log *slog.Logger, onUpdate func(before, after node.Node)) (store.Backend, joinTurns, error) {
	switch o.store.backend {
	case storeBbolt:
		st, err := store.Open(filepath.Join(o.dataDir, "bootyard.db"), store.Options{Logger: log, OnUpdate: onUpdate, Limits: o.limits})
		if err != nil {
			return nil, nil, err
		}
		return st, cloudinit.NewJoinTurns(0, nil), nil
	case storeKubernetes:
		st, host, err := openKubeStore(ctx, "--store kubernetes", o.cluster.kubeconfig,
			kubestore.Options{Namespace: o.store.namespace, Logger: log, OnUpdate: onUpdate, Limits: o.limits})
		if err != nil {
			return nil, nil, err
		}
		log.Info("inventory on the Kubernetes API", slog.String("server", host), slog.String("namespace", o.store.namespace))
		return st, st.JoinTurns(0, nil), nil
	}
	return nil, nil, fmt.Errorf("--store %q: want %s or %s", o.store.backend, storeBbolt, storeKubernetes)
}

// openKubeStore connects the Kubernetes store through kubeconfig ("" for the in-cluster
// config) and returns it with the API server's address; what names the flag that chose
// it, for the errors.
func openKubeStore(ctx context.Context, what, kubeconfig string, opts kubestore.Options) (*kubestore.Store, string, error) {
	if kubeconfig == kubeconfigOff {
		return nil, "", fmt.Errorf("%s needs the cluster's API: --kubeconfig none turns it off", what)
	}
	cfg, err := cluster.RESTConfig(kubeconfig)
	if errors.Is(err, cluster.ErrNotConfigured) {
		return nil, "", fmt.Errorf("%s needs --kubeconfig, or Bootyard running in a pod", what)
	}
	if err != nil {
		return nil, "", err
	}
	st, err := kubestore.New(ctx, cfg, opts)
	if err != nil {
		return nil, "", err
	}
	return st, cfg.Host, nil
}
