# shellcheck shell=bash
# Throwaway Ceph S3 gateway (radosgw) on loopback for tests. Source, don't execute.
#
#   radosgw_install          install ceph-mon, ceph-osd, radosgw if missing
#   radosgw_start DIR PORT   single-node cluster under DIR, S3 on 127.0.0.1:PORT;
#                            exports RADOSGW_ENDPOINT, RADOSGW_ACCESS_KEY,
#                            RADOSGW_SECRET_KEY, RADOSGW_REGION (also printed)
#   radosgw_stop DIR         kill the daemons, delete DIR (safe to call twice,
#                            and from an EXIT trap)
#   radosgw_curl ARGS...     curl with SigV4 credentials for the gateway
#
# Layout: one mon (msgr2 only, free port on 127.0.0.1), one OSD on memstore
# (data lives in the OSD's memory, so nothing is written to disk and nothing
# needs fsync), one radosgw with the beast frontend. No cephx, no mgr: the mgr
# only reports stats and runs modules, and client I/O works without it (the
# pg autoscaler, a mgr module, is switched off instead).
#
# Footprint: ~140 MB RSS idle plus the stored objects (they live in the OSD's
# memory, at most RADOSGW_MEMSTORE_BYTES, default 4 GiB), ~40 MB on disk in
# DIR. Ports: PORT, one random free mon port >= 40000, and the OSD's 4
# ports from Ceph's 6800-7300 range, all on 127.0.0.1. Start-up takes ~2 s.
#
# Functions return non-zero on failure instead of exiting, so a caller can
# decide; on a start failure the tail of the relevant log goes to stderr.
# Progress goes to stderr; the exports are printed on stdout.

RADOSGW_ACCESS_KEY=${RADOSGW_ACCESS_KEY:-pavilion-test-access}
RADOSGW_SECRET_KEY=${RADOSGW_SECRET_KEY:-pavilion-test-secret-0123456789abcdef}
# radosgw takes the region from the request's credential scope; the default
# zonegroup is called "default", which is also what CreateBucket's
# LocationConstraint must match if one is sent.
RADOSGW_REGION=${RADOSGW_REGION:-default}
RADOSGW_ENDPOINT=""

# Marker that says "this directory is ours": radosgw_stop deletes only such
# directories, so a wrong DIR can never wipe something else.
_RGW_MARKER=.pavilion-radosgw

_rgw_log() {
    printf '    radosgw: %s\n' "$*" >&2
}

_rgw_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Print the tail of each named log (relative to DIR/log) to stderr.
_rgw_show_logs() {
    local dir=$1 f
    shift
    for f in "$@"; do
        [[ -s "$dir/log/$f" ]] || continue
        printf -- '--- last lines of %s\n' "$dir/log/$f" >&2
        tail -n 25 "$dir/log/$f" >&2
    done
}

# ceph CLI against our cluster only; the timeout keeps a dead mon from hanging us.
_rgw_ceph() {
    timeout 30 ceph --conf "$_RGW_CONF" --connect-timeout 10 "$@"
}

# Start a daemon in the foreground, detached from this shell's job table (no
# "Killed" notices, no job to wait for), with all stdio away from the caller
# (so `$(radosgw_start ...)` would not hang), and remember its pid.
_rgw_spawn() {
    local dir=$1 name=$2
    shift 2
    _RGW_LAST_PID=$("$@" </dev/null >>"$dir/log/$name.out" 2>&1 & echo "$!")
    echo "$_RGW_LAST_PID" >>"$dir/pids"
}

# radosgw_curl CURL_ARGS...: curl with SigV4 for the running radosgw.
# radosgw takes a request without x-amz-content-sha256 as UNSIGNED-PAYLOAD,
# while curl (7.88, bookworm) then signs the hash of the body instead, so
# every request would be refused with SignatureDoesNotMatch; sending the
# header makes both sides agree. SDK clients always send it.
radosgw_curl() {
    curl -s --aws-sigv4 "aws:amz:$RADOSGW_REGION:s3" \
        --user "$RADOSGW_ACCESS_KEY:$RADOSGW_SECRET_KEY" \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

radosgw_install() {
    local missing=() pkg status
    for pkg in ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    _rgw_log "installing Debian packages: ${missing[*]}"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || { echo "radosgw_install: need root or sudo" >&2; return 1; }
        sudo=(sudo)
    fi
    # Wait for a concurrent apt/dpkg rather than failing on its lock. Without
    # systemd (containers, CI) the packages' postinst starts no daemons.
    local apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
    local log=${TMPDIR:-/tmp}/radosgw-apt.log
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" -qq update >&2; then
        echo "radosgw_install: apt-get update failed" >&2
        return 1
    fi
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" -y -q \
        --no-install-recommends install "${missing[@]}" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "radosgw_install: apt-get install failed (log: $log)" >&2
        return 1
    fi
}

_rgw_write_conf() {
    local dir=$1 fsid=$2 mon_port=$3 rgw_port=$4
    cat >"$_RGW_CONF" <<EOF
# Generated by scripts/lib/radosgw.sh for a throwaway test cluster.
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
# msgr2 only: one port per endpoint, and the mon lives on our free port only.
ms bind msgr1 = false
ms bind msgr2 = true

# Tests: no authentication inside the cluster (S3 auth is still SigV4).
auth cluster required = none
auth service required = none
auth client required = none
# "secure" needs a cephx session key; some daemons (radosgw) default to
# secure-only towards the mon and then fail with EACCES when auth is none.
ms mon client mode = crc
ms client mode = crc
ms mon service mode = crc
ms service mode = crc
ms mon cluster mode = crc
ms cluster mode = crc
keyring = $dir/keyring

# Everything under DIR, nothing in /var/lib/ceph, /var/log/ceph or /var/run/ceph.
run dir = $dir/run
crash dir = $dir/crash
admin socket = $dir/run/\$name.\$pid.asok
log file = $dir/log/\$name.log
mon cluster log file = $dir/log/cluster.log
log to stderr = false
err to stderr = false
mon data = $dir/\$name
osd data = $dir/\$name

# One OSD, one copy; no health warnings about it; no mgr-driven autoscaling.
osd objectstore = memstore
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on pool no app = false
mon warn on insecure global id reclaim allowed = false
mon max pg per osd = 1000
# The mon stops itself when its disk has less than 5% free; shared CI disks
# can be fuller than that, and the mon stores only ~40 MB here.
mon data avail crit = 0
mon data avail warn = 0
mon osd full ratio = .99
mon osd nearfull ratio = .99
mon osd backfillfull ratio = .99
osd failsafe full ratio = .99

[mon]
# Commit map changes quickly: every pool radosgw creates is one.
paxos propose interval = 0.05
paxos min wait = 0.01

[osd]
# Upper bound of what the OSD may hold in memory; only stored data uses RAM.
memstore device bytes = ${RADOSGW_MEMSTORE_BYTES:-4294967296}
osd op num shards = 2
osd op num threads per shard = 2

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $dir/rgw.a
rgw thread pool size = 64
rgw dynamic resharding = false
rgw enable usage log = false
rgw enable ops log = false
EOF
}

radosgw_start() {
    local dir=${1:?usage: radosgw_start DIR PORT} port=${2:?usage: radosgw_start DIR PORT}
    if _rgw_start "$dir" "$port"; then
        return 0
    fi
    # Do not leave half a cluster running; DIR stays for its logs until
    # radosgw_stop.
    [[ -f "$dir/$_RGW_MARKER" ]] && _rgw_kill "$(cd "$dir" && pwd -P)"
    return 1
}

_rgw_start() {
    local dir=$1 port=$2
    local t0=$SECONDS mon_port fsid osd_uuid osd_id deadline cmd

    for cmd in ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool uuidgen curl; do
        command -v "$cmd" >/dev/null || { echo "radosgw_start: $cmd not found (run radosgw_install)" >&2; return 1; }
    done
    # A leftover from an earlier run (e.g. one killed with SIGKILL) is ours to clear.
    if [[ -f "$dir/$_RGW_MARKER" ]]; then
        radosgw_stop "$dir"
    fi
    if [[ -d "$dir" ]] && [[ -n "$(ls -A "$dir")" ]]; then
        echo "radosgw_start: $dir exists and is not empty" >&2
        return 1
    fi
    if _rgw_port_in_use "$port"; then
        echo "radosgw_start: port $port on 127.0.0.1 is already in use" >&2
        return 1
    fi
    mkdir -p "$dir"/{log,run,crash,rgw.a,osd.0} || return 1
    dir=$(cd "$dir" && pwd -P)
    : >"$dir/$_RGW_MARKER"
    : >"$dir/pids"
    : >"$dir/keyring"
    _RGW_CONF=$dir/ceph.conf

    # Mon port: first free one from a spot away from common services. Racy,
    # but a clash shows up as a mon that does not come up, reported below.
    mon_port=$((40000 + RANDOM % 20000))
    while _rgw_port_in_use "$mon_port"; do mon_port=$((mon_port + 1)); done

    fsid=$(uuidgen)
    _rgw_write_conf "$dir" "$fsid" "$mon_port" "$port"

    # --- mon
    if ! monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" \
        "$dir/monmap" >"$dir/log/monmaptool.out" 2>&1 ||
        ! ceph-mon --conf "$_RGW_CONF" --mkfs -i a --monmap "$dir/monmap" \
            >"$dir/log/mon-mkfs.out" 2>&1; then
        echo "radosgw_start: mon mkfs failed" >&2
        _rgw_show_logs "$dir" monmaptool.out mon-mkfs.out mon.a.log
        return 1
    fi
    _rgw_spawn "$dir" mon.a ceph-mon --conf "$_RGW_CONF" -f -i a
    deadline=$((SECONDS + 30))
    until _rgw_ceph mon stat >/dev/null 2>&1; do
        if ! kill -0 "$_RGW_LAST_PID" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "radosgw_start: mon did not come up on 127.0.0.1:$mon_port" >&2
            _rgw_show_logs "$dir" mon.a.out mon.a.log
            return 1
        fi
        sleep 0.2
    done

    # --- osd
    osd_uuid=$(uuidgen)
    # Registers osd.0 in the osdmap; the OSD puts itself into the crush map
    # (host = this machine) when it boots.
    osd_id=$(_rgw_ceph osd new "$osd_uuid" 2>"$dir/log/osd-new.out") || osd_id=""
    if [[ "$osd_id" != 0 ]]; then
        echo "radosgw_start: 'ceph osd new' failed (got '$osd_id')" >&2
        _rgw_show_logs "$dir" osd-new.out mon.a.log
        return 1
    fi
    if ! ceph-osd --conf "$_RGW_CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.out" 2>&1; then
        echo "radosgw_start: osd mkfs failed" >&2
        _rgw_show_logs "$dir" osd-mkfs.out osd.0.log
        return 1
    fi
    _rgw_spawn "$dir" osd.0 ceph-osd --conf "$_RGW_CONF" -f -i 0
    local osd_pid=$_RGW_LAST_PID
    deadline=$((SECONDS + 60))
    until _rgw_ceph osd dump 2>/dev/null | grep -q '^osd\.0 up'; do
        if ! kill -0 "$osd_pid" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "radosgw_start: osd.0 did not come up" >&2
            _rgw_show_logs "$dir" osd.0.out osd.0.log
            return 1
        fi
        sleep 0.2
    done

    # --- radosgw (creates its zone, zonegroup and pools on first start)
    _rgw_spawn "$dir" rgw.a radosgw --conf "$_RGW_CONF" -f -n client.rgw.a
    local rgw_pid=$_RGW_LAST_PID
    deadline=$((SECONDS + 90))
    until curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; do
        if ! kill -0 "$rgw_pid" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "radosgw_start: radosgw did not answer on 127.0.0.1:$port" >&2
            _rgw_show_logs "$dir" rgw.a.out client.rgw.a.log
            return 1
        fi
        sleep 0.2
    done

    if ! timeout 60 radosgw-admin --conf "$_RGW_CONF" user create --uid=pavilion \
        --display-name="Pavilion tests" --access-key="$RADOSGW_ACCESS_KEY" \
        --secret-key="$RADOSGW_SECRET_KEY" >"$dir/log/user-create.out" 2>&1; then
        echo "radosgw_start: radosgw-admin user create failed" >&2
        _rgw_show_logs "$dir" user-create.out client.admin.log
        return 1
    fi

    # Ready when a signed ListBuckets succeeds (the new user may take a moment
    # to be visible to radosgw).
    RADOSGW_ENDPOINT=http://127.0.0.1:$port
    deadline=$((SECONDS + 30))
    until radosgw_curl -f -o /dev/null --max-time 5 "$RADOSGW_ENDPOINT/"; do
        if ((SECONDS >= deadline)); then
            echo "radosgw_start: signed S3 request to $RADOSGW_ENDPOINT keeps failing" >&2
            radosgw_curl --max-time 5 "$RADOSGW_ENDPOINT/" >&2 || true
            _rgw_show_logs "$dir" client.rgw.a.log
            return 1
        fi
        sleep 0.2
    done

    export RADOSGW_ENDPOINT RADOSGW_ACCESS_KEY RADOSGW_SECRET_KEY RADOSGW_REGION
    _rgw_log "up on $RADOSGW_ENDPOINT in $((SECONDS - t0))s (logs: $dir/log)"
    printf 'RADOSGW_ENDPOINT=%s\nRADOSGW_ACCESS_KEY=%s\nRADOSGW_SECRET_KEY=%s\nRADOSGW_REGION=%s\n' \
        "$RADOSGW_ENDPOINT" "$RADOSGW_ACCESS_KEY" "$RADOSGW_SECRET_KEY" "$RADOSGW_REGION"
}

# _rgw_kill DIR: SIGKILL every daemon listed in DIR/pids and wait until it is
# gone. A pid is only killed while its command line still names DIR's conf
# file, so a stale list never hits an unrelated process that reused the pid.
_rgw_kill() {
    local dir=$1 pid pids=() i
    [[ -f "$dir/pids" ]] || return 0
    mapfile -t pids <"$dir/pids"
    # SIGKILL: the data is thrown away anyway, and a clean memstore shutdown
    # would first write everything it holds to disk.
    for pid in "${pids[@]}"; do
        if [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$dir/ceph.conf"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${pids[@]}"; do
        [[ "$pid" =~ ^[0-9]+$ ]] || continue
        for ((i = 0; i < 50; i++)); do
            if ! tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$dir/ceph.conf"; then
                break
            fi
            sleep 0.1
        done
    done
    : >"$dir/pids"
}

radosgw_stop() {
    local dir=${1:-}
    [[ -n "$dir" && -f "$dir/$_RGW_MARKER" ]] || return 0
    dir=$(cd "$dir" && pwd -P) || return 0
    _rgw_kill "$dir"
    rm -rf "$dir"
    return 0
}
