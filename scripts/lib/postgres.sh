# shellcheck shell=bash
# Throwaway PostgreSQL cluster for tests. Source after common.sh.
#
#   pg_start            -> sets PG_DIR, PG_PORT, PG_URL; cluster listens on 127.0.0.1 only
#   pg_stop             -> stops the cluster and deletes PG_DIR (safe to call twice)
#
# initdb refuses to run as root, so the cluster belongs to the `postgres` user
# (created by the Debian postgresql package) and lives in /tmp (mode 1777, so
# postgres can enter it) rather than under the repo, which may sit below a
# directory postgres cannot traverse (e.g. /root).

# shellcheck disable=SC2034  # PG_URL/PG_PORT are for the caller
PG_DIR=""
PG_PORT=""
PG_URL=""
PG_BIN=""

_pg_find_bin() {
    local d
    # Highest installed major version wins.
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            PG_BIN=$d
            return 0
        fi
    done
    die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
}

# Run a command as the postgres user (or as ourselves when not root), from a
# directory that user can read, so it does not complain about our cwd.
_pg_as() {
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# Remove clusters left behind by runs that were killed with SIGKILL.
_pg_reap_stale() {
    local d pid
    for d in /tmp/pavilion-test-pg-*; do
        [[ -d "$d" ]] || continue
        pid=${d##*-}
        pid=${pid%%.*}
        [[ "$pid" =~ ^[0-9]+$ ]] || continue
        kill -0 "$pid" 2>/dev/null && continue
        if [[ -f "$d/data/postmaster.pid" ]]; then
            _pg_as "$PG_BIN/pg_ctl" -D "$d/data" -m immediate -w stop >/dev/null 2>&1 || true
        fi
        rm -rf "$d"
    done
}

pg_start() {
    _pg_find_bin
    _pg_reap_stale
    PG_DIR=$(mktemp -d "/tmp/pavilion-test-pg-$$.XXXXXX")
    chmod 700 "$PG_DIR"
    if ((EUID == 0)); then
        chown postgres:postgres "$PG_DIR"
    fi

    _pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust \
        -E UTF8 --locale=C.UTF-8 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }

    local port=55432 attempt
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        port=$(free_port "$port")
        # Options go on the postgres command line so a retry can change the port.
        if _pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -c port=$port \
                -c unix_socket_directories=$PG_DIR \
                -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                -c max_connections=300 -c log_min_messages=warning" \
            start >/dev/null; then
            PG_PORT=$port
            # shellcheck disable=SC2034
            PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
            return 0
        fi
        info "PostgreSQL failed to start on port $port (attempt $attempt), retrying"
        tail -n 5 "$PG_DIR/server.log" >&2 || true
        port=$((port + 1))
    done
    die "could not start PostgreSQL (log: $PG_DIR/server.log)"
}

pg_stop() {
    [[ -n "$PG_DIR" && -d "$PG_DIR" ]] || return 0
    if [[ -f "$PG_DIR/data/postmaster.pid" ]]; then
        _pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_DIR"
    PG_DIR=""
}
