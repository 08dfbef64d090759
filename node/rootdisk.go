package node

import (
	"fmt"

	"github.com/bootyard/bootyard/rootdisk"
)

// RootDiskHints select the disk the OS is installed on, in Ironic's syntax
// ("serial=S123", "size>=400G,rotational=false"); see package rootdisk. A node's own
// hints win over its image's default; with neither the agent takes the smallest
// non-removable disk that fits the image.
type RootDiskHints = rootdisk.Hints

// ParseRootDiskHints parses hints at the edge (API, CLI, import file).
func ParseRootDiskHints(s string) (RootDiskHints, error) {
	h, err := rootdisk.Parse(s)
	if err != nil {
		return RootDiskHints{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return h, nil
}
