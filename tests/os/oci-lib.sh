# Shell helpers shared by tests/os/build-debian-os.sh and tests/os/build-vm-images.sh: layer
# tars, OCI image layouts, temporary trees. Sourced (needs bash; callers set -euo pipefail,
# LC_ALL=C, umask 022 and SOURCE_DATE_EPOCH, and define log and die).

# Removes a temporary directory, first unmounting anything a killed mmdebstrap left below it
# (so that rm never descends into a bind-mounted /dev or /proc).
remove_tree() {
    local dir=$1
    [[ -e $dir ]] || return 0
    local m
    for m in $(findmnt -rn -o TARGET | grep -F "$dir/" | sort -r || true); do
        umount -l "$m" || true
    done
    rm -rf --one-file-system "$dir"
}

# sha256 hex of a file.
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Creates the uncompressed layer tar $2 from the directory $1 (whole tree, or the paths listed
# in file $3 without recursion). Deterministic: sorted names, numeric owners, mtimes clamped,
# no atime/ctime and no PID in pax headers. All xattrs except security.selinux, which would be
# the build host's labels if it runs SELinux (the image's labels are computed at deploy time
# from its own policy).
make_tar() { # DIR OUT [LIST]
    local args=(--create --file="$2" --directory="$1" --format=posix --numeric-owner
        --sort=name --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --one-file-system
        --xattrs --xattrs-include='*' --xattrs-exclude='security.selinux'
        --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime')
    if [[ $# -ge 3 ]]; then
        tar "${args[@]}" --no-recursion --verbatim-files-from --files-from="$3"
    else
        tar "${args[@]}" .
    fi
}

# Extracts the layer tar $1 onto directory $2 the way a container runtime would (as root:
# owners, modes, xattrs).
extract_tar() { # TAR DIR
    tar --extract --file="$1" --directory="$2" --numeric-owner --same-permissions \
        --same-owner --xattrs --xattrs-include='*'
}

# Adds the uncompressed layer tar $2 to the OCI layout $1 (DIR/oci) as a gzip blob; records its
# "diff_id digest size" in DIR/layers.
add_layer() { # OCI TAR
    local diff_id gz digest
    diff_id=$(sha256_of "$2")
    gz=$1/blobs/sha256/.layer.tmp
    gzip -n -6 <"$2" >"$gz"
    digest=$(sha256_of "$gz")
    mv "$gz" "$1/blobs/sha256/$digest"
    echo "$diff_id $digest $(stat -c %s "$1/blobs/sha256/$digest")" >>"$1/../layers"
}

# Reuses the layers of another layout's (already written) image: hard links, else copies.
reuse_layers() { # FROM_OCI TO_OCI
    local diff_id digest size
    while read -r diff_id digest size; do
        ln "$1/blobs/sha256/$digest" "$2/blobs/sha256/$digest" 2>/dev/null ||
            cp "$1/blobs/sha256/$digest" "$2/blobs/sha256/$digest"
        echo "$diff_id $digest $size" >>"$2/../layers"
    done <"$1/../layers"
}

# Writes a JSON blob (string $2) into layout $1; prints "digest size".
put_blob() { # OCI JSON
    local tmp=$1/blobs/sha256/.blob.tmp digest
    printf '%s' "$2" >"$tmp"
    digest=$(sha256_of "$tmp")
    mv "$tmp" "$1/blobs/sha256/$digest"
    echo "$digest $(stat -c %s "$1/blobs/sha256/$digest")"
}

# Writes config, manifest, index.json and oci-layout of layout $1 from DIR/layers.
finish_oci() { # OCI DESCRIPTION
    local oci=$1 what=$2 created diff_ids="" layers="" history="" diff_id digest size n=0
    created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
    while read -r diff_id digest size; do
        n=$((n + 1))
        [[ -z $diff_ids ]] || { diff_ids+=,; layers+=,; history+=,; }
        diff_ids+="\"sha256:$diff_id\""
        layers+="{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$digest\",\"size\":$size}"
        history+="{\"created\":\"$created\",\"created_by\":\"tests/os/build-debian-os.sh: layer $n of $what\"}"
    done <"$oci/../layers"
    local config manifest cd cs md ms
    config="{\"created\":\"$created\",\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/sbin/init\"],\"Labels\":{\"containers.bootc\":\"1\"}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$diff_ids]},\"history\":[$history]}"
    read -r cd cs < <(put_blob "$oci" "$config")
    manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cd\",\"size\":$cs},\"layers\":[$layers]}"
    read -r md ms < <(put_blob "$oci" "$manifest")
    printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$md\",\"size\":$ms,\"annotations\":{\"org.opencontainers.image.ref.name\":\"latest\"}}]}" >"$oci/index.json"
    printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
}

# Creates DIR and its parents below STAGE (mode 0755), printing each path it created.
mkdirs() { # STAGE DIR
    local p=""
    local part
    IFS=/ read -ra parts <<<"$2"
    for part in "${parts[@]}"; do
        p=${p:+$p/}$part
        if [[ ! -d $1/$p ]]; then
            mkdir -m 0755 "$1/$p"
        fi
        echo "$p"
    done
}

