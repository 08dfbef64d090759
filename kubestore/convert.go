package kubestore

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// Times are stored as RFC 3339 with nanoseconds: metav1.Time keeps seconds, and the
// store orders updates by UpdatedAt.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// toNode reads a BootyardNode. An object whose status was never written (a replica died
// between the create and the status write) is what the create meant: a registered node
// when it has a role, a discovered one when not.
func toNode(o *v1alpha1.BootyardNode) (node.Node, error) {
	n := node.Node{
		Name:        o.Name,
		Role:        node.Role(o.Spec.Role),
		Image:       o.Spec.Image,
		Disk:        o.Spec.Disk,
		DeleteMode:  node.DeleteMode(o.Spec.DeleteMode),
		ClusterInit: o.Status.ClusterInit,
		State:       node.State(o.Status.State),
		StateReason: o.Status.StateReason,
		StateSince:  parseTime(o.Status.StateSince),
		FailedFrom:  node.State(o.Status.FailedFrom),
		Generation:  o.Status.Round,
		CreatedAt:   parseTime(o.Status.CreatedAt),
		UpdatedAt:   parseTime(o.Status.UpdatedAt),
		LastSeen:    parseTime(o.Status.LastSeen),
		Labels:      maps.Clone(o.Spec.NodeLabels),
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	for _, m := range o.Spec.MACs {
		mac, err := node.ParseMAC(string(m))
		if err != nil {
			return node.Node{}, fmt.Errorf("node %s: %w", o.Name, err)
		}
		n.MACs = append(n.MACs, mac)
	}
	var err error
	if o.Spec.IP != "" {
		if n.IP, err = netip.ParsePrefix(o.Spec.IP); err != nil {
			return node.Node{}, fmt.Errorf("node %s: ip: %w", o.Name, err)
		}
	}
	if o.Spec.Gateway != "" {
		if n.Gateway, err = netip.ParseAddr(o.Spec.Gateway); err != nil {
			return node.Node{}, fmt.Errorf("node %s: gateway: %w", o.Name, err)
		}
	}
	for _, d := range o.Spec.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return node.Node{}, fmt.Errorf("node %s: dns: %w", o.Name, err)
		}
		n.DNS = append(n.DNS, a)
	}
	n.Taints = []node.Taint{}
	for _, ts := range o.Spec.Taints {
		t, err := node.ParseTaint(ts)
		if err != nil {
			return node.Node{}, fmt.Errorf("node %s: %w", o.Name, err)
		}
		n.Taints = append(n.Taints, t)
	}
	if len(o.Status.DeletionDone) > 0 {
		n.DeletionDone = slices.Clone(o.Status.DeletionDone)
	}
	if r := o.Status.UninstallReport; r != nil {
		n.UninstallReport = &node.UninstallReport{ExitStatus: r.ExitStatus, Log: slices.Clone(r.Log), From: r.From, At: parseTime(r.At)}
	}
	if b := o.Status.Boot; b != nil {
		n.Boot = node.BootInfo{Arch: uint16(b.Arch), Firmware: b.Firmware, VendorClass: b.VendorClass, UserClass: b.UserClass,
			IP: b.IP, FirstSeen: parseTime(b.FirstSeen), LastSeen: parseTime(b.LastSeen)}
	}
	if c := o.Status.Cluster; c != nil {
		n.Cluster = &node.ClusterStatus{Ready: c.Ready, Roles: slices.Clone(c.Roles), KubeletVersion: c.KubeletVersion, ObservedAt: parseTime(c.ObservedAt)}
	}
	var extra nodeExtra
	if err := getExtra(&o.ObjectMeta, &extra); err != nil {
		return node.Node{}, err
	}
	extra.apply(&n)
	if hw := o.Status.Hardware; hw != nil && len(hw.Raw) > 0 {
		n.Hardware = &node.Hardware{}
		if err := json.Unmarshal(hw.Raw, n.Hardware); err != nil {
			return node.Node{}, fmt.Errorf("node %s: hardware: %w", o.Name, err)
		}
	}
	if i := o.Status.Inspect; i != nil {
		n.Inspect = &node.InspectRequest{After: agentapi.AfterInspect(i.After), RequestedAt: parseTime(i.RequestedAt)}
	}
	if n.State == "" {
		n.State = node.StateDiscovered
		if n.Role != "" {
			n.State = node.StateRegistered
		}
		n.StateSince = o.CreationTimestamp.UTC()
		if n.CreatedAt.IsZero() {
			n.CreatedAt = n.StateSince
		}
	}
	return n, nil
}

// fromNode writes n into a copy of base (nil for a new object): its metadata (the
// resourceVersion a write is conditional on) and whatever else is not the node's.
func (s *Store) fromNode(n *node.Node, base *v1alpha1.BootyardNode) *v1alpha1.BootyardNode {
	o := &v1alpha1.BootyardNode{}
	if base != nil {
		o.ObjectMeta = *base.ObjectMeta.DeepCopy()
	} else {
		o.Namespace = s.ns
	}
	o.Name = n.Name
	if o.Labels == nil {
		o.Labels = map[string]string{}
	}
	// The role label lets a deletion list the servers from the API server itself; the
	// MAC labels let a create check its MACs against every replica's (claimMACs).
	if n.Role != "" {
		o.Labels[labelRole] = string(n.Role)
	} else {
		delete(o.Labels, labelRole)
	}
	for k := range o.Labels {
		if strings.HasPrefix(k, labelMACPrefix) {
			delete(o.Labels, k)
		}
	}
	for _, m := range n.MACs {
		o.Labels[macLabel(m.String())] = ""
	}
	extra := nodeExtraOf(n)
	s.putExtra(&o.ObjectMeta, extra, extra.isZero())
	sp := v1alpha1.BootyardNodeSpec{Role: string(n.Role), Image: n.Image, Disk: n.Disk, DeleteMode: string(n.DeleteMode)}
	for _, m := range n.MACs {
		sp.MACs = append(sp.MACs, v1alpha1.MAC(m.String()))
	}
	if n.IP.IsValid() {
		sp.IP = n.IP.String()
	}
	if n.Gateway.IsValid() {
		sp.Gateway = n.Gateway.String()
	}
	for _, d := range n.DNS {
		sp.DNS = append(sp.DNS, d.String())
	}
	if len(n.Labels) > 0 {
		sp.NodeLabels = maps.Clone(n.Labels)
	}
	for _, t := range n.Taints {
		sp.Taints = append(sp.Taints, t.String())
	}
	st := v1alpha1.BootyardNodeStatus{State: string(n.State), StateReason: n.StateReason, StateSince: formatTime(n.StateSince),
		FailedFrom: string(n.FailedFrom), ClusterInit: n.ClusterInit, DeletionDone: slices.Clone(n.DeletionDone), Round: n.Generation,
		CreatedAt: formatTime(n.CreatedAt), UpdatedAt: formatTime(n.UpdatedAt), LastSeen: formatTime(n.LastSeen)}
	if r := n.UninstallReport; r != nil {
		st.UninstallReport = &v1alpha1.UninstallReport{ExitStatus: r.ExitStatus, Log: slices.Clone(r.Log), From: r.From, At: formatTime(r.At)}
	}
	if b := n.Boot; b != (node.BootInfo{}) {
		st.Boot = &v1alpha1.BootInfo{Arch: int32(b.Arch), Firmware: b.Firmware, VendorClass: b.VendorClass, UserClass: b.UserClass,
			IP: b.IP, FirstSeen: formatTime(b.FirstSeen), LastSeen: formatTime(b.LastSeen)}
	}
	if c := n.Cluster; c != nil {
		st.Cluster = &v1alpha1.ClusterStatus{Ready: c.Ready, Roles: slices.Clone(c.Roles), KubeletVersion: c.KubeletVersion, ObservedAt: formatTime(c.ObservedAt)}
	}
	if n.Hardware != nil {
		// Plain fields, slices and pointers to them: encoding cannot fail.
		raw, err := json.Marshal(n.Hardware)
		if err != nil {
			s.log.Error("node hardware not stored: it does not encode", slog.String("node", n.Name), slog.Any("err", err))
		} else {
			st.Hardware = &runtime.RawExtension{Raw: raw}
		}
	}
	if i := n.Inspect; i != nil {
		st.Inspect = &v1alpha1.InspectRequest{After: string(i.After), RequestedAt: formatTime(i.RequestedAt)}
	}
	o.Spec, o.Status = sp, st
	return o
}

// cloneNode copies n's slices and maps: the caches hand out copies, so a caller that
// edits what it got cannot change what the next caller reads.
func cloneNode(n node.Node) node.Node {
	n.MACs = slices.Clone(n.MACs)
	n.DNS = slices.Clone(n.DNS)
	n.Labels = maps.Clone(n.Labels)
	n.Taints = slices.Clone(n.Taints)
	n.DeletionDone = slices.Clone(n.DeletionDone)
	if n.UninstallReport != nil {
		r := *n.UninstallReport
		r.Log = slices.Clone(r.Log)
		n.UninstallReport = &r
	}
	if n.Cluster != nil {
		c := *n.Cluster
		c.Roles = slices.Clone(c.Roles)
		n.Cluster = &c
	}
	if n.BMC != nil {
		b := *n.BMC
		n.BMC = &b
	}
	if n.Power != nil {
		p := *n.Power
		n.Power = &p
	}
	if n.SecureBoot != nil {
		on := *n.SecureBoot
		n.SecureBoot = &on
	}
	n.Hardware = n.Hardware.Clone()
	if n.Inspect != nil {
		i := *n.Inspect
		n.Inspect = &i
	}
	return n
}

func (s *Store) fromImage(img store.Image) *v1alpha1.BootyardImage {
	o := &v1alpha1.BootyardImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: img.Name},
		Spec: v1alpha1.BootyardImageSpec{Kind: string(img.Kind), File: img.File, URL: img.URL, Size: img.Size, SHA256: img.SHA256,
			Format: string(img.Format), ModTime: formatTime(img.ModTime), Kernel: img.Kernel, Initrd: img.Initrd, Cmdline: img.Cmdline,
			AddedAt: formatTime(img.AddedAt)},
	}
	s.putExtra(&o.ObjectMeta, imageExtraOf(&img), img.RootDiskHints.IsZero())
	return o
}

func toImage(o *v1alpha1.BootyardImage, defaultImage string) (store.Image, error) {
	sp := o.Spec
	img := store.Image{Name: o.Name, Kind: store.ImageKind(sp.Kind), File: sp.File, URL: sp.URL, Size: sp.Size, SHA256: sp.SHA256,
		Format: store.ImageFormat(sp.Format), ModTime: parseTime(sp.ModTime), Kernel: sp.Kernel, Initrd: sp.Initrd, Cmdline: sp.Cmdline,
		AddedAt: parseTime(sp.AddedAt), Default: defaultImage == o.Name}
	var extra imageExtra
	if err := getExtra(&o.ObjectMeta, &extra); err != nil {
		return store.Image{}, err
	}
	img.RootDiskHints = extra.RootDiskHints
	return img, nil
}
