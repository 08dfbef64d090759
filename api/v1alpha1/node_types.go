package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// BootyardNode is one machine: its name is the node's name. The operator's intent is the
// spec; what Bootyard and the machine made of it is the status, written through the
// status subresource so an update of one never overwrites the other.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=byn,categories=bootyard
// +kubebuilder:printcolumn:name="MAC",type=string,JSONPath=`.spec.macs[0]`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.spec.role`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="IP",type=string,JSONPath=`.spec.ip`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BootyardNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BootyardNodeSpec   `json:"spec"`
	Status BootyardNodeStatus `json:"status,omitempty"`
}

// BootyardNodeSpec is what the operator sets: an import, labels, an image.
type BootyardNodeSpec struct {
	// MACs are the machine's network cards, lower-case, colon-separated; the first is the
	// primary one.
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	MACs []MAC `json:"macs"`
	// Role is server or worker; empty while the machine is only discovered.
	// +optional
	// +kubebuilder:validation:Enum=server;worker
	Role string `json:"role,omitempty"`
	// IP is a static address in CIDR form; empty means DHCP.
	// +optional
	// +kubebuilder:validation:MaxLength=50
	IP string `json:"ip,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=45
	Gateway string `json:"gateway,omitempty"`
	// +optional
	DNS []string `json:"dns,omitempty"`
	// NodeLabels become the Kubernetes Node's labels when it joins.
	// +optional
	NodeLabels map[string]string `json:"nodeLabels,omitempty"`
	// Taints are written key=value:Effect or key:Effect.
	// +optional
	Taints []string `json:"taints,omitempty"`
	// Image names a BootyardImage; empty means the cluster default.
	// +optional
	Image string `json:"image,omitempty"`
	// +optional
	Disk string `json:"disk,omitempty"`
	// +optional
	// +kubebuilder:validation:Enum=reinstall;uninstall
	DeleteMode string `json:"deleteMode,omitempty"`
}

// MAC is a hardware address, lower-case and colon-separated.
// +kubebuilder:validation:Pattern=`^([0-9a-f]{2}:){5}[0-9a-f]{2}$`
type MAC string

// BootyardNodeStatus is the node's lifecycle as Bootyard records it. Times are RFC 3339
// with nanoseconds: Bootyard orders writes by them, finer than metav1.Time's seconds.
type BootyardNodeStatus struct {
	// +optional
	// +kubebuilder:validation:Enum=discovered;registered;provisioning;installed;joining;joined;active;deleting;wiping;deleted;failed
	State string `json:"state,omitempty"`
	// +optional
	StateReason string `json:"stateReason,omitempty"`
	// +optional
	StateSince string `json:"stateSince,omitempty"`
	// +optional
	FailedFrom string `json:"failedFrom,omitempty"`
	// ClusterInit marks the server that starts the cluster.
	// +optional
	ClusterInit bool `json:"clusterInit,omitempty"`
	// DeletionDone lists the cluster-removal steps the current deletion finished.
	// +optional
	DeletionDone []string `json:"deletionDone,omitempty"`
	// +optional
	UninstallReport *UninstallReport `json:"uninstallReport,omitempty"`
	// Round counts provisioning rounds; cloud-init's instance-id includes it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Round int `json:"round,omitempty"`
	// Boot is what the firmware said the last time the machine network-booted.
	// +optional
	Boot *BootInfo `json:"boot,omitempty"`
	// Cluster is what Kubernetes says about the machine's Node.
	// +optional
	Cluster *ClusterStatus `json:"cluster,omitempty"`
	// +optional
	CreatedAt string `json:"createdAt,omitempty"`
	// +optional
	UpdatedAt string `json:"updatedAt,omitempty"`
	// +optional
	LastSeen string `json:"lastSeen,omitempty"`
	// Hardware is the latest inspection as the agent reported it (node.Hardware's JSON:
	// inspectedAt, system, firmware, cpu, memoryBytes, disks, nics, bmc). Its shape is
	// the agent's wire type, defined once in package agentapi, so the schema leaves it open.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Hardware *runtime.RawExtension `json:"hardware,omitempty"`
	// Inspect is a pending inspection: the machine's next network boot runs the agent in
	// inspect mode.
	// +optional
	Inspect *InspectRequest `json:"inspect,omitempty"`
}

// InspectRequest is a pending inspection.
type InspectRequest struct {
	// +kubebuilder:validation:Enum=poweroff;wait;reboot
	After       string `json:"after"`
	RequestedAt string `json:"requestedAt"`
}

// UninstallReport is the host's own word on an uninstall.
type UninstallReport struct {
	ExitStatus int `json:"exitStatus"`
	// +optional
	Log  []string `json:"log,omitempty"`
	From string   `json:"from"`
	At   string   `json:"at"`
}

// BootInfo is what the firmware said about itself.
type BootInfo struct {
	// Arch is DHCP option 93.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	Arch int32 `json:"arch"`
	// +optional
	Firmware string `json:"firmware,omitempty"`
	// +optional
	VendorClass string `json:"vendorClass,omitempty"`
	// +optional
	UserClass string `json:"userClass,omitempty"`
	// IP is the address the machine booted with.
	// +optional
	IP string `json:"ip,omitempty"`
	// +optional
	FirstSeen string `json:"firstSeen,omitempty"`
	// +optional
	LastSeen string `json:"lastSeen,omitempty"`
}

// ClusterStatus is the machine's Kubernetes Node as Bootyard last observed it.
type ClusterStatus struct {
	Ready bool `json:"ready"`
	// +optional
	Roles []string `json:"roles,omitempty"`
	// +optional
	KubeletVersion string `json:"kubeletVersion,omitempty"`
	ObservedAt     string `json:"observedAt"`
}

// BootyardNodeList is a list of nodes.
// +kubebuilder:object:root=true
type BootyardNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BootyardNode `json:"items"`
}
