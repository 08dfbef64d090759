package boot

import (
	"context"
	"net"
	"net/netip"
)

// TFTPGenerated answers TFTP reads that are not plain allow-listed names: what the
// Secure Boot chain's GRUB asks for (machine.GRUBConfigs). handled false: not its name,
// the allow-list decides; alias: send that allow-listed file; else data is the answer.
type TFTPGenerated interface {
	TFTPFile(ctx context.Context, name string, peer netip.Addr) (data []byte, alias string, handled bool)
}

// generated asks cfg.Generated about name. It returns the answer as a one-off file when
// it answered itself, and otherwise the allow-listed name to look up: name, or its alias.
// It runs on the request loop: a GRUB config costs one store read (and, for a node
// starting its install, one write), like the iPXE script it replaces.
func (s *TFTPServer) generated(ctx context.Context, name string, peer *net.UDPAddr) (string, *bootFile) {
	if s.cfg.Generated == nil {
		return name, nil
	}
	addr, _ := netip.AddrFromSlice(peer.IP)
	data, alias, handled := s.cfg.Generated.TFTPFile(ctx, name, addr.Unmap())
	switch {
	case !handled:
		return name, nil
	case alias != "":
		return alias, nil
	}
	return name, &bootFile{data: data}
}
