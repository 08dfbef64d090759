package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/ipxe"
)

// The disk boot chain from Debian's packages, as a Debian system installed for Secure
// Boot has it: shim signed by the Microsoft UEFI CA (shim-signed) and the disk GRUB
// signed by Debian (grub-efi-amd64-signed), not the network GRUB that Bootyard serves.
var (
	signedShim = filepath.Join(ipxe.DefaultShimDir, "shimx64.efi.signed")
	signedGRUB = filepath.Join(ipxe.DefaultSignedGRUBDir, "grubx64.efi.signed")
)

// demoImageSpec gathers the demo image's parts: the demo OS's /init beside the bootyard
// binary (make build puts bootyard-demo-os there), Debian's signed kernel from the
// agent's kernel cache, and Debian's signed shim and GRUB.
func demoImageSpec(ctx context.Context, bootyardBin, kernelCache string, log *slog.Logger) (images.DemoImageSpec, error) {
	spec := images.DemoImageSpec{Init: filepath.Join(filepath.Dir(bootyardBin), "bootyard-demo-os"), Shim: signedShim, GRUB: signedGRUB}
	for _, p := range []string{spec.Init, spec.Shim, spec.GRUB} {
		if _, err := os.Stat(p); err != nil {
			return spec, fmt.Errorf("demo image: %w (make build makes bootyard-demo-os; Debian's shim-signed and grub-efi-amd64-signed hold the rest)", err)
		}
	}
	k, err := images.FetchKernel(ctx, kernelCache, log)
	if err != nil {
		return spec, fmt.Errorf("demo image: %w", err)
	}
	spec.Kernel = k
	return spec, nil
}
