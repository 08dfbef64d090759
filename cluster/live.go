package cluster

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// LiveServers is the cluster's own answer to "how many servers, and which one started
// the cluster": the Nodes with a control-plane or etcd role, and the oldest of them
// (the cluster-init node is the first server, so it registered first). ok is false until
// the Node cache has synced, and when no Node carries a server role.
func (c *Controller) LiveServers() (servers int, clusterInit string, ok bool) {
	if !c.synced.Load() {
		return 0, "", false
	}
	knodes, err := c.clusterNodes()
	if err != nil {
		return 0, "", false
	}
	knodes = slices.DeleteFunc(knodes, func(k *corev1.Node) bool { return !isServer(k) })
	if len(knodes) == 0 {
		// A cluster always has a server; none labelled means the labels are not there
		// (not a k3s/LLMOS cluster), and the inventory's own count is the better answer.
		return 0, "", false
	}
	oldest := slices.MinFunc(knodes, func(a, b *corev1.Node) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return len(knodes), oldest.Name, true
}
