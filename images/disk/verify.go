package disk

import (
	"bytes"
	"fmt"
	"io"
)

// WipeCheck is the read-back of a wiped disk: whether anything a tool could recognise
// as a partition table or a filesystem is left at either end.
type WipeCheck struct {
	Blank bool
	// Found says what is left when the disk is not blank.
	Found string
}

// VerifyWiped reads dev back after Wipe: no GPT or MBR partition table may be found
// (ReadPartitions, primary or backup), and the first and last MiB, where Wipe zeroes
// every partition-table and primary superblock signature, must read as zeros. Any
// byte there means the wipe did not reach the disk (a cache, a lying controller).
func VerifyWiped(dev *Device) (WipeCheck, error) {
	if parts := ReadPartitions(dev); len(parts) > 0 {
		return WipeCheck{Found: fmt.Sprintf("a partition table with %d partitions", len(parts))}, nil
	}
	buf := make([]byte, edgeSize)
	for _, edge := range []struct {
		name string
		at   int64
	}{{"first MiB", 0}, {"last MiB", max(0, dev.Size()-edgeSize)}} {
		n := min(int64(len(buf)), dev.Size()-edge.at)
		if _, err := dev.ReadAt(buf[:n], edge.at); err != nil && err != io.EOF {
			return WipeCheck{}, fmt.Errorf("read back %s of %s: %w", edge.name, dev.Name(), err)
		}
		if i := bytes.IndexFunc(buf[:n], func(r rune) bool { return r != 0 }); i >= 0 {
			return WipeCheck{Found: fmt.Sprintf("data in the %s at offset %d", edge.name, edge.at+int64(i))}, nil
		}
	}
	return WipeCheck{Blank: true}, nil
}
