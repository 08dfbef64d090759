package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BootyardEvent is one line of a node's history, named <node>.<seq as 16 hex digits> and
// labelled bootyard.io/node=<node>. A node's history is bounded as the bbolt store bounds
// it (count and bytes): the oldest objects are deleted first.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=bye,categories=bootyard
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="To",type=string,JSONPath=`.spec.to`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`
// +kubebuilder:printcolumn:name="Time",type=string,JSONPath=`.spec.time`
type BootyardEvent struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BootyardEventSpec `json:"spec"`
}

// BootyardEventSpec is node.Event.
type BootyardEventSpec struct {
	Node string `json:"node"`
	// Seq orders a node's events; it grows with time (Unix nanoseconds or one more than the
	// last one this replica wrote).
	// +kubebuilder:validation:Minimum=1
	Seq  int64  `json:"seq"`
	Time string `json:"time"`
	// +kubebuilder:validation:Enum=transition;boot;cloud-init;progress;log;cluster;warning;power
	Type string `json:"type"`
	// +optional
	From string `json:"from,omitempty"`
	// +optional
	To     string `json:"to,omitempty"`
	Reason string `json:"reason"`
	// +optional
	Source string `json:"source,omitempty"`
	// +optional
	Percent int `json:"percent,omitempty"`
	// +optional
	Bytes int64 `json:"bytes,omitempty"`
}

// BootyardEventList is a list of events.
// +kubebuilder:object:root=true
type BootyardEventList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BootyardEvent `json:"items"`
}
