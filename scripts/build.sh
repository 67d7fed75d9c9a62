#!/usr/bin/env bash
# Builds storefront: installs the Debian packages that are missing, then the
# engine (build/libstorefront.a, build/storefrontctl, unit tests, benchmarks)
# and the dynamic module build/nginx/ngx_http_storefront_module.so against
# Debian's nginx-dev.
#
#   scripts/build.sh          packages + full build (same as `make`)
#   scripts/build.sh deps     only install missing packages
#
# Packages are installed with apt-get only when dpkg says they are missing;
# apt-get update runs only then.  Needs root or sudo for that step.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Build: compiler, make, nginx + headers, LMDB, yajl.
# Tests: perl (prove, core modules), curl, faketime (a moved clock for
# nginx), chromium (pages checked in a real browser); benchmarks: wrk.
packages=(
    gcc make libc6-dev
    nginx-core nginx-dev
    liblmdb-dev lmdb-utils libyajl-dev
    perl curl faketime chromium wrk
)

missing_packages() {
    local p status
    for p in "${packages[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) \
            || status=
        [ "$status" = installed ] || printf '%s\n' "$p"
    done
}

install_deps() {
    local missing
    mapfile -t missing < <(missing_packages)
    [ "${#missing[@]}" -eq 0 ] && return 0

    echo "installing missing packages: ${missing[*]}" >&2
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "not root and no sudo: install ${missing[*]} by hand" >&2
            exit 1
        }
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" </dev/null
}

case "${1:-all}" in
deps)
    install_deps
    ;;
all)
    install_deps
    jobs=$(nproc 2>/dev/null || echo 2)
    exec make -C "$repo" --no-print-directory -j"$jobs" engine module
    ;;
*)
    echo "usage: $0 [deps|all]" >&2
    exit 2
    ;;
esac
