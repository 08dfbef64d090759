package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImageBuildAgent_WritesKernelAndInitramfsWhereServeFindsThem(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent and may download Debian's kernel package: skipped with -short")
	}
	data := t.TempDir()
	agentDir := t.TempDir()
	buildAgentFilesWith(t, agentDir) // builds bin + fetches the kernel into the repo's cache
	root, _ := filepath.Abs("../..")
	cmd := newImageBuildAgentCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--data", data, "--agent", filepath.Join(agentDir, "bootyard-agent"), "--kernel-cache", filepath.Join(root, ".cache", "kernel")})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("build-agent: %v\n%s", err, out.String())
	}
	for _, name := range []string{"vmlinuz", "initramfs.gz"} {
		fi, err := os.Stat(filepath.Join(data, "agent", name))
		if err != nil || fi.Size() < 1<<20 {
			t.Errorf("%s: %v (size %v)", name, err, fi)
		}
	}
	if !strings.Contains(out.String(), "modules") {
		t.Errorf("output does not say what was built: %q", out.String())
	}
}

func TestImageBuildAgent_WithoutAnAgentBinarySaysHowToBuildIt(t *testing.T) {
	cmd := newImageBuildAgentCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"--data", t.TempDir(), "--agent", filepath.Join(t.TempDir(), "missing")})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "agent binary") {
		t.Fatalf("err = %v, want it to name the missing agent binary", err)
	}
}
