# cfs-vmtest guest, stage 2: run by busybox sh as PID 1 on the new root
# (see init.sh), with the results port open as fd 3. The suites cfs-vmtest
# appends below run in order; then the guest powers off.
/run/cfs-vm/bin/busybox --install -s /run/cfs-vm/bin
export PATH=/run/cfs-vm/bin

uptime_s() { cut -d' ' -f1 /proc/uptime; }
say() { echo "@@cfs-vm $*" >&3; }

# suite NAME TIMEOUT CWD ARGV...: runs ARGV from CWD, its output on the
# results port, killed after TIMEOUT seconds.
suite() {
    name=$1
    limit=$2
    cwd=$3
    shift 3
    say "suite-begin $name $(uptime_s)"
    timeout -s KILL "$limit" sh -c 'cd "$0" && exec "$@"' "$cwd" "$@" >&3 2>&3 3>&-
    rc=$?
    say "suite-end $name $rc $(uptime_s)"
}

finish() {
    sync
    say "done $(uptime_s)"
    poweroff -f
}

# --- plan ---
