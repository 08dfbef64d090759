package images

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteAgentFiles builds the agent's boot files into dir (<data>/agent), as AgentKernel
// and AgentInitramfs: the kernel
// copied from spec.Kernel and the initramfs from BuildInitramfs. Each file is written
// beside its final name and renamed over it, so a running Bootyard never serves half a
// file, and a download in flight keeps reading the old one.
func WriteAgentFiles(ctx context.Context, dir string, spec InitramfsSpec) (InitramfsReport, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return InitramfsReport{}, fmt.Errorf("agent files: %w", err)
	}
	var rep InitramfsReport
	err := replaceFile(filepath.Join(dir, AgentInitramfs), func(w io.Writer) error {
		var err error
		rep, err = BuildInitramfs(ctx, w, spec)
		return err
	})
	if err != nil {
		return rep, err
	}
	err = replaceFile(filepath.Join(dir, AgentKernel), func(w io.Writer) error {
		src, err := os.Open(spec.Kernel.Vmlinuz)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(w, src)
		return err
	})
	return rep, err
}

func replaceFile(path string, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
