package main

import (
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// consoles writes every log line to each console of the kernel command line. The
// kernel gives init only the last console= as /dev/console (tty0 with Bootyard's
// arguments), but a serial console is where a remote operator or a test reads.
type consoles struct {
	mu sync.Mutex
	w  []io.Writer
}

func (c *consoles) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.w {
		// A console that fails (an unplugged serial port) must not silence the others.
		w.Write(p)
	}
	return len(p), nil
}

// open replaces the writers with the devices named by console= arguments; it keeps
// the current ones when none of them opens.
func (c *consoles) open(cmdline string) {
	var opened []io.Writer
	seen := map[string]bool{}
	for _, field := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(field, "console=")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(v, ",")
		if name == "" || seen[name] || strings.ContainsAny(name, "/.") {
			continue
		}
		seen[name] = true
		f, err := os.OpenFile("/dev/"+name, os.O_WRONLY|unix.O_NOCTTY, 0)
		if err != nil {
			continue
		}
		opened = append(opened, f)
	}
	if len(opened) == 0 {
		return
	}
	c.mu.Lock()
	c.w = opened
	c.mu.Unlock()
}
