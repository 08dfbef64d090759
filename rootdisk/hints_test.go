package rootdisk

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParse_AcceptsIronicsHintsAndPrintsThemCanonically(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"serial=S123", "serial==s123"},
		{"  SERIAL == S123 ", "serial==s123"},
		{"size>=400G", "size>=400G"},
		{"size>=400", "size>=400G"},
		{"size>=1.5TiB", "size>=1.5T"},
		{"size<960GB", "size<960GB"},
		{"size==100", "size==100G"},
		{"size>100G,size<=2T", "size>100G,size<=2T"},
		{"rotational=False", "rotational==false"},
		{"rotational!=1", "rotational!=true"},
		{"wwn=0x5000C500A1B2C3D4", "wwn==5000c500a1b2c3d4"},
		{"name=sda", "name==/dev/sda"},
		{"name=/dev/nvme0n1", "name==/dev/nvme0n1"},
		{"by_path=pci-0000:00:1f.2-ata-1", "by_path==/dev/disk/by-path/pci-0000:00:1f.2-ata-1"},
		{"model=<in> samsung", "model=<in> samsung"},
		{"model<in>QEMU", "model=<in> qemu"},
		{"vendor=<or> ATA <or> HGST", "vendor=<or> ata <or> hgst"},
		{"model=QEMU  HARDDISK", "model==qemu harddisk"},
		{"size>=10G,serial=b", "serial==b,size>=10G"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			h, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := h.String(); got != tt.want {
				t.Errorf("Parse(%q) = %q, want %q", tt.in, got, tt.want)
			}
			again, err := Parse(h.String())
			if err != nil || again.String() != h.String() {
				t.Errorf("canonical form %q does not parse back to itself: %q, %v", h, again, err)
			}
		})
	}
}

func TestParse_RefusesWhatIsNotAHint(t *testing.T) {
	tests := []struct{ in, why string }{
		{"serial", "want KEY=VALUE"},
		{"=abc", "want KEY=VALUE"},
		{"colour=red", "unknown key"},
		{"size>=lots", "number"},
		{"size>=10Q", "unknown unit"},
		{"size>=-1G", "number"},
		{"size>=1e300", "unknown unit"},
		{"size>=99999999999P", "too large"},
		{"size=<in> 10", "size takes"},
		{"rotational>=true", "rotational takes"},
		{"rotational=maybe", "true or false"},
		{"serial>=A", "serial takes"},
		{"serial=", "empty"},
		{"serial=a\x00b", "control"},
		{"serial=" + strings.Repeat("x", 300), "longer"},
		{strings.Repeat("serial=a,", 17) + "serial=a", "at most"},
		{"vendor=<or>", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("Parse(%q) = %v, want ErrSyntax saying %q", tt.in, err, tt.why)
			}
		})
	}
}

func TestHints_JSONTakesTheTextFormAndIronicsObject(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"serial=S1,size>=10G"`, "serial==s1,size>=10G"},
		{`{"size": ">= 400", "serial": "s== S123", "rotational": false}`, "rotational==false,serial==s123,size>=400G"},
		{`{"size": 100}`, "size==100G"},
		{`{"model": "<in> QEMU"}`, "model=<in> qemu"},
		{`{"vendor": "<or> ATA <or> HGST"}`, "vendor=<or> ata <or> hgst"},
		{`null`, ""},
	}
	for _, tt := range tests {
		var h Hints
		if err := json.Unmarshal([]byte(tt.in), &h); err != nil {
			t.Errorf("unmarshal %s: %v", tt.in, err)
			continue
		}
		if h.String() != tt.want {
			t.Errorf("unmarshal %s = %q, want %q", tt.in, h, tt.want)
		}
		b, _ := json.Marshal(h)
		var back Hints
		if err := json.Unmarshal(b, &back); err != nil || back.String() != h.String() {
			t.Errorf("round trip of %s: %s -> %q, %v", tt.in, b, back, err)
		}
	}
	for _, bad := range []string{`{"colour": "red"}`, `{"size": [1]}`, `"size>=x"`, `[1]`} {
		var h Hints
		if err := json.Unmarshal([]byte(bad), &h); err == nil {
			t.Errorf("unmarshal %s: accepted as %q", bad, h)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"serial=S1", "size>=400G,rotational=false", "model=<in> x", "vendor=<or> a <or> b",
		"by_path=pci-0000:00:1f.2-ata-1", "size==1.5T", "name=sda,wwn=0x5", "size<1KB",
		"wwn=0X0X0", "wwn=0x 0x5", "vendor<or><Or>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(h.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", h, s, err)
		}
		if again.String() != h.String() {
			t.Fatalf("canonical form %q of %q parses to %q", h, s, again)
		}
	})
}
