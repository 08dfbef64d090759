package images_test

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/images/agenttest"
	"github.com/bootyard/bootyard/images/disk/disktest"
)

// TestAgentQEMU_InspectsThreeBusesAndInstallsOnlyWhereTheHintsSay boots one machine
// with a virtio-blk, an NVMe and a SATA disk of different sizes and serials, two NICs
// and QEMU's in-band IPMI device: an inspection reports each exactly and writes
// nothing; installs with a serial= and a size>= hint land on that disk and leave the
// others byte-for-byte as they were; an ambiguous hint fails naming both candidates.
func TestAgentQEMU_InspectsThreeBusesAndInstallsOnlyWhereTheHintsSay(t *testing.T) {
	requireQEMU(t)
	dir := t.TempDir()
	k, initramfs := agentInitramfs(t, dir)
	img := newTestImage(t, dir, 16*mib)
	image, sum, partEnd, wantPart := img.bytes, img.sum, img.partEnd, img.wantPart

	disks := []struct {
		name, serial, transport, byPathPrefix string
		size                                  int64
		path                                  string
	}{
		{"vda", "VIRT-1", "virtio", "/dev/disk/by-path/pci-0000:00:", 64 * mib, ""},
		{"nvme0n1", "NVME-1", "nvme", "/dev/disk/by-path/pci-0000:00:", 96 * mib, ""},
		{"sda", "SATA-1", "sata", "/dev/disk/by-path/pci-0000:00:", 128 * mib, ""},
	}
	for i := range disks {
		disks[i].path = filepath.Join(dir, disks[i].name+".img")
		if err := disktest.SparseDisk(disks[i].path, disks[i].size); err != nil {
			t.Fatal(err)
		}
	}
	const secondMAC = "52:54:00:77:00:11"
	vm := &agentVM{kernel: k.Vmlinuz, initramfs: initramfs, disk: disks[0].path, dir: dir,
		diskArgs: func(p string) []string {
			return []string{"-drive", "if=none,id=d0,format=raw,cache=unsafe,file=" + p, "-device", "virtio-blk-pci,drive=d0,serial=VIRT-1"}
		},
		extraArgs: []string{
			"-drive", "if=none,id=d1,format=raw,cache=unsafe,file=" + disks[1].path, "-device", "nvme,drive=d1,serial=NVME-1",
			"-drive", "if=none,id=d2,format=raw,cache=unsafe,file=" + disks[2].path, "-device", "ich9-ahci,id=sata0",
			"-device", "ide-hd,drive=d2,bus=sata0.0,serial=SATA-1",
			"-netdev", "tap,id=n1,ifname=tap1,script=no,downscript=no", "-device", "e1000,netdev=n1,mac=" + secondMAC,
			"-device", "ipmi-bmc-sim,id=bmc0", "-device", "isa-ipmi-kcs,bmc=bmc0",
		}}
	vm.attach(t, "hint", 0, 2) // the disks are made above

	token := hex.EncodeToString(randomBytes(32))
	api := agenttest.New(token, agenttest.Task{Node: "hw-1", Action: agentapi.Inspect}, image)
	startServices(t, vm.ns, api)
	sums := func() [][32]byte {
		var out [][32]byte
		for _, d := range disks {
			out = append(out, sha256.Sum256(readFile(t, d.path)))
		}
		return out
	}

	t.Run("inspection reports every disk and NIC and writes nothing", func(t *testing.T) {
		before := sums()
		took := vm.boot(t, token, nil) // powers off: QEMU exits
		rep := api.Report()
		if len(rep.Done) != 1 || rep.Done[0] != "inspect" || len(rep.Inventory) != 1 {
			t.Fatalf("done %v, failed %v; agent log:\n%s", rep.Done, rep.Failed, strings.Join(rep.Logs, "\n"))
		}
		t.Logf("inspection: power-on to power-off %s", took.Round(1e9))
		inv := rep.Inventory[0]
		if len(inv.Disks) != len(disks) {
			t.Fatalf("inspected disks %+v, want %d", inv.Disks, len(disks))
		}
		for _, want := range disks {
			i := slices.IndexFunc(inv.Disks, func(d agentapi.Disk) bool { return d.Name == want.name })
			if i < 0 {
				t.Errorf("no %s in %+v", want.name, inv.Disks)
				continue
			}
			got := inv.Disks[i]
			if got.Serial != want.serial || got.Size != want.size || got.Transport != want.transport || got.Removable ||
				!strings.HasPrefix(got.ByPath, want.byPathPrefix) || len(got.ByID) == 0 {
				t.Errorf("%s = %+v; want serial %s, %d bytes, %s, a by-path and a by-id", want.name, got, want.serial, want.size, want.transport)
			}
			t.Logf("%s: %s", want.name, describeDisk(got))
		}
		var macs []string
		for _, n := range inv.NICs {
			macs = append(macs, n.MAC)
			if n.Driver == "" || n.PCIAddress == "" {
				t.Errorf("NIC %+v lacks its driver or PCI address", n)
			}
		}
		if !slices.Contains(macs, vmMAC) || !slices.Contains(macs, secondMAC) {
			t.Errorf("NICs %+v, want %s and %s", inv.NICs, vmMAC, secondMAC)
		}
		if inv.CPU.Threads < 1 || inv.MemoryBytes < 512*mib || inv.System.Vendor != "QEMU" || inv.Firmware.Mode != "bios" {
			t.Errorf("cpu %+v memory %d system %+v firmware %+v", inv.CPU, inv.MemoryBytes, inv.System, inv.Firmware)
		}
		// QEMU 7.2's ipmi-bmc-sim implements no LAN configuration: the agent reaches
		// the BMC through /dev/ipmi0 and gets no address. It must not say the device
		// is missing.
		logs := strings.Join(rep.Logs, "\n")
		if strings.Contains(logs, "no in-band IPMI device") {
			t.Errorf("the agent found no /dev/ipmi0 behind QEMU's KCS interface:\n%s", logs)
		}
		t.Logf("BMC: %+v", inv.BMC)
		if after := sums(); !slices.Equal(before, after) {
			t.Error("the inspection changed a disk")
		}
	})

	install := func(t *testing.T, hints string) (int, agenttest.Report) {
		t.Helper()
		token := hex.EncodeToString(randomBytes(32))
		api.Token = token
		api.Task = agenttest.Task{Node: "hw-1", Action: agentapi.Install, RootDiskHints: hints,
			Image:  &agenttest.Image{Name: "test", URL: "/images/test", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(image)), Format: "raw"},
			CIData: map[string][]byte{"meta-data": []byte("instance-id: hw-1\n"), "user-data": []byte("#cloud-config\nhostname: hw-1\n")}}
		before := sums()
		doneBefore, failedBefore := len(api.Report().Done), len(api.Report().Failed)
		vm.boot(t, token, func() bool { return len(api.Report().Failed) > failedBefore })
		rep := api.Report()
		if len(rep.Done) == doneBefore && len(rep.Failed) == failedBefore {
			t.Fatalf("no report; agent log:\n%s", strings.Join(rep.Logs, "\n"))
		}
		after := sums()
		written := -1
		for i := range disks {
			if before[i] != after[i] {
				if written >= 0 {
					t.Errorf("both %s and %s changed", disks[written].name, disks[i].name)
				}
				written = i
			}
		}
		return written, rep
	}
	for _, tt := range []struct{ hints, want string }{{"serial=NVME-1", "nvme0n1"}, {"size>=120M", "sda"}} {
		t.Run("install with "+tt.hints+" lands on "+tt.want, func(t *testing.T) {
			written, rep := install(t, tt.hints)
			if len(rep.Failed) != 0 || written < 0 || disks[written].name != tt.want {
				t.Fatalf("written %d, failed %v; want only %s written; agent log:\n%s", written, rep.Failed, tt.want, strings.Join(rep.Logs, "\n"))
			}
			d := readFile(t, disks[written].path)
			if got := sha256.Sum256(d[mib:partEnd]); got != wantPart {
				t.Error("the image's partition on the chosen disk does not have the image's sha256")
			}
		})
	}
	t.Run("an ambiguous hint fails naming the candidates and writes nothing", func(t *testing.T) {
		written, rep := install(t, "size>=80M")
		if written >= 0 {
			t.Errorf("%s was written", disks[written].name)
		}
		if len(rep.Failed) == 0 {
			t.Fatalf("no failure reported; done %v", rep.Done)
		}
		msg := rep.Failed[len(rep.Failed)-1]
		for _, want := range []string{"more than one disk matches", "/dev/nvme0n1", "serial=NVME-1", "/dev/sda", "serial=SATA-1"} {
			if !strings.Contains(msg, want) {
				t.Errorf("failure %q does not name %q", msg, want)
			}
		}
		if strings.Contains(msg, "/dev/vda") {
			t.Errorf("failure %q names the disk that did not match", msg)
		}
	})
}

func describeDisk(d agentapi.Disk) string {
	return strings.Join([]string{d.Path, d.Transport, d.Model, d.Serial, d.WWN, d.ByPath, strings.Join(d.ByID, " ")}, " | ")
}
