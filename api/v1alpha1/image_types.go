package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BootyardImage is one catalog entry; its name is the image's name. Which image is the
// default is a field of BootyardSettings, not of the image.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=byi,categories=bootyard
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.kind`
// +kubebuilder:printcolumn:name="Format",type=string,JSONPath=`.spec.format`
// +kubebuilder:printcolumn:name="Size",type=integer,JSONPath=`.spec.size`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BootyardImage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BootyardImageSpec `json:"spec"`
}

// BootyardImageSpec is store.Image without its name.
type BootyardImageSpec struct {
	// +kubebuilder:validation:Enum=disk;installer
	Kind string `json:"kind"`
	// File is an absolute path on the Bootyard host (its images directory).
	// +optional
	File string `json:"file,omitempty"`
	// URL is where machines download the image themselves.
	// +optional
	URL string `json:"url,omitempty"`
	// +kubebuilder:validation:Minimum=0
	Size int64 `json:"size"`
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	SHA256 string `json:"sha256,omitempty"`
	// +optional
	// +kubebuilder:validation:Enum=raw;gzip;zstd
	Format string `json:"format,omitempty"`
	// +optional
	ModTime string `json:"modTime,omitempty"`
	// +optional
	Kernel string `json:"kernel,omitempty"`
	// +optional
	Initrd string `json:"initrd,omitempty"`
	// +optional
	Cmdline string `json:"cmdline,omitempty"`
	AddedAt string `json:"addedAt"`
}

// BootyardImageList is a list of images.
// +kubebuilder:object:root=true
type BootyardImageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BootyardImage `json:"items"`
}
