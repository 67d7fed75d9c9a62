# Pieces the benchmark scripts share.  The script sets BENCH (its name,
# for messages), PREFIX (its temporary nginx prefix) and NGINX_PID before
# calling them; sourcing this file installs the exit and interrupt traps.
# The A/B helpers (bench_check_ab, measure, run_pairs) also read PORT_A,
# PORT_B, COOKIE, NEXP, CONNS, DURATION, ROUNDS, TARGET and WRK_PIN.

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

# N free loopback ports, chosen by the kernel, on one line.
bench_free_ports() {   # N
    perl -MIO::Socket::INET -e '
        my @s = map { IO::Socket::INET->new(Listen => 1,
            LocalAddr => "127.0.0.1", LocalPort => 0, ReuseAddr => 1)
            or die "socket: $!\n" } 1 .. $ARGV[0];
        print join(" ", map { $_->sockport } @s), "\n";' "$1"
}

# Workers run as nobody when started as root: gives them the directories
# (PREFIX-relative) and sets USER_LINE for nginx.conf.
bench_as_nobody() {   # dir...
    local d
    USER_LINE=
    if [ "$(id -u)" -eq 0 ]; then
        chmod 755 "$PREFIX"
        for d in "$@"; do
            chown -R nobody:"$(id -gn nobody)" "$PREFIX/$d"
        done
        USER_LINE="user nobody $(id -gn nobody);"
    fi
}

# With PIN=1 and two CPUs or more: the nginx worker on CPU 0 (AFFINITY for
# nginx.conf), wrk on CPU 1 (WRK_PIN before its command).  Sets NCPU.
bench_pin() {
    NCPU=$(nproc)
    AFFINITY=
    WRK_PIN=()
    if [ "${PIN:-0}" -eq 1 ] && [ "$NCPU" -ge 2 ] \
       && command -v taskset >/dev/null
    then
        AFFINITY="worker_cpu_affinity 1;"
        WRK_PIN=(taskset -c 1)
    fi
}

# Checks and starts PREFIX's nginx.conf as a daemon; sets NGINX_PID.
bench_start_nginx() {
    "$NGINX" -p "$PREFIX" -c conf/nginx.conf -t -q \
        || die "nginx -t failed (config in $PREFIX/conf/nginx.conf)"
    "$NGINX" -p "$PREFIX" -c conf/nginx.conf \
        -g "daemon on; master_process on;" || die "nginx did not start"
    for _ in $(seq 50); do
        [ -s "$PREFIX/logs/nginx.pid" ] && break
        sleep 0.1
    done
    NGINX_PID=$(cat "$PREFIX/logs/nginx.pid" 2>/dev/null) \
        || die "no pid file; error log: $(cat "$PREFIX/logs/error.log")"
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

median() { sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print 0; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Confirms that B decides and A does not, before measuring anything; sets
# VB (B's X-Variants for COOKIE) and NDEC (its number of decisions).
bench_check_ab() {
    local va vb2
    [ "$(bench_code "$PORT_A")" = 200 ] || die "A does not answer 200"
    [ "$(bench_code "$PORT_B")" = 200 ] || die "B does not answer 200"
    va=$(bench_variants "$PORT_A" "$COOKIE")
    VB=$(bench_variants "$PORT_B" "$COOKIE")
    vb2=$(bench_variants "$PORT_B" "$COOKIE")
    [ -z "$va" ] || die "A made decisions ($va): not a plain baseline"
    [ -n "$VB" ] || [ "$NEXP" -eq 0 ] || die "B made no decisions" \
        "(X-Variants empty); error log: $(tail -5 "$PREFIX/logs/error.log")"
    [ "$VB" = "$vb2" ] || die "B's decisions are not sticky for one cookie"
    NDEC=$(printf '%s\n' "$VB" | sed 's/[,;]/\n/g' | grep -c '=' || true)
}

bench_variants() {   # port [cookie] -> value of X-Variants
    local args=(-s -o /dev/null -D - --max-time 5)
    [ -n "${2:-}" ] && args+=(-H "Cookie: $2")
    curl "${args[@]}" "http://127.0.0.1:$1/" | tr -d '\r' \
        | awk -F': ' 'tolower($1) == "x-variants" { print $2 }'
}

bench_code() {   # port -> HTTP status for COOKIE
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        -H "Cookie: $COOKIE" "http://127.0.0.1:$1/"
}

# A wrk script giving each request the cookie of the next of N visitors,
# valid anonymous ids with a random prefix per run.
bench_visitors_script() {   # N file
    cat > "$2" <<LUA
math.randomseed(os.time())
local n = 0
local prefix = string.format("%08x%08x", math.random(0, 2147483646),
                             math.random(0, 2147483646))
request = function()
    n = n % $1 + 1
    return wrk.format(nil, nil,
        { ["Cookie"] = "sf_anon=" .. prefix .. string.format("%016x", n) })
end
LUA
}

# CPU time of nginx's workers so far, in clock ticks.
HZ=$(getconf CLK_TCK)

# wrk's output -> "rps p50_ms p99_ms errors worker_cpu_us_per_request"
# (the last is 0 without the workers' CPU ticks over the run)
wrk_summary() {   # file [ticks seconds]
    awk -v ticks="${2:-0}" -v hz="$HZ" -v secs="${3:-1}" '
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
        }' "$1"
}

# a wrk run on 127.0.0.1 -> what wrk_summary prints
measure() {   # port seconds [cookie | @script]
    local args=(-t1 -c"$CONNS" -d"$2"s --latency) t0 t1
    case "${3:-}" in
    @*) args+=(-s "${3#@}") ;;
    ?*) args+=(-H "Cookie: $3") ;;
    esac
    t0=$(worker_ticks)
    timeout $(( $2 + 15 )) "${WRK_PIN[@]}" wrk "${args[@]}" \
        "http://127.0.0.1:$1/" > "$PREFIX/wrk.out"
    t1=$(worker_ticks)
    wrk_summary "$PREFIX/wrk.out" $(( t1 - t0 )) "$2"
}

# A/B pairs in ABBA order, each round printed, then the medians and the
# B/A ratio as the median of the per-pair ratios.
# The sides are PORT_A and PORT_B, given to measure as its first argument
# (a port, or whatever else a script's measure takes).
# A throughput ratio compares nginx only while nginx is the bottleneck:
# warns when the baseline left the worker idle part of the time (the
# client, or another tenant of the machine, limited it).
bench_saturation_note() {   # req/s cpu-us-per-request
    awk -v r="$1" -v u="$2" 'BEGIN { busy = r * u / 1e6; if (busy < 0.9)
        printf "note: A kept the nginx worker busy %.0f%% of the time: " \
            "the client limited it, so throughput ratios understate " \
            "the difference; compare the CPU per request\n", busy * 100 }'
}

run_pairs() {   # label cookie [port_a] [target] -> prints rounds and
                #                                   summary, sets RATIO_MED
    local label=$1 cookie=$2 PORT_A=${3:-$PORT_A} TARGET=${4:-$TARGET}
    local i order a b ra rb pa pb qa qb ea eb ua ub
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
        " (%+.2f us, A/B %.4f)\n", "'"$label"'", a, b, b - a, a / b }'
    bench_saturation_note "$mar" "$mau"
}
