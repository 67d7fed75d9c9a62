#!/usr/bin/env bash
# The storefront demo: installs what is missing, builds, loads the demo
# experiments, profiles and page layouts into an LMDB environment under
# build/demo and starts nginx on 127.0.0.1:8080 in front of a demo
# application on 127.0.0.1:8081.  The home page is assembled at the edge
# from the application's page and cached fragments, per visitor.
#
#   scripts/demo.sh            start (restarts a running demo)
#   scripts/demo.sh stop       stop it
#   scripts/demo.sh status     is it running?
#
#   SF_DEMO_PORT=8080 SF_DEMO_UPSTREAM_PORT=8081   other ports
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix="$repo/build/demo"
port=${SF_DEMO_PORT:-8080}
upstream_port=${SF_DEMO_UPSTREAM_PORT:-8081}
nginx=${STOREFRONT_NGINX:-/usr/sbin/nginx}
module="$repo/build/nginx/ngx_http_storefront_module.so"
ctl="$repo/build/storefrontctl"

running_pid() {
    local pid
    [ -f "$prefix/nginx.pid" ] || return 1
    pid=$(cat "$prefix/nginx.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

stop_demo() {
    local pid i
    pid=$(running_pid) || { echo "demo not running"; return 0; }
    kill -QUIT "$pid"
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { echo "demo stopped"; return 0; }
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    echo "demo stopped"
}

start_demo() {
    "$repo/scripts/build.sh"
    [ -f "$module" ] || { echo "module not built: $module" >&2; exit 1; }

    if running_pid >/dev/null; then
        stop_demo
    fi
    for p in "$port" "$upstream_port"; do
        if port_busy "$p"; then
            echo "127.0.0.1:$p is in use; set SF_DEMO_PORT /" \
                "SF_DEMO_UPSTREAM_PORT or stop what listens there" >&2
            exit 1
        fi
    done

    mkdir -p "$prefix/db" "$prefix/logs" "$prefix/temp"
    "$ctl" --db "$prefix/db" import "$repo/conf/demo/data.json"

    # As root the workers run as nobody when nobody can reach the files
    # (the LMDB environment must be writable by the worker user: readers
    # record themselves in lock.mdb); a checkout under a private home
    # directory is not reachable, and then the demo workers run as root.
    local user_line=""
    if [ "$(id -u)" -eq 0 ]; then
        chown -R nobody:nogroup "$prefix/db"
        if command -v runuser >/dev/null 2>&1 \
            && runuser -u nobody -- test -w "$prefix/db/lock.mdb" \
            && runuser -u nobody -- test -r "$repo/conf/demo/html/index.html"
        then
            user_line="user nobody nogroup;"
        else
            user_line="user root;"
        fi
    fi

    sed -e "s|@MODULE@|$module|g" \
        -e "s|@PREFIX@|$prefix|g" \
        -e "s|@HTML@|$repo/conf/demo/html|g" \
        -e "s|@PORT@|$port|g" \
        -e "s|@UPSTREAM_PORT@|$upstream_port|g" \
        -e "s|@USER@|$user_line|g" \
        "$repo/conf/demo/nginx.conf" > "$prefix/nginx.conf"

    "$nginx" -t -q -p "$prefix/" -c "$prefix/nginx.conf" \
        -e "$prefix/logs/error.log"
    "$nginx" -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log"

    local i
    for i in $(seq 50); do
        port_busy "$port" && break
        sleep 0.1
    done
    port_busy "$port" || {
        echo "nginx did not start; see $prefix/logs/error.log" >&2
        exit 1
    }

    cat <<EOF

storefront demo running: http://127.0.0.1:$port/
  (config $prefix/nginx.conf, logs $prefix/logs/, data $prefix/db)

Open http://127.0.0.1:$port/ in a browser, or:

  curl -i http://127.0.0.1:$port/decisions
      a new anonymous visitor: Set-Cookie sf_anon=..., X-Demo-Variants
  curl -s -b 'sf_anon=0123456789abcdef0123456789abcdef' http://127.0.0.1:$port/decisions
      the same visitor again: the same variations every time
  curl -s -b 'uid=shopper-42' http://127.0.0.1:$port/decisions
      a logged-in shopper (uid cookie)
  curl -s -b 'uid=shopper-42' 'http://127.0.0.1:$port/decisions?buy-button-color=1'
      QA: force the blue button
  curl -s -H 'X-Storefront-Variants: home-hero=evil' http://127.0.0.1:$port/decisions
      spoofed headers are removed

Two shoppers, two home pages (layout decided and assembled at the edge):

  http://127.0.0.1:$port/login?user=mei
      mei, gold tier, buys baby products: VIP perks, guess you like,
      cross-sell (toys, baby care, socks), new arrivals
  http://127.0.0.1:$port/login
      a new visitor: welcome coupon, bestsellers, new arrivals, promotions
      (or new arrivals first, with the home-hero experiment's new banner)

  curl -s -b uid=mei -D - -o /dev/null http://127.0.0.1:$port/ | grep X-Demo-
  curl -s -D - -o /dev/null http://127.0.0.1:$port/ | grep X-Demo-
  $ctl --db $prefix/db explain --page home --user mei
  $ctl --db $prefix/db explain --page home --user leo --now 2026-11-11T12:00:00+08:00

Explain and change the experiments while it runs (no reload needed):

  $ctl --db $prefix/db explain --user shopper-42
  $ctl --db $prefix/db list
  $ctl --db $prefix/db export > experiments.json   # edit, then:
  $ctl --db $prefix/db import experiments.json

Stop it:  scripts/demo.sh stop
EOF
}

case "${1:-start}" in
start) start_demo ;;
stop) stop_demo ;;
status)
    if pid=$(running_pid); then
        echo "demo running (pid $pid) on http://127.0.0.1:$port/"
    else
        echo "demo not running"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 [start|stop|status]" >&2
    exit 2
    ;;
esac
