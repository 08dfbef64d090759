// Package grub renders the configs Debian's signed network GRUB (grubnetx64.efi.signed,
// started by the Microsoft-signed shim) reads over TFTP: the Secure Boot chain's scripts.
package grub
