package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the group and version of every type here.
var GroupVersion = schema.GroupVersion{Group: "bootyard.io", Version: "v1alpha1"}

// AddToScheme registers the types with a scheme, for the REST client's codecs.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&BootyardNode{}, &BootyardNodeList{},
		&BootyardImage{}, &BootyardImageList{},
		&BootyardSettings{}, &BootyardSettingsList{},
		&BootyardLeaseBlock{}, &BootyardLeaseBlockList{},
		&BootyardEvent{}, &BootyardEventList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
