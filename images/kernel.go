package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Kernel is an unpacked Linux kernel package: the image and its modules.
type Kernel struct {
	// Version is the modules directory's name, `uname -r` of the booted kernel.
	Version string
	// Vmlinuz is the path of the bootable kernel image.
	Vmlinuz string
	// ModulesDir is lib/modules/<Version> of the unpacked package.
	ModulesDir string
}

// KernelPackage is the Debian metapackage that names the current kernel.
const KernelPackage = "linux-image-amd64"

// isConcreteKernel says whether pkg is a versioned kernel package such as
// linux-image-6.1.0-56-amd64 (and not linux-image-amd64 or a -dbg package).
func isConcreteKernel(pkg string) bool {
	v, ok := strings.CutPrefix(pkg, "linux-image-")
	return ok && strings.HasSuffix(v, "-amd64") && len(v) > 0 && v[0] >= '0' && v[0] <= '9' && !strings.Contains(v, " ")
}

// FetchKernel returns the kernel unpacked under cacheDir, first fetching it when the
// cache is empty: the concrete linux-image-<version>-amd64 package that
// linux-image-amd64 depends on is downloaded with `apt-get download` and unpacked with
// `dpkg -x` into cacheDir/root. Nothing is installed on the host and nothing is mounted.
func FetchKernel(ctx context.Context, cacheDir string, log *slog.Logger) (Kernel, error) {
	root := filepath.Join(cacheDir, "root")
	if k, err := findKernel(root); err == nil {
		return k, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return Kernel{}, fmt.Errorf("kernel cache: %w", err)
	}
	// Test packages run in parallel processes and may all find the cache empty: one
	// fetches while the others wait on the lock, then find its result.
	lock, err := os.OpenFile(filepath.Join(cacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return Kernel{}, fmt.Errorf("kernel cache lock: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return Kernel{}, fmt.Errorf("kernel cache lock: %w", err)
	}
	if k, err := findKernel(root); err == nil {
		return k, nil
	}
	pkg, err := concreteKernelPackage(ctx)
	if err != nil {
		return Kernel{}, err
	}
	log.Info("downloading the agent kernel", slog.String("package", pkg), slog.String("cache", cacheDir))
	dl := exec.CommandContext(ctx, "apt-get", "download", pkg)
	dl.Dir = cacheDir
	if out, err := dl.CombinedOutput(); err != nil {
		return Kernel{}, fmt.Errorf("apt-get download %s: %w: %s", pkg, err, bytes.TrimSpace(out))
	}
	debs, err := filepath.Glob(filepath.Join(cacheDir, pkg+"_*.deb"))
	if err != nil || len(debs) == 0 {
		return Kernel{}, fmt.Errorf("apt-get download %s left no .deb in %s", pkg, cacheDir)
	}
	// Unpack into a temporary tree and rename it into place, so an interrupted
	// unpack never looks like a complete cache.
	tmp, err := os.MkdirTemp(cacheDir, "unpack-")
	if err != nil {
		return Kernel{}, fmt.Errorf("kernel cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if out, err := exec.CommandContext(ctx, "dpkg", "-x", debs[len(debs)-1], tmp).CombinedOutput(); err != nil {
		return Kernel{}, fmt.Errorf("dpkg -x %s: %w: %s", debs[len(debs)-1], err, bytes.TrimSpace(out))
	}
	os.RemoveAll(root)
	if err := os.Rename(tmp, root); err != nil {
		return Kernel{}, fmt.Errorf("kernel cache: %w", err)
	}
	// The unpacked tree is the cache; the .deb would only double its size.
	for _, deb := range debs {
		if err := os.Remove(deb); err != nil {
			log.Warn("could not remove the downloaded kernel package", slog.String("file", deb), slog.Any("err", err))
		}
	}
	return findKernel(root)
}

// concreteKernelPackage asks apt which linux-image-<version>-amd64 the metapackage
// depends on now.
func concreteKernelPackage(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", KernelPackage).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %w: %s", KernelPackage, err, bytes.TrimSpace(out))
	}
	for _, line := range strings.Split(string(out), "\n") {
		dep, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: ")
		if ok && isConcreteKernel(dep) {
			return dep, nil
		}
	}
	return "", fmt.Errorf("apt-cache depends %s names no linux-image-<version>-amd64 (run apt-get update first?): %s", KernelPackage, bytes.TrimSpace(out))
}

// findKernel finds the newest kernel under an unpacked package root.
func findKernel(root string) (Kernel, error) {
	images, err := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if err != nil || len(images) == 0 {
		return Kernel{}, errors.New("no kernel unpacked")
	}
	sort.Strings(images)
	vmlinuz := images[len(images)-1]
	version := strings.TrimPrefix(filepath.Base(vmlinuz), "vmlinuz-")
	modules := filepath.Join(root, "lib", "modules", version)
	if _, err := os.Stat(filepath.Join(modules, "kernel")); err != nil {
		// Debian 13 moved modules to /usr/lib/modules.
		modules = filepath.Join(root, "usr", "lib", "modules", version)
		if _, err := os.Stat(filepath.Join(modules, "kernel")); err != nil {
			return Kernel{}, fmt.Errorf("kernel %s has no modules under %s", version, root)
		}
	}
	return Kernel{Version: version, Vmlinuz: vmlinuz, ModulesDir: modules}, nil
}
