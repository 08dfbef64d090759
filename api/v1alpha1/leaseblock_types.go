package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BootyardLeaseBlock holds the DHCP address records of one aligned block of addresses
// (an IPv4 /26 or IPv6 /122: 64 addresses). Its NAME is the block's first address and
// prefix length (IPv6 expanded, colons as dashes: "10.64.1.64-26"), so claiming the first
// address of a block is creating the object, and every later claim in it is an update
// conditional on the resourceVersion read: the API server refuses the second of two
// writers, whichever replica sends it. One write stores every lease of a DHCP server's
// group commit that falls in the block, instead of one object write per address.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=bylb,categories=bootyard
// +kubebuilder:printcolumn:name="Prefix",type=string,JSONPath=`.spec.prefix`
// +kubebuilder:printcolumn:name="Records",type=integer,JSONPath=`.spec.records`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BootyardLeaseBlock struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BootyardLeaseBlockSpec `json:"spec"`
}

// BootyardLeaseBlockSpec is the block's address records.
type BootyardLeaseBlockSpec struct {
	// Prefix is the block, as an address prefix ("10.64.1.64/26").
	// +kubebuilder:validation:MaxLength=49
	Prefix string `json:"prefix"`
	// Records is len(leases), for kubectl's column.
	// +optional
	Records int32 `json:"records,omitempty"`
	// Leases are the block's address records in address order. The list is replaced as a
	// whole by each write (atomic): the API server tracks no field owner per record.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Leases []BootyardLeaseRecord `json:"leases,omitempty"`
}

// BootyardLeaseRecord is store.Lease: one address record.
type BootyardLeaseRecord struct {
	// +kubebuilder:validation:MaxLength=45
	IP string `json:"ip"`
	// MAC is empty for a declined address.
	// +optional
	// +kubebuilder:validation:Pattern=`^(([0-9a-f]{2}:){5}[0-9a-f]{2})?$`
	MAC string `json:"mac,omitempty"`
	// +kubebuilder:validation:Enum=active;released;declined
	State string `json:"state"`
	// +optional
	Expires string `json:"expires,omitempty"`
	// Hostname is DHCP option 12 as the client sent it.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	Hostname string `json:"hostname,omitempty"`
}

// BootyardLeaseBlockList is a list of lease blocks.
// +kubebuilder:object:root=true
type BootyardLeaseBlockList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BootyardLeaseBlock `json:"items"`
}
