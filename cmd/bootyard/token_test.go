package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServe_AShortAdminTokenIsRefusedAtStart(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      string // BOOTYARD_ADMIN_TOKEN
		file     string // <data>/admin-token
		wantFrom string // where the error says the token came from
	}{
		{"--admin-token", []string{"--admin-token", "short"}, "", "", "--admin-token"},
		{"BOOTYARD_ADMIN_TOKEN", nil, "x", "", "BOOTYARD_ADMIN_TOKEN"},
		{"the token file", nil, "", "fifteen-chars-x\n", "admin-token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			t.Setenv("BOOTYARD_ADMIN_TOKEN", tc.env)
			if tc.file != "" {
				if err := os.WriteFile(filepath.Join(data, adminTokenFile), []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var out strings.Builder
			root := newRootCommand(&out, &out)
			root.SetArgs(append(tc.args, "serve", "--data", data, "--listen", "127.0.0.1:0"))
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), "use at least 16") || !strings.Contains(err.Error(), tc.wantFrom) {
				t.Fatalf("serve with a short admin token: %v; want a refusal naming %s", err, tc.wantFrom)
			}
		})
	}
	// Long enough from every source: accepted.
	for _, tc := range []struct{ setting, env string }{{"sixteen-chars-xx", ""}, {"", "sixteen-chars-xx"}} {
		t.Setenv("BOOTYARD_ADMIN_TOKEN", tc.env)
		if tok, _, _, err := loadAdminToken(t.TempDir(), tc.setting); err != nil || tok.Reveal() != "sixteen-chars-xx" {
			t.Errorf("loadAdminToken(%q, env %q) = %v", tc.setting, tc.env, err)
		}
	}
}
