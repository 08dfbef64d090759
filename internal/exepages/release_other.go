//go:build !linux

package exepages

import (
	"errors"
	"fmt"
)

// Release needs /proc/self/smaps and madvise: Linux only.
func Release() (Stats, error) {
	return Stats{}, fmt.Errorf("release executable pages: %w", errors.ErrUnsupported)
}
