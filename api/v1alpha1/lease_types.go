package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BootyardLease is one DHCP address record. Its NAME is the address (an IPv6 address
// with its colons as dashes), so claiming an address is creating the object: the API
// server refuses a second create of the same name, whichever replica sends it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=byl,categories=bootyard
// +kubebuilder:printcolumn:name="IP",type=string,JSONPath=`.spec.ip`
// +kubebuilder:printcolumn:name="MAC",type=string,JSONPath=`.spec.mac`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.spec.state`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.spec.expires`
type BootyardLease struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BootyardLeaseSpec `json:"spec"`
}

// BootyardLeaseSpec is store.Lease.
type BootyardLeaseSpec struct {
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

// BootyardLeaseList is a list of leases.
// +kubebuilder:object:root=true
type BootyardLeaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BootyardLease `json:"items"`
}
