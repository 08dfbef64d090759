package images

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
)

// InitramfsSpec says what goes into the agent's initramfs.
type InitramfsSpec struct {
	// Agent is the path of the static bootyard-agent binary; it becomes /init.
	Agent string
	// Kernel provides the modules (and their version directory).
	Kernel Kernel
	// Modules to include with their dependencies; AgentModules() when empty.
	Modules []string
}

// InitramfsReport says what a build put in the archive.
type InitramfsReport struct {
	// Modules are the included modules in load order (dependencies first).
	Modules []string
	// Builtin are requested drivers this kernel has built in.
	Builtin []string
	// Bytes is the compressed archive's size.
	Bytes int64
}

// BuildInitramfs writes a gzip-compressed newc cpio archive to w: the agent as /init,
// the modules under /lib/modules/<version>/ with a modules.dep for them, the mount
// points the agent uses, and /dev/console, which the kernel opens for init's stdio
// before any devtmpfs is mounted.
func BuildInitramfs(ctx context.Context, w io.Writer, spec InitramfsSpec) (InitramfsReport, error) {
	var rep InitramfsReport
	agent, err := os.Open(spec.Agent)
	if err != nil {
		return rep, fmt.Errorf("initramfs: agent: %w", err)
	}
	defer agent.Close()
	if err := checkStatic(agent); err != nil {
		return rep, fmt.Errorf("initramfs: agent %s: %w", spec.Agent, err)
	}
	agentInfo, err := agent.Stat()
	if err != nil {
		return rep, fmt.Errorf("initramfs: agent: %w", err)
	}
	want := spec.Modules
	if len(want) == 0 {
		want = AgentModules()
	}
	ordered, data, builtin, err := resolveModules(spec.Kernel.ModulesDir, want)
	if err != nil {
		return rep, fmt.Errorf("initramfs: %w", err)
	}
	rep.Builtin = builtin

	counter := &countingWriter{w: w}
	// Level 6 is gzip's default; the kernel decompresses it in well under a second.
	zw, err := gzip.NewWriterLevel(counter, gzip.DefaultCompression)
	if err != nil {
		return rep, fmt.Errorf("initramfs: %w", err)
	}
	cw := &cpioWriter{w: zw}
	modRoot := filepath.Join("lib/modules", spec.Kernel.Version)
	for _, d := range []string{"dev", "proc", "sys", "tmp", "etc", "lib", "lib/modules", modRoot} {
		if err := cw.dir(d); err != nil {
			return rep, fmt.Errorf("initramfs: %w", err)
		}
	}
	if err := cw.entry(cpioEntry{name: "dev/console", mode: cpioCharDev | 0o600, rdevMajor: 5, rdevMinor: 1}); err != nil {
		return rep, fmt.Errorf("initramfs: %w", err)
	}
	if err := cw.file("init", 0o755, agentInfo.Size(), agent); err != nil {
		return rep, fmt.Errorf("initramfs: %w", err)
	}
	dirs := map[string]bool{}
	for _, m := range ordered {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("initramfs: %w", err)
		}
		// Parent directories first: the kernel's unpacker does not create them.
		var parents []string
		for d := filepath.Dir(m.relPath); d != "." && !dirs[d]; d = filepath.Dir(d) {
			parents = append([]string{d}, parents...)
			dirs[d] = true
		}
		for _, d := range parents {
			if err := cw.dir(filepath.Join(modRoot, d)); err != nil {
				return rep, fmt.Errorf("initramfs: %w", err)
			}
		}
		ko := data[m.name]
		if err := cw.file(filepath.Join(modRoot, m.relPath), 0o644, int64(len(ko)), bytes.NewReader(ko)); err != nil {
			return rep, fmt.Errorf("initramfs: %w", err)
		}
		rep.Modules = append(rep.Modules, m.name)
	}
	dep := modulesDep(ordered)
	if err := cw.file(filepath.Join(modRoot, "modules.dep"), 0o644, int64(len(dep)), bytes.NewReader(dep)); err != nil {
		return rep, fmt.Errorf("initramfs: %w", err)
	}
	if err := cw.close(); err != nil {
		return rep, fmt.Errorf("initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return rep, fmt.Errorf("initramfs: %w", err)
	}
	rep.Bytes = counter.n
	return rep, nil
}

// checkStatic refuses a dynamically linked agent: with no libc in the initramfs the
// kernel would fail to exec /init and panic with "No working init found".
func checkStatic(f *os.File) error {
	ef, err := elf.NewFile(f)
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("dynamically linked (build it with CGO_ENABLED=0)")
		}
	}
	if ef.Machine != elf.EM_X86_64 {
		return fmt.Errorf("built for %s, the agent kernel is x86-64", ef.Machine)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
