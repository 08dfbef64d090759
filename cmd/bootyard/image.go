package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
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
	var upload bool
	cmd := &cobra.Command{
		Use:   "add NAME --file PATH | --url URL --sha256 HEX | --kind installer --kernel K --initrd I",
		Short: "Add an image to the catalog",
		Long: `Add an image to the catalog.

A disk image is streamed to the machine's disk by the installer agent: raw, or gzip or
zstd compressed (from the name's suffix or the file's first bytes).

  --file PATH   a file in the server's images directory (--images-dir, default
                <data>/images) is added where it is: Bootyard reads it once to take its
                size and sha256; with --sha256 it checks the file against it and refuses
                a mismatch. Any other file is uploaded (a copy lands in the images
                directory, hashed while it is written), and so is every file when the
                server is not on this host, or with --upload. Bootyard never reads or
                serves a file outside its images directory.
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
			var img store.Image
			var err error
			switch {
			case spec.File != "" && (upload || !serverIsLocal(cl.server)):
				img, err = uploadImage(cmd, cl, spec)
			default:
				if spec.File != "" && spec.SHA256 == "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "bootyard: computing the sha256 of %s on the server (about a second per GB)\n", spec.File)
				}
				err = cl.do(cmd.Context(), "POST", "/api/v1/images", spec, &img)
				var se *statusError
				if spec.File != "" && spec.Kind == string(store.ImageDisk) && errors.As(err, &se) && se.Status == http.StatusForbidden {
					fmt.Fprintf(cmd.ErrOrStderr(), "bootyard: %s is outside the server's images directory: uploading a copy into it\n", spec.File)
					img, err = uploadImage(cmd, cl, spec)
				}
			}
			if err != nil {
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
	f.StringVar(&spec.File, "file", "", "image file (in the server's images directory, else uploaded)")
	f.BoolVar(&upload, "upload", false, "upload --file even when the server is on this host")
	f.StringVar(&spec.URL, "url", "", "image URL machines download from (needs --sha256)")
	f.StringVar(&spec.SHA256, "sha256", "", "expected sha256 (hex); checked against --file")
	f.Int64Var(&spec.Size, "size", 0, "size in bytes of a --url image (for progress; optional)")
	f.StringVar(&spec.Format, "format", "", "raw, gzip or zstd (default: from the name or the bytes)")
	f.StringVar(&spec.Kind, "kind", "disk", "disk or installer")
	f.StringVar(&spec.Kernel, "kernel", "", "installer kernel (file or URL)")
	f.StringVar(&spec.Initrd, "initrd", "", "installer initrd (file or URL)")
	f.StringVar(&spec.Cmdline, "cmdline", "", "installer kernel command line")
	f.BoolVar(&spec.Default, "default", false, "make it the cluster's default image")
	f.StringVar(&spec.RootDiskHints, "root-disk-hints", "", `default root-disk hints of nodes installed with it, e.g. "size>=400G,rotational=false"`)
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

// serverIsLocal reports whether the API URL names this host, where a --file path means
// the same file to the server.
func serverIsLocal(server string) bool {
	u, err := url.Parse(server)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(u.Hostname())
	return err == nil && ip.IsLoopback()
}

// uploadImage streams spec.File to PUT /api/v1/images/{name}/file with a progress bar on
// stderr; the server hashes it while writing and checks --sha256.
func uploadImage(cmd *cobra.Command, cl *clientFlags, spec images.Spec) (store.Image, error) {
	f, err := os.Open(spec.File)
	if err != nil {
		return store.Image{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return store.Image{}, err
	}
	if !fi.Mode().IsRegular() {
		return store.Image{}, fmt.Errorf("%s is not a regular file", spec.File)
	}
	q := url.Values{"filename": {filepath.Base(spec.File)}}
	for k, v := range map[string]string{"sha256": spec.SHA256, "format": spec.Format} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if spec.Default {
		q.Set("default", "true")
	}
	// No timeout: an upload of many gigabytes lasts as long as it lasts; the server cuts
	// a stalled one.
	ctx, cancel := context.WithCancel(cmd.Context())
	bar := &progress{r: f, total: fi.Size(), w: cmd.ErrOrStderr(), label: "uploading " + filepath.Base(spec.File)}
	req, err := http.NewRequestWithContext(ctx, "PUT",
		strings.TrimRight(cl.server, "/")+"/api/v1/images/"+url.PathEscape(spec.Name)+"/file?"+q.Encode(), bar)
	if err != nil {
		cancel()
		return store.Image{}, err
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := cl.send(req, cancel)
	bar.finish()
	if err != nil {
		return store.Image{}, err
	}
	defer resp.Body.Close()
	var img store.Image
	if err := json.NewDecoder(resp.Body).Decode(&img); err != nil {
		return store.Image{}, fmt.Errorf("upload %s: decode answer: %w", spec.Name, err)
	}
	return img, nil
}

// progress is a reader that draws a one-line bar as it is read: redrawn when the
// percentage changes, so a fast upload does not flood the terminal.
type progress struct {
	r       io.Reader
	total   int64
	done    int64
	percent int
	drawn   bool
	w       io.Writer
	label   string
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if pct := p.pct(); pct != p.percent || !p.drawn {
		p.percent, p.drawn = pct, true
		const width = 30
		fill := width * pct / 100
		fmt.Fprintf(p.w, "\r%s [%s%s] %3d%% %s / %s", p.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct,
			humanBytes(p.done), humanBytes(p.total))
	}
	return n, err
}

func (p *progress) pct() int {
	if p.total <= 0 {
		return 100
	}
	return int(p.done * 100 / p.total)
}

// finish ends the bar's line.
func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
