package boot

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// peerEcho is a TFTPGenerated that answers GRUB-style names with the requester's
// address, as machine.GRUBConfigs decides by it, and aliases one absolute path.
type peerEcho struct{}

func (peerEcho) TFTPFile(_ context.Context, name string, peer netip.Addr) ([]byte, string, bool) {
	switch {
	case strings.HasPrefix(name, "/grub/"):
		return []byte("config for " + peer.String() + "\n"), "", true
	case name == "/ipxe.efi":
		return nil, "ipxe.efi", true
	}
	return nil, "", false
}

// TestTFTP_GeneratedAnswersGoToTheirRequesterAndTheRestIsTheAllowList: GRUB's configs are
// answered per source address (two real sources on the namespace's loopback), absolute
// paths reach only allow-listed files, and anything else is refused as before.
func TestTFTP_GeneratedAnswersGoToTheirRequesterAndTheRestIsTheAllowList(t *testing.T) {
	tftpRequireTool(t, "curl")
	lab := newTFTPLab(t, TFTPConfig{Generated: peerEcho{}})
	out := t.TempDir()
	get := func(src, path string) ([]byte, error) {
		dst := filepath.Join(out, strings.NewReplacer("/", "_", ".", "_").Replace(src+path))
		if msg, err := lab.ns.Exec(context.Background(), "curl", "-sS", "--interface", src, "-o", dst, "tftp://127.0.0.1/"+path); err != nil {
			return msg, err
		}
		return os.ReadFile(dst)
	}
	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		got, err := get(src, "/grub/mac/52:54:00:12:34:56.cfg")
		if err != nil || string(got) != "config for "+src+"\n" {
			t.Errorf("from %s: %q, %v; want its own config", src, got, err)
		}
	}
	want, _ := os.ReadFile(filepath.Join(lab.dir, "ipxe.efi"))
	if got, err := get("127.0.0.2", "/ipxe.efi"); err != nil || !bytes.Equal(got, want) {
		t.Errorf("/ipxe.efi: %d bytes, %v; want the %d bytes of ipxe.efi", len(got), err, len(want))
	}
	before := lab.srv.Stats().Refused
	if got, err := get("127.0.0.2", "/etc/passwd"); err == nil {
		t.Errorf("/etc/passwd served: %q", got)
	}
	if st := lab.srv.Stats(); st.Refused != before+1 {
		t.Errorf("refused = %d, want %d: a path the generator does not claim is refused as before", st.Refused, before+1)
	}
}
