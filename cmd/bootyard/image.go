package main

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/store"
)

func newImageCommand(cl *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Add, list and remove OS images"}
	cmd.AddCommand(newImageAddCommand(cl), newImageListCommand(cl), newImageRemoveCommand(cl), newImageBuildAgentCommand())
	return cmd
}

func newImageAddCommand(cl *clientFlags) *cobra.Command {
	var spec images.Spec
	var output string
	cmd := &cobra.Command{
		Use:   "add NAME --file PATH | --url URL --sha256 HEX | --kind installer --kernel K --initrd I",
		Short: "Add an image to the catalog",
		Long: `Add an image to the catalog.

A disk image is streamed to the machine's disk by the installer agent: raw, or gzip or
zstd compressed (from the name's suffix or the file's first bytes).

  --file PATH   a file on the Bootyard host (a relative path is made absolute here, so run
                this on that host). Bootyard reads it once to take its size and sha256;
                with --sha256 it checks the file against it and refuses a mismatch.
  --url URL     machines download it from there themselves. --sha256 is required:
                Bootyard does not download the image, so it cannot compute one.

An installer image (--kind installer) is a distribution installer that iPXE boots
directly: --kernel and --initrd (files on this host or URLs) and --cmdline; Bootyard adds
ds=nocloud;s=<advertise-url>/nocloud/<mac>/ so the installer finds the node's cloud-init
data (e.g. --cmdline "autoinstall ip=dhcp" for Ubuntu).

--default makes it the cluster's default image (the first image added becomes the
default when there is none).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.Name = args[0]
			for _, p := range []*string{&spec.File, &spec.Kernel, &spec.Initrd} {
				if *p == "" || strings.HasPrefix(*p, "http://") || strings.HasPrefix(*p, "https://") {
					continue
				}
				abs, err := filepath.Abs(*p)
				if err != nil {
					return fmt.Errorf("%s: %w", *p, err)
				}
				*p = abs
			}
			if spec.File != "" && spec.SHA256 == "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "bootyard: computing the sha256 of %s on the server (about a second per GB)\n", spec.File)
			}
			var img store.Image
			if err := cl.do(cmd.Context(), "POST", "/api/v1/images", spec, &img); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), img)
			}
			def := ""
			if img.Default {
				def = ", the cluster default"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added %s: %s%s\n", img.Name, describeImage(img), def)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.File, "file", "", "image file on the Bootyard host")
	f.StringVar(&spec.URL, "url", "", "image URL machines download from (needs --sha256)")
	f.StringVar(&spec.SHA256, "sha256", "", "expected sha256 (hex); checked against --file")
	f.Int64Var(&spec.Size, "size", 0, "size in bytes of a --url image (for progress; optional)")
	f.StringVar(&spec.Format, "format", "", "raw, gzip or zstd (default: from the name or the bytes)")
	f.StringVar(&spec.Kind, "kind", "disk", "disk or installer")
	f.StringVar(&spec.Kernel, "kernel", "", "installer kernel (file or URL)")
	f.StringVar(&spec.Initrd, "initrd", "", "installer initrd (file or URL)")
	f.StringVar(&spec.Cmdline, "cmdline", "", "installer kernel command line")
	f.BoolVar(&spec.Default, "default", false, "make it the cluster's default image")
	f.StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func describeImage(img store.Image) string {
	switch {
	case img.Kind == store.ImageInstaller:
		return "installer, kernel " + img.Kernel + ", initrd " + img.Initrd
	case img.File != "":
		return fmt.Sprintf("%s, %s, sha256 %s, file %s", img.Format, humanBytes(img.Size), img.SHA256, img.File)
	}
	return fmt.Sprintf("%s, sha256 %s, url %s", img.Format, img.SHA256, img.URL)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newImageListCommand(cl *clientFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List images (* marks the cluster default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var imgs []store.Image
			if err := cl.do(cmd.Context(), "GET", "/api/v1/images", nil, &imgs); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), imgs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tFORMAT\tSIZE\tSHA256\tSOURCE")
			for _, img := range imgs {
				name := img.Name
				if img.Default {
					name += "*"
				}
				size, sum, source, format := "-", "-", img.File, string(img.Format)
				if img.Size > 0 {
					size = humanBytes(img.Size)
				}
				if len(img.SHA256) >= 12 {
					sum = img.SHA256[:12]
				}
				switch {
				case img.Kind == store.ImageInstaller:
					source, format = img.Kernel, "-"
				case img.URL != "":
					source = img.URL
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, img.Kind, format, size, sum, source)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func newImageRemoveCommand(cl *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove"},
		Short:   "Remove an image from the catalog (refused while nodes use it; the file stays)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cl.do(cmd.Context(), "DELETE", "/api/v1/images/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", args[0])
			return nil
		},
	}
}
