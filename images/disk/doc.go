// Package disk puts an OS image on a machine's disk and takes it off again: it streams a
// raw, gzip or zstd image to a block device while verifying its sha256, adds the CIDATA
// partition that carries cloud-init's NoCloud files, and plans and carries out wipes.
//
// Everything here works on an *os.File, so a sparse regular file stands in for a disk in
// tests; only Discard and the sector size differ between a file and a block device.
package disk
