#!/bin/bash
# Checks a cfs .deb the way a user meets it, without touching the host:
#
#   contrib/deb/check-deb.sh cfs_VERSION_ARCH.deb
#
# 1. unpacks it into a scratch root (dpkg-deb -x) and checks the file list;
# 2. runs the installed mkcomposefs --help (by its argv[0] link), composefs-info
#    and cfsctl --version (which must name this checkout's commit);
# 3. renders every manual page with `man -l` and checks the completions parse;
# 4. as root: builds an image with the installed mkcomposefs and mounts it with
#    `mount -t composefs`, so mount(8) runs the installed /sbin/mount.composefs
#    link. mount(8) looks for helpers in /sbin only, so this runs chrooted in an
#    overlay of the scratch root over the host's / (in a private mount namespace),
#    with the package's /sbin files moved where dpkg puts them on a merged-/usr
#    host (through the /sbin -> usr/sbin link).
set -euo pipefail

deb=${1:?usage: $0 PACKAGE.deb}
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
say() { echo "check-deb: $*" >&2; }

work=$(mktemp -d /var/tmp/cfs-check-deb.XXXXXX)
trap 'umount -R "$work/merged" 2>/dev/null || true; rm -rf "$work"' EXIT
root=$work/root
dpkg-deb -x "$deb" "$root"
dpkg-deb --field "$deb" Package Version Depends >&2

for path in usr/bin/cfsctl usr/bin/mkcomposefs usr/bin/composefs-info usr/bin/composefs-setup-root \
    sbin/mount.composefs usr/share/man/man1/cfsctl.1.gz usr/share/man/man1/cfsctl-oci-pull.1.gz \
    usr/share/man/man1/mkcomposefs.1.gz usr/share/man/man1/composefs-info.1.gz \
    usr/share/man/man8/mount.composefs.8.gz usr/share/man/man5/composefs-dump.5.gz \
    usr/share/bash-completion/completions/cfsctl usr/share/zsh/vendor-completions/_cfsctl \
    usr/share/fish/vendor_completions.d/cfsctl.fish usr/lib/dracut/modules.d/37cfs/module-setup.sh \
    usr/lib/systemd/system/cfs-mark-good.service usr/share/doc/cfs/copyright; do
    # -L too: a link may point at a path of the package (absolute) that the host lacks.
    [[ -e $root/$path || -L $root/$path ]] || fail "$path is not in the package"
done
[[ $(readlink "$root/sbin/mount.composefs") == /usr/bin/cfsctl ]] || fail "/sbin/mount.composefs does not link to cfsctl"
if file "$root/usr/bin/cfsctl" 2>/dev/null | grep -q "not stripped"; then fail "cfsctl is not stripped"; fi

# 2. The tools, by their installed names.
help=$("$root/usr/bin/mkcomposefs" --help 2>&1) && fail "mkcomposefs --help exited 0 (C exits 1)"
[[ $help == *"Usage: mkcomposefs [OPTIONS] SOURCE IMAGE"* ]] || fail "mkcomposefs --help: $help"
say "mkcomposefs --help: $(wc -l <<<"$help") lines"
info=$("$root/usr/bin/composefs-info" 2>&1) && fail "composefs-info without arguments exited 0"
[[ $info == *"usage: composefs-info"* ]] || fail "composefs-info: $info"
version=$("$root/usr/bin/cfsctl" --version)
if commit=$(git -C "$(dirname "$0")" rev-parse --short=12 HEAD 2>/dev/null); then
    [[ $version == *"(git $commit)"* ]] || fail "cfsctl --version says '$version', expected commit $commit"
fi
say "cfsctl --version: $version"

# 3. Every page renders; the completion scripts parse.
pages=0
for page in "$root"/usr/share/man/man*/*.gz; do
    text=$(MANWIDTH=80 man -l "$page" 2>"$work/man.err") || fail "man -l $page failed: $(cat "$work/man.err")"
    [[ -s $work/man.err ]] && fail "man -l $page warned: $(cat "$work/man.err")"
    [[ $text == *NAME* ]] || fail "man -l $page has no NAME section"
    pages=$((pages + 1))
done
say "man -l: $pages pages rendered"
bash -n "$root/usr/share/bash-completion/completions/cfsctl" || fail "the bash completion does not parse"
(source "$root/usr/share/bash-completion/completions/cfsctl" && complete -p cfsctl >/dev/null) ||
    fail "the bash completion does not register for cfsctl"
if command -v zsh >/dev/null; then zsh -n "$root/usr/share/zsh/vendor-completions/_cfsctl" || fail "zsh completion"; fi
if command -v fish >/dev/null; then fish -n "$root/usr/share/fish/vendor_completions.d/cfsctl.fish" || fail "fish completion"; fi

# 4. mount -t composefs through the installed helper.
if [[ $(id -u) != 0 ]]; then
    if [[ ${CFS_TEST_PRIVILEGED:-} == require ]]; then fail "the mount check needs root"; fi
    say "not root: mount check skipped"
    exit 0
fi
tree=$work/tree
mkdir -p "$tree/usr/share" "$tree/etc"
head -c 100000 /dev/urandom >"$tree/usr/share/blob"
echo "hello from the package" >"$tree/etc/motd"
ln -s ../etc/motd "$tree/usr/motd-link"
mkdir "$work/merged" "$work/rw" "$work/mnt"
unshare -m --propagation private bash -euo pipefail -c '
    work=$1
    # The package and the writable layer on their own tmpfs: overlayfs
    # refuses layers inside one another, and / is a layer.
    mount -t tmpfs tmpfs "$work/rw"
    mkdir "$work/rw/root" "$work/rw/upper" "$work/rw/work"
    dpkg-deb -x "$2" "$work/rw/root"
    # What dpkg does on a merged-/usr system (/sbin a link to usr/sbin):
    # the package'"'"'s /sbin files land in /usr/sbin, reached through the link.
    for d in bin sbin lib; do
        if [[ -L /$d && -d $work/rw/root/$d && ! -L $work/rw/root/$d ]]; then
            mkdir -p "$work/rw/root/$(readlink "/$d")"
            cp -a "$work/rw/root/$d/." "$work/rw/root/$(readlink "/$d")/"
            rm -rf "${work:?}/rw/root/$d"
        fi
    done
    mount -t overlay overlay -o "lowerdir=$work/rw/root:/,upperdir=$work/rw/upper,workdir=$work/rw/work" "$work/merged"
    for d in proc sys dev run tmp; do mount --rbind "/$d" "$work/merged/$d"; done
    mkdir -p "$work/merged$work"
    mount --bind "$work" "$work/merged$work"
    chroot "$work/merged" /usr/bin/mkcomposefs --digest-store="$work/objects" "$work/tree" "$work/image.cfs"
    chroot "$work/merged" mount -t composefs -o "basedir=$work/objects" "$work/image.cfs" "$work/mnt"
    findmnt -n -o FSTYPE,SOURCE "$work/merged$work/mnt" >&2
    diff -r --no-dereference "$work/tree" "$work/merged$work/mnt"
    chroot "$work/merged" umount "$work/mnt"
' _ "$work" "$deb" || fail "mount -t composefs through /sbin/mount.composefs"
say "mount -t composefs through the installed /sbin/mount.composefs: tree read back identical"
say "ok: $deb"
