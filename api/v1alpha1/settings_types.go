package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BootyardSettings holds the cluster join settings; Bootyard reads and writes one object,
// named "cluster". The join token and the installer environment (proxy URLs carry
// passwords) are not here: they live in the Secret TokenSecret names.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=bys,categories=bootyard
// +kubebuilder:printcolumn:name="Server",type=string,JSONPath=`.spec.serverURL`
// +kubebuilder:printcolumn:name="Default-Image",type=string,JSONPath=`.spec.defaultImage`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BootyardSettings struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BootyardSettingsSpec `json:"spec"`
}

// BootyardSettingsSpec is node.ClusterSettings without its secrets.
type BootyardSettingsSpec struct {
	// +optional
	ServerURL string `json:"serverURL,omitempty"`
	// +optional
	InstallURL string `json:"installURL,omitempty"`
	// +optional
	ExtraCloudConfig string `json:"extraCloudConfig,omitempty"`
	// +optional
	SSHAuthorizedKeys []string `json:"sshAuthorizedKeys,omitempty"`
	// +optional
	DefaultImage string `json:"defaultImage,omitempty"`
	// +optional
	WipeOverwrite bool `json:"wipeOverwrite,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1440
	JoinTurnMinutes int `json:"joinTurnMinutes,omitempty"`
	// TokenSecret names the Secret (same namespace) that holds the join token and the
	// installer environment.
	// +optional
	TokenSecret string `json:"tokenSecret,omitempty"`
}

// BootyardSettingsList is a list of settings objects.
// +kubebuilder:object:root=true
type BootyardSettingsList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BootyardSettings `json:"items"`
}
