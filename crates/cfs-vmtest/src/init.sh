#!/bin/busybox sh
# PID 1 of a cfs-vmtest guest (busybox ash). Sets the machine up, runs the
# plan that cfs-vmtest appends below, reports on the virtio port named
# "cfs-results" (lines starting with "@@cfs-vm "), and powers off.
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
# The port admits one opener: open it once, as fd 3.
exec 3>"$results"

uptime_s() { cut -d' ' -f1 /proc/uptime; }
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
say "booted $(uptime_s) $(uname -r)"

# host_root: the host's / over 9p (read-only) as /newroot, with the guest's
# own /proc, /sys, /dev, /run and a tmpfs /tmp (a disk may replace it).
host_root() {
    mkdir -p /newroot
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288 hostroot /newroot ||
        die "mounting the host root over 9p failed"
    mount -t proc proc /newroot/proc || die "mounting /newroot/proc failed"
    mount -t sysfs sysfs /newroot/sys || die "mounting /newroot/sys failed"
    mount -t devtmpfs devtmpfs /newroot/dev || die "mounting /newroot/dev failed"
    mount -t tmpfs -o mode=0755 run /newroot/run || die "mounting /newroot/run failed"
    mount -t tmpfs -o mode=1777 tmp /newroot/tmp || die "mounting /newroot/tmp failed"
}

# disk DEVICE MOUNTPOINT: mounts an ext4 disk inside the new root, mode 1777.
disk() {
    mount -t ext4 "$1" "/newroot$2" || die "mounting $1 on $2 failed"
    chmod 1777 "/newroot$2"
}

# suite NAME TIMEOUT CWD ARGV...: runs ARGV in the new root from CWD, its
# output on the results port, killed after TIMEOUT seconds.
suite() {
    name=$1
    limit=$2
    cwd=$3
    shift 3
    say "suite-begin $name $(uptime_s)"
    timeout -s KILL "$limit" chroot /newroot /bin/sh -c 'cd "$0" && exec "$@"' "$cwd" "$@" >&3 2>&3 3>&-
    rc=$?
    say "suite-end $name $rc $(uptime_s)"
}

finish() {
    sync
    say "done $(uptime_s)"
    poweroff -f
}

# --- plan ---
