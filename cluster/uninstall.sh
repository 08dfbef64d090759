#!/bin/sh
# Bootyard's uninstall of LLMOS from a host, in LLMOS's own order: LLMOS's uninstall script
# first (the node is still a cluster member while it runs), then what that script leaves
# behind and what would make the machine join again without new input: the LLMOS config
# (it holds the join token, which is the server token too), cloud-init's instance data and
# stored user-data, and the CIDATA partition that holds the user-data cloud-init would read
# again. Bootyard deletes the Kubernetes Node only after this script exits 0.
#
# ROOT (default: empty, the host's /) prefixes every path, so tests run the script against
# a directory; DISKS (default: every block device) limits the CIDATA search to the named
# disks. INSTALL_LLMOS_BIN_DIR and INSTALL_LLMOS_SYSTEMD_DIR are the installer's own
# settings, when the cluster's installer environment sets them.
#
# Exit status: 0 done; 3 LLMOS is installed but its uninstall script is nowhere LLMOS puts
# it; 4 a cleanup step failed; any other: LLMOS's uninstall script's own status.
#
# Whatever the status, the script reports it to Bootyard itself (POST
# <callback>uninstall-report, with the node's callback key and the end of
# BOOTYARD_UNINSTALL_LOG, the file its output goes to): LLMOS's script stops k3s, and with
# it the kubelet that would report the helper pod's exit.
set -u
R="${ROOT:-}"
R="${R%/}"
LOG="${BOOTYARD_UNINSTALL_LOG:-}"
say() { echo "bootyard: $*"; }

# Bootyard's callback URL and this node's callback key, from the first-boot script
# cloud-init wrote, or from cloud-init's copy of the user-data that holds it. Read now:
# the cleanup below removes cloud-init's copy.
# cloud-init's instance link is absolute: under a test ROOT it is followed by hand.
instance="$R/var/lib/cloud/instance"
if target=$(readlink "$instance" 2>/dev/null); then
  case "$target" in /*) instance="$R$target" ;; esac
fi
callback=""
key=""
for f in "$R/usr/local/lib/bootyard/firstboot.sh" "$instance/user-data.txt"; do
  [ -f "$f" ] || continue
  callback=$(sed -n "s|^[[:space:]]*CALLBACK='\(https\{0,1\}://[^']*/\)'[[:space:]]*\$|\1|p" "$f" | head -n 1)
  key=$(sed -n "s/^[[:space:]]*KEY='\([0-9a-f]*\)'[[:space:]]*\$/\1/p" "$f" | head -n 1)
  [ -n "$callback" ] && [ -n "$key" ] && break
  callback=""
  key=""
done

# report STATUS sends the exit status and the end of the log to Bootyard. The key goes in
# a header, as the first-boot script sends it, so no access log records it.
report() {
  if [ -z "$callback" ]; then
    say "no Bootyard callback key on this machine (no first-boot script): only the helper pod can report status $1"
    return 0
  fi
  tail=""
  [ -n "$LOG" ] && [ -f "$LOG" ] && tail=$(tail -n 20 "$LOG" | tail -c 3000)
  if curl -fsS -m 10 --retry 5 --retry-delay 3 -o /dev/null -H "X-Bootyard-Key: $key" \
    --data-urlencode "status=$1" --data-urlencode "log=$tail" "${callback}uninstall-report"; then
    say "reported exit status $1 to Bootyard"
  else
    say "could not report exit status $1 to Bootyard at ${callback}uninstall-report"
  fi
}
trap 'rc=$?; trap - EXIT; report "$rc"; exit "$rc"' EXIT

# The places LLMOS's install.sh puts llmos-uninstall.sh: INSTALL_LLMOS_BIN_DIR, else
# /usr/local/bin, else /opt/bin when /usr/local/bin is read-only. The unit it writes names
# that directory too (ExecStart=BIN_DIR/llmos bootstrap, or command="BIN_DIR/llmos" for
# OpenRC), which covers a BIN_DIR set at install time that Bootyard no longer knows.
unit_dir="${INSTALL_LLMOS_SYSTEMD_DIR:-/etc/systemd/system}"
units="$R$unit_dir/llmos.service $R/etc/init.d/llmos"
bin_dirs="${INSTALL_LLMOS_BIN_DIR:-}"
for unit in $units; do
  [ -f "$unit" ] || continue
  bin=$(sed -n -e 's|^ExecStart=\(/[^ ]*\)/llmos\( .*\)\{0,1\}$|\1|p' -e 's|^command="\(/.*\)/llmos"$|\1|p' "$unit" | head -n 1)
  [ -n "$bin" ] && bin_dirs="$bin_dirs $bin"
done
bin_dirs="$bin_dirs /usr/local/bin /opt/bin"

find_uninstall() {
  for d in $bin_dirs; do
    if [ -x "$R$d/llmos-uninstall.sh" ]; then
      echo "$R$d/llmos-uninstall.sh"
      return 0
    fi
  done
  # The host's own PATH, as `command -v` finds it; it means nothing under a test ROOT.
  if [ -z "$R" ] && p=$(command -v llmos-uninstall.sh 2>/dev/null); then
    echo "$p"
    return 0
  fi
  return 1
}

# llmos_traces names what is left of an LLMOS install, if anything.
llmos_traces() {
  for unit in $units; do
    [ -e "$unit" ] && echo "$unit"
  done
  for d in $bin_dirs; do
    [ -e "$R$d/llmos" ] && echo "$R$d/llmos"
  done
  [ -e "$R/var/lib/llmos" ] && echo "$R/var/lib/llmos"
  return 0
}

if script=$(find_uninstall); then
  # A transient unit's PATH lacks /opt/bin, where k3s's installer (which LLMOS's script
  # calls by name for k3s-uninstall.sh) goes when /usr/local/bin is read-only.
  PATH="$PATH:${script%/*}:/usr/local/bin:/opt/bin"
  export PATH
  say "running $script"
  "$script"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    say "$script exited with status $rc; the join data stays until it succeeds (node retry runs it again)"
    exit "$rc"
  fi
  say "$script finished"
else
  traces=$(llmos_traces | tr '\n' ' ')
  if [ -n "$traces" ]; then
    say "LLMOS is installed ($traces) but llmos-uninstall.sh is in none of:$(for d in $bin_dirs; do printf ' %s' "$R$d"; done)"
    exit 3
  fi
  # LLMOS's script deletes itself when it ends: an earlier run got this far already.
  say "LLMOS is not installed (no llmos-uninstall.sh, llmos unit or binary): nothing to uninstall"
fi

fail() {
  say "$*"
  exit 4
}

# The join data. LLMOS's uninstall keeps /etc/llmos/config.yaml, and with it the token.
rm -f "$R/etc/llmos/config.yaml" || fail "cannot remove $R/etc/llmos/config.yaml"
rmdir "$R/etc/llmos" 2>/dev/null || true
say "removed $R/etc/llmos/config.yaml"

# cloud-init's record of this instance and its stored user-data: without them a later
# boot is a first boot again, which finds no datasource once CIDATA is gone.
rm -rf "$R/var/lib/cloud/instance" "$R/var/lib/cloud/instances" "$R/var/lib/cloud/seed" ||
  fail "cannot remove cloud-init's instance data under $R/var/lib/cloud"
say "removed cloud-init's instance data and seed under $R/var/lib/cloud"

# CIDATA: only partitions (never a whole disk or a seed ISO) whose filesystem is labelled
# CIDATA. The signature goes first, so the partition is useless to cloud-init even where
# the table cannot be rewritten; then its table entry, then the kernel's view of it.
upper() { printf '%s' "$1" | tr '[:lower:]' '[:upper:]'; }
found=0
# shellcheck disable=SC2086 # DISKS is a list of devices
parts=$(lsblk -lnpo NAME,TYPE ${DISKS:-} 2>/dev/null | awk '$2 == "part" { print $1 }' | sort -u)
for part in $parts; do
  [ "$(upper "$(blkid -p -o value -s LABEL "$part" 2>/dev/null)")" = CIDATA ] || continue
  if [ "$(lsblk -ndo RO "$part" 2>/dev/null | tr -d ' ')" = 1 ]; then
    say "left the read-only CIDATA partition $part alone"
    continue
  fi
  disk=$(lsblk -ndpo PKNAME "$part" 2>/dev/null | head -n 1)
  num=$(cat "/sys/class/block/${part##*/}/partition" 2>/dev/null)
  if [ -z "$disk" ] || [ -z "$num" ]; then
    fail "found CIDATA on $part but not its disk and partition number"
  fi
  wipefs -a -q "$part" || fail "cannot wipe the CIDATA filesystem on $part"
  # sfdisk (GPT and MBR alike) without a re-read of the whole table, which would drop and
  # re-add every partition of the disk; then only this one leaves the kernel's view.
  # sgdisk, where sfdisk is too old to delete, does re-read, and a busy disk refuses that.
  sfdisk -q --no-reread --no-tell-kernel --delete "$disk" "$num" 2>/dev/null ||
    sgdisk --delete="$num" "$disk" >/dev/null 2>&1 ||
    fail "wiped $part but cannot delete partition $num from $disk"
  partx -d --nr "$num" "$disk" 2>/dev/null || true
  say "wiped and deleted the CIDATA partition $part (partition $num of $disk)"
  found=$((found + 1))
done
[ "$found" -gt 0 ] || say "no CIDATA partition found"
say "uninstall finished: this machine has no join data left"
