package machine

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"

	"github.com/bootyard/bootyard/grub"
	"github.com/bootyard/bootyard/ipxe"
	"github.com/bootyard/bootyard/node"
)

// GRUBConfigs answers what Debian's signed network GRUB asks the TFTP server for: the
// main config, each machine's own config (by state, with the same identity check,
// per-boot token and install transition as the iPXE scripts, because it is the same
// handler with another renderer) and, under absolute paths, the allow-listed files
// (GRUB names every file from the root of its TFTP device: /bootyard-agent-vmlinuz).
type GRUBConfigs struct {
	h    *IPXEHandler
	main []byte
}

// NewGRUBConfigs builds the GRUB side; cfg is as for NewIPXEHandler. Close stops its
// event writer.
func NewGRUBConfigs(cfg IPXEConfig, r *grub.Renderer) (*GRUBConfigs, error) {
	if r == nil {
		return nil, errors.New("machine: GRUB configs need a GRUB renderer")
	}
	cfg.Scripts = r
	h, err := NewIPXEHandler(cfg)
	if err != nil {
		return nil, err
	}
	h.label, h.noun, h.source = "GRUB", "config", "grub"
	return &GRUBConfigs{h: h, main: r.Main()}, nil
}

// Flush waits until every event and boot record queued so far is written.
func (g *GRUBConfigs) Flush() { g.h.Flush() }

// Close writes what is queued and stops the writer. Call it before closing the store.
func (g *GRUBConfigs) Close() { g.h.Close() }

// TFTPFile answers a TFTP read of name from peer. handled is false for names that are
// not GRUB's: the TFTP server then looks name up in its allow-list as usual. A non-empty
// alias asks the server to send that allow-listed file instead; otherwise data is the
// answer.
func (g *GRUBConfigs) TFTPFile(ctx context.Context, name string, peer netip.Addr) (data []byte, alias string, handled bool) {
	switch {
	case name == grub.MainConfig || name == grub.ArchConfig:
		// Both: GRUB's embedded config sources the first that exists, and answering the
		// first saves a refused request (and a warning) on every boot.
		return g.main, "", true
	case strings.HasPrefix(name, grub.MachinePrefix):
		return g.machineConfig(ctx, strings.TrimPrefix(name, grub.MachinePrefix), peer), "", true
	case strings.HasPrefix(name, grub.ModuleListPrefix) && strings.HasSuffix(name, ".lst") && ipxe.CheckName(name[len(grub.ModuleListPrefix):]) == nil:
		// command.lst, fs.lst, crypto.lst, terminal.lst: which module to load for what.
		// The signed GRUB has its modules built in and may load none in lockdown, so the
		// lists are empty: answered, not refused as an attack on every boot.
		return []byte{}, "", true
	case len(name) > 1 && name[0] == '/' && ipxe.CheckName(name[1:]) == nil:
		// /bootyard-agent-vmlinuz: the allow-listed file; anything deeper stays refused.
		return nil, name[1:], true
	}
	return nil, "", false
}

// machineConfig is the config for the MAC named in file ("52:54:00:12:34:56.cfg").
// GRUB shows what it sources, so failures are configs that say why and return, and the
// main config's loop asks again.
func (g *GRUBConfigs) machineConfig(ctx context.Context, file string, peer netip.Addr) []byte {
	raw, ok := strings.CutSuffix(file, grub.MachineSuffix)
	mac, err := node.ParseMAC(raw)
	if !ok || err != nil || mac.IsZero() {
		return []byte("echo 'Bootyard: GRUB asked for " + ipxe.SafeText(truncate(file, 40)) +
			": not a MAC config (want /grub/mac/<mac>.cfg; is net_default_mac or bootyard_mac set?)'\n")
	}
	seen := node.BootInfo{Arch: 0x07, Firmware: "uefi", UserClass: "GRUB", LastSeen: g.h.now()}
	if peer.IsValid() {
		seen.IP = peer.Unmap().String()
	}
	body, code := g.h.answer(ctx, mac, peer.Unmap(), ipxe.PlatformEFI, "x86_64", seen)
	if code != http.StatusOK {
		return []byte("echo 'Bootyard: " + ipxe.SafeText(string(body)) + "'\n")
	}
	return body
}
