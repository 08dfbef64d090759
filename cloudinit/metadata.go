package cloudinit

import "github.com/bootyard/bootyard/node"

// MetaData renders meta-data. It is written by hand rather than marshalled: two keys
// whose values are a DNS label and a fixed pattern need no YAML quoting.
func (r *Renderer) MetaData(n node.Node) []byte {
	return []byte("instance-id: " + InstanceID(n) + "\nlocal-hostname: " + n.Name + "\n")
}

// VendorData renders vendor-data. Bootyard puts everything in user-data, where the
// operator's extra cloud-config is merged, so vendor-data only has to be valid and
// empty: an absent file makes some cloud-init versions log a warning on every boot.
func (r *Renderer) VendorData() []byte {
	return []byte("#cloud-config\n{}\n")
}
