#!/usr/bin/env bash
# A/B throughput benchmark of the storefront module with exposure counting
# on (storefront_stats, the default), in one run: the foundation benchmark
# (scripts/bench.sh) plus the exposures.
#
#   A: plain nginx serving a small static file (a second pass compares
#      with C: `storefront on` and `storefront_stats off`, the foundation)
#   B: the same location with `storefront on`, 10 active experiments in the
#      database, exposure counting on (storefront_stats_flush 1s) and the
#      cookie path (every request carries a valid anonymous id cookie, so
#      each request reads the cookie, evaluates them all and counts its
#      exposures: after the first request of a visitor a lookup in the
#      worker's set of recent pairs)
#   --visitors N: the requests cycle through N visitors (a wrk script sets
#      a different valid cookie per request), so the exposures of N new
#      users are buffered and written on the timer: the counting's real work
#
# Both are served by ONE nginx (same worker, two loopback ports), so the
# only difference is `storefront on`.  Rounds alternate A/B in ABBA order;
# the script prints each round's throughput and p50/p99 latency, the median
# of each side and the B/A ratio as the median of the per-pair ratios.
# A static file (not `return 200`) is served on both sides because
# `return` ends the request in the rewrite phase, before the module's
# phase handler would run.
#
# usage: scripts/bench_stats.sh [-r ROUNDS] [-d SECONDS] [-c CONNS]
#                         [--visitors N] [--no-pin] [--check]
#   -r N      A/B pairs (default 5)
#   -d S      seconds per wrk run (default 5)
#   -c N      wrk connections (default 32)
#   --visitors N  also measure with N visitors in turn (1..1000000)
#   --no-pin  do not pin the nginx worker and wrk to separate CPUs
#   --no-cache  without storefront_decision_cache (every request decides
#             from the database; by default a returning visitor's decision
#             comes from the worker's cache, checked against the data)
#   --check   exit 1 when a B/A median ratio is below 0.93
# Environment: NGINX (default /usr/sbin/nginx), STOREFRONT_MODULE,
#   STOREFRONTCTL, BENCH_EXPERIMENTS (an import file; one with no
#   experiments measures the module's fixed cost).
# After the rounds the script prints the exposure counters of the run
# (storefront_metrics on A's port): exposures written, writes, their time,
# drops.  Traffic goes to 127.0.0.1 only; the run stops by itself (about
# 2 * ROUNDS * SECONDS per mode + a few seconds) and stops nginx even on
# Ctrl-C.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${STOREFRONT_MODULE:-$ROOT/build/nginx/ngx_http_storefront_module.so}
CTL=${STOREFRONTCTL:-$ROOT/build/storefrontctl}
EXPERIMENTS=${BENCH_EXPERIMENTS:-$ROOT/conf/bench/experiments.json}
ROUNDS=5
DURATION=5
CONNS=32
VISITORS=0
PIN=1
CACHE=1
CHECK=0
TARGET=0.93

while [ $# -gt 0 ]; do
    case "$1" in
    -r) ROUNDS=$2; shift 2 ;;
    -d) DURATION=$2; shift 2 ;;
    -c) CONNS=$2; shift 2 ;;
    --visitors) VISITORS=$2; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --no-cache) CACHE=0; shift ;;
    --check) CHECK=1; shift ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "bench_stats.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$ROUNDS$DURATION$CONNS$VISITORS" in
*[!0-9]*) echo "bench_stats.sh: -r, -d and -c take whole numbers" >&2; exit 2 ;;
esac
if [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 20 ] || [ "$DURATION" -lt 1 ] \
   || [ "$DURATION" -gt 60 ] || [ "$CONNS" -lt 1 ] || [ "$CONNS" -gt 1000 ] \
   || [ "$VISITORS" -gt 1000000 ]
then
    echo "bench_stats.sh: bounds: -r 1..20, -d 1..60, -c 1..1000," \
         "--visitors 1..1000000" >&2
    exit 2
fi

BENCH=bench_stats.sh
. "$ROOT/scripts/lib/bench.sh"

bench_need_wrk
[ -x "$NGINX" ] || die "no nginx binary at $NGINX"
[ -f "$MODULE" ] || die "module not built: $MODULE (run make)"
[ -x "$CTL" ] || die "storefrontctl not built: $CTL (run make)"
[ -f "$EXPERIMENTS" ] || die "no experiments file: $EXPERIMENTS"
command -v curl >/dev/null 2>&1 || die "curl is missing"

PREFIX=$(mktemp -d "${TMPDIR:-/tmp}/sf-bench-stats.XXXXXX")
NGINX_PID=


read -r PORT_A PORT_B PORT_C < <(bench_free_ports 3)

mkdir -p "$PREFIX/conf" "$PREFIX/html" "$PREFIX/logs" "$PREFIX/db"
printf 'ok\n' > "$PREFIX/html/index.html"

"$CTL" --db "$PREFIX/db" import "$EXPERIMENTS" >/dev/null \
    || die "storefrontctl import failed"
NEXP=$("$CTL" --db "$PREFIX/db" list 2>/dev/null | grep -c ' active ' || true)

bench_as_nobody db

CACHE_LINE=
if [ "$CACHE" -eq 1 ]; then
    CACHE_LINE="storefront_decision_cache max=100000 valid=10s;"
fi

bench_pin

# Identical locations; B differs only by `storefront on`.
LOCATION="
        location / {
            root html;
            index index.html;
            add_header X-Variants \$storefront_variants;
        }"

cat > "$PREFIX/conf/nginx.conf" <<EOF
load_module $MODULE;
$USER_LINE
worker_processes 1;
$AFFINITY
error_log logs/error.log warn;
pid logs/nginx.pid;

events {
    worker_connections 1024;
}

http {
    default_type text/plain;
    access_log off;
    keepalive_requests 1000000;
    open_file_cache max=16 inactive=60s;
    open_file_cache_valid 60s;

    storefront_db $PREFIX/db;
    storefront_cookie sf_anon;
    $CACHE_LINE
    storefront_stats on;
    storefront_stats_flush 1s;

    server {
        listen 127.0.0.1:$PORT_A;
        $LOCATION
        location = /sf-metrics { storefront_metrics; }
    }

    server {
        listen 127.0.0.1:$PORT_B;
        storefront on;
        $LOCATION
    }

    # the foundation: B without the counting
    server {
        listen 127.0.0.1:$PORT_C;
        storefront on;
        storefront_stats off;
        $LOCATION
    }
}
EOF

bench_start_nginx

# A valid anonymous id: 32 hex characters.
ANON=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
COOKIE="sf_anon=$ANON"

bench_check_ab

echo "storefront A/B benchmark, exposure counting on  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine: $NCPU CPUs, $(lscpu 2>/dev/null \
    | sed -n 's/^Model name: *//p' | head -1), $(uname -r)"
echo "decision cache: ${CACHE_LINE:-off (--no-cache)}"
echo "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), 1 worker" \
     "${AFFINITY:+(pinned CPU 0, wrk on CPU 1)}"
echo "active experiments in db: $NEXP; B assigns this cookie to $NDEC: $VB"
echo "wrk -t1 -c$CONNS -d${DURATION}s --latency, cookie $COOKIE," \
     "$ROUNDS pairs ABBA"
echo "columns: req/s, latency p50/p99 (ms), nginx worker CPU us per request"
echo

# Warm up both sides (caches, page faults, the worker's snapshot).
measure "$PORT_A" 1 "$COOKIE" >/dev/null
measure "$PORT_B" 1 "$COOKIE" >/dev/null
measure "$PORT_C" 1 "$COOKIE" >/dev/null

echo "== cookie path (valid sf_anon cookie, evaluate all experiments)"
run_pairs "cookie path" "$COOKIE"
COOKIE_RATIO=$RATIO_MED

echo
echo "== the counting's own cost: A = storefront on without it (the" \
     "foundation), B = with it"
run_pairs "counting alone" "$COOKIE" "$PORT_C" 0.97

VISITORS_RATIO=
if [ "$VISITORS" -gt 0 ]; then
    bench_visitors_script "$VISITORS" "$PREFIX/visitors.lua"
    echo
    echo "== $VISITORS visitors in turn (their exposures buffered and written)"
    run_pairs "$VISITORS visitors" "@$PREFIX/visitors.lua"
    VISITORS_RATIO=$RATIO_MED
fi

# What the counting did during the run (all rounds and warm-ups).
sleep 1.5
curl -s --max-time 5 "http://127.0.0.1:$PORT_A/sf-metrics" > "$PREFIX/metrics" \
    || true
echo
awk '
    $1 == "storefront_requests_decided_total"      { d = $2 }
    $1 == "storefront_exposures_buffered_total"    { b = $2 }
    $1 == "storefront_exposures_recorded_total"    { n = $2 }
    $1 == "storefront_exposures_dropped_total"     { x = $2 }
    $1 == "storefront_exposure_flushes_total"      { f = $2 }
    $1 == "storefront_exposure_flush_seconds_total" { s = $2 }
    END {
        printf "exposure counting: %d requests decided, %d exposures " \
               "buffered, %d new users written in %d writes (%.3f s, " \
               "%.2f ms per write), %d dropped\n", d, b, n, f, s,
               f ? s * 1000 / f : 0, x
    }' "$PREFIX/metrics"

ALERTS=$(grep -cE '\[(alert|emerg|crit)\]' "$PREFIX/logs/error.log" || true)
[ "$ALERTS" -eq 0 ] \
    || echo "warning: $ALERTS alert/crit lines in nginx's error log" >&2

if [ "$CHECK" -eq 1 ]; then
    awk -v r="$COOKIE_RATIO" -v v="${VISITORS_RATIO:-1}" -v t="$TARGET" \
        'BEGIN { exit !(r >= t && v >= t) }'
fi
