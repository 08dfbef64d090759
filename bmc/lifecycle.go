package bmc

import (
	"context"
	"log/slog"
	"sync"

	"github.com/bootyard/bootyard/node"
)

// Lifecycle is where the node lifecycle uses the BMC:
//
//	imported (with a BMC)            → boot once from the network, power on: it installs
//	deleting → wiping without the    → boot once from the network, power cycle: the wipe
//	  cluster path (no kubeconfig,     runs even on a machine that is off or hung
//	  a retried or repeated wipe)
//	wiping → deleted (wipe done)     → power off, unless the node's BMC says keep it on
//
// and, called by the cluster integration, Netboot (the Kubernetes path could not reboot
// the machine) and PowerOff (a fenced machine keeps rejoining). Actions that follow a
// store update run on the lifecycle's own workers, never on the writer's goroutine.
type Lifecycle struct {
	svc   *Service
	log   *slog.Logger
	queue chan job
	wg    sync.WaitGroup
}

type job struct {
	name   string
	req    Request
	source string
}

// lifecycleQueue bounds the actions waiting for a worker; past it an action is dropped
// with a log line (the operator can still run it by hand): the store's update hook must
// never block.
const lifecycleQueue = 4096

// lifecycleWorkers is how many BMC actions run at once.
const lifecycleWorkers = 4

// NewLifecycle builds the lifecycle on the power service; Run starts its workers.
func NewLifecycle(svc *Service) *Lifecycle {
	return &Lifecycle{svc: svc, log: svc.log, queue: make(chan job, lifecycleQueue)}
}

// Do runs an operator's power command (the API's and the page's).
func (l *Lifecycle) Do(ctx context.Context, name string, req Request, source string) (Result, error) {
	return l.svc.Do(ctx, name, req, source)
}

// Run works the queue until ctx ends, then waits for the actions under way.
func (l *Lifecycle) Run(ctx context.Context) error {
	for range lifecycleWorkers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-l.queue:
					_, _ = l.svc.Do(ctx, j.name, j.req, j.source) // the outcome is the event
				}
			}
		}()
	}
	<-ctx.Done()
	l.wg.Wait()
	return nil
}

func (l *Lifecycle) enqueue(j job) {
	select {
	case l.queue <- j:
	default:
		l.log.Warn("bmc lifecycle queue full: action dropped", slog.String("node", j.name), slog.String("action", j.req.String()))
	}
}

// Imported boots a newly imported node from the network once and powers it on.
func (l *Lifecycle) Imported(name, source string) {
	l.enqueue(job{name: name, source: source, req: Request{Action: ActionOn, BootOnce: BootPXE, Why: "imported: network boot to install"}})
}

// Observe is the store's update hook: it reacts to the transitions listed on Lifecycle.
func (l *Lifecycle) Observe(before, after node.Node) {
	if after.BMC == nil || before.State == after.State {
		return
	}
	switch {
	case after.State == node.StateWiping && before.State != node.StateDeleting:
		// Straight to wiping: no cluster integration ran the deletion (or the node is
		// wiped again); nothing else will reboot the machine into the wipe.
		l.enqueue(job{name: after.Name, source: "bmc", req: Request{Action: ActionCycle, BootOnce: BootPXE, Why: "deletion: network boot to wipe"}})
	case before.State == node.StateWiping && after.State == node.StateDeleted && !after.BMC.KeepPowerOn:
		l.enqueue(job{name: after.Name, source: "bmc", req: Request{Action: ActionOff, Why: "wiped"}})
	}
}

// Netboot boots the node's machine once from the network and power-cycles it, now: the
// cluster's deletion calls it when Kubernetes could not reboot the machine.
func (l *Lifecycle) Netboot(ctx context.Context, name, why string) error {
	_, err := l.svc.Do(ctx, name, Request{Action: ActionCycle, BootOnce: BootPXE, Why: why}, "cluster")
	return err
}

// PowerOff powers the node's machine off, now.
func (l *Lifecycle) PowerOff(ctx context.Context, name, why string) error {
	_, err := l.svc.Do(ctx, name, Request{Action: ActionOff, Why: why}, "cluster")
	return err
}
