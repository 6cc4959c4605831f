# shellcheck shell=bash
# Shared helpers for scripts/test and bench/registry. Source, don't execute.

# Bold section header on stderr, so stdout stays clean for results. Bold
# only on a terminal and without NO_COLOR: logs and pipes get plain text.
section() {
    if [[ -t 2 && -z "${NO_COLOR:-}" ]]; then
        printf '\n\033[1m==> %s\033[0m\n' "$*" >&2
    else
        printf '\n==> %s\n' "$*" >&2
    fi
}

info() {
    printf '    %s\n' "$*" >&2
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# missing_debs PKG...: print the packages (one per line) not installed yet.
missing_debs() {
    local pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [[ "$status" == "install ok installed" ]] || echo "$pkg"
    done
}

# quietly LOG CMD...: run CMD with its output appended to LOG (package
# managers' progress stays out of the test log); on failure show LOG's tail.
quietly() {
    local log=$1
    shift
    mkdir -p "$(dirname "$log")"
    if ! "$@" >>"$log" 2>&1; then
        tail -n 30 "$log" | sed 's/^/    | /' >&2
        info "failed: $* (whole log: $log)"
        return 1
    fi
}

# ensure_debs PKG...: install the Debian packages that are not installed yet.
# Does nothing (and never touches apt) when all are present. apt's and
# dpkg's output goes to $SETUP_LOG (default /tmp/pavilion-setup.log).
ensure_debs() {
    local missing
    mapfile -t missing < <(missing_debs "$@")
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    info "installing Debian packages: ${missing[*]}"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
        sudo=(sudo)
    fi
    # Wait for a concurrently running apt/dpkg instead of failing on its lock.
    local apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
    local log=${SETUP_LOG:-/tmp/pavilion-setup.log}
    quietly "$log" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" -q update ||
        die "apt-get update failed"
    quietly "$log" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" -q -y \
        --no-install-recommends install "${missing[@]}" ||
        die "apt-get install failed"
}

# port_in_use PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port [START]: print the first port >= START (default 55432) that nobody
# listens on. Racy by nature; callers that bind should retry on failure.
free_port() {
    local port=${1:-55432}
    while port_in_use "$port"; do
        port=$((port + 1))
        ((port < 65535)) || die "no free port found"
    done
    echo "$port"
}

# wait_http URL [TIMEOUT_SECS] [PID]: wait until URL answers any HTTP status.
# Fails early if PID (the server) exits.
wait_http() {
    local url=$1 timeout=${2:-30} pid=${3:-} deadline
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        if curl -s -o /dev/null --max-time 2 "$url"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# repo_root: absolute path of the repository containing this file.
repo_root() {
    cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P
}
