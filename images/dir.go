package images

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bootyard/bootyard/node"
)

// openImagesDir makes the images directory if needed and returns its absolute path with
// symlinks resolved, the form every file path is compared against.
func openImagesDir(dir string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("images: an images directory is required (--images-dir)")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("images directory: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("images directory: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("images directory: %w", err)
	}
	return real, nil
}

// insideDir resolves path (symlinks included) and returns it when it lies inside dir, a
// directory already resolved by openImagesDir. Anything else is refused: the daemon
// reads and serves files as itself, and a path the operator typed (or an attacker with
// the API) must not turn it into a reader of /etc/shadow or of its own store.
func insideDir(dir, path string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("%w: %s: no images directory is configured", node.ErrForbidden, path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("%w: %v", node.ErrInvalid, err)
	}
	rel, err := filepath.Rel(dir, real)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%w: %s is outside the images directory %s", node.ErrForbidden, path, dir)
	}
	return real, nil
}
