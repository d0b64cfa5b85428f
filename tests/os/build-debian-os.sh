#!/bin/bash
# Builds minimal bootable Debian 12 (bookworm) root filesystems from Debian packages and packs
# each as an OCI image layout, for the tests of cfs's OCI import and boot/deploy code. Results are
# cached: a second run with the same script, variant and command line prints the cached
# directory at once.
#
# Usage: tests/os/build-debian-os.sh [-o OUTDIR] VARIANT [CMDLINE]
#
#   VARIANT  plain    mmdebstrap minbase + systemd, systemd-sysv, udev, initramfs-tools, zstd,
#                     systemd-boot-efi and linux-image-amd64 from bookworm-backports (6.12);
#                     the kernel and initramfs also at /usr/lib/modules/<kver>/{vmlinuz,
#                     initramfs.img} (bootc layout); /boot and /sysroot exist. One layer.
#            selinux  plain + selinux-policy-default, /etc/selinux/config enforcing/default.
#                     Built on its own (one layer). The image carries no security.selinux
#                     xattrs: labels come from the image's file_contexts at deploy time.
#                     (Debian's kernel only activates SELinux with `security=selinux` on the
#                     command line: AppArmor is its default major LSM.)
#            bls      plain's layer + a second layer with a Boot Loader Spec Type 1 entry
#                     /boot/loader/entries/debian-<kver>.conf naming /boot/debian/<kver>/vmlinuz
#                     and /boot/debian/<kver>/initramfs.img, where the files are. On a boot
#                     partition BLS paths are relative to its root, but an entry inside an
#                     image is a template that composefs-rs (Type1Entry::load) resolves from
#                     the image root, so the paths name /boot (cfs also accepts paths
#                     relative to /boot; composefs-rs refuses them). CMDLINE, if given, is the entry's
#                     `options` (default: "root=LABEL=root ro console=ttyS0").
#            uki      plain's layer + a second layer with a UKI /boot/EFI/Linux/debian-<kver>.efi
#                     made with objcopy from the image's own systemd stub (.osrel, .cmdline =
#                     CMDLINE without newline, .uname, .initrd, .linux). CMDLINE is required.
#            bls and uki keep plain's /usr/lib/modules/<kver>/{vmlinuz,initramfs.img} too.
#            vm       the base of the VM boot tests: plain with dracut instead of initramfs-tools,
#                     plus e2fsprogs and dosfstools (fsck of the root and the ESP). Its
#                     initramfs is dracut's generic one; tests/os/build-vm-images.sh adds cfs
#                     (binary, dracut module, units) and rebuilds it.
#   CMDLINE  see above; part of the cache key (only bls/uki accept it).
#   -o DIR   also copy the result to DIR (which must not exist).
#
# Output (stdout's last line is the result directory; progress goes to stderr):
#   DIR/rootfs/   the image's tree: its layers extracted in order as root (owners, modes,
#                 xattrs), so it is exactly what the OCI image holds
#   DIR/oci/      OCI image layout, tag `latest`: gzip tar layers made with
#                 `tar --xattrs --xattrs-include='*' --numeric-owner --sort=name`, mtimes
#                 clamped to SOURCE_DATE_EPOCH, security.selinux never captured (the only
#                 xattrs are POSIX ACLs on /var/log/journal, from systemd's tmpfiles); two
#                 cold builds from the same mirror state give byte-identical layers
#   DIR/kver      the kernel release (`uname -r`), one line
#   DIR/layers    one line per layer: diff_id, blob digest, blob size (hex digests)
#   DIR/cmdline   (bls, uki) the command line used
#
# Cache: ${CFS_OS_CACHE:-/var/tmp/cfs-os-cache}/<variant>-<key>[-<cmdline key>]/, key = sha256 of
# this script (which holds the package lists) and oci-lib.sh; each result is built in a temporary directory
# beside it and renamed into place, under a per-result flock, so concurrent callers wait for one
# build. Entries made by other versions of this script are removed. The package versions are
# whatever the mirror serves at build time; `rm -rf` the cache to pick up new ones.
#
# Mirrors: the host's apt sources (URIs ending in /debian and /debian-security), else
# deb.debian.org; CFS_VM_DEBIAN_MIRROR / CFS_VM_DEBIAN_SECURITY_MIRROR override them (as for the
# guest kernel of crates/cfs-vmtest). The host's own apt configuration is not touched.
#
# Checked by hand (2026-12): plain's tree on an ext4 disk boots to a login prompt under QEMU
# (TCG, -kernel/-initrd from /usr/lib/modules/<kver>, root=LABEL=root: about 27 s); the UKI
# boots through OVMF (stub, kernel, Debian initramfs).
#
# Needs root (mmdebstrap --mode=root; ownership and xattrs of the tree) and these Debian
# packages: mmdebstrap debian-archive-keyring tar gzip coreutils util-linux (flock, findmnt)
# findutils binutils (objcopy, objdump: uki only). The systemd stub comes from the image, not
# the host.
set -euo pipefail
shopt -s inherit_errexit # set -e also inside $(...)
export LC_ALL=C
umask 022

# Everything reaches stderr except the final result line, written to the saved stdout (fd 3).
exec 3>&1 1>&2

script=$(readlink -f "$0")
cache=${CFS_OS_CACHE:-/var/tmp/cfs-os-cache}
# Every mtime newer than this is clamped to it (mmdebstrap, mkinitramfs and tar honour it).
export SOURCE_DATE_EPOCH=1735689600 # 2025-01-01T00:00:00Z

# The packages of each variant (beyond minbase, i.e. Essential + Priority: required + apt).
# linux-image-amd64 comes from bookworm-backports (6.12; bookworm's 6.1 is too old for
# composefs: data-only overlay layers need >= 6.5, overlay verity= >= 6.6).
packages_plain=(systemd systemd-sysv udev initramfs-tools zstd systemd-boot-efi
    linux-image-amd64/bookworm-backports)
packages_selinux=("${packages_plain[@]}" selinux-policy-default)
packages_vm=(systemd systemd-sysv udev dracut zstd systemd-boot-efi e2fsprogs dosfstools
    linux-image-amd64/bookworm-backports)
# Default `options` of the bls variant's entry.
bls_default_options="root=LABEL=root ro console=ttyS0"

die() {
    echo "build-debian-os: $*" >&2
    exit 1
}
log() { echo "build-debian-os: $*" >&2; }

outcopy=
if [[ ${1-} == -o ]]; then
    [[ $# -ge 2 ]] || die "-o needs a directory"
    outcopy=$2
    shift 2
fi
[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 [-o OUTDIR] plain|selinux|bls|uki|vm [CMDLINE]"
variant=$1
cmdline=${2-}
case $variant in
plain | selinux | vm) [[ -z $cmdline ]] || die "$variant takes no CMDLINE" ;;
bls) cmdline=${cmdline:-$bls_default_options} ;;
uki) [[ -n $cmdline ]] || die "uki needs a CMDLINE (e.g. 'composefs=<hex> rw')" ;;
*) die "unknown variant '$variant' (plain, selinux, bls, uki, vm)" ;;
esac
[[ $cmdline != *$'\n'* ]] || die "CMDLINE must be one line"
[[ $(id -u) == 0 ]] || die "needs root (mmdebstrap --mode=root, file ownership)"

# shellcheck source=tests/os/oci-lib.sh
source "${script%/*}/oci-lib.sh"
script_key=$(cat "$script" "${script%/*}/oci-lib.sh" | sha256sum | cut -c1-16)
mkdir -p "$cache"

# ---------------------------------------------------------------------------------------------
# Helpers

# The host's Debian mirrors, from its apt sources (one-line and deb822 formats).
host_mirror() { # SUFFIX DEFAULT
    local uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources 2>/dev/null |
        sed -n -e 's/^[[:space:]]*URIs:[[:space:]]*//p' \
            -e 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\).*/\2/p' |
        tr ' ' '\n' | sed 's,/*$,,' | grep -m1 -e "$1\$" || true)
    echo "${uri:-$2}"
}

# ---------------------------------------------------------------------------------------------
# Builders. Each fills the (new) directory $1 with rootfs/, oci/, kver.

# plain and selinux: mmdebstrap, then the bootc layout and cleanup, then one layer.
build_bootstrap() { # OUT VARIANT
    local out=$1 variant=$2 mirror security root kver
    local -a packages
    case $variant in
    selinux) packages=("${packages_selinux[@]}") ;;
    vm) packages=("${packages_vm[@]}") ;;
    *) packages=("${packages_plain[@]}") ;;
    esac
    command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (apt-get install mmdebstrap)"
    mirror=$(host_mirror /debian http://deb.debian.org/debian)
    mirror=${CFS_VM_DEBIAN_MIRROR:-$mirror}
    security=$(host_mirror /debian-security http://deb.debian.org/debian-security)
    security=${CFS_VM_DEBIAN_SECURITY_MIRROR:-$security}
    root=$out/build
    log "mmdebstrap $variant from $mirror (+ $security): ${packages[*]}"
    # minbase: Essential + required + apt. No Recommends (mmdebstrap's default).
    # maybe-merged-usr: merged /usr made by mmdebstrap's hook (a dummy usr-is-merged package);
    # without it apt satisfies init-system-helpers' "usrmerge | usr-is-merged" with usrmerge,
    # which drags in perl (+75 MB).
    # Docs, man pages and translations are not unpacked (only copyright files are kept), nor
    # kernel modules for hardware a test VM does not have (sound, GPUs, cameras/TV, wireless,
    # Bluetooth, InfiniBand, industrial I/O, staging): -45 MB.
    # The initramfs is made by initramfs-tools' trigger during the install (MODULES=most: it
    # boots any virtio/SATA/NVMe QEMU machine), zstd-compressed (bookworm's default).
    # /etc/hostname and /etc/resolv.conf are the build host's: replaced.
    local modules=() m
    for m in sound drivers/gpu drivers/media drivers/net/wireless net/wireless net/mac80211 \
        drivers/bluetooth net/bluetooth drivers/infiniband drivers/iio drivers/staging \
        drivers/comedi drivers/isdn; do
        modules+=(--dpkgopt="path-exclude=/lib/modules/*/kernel/$m/*"
            --dpkgopt="path-exclude=/usr/lib/modules/*/kernel/$m/*")
    done
    # shellcheck disable=SC2016 # the hooks' $1 is expanded by mmdebstrap's sh
    mmdebstrap --mode=root --variant=minbase --format=directory \
        --hook-dir=/usr/share/mmdebstrap/hooks/maybe-merged-usr \
        "${modules[@]}" \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        --include="$(
            IFS=,
            echo "${packages[*]}"
        )" \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --customize-hook='echo debian >"$1/etc/hostname"' \
        --customize-hook='rm -f "$1/etc/resolv.conf"' \
        bookworm "$root" \
        "deb $mirror bookworm main" \
        "deb $mirror bookworm-updates main" \
        "deb $security bookworm-security main" \
        "deb $mirror bookworm-backports main"

    # The kernel: exactly one, with its initramfs.
    local k=("$root"/boot/vmlinuz-*)
    [[ ${#k[@]} == 1 && -f ${k[0]} ]] || die "expected one /boot/vmlinuz-*, found: ${k[*]}"
    kver=${k[0]##*/vmlinuz-}
    [[ -s $root/boot/initrd.img-$kver ]] ||
        die "no initramfs /boot/initrd.img-$kver (initramfs-tools or dracut did not run?)"
    log "kernel $kver, initramfs $(stat -c %s "$root/boot/initrd.img-$kver") bytes"
    # bootc layout: kernel and initramfs beside the modules (copies; /boot keeps its own).
    [[ -d $root/usr/lib/modules/$kver ]] || die "no /usr/lib/modules/$kver (not merged-/usr?)"
    cp "$root/boot/vmlinuz-$kver" "$root/usr/lib/modules/$kver/vmlinuz"
    cp "$root/boot/initrd.img-$kver" "$root/usr/lib/modules/$kver/initramfs.img"
    chmod 0644 "$root/usr/lib/modules/$kver/vmlinuz" "$root/usr/lib/modules/$kver/initramfs.img"
    mkdir -p "$root/sysroot" "$root/boot"

    if [[ $variant == selinux ]]; then
        [[ -f $root/etc/selinux/default/contexts/files/file_contexts ]] ||
            die "selinux-policy-default left no /etc/selinux/default/contexts/files/file_contexts"
        printf 'SELINUX=enforcing\nSELINUXTYPE=default\n' >"$root/etc/selinux/config"
        chmod 0644 "$root/etc/selinux/config"
    fi

    # Cleanup (mmdebstrap already removed the apt lists and cache, /run/*, /tmp/* and its own
    # unreproducible logs): what remains of logs and caches, device nodes (a container or
    # composefs image has an empty /dev), backup files, the machine id (empty: systemd makes
    # one at boot).
    find "$root/var/log" "$root/var/cache/apt" "$root/var/lib/apt/lists" \
        -mindepth 1 ! -type d -delete
    find "$root/dev" "$root/run" "$root/tmp" "$root/var/tmp" -mindepth 1 -delete
    rm -f "$root"/var/lib/dpkg/*-old "$root"/var/cache/debconf/*-old \
        "$root/var/cache/ldconfig/aux-cache" "$root/var/lib/systemd/catalog/database" \
        "$root/var/lib/dbus/machine-id" "$root/etc/.pwd.lock" "$root/var/lib/apt/extended_states"
    : >"$root/etc/machine-id"

    pack_rootfs "$out" "$root" "$variant"
    echo "$kver" >"$out/kver"
}

# Packs $2 as the first layer of $1/oci and extracts that layer as $1/rootfs.
pack_rootfs() { # OUT ROOT DESCRIPTION
    local out=$1 root=$2
    mkdir -p "$out/oci/blobs/sha256" "$out/rootfs"
    log "packing $3"
    make_tar "$root" "$out/layer.tar"
    remove_tree "$root"
    add_layer "$out/oci" "$out/layer.tar"
    extract_tar "$out/layer.tar" "$out/rootfs"
    rm -f "$out/layer.tar"
    finish_oci "$out/oci" "$3"
}

# bls and uki: plain's layer plus a layer with the /boot additions made in $stage (a copy of
# plain's /boot) by the function $3, which prints the paths (relative to stage) it created.
build_on_plain() { # OUT VARIANT ADD_FUNCTION
    local out=$1 variant=$2 add=$3 base kver stage
    base=$(build_variant plain "")
    kver=$(<"$base/kver")
    stage=$out/stage
    mkdir -p "$stage" "$out/oci/blobs/sha256"
    cp -a "$base/rootfs/boot" "$stage/boot"
    {
        echo ./boot
        "$add" "$base/rootfs" "$stage" "$kver" | sed 's,^,./,'
    } | sort -u >"$out/layer2.list"
    log "$variant layer: $(tr '\n' ' ' <"$out/layer2.list")"
    make_tar "$stage" "$out/layer2.tar" "$out/layer2.list"
    reuse_layers "$base/oci" "$out/oci"
    add_layer "$out/oci" "$out/layer2.tar"
    log "copying plain's rootfs"
    cp -a "$base/rootfs" "$out/rootfs"
    extract_tar "$out/layer2.tar" "$out/rootfs"
    rm -rf "$stage" "$out/layer2.tar" "$out/layer2.list"
    finish_oci "$out/oci" "$variant"
    echo "$kver" >"$out/kver"
    printf '%s\n' "$cmdline" >"$out/cmdline"
}

add_bls() { # BASE_ROOTFS STAGE KVER
    local base=$1 stage=$2 kver=$3 title
    mkdirs "$stage" "boot/debian/$kver"
    mkdirs "$stage" boot/loader/entries
    cp "$base/boot/vmlinuz-$kver" "$stage/boot/debian/$kver/vmlinuz"
    cp "$base/boot/initrd.img-$kver" "$stage/boot/debian/$kver/initramfs.img"
    # shellcheck disable=SC1091 # the image's os-release (ours: plain shell assignments)
    title=$(. "$base/usr/lib/os-release" && echo "${PRETTY_NAME:-Debian}")
    printf 'title %s\nversion %s\nlinux /boot/debian/%s/vmlinuz\ninitrd /boot/debian/%s/initramfs.img\noptions %s\n' \
        "$title" "$kver" "$kver" "$kver" "$cmdline" >"$stage/boot/loader/entries/debian-$kver.conf"
    chmod 0644 "$stage/boot/debian/$kver/vmlinuz" "$stage/boot/debian/$kver/initramfs.img" \
        "$stage/boot/loader/entries/debian-$kver.conf"
    echo "boot/debian/$kver/vmlinuz"
    echo "boot/debian/$kver/initramfs.img"
    echo "boot/loader/entries/debian-$kver.conf"
}

# A UKI as boot-deploy.md §12.2 builds one, with the section addresses computed instead of
# fixed (as ukify does): each new section starts at the next 4 KiB boundary after the end of
# the previous one, the first after the stub's last section. .linux goes last (ukify's order).
add_uki() { # BASE_ROOTFS STAGE KVER
    local base=$1 stage=$2 kver=$3 stub tmp vma end=0 name file size idx e
    command -v objcopy >/dev/null || die "objcopy is missing (apt-get install binutils)"
    stub=$base/usr/lib/systemd/boot/efi/linuxx64.efi.stub
    [[ -f $stub ]] || die "the image has no $stub (systemd-boot-efi)"
    tmp=$stage/.uki
    mkdir "$tmp"
    printf '%s' "$cmdline" >"$tmp/cmdline"
    printf '%s' "$kver" >"$tmp/uname"
    # End of the stub's last section (objdump -h rows: Idx Name Size VMA LMA File-off Algn).
    while read -r idx name size vma _; do
        [[ $idx =~ ^[0-9]+$ ]] || continue
        e=$((16#$size + 16#$vma))
        if ((e > end)); then end=$e; fi
    done < <(objdump -h "$stub")
    [[ $end -gt 0 ]] || die "could not read the sections of $stub"
    local args=()
    for spec in ".osrel=$base/usr/lib/os-release" ".cmdline=$tmp/cmdline" ".uname=$tmp/uname" \
        ".initrd=$base/boot/initrd.img-$kver" ".linux=$base/boot/vmlinuz-$kver"; do
        name=${spec%%=*}
        file=$(readlink -f "${spec#*=}")
        size=$(stat -c %s "$file")
        vma=$(((end + 4095) / 4096 * 4096))
        args+=(--add-section "$name=$file" --change-section-vma "$(printf '%s=0x%x' "$name" "$vma")")
        end=$((vma + size))
    done
    mkdirs "$stage" boot/EFI/Linux
    objcopy "${args[@]}" "$stub" "$stage/boot/EFI/Linux/debian-$kver.efi"
    chmod 0644 "$stage/boot/EFI/Linux/debian-$kver.efi"
    rm -rf "$tmp"
    echo "boot/EFI/Linux/debian-$kver.efi"
}

# ---------------------------------------------------------------------------------------------
# The cache

# Prints the result directory of VARIANT/CMDLINE, building it if needed (only the directory
# goes to stdout).
build_variant() { # VARIANT CMDLINE
    local variant=$1 cmdline=$2 name dir lockfd tmp t0
    name=$variant-$script_key
    [[ -z $cmdline ]] || name+=-$(printf '%s' "$cmdline" | sha256sum | cut -c1-12)
    dir=$cache/$name
    exec {lockfd}>"$cache/$name.lock"
    flock "$lockfd"
    if [[ ! -d $dir ]]; then
        # (A block with its stdout on stderr: only the final echo reaches the caller.)
        {
            t0=$(date +%s)
            tmp=$(mktemp -d "$cache/.tmp-$name.XXXXXX")
            chmod 0755 "$tmp" # apt's _apt user downloads into it
            # On failure (or interruption) the partial result goes away.
            # shellcheck disable=SC2064 # $tmp is fixed now
            trap "remove_tree '$tmp'" EXIT
            trap 'exit 143' TERM INT
            case $variant in
            plain | selinux | vm) build_bootstrap "$tmp" "$variant" ;;
            bls) build_on_plain "$tmp" bls add_bls ;;
            uki) build_on_plain "$tmp" uki add_uki ;;
            esac
            mv -T "$tmp" "$dir"
            trap - EXIT TERM INT
            log "$variant built in $(($(date +%s) - t0)) s: $(du -sh "$dir/rootfs" | cut -f1) tree, $(du -sh "$dir/oci" | cut -f1) OCI layout at $dir"
            # Results of other versions of this script (when not in use: their lock is free),
            # and what their failed or killed builds left.
            local old oldfd t
            for old in "$cache/$variant"-*.lock; do
                old=${old%.lock}
                [[ -e $old.lock && $old != "$cache/$variant-$script_key"* ]] || continue
                exec {oldfd}<"$old.lock"
                if flock -n "$oldfd"; then
                    log "removing stale ${old##*/}"
                    remove_tree "$old"
                    for t in "$cache/.tmp-${old##*/}".*; do remove_tree "$t"; done
                    rm -f "$old.lock"
                fi
                exec {oldfd}<&-
            done
        } >&2
    fi
    exec {lockfd}>&-
    echo "$dir"
}

dir=$(build_variant "$variant" "$cmdline")
if [[ -n $outcopy ]]; then
    [[ ! -e $outcopy ]] || die "$outcopy exists"
    cp -a "$dir" "$outcopy"
    dir=$(readlink -f "$outcopy")
fi
echo "$dir" >&3
