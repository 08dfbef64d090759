package firmware

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadFirmware_SecureBootFromTheEFIVariable(t *testing.T) {
	tests := []struct {
		name     string
		efi      bool   // /sys/firmware/efi exists
		variable []byte // the SecureBoot file in efivars; nil: absent (another variable is there)
		uefi, sb bool
		wantErr  bool
	}{
		{"BIOS: no efi directory", false, nil, false, false, false},
		{"UEFI, Secure Boot on", true, []byte{6, 0, 0, 0, 1}, true, true, false},
		{"UEFI, Secure Boot off", true, []byte{6, 0, 0, 0, 0}, true, false, false},
		{"UEFI without the variable (no Secure Boot support)", true, nil, true, false, false},
		{"a truncated variable is an error", true, []byte{6, 0, 0, 0}, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			efi := filepath.Join(t.TempDir(), "efi")
			if tt.efi {
				vars := filepath.Join(efi, "efivars")
				if err := os.MkdirAll(vars, 0o755); err != nil {
					t.Fatal(err)
				}
				// Another variable, so efivars looks mounted and no mount is tried.
				if err := os.WriteFile(filepath.Join(vars, "BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c"), []byte{7, 0, 0, 0, 1, 0}, 0o644); err != nil {
					t.Fatal(err)
				}
				if tt.variable != nil {
					if err := os.WriteFile(filepath.Join(vars, secureBootVar), tt.variable, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			f, err := Read(efi)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if f.UEFI != tt.uefi || f.SecureBoot != tt.sb {
				t.Errorf("got %+v, want uefi=%v secureBoot=%v", f, tt.uefi, tt.sb)
			}
		})
	}
}
