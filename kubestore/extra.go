package kubestore

import (
	"encoding/json"
	"fmt"
	"log/slog"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// annotationExtra holds, as JSON, the fields of a node or image that came after the
// bootyard.io/v1alpha1 types (BMC and its recorded power reading, root-disk hints, the
// UEFI loader, the Secure Boot reading; the inspection is typed: status.hardware and
// status.inspect): without it the Kubernetes store would drop them on every write and a
// pivot would lose them. They move into typed CRD fields with the next API version; until
// then the annotation is the store's, not an interface for people (edit nodes through
// Bootyard, not kubectl).
const annotationExtra = "bootyard.io/extra"

// nodeExtra is a node's part kept in annotationExtra.
type nodeExtra struct {
	BMC           *node.BMC          `json:"bmc,omitempty"`
	RootDiskHints node.RootDiskHints `json:"rootDiskHints,omitzero"`
	UEFILoader    node.UEFILoader    `json:"uefiLoader,omitempty"`
	SecureBoot    *bool              `json:"secureBoot,omitempty"`
	Power         *node.PowerReading `json:"power,omitempty"`
}

func (e nodeExtra) isZero() bool {
	return e.BMC == nil && e.RootDiskHints.IsZero() && e.UEFILoader == "" && e.SecureBoot == nil && e.Power == nil
}

// imageExtra is an image's part kept in annotationExtra.
type imageExtra struct {
	RootDiskHints node.RootDiskHints `json:"rootDiskHints,omitzero"`
}

// putExtra writes v into meta's annotation, or removes the annotation when zero.
func (s *Store) putExtra(meta *metav1.ObjectMeta, v any, zero bool) {
	if zero {
		delete(meta.Annotations, annotationExtra)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		// The fields are plain data; only a hint that cannot print itself gets here.
		s.log.Error("cannot encode a node's extra fields: they are not stored", slog.String("name", meta.Name), slog.Any("err", err))
		return
	}
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[annotationExtra] = string(b)
}

// getExtra decodes meta's annotation into v (left as it is when there is none).
func getExtra(meta *metav1.ObjectMeta, v any) error {
	s, ok := meta.Annotations[annotationExtra]
	if !ok {
		return nil
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("%s %s: annotation %s: %w", meta.Namespace, meta.Name, annotationExtra, err)
	}
	return nil
}

func nodeExtraOf(n *node.Node) nodeExtra {
	return nodeExtra{BMC: n.BMC, RootDiskHints: n.RootDiskHints, UEFILoader: n.UEFILoader, SecureBoot: n.SecureBoot, Power: n.Power}
}

func (e nodeExtra) apply(n *node.Node) {
	n.BMC, n.RootDiskHints, n.UEFILoader, n.SecureBoot, n.Power = e.BMC, e.RootDiskHints, e.UEFILoader, e.SecureBoot, e.Power
}

func imageExtraOf(img *store.Image) imageExtra { return imageExtra{RootDiskHints: img.RootDiskHints} }
