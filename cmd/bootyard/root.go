package main

import (
	"io"

	"github.com/spf13/cobra"
)

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "bootyard",
		Short:         "Network-boot provisioning for LLMOS clusters",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	cl := &clientFlags{}
	cl.register(root)
	root.AddCommand(newServeCommand(cl), newNodeCommand(cl), newClusterCommand(cl), newImageCommand(cl), newStoreCommand())
	return root
}
