#!/usr/bin/env bash
# A/B throughput benchmark of the storefront module, in one run.
#
#   A: plain nginx serving a small static file
#   B: the same location with `storefront on`, 10 active experiments in the
#      database and the cookie path (every request carries a valid anonymous
#      id cookie: each request reads the cookie and gets the decisions of
#      that visitor, computed on the first request and then taken from the
#      worker's decision cache while the data is unchanged; --no-cache
#      evaluates them all on every request)
#
# Both are served by ONE nginx (same worker, two loopback ports), so the
# only difference is `storefront on`.  Rounds alternate A/B in ABBA order;
# the script prints each round's throughput and p50/p99 latency, the median
# of each side and the B/A ratio as the median of the per-pair ratios.
# A static file (not `return 200`) is served on both sides because
# `return` ends the request in the rewrite phase, before the module's
# phase handler would run.
#
# usage: scripts/bench.sh [-r ROUNDS] [-d SECONDS] [-c CONNS] [--mint]
#                         [--visitors N] [--no-pin] [--no-cache] [--check]
#   -r N      A/B pairs (default 5)
#   -d S      seconds per wrk run (default 5)
#   -c N      wrk connections (default 32)
#   --mint    also measure B without a cookie (an id minted per request)
#   --visitors N  also measure with N visitors in turn (1..1000000; a wrk
#             script sets a different valid cookie per request)
#   --no-pin  do not pin the nginx worker and wrk to separate CPUs
#   --no-cache  without storefront_decision_cache (every request decides
#             from the database; by default a returning visitor's decision
#             comes from the worker's cache, checked against the data)
#   --check   exit 1 when the B/A median ratio is below 0.95
# Environment: NGINX (default /usr/sbin/nginx), STOREFRONT_MODULE,
#   STOREFRONTCTL, BENCH_EXPERIMENTS (an import file; one with no
#   experiments measures the module's fixed cost).
# Traffic goes to 127.0.0.1 only; the run stops by itself (about
# 2 * ROUNDS * SECONDS + a few seconds) and stops nginx even on Ctrl-C.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${STOREFRONT_MODULE:-$ROOT/build/nginx/ngx_http_storefront_module.so}
CTL=${STOREFRONTCTL:-$ROOT/build/storefrontctl}
EXPERIMENTS=${BENCH_EXPERIMENTS:-$ROOT/conf/bench/experiments.json}
ROUNDS=5
DURATION=5
CONNS=32
MINT=0
VISITORS=0
PIN=1
CACHE=1
CHECK=0
TARGET=0.95

while [ $# -gt 0 ]; do
    case "$1" in
    -r) ROUNDS=$2; shift 2 ;;
    -d) DURATION=$2; shift 2 ;;
    -c) CONNS=$2; shift 2 ;;
    --mint) MINT=1; shift ;;
    --visitors) VISITORS=$2; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --no-cache) CACHE=0; shift ;;
    --check) CHECK=1; shift ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$ROUNDS$DURATION$CONNS$VISITORS" in
*[!0-9]*) echo "bench.sh: -r, -d, -c and --visitors take whole numbers" >&2
          exit 2 ;;
esac
if [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 20 ] || [ "$DURATION" -lt 1 ] \
   || [ "$DURATION" -gt 60 ] || [ "$CONNS" -lt 1 ] || [ "$CONNS" -gt 1000 ] \
   || [ "$VISITORS" -gt 1000000 ]
then
    echo "bench.sh: bounds: -r 1..20, -d 1..60, -c 1..1000," \
         "--visitors 1..1000000" >&2
    exit 2
fi

BENCH=bench.sh
. "$ROOT/scripts/lib/bench.sh"

bench_need_wrk
[ -x "$NGINX" ] || die "no nginx binary at $NGINX"
[ -f "$MODULE" ] || die "module not built: $MODULE (run make)"
[ -x "$CTL" ] || die "storefrontctl not built: $CTL (run make)"
[ -f "$EXPERIMENTS" ] || die "no experiments file: $EXPERIMENTS"
command -v curl >/dev/null 2>&1 || die "curl is missing"

PREFIX=$(mktemp -d "${TMPDIR:-/tmp}/sf-bench.XXXXXX")
NGINX_PID=


read -r PORT_A PORT_B < <(bench_free_ports 2)

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

    server {
        listen 127.0.0.1:$PORT_A;
        $LOCATION
    }

    server {
        listen 127.0.0.1:$PORT_B;
        storefront on;
        $LOCATION
    }
}
EOF

bench_start_nginx

# A valid anonymous id: 32 hex characters.
ANON=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
COOKIE="sf_anon=$ANON"

bench_check_ab

echo "storefront A/B benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
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

echo "== cookie path (valid sf_anon cookie, evaluate all experiments)"
run_pairs "cookie path" "$COOKIE"
COOKIE_RATIO=$RATIO_MED

VISITORS_RATIO=
if [ "$VISITORS" -gt 0 ]; then
    bench_visitors_script "$VISITORS" "$PREFIX/visitors.lua"
    echo
    echo "== $VISITORS visitors in turn (a different cookie per request)"
    run_pairs "$VISITORS visitors" "@$PREFIX/visitors.lua"
    VISITORS_RATIO=$RATIO_MED
fi

if [ "$MINT" -eq 1 ]; then
    echo
    echo "== minting path (no cookie: a new id and Set-Cookie per request)"
    run_pairs "minting path" ""
fi

ALERTS=$(grep -cE '\[(alert|emerg|crit)\]' "$PREFIX/logs/error.log" || true)
[ "$ALERTS" -eq 0 ] \
    || echo "warning: $ALERTS alert/crit lines in nginx's error log" >&2

if [ "$CHECK" -eq 1 ]; then
    awk -v r="$COOKIE_RATIO" -v v="${VISITORS_RATIO:-1}" -v t="$TARGET" \
        'BEGIN { exit !(r >= t && v >= t) }'
fi
