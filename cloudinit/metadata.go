package cloudinit

import (
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/bootyard/bootyard/node"
)

// metaData is NoCloud's meta-data. It is marshalled, never concatenated: a node named
// 123, 01, on or yes (all valid DNS labels) must come out as a quoted string, or YAML
// reads an int or a bool, cloud-init fails in get_hostname and NoCloud does not load.
type metaData struct {
	InstanceID    string `json:"instance-id"`
	LocalHostname string `json:"local-hostname"`
}

// MetaData renders meta-data.
func (r *Renderer) MetaData(n node.Node) ([]byte, error) {
	b, err := yaml.Marshal(metaData{InstanceID: InstanceID(n), LocalHostname: n.Name})
	if err != nil {
		return nil, fmt.Errorf("meta-data for %s: %w", n.Name, err)
	}
	return b, nil
}

// VendorData renders vendor-data. Bootyard puts everything in user-data, where the
// operator's extra cloud-config is merged, so vendor-data only has to be valid and
// empty: an absent file makes some cloud-init versions log a warning on every boot.
func (r *Renderer) VendorData() []byte {
	return []byte("#cloud-config\n{}\n")
}
