#!/bin/busybox sh
# PID 1 of the e2e guest (busybox, from the initramfs). Loads the virtio/9p and USB/IP modules, mounts the
# host's root file system read-only (9p tag "hostroot") and the results directory read-write (tag "out"),
# then runs $E2E_SCRIPT from the host tree in a chroot and powers off. The guest script's exit code is
# written to out/guest-exit; a failure here is written to out/init-failed and the console.
/bin/busybox --install -s /bin
export PATH=/bin

fail() {
  echo "E2E-INIT-FAILED: $*"
  [ -d /host/tmp/e2e-out ] && echo "$*" > /host/tmp/e2e-out/init-failed
  sync
  poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r module; do
  insmod "$module" || fail "insmod $module"
done < /modules.load

mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /host || fail "mount of the host root (9p) failed"
mount -t proc proc /host/proc || fail "mount /host/proc"
mount -t sysfs sysfs /host/sys || fail "mount /host/sys"
mount -t devtmpfs devtmpfs /host/dev || fail "mount /host/dev"
mount -t tmpfs -o mode=1777 tmpfs /host/tmp || fail "mount /host/tmp"
mount -t tmpfs tmpfs /host/run || fail "mount /host/run"
mkdir -p /host/tmp/e2e-out /host/tmp/home
# A repository under /tmp or /run (a CI clone, say) is hidden by the guest's own tmpfs: mount it there again.
case "$E2E_REPO" in
  /tmp/* | /run/*)
    mkdir -p "/host$E2E_REPO"
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 repo "/host$E2E_REPO" ||
      fail "mount of the repository (9p) failed"
    ;;
esac
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out /host/tmp/e2e-out || fail "mount of the results directory (9p) failed"
ip link set lo up || fail "loopback"

echo "E2E-GUEST-UP uptime=$(cut -d' ' -f1 /proc/uptime)s kernel=$(uname -r)"
[ -n "$E2E_SCRIPT" ] || fail "E2E_SCRIPT not set"
chroot /host /usr/bin/env -i \
  PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/tmp/home TMPDIR=/tmp LANG=C.UTF-8 \
  E2E_OUT=/tmp/e2e-out E2E_REPO="$E2E_REPO" E2E_COMPILE_CACHE="$E2E_COMPILE_CACHE" CI="$E2E_CI" \
  /bin/sh "$E2E_SCRIPT" > /host/tmp/e2e-out/guest.log 2>&1
echo $? > /host/tmp/e2e-out/guest-exit
echo "E2E-GUEST-DONE exit=$(cat /host/tmp/e2e-out/guest-exit) uptime=$(cut -d' ' -f1 /proc/uptime)s"
sync
umount /host/tmp/e2e-out
poweroff -f
