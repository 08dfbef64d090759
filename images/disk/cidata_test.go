package disk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/bootyard/bootyard/images/disk"
	"github.com/bootyard/bootyard/images/disk/disktest"
)

var nocloudFiles = map[string][]byte{
	"meta-data":      []byte("instance-id: cp-1\nlocal-hostname: cp-1\n"),
	"user-data":      []byte("#cloud-config\nhostname: cp-1\nruncmd:\n  - [sh, -c, 'join --token K10secret']\n"),
	"network-config": []byte("version: 2\nethernets: {}\n"),
}

// installed writes an image made by build (size bytes) to a fresh sparse disk of
// diskSize bytes and returns the disk.
func installed(t *testing.T, build func(string, int64) error, size, diskSize int64) *disk.Device {
	t.Helper()
	img := filepath.Join(t.TempDir(), "image.raw")
	if err := build(img, size); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	d := sparseDisk(t, diskSize)
	if _, err := disk.WriteImage(context.Background(), d, d.Size(), bytes.NewReader(raw),
		disk.Image{Format: disk.FormatRaw, SHA256: sum(raw), Size: size}, nil); err != nil {
		t.Fatal(err)
	}
	return d
}

// readCIDATA reads every file of the FAT filesystem at ext with go-diskfs.
func readCIDATA(t *testing.T, d *disk.Device, ext disk.Extent) (label string, files map[string][]byte) {
	t.Helper()
	fs, err := fat16.Read(file.New(d.File(), true), ext.Length, ext.Offset, 512)
	if err != nil {
		t.Fatalf("read CIDATA filesystem: %v", err)
	}
	entries, err := fs.ReadDir(".")
	if err != nil {
		t.Fatalf("read CIDATA root: %v", err)
	}
	files = map[string][]byte{}
	for _, e := range entries {
		f, err := fs.OpenFile(e.Name(), os.O_RDONLY)
		if err != nil {
			t.Fatalf("open CIDATA/%s: %v", e.Name(), err)
		}
		b, err := io.ReadAll(f)
		if err != nil {
			t.Fatalf("read CIDATA/%s: %v", e.Name(), err)
		}
		files[e.Name()] = b
	}
	return strings.TrimSpace(fs.Label()), files
}

func TestAddCIDATA_GPTImageGetsBackupHeaderAtDiskEndAndCIDATAWithTheFiles(t *testing.T) {
	const imageSize, diskSize = 64 * mib, 256 * mib
	d := installed(t, disktest.GPTImage, imageSize, diskSize)

	ext, err := disk.AddCIDATA(d, imageSize, nocloudFiles)
	if err != nil {
		t.Fatalf("AddCIDATA: %v", err)
	}
	if ext.Offset < imageSize || ext.End() > diskSize-33*512 || ext.Offset%mib != 0 {
		t.Errorf("CIDATA at %+v: want 1 MiB aligned, after the image (%d) and before the backup GPT", ext, imageSize)
	}

	table, err := gpt.Read(file.New(d.File(), true), 512, 512)
	if err != nil {
		t.Fatalf("read GPT back: %v", err)
	}
	if table.RecoveredFromBackup {
		t.Error("primary GPT is invalid; it was recovered from the backup")
	}
	if err := table.Verify(file.New(d.File(), true), uint64(diskSize)); err != nil {
		t.Errorf("GPT backup header is not at the disk's end: %v", err)
	}
	if len(table.Partitions) != 2 || table.Partitions[1].Name != disk.CIDATALabel || int64(table.Partitions[1].Start)*512 != ext.Offset {
		t.Errorf("partitions = %+v, want the image's root then CIDATA at %d", table.Partitions, ext.Offset)
	}
	if old := readDisk(t, d, imageSize-512, 512); bytes.Contains(old, []byte("EFI PART")) {
		t.Error("the image's old backup header is still at the image's end")
	}

	label, files := readCIDATA(t, d, ext)
	if label != disk.CIDATALabel {
		t.Errorf("label = %q, want %q", label, disk.CIDATALabel)
	}
	assertFiles(t, files)

	if _, err := exec.LookPath("sgdisk"); err == nil {
		out, err := exec.Command("sgdisk", "-v", d.Name()).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "No problems found") {
			t.Errorf("sgdisk -v: %v\n%s", err, out)
		}
	} else {
		t.Log("sgdisk not installed (Debian package gdisk): the cross-check with it is skipped")
	}
	mtoolsCheck(t, d, ext)
}

func TestAddCIDATA_MBRImageGetsAPrimaryFATPartition(t *testing.T) {
	const imageSize, diskSize = 32 * mib, 128 * mib
	d := installed(t, disktest.MBRImage, imageSize, diskSize)
	ext, err := disk.AddCIDATA(d, imageSize, nocloudFiles)
	if err != nil {
		t.Fatalf("AddCIDATA: %v", err)
	}
	parts := disk.ReadPartitions(d)
	if len(parts) != 2 || parts[1] != ext || parts[0].Offset != mib {
		t.Errorf("partitions = %+v, want the image's partition then CIDATA %+v", parts, ext)
	}
	if typ := readDisk(t, d, 446+16+4, 1)[0]; typ != 0x0e {
		t.Errorf("second MBR entry has type %#x, want 0x0e (FAT16 LBA)", typ)
	}
	label, files := readCIDATA(t, d, ext)
	if label != disk.CIDATALabel {
		t.Errorf("label = %q, want %q", label, disk.CIDATALabel)
	}
	assertFiles(t, files)
	mtoolsCheck(t, d, ext)
}

func TestAddCIDATA_RefusesWhenNoRoomIsLeft(t *testing.T) {
	tests := []struct {
		name  string
		build func(string, int64) error
	}{
		{"gpt", disktest.GPTImage},
		{"mbr", disktest.MBRImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := installed(t, tt.build, 32*mib, 36*mib)
			if _, err := disk.AddCIDATA(d, 32*mib, nocloudFiles); !errors.Is(err, disk.ErrDiskTooSmall) {
				t.Fatalf("err = %v, want ErrDiskTooSmall", err)
			}
		})
	}
}

func TestAddCIDATA_RefusesAnImageWithoutPartitionTable(t *testing.T) {
	d := sparseDisk(t, 64*mib)
	if _, err := disk.AddCIDATA(d, 0, nocloudFiles); !errors.Is(err, disk.ErrNoPartitionTable) {
		t.Fatalf("err = %v, want ErrNoPartitionTable", err)
	}
}

func assertFiles(t *testing.T, files map[string][]byte) {
	t.Helper()
	if len(files) != len(nocloudFiles) {
		t.Errorf("CIDATA holds %d files, want %d", len(files), len(nocloudFiles))
	}
	for name, want := range nocloudFiles {
		if got, ok := files[name]; !ok || !bytes.Equal(got, want) {
			t.Errorf("CIDATA/%s = %q, want %q", name, got, want)
		}
	}
}

// mtoolsCheck reads the CIDATA filesystem with mtools, an implementation of FAT that
// shares nothing with go-diskfs.
func mtoolsCheck(t *testing.T, d *disk.Device, ext disk.Extent) {
	t.Helper()
	if _, err := exec.LookPath("mtype"); err != nil {
		t.Log("mtools not installed (Debian package mtools): the cross-check with it is skipped")
		return
	}
	img := fmt.Sprintf("%s@@%d", d.Name(), ext.Offset)
	for name, want := range nocloudFiles {
		cmd := exec.Command("mtype", "-i", img, "::"+name)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		got, err := cmd.CombinedOutput()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("mtype ::%s: %v: %q, want %q", name, err, got, want)
		}
	}
	blkidCheck(t, d, ext)
	cmd := exec.Command("mlabel", "-s", "-i", img, "::")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), disk.CIDATALabel) {
		t.Errorf("mlabel -s: %v: %s", err, out)
	}
}

// blkidCheck probes the CIDATA partition as cloud-init's ds-identify does (blkid):
// a vfat filesystem labelled CIDATA.
func blkidCheck(t *testing.T, d *disk.Device, ext disk.Extent) {
	t.Helper()
	if _, err := exec.LookPath("blkid"); err != nil {
		t.Log("blkid not installed (Debian package util-linux): the cross-check with it is skipped")
		return
	}
	out, err := exec.Command("blkid", "-p", "-o", "export", "-O", fmt.Sprint(ext.Offset), "--size", fmt.Sprint(ext.Length), d.Name()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "TYPE=vfat") || !strings.Contains(string(out), "LABEL=CIDATA") {
		t.Errorf("blkid of CIDATA: %v:\n%s", err, out)
	}
}
