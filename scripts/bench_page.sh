#!/usr/bin/env bash
# Edge page assembly benchmark, in one run: the same home page built from
# a shell and 6 cached fragments
#
#   A: by nginx's SSI module, a template with 6 `include virtual` lines
#   B: by storefront_assemble, the layout decided per request (6 modules)
#
# Both locations are served by ONE nginx worker with `storefront on` and
# the same visitor (the identity and experiment decision is made on both
# sides; B also decides the layout).  The fragments are proxied to a
# backend server of the same nginx and cached with proxy_cache: after the
# warm-up every fragment is a cache hit on both sides.  The script checks
# that A and B serve identical bytes before measuring.  Rounds alternate
# A/B in ABBA order; it prints each round's throughput and latency, the
# medians and the B/A ratio (median of the per-pair ratios); target B/A
# >= 1.0.
#
# usage: scripts/bench_page.sh [-r ROUNDS] [-d SECONDS] [-c CONNS]
#                              [--no-pin] [--check]
#   -r N      A/B pairs (default 5)
#   -d S      seconds per wrk run (default 5)
#   -c N      wrk connections (default 32)
#   --no-pin  do not pin the nginx worker and wrk to separate CPUs
#   --check   exit 1 when the B/A median ratio is below 1.0
# Environment: NGINX (default /usr/sbin/nginx), STOREFRONT_MODULE,
#   STOREFRONTCTL.
# Traffic goes to 127.0.0.1 only; the run stops by itself (about
# 2 * ROUNDS * SECONDS + a few seconds) and stops nginx even on Ctrl-C.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${STOREFRONT_MODULE:-$ROOT/build/nginx/ngx_http_storefront_module.so}
CTL=${STOREFRONTCTL:-$ROOT/build/storefrontctl}
ROUNDS=5
DURATION=5
CONNS=32
PIN=1
CHECK=0
TARGET=1.0

while [ $# -gt 0 ]; do
    case "$1" in
    -r) ROUNDS=$2; shift 2 ;;
    -d) DURATION=$2; shift 2 ;;
    -c) CONNS=$2; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --check) CHECK=1; shift ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "bench_page.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$ROUNDS$DURATION$CONNS" in
*[!0-9]*) echo "bench_page.sh: -r, -d and -c take whole numbers" >&2; exit 2 ;;
esac
if [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 20 ] || [ "$DURATION" -lt 1 ] \
   || [ "$DURATION" -gt 60 ] || [ "$CONNS" -lt 1 ] || [ "$CONNS" -gt 1000 ]
then
    echo "bench_page.sh: bounds: -r 1..20, -d 1..60, -c 1..1000" >&2
    exit 2
fi

BENCH=bench_page.sh
. "$ROOT/scripts/lib/bench.sh"

bench_need_wrk
[ -x "$NGINX" ] || die "no nginx binary at $NGINX"
[ -f "$MODULE" ] || die "module not built: $MODULE (run make)"
[ -x "$CTL" ] || die "storefrontctl not built: $CTL (run make)"
command -v curl >/dev/null 2>&1 || die "curl is missing"

PREFIX=$(mktemp -d "${TMPDIR:-/tmp}/sf-bench-page.XXXXXX")
NGINX_PID=


read -r PORT BACKEND < <(bench_free_ports 2)

mkdir -p "$PREFIX/conf" "$PREFIX/html/frag" "$PREFIX/logs" "$PREFIX/db" \
    "$PREFIX/cache" "$PREFIX/temp"

# ---- the page: a shell of about 2 KB and 6 fragments of about 1 KB ------

NAMES=(hero guess best new sale footer)

head_html() {
    printf '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    printf '<title>Demo shop</title>\n<style>\n'
    for i in $(seq 24); do
        printf '  .m%d { margin: %dpx 0; padding: .5rem 1rem;' "$i" "$i"
        printf ' border: 1px solid #ddd; }\n'
    done
    printf '</style>\n</head>\n<body>\n<header><h1>Demo shop</h1>'
    printf '<nav><a href="/">Home</a> <a href="/cart">Cart</a></nav></header>\n'
    printf '<main>\n'
}
tail_html() {
    printf '</main>\n<footer><p>Prices include VAT. Free shipping over 99 yuan.'
    printf '</p></footer>\n</body>\n</html>\n'
}

{ head_html; printf '<!--storefront:modules-->'; tail_html; } \
    > "$PREFIX/html/shell.html"
{
    head_html
    for i in "${!NAMES[@]}"; do
        printf '<!--# include virtual="/frag/%s?n=%d" -->' "${NAMES[$i]}" \
            $(( i + 1 ))
    done
    tail_html
} > "$PREFIX/html/ssi.html"

for n in "${NAMES[@]}"; do
    {
        printf '<section class="module %s" data-module="%s">\n' "$n" "$n"
        printf '<h2>%s</h2>\n<ul>\n' "$n"
        for i in $(seq 12); do
            printf '<li><a href="/p/%s-%d">Product %s %d</a>, %d yuan</li>\n' \
                "$n" "$i" "$n" "$i" $(( i * 37 ))
        done
        printf '</ul>\n</section>\n'
    } > "$PREFIX/html/frag/$n.html"
done

# The layout: the 6 modules with the parameters the SSI lines carry.
{
    printf '{"pages": {"modules": {'
    sep=
    for n in "${NAMES[@]}"; do
        printf '%s"%s": {"fragment": "/frag/%s"}' "$sep" "$n" "$n"
        sep=,
    done
    printf '}, "layouts": {"home": ['
    sep=
    for i in "${!NAMES[@]}"; do
        printf '%s{"module": "%s", "params": {"n": %d}}' "$sep" \
            "${NAMES[$i]}" $(( i + 1 ))
        sep=,
    done
    printf ']}, "pages": {"home": {"default": "home"}}}}\n'
} > "$PREFIX/pages.json"

"$CTL" --db "$PREFIX/db" import "$PREFIX/pages.json" >/dev/null \
    || die "storefrontctl import of the page layouts failed"

bench_as_nobody db cache temp

bench_pin

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
    default_type text/html;
    access_log off;
    keepalive_requests 1000000;
    open_file_cache max=64 inactive=60s;
    open_file_cache_valid 60s;

    client_body_temp_path $PREFIX/temp/client_body;
    proxy_temp_path $PREFIX/temp/proxy;
    fastcgi_temp_path $PREFIX/temp/fastcgi;
    uwsgi_temp_path $PREFIX/temp/uwsgi;
    scgi_temp_path $PREFIX/temp/scgi;

    storefront_db $PREFIX/db;
    proxy_cache_path $PREFIX/cache keys_zone=frag:1m use_temp_path=off;

    server {
        listen 127.0.0.1:$PORT;
        root $PREFIX/html;
        storefront on;
        storefront_user_id \$http_x_user_id;

        # A: SSI
        location = /ssi {
            ssi on;
            try_files /ssi.html =404;
        }

        # B: the module
        location = /module {
            storefront_page home;
            storefront_assemble /shell;
        }

        location = /shell {
            storefront off;
            try_files /shell.html =404;
        }

        location /frag/ {
            storefront off;
            proxy_pass http://127.0.0.1:$BACKEND;
            proxy_cache frag;
            proxy_cache_key \$uri\$is_args\$args;
            proxy_cache_valid 200 1h;
            subrequest_output_buffer_size 16k;
        }
    }

    server {
        listen 127.0.0.1:$BACKEND;
        root $PREFIX/html;
        access_log logs/backend.log;

        location /frag/ {
            try_files \$uri.html =404;
        }
    }
}
EOF

bench_start_nginx

UA="X-User-Id: bench-user"

fetch() {   # path file -> http code
    curl -s -o "$2" -w '%{http_code}' --max-time 5 -H "$UA" \
        "http://127.0.0.1:$PORT$1"
}
[ "$(fetch /ssi "$PREFIX/a.html")" = 200 ] || die "A (SSI) does not answer 200"
[ "$(fetch /module "$PREFIX/b.html")" = 200 ] \
    || die "B (module) does not answer 200"
# the second time every fragment comes from the cache
fetch /ssi "$PREFIX/a.html" >/dev/null
fetch /module "$PREFIX/b.html" >/dev/null
cmp -s "$PREFIX/a.html" "$PREFIX/b.html" \
    || die "A and B differ: $(cmp "$PREFIX/a.html" "$PREFIX/b.html" 2>&1)"
grep -q 'data-module="footer"' "$PREFIX/b.html" \
    || die "the page lacks its fragments"
BYTES=$(wc -c < "$PREFIX/b.html")
FETCHED=$(wc -l < "$PREFIX/logs/backend.log")
[ "$FETCHED" -eq 6 ] || die "the backend served $FETCHED fragments, not 6:" \
    "the fragments are not cached"
LAYOUT=$(curl -s -o /dev/null -D - -H "$UA" "http://127.0.0.1:$PORT/module" \
    | tr -d '\r' | awk -F': ' 'tolower($1) == "content-length" { print $2 }')
[ "$LAYOUT" = "$BYTES" ] || die "B's Content-Length ($LAYOUT) is not $BYTES"

echo "storefront page assembly benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine: $NCPU CPUs, $(lscpu 2>/dev/null \
    | sed -n 's/^Model name: *//p' | head -1), $(uname -r)"
echo "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), 1 worker" \
     "${AFFINITY:+(pinned CPU 0, wrk on CPU 1)}"
echo "page: $BYTES bytes, shell + 6 cached fragments; A and B identical"
echo "A: SSI include virtual x 6; B: storefront_assemble (layout decided" \
     "per request)"
echo "wrk -t1 -c$CONNS -d${DURATION}s --latency, $ROUNDS pairs ABBA"
echo "columns: req/s, latency p50/p99 (ms), nginx worker CPU us per request"
echo

# wrk run -> "rps p50_ms p99_ms errors worker_cpu_us_per_request"
measure() {   # path seconds [ignored]
    local t0 t1
    t0=$(worker_ticks)
    timeout $(( $2 + 15 )) "${WRK_PIN[@]}" wrk -t1 -c"$CONNS" -d"$2"s \
        --latency -H "$UA" "http://127.0.0.1:$PORT$1" > "$PREFIX/wrk.out"
    t1=$(worker_ticks)
    wrk_summary "$PREFIX/wrk.out" $(( t1 - t0 )) "$2"
}

measure /ssi 1 >/dev/null
measure /module 1 >/dev/null
[ "$(wc -l < "$PREFIX/logs/backend.log")" -eq 6 ] \
    || die "the backend was asked again: the fragments are not cached"

# the two sides, as measure takes them: A is SSI, B the module
PORT_A=/ssi
PORT_B=/module

run_pairs "module/SSI" ""
RESULT=$(awk -v r="$RATIO_MED" -v t="$TARGET" \
    'BEGIN { print (r >= t) ? "MET" : "MISSED" }')

if grep -q '\[\(alert\|crit\|emerg\)\]' "$PREFIX/logs/error.log"; then
    echo "error log:"; grep '\[\(alert\|crit\|emerg\)\]' \
        "$PREFIX/logs/error.log" | tail -5
fi

if [ "$CHECK" -eq 1 ] && [ "$RESULT" != MET ]; then
    exit 1
fi
