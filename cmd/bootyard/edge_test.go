package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEdgeOptions_ParseTheTrustedProxiesAndTheMetricsToken(t *testing.T) {
	tests := []struct {
		o       edgeOptions
		wantErr string
		want    int // trusted prefixes
	}{
		{edgeOptions{imageUploadLimit: 1}, "", 0},
		{edgeOptions{imageUploadLimit: 1, trustedProxies: []string{"10.0.0.0/24", "192.0.2.7", "2001:db8::/64"}}, "", 3},
		{edgeOptions{imageUploadLimit: 1, trustedProxies: []string{"proxy.lan"}}, "--trusted-proxies", 0},
		{edgeOptions{imageUploadLimit: 1, metricsToken: "short"}, "--metrics-token", 0},
		{edgeOptions{imageUploadLimit: 0}, "--image-upload-limit", 0},
	}
	for _, tt := range tests {
		got, err := tt.o.parse()
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) || len(got.trustedProxies) != tt.want {
			t.Errorf("parse(%+v) = %+v, %v; want %d prefixes, error %q", tt.o, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestImagesDir_MustNotHoldTheDataDirectory(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	if err := os.MkdirAll(filepath.Join(data, "images"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		imagesDir string
		ok        bool
	}{
		{filepath.Join(data, "images"), true},
		{filepath.Join(root, "images"), true},
		{data, false}, // would serve bootyard.db and admin-token
		{root, false}, // holds data below it
	}
	for _, tt := range tests {
		err := checkImagesDirHoldsNoState(tt.imagesDir, data)
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "contains the data directory")) {
			t.Errorf("images dir %s: %v, want ok=%v", tt.imagesDir, err, tt.ok)
		}
	}
}
