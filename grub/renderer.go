package grub

import (
	"bytes"
	"embed"
	"fmt"
	"io"
	"strings"
	"text/template"
	"time"

	"github.com/bootyard/bootyard/ipxe"
	"github.com/bootyard/bootyard/node"
)

//go:embed templates/grub.cfg.tmpl
var templateFS embed.FS

// Names GRUB asks the TFTP server for. Debian's grubnetx64 is built with the prefix
// /grub and an embedded config that sources $prefix/x86_64-efi/grub.cfg if it exists,
// else $prefix/grub.cfg; the main config then asks for $prefix/mac/<mac>.cfg.
const (
	MainConfig    = "/grub/grub.cfg"
	ArchConfig    = "/grub/x86_64-efi/grub.cfg"
	MachinePrefix = "/grub/mac/"
	MachineSuffix = ".cfg"
	// ModuleListPrefix holds the lists GRUB reads at start to autoload modules.
	ModuleListPrefix = "/grub/x86_64-efi/"
	AgentKernel      = "bootyard-agent-vmlinuz"
	AgentInitramfs   = "bootyard-agent-initramfs.gz"
)

// Config is what the renderer needs to know about the appliance.
type Config struct {
	// AdvertiseURL is Bootyard's HTTP base as machines reach it: the agent's files under
	// it (/agent/vmlinuz, /agent/initramfs.gz) are fetched over TFTP instead.
	AdvertiseURL string
	// PollInterval is how long a waiting machine sleeps before asking again (default 10s).
	PollInterval time.Duration
}

// Renderer renders GRUB configs from templates parsed once, at construction. It renders
// the same ipxe.Script values as the iPXE renderer, so one handler decides what a
// machine boots and only the language differs.
type Renderer struct {
	tmpl        *template.Template
	agentBase   string // <advertise>/agent/
	pollSeconds int
	main        []byte
	localBoot   string
}

// NewRenderer parses the templates.
func NewRenderer(cfg Config) (*Renderer, error) {
	base := strings.TrimRight(cfg.AdvertiseURL, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, fmt.Errorf("grub: advertise URL %q: %w: want http://HOST[:PORT]", cfg.AdvertiseURL, node.ErrInvalid)
	}
	tmpl, err := template.New("grub").Option("missingkey=error").ParseFS(templateFS, "templates/grub.cfg.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse grub templates: %w", err)
	}
	poll := 10
	if cfg.PollInterval > 0 {
		poll = max(1, int(cfg.PollInterval.Round(time.Second)/time.Second))
	}
	r := &Renderer{tmpl: tmpl, agentBase: base + "/agent/", pollSeconds: poll, localBoot: string(ipxe.LocalBootConfig())}
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, "main", view{PollSeconds: poll}); err != nil {
		return nil, fmt.Errorf("render grub main config: %w", err)
	}
	r.main = buf.Bytes()
	return r, nil
}

// Main is the config every machine's GRUB reads first; the caller must not modify it.
func (r *Renderer) Main() []byte { return r.main }

// view is what the templates see: every string sanitised, every path and argument quoted.
type view struct {
	MAC, Name, State, Role, Image, Reason string
	Generation                            int
	PollSeconds                           int
	Kernel                                string
	Initrds                               []string
	Args                                  []string
	LocalBoot                             string
}

// Render writes the GRUB config for s.
func (r *Renderer) Render(w io.Writer, s ipxe.Script) error {
	v := view{MAC: s.MAC.String(), Name: ipxe.SafeText(s.Name), State: ipxe.SafeText(string(s.State)),
		Role: ipxe.SafeText(string(s.Role)), Image: ipxe.SafeText(s.Image), Generation: s.Generation,
		PollSeconds: r.pollSeconds, LocalBoot: r.localBoot}
	if v.Image == "" {
		v.Image = "(cluster default)"
	}
	kind := s.Kind
	reason := s.Reason
	if kind == ipxe.KindInstall || kind == ipxe.KindWipe || kind == ipxe.KindInspect {
		if err := r.kernel(&v, s.Install); err != nil {
			kind, reason = ipxe.KindWait, err.Error()
		}
	}
	if reason == "" && kind == ipxe.KindWait {
		reason = waitReason(s)
	}
	v.Reason = ipxe.SafeText(reason)
	if err := r.tmpl.ExecuteTemplate(w, string(kind), v); err != nil {
		return fmt.Errorf("render grub %s config for %s: %w", kind, s.MAC, err)
	}
	return nil
}

func waitReason(s ipxe.Script) string {
	switch {
	case s.State == node.StateDiscovered:
		return "not imported yet: import it to install it"
	case s.State == node.StateDeleting:
		return "being removed from the cluster"
	case s.State == node.StateFailed:
		return "failed: retry it to continue"
	}
	return ""
}

// kernel fills in what an install or wipe boots. Debian's signed GRUB has TFTP but no
// HTTP, so only the agent's own files, which Bootyard also serves over TFTP, can be
// booted; an installer image's kernel (an HTTP URL) cannot.
func (r *Renderer) kernel(v *view, t ipxe.InstallTarget) error {
	if t.Kernel == "" {
		return fmt.Errorf("nothing to boot yet")
	}
	var err error
	if v.Kernel, err = r.tftpPath(t.Kernel); err != nil {
		return err
	}
	for _, i := range t.Initrds {
		p, err := r.tftpPath(i)
		if err != nil {
			return err
		}
		v.Initrds = append(v.Initrds, p)
	}
	for _, a := range strings.Fields(ipxe.SafeLine(t.Cmdline)) {
		// initrd= is for the kernel's EFI stub when iPXE starts it; GRUB hands the
		// initrd over itself.
		if strings.HasPrefix(a, "initrd=") {
			continue
		}
		v.Args = append(v.Args, quote(a))
	}
	return nil
}

// tftpPath maps the agent's HTTP URLs to their TFTP names.
func (r *Renderer) tftpPath(url string) (string, error) {
	switch strings.TrimPrefix(url, r.agentBase) {
	case "vmlinuz":
		return "/" + AgentKernel, nil
	case "initramfs.gz":
		return "/" + AgentInitramfs, nil
	}
	return "", fmt.Errorf("Debian's signed GRUB cannot fetch %s (it has no HTTP): boot this node with the ipxe UEFI loader", ipxe.SafeText(url))
}

// quote makes one GRUB word of s: inside single quotes nothing is special but the
// quote itself, which is closed, escaped and reopened.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
