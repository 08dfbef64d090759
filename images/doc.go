// Package images is Bootyard's OS image side: the image catalog (disk images streamed to
// a machine's disk, installer kernels booted directly), streaming image and agent files
// over HTTP, and the agent initramfs builder.
package images
