// Package ipxe finds the iPXE binaries Bootyard hands out over TFTP and HTTP, and renders
// the per-machine iPXE scripts (install, local boot, wipe, wait) from templates parsed once.
package ipxe
