#!/bin/busybox sh
# PID 1 of a cfs-vmtest guest, stage 1 (busybox ash, in the initramfs).
# Loads the modules, builds the new root — the host's / over 9p (read-only)
# under an overlay with a tmpfs upper layer, so the guest may write
# anywhere without touching the host — mounts the data disks listed in
# /etc/cfs-vm/disks on it, and switches to it: stage 2 (/etc/cfs-vm/plan.sh)
# runs the suites there. A real root (not a chroot) matters: the kernel
# refuses user namespaces to chrooted processes.
# Reports go to the virtio port named "cfs-results" ("@@cfs-vm " lines).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
hostname cfs-guest
results=/dev/console
for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = cfs-results ] && results="/dev/${p##*/}"
done
# The port admits one opener: open it once, as fd 3 (inherited by stage 2).
exec 3>"$results"

say() { echo "@@cfs-vm $*" >&3; }
die() {
    echo "cfs-vm: $*" >&2
    say "error $*"
    sync
    poweroff -f
}

while read -r m; do
    insmod "/lib/modules/$m.ko" || die "insmod $m failed"
done </etc/cfs-vm/modules
ip link set lo up || die "ip link set lo up failed"
say "booted $(cut -d' ' -f1 /proc/uptime) $(uname -r)"

mkdir -p /host /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288 hostroot /host ||
    die "mounting the host root over 9p failed"
mount -t tmpfs -o mode=0755 rw /rw && mkdir /rw/upper /rw/work || die "tmpfs for the overlay failed"
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work root /newroot ||
    die "the overlay root failed"
mount -t proc proc /newroot/proc || die "mounting /newroot/proc failed"
mount -t sysfs sysfs /newroot/sys || die "mounting /newroot/sys failed"
mount -t devtmpfs devtmpfs /newroot/dev || die "mounting /newroot/dev failed"
mount -t tmpfs -o mode=0755 run /newroot/run || die "mounting /newroot/run failed"
# Data disks: "DEVICE MOUNTPOINT" lines, each an ext4, mode 1777, on a new
# directory (the host's own paths, /tmp included, stay visible).
while read -r dev at; do
    mkdir -p "/newroot$at" && mount -t ext4 "$dev" "/newroot$at" && chmod 1777 "/newroot$at" ||
        die "mounting $dev on $at failed"
done </etc/cfs-vm/disks

mkdir -p /newroot/run/cfs-vm/bin
cp /bin/busybox /newroot/run/cfs-vm/bin/busybox || die "copying busybox failed"
cp /etc/cfs-vm/plan.sh /newroot/run/cfs-vm/plan.sh || die "copying the plan failed"
exec switch_root /newroot /run/cfs-vm/bin/busybox sh /run/cfs-vm/plan.sh
die "switch_root failed"
