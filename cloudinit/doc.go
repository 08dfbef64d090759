// Package cloudinit renders the NoCloud data (meta-data, user-data, vendor-data,
// network-config) that makes a machine's first boot join the cluster, and packs it into
// a seed ISO for VMs cloned from cloud-init templates.
//
// The distribution-specific part (today LLMOS) sits behind JoinRenderer, so another
// k3s-based distribution can be added as a second renderer.
package cloudinit
