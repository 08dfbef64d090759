package exepages

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Executable identifies the running program's file as /proc/self/maps names it: by its
// path, or by device and inode (either is enough; on some overlay filesystems one of the
// two shows the lower layer's file, and a release that finds nothing is only useless).
type Executable struct {
	Path         string
	Major, Minor uint32
	Inode        uint64
}

// Mapping is one mapping of the executable chosen for release.
type Mapping struct {
	Start, End uint64 // [Start, End) in the process's address space
	Perms      string // as /proc/self/maps shows them, e.g. r-xp
	Offset     uint64 // into the file
	Rss        int64  // bytes resident when chosen
}

// smapsEntry is one mapping of /proc/self/smaps: its header line and its fields in bytes
// (the kB figures; VmFlags and the like are left out).
type smapsEntry struct {
	start, end, offset uint64
	perms              string
	major, minor       uint32
	inode              uint64
	path               string
	fields             map[string]int64
}

// chooseMappings reads smaps text and returns the mappings of exe that may be released:
// private, not writable, and with no page of the process's own in them. A private page
// the process, the dynamic loader or a debugger wrote (RELRO of a cgo or PIE build, a
// breakpoint, a uprobe) shows as Anonymous (or Swap once swapped out) and would revert to
// the file's bytes, so such a mapping is never chosen, and neither is one whose figures
// are missing or that holds locked pages (madvise refuses those).
func chooseMappings(smaps io.Reader, exe Executable) ([]Mapping, error) {
	entries, err := parseSmaps(smaps)
	if err != nil {
		return nil, err
	}
	var chosen []Mapping
	for _, e := range entries {
		if !e.isOf(exe) || !releasable(e) {
			continue
		}
		chosen = append(chosen, Mapping{Start: e.start, End: e.end, Perms: e.perms, Offset: e.offset, Rss: e.fields["Rss"]})
	}
	return chosen, nil
}

func (e smapsEntry) isOf(exe Executable) bool {
	if e.inode == 0 { // anonymous memory, [heap], [stack], [vdso]...
		return false
	}
	return (exe.Path != "" && e.path == exe.Path) ||
		(e.major == exe.Major && e.minor == exe.Minor && e.inode == exe.Inode)
}

func releasable(e smapsEntry) bool {
	if len(e.perms) != 4 || e.perms[1] == 'w' || e.perms[3] != 'p' {
		return false
	}
	// Not Private_Dirty: a file page not yet written back (a binary just built) counts
	// there while it is the page cache's page all the same; Anonymous is the copy-on-write.
	for _, mustBeZero := range []string{"Anonymous", "Swap", "Locked"} {
		v, ok := e.fields[mustBeZero]
		if !ok || v != 0 {
			return false
		}
	}
	return e.fields["Rss"] > 0
}

// parseSmaps splits smaps text into its mappings. A header line is
// "start-end perms offset major:minor inode [path]"; every other line is "Name: value".
func parseSmaps(r io.Reader) ([]smapsEntry, error) {
	var (
		entries []smapsEntry
		cur     *smapsEntry
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" {
			continue
		}
		first, _, _ := strings.Cut(text, " ")
		if !strings.HasSuffix(first, ":") {
			e, err := parseHeader(text)
			if err != nil {
				return nil, fmt.Errorf("smaps line %d: %w", line, err)
			}
			entries = append(entries, e)
			cur = &entries[len(entries)-1]
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("smaps line %d: %q before any mapping", line, text)
		}
		name := strings.TrimSuffix(first, ":")
		fields := strings.Fields(text[len(first):])
		if len(fields) != 2 || fields[1] != "kB" {
			continue // VmFlags, THPeligible, ProtectionKey: not sizes
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("smaps line %d: %s: %w", line, name, err)
		}
		cur.fields[name] = kb << 10
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read smaps: %w", err)
	}
	return entries, nil
}

// parseHeader parses "00400000-0148b000 r-xp 00000000 fe:00 1234    /usr/bin/bootyard".
// The path is the rest of the line after the inode's padding: it may hold spaces, and
// ends in " (deleted)" once the file was replaced, as /proc/self/exe's link then does.
func parseHeader(line string) (smapsEntry, error) {
	e := smapsEntry{fields: map[string]int64{}}
	rest := line
	var tok [5]string
	for i := range tok {
		rest = strings.TrimLeft(rest, " ")
		tok[i], rest, _ = strings.Cut(rest, " ")
	}
	e.path = strings.TrimLeft(rest, " ")
	lo, hi, ok := strings.Cut(tok[0], "-")
	majMin := strings.SplitN(tok[3], ":", 2)
	if !ok || len(majMin) != 2 {
		return e, fmt.Errorf("not a mapping header: %q", line)
	}
	var err error
	parse := func(s string, base, bits int) uint64 {
		v, perr := strconv.ParseUint(s, base, bits)
		if perr != nil && err == nil {
			err = fmt.Errorf("not a mapping header: %q: %w", line, perr)
		}
		return v
	}
	e.start, e.end = parse(lo, 16, 64), parse(hi, 16, 64)
	e.perms = tok[1]
	e.offset = parse(tok[2], 16, 64)
	e.major, e.minor = uint32(parse(majMin[0], 16, 32)), uint32(parse(majMin[1], 16, 32))
	e.inode = parse(tok[4], 10, 64)
	if err == nil && (e.end <= e.start || len(e.perms) != 4) {
		err = fmt.Errorf("not a mapping header: %q", line)
	}
	return e, err
}
