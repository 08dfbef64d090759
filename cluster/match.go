package cluster

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/bootyard/bootyard/node"
)

// Annotations and labels that tie a Kubernetes Node to a Bootyard node when the names
// differ (a hostname set by DHCP, say). The annotation lists MACs in any node.ParseMAC
// form, comma-separated; the label holds one MAC as bare hex, the form label values allow.
const (
	annotationMACs = "bootyard.io/macs"
	labelMAC       = "bootyard.io/mac"
)

// addressAnnotations are where k3s and flannel record a Node's addresses besides its status.
var addressAnnotations = []string{"k3s.io/internal-ip", "k3s.io/external-ip", "flannel.alpha.coreos.com/public-ip"}

// roleLabelPrefix marks a Node's roles: node-role.kubernetes.io/control-plane=true.
const roleLabelPrefix = "node-role.kubernetes.io/"

// serverRoles are the roles of a Node that runs etcd and the API server (an LLMOS server).
var serverRoles = []string{"control-plane", "etcd", "master"}

// matchKind says how a Kubernetes Node was tied to a Bootyard node. Fencing acts only on
// an identity match: an address can pass to another machine after a wipe.
type matchKind int

const (
	matchNone matchKind = iota
	matchName
	matchMAC
	matchAddress
)

// index finds Kubernetes Nodes by the keys a Bootyard node can be matched on.
type index struct {
	byName map[string]*corev1.Node
	byMAC  map[node.MAC]*corev1.Node
	byAddr map[netip.Addr]*corev1.Node
}

func newIndex(nodes []*corev1.Node) index {
	ix := index{byName: map[string]*corev1.Node{}, byMAC: map[node.MAC]*corev1.Node{}, byAddr: map[netip.Addr]*corev1.Node{}}
	for _, k := range nodes {
		ix.byName[k.Name] = k
		for _, m := range nodeMACs(k) {
			ix.byMAC[m] = k
		}
		for _, a := range nodeAddrs(k) {
			ix.byAddr[a] = k
		}
	}
	return ix
}

// match finds n's Kubernetes Node: same name first, then a MAC annotation or label, then
// one of its addresses.
func (ix index) match(n *node.Node) (*corev1.Node, matchKind) {
	if k := ix.byName[n.Name]; k != nil {
		return k, matchName
	}
	for _, m := range n.MACs {
		if k := ix.byMAC[m]; k != nil {
			return k, matchMAC
		}
	}
	for _, a := range bootyardAddrs(n) {
		if k := ix.byAddr[a]; k != nil {
			return k, matchAddress
		}
	}
	return nil, matchNone
}

func nodeMACs(k *corev1.Node) []node.MAC {
	var out []node.MAC
	for _, s := range strings.Split(k.Annotations[annotationMACs], ",") {
		if m, err := node.ParseMAC(strings.TrimSpace(s)); err == nil {
			out = append(out, m)
		}
	}
	if m, err := node.ParseMAC(k.Labels[labelMAC]); err == nil {
		out = append(out, m)
	}
	return out
}

func nodeAddrs(k *corev1.Node) []netip.Addr {
	var out []netip.Addr
	for _, a := range k.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			out = append(out, ip)
		}
	}
	for _, key := range addressAnnotations {
		for _, s := range strings.Split(k.Annotations[key], ",") {
			if ip, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
				out = append(out, ip)
			}
		}
	}
	return out
}

// bootyardAddrs are the addresses Bootyard knows the machine by: its static address and
// the one it last network-booted with.
func bootyardAddrs(n *node.Node) []netip.Addr {
	var out []netip.Addr
	if n.IP.IsValid() {
		out = append(out, n.IP.Addr())
	}
	if ip, err := netip.ParseAddr(n.Boot.IP); err == nil && !slices.Contains(out, ip) {
		out = append(out, ip)
	}
	return out
}

// statusOf is what the inventory records of a Kubernetes Node.
func statusOf(k *corev1.Node, at time.Time) node.ClusterStatus {
	return node.ClusterStatus{Ready: isReady(k), Roles: roles(k), KubeletVersion: k.Status.NodeInfo.KubeletVersion, ObservedAt: at}
}

// sameStatus compares what the cluster says, not when it was observed.
func sameStatus(old *node.ClusterStatus, now node.ClusterStatus) bool {
	return old != nil && old.Ready == now.Ready && old.KubeletVersion == now.KubeletVersion && slices.Equal(old.Roles, now.Roles)
}

func isReady(k *corev1.Node) bool {
	c := readyCondition(k)
	return c != nil && c.Status == corev1.ConditionTrue
}

func readyCondition(k *corev1.Node) *corev1.NodeCondition {
	for i := range k.Status.Conditions {
		if k.Status.Conditions[i].Type == corev1.NodeReady {
			return &k.Status.Conditions[i]
		}
	}
	return nil
}

// roles reads node-role.kubernetes.io/<role> labels, sorted.
func roles(k *corev1.Node) []string {
	var out []string
	for key := range k.Labels {
		if r, ok := strings.CutPrefix(key, roleLabelPrefix); ok && r != "" {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// isServer reports whether a Node carries a control-plane or etcd role: an etcd member.
func isServer(k *corev1.Node) bool {
	for _, r := range serverRoles {
		if _, ok := k.Labels[roleLabelPrefix+r]; ok {
			return true
		}
	}
	return false
}

// describeStatus is the event text for a Node's status.
func describeStatus(k *corev1.Node, st node.ClusterStatus) string {
	var b strings.Builder
	b.WriteString("Kubernetes Node ")
	b.WriteString(k.Name)
	if st.Ready {
		b.WriteString(" is Ready")
	} else {
		b.WriteString(" is NotReady")
		if c := readyCondition(k); c != nil && (c.Reason != "" || c.Message != "") {
			b.WriteString(" (")
			b.WriteString(strings.TrimSpace(c.Reason + " " + c.Message))
			b.WriteString(")")
		}
	}
	if st.KubeletVersion != "" {
		b.WriteString("; kubelet ")
		b.WriteString(st.KubeletVersion)
	}
	if len(st.Roles) > 0 {
		b.WriteString("; roles ")
		b.WriteString(strings.Join(st.Roles, ","))
	}
	return b.String()
}

// fingerprint is everything about a Node that the inventory records or matching and
// fencing look at; two versions with the same fingerprint need no pass.
func fingerprint(k *corev1.Node) string {
	st := statusOf(k, time.Time{})
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%v|%s|%v|%v|%v", k.UID, k.Name, st.Ready, st.KubeletVersion, st.Roles, nodeMACs(k), nodeAddrs(k))
	return b.String()
}
