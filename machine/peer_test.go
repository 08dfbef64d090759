package machine

import (
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot"
	"github.com/bootyard/bootyard/store"
)

// newTestIdentity is the identity check on st's leases and a real, empty DHCP sightings
// record, which tests fill as Bootyard's DHCP would.
func newTestIdentity(t testing.TB, st *store.Store, trustUnverified bool) (*Identity, *boot.Sightings) {
	t.Helper()
	seen := boot.NewSightings(0, 0, nil)
	id, err := NewIdentity(IdentityConfig{Leases: st, Sightings: seen, TrustUnverified: trustUnverified})
	if err != nil {
		t.Fatal(err)
	}
	return id, seen
}

// waitUntil polls cond until it holds, failing the test after limit with what it waited
// for: tests wait for a condition, never for a time.
func waitUntil(t testing.TB, limit time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what())
		}
		// Polling interval, not an assertion delay: cond is checked again at once.
		<-time.After(20 * time.Millisecond)
	}
}

func TestPrintable_ReplacesWhatATerminalOrPageWouldInterpret(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text, tabs\tkept", "plain text, tabs\tkept"},
		{"\x1b[31mred\x1b[0m", " [31mred [0m"},
		{"bell\x07 nul\x00 del\x7f", "bell  nul  del "},
		{"line\nbreak\r", "line break "},
		{"bad utf-8 \xff\xfe", "bad utf-8   "},
		{"unicode ✓ ünïcödé", "unicode ✓ ünïcödé"},
		{"bidi \u202e override", "bidi   override"},
	}
	for _, tt := range tests {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
