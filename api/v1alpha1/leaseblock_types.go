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
	// Leases are the block's address records in address order, one line each as a
	// leases file has them: "<ip> <mac> <state> <expires> [<hostname>]", with "-" for no
	// MAC (a declined address) or no expiry, the expiry in RFC 3339, and the hostname
	// (DHCP option 12 as the client sent it) the rest of the line. A line rather than an
	// object per record: the API server decodes, validates and re-encodes the whole
	// block on every write, and a string per record costs it a fraction of five fields.
	// The list is replaced as a whole by each write (atomic).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=400
	// +kubebuilder:validation:items:Pattern=`^[0-9a-f.:]+ (([0-9a-f]{2}:){5}[0-9a-f]{2}|-) (active|released|declined) [^ ]+( .*)?$`
	Leases []string `json:"leases,omitempty"`
}

// BootyardLeaseBlockList is a list of lease blocks.
// +kubebuilder:object:root=true
type BootyardLeaseBlockList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BootyardLeaseBlock `json:"items"`
}
