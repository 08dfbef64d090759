package node_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

const tokenValue = "K10-hunter2-very-secret-token"

func TestSecret_NeverPrintsItsValue(t *testing.T) {
	secret := node.Secret(tokenValue)
	settings := node.ClusterSettings{ServerURL: "https://10.0.0.1:6443", Token: secret}

	var textLog, jsonLog bytes.Buffer
	text := slog.New(slog.NewTextHandler(&textLog, nil))
	js := slog.New(slog.NewJSONHandler(&jsonLog, nil))
	for _, l := range []*slog.Logger{text, js} {
		l.Info("join", "token", secret)
		l.Info("join", slog.Any("token", secret), slog.String("via", "any"))
		l.Info("join", "settings", settings)
		l.Info("join", "settings", &settings)
		l.With("token", secret).Info("with")
		l.Info("join", slog.Group("cluster", "token", secret))
	}

	jsonSecret, err := json.Marshal(secret)
	if err != nil {
		t.Fatal(err)
	}
	jsonSettings, err := json.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}

	outputs := map[string]string{
		"%v":                    fmt.Sprintf("%v", secret),
		"%s":                    fmt.Sprintf("%s", secret),
		"%#v":                   fmt.Sprintf("%#v", secret),
		"%+v":                   fmt.Sprintf("%+v", secret),
		"%q":                    fmt.Sprintf("%q", secret),
		"%x":                    fmt.Sprintf("%x", secret),
		"%d (wrong verb)":       fmt.Sprintf("%d", secret),
		"Sprint":                fmt.Sprint(secret),
		"Errorf %v":             fmt.Errorf("join with %v", secret).Error(),
		"settings %v":           fmt.Sprintf("%v", settings),
		"settings %+v":          fmt.Sprintf("%+v", settings),
		"settings %#v":          fmt.Sprintf("%#v", settings),
		"settings pointer %+v":  fmt.Sprintf("%+v", &settings),
		"slog text":             textLog.String(),
		"slog json":             jsonLog.String(),
		"json.Marshal secret":   string(jsonSecret),
		"json.Marshal settings": string(jsonSettings),
	}
	for name, out := range outputs {
		if strings.Contains(out, tokenValue) || strings.Contains(out, fmt.Sprintf("%x", tokenValue)) {
			t.Errorf("%s leaks the token: %s", name, out)
		}
	}
	for _, name := range []string{"%v", "%s", "%#v", "json.Marshal secret"} {
		if !strings.Contains(outputs[name], "[redacted]") {
			t.Errorf("%s = %q, want [redacted]", name, outputs[name])
		}
	}
	if secret.Reveal() != tokenValue || !secret.IsSet() || node.Secret("").IsSet() {
		t.Fatal("Reveal or IsSet is wrong")
	}
}

func TestValidateServerURL_OnlyTheTwoPortsLLMOSAccepts(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"", true}, // not configured yet
		{"https://10.0.0.1:6443", true},
		{"https://k8s.lab.example:9345", true},
		{"https://[fd00::1]:6443", true},
		{"https://10.0.0.1:6443/", true},
		{"https://10.0.0.1:8443", false},
		{"https://10.0.0.1", false}, // no port
		{"http://10.0.0.1:6443", false},
		{"10.0.0.1:6443", false},
		{"https://:6443", false},
		{"https://10.0.0.1:6443/k8s", false},
		{"https://10.0.0.1:6443?x=1", false},
		{"https://admin:pw@10.0.0.1:6443", false},
		{"://", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			err := node.ValidateServerURL(tt.in)
			if tt.ok && err != nil {
				t.Fatalf("ValidateServerURL(%q) = %v, want nil", tt.in, err)
			}
			if !tt.ok && !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ValidateServerURL(%q) = %v, want ErrInvalid", tt.in, err)
			}
		})
	}
}

func TestClusterSettingsValidate_RefusesWhatWouldBreakTheRenderedScript(t *testing.T) {
	valid := func() node.ClusterSettings {
		return node.ClusterSettings{
			ServerURL:         "https://10.0.0.1:6443",
			Token:             node.Secret(tokenValue),
			InstallURL:        "https://mirror.lab.example/install.sh",
			InstallEnv:        map[string]string{"INSTALL_LLMOS_VERSION": "v0.5.0"},
			SSHAuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA admin@lab"},
		}
	}
	tests := []struct {
		name   string
		change func(c *node.ClusterSettings)
		ok     bool
	}{
		{"valid as built", func(c *node.ClusterSettings) {}, true},
		{"empty settings", func(c *node.ClusterSettings) { *c = node.ClusterSettings{} }, true},
		{"server URL on port 8443", func(c *node.ClusterSettings) { c.ServerURL = "https://10.0.0.1:8443" }, false},
		{"install URL without scheme", func(c *node.ClusterSettings) { c.InstallURL = "mirror.lab.example/install.sh" }, false},
		{"install URL ftp", func(c *node.ClusterSettings) { c.InstallURL = "ftp://mirror/install.sh" }, false},
		{"install env name with =", func(c *node.ClusterSettings) { c.InstallEnv = map[string]string{"A=B": "x"} }, false},
		{"install env name with $", func(c *node.ClusterSettings) { c.InstallEnv = map[string]string{"$(reboot)": "x"} }, false},
		{"empty install env name", func(c *node.ClusterSettings) { c.InstallEnv = map[string]string{"": "x"} }, false},
		{"token on two lines", func(c *node.ClusterSettings) { c.Token = "abc\ndef" }, false},
		{"ssh key on two lines", func(c *node.ClusterSettings) {
			c.SSHAuthorizedKeys = []string{"ssh-ed25519 AAAA a@b\nssh-rsa BBBB c@d"}
		}, false},
		{"ssh key without type", func(c *node.ClusterSettings) { c.SSHAuthorizedKeys = []string{"AAAAC3NzaC1lZDI1NTE5AAAA"} }, false},
		{"join turn of 45 minutes", func(c *node.ClusterSettings) { c.JoinTurnMinutes = 45 }, true},
		{"negative join turn", func(c *node.ClusterSettings) { c.JoinTurnMinutes = -1 }, false},
		{"join turn over a day", func(c *node.ClusterSettings) { c.JoinTurnMinutes = 24*60 + 1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("Validate() = %v, want ErrInvalid", err)
			}
			if err != nil && strings.Contains(err.Error(), tokenValue) {
				t.Fatalf("the error leaks the token: %v", err)
			}
		})
	}
}

func TestEffectiveInstallURL_FallsBackToTheLLMOSDefault(t *testing.T) {
	var c node.ClusterSettings
	if got := c.EffectiveInstallURL(); got != node.DefaultInstallURL {
		t.Fatalf("EffectiveInstallURL() = %q, want %q", got, node.DefaultInstallURL)
	}
	c.InstallURL = "https://mirror/install.sh"
	if got := c.EffectiveInstallURL(); got != c.InstallURL {
		t.Fatalf("EffectiveInstallURL() = %q, want %q", got, c.InstallURL)
	}
}
