package disk

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// BlockDevice is a whole disk the kernel found.
type BlockDevice struct {
	// Name is the kernel's name (vda, sda, nvme0n1); Path the device node.
	Name, Path string
	Size       int64
	Removable  bool
}

// virtualPrefixes are block devices that are not disks of the machine: loop and RAM
// disks, optical drives, compressed swap, device-mapper and md arrays, network blocks.
var virtualPrefixes = []string{"loop", "ram", "sr", "zram", "dm-", "md", "nbd", "fd"}

// ListDisks lists the non-removable disks under sysBlock (normally /sys/block), with
// device nodes under devDir (normally /dev), in kernel name order (vda before vdb,
// sdz before sdaa). Disks of size 0 (an empty card reader) are left out.
func ListDisks(sysBlock, devDir string) ([]BlockDevice, error) {
	all, err := ListAllDisks(sysBlock, devDir)
	if err != nil {
		return nil, err
	}
	var out []BlockDevice
	for _, d := range all {
		if !d.Removable {
			out = append(out, d)
		}
	}
	return out, nil
}

// ListAllDisks is ListDisks with the removable disks (USB sticks, card readers with a
// card) too: an inspection reports them.
func ListAllDisks(sysBlock, devDir string) ([]BlockDevice, error) {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, fmt.Errorf("list disks: %w", err)
	}
	var out []BlockDevice
	for _, e := range entries {
		name := e.Name()
		if hasAnyPrefix(name, virtualPrefixes) {
			continue
		}
		dir := filepath.Join(sysBlock, name)
		removable, err := readSysInt(filepath.Join(dir, "removable"))
		if err != nil {
			return nil, fmt.Errorf("list disks: %w", err)
		}
		sectors, err := readSysInt(filepath.Join(dir, "size"))
		if err != nil {
			return nil, fmt.Errorf("list disks: %w", err)
		}
		if sectors == 0 {
			continue
		}
		// /sys/block/*/size counts 512-byte units whatever the logical sector size.
		out = append(out, BlockDevice{Name: name, Path: filepath.Join(devDir, name), Size: sectors * 512, Removable: removable != 0})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Name, out[j].Name
		if len(a) != len(b) {
			return len(a) < len(b)
		}
		return a < b
	})
	return out, nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func readSysInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
