package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/images/disk"
)

// The agent runs without udev, so /dev/disk/by-* and udev's database (where ghw finds
// a disk's model, serial, WWN and bus path) do not exist. readDisks reads the same
// facts from sysfs, where the kernel keeps them, and names the by-path and by-id links
// the way udev's path_id and persistent-storage rules would, so a hint copied from a
// running system's /dev/disk matches here.

// pciAddr is a PCI device's sysfs name (domain:bus:device.function); ataPort an ATA
// port's place in a sysfs path.
var (
	pciAddr = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
	ataPort = regexp.MustCompile(`/ata[0-9]+/`)
)

// readDisks lists every disk under sysBlock (normally /sys/block), removable ones
// included, in kernel name order, with device nodes under devDir, and reads each one's
// identity.
func readDisks(sysBlock, devDir string) ([]agentapi.Disk, error) {
	all, err := disk.ListAllDisks(sysBlock, devDir)
	if err != nil {
		return nil, err
	}
	out := make([]agentapi.Disk, 0, len(all))
	for _, bd := range all {
		d, err := readDisk(filepath.Join(sysBlock, bd.Name), bd)
		if err != nil {
			return nil, fmt.Errorf("disk %s: %w", bd.Name, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func readDisk(dir string, bd disk.BlockDevice) (agentapi.Disk, error) {
	name := bd.Name
	d := agentapi.Disk{
		Name:       name,
		Path:       bd.Path,
		Size:       bd.Size,
		Removable:  bd.Removable,
		Rotational: readTrim(filepath.Join(dir, "queue", "rotational")) == "1",
		Model:      readTrim(filepath.Join(dir, "device", "model")),
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return agentapi.Disk{}, err
	}
	d.Transport = transport(name, real)
	switch d.Transport {
	case "virtio":
		// virtio's device/vendor is the PCI vendor ID, not a name.
		d.Serial = readTrim(filepath.Join(dir, "serial"))
	case "nvme":
		d.Serial = readTrim(filepath.Join(dir, "device", "serial"))
		d.WWN = readTrim(filepath.Join(dir, "wwid"))
	default:
		d.Vendor = readTrim(filepath.Join(dir, "device", "vendor"))
		d.Serial = vpdSerial(filepath.Join(dir, "device", "vpd_pg80"))
		if w, ok := strings.CutPrefix(readTrim(filepath.Join(dir, "device", "wwid")), "naa."); ok {
			d.WWN = "0x" + strings.ToLower(w)
		}
	}
	if p := byPath(real, name, d.Transport); p != "" {
		d.ByPath = "/dev/disk/by-path/" + p
	}
	d.ByID = byID(d)
	return d, nil
}

// transport names the bus from the device's place in sysfs.
func transport(name, real string) string {
	switch {
	case strings.HasPrefix(name, "nvme"):
		return "nvme"
	case strings.Contains(real, "/virtio"):
		if strings.Contains(real, "/host") {
			return "scsi" // virtio-scsi: a SCSI disk behind a virtio HBA
		}
		return "virtio"
	case strings.Contains(real, "/usb"):
		return "usb"
	case strings.HasPrefix(name, "mmcblk"):
		return "mmc"
	case ataPort.MatchString(real):
		return "sata"
	case strings.Contains(real, "/end_device-"):
		return "sas"
	case strings.HasPrefix(name, "sd"):
		return "scsi"
	}
	return ""
}

// byPath is udev's ID_PATH for the common buses: the closest PCI device, then the
// port on it (pci-0000:00:1f.2-ata-1, pci-0000:00:05.0-nvme-1, pci-0000:00:04.0,
// pci-0000:00:03.0-scsi-0:0:0:0).
func byPath(real, name, transport string) string {
	parts := strings.Split(real, "/")
	pci := closestPCI(real)
	if pci == "" || transport == "usb" {
		return ""
	}
	switch transport {
	case "virtio":
		return "pci-" + pci
	case "nvme":
		nsid := readTrim(filepath.Join(real, "nsid"))
		if nsid == "" {
			nsid = "1"
		}
		return "pci-" + pci + "-nvme-" + nsid
	case "sata":
		for _, p := range parts {
			if n, ok := strings.CutPrefix(p, "ata"); ok {
				if _, err := strconv.Atoi(n); err == nil {
					// udev numbers ATA ports from the port's own number, not the
					// kernel's global ataN.
					if port := readTrim(filepath.Join(strings.Join(parts[:indexOf(parts, p)+1], "/"), "ata_port", p, "port_no")); port != "" {
						n = port
					}
					return "pci-" + pci + "-ata-" + n
				}
			}
		}
	case "scsi", "sas":
		if len(parts) >= 3 {
			hctl := parts[len(parts)-3] // .../H:C:T:L/block/sda
			if strings.Count(hctl, ":") == 3 {
				return "pci-" + pci + "-scsi-" + hctl
			}
		}
	}
	return ""
}

// closestPCI is the PCI function nearest to a sysfs device path, as udev's path_id
// takes it.
func closestPCI(real string) string {
	pci := ""
	for _, p := range strings.Split(real, "/") {
		if pciAddr.MatchString(p) {
			pci = p
		}
	}
	return pci
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// byID is what udev's persistent-storage rules link under /dev/disk/by-id.
func byID(d agentapi.Disk) []string {
	under := func(s string) string { return strings.Join(strings.Fields(s), "_") }
	var ids []string
	switch {
	case d.Serial == "":
	case d.Transport == "virtio":
		ids = append(ids, "virtio-"+under(d.Serial))
	case d.Transport == "nvme":
		ids = append(ids, "nvme-"+under(d.Model)+"_"+under(d.Serial))
	case d.Transport == "sata":
		ids = append(ids, "ata-"+under(d.Model)+"_"+under(d.Serial))
	default:
		ids = append(ids, "scsi-"+under(d.Vendor)+"_"+under(d.Model)+"_"+under(d.Serial))
	}
	if strings.HasPrefix(d.WWN, "0x") {
		ids = append(ids, "wwn-"+d.WWN)
	} else if d.Transport == "nvme" && d.WWN != "" {
		ids = append(ids, "nvme-"+d.WWN)
	}
	for i := range ids {
		ids[i] = "/dev/disk/by-id/" + ids[i]
	}
	return ids
}

// vpdSerial reads the unit serial number from SCSI VPD page 0x80 (SPC-4 7.8.15): a
// 4-byte header whose last byte is the length, then the serial, space padded. libata
// answers it from the ATA IDENTIFY data, so SATA disks have it too.
func vpdSerial(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(b[3])
	if 4+n > len(b) {
		n = len(b) - 4
	}
	return string(bytes.TrimSpace(bytes.Trim(b[4:4+n], "\x00")))
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// disksSettled is how long the set of disks must stay the same before the agent
// chooses among them: AHCI ports and NVMe namespaces are scanned asynchronously after
// their drivers load, and a choice made while a disk is still missing could land on
// the wrong one.
const disksSettled = 3 * time.Second

// waitForDisks waits until at least one disk exists and the set has not changed for
// disksSettled, or until timeout.
func (in *installer) waitForDisks(ctx context.Context, timeout time.Duration) {
	var last string
	var since time.Time
	waitFor(ctx, timeout, func() bool {
		disks, err := readDisks(in.sysBlock, in.devDir)
		if err != nil || len(disks) == 0 {
			return false
		}
		var names []string
		for _, d := range disks {
			names = append(names, fmt.Sprintf("%s:%d", d.Name, d.Size))
		}
		now := strings.Join(names, ",")
		if now != last {
			last, since = now, time.Now()
			return false
		}
		return time.Since(since) >= disksSettled
	})
}
