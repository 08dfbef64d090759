//go:build linux

package exepages

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// dataCanary lives in the executable's writable data (an initialised package variable),
// a private mapping of the file that the test writes to before the release: released by
// mistake, it would silently read back as the file's bytes.
var dataCanary = [4096]byte{0: 'f', 4095: 'f'}

// TestRelease_GivesBackOnlyCleanReadOnlyPagesAndTheProgramRunsOn releases the test
// binary's own pages and checks what was touched, that the resident file-backed memory
// went down, and that code, the heap, the collector, goroutines and stack traces (which
// read pclntab) all work afterwards.
func TestRelease_GivesBackOnlyCleanReadOnlyPagesAndTheProgramRunsOn(t *testing.T) {
	dataCanary[0], dataCanary[4095] = 'm', 'm' // now a private, modified page of rw-p
	heap := bytes.Repeat([]byte("heap"), 1<<20)
	exePath, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	// The mappings as they are before the release: dropping a page the process wrote
	// would erase the evidence (its Anonymous would read 0 afterwards).
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := parseSmaps(bytes.NewReader(smaps))
	if err != nil {
		t.Fatal(err)
	}
	before := readRssFile(t)

	st, err := Release()
	if err != nil {
		t.Fatal(err)
	}

	after := readRssFile(t)
	t.Logf("RssFile %d KiB before, %d after (Release saw %d and %d); %d mappings released",
		before>>10, after>>10, st.FileBefore>>10, st.FileAfter>>10, len(st.Released))

	// (1) Only private, read-only mappings of the executable with no page of the
	// process's own, checked against the test's own reading of smaps, not Release's. (Run
	// with -buildmode=pie, the executable has a RELRO mapping, r--p with anonymous pages,
	// and this fails if it is released.)
	sawCode := false
	for _, m := range st.Released {
		i := slices.IndexFunc(entries, func(e smapsEntry) bool { return e.start == m.Start && e.end == m.End })
		if i < 0 {
			t.Errorf("released %x-%x, which is no mapping of the process", m.Start, m.End)
			continue
		}
		e := entries[i]
		if e.path != exePath || e.perms[1] == 'w' || e.perms[3] != 'p' || e.fields["Anonymous"] != 0 {
			t.Errorf("released %x-%x %s %s (Anonymous %d): want only private read-only mappings of %s with no anonymous page",
				e.start, e.end, e.perms, e.path, e.fields["Anonymous"], exePath)
		}
		sawCode = sawCode || e.perms == "r-xp"
	}
	for _, e := range entries {
		if e.path == exePath && e.perms[1] != 'w' && e.fields["Anonymous"] > 0 {
			if slices.ContainsFunc(st.Released, func(m Mapping) bool { return m.Start == e.start }) {
				t.Errorf("released %x-%x %s, which held %d anonymous bytes", e.start, e.end, e.perms, e.fields["Anonymous"])
			} else {
				t.Logf("kept %x-%x %s: %d anonymous bytes", e.start, e.end, e.perms, e.fields["Anonymous"])
			}
		}
	}
	if !sawCode {
		t.Errorf("released %+v: the executable's code (r-xp) is not among them", st.Released)
	}

	// (2) The resident file-backed memory went down.
	if after >= before || st.FileAfter >= st.FileBefore {
		t.Errorf("RssFile %d -> %d bytes (Release: %d -> %d): want less after", before, after, st.FileBefore, st.FileAfter)
	}

	// (3) The program runs on, and nothing writable was dropped.
	if dataCanary[0] != 'm' || dataCanary[4095] != 'm' {
		t.Errorf("the modified data page reads %q...%q, want m...m", dataCanary[0], dataCanary[4095])
	}
	if !bytes.Equal(heap, bytes.Repeat([]byte("heap"), 1<<20)) {
		t.Error("the heap changed under the release")
	}
	runsOn(t)
}

// TestRelease_PIEBuildKeepsItsRELRO runs the test above in a position-independent build
// of this package's tests, whose RELRO (pointers the dynamic loader relocated, then made
// read-only) is an r--p mapping of the executable with anonymous pages: released, it
// would revert to unrelocated pointers and crash the process.
func TestRelease_PIEBuildKeepsItsRELRO(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build a PIE test binary")
	}
	bin := filepath.Join(t.TempDir(), "exepages.pie.test")
	if out, err := exec.Command("go", "test", "-c", "-buildmode=pie", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go test -c -buildmode=pie: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-test.v", "-test.run", "^TestRelease_GivesBackOnlyCleanReadOnlyPagesAndTheProgramRunsOn$").CombinedOutput()
	if err != nil || !regexp.MustCompile(`kept [0-9a-f]+-[0-9a-f]+ r--p: [1-9][0-9]* anonymous bytes`).Match(out) {
		t.Errorf("the PIE build: %v, want a pass that kept its RELRO mapping\n%s", err, out)
	}
}

// runsOn exercises what needs the executable's pages back: code run for the first time,
// type data (JSON reflection, regexp), the allocator and collector, a goroutine, and a
// panic's stack trace, which reads function names and lines from pclntab.
func runsOn(t *testing.T) {
	t.Helper()
	type record struct {
		Name  string   `json:"name"`
		Sizes []int    `json:"sizes"`
		Tags  []string `json:"tags,omitempty"`
	}
	b, err := json.Marshal(record{Name: "n1", Sizes: []int{3, 1, 2}})
	if err != nil || string(b) != `{"name":"n1","sizes":[3,1,2]}` {
		t.Errorf("json: %s %v", b, err)
	}
	if !regexp.MustCompile(`^n[0-9]+$`).MatchString("n42") {
		t.Error("regexp does not match")
	}
	var keep [][]byte
	for i := range 1 << 14 {
		keep = append(keep, make([]byte, 1024+i%512))
	}
	runtime.GC()
	if len(keep) != 1<<14 || len(keep[100]) != 1024+100 {
		t.Error("allocations lost")
	}
	sum := make(chan int)
	go func() {
		s := 0
		for i := range 1000 {
			s += i
		}
		sum <- s
	}()
	if got := <-sum; got != 499500 {
		t.Errorf("goroutine summed %d, want 499500", got)
	}
	stack := panicStack()
	if !strings.Contains(stack, "exepages.panicStack") || !strings.Contains(stack, "release_linux_test.go:") {
		t.Errorf("a recovered panic's stack names neither the function nor its file:\n%s", stack)
	}
}

func panicStack() (stack string) {
	defer func() {
		if r := recover(); r != nil {
			stack = string(debug.Stack())
		}
	}()
	panic(errors.New("deliberate"))
}

func readRssFile(t *testing.T) int64 {
	t.Helper()
	n, err := rssFile()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
