package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"

	"github.com/bootyard/bootyard/cluster"
)

// leaderOptions choose leader election among replicas (--leader-elect): the cluster
// controller's passes run on the replica holding the Lease; every replica serves.
type leaderOptions struct {
	enabled                                   bool
	namespace, name, identity                 string
	leaseDuration, renewDeadline, retryPeriod time.Duration
}

func (l *leaderOptions) register(f *pflag.FlagSet) {
	f.BoolVar(&l.enabled, "leader-elect", false, "run the work that must happen once (reconcile with the cluster, deletions, the join token, the BMC poller) only on the replica holding a Lease; needs the cluster integration. Every replica serves the API, pages and machines")
	f.StringVar(&l.namespace, "leader-elect-namespace", "", "namespace of the leader Lease (default: the pod's own, else bootyard-system)")
	f.StringVar(&l.name, "leader-elect-lease-name", cluster.DefaultLeaseName, "name of the leader Lease")
	f.StringVar(&l.identity, "leader-elect-identity", "", "this replica's name in the Lease (default: $POD_NAME, else the host name)")
	f.DurationVar(&l.leaseDuration, "leader-elect-lease-duration", cluster.DefaultLeaseDuration, "how long the others wait after a leader dies without releasing the Lease")
	f.DurationVar(&l.renewDeadline, "leader-elect-renew-deadline", cluster.DefaultRenewDeadline, "how long a leader that cannot renew goes on before it stops its work (less than the lease duration)")
	f.DurationVar(&l.retryPeriod, "leader-elect-retry-period", cluster.DefaultRetryPeriod, "how often replicas try to acquire or renew the Lease")
}

// elect is cluster.Config's Elect: nil without --leader-elect (the controller's passes run
// here, unconditionally), else a Lease election through client.
func (l *leaderOptions) elect(client kubernetes.Interface, log *slog.Logger) (func(ctx context.Context, lead func(ctx context.Context)) error, error) {
	if !l.enabled {
		return nil, nil
	}
	elector, err := cluster.NewElector(cluster.LeaderConfig{Namespace: l.namespace, Name: l.name, Identity: l.identity,
		LeaseDuration: l.leaseDuration, RenewDeadline: l.renewDeadline, RetryPeriod: l.retryPeriod, Logger: log}, client)
	if err != nil {
		return nil, err
	}
	return elector.Run, nil
}
