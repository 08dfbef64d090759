package node_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

func TestNormalizeServerURL_TrimsTheSlashAndRefusesAPath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{"https://10.0.0.1:6443", "https://10.0.0.1:6443", true},
		{"https://10.0.0.1:6443/", "https://10.0.0.1:6443", true},
		{"https://k8s.lab.example:9345/", "https://k8s.lab.example:9345", true},
		{"https://[fd00::1]:6443/", "https://[fd00::1]:6443", true},
		{"https://10.0.0.1:6443/k8s", "", false},
		{"https://10.0.0.1:6443/k8s/", "", false},
		{"http://10.0.0.1:6443/", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := node.NormalizeServerURL(tt.in)
			if !tt.ok {
				if !errors.Is(err, node.ErrInvalid) {
					t.Fatalf("NormalizeServerURL(%q) = %q, %v; want ErrInvalid", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeServerURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestTokenWarning_NamesTheK3sSecureTokenForm(t *testing.T) {
	tests := []struct {
		token string
		warns bool
	}{
		{"K10e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855::server:5f2a9c", true},
		{"K10abc::node:q7z9w", true},
		{"llmos-cluster-token-1234", false},
		{"K10-not-a-secure-token", false}, // K10 alone is a plausible plain token
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			w := node.TokenWarning(node.Secret(tt.token))
			if (w != "") != tt.warns {
				t.Fatalf("TokenWarning(%q) = %q, want a warning: %v", tt.token, w, tt.warns)
			}
			if tt.warns && (!strings.Contains(w, "cluster-info") || strings.Contains(w, "5f2a9c") || strings.Contains(w, "q7z9w")) {
				t.Fatalf("warning %q must give the reason and never echo the token", w)
			}
		})
	}
}

func TestJoinTurnLimit_DefaultsToThirtyMinutes(t *testing.T) {
	var c node.ClusterSettings
	if got := c.JoinTurnLimit(); got != 30*time.Minute {
		t.Errorf("default JoinTurnLimit = %v, want 30m", got)
	}
	c.JoinTurnMinutes = 45
	if got := c.JoinTurnLimit(); got != 45*time.Minute {
		t.Errorf("JoinTurnLimit with 45 = %v", got)
	}
}
