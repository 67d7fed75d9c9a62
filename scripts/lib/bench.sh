# Pieces the benchmark scripts share.  The script sets BENCH (its name,
# for messages), PREFIX (its temporary nginx prefix) and NGINX_PID before
# calling them; sourcing this file installs the exit and interrupt traps.

die() { echo "$BENCH: $*" >&2; exit 1; }

# wrk, from Debian's package when missing (as root).
bench_need_wrk() {
    command -v wrk >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "$BENCH: installing wrk" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null \
            || die "apt-get install wrk failed"
    else
        die "wrk is missing: apt-get install wrk"
    fi
}

# Stops the benchmark's nginx (TERM, then KILL) and removes its prefix.
cleanup() {
    local pid i
    trap - EXIT INT TERM
    [ -n "${PREFIX:-}" ] || return 0
    if [ -f "$PREFIX/logs/nginx.pid" ]; then
        pid=$(cat "$PREFIX/logs/nginx.pid" 2>/dev/null || true)
    else
        pid=${NGINX_PID:-}
    fi
    if [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$PREFIX"
}

# CPU ticks (user + system) of the nginx workers so far.
worker_ticks() {
    local pid t=0 v
    for pid in $(pgrep -P "$NGINX_PID"); do
        v=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
        t=$(( t + v ))
    done
    echo "$t"
}

trap cleanup EXIT
trap 'echo "$BENCH: interrupted" >&2; exit 130' INT TERM
