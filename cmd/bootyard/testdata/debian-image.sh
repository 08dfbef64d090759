#!/bin/sh
# Builds a small Debian 12 disk image that boots on BIOS and UEFI and runs its own
# cloud-init, without loop mounts: debootstrap into a directory, mkfs.ext4 -d for the
# root, mkfs.vfat -C + mtools for the ESP (Debian's signed shim and GRUB, for Secure
# Boot), the BIOS GRUB image made with grub-mkimage inside the chroot, all written by offset.
#
# usage: debian-image.sh OUT.raw MIRROR
# The test caches OUT under .cache keyed by this file's sha256: change the recipe, and the
# image is rebuilt.
set -eu
out=$1
mirror=$2
work=$(mktemp -d "${out}.work.XXXXXX")
root=$work/root
cleanup() {
	umount "$root/proc" "$root/sys" "$root/dev/pts" "$root/dev" 2>/dev/null || true
	# Never delete through a mount debootstrap left behind (a bound /dev is the host's).
	if grep -q " $work/" /proc/mounts; then
		echo "left $work in place: something is still mounted under it" >&2
		return
	fi
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# Fixed identities, so the GRUB config and fstab can name them before the filesystems exist.
root_uuid=0b0079a4-d000-4e00-8000-b0079a4d0001
esp_serial=B0070001
root_partuuid=0b0079a4-d000-4e00-8000-b0079a4d0003

# debootstrap does not resolve virtual packages: python3-cffi-backend provides what
# cloud-init's python3-cryptography needs. Downloaded packages are kept beside the image
# for the next build.
mkdir -p "$(dirname "$out")/debs"
debootstrap --variant=minbase --cache-dir="$(cd "$(dirname "$out")/debs" && pwd)" \
	--include=python3-cffi-backend,linux-image-amd64,systemd-sysv,udev,dbus,cloud-init,curl,ca-certificates,grub-efi-amd64-bin,grub-pc-bin,ifupdown,isc-dhcp-client,iproute2,netbase,initramfs-tools,zstd \
	bookworm "$root" "$mirror"

# The network: cloud-init writes its own config from Bootyard's network-config; this
# fallback takes a lease on any NIC, so the image phones home even if that config names
# an interface that does not exist (issue 12, point 4).
cat >"$root/etc/network/interfaces" <<'EON'
auto lo
iface lo inet loopback
source /etc/network/interfaces.d/*
EON
mkdir -p "$root/etc/network/interfaces.d"
cat >"$root/etc/systemd/system/bootyard-fallback-dhcp.service" <<'EON'
[Unit]
Description=DHCP on every NIC that has no address (test image fallback)
# cloud-init.service runs before sysinit.target: default dependencies would order this
# unit after it and make a cycle, which systemd breaks by dropping cloud-init.service.
DefaultDependencies=no
After=networking.service
Before=cloud-init.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'for i in /sys/class/net/*; do n=$${i##*/}; [ "$$n" = lo ] && continue; ip -4 addr show dev "$$n" | grep -q inet || dhclient -1 -v "$$n" || true; done'
RemainAfterExit=yes
[Install]
WantedBy=cloud-init.service
EON
ln -sf /etc/systemd/system/bootyard-fallback-dhcp.service "$root/etc/systemd/system/cloud-init.service.wants/bootyard-fallback-dhcp.service" 2>/dev/null || {
	mkdir -p "$root/etc/systemd/system/cloud-init.service.wants"
	ln -sf /etc/systemd/system/bootyard-fallback-dhcp.service "$root/etc/systemd/system/cloud-init.service.wants/bootyard-fallback-dhcp.service"
}

# cloud-init: NoCloud only (the CIDATA partition Bootyard adds), no network datasources to time out on.
cat >"$root/etc/cloud/cloud.cfg.d/90-bootyard-test.cfg" <<'EON'
datasource_list: [ NoCloud, None ]
EON

echo "UUID=$root_uuid / ext4 errors=remount-ro 0 1" >"$root/etc/fstab"
echo "debian" >"$root/etc/hostname"
echo 'root:bootyard' | chroot "$root" chpasswd
# The serial console last, so /dev/console (systemd, cloud-init, the first-boot script) is
# the serial port the test logs.
mkdir -p "$root/boot/grub"
kver=$(ls "$root/lib/modules" | head -n1)
cat >"$root/boot/grub/grub.cfg" <<EON
set timeout=0
set default=0
menuentry "Debian" {
	search --no-floppy --fs-uuid --set=root $root_uuid
	linux /boot/vmlinuz-$kver root=UUID=$root_uuid ro console=tty0 console=ttyS0,115200 systemd.show_status=1
	initrd /boot/initrd.img-$kver
}
EON

# The early config finds the root by UUID, so GRUB works from wherever it is started
# (firmware entry or chainload): built into the BIOS core.img, the ESP's grub.cfg for EFI.
cat >"$work/early.cfg" <<EON
search --no-floppy --fs-uuid --set=root $root_uuid
set prefix=(\$root)/boot/grub
EON
cp "$work/early.cfg" "$root/tmp/early.cfg"
chroot "$root" grub-mkimage -O i386-pc -o /tmp/core.img -c /tmp/early.cfg -p /boot/grub \
	biosdisk part_gpt ext2 search search_fs_uuid normal linux configfile echo test gzio
cp "$root/tmp/core.img" "$root/usr/lib/grub/i386-pc/boot.img" "$work/"
rm -f "$root/tmp/"*

# Smaller: no documentation, no apt lists, no caches.
rm -rf "$root/usr/share/doc/"* "$root/usr/share/man/"* "$root/usr/share/locale/"* "$root/var/lib/apt/lists/"* \
	"$root/var/cache/apt/"*.bin "$root/var/cache/apt/archives/"*.deb "$root/usr/lib/grub/i386-pc" "$root/usr/lib/grub/x86_64-efi"

# Layout (512-byte sectors): 1 MiB gap, BIOS boot 1 MiB, ESP 32 MiB, root to the end. The
# root holds about 640 MiB; what the agent streams is the whole 960 MiB, so no larger.
size_mib=960
bios_start=2048
esp_start=4096
esp_mib=32
root_start=$((esp_start + esp_mib * 2048))
root_mib=$((size_mib - 1 - 1 - esp_mib - 1))
truncate -s "${size_mib}M" "$out.tmp"
sgdisk -Z \
	-n 1:$bios_start:+1M -t 1:EF02 -c 1:bios \
	-n 2:$esp_start:+${esp_mib}M -t 2:EF00 -c 2:esp \
	-n 3:$root_start:+${root_mib}M -t 3:8300 -c 3:root -u 3:$root_partuuid \
	"$out.tmp" >/dev/null

# The ESP: the loader only where Debian's grub-install puts it, with no removable-media
# path (\EFI\BOOT\BOOTX64.EFI) and no NVRAM entry, as on a machine Debian installed:
# the firmware cannot boot this disk by itself, only Bootyard's local-boot answer can.
mkfs.vfat -C -F 16 -n ESP -i $esp_serial "$work/esp.img" $((esp_mib * 1024)) >/dev/null
mmd -i "$work/esp.img" ::/EFI ::/EFI/debian
# Secure Boot (issue 16): laid out as grub-install --uefi-secure-boot does, from Debian's
# packages (shim-signed, grub-efi-amd64-signed): the Microsoft-signed shim, which loads
# grubx64.efi beside it; Debian's signed GRUB, whose prefix is /EFI/debian; and the
# grub.cfg there, which finds the root and its /boot/grub/grub.cfg. Debian's kernel is
# signed, so the image boots with Secure Boot on and off.
mcopy -i "$work/esp.img" /usr/lib/shim/shimx64.efi.signed ::/EFI/debian/shimx64.efi
mcopy -i "$work/esp.img" /usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed ::/EFI/debian/grubx64.efi
{ cat "$work/early.cfg"; echo 'configfile $prefix/grub.cfg'; } >"$work/esp-grub.cfg"
mcopy -i "$work/esp.img" "$work/esp-grub.cfg" ::/EFI/debian/grub.cfg
dd if="$work/esp.img" of="$out.tmp" bs=512 seek=$esp_start conv=notrunc,sparse status=none

umount "$root/proc" "$root/sys" "$root/dev/pts" "$root/dev" 2>/dev/null || true
mkfs.ext4 -q -F -L root -U $root_uuid -d "$root" -E root_owner=0:0 "$work/root.img" "${root_mib}M"
dd if="$work/root.img" of="$out.tmp" bs=512 seek=$root_start conv=notrunc,sparse status=none

# BIOS: boot.img in the MBR (keeping the protective partition table), core.img in the
# BIOS boot partition, with the sector numbers grub-bios-setup would patch in.
core_sectors=$(( ($(stat -c %s "$work/core.img") + 511) / 512 ))
if [ "$core_sectors" -gt 2048 ]; then echo "core.img too big" >&2; exit 1; fi
python3 - "$out.tmp" "$work/boot.img" "$work/core.img" $bios_start $core_sectors <<'EOP'
import struct, sys
disk, boot, core, start, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
b = bytearray(open(boot, 'rb').read())
c = bytearray(open(core, 'rb').read())
c += b'\0' * (n * 512 - len(c))
struct.pack_into('<Q', b, 0x5c, start)          # GRUB_BOOT_MACHINE_KERNEL_SECTOR
# diskboot.img's blocklist (the last 12 bytes of core.img's first sector): the rest of core.img.
struct.pack_into('<QHH', c, 0x200 - 12, start + 1, n - 1, 0x820)
with open(disk, 'r+b') as f:
    mbr = bytearray(f.read(512))
    mbr[0:0x1b8] = b[0:0x1b8]                    # code, keep signature + partition table
    f.seek(0); f.write(mbr)
    f.seek(start * 512); f.write(c)
EOP
mv "$out.tmp" "$out"
