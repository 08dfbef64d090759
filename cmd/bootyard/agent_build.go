package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/bootyard/bootyard/images"
)

// newImageBuildAgentCommand is `bootyard image build-agent`: it builds the installer
// agent's kernel and initramfs into <data>/agent/, where `serve` serves them.
func newImageBuildAgentCommand() *cobra.Command {
	var dataDir, agentPath, kernelCache string
	var extraModules []string
	cmd := &cobra.Command{
		Use:   "build-agent",
		Short: "Build the installer agent's kernel and initramfs into <data>/agent",
		Long: `Builds <data>/agent/vmlinuz and <data>/agent/initramfs.gz: Debian's current
linux-image-amd64 kernel (downloaded with apt-get download into --kernel-cache and unpacked
with dpkg -x, once) and an initramfs with bootyard-agent as /init and the NIC and disk
drivers it loads. The agent binary must be static (CGO_ENABLED=0 go build ./cmd/bootyard-agent).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			agent, err := findAgentBinary(agentPath)
			if err != nil {
				return err
			}
			k, err := images.FetchKernel(cmd.Context(), kernelCache, log)
			if err != nil {
				return err
			}
			dir := filepath.Join(dataDir, "agent")
			rep, err := images.WriteAgentFiles(cmd.Context(), dir, images.InitramfsSpec{
				Agent: agent, Kernel: k, Modules: append(images.AgentModules(), extraModules...),
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "agent files in %s: kernel %s, initramfs %d bytes with %d modules\n",
				dir, k.Version, rep.Bytes, len(rep.Modules))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data", "./data", "data directory of `bootyard serve`")
	f.StringVar(&agentPath, "agent", "", "static bootyard-agent binary (default: bootyard-agent beside this program, then in PATH)")
	f.StringVar(&kernelCache, "kernel-cache", ".cache/kernel", "where the Debian kernel package is downloaded and unpacked")
	f.StringSliceVar(&extraModules, "module", nil, "extra kernel module to include with its dependencies (repeatable)")
	return cmd
}

// findAgentBinary returns the explicit path, else bootyard-agent next to this
// executable (bin/ after `make build`), else the one in PATH.
func findAgentBinary(explicit string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("agent binary: %w", err)
		}
		return explicit, nil
	}
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), "bootyard-agent")
		if _, err := os.Stat(beside); err == nil {
			return beside, nil
		}
	}
	if p, err := exec.LookPath("bootyard-agent"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no bootyard-agent binary beside %s or in PATH: build it with CGO_ENABLED=0 go build -o bin/bootyard-agent ./cmd/bootyard-agent, or pass --agent", os.Args[0])
}
