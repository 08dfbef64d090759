package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// The deletion sequence takes a node the API moved to `deleting` out of the cluster:
//
//	quorum check → cordon → drain → network boot → delete Node → wiping          (reinstall)
//	quorum check → cordon → drain → uninstall → delete Node → deleted            (uninstall)
//
// The uninstall runs in LLMOS's own order: on the node while it is still a cluster
// member, and the Node is deleted only once the uninstall exited 0. Deleting the Node
// first would remove a server's etcd member before the pod could run there, and k3s
// would rejoin at its next start.
//
// Every step records an event, and its completion on the node (RecordDeletionStep); the
// first failure moves the node to `failed` (FailedFrom deleting) with the step and the
// cause. A retry, a new delete request or a restart of Bootyard runs the sequence again
// and skips the recorded steps, so it resumes where it stopped. That matters after the
// uninstall: the node's kubelet is gone then, and neither the drain nor the pod could run
// again.

// StartDeletion hands the sequence a node the API has just moved to `deleting`. force
// skips the live quorum check and deletes the pods that cannot be evicted. The sequence
// runs in the controller's own context, not the request's; a resumed deletion (retry,
// restart) runs without force.
//
// The API calls this just after its transaction: a pass may have started the sequence
// in between, so the steps read force when they act, not when the run began.
func (c *Controller) StartDeletion(_ context.Context, name string, force bool) {
	c.mu.Lock()
	c.force[name] = force
	c.mu.Unlock()
	c.nudge()
}

// forced reports the --force of the node's latest deletion request.
func (c *Controller) forced(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.force[name]
}

// CheckDeletion refuses (node.ErrRefused) to delete a server whose removal leaves the
// cluster's remaining Ready servers without an etcd majority, as the live Nodes show it.
// Before the first sync it has nothing to say; the store's own check still applies.
func (c *Controller) CheckDeletion(ctx context.Context, name string) error {
	if !c.synced.Load() {
		return nil
	}
	n, err := c.inv.GetNode(ctx, name)
	if err != nil {
		return err
	}
	knodes, err := c.clusterNodes()
	if err != nil {
		return err
	}
	k, _ := newIndex(knodes).match(&n)
	if _, err := quorumCheck(k, knodes); err != nil {
		return fmt.Errorf("delete %s: %w (use --force to override)", name, err)
	}
	return nil
}

// quorumCheck applies node.CheckServerRemoval to the Kubernetes Nodes: servers are the
// Nodes with a control-plane or etcd role, up means Ready.
func quorumCheck(k *corev1.Node, all []*corev1.Node) (string, error) {
	if k == nil {
		return "no Kubernetes Node: nothing to check", nil
	}
	if !isServer(k) {
		return "not an etcd member", nil
	}
	var members []node.ServerMember
	others, up := 0, 0
	for _, m := range all {
		if !isServer(m) {
			others++
			continue
		}
		members = append(members, node.ServerMember{Name: m.Name, Up: isReady(m)})
		if m.Name != k.Name && isReady(m) {
			up++
		}
	}
	if err := node.CheckServerRemoval(members, k.Name, others); err != nil {
		return "", fmt.Errorf("live cluster: %w", err)
	}
	return fmt.Sprintf("%d of the %d remaining servers are Ready, enough for an etcd majority", up, len(members)-1), nil
}

// sweepDeletions starts the sequence for every `deleting` node that has none running.
func (c *Controller) sweepDeletions(ctx context.Context) error {
	if !c.synced.Load() {
		return nil
	}
	// The state index holds the deleting nodes: the pass reads them, not the inventory.
	var names []string
	q := store.NodeQuery{State: node.StateDeleting, Limit: store.MaxPageLimit, NoTotal: true}
	for {
		page, err := c.inv.QueryNodeNames(ctx, q)
		if err != nil {
			return fmt.Errorf("list deleting nodes: %w", err)
		}
		names = append(names, page.Names...)
		if page.Continue == "" {
			break
		}
		q.Continue = page.Continue
	}
	for _, name := range names {
		c.mu.Lock()
		if c.running[name] {
			c.mu.Unlock()
			continue
		}
		c.running[name] = true
		c.mu.Unlock()
		c.wg.Add(1)
		go func(name string) {
			defer c.wg.Done()
			c.removeFromCluster(ctx, name)
			c.mu.Lock()
			delete(c.running, name)
			c.mu.Unlock()
		}(name)
	}
	return nil
}

// stepError names the step that stopped a deletion.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// removeFromCluster runs the sequence once and records its failure.
func (c *Controller) removeFromCluster(ctx context.Context, name string) {
	err := c.runDeletion(ctx, name)
	if err == nil {
		return
	}
	if ctx.Err() != nil {
		// Shutting down: the node stays `deleting` and the next start resumes it.
		return
	}
	if errors.Is(err, node.ErrNotFound) {
		return // removed from the inventory meanwhile
	}
	c.log.Warn("node deletion stopped", slog.String("node", name), slog.Any("err", err))
	now := c.cfg.Now()
	if uerr := c.update(ctx, name, func(n *node.Node) ([]node.Event, error) {
		if n.State != node.StateDeleting {
			return nil, errNoChange
		}
		ev, err := n.Transition(node.StateFailed, "removal from the cluster stopped at "+err.Error(), source, now)
		if err != nil {
			return nil, err
		}
		return []node.Event{ev}, nil
	}); uerr != nil {
		c.log.Error("record failed deletion", slog.String("node", name), slog.Any("err", uerr))
	}
}

// deletion is one run of the sequence for one node.
type deletion struct {
	c *Controller
	n node.Node
	k *corev1.Node // the machine's Kubernetes Node as the run began; nil when there is none
	// final is where the node goes when every step is done.
	final node.State
	why   string
}

type step struct {
	name string
	run  func(ctx context.Context) (reason string, warn bool, err error)
}

func (c *Controller) runDeletion(ctx context.Context, name string) error {
	n, err := c.inv.GetNode(ctx, name)
	if err != nil {
		return err
	}
	if n.State != node.StateDeleting {
		return nil
	}
	knodes, err := c.clusterNodes()
	if err != nil {
		return err
	}
	k, _ := newIndex(knodes).match(&n)
	d := &deletion{c: c, n: n, k: k, final: node.StateWiping,
		why: "removed from the cluster: the next network boot wipes and reinstalls the machine"}
	steps := []step{{"quorum check", d.quorum}, {"cordon", d.cordon}, {"drain", d.drain}}
	if n.DeleteMode == node.DeleteUninstall {
		d.final, d.why = node.StateDeleted, "LLMOS uninstalled and the join data removed; the OS is kept"
		steps = append(steps, step{"uninstall", d.uninstall}, step{"delete Node", d.deleteNode})
	} else {
		steps = append(steps, step{"network boot", d.netboot}, step{"delete Node", d.deleteNode})
	}
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.name
	}
	start := "removing from the cluster: " + strings.Join(names, ", ")
	if c.forced(name) {
		start += " (forced)"
	}
	c.log.Info("removing node from the cluster", slog.String("node", name), slog.Bool("force", c.forced(name)), slog.String("mode", string(n.DeleteMode)))
	c.event(ctx, name, node.EventCluster, start)
	for _, s := range steps {
		if n.DeletionStepDone(s.name) {
			c.event(ctx, name, node.EventCluster, s.name+": done before this run")
			continue
		}
		reason, warn, err := s.run(ctx)
		if err != nil {
			return &stepError{step: s.name, err: err}
		}
		t := node.EventCluster
		if warn {
			t = node.EventWarning
		}
		c.event(ctx, name, t, s.name+": "+reason)
		if err := c.update(ctx, name, func(n *node.Node) ([]node.Event, error) {
			if n.State != node.StateDeleting {
				return nil, fmt.Errorf("node left deleting (now %s) during the step: %w", n.State, node.ErrConflict)
			}
			n.RecordDeletionStep(s.name)
			return nil, nil
		}); err != nil {
			return &stepError{step: s.name, err: fmt.Errorf("record the step: %w", err)}
		}
	}
	now := c.cfg.Now()
	return c.update(ctx, name, func(n *node.Node) ([]node.Event, error) {
		if n.State != node.StateDeleting {
			return nil, errNoChange
		}
		n.Cluster = nil
		n.DeletionDone = nil
		n.UninstallReport = nil
		ev, err := n.Transition(d.final, d.why, source, now)
		if err != nil {
			return nil, err
		}
		return []node.Event{ev}, nil
	})
}

func (d *deletion) quorum(context.Context) (string, bool, error) {
	if d.c.forced(d.n.Name) {
		return "skipped (forced)", false, nil
	}
	knodes, err := d.c.clusterNodes()
	if err != nil {
		return "", false, err
	}
	reason, err := quorumCheck(d.k, knodes)
	return reason, false, err
}

func (d *deletion) cordon(ctx context.Context) (string, bool, error) {
	if d.k == nil {
		return "no Kubernetes Node", false, nil
	}
	if d.k.Spec.Unschedulable {
		return "Node " + d.k.Name + " was already cordoned", false, nil
	}
	if err := d.c.cordon(ctx, d.k.Name); err != nil {
		if apierrors.IsNotFound(err) {
			return "Node " + d.k.Name + " is gone", false, nil
		}
		return "", false, err
	}
	return "Node " + d.k.Name + " cordoned", false, nil
}

func (d *deletion) drain(ctx context.Context) (string, bool, error) {
	if d.k == nil {
		return "no Kubernetes Node", false, nil
	}
	res, err := d.c.drain(ctx, d.k.Name, func() bool { return d.c.forced(d.n.Name) })
	if err != nil {
		return "", false, err
	}
	return res.String(), res.Deleted > 0 || res.Left > 0, nil
}

// netboot makes the machine boot from the network next, so the wipe runs. A node that is
// down never runs the pod: that is said, and the deletion goes on; the machine is then
// wiped at its next power cycle, when it network-boots into Bootyard's wiping state.
func (d *deletion) netboot(ctx context.Context) (string, bool, error) {
	if d.k == nil {
		return d.viaBMC(ctx, "no Kubernetes Node to run the reboot on", "the machine is wiped at its next network boot")
	}
	if !isReady(d.k) && d.canUseBMC() {
		// A NotReady kubelet would leave the pod pending until the timeout: go straight
		// to the BMC.
		return d.viaBMC(ctx, "Node "+d.k.Name+" is NotReady", "")
	}
	timeout := d.c.cfg.RebootTimeout
	pod := helperPod(d.c.cfg.HelperNamespace, d.c.cfg.HelperImage, purposeNetboot, d.n.Name, d.k.Name, d.n.Generation, netbootScript)
	outcome, msg, err := d.c.runHelperPod(ctx, pod, podRunning, timeout, nil)
	if err != nil {
		return "", false, err
	}
	switch outcome {
	case podRunning, podSucceeded:
		return "pod " + pod.Name + " set the next boot to the network and rebooted the machine", false, nil
	case podFailed:
		return d.viaBMC(ctx, fmt.Sprintf("pod %s failed (%s)", pod.Name, msg), "the machine is wiped once it network-boots")
	}
	return d.viaBMC(ctx, fmt.Sprintf("pod %s did not run within %s (node down?)", pod.Name, timeout), "the machine is wiped at its next network boot")
}

func (d *deletion) canUseBMC() bool { return d.c.cfg.OutOfBand != nil && d.n.BMC != nil }

// viaBMC reboots the machine into the wipe through its BMC when Kubernetes could not
// (why). Without a BMC, or when the BMC fails, the step still ends: the machine is then
// wiped whenever it next boots from the network (otherwise), which the step says.
func (d *deletion) viaBMC(ctx context.Context, why, otherwise string) (string, bool, error) {
	if otherwise == "" {
		otherwise = "the machine is wiped at its next network boot"
	}
	if !d.canUseBMC() {
		return why + ": " + otherwise, true, nil
	}
	if err := d.c.cfg.OutOfBand.Netboot(ctx, d.n.Name, "deletion: "+why); err != nil {
		return why + "; the BMC failed too (" + err.Error() + "): " + otherwise, true, nil
	}
	return why + ": the BMC set the next boot to the network and power-cycled the machine", false, nil
}

func (d *deletion) deleteNode(ctx context.Context) (string, bool, error) {
	if d.k == nil {
		return "no Kubernetes Node", false, nil
	}
	err := d.c.client.CoreV1().Nodes().Delete(ctx, d.k.Name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return "Node " + d.k.Name + " was already deleted", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return "Node " + d.k.Name + " deleted", false, nil
}

// uninstall runs the uninstall on the node while it is still a member: LLMOS's own
// script, found where LLMOS's installer put it, then the removal of the join data
// (uninstall.sh). The outcome is whichever arrives first: the pod's exit status, or the
// host script's own report over the machine endpoints (node.UninstallReport), which
// outlives the kubelet that LLMOS's script stops. Exit status 0 is success; any other
// fails the step with that status and the end of the script's output; a machine that is
// down cannot be uninstalled, and the step fails saying what to do instead. On failure
// the Node stays.
func (d *deletion) uninstall(ctx context.Context) (string, bool, error) {
	rep, err := d.takeUninstallReport(ctx)
	if err != nil {
		return "", false, err
	}
	if rep != nil {
		// The host finished before this run (Bootyard restarted while it waited).
		return "the host reported exit status 0 before this run: " + reportSummary(rep), false, nil
	}
	if d.k == nil {
		return "", false, errors.New("no Kubernetes Node to run the uninstall on: the machine is not a cluster member; delete it again with --mode reinstall to wipe it at its next network boot")
	}
	settings, err := d.c.inv.ClusterSettings(ctx)
	if err != nil {
		return "", false, fmt.Errorf("read the installer settings: %w", err)
	}
	timeout := d.c.cfg.UninstallTimeout
	pod := helperPod(d.c.cfg.HelperNamespace, d.c.cfg.HelperImage, purposeUninstall, d.n.Name, d.k.Name, d.n.Generation, uninstallPodScript,
		corev1.EnvVar{Name: uninstallEnvVar, Value: uninstallEnv(settings.InstallEnv) + uninstallHostScript})
	reported := func(ctx context.Context) bool {
		n, err := d.c.inv.GetNode(ctx, d.n.Name)
		if err != nil {
			d.c.log.Debug("look for the host's uninstall report", slog.String("node", d.n.Name), slog.Any("err", err))
			return false
		}
		rep = n.UninstallReport
		return rep != nil
	}
	outcome, msg, err := d.c.runHelperPod(ctx, pod, podSucceeded, timeout, reported)
	if err != nil {
		return "", false, err
	}
	if rep != nil {
		if rep.OK() {
			return "the host reported exit status 0: llmos-uninstall.sh ran and the join data is removed (pod " + pod.Name + ")", false, nil
		}
		return "", false, fmt.Errorf("the host reported exit status %d: %s", rep.ExitStatus, reportSummary(rep))
	}
	switch outcome {
	case podSucceeded:
		return "pod " + pod.Name + " ran llmos-uninstall.sh and removed the join data (exit status 0)", false, nil
	case podFailed:
		return "", false, fmt.Errorf("pod %s: %s", pod.Name, msg)
	case podRunning:
		// Neither the pod's status (LLMOS's script stopped the kubelet) nor the host's
		// report (no first-boot script holding the key, Bootyard unreachable from the
		// host) arrived. --force takes the operator's word, given after reading the host's
		// log, for it.
		if d.c.forced(d.n.Name) {
			return fmt.Sprintf("pod %s still running after %s and no report from the host, exit status unknown; going on (forced): the host's /var/log/bootyard-uninstall.log tells how it ended", pod.Name, timeout), true, nil
		}
		return "", false, fmt.Errorf("pod %s still running after %s and no report from the host: the uninstall's exit status is unknown; read /var/log/bootyard-uninstall.log on the host, then delete again with --mode uninstall --force to go on, or with --mode reinstall to wipe the machine", pod.Name, timeout)
	}
	return "", false, fmt.Errorf("pod %s did not run within %s (node down?): the machine still has LLMOS; retry when it is up, or delete it again with --mode reinstall to wipe it at its next network boot", pod.Name, timeout)
}

// takeUninstallReport returns a success the host reported before this run. A failure
// report belongs to the attempt that failed on it: it is cleared, so this attempt's pod
// and report decide.
func (d *deletion) takeUninstallReport(ctx context.Context) (*node.UninstallReport, error) {
	var ok *node.UninstallReport
	err := d.c.update(ctx, d.n.Name, func(n *node.Node) ([]node.Event, error) {
		switch rep := n.UninstallReport; {
		case rep == nil:
			return nil, errNoChange
		case rep.OK():
			ok = rep
			return nil, errNoChange
		}
		n.UninstallReport = nil
		return nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the host's uninstall report: %w", err)
	}
	return ok, nil
}

// reportSummary is the end of a report's log on one line, as a failure reason shows it.
func reportSummary(rep *node.UninstallReport) string {
	tail := lastLines(strings.Join(rep.Log, "\n"), terminationTailLines)
	if tail == "" {
		tail = "no log"
	}
	return tail + " (from " + rep.From + ")"
}
