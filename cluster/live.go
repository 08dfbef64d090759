package cluster

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// LiveServers is the cluster's own answer to "how many servers, and which one started
// the cluster": the Nodes with a control-plane or etcd role, and the oldest of them
// (the cluster-init node is the first server, so it registered first). ok is false until
// the Node cache has synced.
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
		return 0, "", true
	}
	oldest := slices.MinFunc(knodes, func(a, b *corev1.Node) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return len(knodes), oldest.Name, true
}
