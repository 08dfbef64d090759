package disktest

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// ReadCIDATA reads one file from the CIDATA partition of the GPT disk at path, as
// cloud-init on the installed machine would find it. It fails unless the GPT is valid
// with its backup header at the end of a diskSize-byte disk and the filesystem is
// labelled CIDATA.
func ReadCIDATA(path string, diskSize int64, name string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st := file.New(f, true)
	table, err := gpt.Read(st, 512, 512)
	if err != nil {
		return nil, fmt.Errorf("GPT: %w", err)
	}
	if err := table.Verify(st, uint64(diskSize)); err != nil {
		return nil, fmt.Errorf("GPT backup header is not at the disk's end: %w", err)
	}
	for _, p := range table.Partitions {
		if p.Name != "CIDATA" {
			continue
		}
		fs, err := fat16.Read(st, int64(p.Size), int64(p.Start)*512, 512)
		if err != nil {
			return nil, fmt.Errorf("CIDATA filesystem: %w", err)
		}
		if label := strings.TrimSpace(fs.Label()); label != "CIDATA" {
			return nil, fmt.Errorf("CIDATA filesystem labelled %q", label)
		}
		uf, err := fs.OpenFile(name, os.O_RDONLY)
		if err != nil {
			return nil, fmt.Errorf("CIDATA/%s: %w", name, err)
		}
		return io.ReadAll(uf)
	}
	return nil, fmt.Errorf("no CIDATA partition among %d partitions", len(table.Partitions))
}
