package node

import (
	"fmt"
	"net"
)

// MAC is a 48-bit Ethernet hardware address. It is a value type so it can be a map key
// and be compared without allocation on the DHCP hot path.
type MAC [6]byte

// ParseMAC accepts the forms operators paste from switches, BMCs and hypervisors:
// aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff and aabbccddeeff.
// Only 48-bit addresses are accepted: InfiniBand and EUI-64 forms are refused. So are
// group addresses (the I/G bit of the first octet set: broadcast ff:ff:ff:ff:ff:ff,
// multicast 01:00:5e:..): no NIC boots with one, and a node owning the broadcast
// address would match every frame's idea of "any machine".
func ParseMAC(s string) (MAC, error) {
	m, err := parseMAC(s)
	if err != nil {
		return MAC{}, err
	}
	if m.IsGroup() {
		return MAC{}, fmt.Errorf("mac %q: %w: a group (multicast or broadcast) address, not a machine's", s, ErrInvalid)
	}
	return m, nil
}

func parseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) == 12 {
		// Bare hex, as printed by some BMCs and by iPXE's ${mac:hexraw}.
		for i := 0; i < 6; i++ {
			hi, ok1 := fromHex(s[2*i])
			lo, ok2 := fromHex(s[2*i+1])
			if !ok1 || !ok2 {
				return MAC{}, fmt.Errorf("mac %q: %w: not a hardware address", s, ErrInvalid)
			}
			m[i] = hi<<4 | lo
		}
		return m, nil
	}
	hw, err := net.ParseMAC(s)
	if err != nil {
		return MAC{}, fmt.Errorf("mac %q: %w: not a hardware address", s, ErrInvalid)
	}
	if len(hw) != 6 {
		return MAC{}, fmt.Errorf("mac %q: %w: want 6 bytes, got %d", s, ErrInvalid, len(hw))
	}
	copy(m[:], hw)
	return m, nil
}

// MACFromBytes converts a packet's hardware address; ok is false unless it is 6 bytes.
func MACFromBytes(b []byte) (m MAC, ok bool) {
	if len(b) != 6 {
		return MAC{}, false
	}
	copy(m[:], b)
	return m, true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

const hexDigits = "0123456789abcdef"

// String is the stored, canonical form: lower case, colon separated.
func (m MAC) String() string {
	var b [17]byte
	for i, v := range m {
		if i > 0 {
			b[3*i-1] = ':'
		}
		b[3*i] = hexDigits[v>>4]
		b[3*i+1] = hexDigits[v&0xf]
	}
	return string(b[:])
}

// Hex is the bare lower-case form, used in default node names.
func (m MAC) Hex() string {
	var b [12]byte
	for i, v := range m {
		b[2*i] = hexDigits[v>>4]
		b[2*i+1] = hexDigits[v&0xf]
	}
	return string(b[:])
}

// HardwareAddr returns a copy usable with the net package.
func (m MAC) HardwareAddr() net.HardwareAddr { return append(net.HardwareAddr(nil), m[:]...) }

// IsGroup reports whether m is a group address (IEEE 802 I/G bit set): multicast or
// broadcast, never one network card's own address.
func (m MAC) IsGroup() bool { return m[0]&1 == 1 }

// IsZero reports whether m is the all-zero address (unset).
func (m MAC) IsZero() bool { return m == MAC{} }

// MarshalText makes MAC encode as its canonical string in JSON and YAML.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses any accepted form.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
