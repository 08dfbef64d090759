//go:build linux

package exepages

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Release drops this process's mapping of the executable's pages from every mapping
// chooseMappings allows. The program keeps running from the page cache: each page it
// runs again is mapped back on its first touch. It is meant for once start-up is over.
func Release() (Stats, error) {
	var st Stats
	var err error
	if st.FileBefore, err = rssFile(); err != nil {
		return st, err
	}
	exe, err := self()
	if err != nil {
		return st, err
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return st, fmt.Errorf("release executable pages: %w", err)
	}
	chosen, err := chooseMappings(bytes.NewReader(smaps), exe)
	if err != nil {
		return st, fmt.Errorf("release executable pages: %w", err)
	}
	if len(chosen) == 0 {
		return st, fmt.Errorf("release executable pages: no clean read-only mapping of %s in /proc/self/smaps", exe.Path)
	}
	for _, m := range chosen {
		// A raw syscall: the range is code and data the runtime runs from, never a Go
		// slice, and MADV_DONTNEED only unmaps; the next touch maps the page cache's copy.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.Start), uintptr(m.End-m.Start), unix.MADV_DONTNEED); errno != 0 {
			return st, fmt.Errorf("release executable pages: madvise %x-%x %s: %w", m.Start, m.End, m.Perms, errno)
		}
		st.Released = append(st.Released, m)
	}
	if st.FileAfter, err = rssFile(); err != nil {
		return st, err
	}
	return st, nil
}

// self is the running executable: /proc/self/exe's target and its device and inode.
func self() (Executable, error) {
	path, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return Executable{}, fmt.Errorf("release executable pages: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return Executable{}, fmt.Errorf("release executable pages: stat /proc/self/exe: %w", err)
	}
	return Executable{Path: path, Major: unix.Major(st.Dev), Minor: unix.Minor(st.Dev), Inode: st.Ino}, nil
}

// rssFile is the process's file-backed resident bytes, from /proc/self/status.
func rssFile() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read /proc/self/status: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "RssFile:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/self/status RssFile %q: %w", rest, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc/self/status has no RssFile")
}
