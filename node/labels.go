package node

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ValidateLabels checks keys and values with the Kubernetes rules.
func ValidateLabels(labels map[string]string) error {
	for _, k := range sortedKeys(labels) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("label key %q: %w: %s", k, ErrInvalid, strings.Join(errs, "; "))
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
