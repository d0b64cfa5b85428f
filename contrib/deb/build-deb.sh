#!/bin/bash
# Builds the Debian package of cfs from this checkout with dpkg-deb:
#
#   contrib/deb/build-deb.sh [--profile release|dev | --binary PATH] [--out DIR]
#
# It installs the stripped cfsctl as /usr/bin/cfsctl with its argv[0] names
# (/usr/bin/mkcomposefs, /usr/bin/composefs-info, /usr/bin/composefs-setup-root
# and /sbin/mount.composefs, which mount(8) runs for `mount -t composefs`), the
# manual pages (cfsctl(1) and one per subcommand, mkcomposefs(1),
# composefs-info(1), mount.composefs(8), composefs-dump(5)), bash/zsh/fish
# completions, the dracut module 37cfs and the systemd units of contrib/.
# Prints the path of the .deb (default directory: target/deb).
#
# The default is the release build (`cargo build --release`); --profile dev
# builds and packages the debug build instead, and --binary PATH packages a
# cfsctl already built (CI passes target/debug/cfsctl, which `cargo test
# --workspace` has just built: a `cargo build -p cfs-cli` would compile some
# dependencies again with other features).
# Needs: cargo, dpkg-dev (dpkg-shlibdeps), binutils (strip), gzip.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
profile=release
binary=
out=$repo/target/deb
while (($#)); do
    case $1 in
    --profile) profile=$2; shift 2 ;;
    --binary) binary=$(realpath "$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--profile release|dev | --binary PATH] [--out DIR]" >&2; exit 2 ;;
    esac
done
case $profile in
release) bindir=release ;;
dev) bindir=debug ;;
*) echo "$0: --profile must be release or dev" >&2; exit 2 ;;
esac
for tool in dpkg-deb dpkg-shlibdeps strip gzip; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing (apt-get install dpkg-dev binutils gzip)" >&2; exit 1; }
done

cd "$repo"
if [[ -n $binary ]]; then
    bin=$binary
else
    cargo build --locked -p cfs-cli --profile "$profile" >&2
    bin=$repo/target/$bindir/cfsctl
fi

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
arch=$(dpkg --print-architecture)
# Files dated by the commit, so two builds of a commit give the same package.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
debversion=$version+git.$commit

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/sbin"
install -m 0755 "$bin" "$stage/usr/bin/cfsctl"
strip --strip-unneeded "$stage/usr/bin/cfsctl"
for name in mkcomposefs composefs-info composefs-setup-root; do
    ln -s cfsctl "$stage/usr/bin/$name"
done
# Absolute: on merged-/usr systems /sbin is a link to usr/sbin, where a
# relative ../usr/bin would miss (and Debian policy wants links between
# top-level directories absolute).
ln -s /usr/bin/cfsctl "$stage/sbin/mount.composefs"

# Manual pages: generated from the binary's own help definitions, plus the
# hand-written format page; compressed as Debian policy asks.
"$stage/usr/bin/cfsctl" manpages "$work/man" >/dev/null
install -D -m 0644 contrib/man/composefs-dump.5 "$work/man/man5/composefs-dump.5"
for page in "$work"/man/man*/*; do
    section=${page%/*}
    install -D -m 0644 "$page" "$stage/usr/share/man/${section##*/}/${page##*/}"
done
find "$stage/usr/share/man" -type f -exec gzip -9n {} +

# Completions.
install -d "$stage/usr/share/bash-completion/completions" \
    "$stage/usr/share/zsh/vendor-completions" "$stage/usr/share/fish/vendor_completions.d"
"$stage/usr/bin/cfsctl" completions bash >"$stage/usr/share/bash-completion/completions/cfsctl"
"$stage/usr/bin/cfsctl" completions zsh >"$stage/usr/share/zsh/vendor-completions/_cfsctl"
"$stage/usr/bin/cfsctl" completions fish >"$stage/usr/share/fish/vendor_completions.d/cfsctl.fish"

# Boot integration: the dracut module (root setup in the initramfs) and the
# units that finalize staged deployments and mark good boots.
install -D -m 0755 contrib/dracut/37cfs/module-setup.sh "$stage/usr/lib/dracut/modules.d/37cfs/module-setup.sh"
install -D -m 0644 contrib/dracut/37cfs/cfs-setup-root.service "$stage/usr/lib/dracut/modules.d/37cfs/cfs-setup-root.service"
install -d "$stage/usr/lib/systemd/system"
install -m 0644 contrib/systemd/*.service "$stage/usr/lib/systemd/system/"

install -d "$stage/usr/share/doc/cfs"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: cfs"
    echo
    echo "Files: *"
    echo "License: MIT or Apache-2.0"
    echo
    echo "License: MIT"
    sed 's/^$/./; s/^/ /' LICENSE-MIT
    echo
    echo "License: Apache-2.0"
    echo " On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0."
} >"$stage/usr/share/doc/cfs/copyright"

# Shared-library dependencies as dpkg-shlibdeps computes them (it wants a
# debian/control next to it).
mkdir -p "$work/src/debian"
printf 'Source: cfs\n\nPackage: cfs\nArchitecture: any\n' >"$work/src/debian/control"
depends=$(cd "$work/src" && dpkg-shlibdeps -O "$stage/usr/bin/cfsctl" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: cfs
Version: $debversion
Architecture: $arch
Maintainer: The cfs developers <cfs@example.invalid>
Installed-Size: $size
Depends: ${depends:-libc6}
Recommends: erofs-utils, fsverity
Conflicts: composefs
Replaces: composefs
Section: admin
Priority: optional
Description: composefs images, repositories and image-based OS deployments
 cfs builds composefs images (metadata-only EROFS images whose file contents
 live in a content-addressed object store named by fs-verity digests), keeps
 them in repositories, pulls OCI container images into them, mounts them
 with overlayfs and fs-verity, and installs, upgrades and rolls back
 image-based operating systems.
 .
 One binary, cfsctl, also acts as drop-in mkcomposefs, composefs-info and
 mount.composefs.
CONTROL
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb=$out/cfs_${debversion}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
