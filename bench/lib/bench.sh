# shellcheck shell=bash
# Shared helpers for bench/registry, bench/models and bench/big: rounds that
# alternate the order of the sides, min and median over rounds, the machine
# header (load average, CPU, cores, the benched binary), RSS sampling.
# Source after scripts/lib/common.sh; don't execute.

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", b / 1e6 / s; else print "inf" }'; }
is_num() { [[ "$1" =~ ^[0-9]+(\.[0-9]+)?$ ]]; }

# bench_rounds: the validated number of rounds from BENCH_ROUNDS (default 3).
bench_rounds() {
    local n=${BENCH_ROUNDS:-3}
    if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > 100)); then
        die "bad BENCH_ROUNDS=$n (1-100)"
    fi
    echo "$n"
}

# round_order ROUND SIDE...: the sides in the order given on odd rounds,
# reversed on even rounds (round 1: a b c; round 2: c b a; round 3: a b c).
round_order() {
    local r=$1 i
    shift
    local sides=("$@")
    if ((r % 2 == 1)); then
        printf '%s\n' "${sides[@]}"
    else
        for ((i = ${#sides[@]} - 1; i >= 0; i--)); do
            printf '%s\n' "${sides[$i]}"
        done
    fi
}

# stat_of min|median|max VALUE...: over the numeric values; a value that is
# not a number (FAIL, fail, n/a) is skipped. Prints the first non-numeric
# value if there is no numeric one, "—" if there is no value at all.
# The median of an even count is the mean of the two middle values.
# Printed with the precision of the values (the inputs' widest fraction, at
# most 6 decimals; one more for a mean of two middle values that needs it).
stat_of() {
    local what=$1 v nums=() other="" dec=0 d
    shift
    for v in "$@"; do
        if is_num "$v"; then
            nums+=("$v")
            if [[ "$v" == *.* ]]; then
                d=${v#*.}
                ((${#d} > dec)) && dec=${#d}
            fi
        elif [[ -z "$other" && -n "$v" ]]; then
            other=$v
        fi
    done
    if ((${#nums[@]} == 0)); then
        echo "${other:-—}"
        return
    fi
    ((dec <= 6)) || dec=6
    printf '%s\n' "${nums[@]}" | sort -g | awk -v what="$what" -v dec="$dec" '
        { v[NR] = $1 }
        END {
            if (what == "min") r = v[1]
            else if (what == "max") r = v[NR]
            else if (NR % 2) r = v[(NR + 1) / 2]
            else { r = (v[NR / 2] + v[NR / 2 + 1]) / 2; if (sprintf("%.*f", dec, r) + 0 != r) dec++ }
            printf "%.*f\n", dec, r
        }'
}

# count_bad VALUE...: how many values are not numbers (failed rounds).
count_bad() {
    local v n=0
    for v in "$@"; do
        is_num "$v" || n=$((n + 1))
    done
    echo "$n"
}

# ratio_x A B: "1.23×" = A / B, or "—" if either is not a positive number.
ratio_x() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && a > 0 && b > 0) printf "%.2f×", a / b; else print "—" }'
}

# ---------------------------------------------------------------- machine header
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

cpu_model() {
    local m
    m=$(LC_ALL=C lscpu 2>/dev/null | awk -F: '/^Model name:/ { sub(/^[ \t]+/, "", $2); print $2; exit }')
    [[ -n "$m" ]] || m=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    echo "${m:-unknown}"
}

# cpu_cores: "N online (P physical cores, S sockets)" as far as lscpu says.
cpu_cores() {
    local n c s
    n=$(nproc)
    c=$(LC_ALL=C lscpu 2>/dev/null | awk -F: '/^Core\(s\) per socket:/ { gsub(/ /, "", $2); print $2; exit }')
    s=$(LC_ALL=C lscpu 2>/dev/null | awk -F: '/^Socket\(s\):/ { gsub(/ /, "", $2); print $2; exit }')
    if [[ "$c" =~ ^[0-9]+$ && "$s" =~ ^[0-9]+$ ]]; then
        echo "$n online ($((c * s)) cores in $s socket(s))"
    else
        echo "$n online"
    fi
}

# binary_identity BIN ROOT: which code the benched binary is. Its commit if
# `BIN --version` prints one (7+ hex digits); otherwise what it prints, its
# size, mtime and SHA-256 prefix, and the checkout's commit, said to be the
# checkout's (not necessarily the binary's).
binary_identity() {
    local bin=$1 root=$2 ver commit checkout sum
    ver=$(timeout 10 "$bin" --version </dev/null 2>/dev/null | head -n 1) || ver=""
    commit=$(grep -oE '\b[0-9a-f]{7,40}\b' <<<"$ver" | head -n 1) || commit=""
    if [[ -n "$commit" ]]; then
        echo "\`$ver\` (commit $commit, from the binary)"
        return
    fi
    checkout=$(git -C "$root" describe --always --dirty 2>/dev/null || echo "?")
    sum=$(sha256sum "$bin" 2>/dev/null | cut -c1-12)
    # shellcheck disable=SC2016 # the backquotes are markdown
    printf '`%s` (prints no commit; binary %s, %s bytes, built %s, sha256 %s…); the checkout the script ran from is at git %s, which is the checkout'"'"'s commit, not necessarily the binary'"'"'s\n' \
        "${ver:-?}" "$(basename "$bin")" "$(stat -c %s "$bin")" \
        "$(date -u -r "$bin" '+%Y-%m-%d %H:%M UTC')" "$sum" "$checkout"
}

# ---------------------------------------------------------------- RSS
# rss_kib PID: "VmRSS VmHWM RssAnon" in KiB, or nothing if the process is gone.
rss_kib() {
    awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } /^RssAnon:/ { a = $2 }
        END { if (r != "") print r, h, (a == "" ? "-" : a) }' "/proc/$1/status" 2>/dev/null || true
}

# child_of PID: the first child process of PID (e.g. the real program run by
# `timeout`), from /proc/PID/task/*/children, else from ps.
child_of() {
    local c
    c=$(cat /proc/"$1"/task/*/children 2>/dev/null | awk '{ print $1; exit }') || c=""
    [[ -n "$c" ]] || c=$(ps -o pid= --ppid "$1" 2>/dev/null | awk '{ print $1; exit }') || c=""
    echo "$c"
}
