# shellcheck shell=bash
# Azurite, Microsoft's Azure Storage emulator (npm package `azurite`), for the
# tests of Pavilion's Azure Blob backend. Source after common.sh.
#
#   azurite_install ROOT         npm install into ROOT/.tools/azurite (once)
#   azurite_start ROOT DIR PORT  blob service on 127.0.0.1:PORT, data in memory;
#                                exports AZURITE_BLOB_URL
#   azurite_stop DIR             safe to call twice

AZURITE_VERSION=3.37.0

azurite_install() {
    local root=$1 dir="$1/.tools/azurite"
    if [[ -x "$dir/node_modules/.bin/azurite-blob" ]]; then
        return 0
    fi
    command -v npm >/dev/null || ensure_debs nodejs npm
    mkdir -p "$dir"
    info "installing azurite $AZURITE_VERSION (npm, into $dir)"
    (cd "$dir" && quietly "${SETUP_LOG:-/tmp/pavilion-setup.log}" npm install --no-audit \
        --no-fund --no-save --no-progress "azurite@$AZURITE_VERSION") || return 1
    [[ -x "$dir/node_modules/.bin/azurite-blob" ]]
}

azurite_start() {
    local root=$1 dir=$2 port=$3
    mkdir -p "$dir"
    "$root/.tools/azurite/node_modules/.bin/azurite-blob" \
        --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence \
        --skipApiVersionCheck --silent \
        >"$dir/azurite.log" 2>&1 &
    echo $! >"$dir/pid"
    local i
    for ((i = 0; i < 100; i++)); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/devstoreaccount1?comp=list"; then
            export AZURITE_BLOB_URL="http://127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$dir/azurite.log" >&2
    return 1
}

azurite_stop() {
    local dir=$1
    if [[ -f "$dir/pid" ]]; then
        kill "$(cat "$dir/pid")" 2>/dev/null || true
        rm -f "$dir/pid"
    fi
}
