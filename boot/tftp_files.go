package boot

import (
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/bootyard/bootyard/ipxe"
)

// bootFiles keeps one read-only in-memory copy of each served boot file, so a thousand
// machines fetching ipxe.efi at once share one megabyte instead of each holding a file
// descriptor and a read buffer. A request stats the file (one syscall) and the copy is
// reloaded when the file changed (an ipxe package upgrade); transfers in flight keep the
// copy they started with, which the garbage collector frees after the last one ends.
type bootFiles struct {
	bins TFTPFiles

	mu     sync.Mutex
	byName map[string]*bootFile
}

// bootFile is an immutable snapshot of one file. Its bytes are never written after load.
type bootFile struct {
	data []byte
	id   fileID

	asciiOnce sync.Once
	ascii     []byte // the netascii form, made on first use (rare: only old clients ask)
}

// fileID tells whether the file on disk is still the one loaded.
type fileID struct {
	dev, ino uint64
	size     int64
	mod      time.Time
}

func newBootFiles(bins TFTPFiles) *bootFiles {
	return &bootFiles{bins: bins, byName: make(map[string]*bootFile)}
}

func idOf(fi os.FileInfo) fileID {
	id := fileID{size: fi.Size(), mod: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
	}
	return id
}

// get returns the current snapshot of name. Names outside the allow-list are
// ipxe.ErrNotServed (a node.ErrNotFound).
func (c *bootFiles) get(name string) (*bootFile, error) {
	bin, ok := c.bins.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("open %q: %w", name, ipxe.ErrNotServed)
	}
	fi, err := os.Stat(bin.RealPath)
	if err != nil {
		return nil, fmt.Errorf("stat ipxe binary %s: %w", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.byName[name]; f != nil && f.id == idOf(fi) {
		return f, nil
	}
	f, err := c.load(name)
	if err != nil {
		return nil, err
	}
	c.byName[name] = f
	return f, nil
}

// load reads the whole file through the allow-list. A file replaced while it was being
// read (size or identity changed) is read again, so a torn copy is never served.
func (c *bootFiles) load(name string) (*bootFile, error) {
	for range 3 {
		fh, size, err := c.bins.Open(name)
		if err != nil {
			return nil, err
		}
		before, err := fh.Stat()
		if err != nil {
			fh.Close()
			return nil, fmt.Errorf("stat ipxe binary %s: %w", name, err)
		}
		data := make([]byte, size)
		_, err = io.ReadFull(fh, data)
		fh.Close()
		if err != nil {
			continue // shorter than it said: it is being rewritten
		}
		after, err := os.Stat(fh.Name())
		if err != nil || idOf(after) != idOf(before) {
			continue
		}
		return &bootFile{data: data, id: idOf(before)}, nil
	}
	return nil, fmt.Errorf("read ipxe binary %s: it keeps changing while being read", name)
}

// bytes is the content to send in the requested mode.
func (f *bootFile) bytes(netascii bool) []byte {
	if !netascii {
		return f.data
	}
	f.asciiOnce.Do(func() { f.ascii = toNetascii(f.data) })
	return f.ascii
}

// toNetascii applies RFC 764's line-end rule, as a netascii client will undo it: LF
// becomes CR LF and a bare CR becomes CR NUL.
func toNetascii(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/64)
	for _, c := range b {
		switch c {
		case '\n':
			out = append(out, '\r', '\n')
		case '\r':
			out = append(out, '\r', 0)
		default:
			out = append(out, c)
		}
	}
	return out
}
