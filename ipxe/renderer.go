package ipxe

import (
	"embed"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/bootyard/bootyard/node"
)

//go:embed templates/*.ipxe
var templateFS embed.FS

// Config is what the renderer needs to know about the appliance.
type Config struct {
	// AdvertiseURL is Bootyard's HTTP base as machines reach it (http://10.20.0.1:8080).
	AdvertiseURL string
	// PollInterval is how long a waiting machine sleeps before asking again (default 10s).
	PollInterval time.Duration
	// InstallPause is how long the placeholder install script shows its plan (default 10s).
	InstallPause time.Duration
	// LocalBootLoader is the name of the UEFI local-boot loader among the served binaries
	// (LocalBootLoaderName); empty when there is none, and UEFI local boot then "exit"s to
	// the firmware's next boot entry.
	LocalBootLoader string
}

// Renderer renders scripts from templates parsed once, at construction.
type Renderer struct {
	tmpl         *template.Template
	base         string
	loaderURL    string
	pollSeconds  int
	pauseSeconds int
}

// NewRenderer parses the templates and checks the advertise URL.
func NewRenderer(cfg Config) (*Renderer, error) {
	base, err := checkAdvertiseURL(cfg.AdvertiseURL)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New("ipxe").Option("missingkey=error").ParseFS(templateFS, "templates/*.ipxe")
	if err != nil {
		return nil, fmt.Errorf("parse ipxe templates: %w", err)
	}
	for _, k := range []Kind{KindInstall, KindLocalBoot, KindWipe, KindWait, KindInspect} {
		if tmpl.Lookup(string(k)) == nil {
			return nil, fmt.Errorf("parse ipxe templates: no template for %s", k)
		}
	}
	if cfg.LocalBootLoader != "" && CheckName(cfg.LocalBootLoader) != nil {
		return nil, fmt.Errorf("local-boot loader name %q: %w: want a plain file name", cfg.LocalBootLoader, node.ErrInvalid)
	}
	r := &Renderer{tmpl: tmpl, base: base, pollSeconds: seconds(cfg.PollInterval, 10), pauseSeconds: seconds(cfg.InstallPause, 10)}
	if cfg.LocalBootLoader != "" {
		r.loaderURL = base + "/ipxe/" + cfg.LocalBootLoader
	}
	return r, nil
}

func seconds(d time.Duration, def int) int {
	if d <= 0 {
		return def
	}
	return max(1, int(d.Round(time.Second)/time.Second))
}

// checkAdvertiseURL refuses anything that would break a script line: it is pasted
// verbatim into chain commands.
func checkAdvertiseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("advertise URL %q: %w: want http://HOST[:PORT]", s, node.ErrInvalid)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.ContainsAny(s, " \t\r\n$") {
		return "", fmt.Errorf("advertise URL %q: %w: no query, fragment, user, spaces or $", s, node.ErrInvalid)
	}
	return strings.TrimRight(s, "/"), nil
}

// BootURL is the script URL to hand iPXE (as the DHCP boot file name or an embedded
// script): iPXE expands the ${...} settings itself, so one URL serves every machine.
func (r *Renderer) BootURL() string {
	return r.base + "/boot.ipxe?mac=${mac:hexhyp}&platform=${platform}&arch=${buildarch}"
}

// chainURL is the URL a waiting script asks again: the machine's own, with the firmware
// settings still left to iPXE.
func (r *Renderer) chainURL(mac node.MAC) string {
	return r.base + "/boot.ipxe?mac=" + hyphenMAC(mac) + "&platform=${platform}&arch=${buildarch}"
}

// view is what the templates see: the script with every free-text field sanitised.
type view struct {
	Script
	MAC          string
	ChainURL     string
	LoaderURL    string // the UEFI local-boot loader; empty: none
	PollSeconds  int
	PauseSeconds int
}

// Render writes the script for s.
func (r *Renderer) Render(w io.Writer, s Script) error {
	v := view{
		Script:       s,
		MAC:          s.MAC.String(),
		ChainURL:     r.chainURL(s.MAC),
		LoaderURL:    r.loaderURL,
		PollSeconds:  r.pollSeconds,
		PauseSeconds: r.pauseSeconds,
	}
	v.Name = text(s.Name)
	v.Role = node.Role(text(string(s.Role)))
	v.Image = text(s.Image)
	if v.Image == "" {
		v.Image = "(cluster default)"
	}
	if s.Reason == "" {
		s.Reason = waitReason(s.State)
	}
	v.Reason = text(s.Reason)
	v.Install = InstallTarget{Kernel: line(s.Install.Kernel), Cmdline: line(s.Install.Cmdline)}
	for _, i := range s.Install.Initrds {
		v.Install.Initrds = append(v.Install.Initrds, line(i))
	}
	if err := r.tmpl.ExecuteTemplate(w, string(s.Kind), v); err != nil {
		return fmt.Errorf("render %s script for %s: %w", s.Kind, s.MAC, err)
	}
	return nil
}

func waitReason(s node.State) string {
	switch s {
	case node.StateDiscovered:
		return "not imported yet: import it to install it"
	case node.StateDeleting:
		return "being removed from the cluster"
	case node.StateFailed:
		return "failed: retry it to continue"
	}
	return ""
}

func hyphenMAC(m node.MAC) string {
	return strings.ReplaceAll(m.String(), ":", "-")
}

// text makes a value safe on an iPXE echo line: iPXE expands ${...} and treats
// "||", "&&" and newlines as command syntax, so anything but a plain set of characters
// becomes '_'.
func text(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if !textByte(s[i]) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if !textByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func textByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte(" ._:/=,+@()-", c) >= 0
}

// line keeps a command argument on its line: control characters become spaces. URLs
// and command lines are ours (built by Bootyard), so ${...} in them is intended.
func line(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
