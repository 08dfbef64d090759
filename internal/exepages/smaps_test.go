package exepages

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// bootyard is the executable of the crafted smaps below: /usr/bin/bootyard on fe:00,
// inode 1234.
var bootyard = Executable{Path: "/usr/bin/bootyard", Major: 0xfe, Minor: 0, Inode: 1234}

// smapsEntryText is one mapping of /proc/self/smaps as the kernel prints it, with the
// figures that matter to the choice given in kB (the others fixed).
func smapsEntryText(header string, rss, anon, privDirty, swap, locked int) string {
	return header + "\n" + strings.NewReplacer(
		"RSS", strconv.Itoa(rss), "ANON", strconv.Itoa(anon), "PDIRTY", strconv.Itoa(privDirty), "SWAP", strconv.Itoa(swap), "LOCKED", strconv.Itoa(locked),
	).Replace(`Size:              17964 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                 RSS kB
Pss:                 RSS kB
Pss_Dirty:             0 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:       RSS kB
Private_Dirty:    PDIRTY kB
Referenced:          RSS kB
Anonymous:          ANON kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:               SWAP kB
SwapPss:            SWAP kB
Locked:           LOCKED kB
THPeligible:           0
ProtectionKey:         0
VmFlags: rd ex mr mw me dw sd
`)
}

func TestChooseMappings_OnlyCleanReadOnlyPrivateMappingsOfTheExecutable(t *testing.T) {
	const text = "00400000-0148b000 r-xp 00000000 fe:00 1234                               /usr/bin/bootyard"
	for _, tc := range []struct {
		name  string
		smaps string
		exe   Executable
		want  bool
	}{
		{"code, clean", smapsEntryText(text, 9344, 0, 0, 0, 0), bootyard, true},
		{"read-only data, clean", smapsEntryText("0148b000-02a20000 r--p 0108b000 fe:00 1234 /usr/bin/bootyard", 10900, 0, 0, 0, 0), bootyard, true},
		{"code of a binary just built: its page-cache pages still dirty, none of its own", smapsEntryText(text, 9344, 0, 9344, 0, 0), bootyard, true},
		{"RELRO-like: read-only but written by the loader before it was protected",
			smapsEntryText("02a20000-02a4c000 r--p 02620000 fe:00 1234 /usr/bin/bootyard", 176, 176, 176, 0, 0), bootyard, false},
		{"read-only with one private page (a debugger's breakpoint)", smapsEntryText(text, 9344, 4, 4, 0, 0), bootyard, false},
		{"read-only whose private page is swapped out", smapsEntryText(text, 9340, 0, 0, 4, 0), bootyard, false},
		{"writable data, modified", smapsEntryText("02a4c000-02a8e000 rw-p 0264c000 fe:00 1234 /usr/bin/bootyard", 264, 120, 120, 0, 0), bootyard, false},
		{"writable data, not yet modified", smapsEntryText("02a4c000-02a8e000 rw-p 0264c000 fe:00 1234 /usr/bin/bootyard", 264, 0, 0, 0, 0), bootyard, false},
		{"shared mapping of the executable", smapsEntryText("7f0000000000-7f0000100000 r--s 00000000 fe:00 1234 /usr/bin/bootyard", 1024, 0, 0, 0, 0), bootyard, false},
		{"locked pages (mlock)", smapsEntryText(text, 9344, 0, 0, 0, 9344), bootyard, false},
		{"nothing resident", smapsEntryText(text, 0, 0, 0, 0, 0), bootyard, false},
		{"a shared library's code", smapsEntryText("7f1c2a428000-7f1c2a5bd000 r-xp 00028000 fe:00 5678 /usr/lib/x86_64-linux-gnu/libc.so.6", 1200, 0, 0, 0, 0), bootyard, false},
		{"bbolt's read-only mmap", smapsEntryText("7f1c20000000-7f1c28000000 r--s 00000000 fe:00 9012 /var/lib/bootyard/bootyard.db", 512, 0, 0, 0, 0), bootyard, false},
		{"the heap", smapsEntryText("c000000000-c004000000 rw-p 00000000 00:00 0", 20000, 20000, 20000, 0, 0), bootyard, false},
		{"anonymous read-only memory", smapsEntryText("7f1c30000000-7f1c30100000 r--p 00000000 00:00 0", 64, 0, 0, 0, 0), bootyard, false},
		{"the vDSO", smapsEntryText("7ffd4b7f0000-7ffd4b7f2000 r-xp 00000000 00:00 0                          [vdso]", 8, 0, 0, 0, 0), bootyard, false},
		{"same path, other device and inode (an overlay's upper name)", smapsEntryText(text, 9344, 0, 0, 0, 0),
			Executable{Path: "/usr/bin/bootyard", Major: 0, Minor: 0x2a, Inode: 99}, true},
		{"same device and inode, other path (an overlay's lower name)", smapsEntryText(text, 9344, 0, 0, 0, 0),
			Executable{Path: "/merged/usr/bin/bootyard", Major: 0xfe, Minor: 0, Inode: 1234}, true},
		{"another file altogether", smapsEntryText(text, 9344, 0, 0, 0, 0),
			Executable{Path: "/usr/bin/other", Major: 0xfe, Minor: 0, Inode: 4321}, false},
		{"a replaced executable: path with spaces and (deleted)",
			smapsEntryText("00400000-0148b000 r-xp 00000000 103:02 77 /opt/my tools/bootyard (deleted)", 9344, 0, 0, 0, 0),
			Executable{Path: "/opt/my tools/bootyard (deleted)", Major: 0x103, Minor: 2, Inode: 1}, true},
		{"a mapping whose figures lack Anonymous cannot be vouched for",
			strings.Replace(smapsEntryText(text, 9344, 0, 0, 0, 0), "Anonymous:", "Anon_other:", 1), bootyard, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chooseMappings(strings.NewReader(tc.smaps), tc.exe)
			if err != nil {
				t.Fatal(err)
			}
			if (len(got) == 1) != tc.want || len(got) > 1 {
				t.Fatalf("chose %+v, want chosen=%v", got, tc.want)
			}
		})
	}
}

// TestChooseMappings_AWholeProcess reads a cgo build's smaps: code and read-only data of
// the executable are chosen, in order and with their sizes; its RELRO, its data, the
// heap, the stack and libc are not.
func TestChooseMappings_AWholeProcess(t *testing.T) {
	smaps := smapsEntryText("00400000-0148b000 r-xp 00000000 fe:00 1234 /usr/bin/bootyard", 9344, 0, 0, 0, 0) +
		smapsEntryText("0148b000-02a20000 r--p 0108b000 fe:00 1234 /usr/bin/bootyard", 10900, 0, 0, 0, 0) +
		smapsEntryText("02a20000-02a4c000 r--p 02620000 fe:00 1234 /usr/bin/bootyard", 176, 176, 176, 0, 0) +
		smapsEntryText("02a4c000-02a8e000 rw-p 0264c000 fe:00 1234 /usr/bin/bootyard", 264, 120, 120, 0, 0) +
		smapsEntryText("02a8e000-02ad0000 rw-p 00000000 00:00 0                                  [heap]", 100, 100, 100, 0, 0) +
		smapsEntryText("c000000000-c004000000 rw-p 00000000 00:00 0", 20000, 20000, 20000, 0, 0) +
		smapsEntryText("7f1c2a428000-7f1c2a5bd000 r-xp 00028000 fe:00 5678 /usr/lib/x86_64-linux-gnu/libc.so.6", 1200, 0, 0, 0, 0) +
		smapsEntryText("7ffd4b700000-7ffd4b721000 rw-p 00000000 00:00 0                          [stack]", 40, 40, 40, 0, 0)
	got, err := chooseMappings(strings.NewReader(smaps), bootyard)
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{Start: 0x400000, End: 0x148b000, Perms: "r-xp", Offset: 0, Rss: 9344 << 10},
		{Start: 0x148b000, End: 0x2a20000, Perms: "r--p", Offset: 0x108b000, Rss: 10900 << 10},
	}
	if !slices.Equal(got, want) {
		t.Errorf("chose %+v, want %+v", got, want)
	}
}

func TestChooseMappings_MalformedTextIsAnError(t *testing.T) {
	for _, smaps := range []string{
		"Rss: 4 kB\n", // a field before any mapping
		"zz-0148b000 r-xp 00000000 fe:00 1234 /usr/bin/bootyard\n",
		"0148b000-00400000 r-xp 00000000 fe:00 1234 /usr/bin/bootyard\n", // ends before it starts
		"00400000-0148b000 r-xp 00000000 fe00 1234 /usr/bin/bootyard\n",  // no major:minor
		"00400000-0148b000 r-xp 00000000 fe:00 1234 /usr/bin/bootyard\nRss: many kB\n",
	} {
		if got, err := chooseMappings(strings.NewReader(smaps), bootyard); err == nil {
			t.Errorf("%q: chose %+v and no error", smaps, got)
		}
	}
}
