package cluster

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/bootyard/bootyard/node"
)

func TestMatch_NameThenMACThenAddress(t *testing.T) {
	mac, _ := node.ParseMAC("52:54:00:ab:cd:01")
	n := node.Node{Name: "gpu-1", MACs: []node.MAC{mac}, IP: netip.MustParsePrefix("10.20.0.31/24"), Boot: node.BootInfo{IP: "10.20.0.99"}}
	tests := []struct {
		name     string
		k8s      *corev1.Node
		wantKind matchKind
	}{
		{"same name", kubeNode("gpu-1", true), matchName},
		{"MAC annotation, any case and separator", withAnnotation(kubeNode("host-1", true), annotationMACs, "aa:bb:cc:dd:ee:ff, 52-54-00-AB-CD-01"), matchMAC},
		{"MAC label as bare hex", withLabel(kubeNode("host-2", true), labelMAC, "525400abcd01"), matchMAC},
		{"static address in the Node status", withAddress(kubeNode("host-3", true), "10.20.0.31"), matchAddress},
		{"boot address in the k3s annotation", withAnnotation(kubeNode("host-4", true), "k3s.io/internal-ip", "10.20.0.99,fd00::99"), matchAddress},
		{"nothing in common", withAddress(kubeNode("host-5", true), "10.20.0.32"), matchNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, kind := newIndex([]*corev1.Node{tt.k8s, kubeNode("unrelated", true)}).match(&n)
			if kind != tt.wantKind {
				t.Fatalf("match kind %d, want %d", kind, tt.wantKind)
			}
			if kind != matchNone && k.Name != tt.k8s.Name {
				t.Errorf("matched %s, want %s", k.Name, tt.k8s.Name)
			}
		})
	}
}

func TestMatch_TheNameWinsOverAnotherNodesAddress(t *testing.T) {
	n := node.Node{Name: "cp-1", IP: netip.MustParsePrefix("10.0.0.5/24")}
	k, kind := newIndex([]*corev1.Node{withAddress(kubeNode("cp-9", true), "10.0.0.5"), kubeNode("cp-1", true)}).match(&n)
	if kind != matchName || k.Name != "cp-1" {
		t.Errorf("matched %v by %d, want cp-1 by name", k.Name, kind)
	}
}

func withLabel(k *corev1.Node, key, value string) *corev1.Node {
	k.Labels[key] = value
	return k
}

func TestFingerprint_IgnoresHeartbeatsAndSeesWhatBootyardRecords(t *testing.T) {
	base := kubeNode("n1", true, "control-plane")
	tests := []struct {
		name    string
		change  func(k *corev1.Node)
		differs bool
	}{
		{"heartbeat", func(k *corev1.Node) {
			k.Status.Conditions[0].LastHeartbeatTime.Time = k.Status.Conditions[0].LastHeartbeatTime.Add(10)
		}, false},
		{"unrelated annotation", func(k *corev1.Node) { k.Annotations["volumes.kubernetes.io/controller-managed-attach-detach"] = "true" }, false},
		{"Ready flips", func(k *corev1.Node) { k.Status.Conditions[0].Status = corev1.ConditionFalse }, true},
		{"kubelet upgraded", func(k *corev1.Node) { k.Status.NodeInfo.KubeletVersion = "v1.35.0+k3s1" }, true},
		{"role added", func(k *corev1.Node) { k.Labels[roleLabelPrefix+"etcd"] = "true" }, true},
		{"MAC annotated", func(k *corev1.Node) { k.Annotations[annotationMACs] = "52:54:00:00:00:01" }, true},
		{"address changed", func(k *corev1.Node) {
			k.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.9"}}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := base.DeepCopy()
			tt.change(k)
			if got := fingerprint(k) != fingerprint(base); got != tt.differs {
				t.Errorf("fingerprint differs = %v, want %v", got, tt.differs)
			}
		})
	}
}
