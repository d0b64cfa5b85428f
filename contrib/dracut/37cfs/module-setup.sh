#!/bin/bash
# dracut module "cfs": root setup for cfs (composefs) deployments.
#
# Installs cfsctl (as /usr/bin/composefs-setup-root too), the erofs and overlay
# kernel modules, cfs-setup-root.service (pulled in by initrd-root-fs.target)
# and /usr/lib/composefs/setup-root-conf.toml when the system has one.
# Opt-in: an image enables it with
#   echo 'add_dracutmodules+=" cfs "' > /etc/dracut.conf.d/cfs.conf
# (check returns 255: never included by host-only or default selection).

check() {
    require_binaries cfsctl || return 1
    return 255
}

depends() {
    echo systemd
    return 0
}

installkernel() {
    instmods erofs overlay loop
}

install() {
    inst_binary "$(find_binary cfsctl)" /usr/bin/cfsctl
    ln_r /usr/bin/cfsctl /usr/bin/composefs-setup-root
    inst_simple "$moddir/cfs-setup-root.service" "$systemdsystemunitdir/cfs-setup-root.service"
    $SYSTEMCTL -q --root "$initdir" add-wants initrd-root-fs.target cfs-setup-root.service
    if [[ -f /usr/lib/composefs/setup-root-conf.toml ]]; then
        inst_simple /usr/lib/composefs/setup-root-conf.toml
    fi
}
