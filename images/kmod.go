package images

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// AgentModules are the drivers the agent loads: NICs and disk controllers of the
// machines Bootyard installs (QEMU's virtio and e1000 included), each with its
// dependencies. The filesystems are missing on purpose: the agent writes the disk and
// the CIDATA FAT itself and never mounts anything but proc, sysfs, devtmpfs and
// efivarfs (read-only: the firmware's Secure Boot state).
func AgentModules() []string {
	return []string{
		// NICs
		"virtio_net", "e1000", "e1000e", "igb", "ixgbe", "i40e", "ice", "bnxt_en", "tg3", "r8169", "vmxnet3",
		// buses and disks
		"virtio_pci", "virtio_blk", "virtio_scsi",
		// entropy: nothing on the agent's boot path waits for the kernel's CRNG any more
		// (see cmd/bootyard-agent/dhcp_xid.go), but a hardware RNG seeds it sooner for
		// whatever the image's own first boot needs
		"virtio_rng", "ahci", "ata_piix", "sd_mod", "nvme",
		"megaraid_sas", "mpt3sas", "vmw_pvscsi",
		// in-band IPMI: an inspection asks the BMC for its LAN address over /dev/ipmi0
		"ipmi_si", "ipmi_devintf",
		// the firmware's variables: whether the machine booted with Secure Boot on
		"efivarfs",
	}
}

// kernelModule is one .ko found under a kernel's modules directory.
type kernelModule struct {
	name    string // as modprobe spells it: dashes become underscores
	relPath string // under /lib/modules/<version>/, without the compression suffix
	absPath string
	depends []string
}

// moduleIndex maps module names to their files under modulesDir (lib/modules/<ver>).
func moduleIndex(modulesDir string) (map[string]*kernelModule, error) {
	index := map[string]*kernelModule{}
	err := filepath.WalkDir(filepath.Join(modulesDir, "kernel"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		base := d.Name()
		var stem string
		for _, suffix := range []string{".ko", ".ko.xz", ".ko.zst"} {
			if strings.HasSuffix(base, suffix) {
				stem = strings.TrimSuffix(base, suffix)
			}
		}
		if d.IsDir() || stem == "" {
			return nil
		}
		rel, err := filepath.Rel(modulesDir, path)
		if err != nil {
			return err
		}
		name := strings.ReplaceAll(stem, "-", "_")
		index[name] = &kernelModule{name: name, relPath: filepath.Join(filepath.Dir(rel), stem+".ko"), absPath: path}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index kernel modules in %s: %w", modulesDir, err)
	}
	if len(index) == 0 {
		return nil, fmt.Errorf("index kernel modules: no .ko under %s", modulesDir)
	}
	return index, nil
}

// readModule returns the module's ELF bytes, decompressing .ko.xz and .ko.zst (newer
// Debian kernels compress their modules; the agent's finit_module wants them plain).
func readModule(m *kernelModule) ([]byte, error) {
	raw, err := os.ReadFile(m.absPath)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	switch {
	case strings.HasSuffix(m.absPath, ".ko.xz"):
		r, err = xz.NewReader(bytes.NewReader(raw))
	case strings.HasSuffix(m.absPath, ".ko.zst"):
		var zr *zstd.Decoder
		zr, err = zstd.NewReader(bytes.NewReader(raw))
		if zr != nil {
			defer zr.Close()
		}
		r = zr
	default:
		return raw, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", m.absPath, err)
	}
	return io.ReadAll(r)
}

// moduleDepends reads the depends= field of a module's .modinfo section: what depmod
// would put in modules.dep, which the Debian package does not ship (its postinst runs
// depmod on the installed system).
func moduleDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	info, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, field := range bytes.Split(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(field, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(strings.ReplaceAll(string(v), "-", "_"), ","), nil
		}
	}
	return nil, nil
}

// resolveModules returns the modules named by want and everything they depend on, each
// after its dependencies, with their ELF bytes. Names that are not modules of this
// kernel are returned in builtin when modules.builtin lists them, and are an error
// otherwise.
func resolveModules(modulesDir string, want []string) (ordered []*kernelModule, data map[string][]byte, builtin []string, err error) {
	index, err := moduleIndex(modulesDir)
	if err != nil {
		return nil, nil, nil, err
	}
	builtins := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modulesDir, "modules.builtin")); err == nil {
		for _, line := range strings.Fields(string(b)) {
			builtins[strings.ReplaceAll(strings.TrimSuffix(filepath.Base(line), ".ko"), "-", "_")] = true
		}
	}
	data = map[string][]byte{}
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, from string) error
	visit = func(name, from string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", name)
		case 2:
			return nil
		}
		m, ok := index[name]
		if !ok {
			if builtins[name] {
				builtin = append(builtin, name)
				state[name] = 2
				return nil
			}
			return fmt.Errorf("module %s (needed by %s) is not in %s", name, from, modulesDir)
		}
		state[name] = 1
		ko, err := readModule(m)
		if err != nil {
			return fmt.Errorf("read module %s: %w", name, err)
		}
		deps, err := moduleDepends(ko)
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		m.depends = deps
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		data[name] = ko
		ordered = append(ordered, m)
		return nil
	}
	for _, name := range want {
		if err := visit(strings.ReplaceAll(name, "-", "_"), "the agent"); err != nil {
			return nil, nil, nil, err
		}
	}
	sort.Strings(builtin)
	return ordered, data, builtin, nil
}

// modulesDep renders modules.dep in depmod's format for the given modules: each line
// names a module and all its transitive dependencies, most dependent first, so loading
// the list from its end to its start loads dependencies first.
func modulesDep(ordered []*kernelModule) []byte {
	byName := map[string]*kernelModule{}
	for _, m := range ordered {
		byName[m.name] = m
	}
	var b strings.Builder
	for _, m := range ordered {
		var deps []string
		seen := map[string]bool{}
		var walk func(*kernelModule)
		walk = func(x *kernelModule) {
			for _, d := range x.depends {
				dm, ok := byName[d]
				if !ok || seen[d] {
					continue
				}
				seen[d] = true
				deps = append(deps, dm.relPath)
				walk(dm)
			}
		}
		walk(m)
		fmt.Fprintf(&b, "%s:", m.relPath)
		for _, d := range deps {
			fmt.Fprintf(&b, " %s", d)
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}
