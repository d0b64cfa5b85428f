#!/bin/bash
# Builds the OS images of the VM boot tests (crates/cfs-vmtest/tests/vm/boot.rs) on top of the
# `vm` base of tests/os/build-debian-os.sh (Debian 12, systemd, dracut, systemd-boot, a 6.12
# kernel from bookworm-backports), as OCI image layouts, cached.
#
# Usage: tests/os/build-vm-images.sh CFSCTL
#
# Layers (gzip tars, deterministic as in build-debian-os.sh):
#   base  the `vm` variant's layer
#   cfs   CFSCTL (stripped) as /usr/bin/cfsctl (+ composefs-setup-root, mkcomposefs, composefs-info links,
#         /usr/sbin/mount.composefs), contrib/dracut/37cfs, contrib/systemd's units enabled,
#         the test agent (cfs-vmtest-agent.service: runs step.sh from the disk labelled
#         CFSCONTROL once the boot is over, its output to out.log there, then powers off),
#         /etc/dracut.conf.d/10-cfs.conf, /etc/modprobe.d/cfs-vmtest.conf (drivers of unused
#         emulated devices not loaded), an empty root password (serial console logins when
#         debugging), and the initramfs rebuilt by dracut with the cfs module
#         (/usr/lib/modules/<kver>/initramfs.img, what cfs deploys; /boot is not deployed). Made by running
#         dracut in a chroot of an overlay over the base tree: the overlay's upper directory
#         is the layer.
#   vN    /usr/share/cfs-vmtest/version (N), /usr/share/cfs-vmtest/payload (64 KiB of
#         `yes "cfs vm test payload vN"`), /etc/cfs-vmtest.conf (v1 `setting=one`, v2 and
#         v3 `setting=two`), v2 also /usr/share/cfs-vmtest/new-in-v2; v3 also a unit that
#         boot-complete.target requires and that fails (a boot that never completes).
#
# Output (stdout's last line is the directory; progress on stderr):
#   DIR/v1/oci DIR/v2/oci DIR/v3/oci   OCI layouts (tag latest): base + cfs + vN
#   DIR/uki1/oci              v1 + /boot/EFI/Linux/cfs-v1.efi: a UKI made with objcopy from the
#                             image's systemd stub, kernel and initramfs, its .cmdline
#                             `composefs.digest=v1-sha512-12:<v1's boot image id> rw console=ttyS0`
#                             (no root=: systemd's gpt-auto finds the root partition)
#   DIR/kver, DIR/v1-id       the kernel release; v1's boot image id (SHA-512, V1)
#
# Cache: ${CFS_OS_CACHE:-/var/tmp/cfs-os-cache}/vm-images-<key>, key = sha256 of this script,
# oci-lib.sh, the base's directory name (its own key), CFSCTL and contrib/. Older results are
# removed when a new one is built. Needs root and what build-debian-os.sh needs, plus objcopy.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C
umask 022
exec 3>&1 1>&2

script=$(readlink -f "$0")
here=${script%/*}
repo=$(readlink -f "$here/../..")
cache=${CFS_OS_CACHE:-/var/tmp/cfs-os-cache}
export SOURCE_DATE_EPOCH=1735689600

die() {
    echo "build-vm-images: $*" >&2
    exit 1
}
log() { echo "build-vm-images: $*" >&2; }

# shellcheck source=tests/os/oci-lib.sh
source "$here/oci-lib.sh"

[[ $# == 1 ]] || die "usage: $0 CFSCTL"
cfsctl=$(readlink -f "$1")
[[ -x $cfsctl ]] || die "$1 is not an executable"
[[ $(id -u) == 0 ]] || die "needs root (overlay mount, chroot, file ownership)"
command -v objcopy >/dev/null || die "objcopy is missing (apt-get install binutils)"
command -v getfattr >/dev/null || die "getfattr is missing (apt-get install attr)"

base=$(bash "$here/build-debian-os.sh" vm)
kver=$(<"$base/kver")
key=$(
    {
        cat "$script" "$here/oci-lib.sh" "$cfsctl"
        echo "${base##*/}"
        find "$repo/contrib/dracut" "$repo/contrib/systemd" -type f -print0 | sort -z | xargs -0 cat
    } | sha256sum | cut -c1-16
)
name=vm-images-$key
dir=$cache/$name
mkdir -p "$cache"
exec {lockfd}>"$cache/$name.lock"
flock "$lockfd"
if [[ -d $dir ]]; then
    echo "$dir" >&3
    exit 0
fi

t0=$(date +%s)
tmp=$(mktemp -d "$cache/.tmp-$name.XXXXXX")
# shellcheck disable=SC2064
trap "remove_tree '$tmp'" EXIT
trap 'exit 143' TERM INT

# --- the cfs layer -------------------------------------------------------------------------------
up=$tmp/cfs-upper
merged=$tmp/merged
mkdir -p "$up" "$tmp/cfs-work" "$merged"
mount -t overlay -o "lowerdir=$base/rootfs,upperdir=$up,workdir=$tmp/cfs-work" cfs-vm "$merged"
unmount_all() {
    local m
    for m in $(findmnt -rn -o TARGET | grep -F "$merged" | sort -r || true); do
        umount -l "$m" || true
    done
}
trap 'unmount_all; remove_tree "$tmp"' EXIT

install -m 0755 --strip "$cfsctl" "$merged/usr/bin/cfsctl"
for n in composefs-setup-root mkcomposefs composefs-info; do
    ln -sf cfsctl "$merged/usr/bin/$n"
done
ln -sf ../bin/cfsctl "$merged/usr/sbin/mount.composefs"
mkdir -p "$merged/usr/lib/dracut/modules.d/37cfs"
install -m 0755 "$repo/contrib/dracut/37cfs/module-setup.sh" "$merged/usr/lib/dracut/modules.d/37cfs/"
install -m 0644 "$repo/contrib/dracut/37cfs/cfs-setup-root.service" "$merged/usr/lib/dracut/modules.d/37cfs/"
units=$merged/usr/lib/systemd/system
install -m 0644 "$repo/contrib/systemd/cfs-finalize-staged.service" "$repo/contrib/systemd/cfs-mark-good.service" "$units/"
mkdir -p "$units/multi-user.target.wants" "$units/basic.target.wants"
ln -sf ../cfs-finalize-staged.service "$units/multi-user.target.wants/"
ln -sf ../cfs-mark-good.service "$units/basic.target.wants/"
cat >"$units/cfs-vmtest-agent.service" <<'EOF'
# The VM boot tests' agent: once the boot is over, runs step.sh from the disk labelled
# CFSCONTROL (its output in out.log there), then powers the machine off.
[Unit]
Description=cfs VM test agent
ConditionPathExists=/dev/disk/by-label/CFSCONTROL
After=multi-user.target

[Service]
# Not oneshot: the boot must be able to finish while the agent waits for it.
Type=simple
ExecStart=/usr/libexec/cfs-vmtest-agent
StandardOutput=journal+console
StandardError=journal+console
EOF
ln -sf ../cfs-vmtest-agent.service "$units/multi-user.target.wants/"
mkdir -p "$merged/usr/libexec"
cat >"$merged/usr/libexec/cfs-vmtest-agent" <<'EOF'
#!/bin/sh
# Waits for the boot to finish (running or degraded), runs step.sh from the control disk.
systemctl is-system-running --wait >/dev/null 2>&1
mkdir -p /run/cfs-control
mount /dev/disk/by-label/CFSCONTROL /run/cfs-control || exit 1
cd /run/cfs-control || exit 1
echo "@@cfs-agent step-begin $(cut -d' ' -f1 /proc/uptime)" >/dev/console
sh ./step.sh >out.log 2>&1
rc=$?
echo "@@exit $rc" >>out.log
cd /
sync
umount /run/cfs-control
echo "@@cfs-agent step-end $rc $(cut -d' ' -f1 /proc/uptime)" >/dev/console
systemctl --no-block poweroff
EOF
chmod 0755 "$merged/usr/libexec/cfs-vmtest-agent"
mkdir -p "$merged/etc/dracut.conf.d"
cat >"$merged/etc/dracut.conf.d/10-cfs.conf" <<'EOF'
# cfs root setup in the initramfs; a generic initramfs (any virtio machine).
add_dracutmodules+=" cfs "
hostonly="no"
add_drivers+=" virtio_blk virtio_pci virtio_scsi ext4 vfat erofs overlay loop "
compress="zstd"
EOF
chmod 0644 "$merged/etc/dracut.conf.d/10-cfs.conf"
sed -i 's/^root:[^:]*:/root::/' "$merged/etc/shadow"
# Drivers of emulated devices the tests never use: loading them by udev costs ~15 s a boot under TCG.
mkdir -p "$merged/etc/modprobe.d"
cat >"$merged/etc/modprobe.d/cfs-vmtest.conf" <<'EOF'
# cfs VM tests: emulated devices nothing uses (udev would load their drivers on every boot).
blacklist kvm
blacklist kvm_amd
blacklist kvm_intel
blacklist iTCO_wdt
blacklist iTCO_vendor_support
blacklist i2c_i801
blacklist lpc_ich
blacklist pcspkr
blacklist psmouse
blacklist serio_raw
blacklist joydev
blacklist powernow_k8
EOF
chmod 0644 "$merged/etc/modprobe.d/cfs-vmtest.conf"

log "dracut --kver $kver (with the cfs module)"
for d in proc sys dev; do
    mount --rbind "/$d" "$merged/$d"
    mount --make-rslave "$merged/$d"
done
chroot "$merged" dracut --force --quiet --kver "$kver" "/usr/lib/modules/$kver/initramfs.img" >&2
for d in dev sys proc; do umount -R "$merged/$d"; done
chroot "$merged" true
lsinitrd=$(chroot "$merged" lsinitrd "/usr/lib/modules/$kver/initramfs.img" 2>/dev/null || true)
grep -q 'usr/bin/cfsctl' <<<"$lsinitrd" || die "the initramfs has no /usr/bin/cfsctl"
grep -q 'cfs-setup-root.service' <<<"$lsinitrd" || die "the initramfs has no cfs-setup-root.service"
chmod 0644 "$merged/usr/lib/modules/$kver/initramfs.img"
find "$merged/var/tmp" "$merged/tmp" -mindepth 1 -delete
umount "$merged"
# An overlay upper directory only holds a layer if nothing was deleted or made opaque.
whiteouts=$(find "$up" -type c -printf '%P ')
opaque=$(getfattr -R -m 'trusted.overlay.opaque' --absolute-names "$up" 2>/dev/null | sed -n 's,^# file: ,,p' | tr '\n' ' ')
[[ -z $whiteouts && -z $opaque ]] ||
    die "files of the base were deleted or made opaque: ${whiteouts}${opaque}"
(cd "$up" && find . -mindepth 1 | sort) >"$tmp/cfs.list"
make_tar "$up" "$tmp/cfs.tar" "$tmp/cfs.list"
# The tree of base + cfs, for the UKI and the boot image id.
mkdir -p "$tmp/cfs/oci/blobs/sha256"
reuse_layers "$base/oci" "$tmp/cfs/oci"
add_layer "$tmp/cfs/oci" "$tmp/cfs.tar"

# --- version layers ------------------------------------------------------------------------------
version_layer() { # N OUT_TAR
    local n=$1 stage=$tmp/stage-v$1 setting
    mkdir -p "$stage"
    {
        mkdirs "$stage" usr/share/cfs-vmtest
        mkdirs "$stage" etc
        printf '%s\n' "$n" >"$stage/usr/share/cfs-vmtest/version"
        echo usr/share/cfs-vmtest/version
        # 64 KiB, different per version: an object of its own (tampered with by the tests).
        head -c 65536 < <(yes "cfs vm test payload v$n") >"$stage/usr/share/cfs-vmtest/payload"
        echo usr/share/cfs-vmtest/payload
        if [[ $n == 1 ]]; then setting=one; else setting=two; fi
        printf 'setting=%s\n' "$setting" >"$stage/etc/cfs-vmtest.conf"
        echo etc/cfs-vmtest.conf
        if [[ $n -ge 2 ]]; then
            echo "only in v2 and later" >"$stage/usr/share/cfs-vmtest/new-in-v2"
            echo usr/share/cfs-vmtest/new-in-v2
        fi
        if [[ $n == 3 ]]; then
            mkdirs "$stage" usr/lib/systemd/system/boot-complete.target.requires
            cat >"$stage/usr/lib/systemd/system/cfs-vmtest-break.service" <<'EOF'
# v3 of the VM tests: a boot that never completes (boot-complete.target requires this).
[Unit]
Description=cfs VM test: fail boot-complete.target
Before=boot-complete.target
[Service]
Type=oneshot
ExecStart=/bin/false
EOF
            ln -s ../cfs-vmtest-break.service "$stage/usr/lib/systemd/system/boot-complete.target.requires/"
            echo usr/lib/systemd/system/cfs-vmtest-break.service
            echo usr/lib/systemd/system/boot-complete.target.requires/cfs-vmtest-break.service
        fi
    } | sed 's,^,./,' | sort -u >"$stage.list"
    find "$stage" -type f -exec chmod 0644 {} +
    make_tar "$stage" "$2" "$stage.list"
}

for n in 1 2 3; do
    version_layer "$n" "$tmp/v$n.tar"
    mkdir -p "$tmp/v$n/oci/blobs/sha256"
    reuse_layers "$tmp/cfs/oci" "$tmp/v$n/oci"
    add_layer "$tmp/v$n/oci" "$tmp/v$n.tar"
    finish_oci "$tmp/v$n/oci" "cfs VM test image v$n"
done

# --- the UKI image ---------------------------------------------------------------------------------
# v1's tree, for its boot image id and the UKI's ingredients.
tree=$tmp/v1-tree
mkdir -p "$tree"
while read -r _ digest _; do
    gzip -dc "$tmp/v1/oci/blobs/sha256/$digest" >"$tmp/layer.tar"
    extract_tar "$tmp/layer.tar" "$tree"
done <"$tmp/v1/layers"
rm -f "$tmp/layer.tar"
karg=$("$cfsctl" --no-repo --hash sha512 compute-karg "$tree")
[[ $karg == composefs.digest=v1-sha512-12:* ]] || die "compute-karg printed '$karg'"
v1_id=${karg##*:}
stub=$tree/usr/lib/systemd/boot/efi/linuxx64.efi.stub
[[ -f $stub ]] || die "the image has no $stub"
ukitmp=$tmp/uki
mkdir -p "$ukitmp"
printf '%s rw console=ttyS0' "$karg" >"$ukitmp/cmdline"
printf '%s' "$kver" >"$ukitmp/uname"
end=0
while read -r idx _ size vma _; do
    [[ $idx =~ ^[0-9]+$ ]] || continue
    e=$((16#$size + 16#$vma))
    if ((e > end)); then end=$e; fi
done < <(objdump -h "$stub")
args=()
for spec in ".osrel=$tree/usr/lib/os-release" ".cmdline=$ukitmp/cmdline" ".uname=$ukitmp/uname" \
    ".initrd=$tree/usr/lib/modules/$kver/initramfs.img" ".linux=$tree/usr/lib/modules/$kver/vmlinuz"; do
    sname=${spec%%=*}
    file=$(readlink -f "${spec#*=}")
    vma=$(((end + 4095) / 4096 * 4096))
    args+=(--add-section "$sname=$file" --change-section-vma "$(printf '%s=0x%x' "$sname" "$vma")")
    end=$((vma + $(stat -c %s "$file")))
done
stage=$tmp/stage-uki
mkdir -p "$stage"
{
    mkdirs "$stage" boot/EFI/Linux
    objcopy "${args[@]}" "$stub" "$stage/boot/EFI/Linux/cfs-v1.efi"
    chmod 0644 "$stage/boot/EFI/Linux/cfs-v1.efi"
    echo boot/EFI/Linux/cfs-v1.efi
} | sed 's,^,./,' | sort -u >"$stage.list"
make_tar "$stage" "$tmp/uki.tar" "$stage.list"
mkdir -p "$tmp/uki1/oci/blobs/sha256"
reuse_layers "$tmp/v1/oci" "$tmp/uki1/oci"
add_layer "$tmp/uki1/oci" "$tmp/uki.tar"
finish_oci "$tmp/uki1/oci" "cfs VM test image v1 with a sealed UKI"

echo "$kver" >"$tmp/kver"
echo "$v1_id" >"$tmp/v1-id"
remove_tree "$tree"
rm -rf "$up" "$tmp/cfs-work" "$merged" "$tmp"/stage-* "$tmp"/*.tar "$tmp"/*.list "$tmp/cfs" "$ukitmp"
mv -T "$tmp" "$dir"
trap - EXIT TERM INT
log "built in $(($(date +%s) - t0)) s at $dir"
for old in "$cache"/vm-images-*.lock; do
    old=${old%.lock}
    [[ $old != "$dir" ]] || continue
    exec {oldfd}<"$old.lock"
    if flock -n "$oldfd"; then
        remove_tree "$old"
        rm -f "$old.lock"
    fi
    exec {oldfd}<&-
done
echo "$dir" >&3
