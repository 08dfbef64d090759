package node_test

import (
	"testing"

	"github.com/bootyard/bootyard/node"
)

func TestPrintable_ReplacesWhatATerminalOrPageWouldInterpret(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"clean ASCII is kept", "PXEClient:Arch:00007:UNDI:003016", "PXEClient:Arch:00007:UNDI:003016"},
		{"empty", "", ""},
		{"ANSI escape", "PXEClient\x1b[31mred\x1b[0m", "PXEClient?[31mred?[0m"},
		{"bell and NUL", "a\x07b\x00c", "a?b?c"},
		{"newline forging a log line", "host\nlevel=ERROR msg=forged", "host?level=ERROR msg=forged"},
		{"DEL", "a\x7fb", "a?b"},
		{"invalid UTF-8", "a\xff\xfeb", "a??b"},
		{"bidi override", "abc\u202edcba", "abc?dcba"},
		{"zero-width joiner", "a\u200db", "a?b"},
		{"printable non-ASCII is kept", "Grüße 東京", "Grüße 東京"},
		{"C1 control", "a\u0085b", "a?b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := node.Printable(tt.in); got != tt.want {
				t.Errorf("Printable(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := node.PrintableBytes([]byte(tt.in)); got != tt.want {
				t.Errorf("PrintableBytes(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestPrintable_CleanInputCostsNoAllocation(t *testing.T) {
	s := "PXEClient:Arch:00007:UNDI:003016"
	if n := testing.AllocsPerRun(100, func() { _ = node.Printable(s) }); n != 0 {
		t.Errorf("Printable of clean text: %v allocations, want 0", n)
	}
	b := []byte(s)
	if n := testing.AllocsPerRun(100, func() { _ = node.PrintableBytes(b) }); n > 1 {
		t.Errorf("PrintableBytes of clean text: %v allocations, want at most the string itself", n)
	}
}
