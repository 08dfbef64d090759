package node

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Secret holds a value that must never reach a log, an event or an API response by accident.
// Reveal is the one way to read it.
type Secret string

func (Secret) String() string               { return "[redacted]" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (Secret) GoString() string             { return "[redacted]" }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// Format covers every fmt verb, including the ones String does not (%d, %x on a
// mistyped format string), so no verb can print the value.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// Reveal returns the secret's value, for the one place that must embed it.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether a value is present.
func (s Secret) IsSet() bool { return s != "" }

// DefaultInstallURL is where the LLMOS installer script lives.
const DefaultInstallURL = "https://get-llmos.1block.ai"

// ClusterSettings are the join settings every node's cloud-init is rendered from.
type ClusterSettings struct {
	ServerURL         string            `json:"serverURL"`
	Token             Secret            `json:"token"`
	InstallURL        string            `json:"installURL"`
	InstallEnv        map[string]string `json:"installEnv,omitempty"` // INSTALL_LLMOS_VERSION, mirror, proxy
	ExtraCloudConfig  string            `json:"extraCloudConfig,omitempty"`
	SSHAuthorizedKeys []string          `json:"sshAuthorizedKeys,omitempty"`
	DefaultImage      string            `json:"defaultImage,omitempty"`
	// WipeOverwrite asks the wipe to overwrite whole disks, not only signatures.
	WipeOverwrite bool `json:"wipeOverwrite"`
	// JoinTurnMinutes caps how long one server may hold the join turn, renewals
	// included; 0 means DefaultJoinTurnLimit.
	JoinTurnMinutes int `json:"joinTurnMinutes,omitempty"`
	// UEFILoader is the site's loader for x86-64 UEFI machines (ipxe or shim); a node's
	// own setting overrides it, and empty means DefaultUEFILoader.
	UEFILoader UEFILoader `json:"uefiLoader,omitempty"`
}

// DefaultJoinTurnLimit is how long one server may hold the join turn when no setting
// says otherwise: a k3s server join with image pulls takes minutes, not half an hour.
const DefaultJoinTurnLimit = 30 * time.Minute

// maxJoinTurnMinutes bounds the setting to a day: a longer cap is no cap.
const maxJoinTurnMinutes = 24 * 60

// JoinTurnLimit is the cap on one server's join turn.
func (c *ClusterSettings) JoinTurnLimit() time.Duration {
	if c.JoinTurnMinutes <= 0 {
		return DefaultJoinTurnLimit
	}
	return time.Duration(c.JoinTurnMinutes) * time.Minute
}

// Redacted is s as it may be shown rather than delivered: the token, every installEnv
// value (proxy URLs carry passwords) and the extra cloud-config (chpasswd, keys) are
// replaced by mask. installEnv keys stay, so an operator still sees what is set. The extra
// cloud-config is dropped rather than masked: renderers parse it as YAML, and a page
// that renders user-data from these settings must not fail on the mask.
func (c ClusterSettings) Redacted(mask string) ClusterSettings {
	if c.Token.IsSet() {
		c.Token = Secret(mask)
	}
	if len(c.InstallEnv) > 0 {
		env := make(map[string]string, len(c.InstallEnv))
		for k := range c.InstallEnv {
			env[k] = mask
		}
		c.InstallEnv = env
	}
	c.ExtraCloudConfig = ""
	return c
}

// redactedSettings has ClusterSettings' fields without its Format and LogValue, so those
// two can print a redacted copy without calling themselves.
type redactedSettings ClusterSettings

// Format prints the settings with their secrets masked, for every fmt verb: a settings
// value in an error or a debug print must not carry a proxy password.
func (c ClusterSettings) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "%+v", redactedSettings(c.Redacted("[redacted]")))
}

// LogValue logs the settings with their secrets masked.
func (c ClusterSettings) LogValue() slog.Value {
	return slog.AnyValue(redactedSettings(c.Redacted("[redacted]")))
}

// SecretValues are the secret strings of s (token, installEnv values, extra
// cloud-config), for scrubbing text that may have picked one up by another road. Values
// shorter than 4 bytes are left out: replacing "1" everywhere would mangle the text
// without protecting anything.
func (c ClusterSettings) SecretValues() []string {
	var out []string
	add := func(v string) {
		if len(v) >= 4 {
			out = append(out, v)
		}
	}
	add(c.Token.Reveal())
	for _, v := range c.InstallEnv {
		add(v)
	}
	add(strings.TrimSpace(c.ExtraCloudConfig))
	return out
}

// ValidateServerURL accepts https://HOST:6443 or https://HOST:9345: LLMOS bootstrap
// exits with "port must be 6443 or 9345" for anything else.
func ValidateServerURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return fmt.Errorf("server URL %q: %w: want https://HOST:6443 or https://HOST:9345", s, ErrInvalid)
	}
	if p := u.Port(); p != "6443" && p != "9345" {
		return fmt.Errorf("server URL %q: %w: port must be 6443 or 9345 (the only ports the LLMOS installer accepts)", s, ErrInvalid)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("server URL %q: %w: no path, query or user info", s, ErrInvalid)
	}
	return nil
}

// NormalizeServerURL validates s and returns the one form that is stored and rendered:
// scheme://host:port, no trailing slash. LLMOS trims a trailing slash itself, but the
// first-boot script appends /ping to the stored value, and k3s never answers "pong" on
// //ping. Any other path is refused rather than dropped: the operator meant something
// Bootyard cannot give them.
func NormalizeServerURL(s string) (string, error) {
	if err := ValidateServerURL(s); err != nil || s == "" {
		return s, err
	}
	u, _ := url.Parse(s) // ValidateServerURL parsed it already
	return u.Scheme + "://" + u.Host, nil
}

// TokenWarning explains why token will not work with LLMOS, or returns "" if nothing is
// known to be wrong. A k3s secure token (K10<CA hash>::<user>:<password>) is what
// `cat /var/lib/rancher/k3s/server/token` prints on an LLMOS server, so it is the token
// an operator is most likely to paste; LLMOS's cluster-info endpoint checks its own
// cluster token and refuses this form, so every joiner would wait on it for ever.
// It is a warning, not a refusal: Bootyard cannot see which token the cluster accepts.
func TokenWarning(token Secret) string {
	t := token.Reveal()
	if strings.HasPrefix(t, "K10") && strings.Contains(t, "::") {
		return "the join token looks like a k3s secure token (K10<CA hash>::server:<secret>); " +
			"LLMOS's cluster-info check rejects that form, so nodes would never join: " +
			"set the LLMOS cluster token (the token: value of /etc/llmos/config.yaml on the first server)"
	}
	return ""
}

// Validate checks every field.
func (c *ClusterSettings) Validate() error {
	if err := ValidateServerURL(c.ServerURL); err != nil {
		return err
	}
	if c.InstallURL != "" {
		u, err := url.Parse(c.InstallURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("install URL %q: %w: want an http(s) URL", c.InstallURL, ErrInvalid)
		}
	}
	for k := range c.InstallEnv {
		if k == "" || strings.ContainsAny(k, "= \t\n'\"$") {
			return fmt.Errorf("install env %q: %w: not a variable name", k, ErrInvalid)
		}
	}
	if c.JoinTurnMinutes < 0 || c.JoinTurnMinutes > maxJoinTurnMinutes {
		return fmt.Errorf("join turn minutes %d: %w: want 1 to %d (0: %s)", c.JoinTurnMinutes, ErrInvalid, maxJoinTurnMinutes, DefaultJoinTurnLimit)
	}
	if _, err := ParseUEFILoader(string(c.UEFILoader)); err != nil {
		return err
	}
	if strings.ContainsAny(c.Token.Reveal(), "\n\r") {
		return fmt.Errorf("token: %w: must be one line", ErrInvalid)
	}
	for _, k := range c.SSHAuthorizedKeys {
		if strings.ContainsAny(k, "\n\r") || !strings.Contains(k, " ") {
			return fmt.Errorf("ssh key %q: %w: want one authorized_keys line", k, ErrInvalid)
		}
	}
	return nil
}

// EffectiveInstallURL falls back to the LLMOS default.
func (c *ClusterSettings) EffectiveInstallURL() string {
	if c.InstallURL == "" {
		return DefaultInstallURL
	}
	return c.InstallURL
}
