#!/usr/bin/env bash
# Throughput of push decisions over both nginx workers, in one run:
#
#   singles  GET /<mode>/?user=<random of 1M>&category=promo, one decision
#            per request
#   batches  POST /<mode>/batch, a JSON array of BATCH decisions (random
#            users, categories promo/reminder/transactional, channels
#            push/sms); decisions per second = requests per second * BATCH
#
# for <mode> durable (fsync every commit) and relaxed (no fsync), one nginx
# with 2 workers (reuseport) and both locations.  Rounds alternate the
# modes in ABBA order; the script prints each round, the medians and the
# relaxed/durable ratio, then checks the audit log with "push verify": no
# user over a cap in any window, counters equal to the log.
#
# usage: scripts/bench_push.sh [-r ROUNDS] [-d SECONDS] [-c CONNS]
#                              [-b BATCH] [-C BATCH_CONNS] [--check]
#   -r N      rounds per kind (default 3)
#   -d S      seconds per wrk run (default 5)
#   -c N      connections for singles (default 128)
#   -b N      decisions per batch (default 1000)
#   -C N      connections for batches (default 8)
#   --check   exit 1 when a target is missed or a violation is found
# Targets: >= 20,000 single decisions/s and >= 200,000 batched decisions/s
# (both modes), zero cap violations.
# Environment: NGINX (default /usr/sbin/nginx), STOREFRONT_MODULE,
#   STOREFRONTCTL.
# Traffic goes to 127.0.0.1 only; the run stops by itself (about
# 4 * ROUNDS * SECONDS + 20 s) and stops nginx even on Ctrl-C.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${STOREFRONT_MODULE:-$ROOT/build/nginx/ngx_http_storefront_module.so}
CTL=${STOREFRONTCTL:-$ROOT/build/storefrontctl}
ROUNDS=3
DURATION=5
CONNS=128
BATCH=1000
BCONNS=8
CHECK=0
TOKEN=bench-push-token-0123456789
SINGLE_TARGET=20000
BATCH_TARGET=200000

while [ $# -gt 0 ]; do
    case "$1" in
    -r) ROUNDS=$2; shift 2 ;;
    -d) DURATION=$2; shift 2 ;;
    -c) CONNS=$2; shift 2 ;;
    -b) BATCH=$2; shift 2 ;;
    -C) BCONNS=$2; shift 2 ;;
    --check) CHECK=1; shift ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "bench_push.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$ROUNDS$DURATION$CONNS$BATCH$BCONNS" in
*[!0-9]*) echo "bench_push.sh: options take whole numbers" >&2; exit 2 ;;
esac
if [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 10 ] || [ "$DURATION" -lt 1 ] \
   || [ "$DURATION" -gt 30 ] || [ "$CONNS" -lt 1 ] || [ "$CONNS" -gt 1000 ] \
   || [ "$BATCH" -lt 1 ] || [ "$BATCH" -gt 10000 ] || [ "$BCONNS" -lt 1 ] \
   || [ "$BCONNS" -gt 256 ]
then
    echo "bench_push.sh: bounds: -r 1..10, -d 1..30, -c 1..1000," \
         "-b 1..10000, -C 1..256" >&2
    exit 2
fi

BENCH=bench_push.sh
. "$ROOT/scripts/lib/bench.sh"

bench_need_wrk
command -v curl >/dev/null 2>&1 || die "curl is missing"
[ -x "$NGINX" ] || die "no nginx binary at $NGINX"
[ -f "$MODULE" ] || die "module not built: $MODULE (run make)"
[ -x "$CTL" ] || die "storefrontctl not built: $CTL (run make)"

PREFIX=$(mktemp -d "${TMPDIR:-/tmp}/sf-bench-push.XXXXXX")
NGINX_PID=

mkdir -p "$PREFIX/conf" "$PREFIX/logs" "$PREFIX/db"

push_cmd() {
    "$CTL" --db "$PREFIX/db" push "$@"
}

PORT=$(bench_free_ports 1)

bench_as_nobody db

# The policy: the engine's defaults (promo 2 a week) with 1 a day, quiet
# hours off so that every decision reaches the caps.
POLICY="
            storefront_push_cap promo 1/1d 2/7d;
            storefront_push_cap reminder 1/1d;
            storefront_push_quiet_hours off;
            storefront_push_max_batch 10000;"

cat > "$PREFIX/policy.json" <<'EOF'
{"categories": {"promo": {"caps": ["1/1d", "2/7d"]},
                "reminder": {"caps": ["1/1d"]}},
 "quiet_hours": null}
EOF

cat > "$PREFIX/conf/nginx.conf" <<EOF
load_module $MODULE;
$USER_LINE
worker_processes 2;
error_log logs/error.log warn;
pid logs/nginx.pid;

events {
    worker_connections 4096;
}

http {
    access_log off;
    keepalive_requests 1000000;
    client_max_body_size 16m;
    client_body_buffer_size 1m;

    storefront_db $PREFIX/db map_size=8g;

    server {
        listen 127.0.0.1:$PORT reuseport backlog=4096;
        storefront_push_token $TOKEN;

        location /durable/ {
            storefront_push;
            storefront_push_durability durable;
            $POLICY
        }

        location /relaxed/ {
            storefront_push;
            storefront_push_durability relaxed;
            $POLICY
        }
    }
}
EOF

bench_start_nginx

URL=http://127.0.0.1:$PORT
for mode in durable relaxed; do
    out=$(curl -s --max-time 5 -H "Authorization: Bearer $TOKEN" \
        "$URL/$mode/?user=probe-$mode&category=promo")
    case "$out" in
    *'"decision":"allow"'*) ;;
    *) die "/$mode/ does not decide: $out
$(tail -5 "$PREFIX/logs/error.log")" ;;
    esac
done

cat > "$PREFIX/single.lua" <<EOF
local counter = 0
function setup(thread)
    counter = counter + 1
    thread:set("id", counter)
end
function init(args)
    path = args[1]
    math.randomseed(os.time() * 100 + id)
    wrk.headers["Authorization"] = "Bearer $TOKEN"
end
function request()
    return wrk.format("GET", path .. "?category=promo&user=u"
        .. math.random(1, 1000000))
end
EOF

cat > "$PREFIX/batch.lua" <<EOF
local counter = 0
function setup(thread)
    counter = counter + 1
    thread:set("id", counter)
end
function init(args)
    path = args[1]
    math.randomseed(os.time() * 100 + id)
    local cats = { "promo", "promo", "promo", "reminder", "transactional" }
    local chans = { "push", "push", "sms" }
    bodies = {}
    for b = 1, 16 do
        local items = {}
        for i = 1, $BATCH do
            items[i] = '{"user":"u' .. math.random(1, 1000000)
                .. '","category":"' .. cats[math.random(1, #cats)]
                .. '","channel":"' .. chans[math.random(1, #chans)] .. '"}'
        end
        bodies[b] = "[" .. table.concat(items, ",") .. "]"
    end
    n = 0
    wrk.headers["Authorization"] = "Bearer $TOKEN"
    wrk.headers["Content-Type"] = "application/json"
end
function request()
    n = n + 1
    return wrk.format("POST", path .. "batch", nil, bodies[n % 16 + 1])
end
EOF

# wrk run -> "requests/s p50_ms p99_ms errors" (wrk_summary's first four)
measure() {   # script path conns seconds
    timeout $(( $4 + 30 )) wrk -t2 -c"$3" -d"$4"s --latency \
        -s "$PREFIX/$1" "$URL/" -- "$2" > "$PREFIX/wrk.out" 2>&1 || true
    wrk_summary "$PREFIX/wrk.out" | cut -d' ' -f1-4
}

echo "storefront push benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine: $(nproc) CPUs, $(lscpu 2>/dev/null \
    | sed -n 's/^Model name: *//p' | head -1), $(uname -r)"
echo "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), 2 workers" \
     "(reuseport); wrk -t2 on the same machine; $ROUNDS rounds ABBA of" \
     "${DURATION}s"
echo "database: $PREFIX/db ($(df -T "$PREFIX" | awk 'NR == 2 { print $2 }'))"
echo

# warm up (page faults, the map, the rings)
measure single.lua /relaxed/ "$CONNS" 1 >/dev/null
measure batch.lua /relaxed/ "$BCONNS" 1 >/dev/null

FAILED=0

run_kind() {   # label script conns multiplier target
    local label=$1 script=$2 conns=$3 mult=$4 target=$5
    local i order d r rd pd qd ed rr pr qr er D=() R=() RAT=()
    echo "== $label: $conns connections"
    printf '%-5s %-5s %12s %8s %8s  %12s %8s %8s  %6s\n' round order \
        "durable/s" "p50 ms" "p99 ms" "relaxed/s" "p50 ms" "p99 ms" "R/D"
    for i in $(seq "$ROUNDS"); do
        if [ $(( i % 2 )) -eq 1 ]; then
            order=DR
            d=$(measure "$script" /durable/ "$conns" "$DURATION")
            r=$(measure "$script" /relaxed/ "$conns" "$DURATION")
        else
            order=RD
            r=$(measure "$script" /relaxed/ "$conns" "$DURATION")
            d=$(measure "$script" /durable/ "$conns" "$DURATION")
        fi
        read -r rd pd qd ed <<<"$d"
        read -r rr pr qr er <<<"$r"
        rd=$(( rd * mult ))
        rr=$(( rr * mult ))
        if [ "$ed" -ne 0 ] || [ "$er" -ne 0 ]; then
            echo "  round $i: errors (durable $ed, relaxed $er)" >&2
            FAILED=1
        fi
        D+=("$rd"); R+=("$rr")
        RAT+=("$(awk -v a="$rd" -v b="$rr" \
            'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')")
        printf '%-5s %-5s %12s %8s %8s  %12s %8s %8s  %6s\n' "$i" "$order" \
            "$rd" "$pd" "$qd" "$rr" "$pr" "$qr" "${RAT[-1]}"
    done
    local md mr mrat
    md=$(printf '%s\n' "${D[@]}" | median)
    mr=$(printf '%s\n' "${R[@]}" | median)
    mrat=$(printf '%s\n' "${RAT[@]}" | median)
    printf '%-11s %12.0f %17s  %12.0f %17s  %6s\n' median "$md" "" "$mr" "" \
        "$mrat"
    for m in durable:"$md" relaxed:"$mr"; do
        awk -v m="${m%%:*}" -v v="${m#*:}" -v t="$target" -v l="$label" \
            'BEGIN { printf "%s %s: %.0f decisions/s, target >= %d: %s\n",
                     l, m, v, t, (v >= t ? "MET" : "MISSED") }'
        if awk -v v="${m#*:}" -v t="$target" 'BEGIN { exit !(v < t) }'; then
            FAILED=1
        fi
    done
    echo
}

run_kind "single decisions" single.lua "$CONNS" 1 "$SINGLE_TARGET"
run_kind "batched decisions ($BATCH a request)" batch.lua "$BCONNS" "$BATCH" \
    "$BATCH_TARGET"

echo "== the audit log"
if push_cmd verify --policy "$PREFIX/policy.json" > "$PREFIX/verify.out"; then
    VERIFY=ok
else
    VERIFY=failed
    FAILED=1
fi
sed 's/^/  /' "$PREFIX/verify.out"
echo "cap violations: $(sed -n 's/^cap violations: //p' "$PREFIX/verify.out")" \
     "(verify $VERIFY)"
du -sh "$PREFIX/db" | awk '{ print "database size: " $1 }'

ALERTS=$(grep -cE '\[(alert|emerg|crit)\]' "$PREFIX/logs/error.log" || true)
if [ "$ALERTS" -ne 0 ]; then
    echo "warning: $ALERTS alert/crit lines in nginx's error log:" >&2
    grep -E '\[(alert|emerg|crit)\]' "$PREFIX/logs/error.log" | head -5 >&2
    FAILED=1
fi

if [ "$CHECK" -eq 1 ] && [ "$FAILED" -ne 0 ]; then
    exit 1
fi
exit 0
