package images_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/klauspost/compress/zstd"

	"github.com/bootyard/bootyard/boot/netns"
	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/images/agenttest"
	"github.com/bootyard/bootyard/images/disk/disktest"
)

const (
	mib      = 1 << 20
	vmMAC    = "52:54:00:77:00:10"
	serverIP = "10.77.0.1"
	agentIP  = "10.77.0.50"
	apiPort  = "8080"
)

// e2eImageSize is the test image's size: 64 MiB, or BOOTYARD_AGENT_E2E_IMAGE_MIB MiB to
// measure install throughput with a larger image (1024 for the 1 GiB figure).
func e2eImageSize(t *testing.T) int64 {
	v := os.Getenv("BOOTYARD_AGENT_E2E_IMAGE_MIB")
	if v == "" {
		return 64 * mib
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 16 {
		t.Fatalf("BOOTYARD_AGENT_E2E_IMAGE_MIB=%q: want a number of MiB, at least 16", v)
	}
	return int64(n) * mib
}

// agentVM is one QEMU machine booting the agent kernel and initramfs directly, on a tap
// in a test namespace where a DHCP server and a fake Bootyard agent API answer.
type agentVM struct {
	// nic is the QEMU NIC model (virtio-net-pci when empty); diskArgs attach the disk
	// file given to them (a virtio-blk disk when nil).
	nic      string
	diskArgs func(path string) []string
	// noRNG leaves out the virtio-rng device, as on a VM without one.
	noRNG bool
	// extraArgs are more QEMU arguments: more disks and NICs, an IPMI device.
	extraArgs []string
	ns        *netns.NS
	kernel    string
	initramfs string
	disk      string
	dir       string
}

// boot runs the VM until the agent reboots it (QEMU's -no-reboot turns that into an
// exit) or until stop returns true, and returns how long it ran.
func (vm *agentVM) boot(t *testing.T, token string, stop func() bool) time.Duration {
	t.Helper()
	serial := filepath.Join(vm.dir, fmt.Sprintf("serial-%d.log", time.Now().UnixNano()))
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmdline := fmt.Sprintf("console=ttyS0,115200 quiet bootyard.url=http://%s:%s bootyard.token=%s bootyard.mac=%s", serverIP, apiPort, token, vmMAC)
	nic := vm.nic
	if nic == "" {
		nic = "virtio-net-pci"
	}
	diskArgs := []string{"-drive", "file=" + vm.disk + ",format=raw,if=virtio,cache=unsafe"}
	if vm.diskArgs != nil {
		diskArgs = vm.diskArgs(vm.disk)
	}
	args := append([]string{
		"-accel", "tcg", "-m", "1024", "-smp", "1", "-no-reboot",
		"-display", "none", "-monitor", "none", "-serial", "file:" + serial,
		"-kernel", vm.kernel, "-initrd", vm.initramfs, "-append", cmdline,
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
		"-device", nic + ",netdev=n0,mac=" + vmMAC,
	}, diskArgs...)
	args = append(args, vm.extraArgs...)
	if !vm.noRNG {
		// A hardware RNG seeds the kernel's CRNG at once; TCG has no RDRAND.
		args = append(args, "-device", "virtio-rng-pci")
	}
	qemu := vm.ns.Command(ctx, "qemu-system-x86_64", args...)
	var stderr bytes.Buffer
	qemu.Stderr = &stderr
	start := time.Now()
	if err := qemu.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- qemu.Wait() }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			if err != nil && ctx.Err() == nil {
				t.Fatalf("qemu: %v: %s\nserial console:\n%s", err, stderr.Bytes(), tail(serial))
			}
			if ctx.Err() != nil {
				t.Fatalf("the VM did not finish in time\nserial console:\n%s", tail(serial))
			}
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("serial console:\n%s", tail(serial))
				}
			})
			return time.Since(start)
		case <-tick.C:
			if stop != nil && stop() {
				// Only the QEMU this test started, by its PID.
				qemu.Process.Kill()
				<-exited
				return time.Since(start)
			}
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// requireQEMU skips a test that boots QEMU under TCG where it cannot run: without the
// rights for network namespaces, with -short, without qemu-system-x86_64.
func requireQEMU(t *testing.T) {
	t.Helper()
	netns.Require(t)
	if testing.Short() {
		t.Skip("boots QEMU under TCG: skipped with -short")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")
	}
}

// attach creates vm's disk (diskSize bytes, none when 0) and puts it in a new test
// namespace on bridge br0 (serverIP), with taps tap0, tap1... for its NICs.
func (vm *agentVM) attach(t *testing.T, nsName string, diskSize int64, nics int) {
	t.Helper()
	if diskSize > 0 {
		if err := disktest.SparseDisk(vm.disk, diskSize); err != nil {
			t.Fatal(err)
		}
	}
	vm.ns = netns.New(t, nsName)
	vm.ns.AddBridge("br0")
	vm.ns.AddAddr("br0", netip.MustParsePrefix(serverIP+"/24"))
	for i := range nics {
		vm.ns.AddTap(fmt.Sprintf("tap%d", i), "br0")
	}
}

// testImage is a GPT disk image for an install: its bytes and sha256, and the sha256
// of its partition (from 1 MiB to the backup GPT), which an install must put on the
// disk unchanged.
type testImage struct {
	bytes         []byte
	sum, wantPart [32]byte
	partEnd       int64
}

func newTestImage(t *testing.T, dir string, size int64) testImage {
	t.Helper()
	raw := filepath.Join(dir, "image.raw")
	if err := disktest.GPTImage(raw, size); err != nil {
		t.Fatal(err)
	}
	b := readFile(t, raw)
	img := testImage{bytes: b, sum: sha256.Sum256(b), partEnd: size - 33*512}
	img.wantPart = sha256.Sum256(b[mib:img.partEnd])
	return img
}

// startServices runs a DHCP server and api on the namespace's bridge.
func startServices(t *testing.T, ns *netns.NS, api http.Handler) {
	t.Helper()
	var ln net.Listener
	var dhcp *server4.Server
	err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(serverIP, apiPort))
		if err != nil {
			return err
		}
		dhcp, err = server4.NewServer("br0", &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, offerOneAddress)
		return err
	})
	if err != nil {
		t.Fatalf("services in the namespace: %v", err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	go dhcp.Serve()
	t.Cleanup(func() {
		srv.Close()
		dhcp.Close()
	})
}

// offerOneAddress is a minimal DHCP server: every DISCOVER gets agentIP, every REQUEST
// an ACK, broadcast (the client has no address yet).
func offerOneAddress(conn net.PacketConn, _ net.Addr, m *dhcpv4.DHCPv4) {
	var typ dhcpv4.MessageType
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		typ = dhcpv4.MessageTypeAck
	default:
		return
	}
	reply, err := dhcpv4.NewReplyFromRequest(m,
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithYourIP(net.ParseIP(agentIP)),
		dhcpv4.WithServerIP(net.ParseIP(serverIP)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP(serverIP))),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(net.ParseIP(serverIP)),
		dhcpv4.WithLeaseTime(600),
	)
	if err != nil {
		return
	}
	conn.WriteTo(reply.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
}

// agentInitramfs builds the agent's initramfs into dir, with the cached Debian kernel.
func agentInitramfs(t *testing.T, dir string) (images.Kernel, string) {
	t.Helper()
	k := kernel(t)
	initramfs := filepath.Join(dir, "initramfs.gz")
	f, err := os.Create(initramfs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := images.BuildInitramfs(context.Background(), f, images.InitramfsSpec{Agent: agentBinary(t), Kernel: k}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return k, initramfs
}

func TestAgentQEMU_InstallsThenWipesAndReinstallsADiskOverTheNetwork(t *testing.T) {
	netns.Require(t)
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")
	}
	dir := t.TempDir()
	k, initramfs := agentInitramfs(t, dir)

	// The image: a GPT image (64 MiB) with one partition of random bytes, served
	// zstd-compressed, on a disk 192 MiB larger.
	imageSize := e2eImageSize(t)
	diskSize := imageSize + 192*mib
	raw := filepath.Join(dir, "image.raw")
	if err := disktest.GPTImage(raw, imageSize); err != nil {
		t.Fatal(err)
	}
	image, _ := os.ReadFile(raw)
	var zbuf bytes.Buffer
	zw, _ := zstd.NewWriter(&zbuf)
	zw.Write(image)
	zw.Close()
	served := zbuf.Bytes()
	servedSum := sha256.Sum256(served)
	partEnd := imageSize - 33*512
	wantPart := sha256.Sum256(image[mib:partEnd])

	vm := &agentVM{kernel: k.Vmlinuz, initramfs: initramfs, disk: filepath.Join(dir, "disk.img"), dir: dir}
	vm.attach(t, "agt", diskSize, 1)

	joinToken := "K10" + hex.EncodeToString(randomBytes(16)) + "::server:" + hex.EncodeToString(randomBytes(16))
	installToken := hex.EncodeToString(randomBytes(32))
	img := &agenttest.Image{Name: "test", URL: "/images/test", SHA256: hex.EncodeToString(servedSum[:]), Size: int64(len(served)), Format: "zstd"}
	api := agenttest.New(installToken, agenttest.Task{
		Node: "cp-1", Action: "install", Image: img,
		CIData: map[string][]byte{
			"meta-data":      []byte("instance-id: cp-1\nlocal-hostname: cp-1\n"),
			"user-data":      []byte("#cloud-config\nwrite_files:\n  - path: /etc/rancher/llmos/config.yaml\n    content: |\n      token: " + joinToken + "\n"),
			"network-config": []byte("version: 2\nethernets: {}\n"),
		},
	}, served)
	startServices(t, vm.ns, api)

	t.Run("install", func(t *testing.T) {
		took := vm.boot(t, installToken, nil)
		rep := api.Report()
		if len(rep.Done) != 1 || rep.Done[0] != "install" || len(rep.Failed) != 0 {
			t.Fatalf("done %v, failed %v; agent log:\n%s", rep.Done, rep.Failed, strings.Join(rep.Logs, "\n"))
		}
		logFigures(t, "install", took, rep.Logs)
		d := readFile(t, vm.disk)
		if got := sha256.Sum256(d[mib:partEnd]); got != wantPart {
			t.Error("the image's partition on the disk does not have the image's sha256")
		}
		checkGPTAndCIDATA(t, vm.disk, diskSize, []byte(joinToken))
	})

	t.Run("wipe", func(t *testing.T) {
		wipeToken := hex.EncodeToString(randomBytes(32))
		api.Token = wipeToken
		api.Task.Action = "wipe"
		api.Task.CIData = map[string][]byte{
			"meta-data": []byte("instance-id: cp-1-deleted\nlocal-hostname: cp-1\n"),
			"user-data": []byte("#cloud-config\nhostname: cp-1\n"),
		}
		took := vm.boot(t, wipeToken, nil)
		rep := api.Report()
		if len(rep.Done) != 2 || rep.Done[1] != "wipe" {
			t.Fatalf("done %v, failed %v; agent log:\n%s", rep.Done, rep.Failed, strings.Join(rep.Logs, "\n"))
		}
		// done carried the agent's read-back of the real disk, blank before the reinstall.
		if len(rep.Wiped) != 1 || !rep.Wiped[0].Blank || rep.Wiped[0].Size <= 0 {
			t.Errorf("wipe read-back %+v, want one blank disk", rep.Wiped)
		}
		logFigures(t, "wipe", took, rep.Logs)
		d := readFile(t, vm.disk)
		if bytes.Contains(d, []byte(joinToken)) {
			t.Error("the disk still holds the join token after the wipe")
		}
		if got := sha256.Sum256(d[mib:partEnd]); got != wantPart {
			t.Error("the reinstalled image's partition does not have the image's sha256")
		}
		checkGPTAndCIDATA(t, vm.disk, diskSize, []byte("hostname: cp-1"))
	})

	t.Run("checksum mismatch is reported as failed", func(t *testing.T) {
		failToken := hex.EncodeToString(randomBytes(32))
		api.Token = failToken
		api.Task.Action = "install"
		bad := *img
		bad.SHA256 = strings.Repeat("0", 64)
		api.Task.Image = &bad
		vm.boot(t, failToken, func() bool { return len(api.Report().Failed) > 0 })
		rep := api.Report()
		if len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0], "checksum mismatch") {
			t.Fatalf("failed = %q, want one checksum mismatch", rep.Failed)
		}
		if len(rep.Done) != 2 {
			t.Errorf("done = %v after a failed install", rep.Done)
		}
		// The rejected image's partition tables are erased: nothing boots from it.
		if d := readFile(t, vm.disk); !bytes.Equal(d[:mib], make([]byte, mib)) {
			t.Error("the disk's first MiB still holds the rejected image's boot code or partition table")
		}
	})
}

// TestAgentQEMU_LoadsTheDriversOfCommonNICsAndDisks installs through other emulated
// NICs and disk controllers than virtio: the agent must load their drivers (from
// modules.dep, dependencies first), find the boot NIC by MAC and the first disk.
func TestAgentQEMU_LoadsTheDriversOfCommonNICsAndDisks(t *testing.T) {
	requireQEMU(t)
	dir := t.TempDir()
	k, initramfs := agentInitramfs(t, dir)
	const imageSize, diskSize = 16 * mib, 64 * mib
	img := newTestImage(t, dir, imageSize)
	image, sum, partEnd, wantPart := img.bytes, img.sum, img.partEnd, img.wantPart

	tests := []struct {
		name     string
		nic      string
		diskArgs func(string) []string
	}{
		{"e1000e and nvme", "e1000e", func(p string) []string {
			return []string{"-drive", "if=none,id=d0,format=raw,cache=unsafe,file=" + p, "-device", "nvme,drive=d0,serial=bootyard"}
		}},
		{"e1000 and ahci", "e1000", func(p string) []string {
			return []string{"-drive", "if=none,id=d0,format=raw,cache=unsafe,file=" + p, "-device", "ahci,id=ahci0", "-device", "ide-hd,drive=d0,bus=ahci0.0"}
		}},
		{"vmxnet3 and virtio-scsi", "vmxnet3", func(p string) []string {
			return []string{"-drive", "if=none,id=d0,format=raw,cache=unsafe,file=" + p, "-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-hd,drive=d0,bus=scsi0.0"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm := &agentVM{nic: tt.nic, diskArgs: tt.diskArgs, kernel: k.Vmlinuz, initramfs: initramfs,
				disk: filepath.Join(t.TempDir(), "disk.img"), dir: t.TempDir()}
			vm.attach(t, "drv", diskSize, 1)
			token := hex.EncodeToString(randomBytes(32))
			api := agenttest.New(token, agenttest.Task{
				Node: "hw-1", Action: "install",
				Image:  &agenttest.Image{Name: "test", URL: "/images/test", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(image)), Format: "raw"},
				CIData: map[string][]byte{"meta-data": []byte("instance-id: hw-1\n"), "user-data": []byte("#cloud-config\nhostname: hw-1\n")},
			}, image)
			startServices(t, vm.ns, api)
			took := vm.boot(t, token, nil)
			rep := api.Report()
			if len(rep.Done) != 1 || len(rep.Failed) != 0 {
				t.Fatalf("done %v, failed %v; agent log:\n%s", rep.Done, rep.Failed, strings.Join(rep.Logs, "\n"))
			}
			t.Logf("%s: installed in %s", tt.name, took.Round(time.Second))
			if got := sha256.Sum256(readFile(t, vm.disk)[mib:partEnd]); got != wantPart {
				t.Error("the image's partition on the disk does not have the image's sha256")
			}
			checkGPTAndCIDATA(t, vm.disk, diskSize, []byte("hostname: hw-1"))
		})
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkGPTAndCIDATA reads the disk with go-diskfs: a valid GPT whose backup header is
// at the disk's end, and a CIDATA filesystem whose user-data contains want.
func checkGPTAndCIDATA(t *testing.T, path string, diskSize int64, want []byte) {
	t.Helper()
	ud, err := disktest.ReadCIDATA(path, diskSize, "user-data")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ud, want) {
		t.Errorf("CIDATA/user-data = %q, want it to contain %q", ud, want)
	}
}

// logFigures prints the run's time and the agent's own write throughput.
func logFigures(t *testing.T, what string, took time.Duration, logs []string) {
	t.Helper()
	rate := "?"
	re := regexp.MustCompile(`mb_per_s=([0-9]+(\.[0-9])?)`)
	for _, l := range logs {
		if m := re.FindStringSubmatch(l); m != nil {
			rate = m[1]
		}
	}
	t.Logf("%s: power-on to done and reboot %s; agent wrote the image at %s MB/s (TCG)", what, took.Round(time.Second), rate)
}
