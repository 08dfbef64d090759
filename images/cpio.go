package images

import (
	"fmt"
	"io"
	"strings"
)

// cpioWriter writes the "newc" cpio format (SVR4 without CRC), the only one the kernel
// unpacks as an initramfs: a 110-byte ASCII header per entry, name and data each padded
// to 4 bytes, and a TRAILER!!! entry at the end.
type cpioWriter struct {
	w   io.Writer
	off int64
	ino uint32
	err error
}

// cpio mode bits (the S_IF* values of stat(2)).
const (
	cpioDir     = 0o040000
	cpioRegular = 0o100000
	cpioCharDev = 0o020000
	cpioSymlink = 0o120000
)

type cpioEntry struct {
	name         string
	mode         uint32
	size         int64
	rdevMajor    uint32
	rdevMinor    uint32
	data         io.Reader
	linkTarget   string
	fixedModTime uint32
}

func (c *cpioWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(p)
	c.off += int64(n)
	c.err = err
}

func (c *cpioWriter) pad() {
	if r := c.off % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) entry(e cpioEntry) error {
	name := strings.TrimPrefix(e.name, "/")
	if e.linkTarget != "" {
		e.size = int64(len(e.linkTarget))
	}
	c.ino++
	nlink := 1
	if e.mode&cpioDir != 0 && e.mode&cpioRegular == 0 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, e.mode, 0, 0, nlink, e.fixedModTime, e.size, 0, 0, e.rdevMajor, e.rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name + "\x00"))
	c.pad()
	switch {
	case e.linkTarget != "":
		c.write([]byte(e.linkTarget))
	case e.data != nil:
		if c.err == nil {
			n, err := io.CopyN(c.w, e.data, e.size)
			c.off += n
			if err != nil {
				c.err = fmt.Errorf("cpio %s: %w", name, err)
			}
		}
	}
	c.pad()
	return c.err
}

func (c *cpioWriter) dir(name string) error {
	return c.entry(cpioEntry{name: name, mode: cpioDir | 0o755})
}

func (c *cpioWriter) file(name string, perm uint32, size int64, r io.Reader) error {
	return c.entry(cpioEntry{name: name, mode: cpioRegular | perm, size: size, data: r})
}

func (c *cpioWriter) close() error {
	return c.entry(cpioEntry{name: "TRAILER!!!"})
}
