package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// mountBasics mounts what the kernel does not: /proc, /sys and /dev (devtmpfs, so
// device nodes of disks and NICs appear as their drivers load).
func mountBasics() error {
	mounts := []struct{ source, target, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", m.target, err)
		}
		err := unix.Mount(m.source, m.target, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC, "")
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

// loadModules loads every module in modulesDir/modules.dep, each after the modules it
// depends on, with finit_module(2). A module that fails to load (no such hardware, say)
// is logged and skipped: one missing driver must not stop an install on a machine
// that does not need it.
func loadModules(log *slog.Logger, modulesDir string) (loaded int, err error) {
	f, err := os.Open(filepath.Join(modulesDir, "modules.dep"))
	if err != nil {
		return 0, fmt.Errorf("modules: %w", err)
	}
	defer f.Close()
	deps := map[string][]string{}
	var order []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		order = append(order, mod)
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("modules.dep: %w", err)
	}
	done := map[string]bool{}
	var load func(mod string)
	load = func(mod string) {
		if done[mod] {
			return
		}
		done[mod] = true
		// modules.dep lists the most dependent first: load from the end.
		d := deps[mod]
		for i := len(d) - 1; i >= 0; i-- {
			load(d[i])
		}
		if err := finitModule(filepath.Join(modulesDir, mod)); err != nil {
			log.Warn("module not loaded", slog.String("module", filepath.Base(mod)), slog.Any("err", err))
			return
		}
		loaded++
	}
	for _, mod := range order {
		load(mod)
	}
	return loaded, nil
}

func finitModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// waitFor polls cond every 200 ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
	}
	return true
}

// reboot flushes and restarts the machine. As PID 1 the agent must never exit: the
// kernel would panic with "Attempted to kill init".
func reboot(log *slog.Logger) {
	unix.Sync()
	log.Info("rebooting")
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		log.Error("reboot failed; halting here", slog.Any("err", err))
	}
	for {
		time.Sleep(time.Hour)
	}
}
