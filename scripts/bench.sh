#!/usr/bin/env bash
# A/B throughput benchmark of the storefront module, in one run.
#
#   A: plain nginx serving a small static file
#   B: the same location with `storefront on`, 10 active experiments in the
#      database and the cookie path (every request carries a valid anonymous
#      id cookie, so each request reads the cookie and evaluates them all)
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
#                         [--no-pin] [--check]
#   -r N      A/B pairs (default 5)
#   -d S      seconds per wrk run (default 5)
#   -c N      wrk connections (default 32)
#   --mint    also measure B without a cookie (an id minted per request)
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
    --no-pin) PIN=0; shift ;;
    --no-cache) CACHE=0; shift ;;
    --check) CHECK=1; shift ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$ROUNDS$DURATION$CONNS" in
*[!0-9]*) echo "bench.sh: -r, -d and -c take whole numbers" >&2; exit 2 ;;
esac
if [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 20 ] || [ "$DURATION" -lt 1 ] \
   || [ "$DURATION" -gt 60 ] || [ "$CONNS" -lt 1 ] || [ "$CONNS" -gt 1000 ]
then
    echo "bench.sh: bounds: -r 1..20, -d 1..60, -c 1..1000" >&2
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


# Two free loopback ports, chosen by the kernel.
read -r PORT_A PORT_B < <(perl -MIO::Socket::INET -e '
    my @s = map { IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
        LocalPort => 0, ReuseAddr => 1) or die "socket: $!\n" } 1 .. 2;
    print join(" ", map { $_->sockport } @s), "\n";')

mkdir -p "$PREFIX/conf" "$PREFIX/html" "$PREFIX/logs" "$PREFIX/db"
printf 'ok\n' > "$PREFIX/html/index.html"

"$CTL" --db "$PREFIX/db" import "$EXPERIMENTS" >/dev/null \
    || die "storefrontctl import failed"
NEXP=$("$CTL" --db "$PREFIX/db" list 2>/dev/null | grep -c ' active ' || true)

# Workers run as nobody when started as root: give them the database.
USER_LINE=
if [ "$(id -u)" -eq 0 ]; then
    chmod 755 "$PREFIX"
    chown -R nobody:"$(id -gn nobody)" "$PREFIX/db"
    USER_LINE="user nobody $(id -gn nobody);"
fi

CACHE_LINE=
if [ "$CACHE" -eq 1 ]; then
    CACHE_LINE="storefront_decision_cache max=100000 valid=10s;"
fi

NCPU=$(nproc)
AFFINITY=
WRK_PIN=()
if [ "$PIN" -eq 1 ] && [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null
then
    AFFINITY="worker_cpu_affinity 1;"          # worker on CPU 0
    WRK_PIN=(taskset -c 1)                      # load generator on CPU 1
fi

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

"$NGINX" -p "$PREFIX" -c conf/nginx.conf -t -q \
    || die "nginx -t failed (config in $PREFIX/conf/nginx.conf)"
"$NGINX" -p "$PREFIX" -c conf/nginx.conf -g "daemon on; master_process on;" \
    || die "nginx did not start"
for _ in $(seq 50); do
    [ -s "$PREFIX/logs/nginx.pid" ] && break
    sleep 0.1
done
NGINX_PID=$(cat "$PREFIX/logs/nginx.pid" 2>/dev/null) \
    || die "no pid file; error log: $(cat "$PREFIX/logs/error.log")"

# A valid anonymous id: 32 hex characters.
ANON=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
COOKIE="sf_anon=$ANON"

# Confirm that B decides and A does not, before measuring anything.
hdr() {   # port [cookie] -> value of X-Variants
    local args=(-s -o /dev/null -D - --max-time 5)
    [ -n "${2:-}" ] && args+=(-H "Cookie: $2")
    curl "${args[@]}" "http://127.0.0.1:$1/" | tr -d '\r' \
        | awk -F': ' 'tolower($1) == "x-variants" { print $2 }'
}
code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        -H "Cookie: $COOKIE" "http://127.0.0.1:$1/"
}
[ "$(code "$PORT_A")" = 200 ] || die "A does not answer 200"
[ "$(code "$PORT_B")" = 200 ] || die "B does not answer 200"
VA=$(hdr "$PORT_A" "$COOKIE")
VB=$(hdr "$PORT_B" "$COOKIE")
VB2=$(hdr "$PORT_B" "$COOKIE")
[ -z "$VA" ] || die "A made decisions ($VA): not a plain baseline"
[ -n "$VB" ] || [ "$NEXP" -eq 0 ] || die "B made no decisions (X-Variants empty); error log:
$(tail -5 "$PREFIX/logs/error.log")"
[ "$VB" = "$VB2" ] || die "B's decisions are not sticky for one cookie"
NDEC=$(printf '%s\n' "$VB" | sed 's/[,;]/\n/g' | grep -c '=' || true)

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

# CPU time of nginx's workers so far, in clock ticks.
HZ=$(getconf CLK_TCK)

# wrk run -> "rps p50_ms p99_ms errors worker_cpu_us_per_request"
measure() {   # port seconds [cookie]
    local args=(-t1 -c"$CONNS" -d"$2"s --latency) t0 t1
    [ -n "${3:-}" ] && args+=(-H "Cookie: $3")
    t0=$(worker_ticks)
    timeout $(( $2 + 15 )) "${WRK_PIN[@]}" wrk "${args[@]}" \
        "http://127.0.0.1:$1/" > "$PREFIX/wrk.out"
    t1=$(worker_ticks)
    awk -v ticks=$(( t1 - t0 )) -v hz="$HZ" -v secs="$2" '
        function ms(v) {
            if (v ~ /us$/) return v / 1000;
            if (v ~ /ms$/) return v + 0;
            if (v ~ /s$/)  return v * 1000;
            return v + 0;
        }
        /^Requests\/sec:/       { rps = $2 }
        $1 == "50%"             { p50 = ms($2) }
        $1 == "99%"             { p99 = ms($2) }
        /Non-2xx or 3xx/        { err += $NF }
        /Socket errors:/        { err += 1 }
        END {
            us = rps > 0 ? ticks / hz * 1e6 / (rps * secs) : 0
            printf "%.0f %.3f %.3f %d %.2f\n", rps, p50, p99, err + 0, us
        }' "$PREFIX/wrk.out"
}

median() { sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print 0; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Warm up both sides (caches, page faults, the worker's snapshot).
measure "$PORT_A" 1 "$COOKIE" >/dev/null
measure "$PORT_B" 1 "$COOKIE" >/dev/null

run_pairs() {   # label cookie -> prints rounds and summary, sets RATIO_MED
    local label=$1 cookie=$2 i order a b ra rb pa pb qa qb ea eb ua ub
    local A_R=() B_R=() A_P50=() B_P50=() A_P99=() B_P99=() RAT=()
    local A_US=() B_US=()
    printf '%-5s %-5s %9s %8s %8s %7s  %9s %8s %8s %7s  %6s\n' round order \
        "A req/s" "A p50ms" "A p99ms" "A us/r" \
        "B req/s" "B p50ms" "B p99ms" "B us/r" "B/A"
    for i in $(seq "$ROUNDS"); do
        if [ $(( i % 2 )) -eq 1 ]; then
            order=AB
            a=$(measure "$PORT_A" "$DURATION" "$cookie")
            b=$(measure "$PORT_B" "$DURATION" "$cookie")
        else
            order=BA
            b=$(measure "$PORT_B" "$DURATION" "$cookie")
            a=$(measure "$PORT_A" "$DURATION" "$cookie")
        fi
        read -r ra pa qa ea ua <<<"$a"
        read -r rb pb qb eb ub <<<"$b"
        [ "$ea" -eq 0 ] && [ "$eb" -eq 0 ] \
            || echo "  warning: round $i had errors (A $ea, B $eb)" >&2
        [ "${ra:-0}" -gt 0 ] || die "wrk measured nothing on A"
        A_R+=("$ra"); B_R+=("$rb"); A_P50+=("$pa"); B_P50+=("$pb")
        A_P99+=("$qa"); B_P99+=("$qb"); A_US+=("$ua"); B_US+=("$ub")
        RAT+=("$(awk -v a="$ra" -v b="$rb" 'BEGIN { printf "%.4f", b / a }')")
        printf '%-5s %-5s %9s %8s %8s %7s  %9s %8s %8s %7s  %6s\n' "$i" \
            "$order" "$ra" "$pa" "$qa" "$ua" "$rb" "$pb" "$qb" "$ub" \
            "${RAT[-1]}"
    done
    local mar mbr map mbp maq mbq mau mbu
    mar=$(printf '%s\n' "${A_R[@]}" | median)
    mbr=$(printf '%s\n' "${B_R[@]}" | median)
    map=$(printf '%s\n' "${A_P50[@]}" | median)
    mbp=$(printf '%s\n' "${B_P50[@]}" | median)
    maq=$(printf '%s\n' "${A_P99[@]}" | median)
    mbq=$(printf '%s\n' "${B_P99[@]}" | median)
    mau=$(printf '%s\n' "${A_US[@]}" | median)
    mbu=$(printf '%s\n' "${B_US[@]}" | median)
    RATIO_MED=$(printf '%s\n' "${RAT[@]}" | median)
    printf '%-11s %9.0f %8.3f %8.3f %7.2f  %9.0f %8.3f %8.3f %7.2f  %6.4f\n' \
        median "$mar" "$map" "$maq" "$mau" "$mbr" "$mbp" "$mbq" "$mbu" \
        "$RATIO_MED"
    echo "$label: throughput B/A = $RATIO_MED (median of $ROUNDS" \
         "per-pair ratios), target >= $TARGET:" \
         "$(awk -v r="$RATIO_MED" -v t="$TARGET" \
             'BEGIN { print (r >= t) ? "MET" : "MISSED" }')"
    awk -v a="$mau" -v b="$mbu" 'BEGIN { if (a > 0) printf \
        "%s: nginx worker CPU per request A %.2f us, B %.2f us" \
        " (+%.2f us, A/B %.4f)\n", "'"$label"'", a, b, b - a, a / b }' 
}

echo "== cookie path (valid sf_anon cookie, evaluate all experiments)"
run_pairs "cookie path" "$COOKIE"
COOKIE_RATIO=$RATIO_MED

if [ "$MINT" -eq 1 ]; then
    echo
    echo "== minting path (no cookie: a new id and Set-Cookie per request)"
    run_pairs "minting path" ""
fi

ALERTS=$(grep -cE '\[(alert|emerg|crit)\]' "$PREFIX/logs/error.log" || true)
[ "$ALERTS" -eq 0 ] \
    || echo "warning: $ALERTS alert/crit lines in nginx's error log" >&2

if [ "$CHECK" -eq 1 ]; then
    awk -v r="$COOKIE_RATIO" -v t="$TARGET" 'BEGIN { exit !(r >= t) }'
fi
