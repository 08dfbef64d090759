package node

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable returns s with every character that is not printable replaced by '?':
// control bytes (terminal escape sequences, bells, newlines that forge log lines),
// invalid UTF-8, and invisible format characters such as bidi overrides. Text a machine
// sends about itself (DHCP vendor class, hostname, user class) goes through it once, at
// the edge, so nothing downstream (events, `node show`, the live page) ever renders it
// raw. Clean ASCII, the common case, is returned as is, without allocating.
func Printable(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return printableSlow(s)
		}
	}
	return s
}

// PrintableBytes is Printable of a packet's bytes: it allocates the one string the
// caller needs and no more when the bytes are clean ASCII.
func PrintableBytes(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return printableSlow(string(b))
		}
	}
	return string(b)
}

func printableSlow(s string) string {
	var out strings.Builder
	out.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !unicode.IsPrint(r) {
			out.WriteByte('?')
		} else {
			out.WriteString(s[i : i+size])
		}
		i += size
	}
	return out.String()
}
