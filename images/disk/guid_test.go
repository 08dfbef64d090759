package disk

import (
	"testing"

	"github.com/google/uuid"
)

func TestCIDATA_PartitionGUIDIsAVersion4UUIDAndDiffersEachTime(t *testing.T) {
	seen := map[string]bool{}
	for range 32 {
		s := partitionGUID()
		u, err := uuid.Parse(s)
		if err != nil {
			t.Fatalf("partitionGUID() = %q: %v", s, err)
		}
		if u.Version() != 4 || u.Variant() != uuid.RFC4122 {
			t.Errorf("%s: version %d variant %s, want 4 and RFC 4122", s, u.Version(), u.Variant())
		}
		seen[s] = true
	}
	if len(seen) != 32 {
		t.Errorf("32 GUIDs, %d distinct", len(seen))
	}
}
