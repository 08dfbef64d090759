// Package images is Bootyard's OS image side: the image catalog (disk images streamed to
// a machine's disk, installer kernels booted directly), streaming image and agent files
// over HTTP, the agent initramfs builder, and the demo image (a tiny OS on a signed ESP).
package images
