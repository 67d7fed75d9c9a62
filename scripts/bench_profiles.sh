#!/usr/bin/env bash
# Profile benchmark: bulk import and random lookups.
#
#   1. generates N synthetic profiles as JSON lines (build/bench/gen_profiles)
#   2. imports them with `storefrontctl import`, under /usr/bin/time -v:
#      profiles per second, peak memory (RSS), database size, bytes per
#      profile; the input file is deleted right after
#   3. random profile lookups per second on one core
#      (build/bench/bench_profiles: renew, get, derive, reset; 5 runs,
#      median)
#
# usage: scripts/bench_profiles.sh [-n N] [-d DIR] [--keep] [--no-pin]
#   -n N      profiles (default 10000000: ~3 GB of JSON, ~3.7 GB of LMDB)
#   -d DIR    work directory (default: a new one in $TMPDIR or /tmp)
#   --keep    keep the database (DIR/db) afterwards
#   --no-pin  do not pin the lookup benchmark to one CPU
# Environment: STOREFRONTCTL, GEN_PROFILES, BENCH_PROFILES (binaries).
# Takes about 2 minutes for 10 million profiles; refuses to start when the
# work directory's file system has less than ~800 bytes per profile free.
# Targets: import >= 200,000 profiles/s; lookups >= 1,000,000/s per core.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CTL=${STOREFRONTCTL:-$ROOT/build/storefrontctl}
GEN=${GEN_PROFILES:-$ROOT/build/bench/gen_profiles}
BENCH=${BENCH_PROFILES:-$ROOT/build/bench/bench_profiles}
N=10000000
DIR=
KEEP=0
PIN=1

while [ $# -gt 0 ]; do
    case "$1" in
    -n) N=$2; shift 2 ;;
    -d) DIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --no-pin) PIN=0; shift ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "bench_profiles.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

case "$N" in
''|*[!0-9]*|0) echo "bench_profiles.sh: -n needs a positive number" >&2
               exit 2 ;;
esac

for b in "$CTL" "$GEN" "$BENCH"; do
    if [ ! -x "$b" ]; then
        echo "bench_profiles.sh: $b missing: run make engine" >&2
        exit 1
    fi
done
if [ ! -x /usr/bin/time ]; then
    echo "bench_profiles.sh: /usr/bin/time missing (Debian package time)" >&2
    exit 1
fi

if [ -z "$DIR" ]; then
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/sf-bench-profiles.XXXXXX")
    OWN_DIR=1
else
    mkdir -p "$DIR"
    OWN_DIR=0
fi
INPUT=$DIR/profiles.jsonl
DB=$DIR/db

cleanup() {
    rm -f "$INPUT" "$DIR/time.txt" "$DIR/import.txt"
    if [ "$KEEP" = 0 ]; then
        rm -rf "$DB"
        [ "$OWN_DIR" = 1 ] && rmdir "$DIR" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# room for the input (~310 B/profile), the database (~370 B/profile) and
# the page cache's dirty data: ~800 bytes a profile
need_kb=$(( N * 800 / 1024 ))
free_kb=$(df -Pk "$DIR" | awk 'NR == 2 { print $4 }')
if [ "$free_kb" -lt "$need_kb" ]; then
    echo "bench_profiles.sh: $DIR: $((free_kb / 1024)) MiB free, about" \
         "$((need_kb / 1024)) MiB needed for $N profiles (use -n or -d)" >&2
    exit 1
fi
if [ -e "$DB" ]; then
    echo "bench_profiles.sh: $DB exists: give an empty -d DIR" >&2
    exit 1
fi

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "== profile benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(awk '/MemTotal/ {
    printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine" \
     "makes figures noisy)"
echo

echo "== generating $N profiles"
start=$(date +%s.%N)
"$GEN" "$N" > "$INPUT"
end=$(date +%s.%N)
size=$(stat -c %s "$INPUT")
awk -v s="$start" -v e="$end" -v b="$size" -v n="$N" 'BEGIN {
    printf "%s: %.0f MiB, %.0f bytes a profile, in %.1f s\n",
        "input", b / 1048576, b / n, e - s }'
echo

echo "== import"
/usr/bin/time -v -o "$DIR/time.txt" "$CTL" --db "$DB" import "$INPUT" \
    | tee "$DIR/import.txt"
rm -f "$INPUT"

wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$DIR/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$DIR/time.txt")
user=$(awk -F': ' '/User time/ { print $2 }' "$DIR/time.txt")
sys=$(awk -F': ' '/System time/ { print $2 }' "$DIR/time.txt")
secs=$(echo "$wall" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++)
                                   s = s * 60 + $i; print s }')
used=$("$CTL" --db "$DB" info --json | sed -n 's/.*"used_bytes":\([0-9]*\).*/\1/p')
file=$(stat -c %s "$DB/data.mdb")
count=$("$CTL" --db "$DB" info --json | sed -n 's/.*"profiles":\([0-9]*\).*/\1/p')

awk -v n="$N" -v c="$count" -v t="$secs" -v rss="$rss" -v used="$used" \
    -v file="$file" -v u="$user" -v s="$sys" 'BEGIN {
    printf "profiles stored:      %d of %d\n", c, n
    printf "import wall time:     %.1f s (CPU: %.1f s user, %.1f s system)\n",
        t, u, s
    printf "import rate:          %.0f profiles/s (target >= 200000: %s)\n",
        n / t, ((n / t >= 200000) ? "met" : "NOT met")
    printf "peak memory (RSS):    %.0f MiB\n", rss / 1024
    printf "database:             %.0f MiB used (data.mdb %.0f MiB)\n",
        used / 1048576, file / 1048576
    printf "bytes per profile:    %.0f\n", used / n
}'
echo

echo "== random lookups (one core)"
pin=()
if [ "$PIN" = 1 ] && command -v taskset > /dev/null && [ "$(nproc)" -gt 1 ]
then
    pin=(taskset -c 1)
fi
"${pin[@]}" "$BENCH" --db "$DB" -n "$N" -r 5

if [ "$KEEP" = 1 ]; then
    echo
    echo "database kept in $DB"
fi
