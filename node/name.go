package node

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ValidateName checks a node name: an RFC 1123 label, since it becomes the hostname and
// the Kubernetes Node name.
func ValidateName(name string) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("name %q: %w: %s", name, ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// DefaultName derives a stable name from a MAC for nodes imported without one.
func DefaultName(mac MAC) string { return "node-" + mac.Hex() }
