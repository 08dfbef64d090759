package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Enter runs fn on an OS thread switched into the named namespace (/run/netns/name), for
// programs outside tests (the demo). Sockets fn opens stay in that namespace.
func Enter(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked, and so dies with this goroutine, unless it is back in
		// its own namespace: no other goroutine may run on a thread left in another one.
		runtime.LockOSThread()
		errc <- enterLocked(name, fn)
	}()
	return <-errc
}

func enterLocked(name string, fn func() error) error {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return fmt.Errorf("netns: open own namespace: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/run/netns", name))
	if err != nil {
		return fmt.Errorf("netns: open %s: %w", name, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("netns: enter %s: %w", name, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		return errors.Join(fnErr, fmt.Errorf("netns: leave %s: %w", name, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}
