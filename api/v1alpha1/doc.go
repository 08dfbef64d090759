// Package v1alpha1 is Bootyard's Kubernetes API (group bootyard.io): the inventory as
// custom resources, for the kubestore backend. deploy/crds/ is generated from these types.
//
// +kubebuilder:object:generate=true
// +groupName=bootyard.io
package v1alpha1
