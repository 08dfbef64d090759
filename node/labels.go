package node

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	kubeletapis "k8s.io/kubelet/pkg/apis"
)

// ValidateLabels checks keys and values with the Kubernetes rules, and refuses what the
// kubelet refuses in --node-labels (LLMOS passes the labels there): a key in the
// kubernetes.io or k8s.io namespaces that is not one the kubelet may set on its own Node.
// A kubelet given such a label exits at start, so the node would never join.
func ValidateLabels(labels map[string]string) error {
	for _, k := range sortedKeys(labels) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("label key %q: %w: %s", k, ErrInvalid, strings.Join(errs, "; "))
		}
		if isKubernetesLabel(k) && !kubeletapis.IsKubeletLabel(k) {
			return fmt.Errorf("label key %q: %w: the kubelet refuses labels in the kubernetes.io and k8s.io namespaces "+
				"except %s and the %s namespaces (set node roles and other reserved labels on the Node after it joins)",
				k, ErrInvalid, strings.Join(kubeletapis.KubeletLabels(), ", "), strings.Join(kubeletapis.KubeletLabelNamespaces(), ", "))
		}
		if errs := validation.IsValidLabelValue(labels[k]); len(errs) > 0 {
			return fmt.Errorf("label %q value %q: %w: %s", k, labels[k], ErrInvalid, strings.Join(errs, "; "))
		}
	}
	return nil
}

// ParseLabel parses "key=value" (value may be empty).
func ParseLabel(s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("label %q: %w: want key=value", s, ErrInvalid)
	}
	if err := ValidateLabels(map[string]string{key: value}); err != nil {
		return "", "", err
	}
	return key, value, nil
}

// LabelList renders labels as sorted "k=v" strings, the form LLMOS's config takes.
func LabelList(labels map[string]string) []string {
	out := make([]string, 0, len(labels))
	for _, k := range sortedKeys(labels) {
		out = append(out, k+"="+labels[k])
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// isKubernetesLabel reports whether key is in a namespace the Kubernetes project reserves.
// It is the kubelet's own test (cmd/kubelet/app/options, unexported there and in the
// heavy k8s.io/kubernetes module); which of those keys a kubelet may set comes from
// k8s.io/kubelet.
func isKubernetesLabel(key string) bool {
	ns, _, ok := strings.Cut(key, "/")
	if !ok {
		return false
	}
	return ns == "kubernetes.io" || strings.HasSuffix(ns, ".kubernetes.io") ||
		ns == "k8s.io" || strings.HasSuffix(ns, ".k8s.io")
}
