package ipxe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bootyard/bootyard/node"
)

// DefaultDir is where Debian's ipxe package installs its binaries.
const DefaultDir = "/usr/lib/ipxe"

// bootableSuffixes are the iPXE images a network boot can load. Option ROMs (.rom), the
// ISO and USB images are for other media, so they are never served.
var bootableSuffixes = []string{".efi", ".kpxe", ".kkpxe", ".kkkpxe", ".pxe", ".lkrn"}

// maxNameLen bounds a served name; TFTP filenames beyond it are refused before any lookup.
const maxNameLen = 128

// Binary is one servable iPXE image, resolved at start-up.
type Binary struct {
	Name     string    // the name clients ask for (undionly.kpxe)
	RealPath string    // what it points to after symlinks (/boot/ipxe.efi)
	Size     int64     // size at start-up; Open reports the current one
	ModTime  time.Time // for HTTP caching
}

// Binaries is the allow-list of iPXE images: only names in it are ever opened, so a
// request can never reach a path outside it.
type Binaries struct {
	dir    string
	byName map[string]Binary
	names  []string
}

// ErrNotServed means the name is not an iPXE binary in the allow-list.
var ErrNotServed = fmt.Errorf("not an iPXE binary served here: %w", node.ErrNotFound)

// OpenBinaries scans dir (not its subdirectories) for iPXE images and resolves symlinks
// into the allow-list: Debian's ipxe.efi is a link to /boot/ipxe.efi, and it is the target
// that is served. A missing or empty directory is an error, so a misconfigured appliance
// fails at start-up rather than at the first boot. extra are further loaders Bootyard
// made itself (the UEFI local-boot loader), served under their base names.
func OpenBinaries(dir string, extra ...string) (*Binaries, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("ipxe binaries directory %s does not exist (install Debian's ipxe package or pass --ipxe-dir): %w", dir, err)
		}
		return nil, fmt.Errorf("read ipxe binaries directory %s: %w", dir, err)
	}
	b := &Binaries{dir: dir, byName: make(map[string]Binary)}
	for _, e := range entries {
		name := e.Name()
		if !isBootable(name) {
			continue
		}
		real, err := filepath.EvalSymlinks(filepath.Join(dir, name))
		if err != nil {
			// A dangling link (e.g. /boot/ipxe.efi removed) is skipped, not fatal: the
			// other binaries still boot machines.
			continue
		}
		fi, err := os.Stat(real)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		b.byName[name] = Binary{Name: name, RealPath: real, Size: fi.Size(), ModTime: fi.ModTime()}
		b.names = append(b.names, name)
	}
	if len(b.names) == 0 {
		return nil, fmt.Errorf("ipxe binaries directory %s holds no iPXE images (%s)", dir, strings.Join(bootableSuffixes, ", "))
	}
	for _, path := range extra {
		if err := b.add(filepath.Base(path), path); err != nil {
			return nil, err
		}
	}
	slices.Sort(b.names)
	return b, nil
}

// NamedFile is a file served under a name Bootyard chooses: Debian installs the signed
// GRUB as grubnetx64.efi.signed, and shim asks for grubx64.efi beside itself.
type NamedFile struct {
	Name string // the name clients ask for
	Path string // the file (symlinks resolved)
}

// OpenBinariesWith is OpenBinaries plus files served under their own names.
func OpenBinariesWith(dir string, named []NamedFile, extra ...string) (*Binaries, error) {
	b, err := OpenBinaries(dir, extra...)
	if err != nil {
		return nil, err
	}
	for _, f := range named {
		real, err := filepath.EvalSymlinks(f.Path)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", f.Name, f.Path, err)
		}
		if err := b.add(f.Name, real); err != nil {
			return nil, err
		}
	}
	slices.Sort(b.names)
	return b, nil
}

// add puts path into the allow-list as name, replacing an entry of that name.
func (b *Binaries) add(name, path string) error {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || CheckName(name) != nil {
		return fmt.Errorf("loader %s: not a regular file with a plain name: %w", path, errors.Join(err, node.ErrInvalid))
	}
	if _, dup := b.byName[name]; !dup {
		b.names = append(b.names, name)
	}
	b.byName[name] = Binary{Name: name, RealPath: path, Size: fi.Size(), ModTime: fi.ModTime()}
	return nil
}

func isBootable(name string) bool {
	for _, s := range bootableSuffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// Dir is the directory the binaries were found in.
func (b *Binaries) Dir() string { return b.dir }

// Names lists the servable names, sorted.
func (b *Binaries) Names() []string { return slices.Clone(b.names) }

// Lookup returns the allow-list entry for name.
func (b *Binaries) Lookup(name string) (Binary, bool) {
	bin, ok := b.byName[name]
	return bin, ok
}

// Open opens the named binary for streaming and returns its current size. The caller
// closes the file. Names outside the allow-list are ErrNotServed: no path is ever built
// from name, so "../" and absolute paths cannot escape.
func (b *Binaries) Open(name string) (*os.File, int64, error) {
	bin, ok := b.byName[name]
	if !ok {
		return nil, 0, fmt.Errorf("open %q: %w", name, ErrNotServed)
	}
	f, err := os.Open(bin.RealPath)
	if err != nil {
		return nil, 0, fmt.Errorf("open ipxe binary %s (%s): %w", name, bin.RealPath, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("stat ipxe binary %s: %w", name, err)
	}
	return f, fi.Size(), nil
}

// CheckName refuses names that are not a plain file name before any lookup: path
// separators, "..", control bytes and overlong names. It is what a TFTP or HTTP request
// says, so it is checked at the edge and counted as an attack, not as a missing file.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("empty file name: %w", node.ErrInvalid)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("file name of %d bytes: %w: longer than %d", len(name), node.ErrForbidden, maxNameLen)
	}
	if name == "." || name == ".." || strings.Contains(name, "..") {
		return fmt.Errorf("file name %q: %w: parent references are refused", name, node.ErrForbidden)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '/' || c == '\\':
			return fmt.Errorf("file name %q: %w: paths are refused, only names of iPXE binaries are served", name, node.ErrForbidden)
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("file name %q: %w: control characters", name, node.ErrForbidden)
		}
	}
	return nil
}
