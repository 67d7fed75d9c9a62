#!/usr/bin/env bash
# A/B throughput benchmark of ad decisions, in one run.
#
#   A: plain nginx serving a small static file
#   B: the same location with `storefront on`: the 10 experiments of the
#      foundation benchmark (with its storefront_decision_cache: a
#      returning visitor's experiments from the worker's cache), and 2 ad
#      slots filled from 1,000 campaigns (priorities, weights, 2 or 3
#      frequency caps each, some cool-downs) on every request, the
#      impressions recorded against the caps of the user
#      (storefront_ad_zone, written to LMDB every second)
#
#   C: B without the ad slots (storefront_ad_slots off): what the ads
#      themselves cost is B against C
#
# All are served by ONE nginx (same worker, three loopback ports), as in
# scripts/bench.sh, whose structure this follows: rounds alternate in
# ABC/CBA order; each round's throughput, p50/p99 latency and worker CPU
# per request are printed, then the medians, B/A (the target) as the
# median of the per-round ratios, and C/A and B/C.  Each request comes
# from one of USERS visitors (a wrk script sets X-User-Id at random), so
# caps are per user as in life.
#
# usage: scripts/bench_ads.sh [-r ROUNDS] [-d SECONDS] [-c CONNS]
#                             [-u USERS] [-f FLUSH] [--no-pin] [--no-cache]
#                             [--check]
#   -r N      A/B pairs (default 5)
#   -d S      seconds per wrk run (default 5)
#   -c N      wrk connections (default 32)
#   -u N      distinct visitors (default 50000)
#   -f T      the zone's write interval, storefront_ad_zone flush=T
#             (default 1s: at most a second of impressions lost in a crash)
#   --no-pin  do not pin the nginx worker and wrk to separate CPUs
#   --no-cache  without storefront_decision_cache (B and C decide every
#             request from the database)
#   --check   exit 1 when the B/A median ratio is below 0.90
# Environment: NGINX (default /usr/sbin/nginx), STOREFRONT_MODULE,
#   STOREFRONTCTL, BENCH_EXPERIMENTS.
# Traffic goes to 127.0.0.1 only; the run stops by itself (about
# ROUNDS * (3 * SECONDS + FLUSH + 1) + 20 seconds) and stops nginx even
# on Ctrl-C.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${STOREFRONT_MODULE:-$ROOT/build/nginx/ngx_http_storefront_module.so}
CTL=${STOREFRONTCTL:-$ROOT/build/storefrontctl}
EXPERIMENTS=${BENCH_EXPERIMENTS:-$ROOT/conf/bench/experiments.json}
ROUNDS=5
DURATION=5
CONNS=32
USERS=50000
FLUSH=1s
PIN=1
CACHE=1
CHECK=0
TARGET=0.90

while [ $# -gt 0 ]; do
    case "$1" in
    -r) ROUNDS=$2; shift 2 ;;
    -d) DURATION=$2; shift 2 ;;
    -c) CONNS=$2; shift 2 ;;
    -u) USERS=$2; shift 2 ;;
    -f) FLUSH=$2; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --no-cache) CACHE=0; shift ;;
    --check) CHECK=1; shift ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "bench_ads.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$FLUSH" in
[0-9]*ms|[0-9]*s|[0-9]*m) ;;
*) echo "bench_ads.sh: -f takes a time such as 500ms, 1s or 1m" >&2; exit 2 ;;
esac
case "$ROUNDS$DURATION$CONNS$USERS" in
*[!0-9]*) echo "bench_ads.sh: -r, -d, -c and -u take whole numbers" >&2
          exit 2 ;;
esac
if [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 20 ] || [ "$DURATION" -lt 1 ] \
   || [ "$DURATION" -gt 60 ] || [ "$CONNS" -lt 1 ] || [ "$CONNS" -gt 1000 ] \
   || [ "$USERS" -lt 1 ] || [ "$USERS" -gt 1000000 ]
then
    echo "bench_ads.sh: bounds: -r 1..20, -d 1..60, -c 1..1000," \
         "-u 1..1000000" >&2
    exit 2
fi

BENCH=bench_ads.sh
. "$ROOT/scripts/lib/bench.sh"

bench_need_wrk
[ -x "$NGINX" ] || die "no nginx binary at $NGINX"
[ -f "$MODULE" ] || die "module not built: $MODULE (run make)"
[ -x "$CTL" ] || die "storefrontctl not built: $CTL (run make)"
[ -f "$EXPERIMENTS" ] || die "no experiments file: $EXPERIMENTS"
command -v curl >/dev/null 2>&1 || die "curl is missing"
command -v perl >/dev/null 2>&1 || die "perl is missing"

PREFIX=$(mktemp -d "${TMPDIR:-/tmp}/sf-bench-ads.XXXXXX")
NGINX_PID=


read -r PORT_A PORT_B PORT_C < <(bench_free_ports 3)

mkdir -p "$PREFIX/conf" "$PREFIX/html" "$PREFIX/logs" "$PREFIX/db"
printf 'ok\n' > "$PREFIX/html/index.html"

# 1,000 campaigns over 200 advertisers: three priorities, weights 1-5,
# 2 or 3 rolling caps each, a cool-down on one in five, for the home page
perl -e '
    my @caps = (q("3/1h","10/1d"), q("1/10m","5/1d","20/1w"),
        q("2/1h","6/1d"), q("5/1d","50/lifetime"));
    my @c;
    for my $i (0 .. 999) {
        push @c, sprintf(q({"id":"c%04d","advertiser":"adv%03d",)
            . q("priority":%d,"weight":%d,"pages":["home","product"],)
            . q("slots":["banner","infeed"],"caps":[%s]%s,"creatives":[)
            . q({"id":"a","url":"https://adv%03d.example/c%04d/a",)
            . q("format":"banner"},{"id":"b","url":)
            . q("https://adv%03d.example/c%04d/b","skippable":false}]}),
            $i, $i % 200, $i % 3, 1 + $i % 5, $caps[$i % 4],
            $i % 5 ? "" : q(,"cooldown":"10m"), $i % 200, $i,
            $i % 200, $i);
    }
    print "{\"campaigns\":[", join(",\n", @c), "],",
        "\"ad_pages\":{\"home\":{\"max_slots\":2}}}\n";
' > "$PREFIX/campaigns.json"

"$CTL" --db "$PREFIX/db" import "$EXPERIMENTS" >/dev/null \
    || die "storefrontctl import failed"
NEXP=$("$CTL" --db "$PREFIX/db" list 2>/dev/null | grep -c ' active ' || true)

"$CTL" --db "$PREFIX/db" import "$PREFIX/campaigns.json" >/dev/null \
    || die "storefrontctl import of the campaigns failed"

bench_as_nobody db

bench_pin

# Identical locations; B differs from A only by `storefront on` (without
# it the slots are not decided), C from B only by the slots.
location() {   # [slots]
    cat <<EOT
        location / {
            root html;
            index index.html;
            $1
            add_header X-Variants \$storefront_variants;
            add_header X-Ads \$storefront_ads;
        }
EOT
}

# a zone of ~1.3 KB per visitor, at least 64 MB
ZONE_MB=$(( USERS * 13 / 10000 + 64 ))

# direct-mapped: four slots a visitor keep collisions rare
CACHE_LINE=
[ "$CACHE" -eq 1 ] \
    && CACHE_LINE="storefront_decision_cache max=$(( USERS * 4 )) valid=10s;"

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
    storefront_user_id \$http_x_user_id;
    storefront_ad_zone ads ${ZONE_MB}m flush=$FLUSH;
    storefront_ad_click_key bench-click-key-0123456789;
    $CACHE_LINE

    server {
        listen 127.0.0.1:$PORT_A;
$(location "storefront_ad_slots page=home banner infeed;")
    }

    server {
        listen 127.0.0.1:$PORT_B;
        storefront on;
$(location "storefront_ad_slots page=home banner infeed;")
    }

    server {
        listen 127.0.0.1:$PORT_C;
        storefront on;
$(location "")
    }
}
EOF

# wrk: one visitor of USERS at random per request, on both sides
cat > "$PREFIX/users.lua" <<EOF
local users = $USERS
math.randomseed(12345)
request = function()
    return wrk.format(nil, nil,
        { ["X-User-Id"] = "u" .. math.random(1, users) })
end
EOF

bench_start_nginx

hdr() {   # port user header -> value
    curl -s -o /dev/null -D - --max-time 5 -H "X-User-Id: $2" \
        "http://127.0.0.1:$1/" | tr -d '\r' \
        | awk -F': ' -v h="$3" 'tolower($1) == h { print $2 }'
}
[ -z "$(hdr "$PORT_A" probe x-ads)" ] || die "A decided ads: not a baseline"
ADS=$(hdr "$PORT_B" probe-1 x-ads)
NADS=$(printf '%s\n' "$ADS" | awk -F';' '{ print NF }')
[ "$NADS" = 2 ] || die "B did not fill 2 slots ($ADS); error log:
$(tail -5 "$PREFIX/logs/error.log")"

echo "storefront ads A/B benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine: $NCPU CPUs, $(lscpu 2>/dev/null \
    | sed -n 's/^Model name: *//p' | head -1), $(uname -r)"
echo "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), 1 worker" \
     "${AFFINITY:+(pinned CPU 0, wrk on CPU 1)}"
echo "B: $NEXP active experiments, 1000 campaigns, 2 slots: $ADS"
echo "visitors: $USERS at random (X-User-Id), zone ${ZONE_MB}m," \
     "flush=$FLUSH, ${CACHE_LINE:-no decision cache}"
echo "C: B without the slots; wrk -t1 -c$CONNS -d${DURATION}s --latency," \
     "$ROUNDS rounds ABC/CBA"
echo "columns: req/s, latency p50/p99 (ms), nginx worker CPU us per request" \
     "(B's with its LMDB writes)"
echo

# The impressions of a B round are written to LMDB up to a flush interval
# later: B's CPU time is taken after that (DRAIN seconds), so that every
# write is counted in B's round and none in the next one.
measure() {   # port seconds [drain]
    local args=(-t1 -c"$CONNS" -d"$2"s --latency -s "$PREFIX/users.lua") t0 t1
    t0=$(worker_ticks)
    timeout $(( $2 + 15 )) "${WRK_PIN[@]}" wrk "${args[@]}" \
        "http://127.0.0.1:$1/" > "$PREFIX/wrk.out"
    [ "${3:-0}" -gt 0 ] && sleep "$3"
    t1=$(worker_ticks)
    wrk_summary "$PREFIX/wrk.out" $(( t1 - t0 )) "$2"
}

# whole seconds to wait for B's writes: the flush interval, rounded up, + 1
DRAIN=$(awk -v f="$FLUSH" 'BEGIN {
    n = f + 0; if (f ~ /ms$/) n /= 1000; else if (f ~ /m$/) n *= 60;
    printf "%d", (n == int(n) ? n : int(n) + 1) + 1 }')

# warm up; B long enough to see most visitors once (steady state)
measure "$PORT_A" 1 >/dev/null
measure "$PORT_C" 1 >/dev/null
measure "$PORT_B" $(( USERS / 10000 + 2 )) "$DRAIN" >/dev/null

[ -n "$(hdr "$PORT_C" probe-2 x-variants)" ] || [ "$NEXP" -eq 0 ] \
    || die "C made no decisions"
[ -z "$(hdr "$PORT_C" probe-2 x-ads)" ] || die "C decided ads"

declare -A R P50 P99 US
RAT_BA=(); RAT_CA=(); RAT_BC=()
printf '%-5s %-5s %8s %7s %7s %6s  %8s %7s %7s %6s  %8s %7s %7s %6s  %6s\n' \
    round order "A req/s" "A p50" "A p99" "A us" "B req/s" "B p50" "B p99" \
    "B us" "C req/s" "C p50" "C p99" "C us" "B/A"
for i in $(seq "$ROUNDS"); do
    if [ $(( i % 2 )) -eq 1 ]; then order=ABC; else order=CBA; fi
    for side in $(echo "$order" | grep -o .); do
        case $side in
        A) port=$PORT_A; drain=0 ;;
        B) port=$PORT_B; drain=$DRAIN ;;
        C) port=$PORT_C; drain=0 ;;
        esac
        read -r rps p50 p99 errs us <<<"$(measure "$port" "$DURATION" "$drain")"
        [ "$errs" -eq 0 ] \
            || echo "  warning: round $i side $side had $errs errors" >&2
        [ "${rps:-0}" -gt 0 ] || die "wrk measured nothing on $side"
        R[$side,$i]=$rps; P50[$side,$i]=$p50; P99[$side,$i]=$p99
        US[$side,$i]=$us
    done
    RAT_BA+=("$(awk -v a="${R[A,$i]}" -v b="${R[B,$i]}" \
        'BEGIN { printf "%.4f", b / a }')")
    RAT_CA+=("$(awk -v a="${R[A,$i]}" -v b="${R[C,$i]}" \
        'BEGIN { printf "%.4f", b / a }')")
    RAT_BC+=("$(awk -v a="${R[C,$i]}" -v b="${R[B,$i]}" \
        'BEGIN { printf "%.4f", b / a }')")
    printf '%-5s %-5s %8s %7s %7s %6s  %8s %7s %7s %6s  %8s %7s %7s %6s  %6s\n' \
        "$i" "$order" "${R[A,$i]}" "${P50[A,$i]}" "${P99[A,$i]}" "${US[A,$i]}" \
        "${R[B,$i]}" "${P50[B,$i]}" "${P99[B,$i]}" "${US[B,$i]}" \
        "${R[C,$i]}" "${P50[C,$i]}" "${P99[C,$i]}" "${US[C,$i]}" \
        "${RAT_BA[-1]}"
done

med() {   # array-name side
    local i
    for i in $(seq "$ROUNDS"); do eval "echo \${$1[$2,$i]}"; done | median
}
printf '%-11s %8.0f %7.3f %7.3f %6.2f  %8.0f %7.3f %7.3f %6.2f  %8.0f %7.3f %7.3f %6.2f  %6.4f\n' \
    median "$(med R A)" "$(med P50 A)" "$(med P99 A)" "$(med US A)" \
    "$(med R B)" "$(med P50 B)" "$(med P99 B)" "$(med US B)" \
    "$(med R C)" "$(med P50 C)" "$(med P99 C)" "$(med US C)" \
    "$(printf '%s\n' "${RAT_BA[@]}" | median)"
RATIO_MED=$(printf '%s\n' "${RAT_BA[@]}" | median)
echo "ads: throughput B/A = $RATIO_MED (median of $ROUNDS per-round ratios)," \
     "target >= $TARGET: $(awk -v r="$RATIO_MED" -v t="$TARGET" \
         'BEGIN { print (r >= t) ? "MET" : "MISSED" }')"
echo "without the ads: C/A = $(printf '%s\n' "${RAT_CA[@]}" | median);" \
     "the ads alone: B/C = $(printf '%s\n' "${RAT_BC[@]}" | median)"
awk -v a="$(med US A)" -v b="$(med US B)" -v c="$(med US C)" 'BEGIN {
    printf "nginx worker CPU per request: A %.2f us, C %.2f us (+%.2f), " \
        "B %.2f us (+%.2f over C: the ads, their writes included)\n",
        a, c, c - a, b, b - c }'
bench_saturation_note "$(med R A)" "$(med US A)"
echo "LMDB after the run: $(du -sh "$PREFIX/db" | cut -f1)"

ALERTS=$(grep -cE '\[(alert|emerg|crit)\]' "$PREFIX/logs/error.log" || true)
[ "$ALERTS" -eq 0 ] \
    || echo "warning: $ALERTS alert/crit lines in nginx's error log" >&2
WARNS=$(grep -c 'storefront' "$PREFIX/logs/error.log" || true)
[ "$WARNS" -eq 0 ] || { echo "storefront messages in the error log:" >&2
    grep 'storefront' "$PREFIX/logs/error.log" | tail -3 >&2; }

if [ "$CHECK" -eq 1 ]; then
    awk -v r="$RATIO_MED" -v t="$TARGET" 'BEGIN { exit !(r >= t) }'
fi
