package images

import (
	"os"
	"path/filepath"
	"testing"
)

func TestIsConcreteKernel_PicksTheVersionedPackageOfTheMetapackage(t *testing.T) {
	tests := []struct {
		pkg  string
		want bool
	}{
		{"linux-image-6.1.0-56-amd64", true},
		{"linux-image-6.12.48+deb13-amd64", true},
		{"linux-image-amd64", false},
		{"linux-image-cloud-amd64", false},
		{"linux-image-6.1.0-56-arm64", false},
		{"linux-headers-6.1.0-56-amd64", false},
	}
	for _, tt := range tests {
		if got := isConcreteKernel(tt.pkg); got != tt.want {
			t.Errorf("isConcreteKernel(%q) = %v, want %v", tt.pkg, got, tt.want)
		}
	}
}

func TestFindKernel_ReadsBookwormAndTrixieLayouts(t *testing.T) {
	tests := []struct {
		name       string
		modulesDir string // relative to the root; empty: no modules at all
		wantErr    bool
	}{
		{"bookworm: /lib/modules", "lib/modules/6.1.0-56-amd64", false},
		{"trixie: /usr/lib/modules", "usr/lib/modules/6.1.0-56-amd64", false},
		{"no modules", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "boot"), 0o755)
			os.WriteFile(filepath.Join(root, "boot", "vmlinuz-6.1.0-56-amd64"), []byte("kernel"), 0o644)
			if tt.modulesDir != "" {
				os.MkdirAll(filepath.Join(root, tt.modulesDir, "kernel"), 0o755)
			}
			k, err := findKernel(root)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (k.Version != "6.1.0-56-amd64" || k.ModulesDir != filepath.Join(root, tt.modulesDir)) {
				t.Errorf("kernel = %+v", k)
			}
		})
	}
	if _, err := findKernel(t.TempDir()); err == nil {
		t.Error("an empty cache reads as a kernel")
	}
}
