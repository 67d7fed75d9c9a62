#!/usr/bin/env bash
# The tests again, on builds with AddressSanitizer and UndefinedBehavior-
# Sanitizer: the engine, its unit tests and storefrontctl (build/asan/),
# and the nginx module (build/asan/nginx/), loaded into Debian's nginx run
# with the ASan runtime preloaded.  A memory error stops the process that
# makes it (a failed test, or a worker's crash in the error log), and so
# does undefined behaviour in the unit tests and storefrontctl; in nginx
# it is reported in the error log, which fails the test that wrote it.
#
#   scripts/test_asan.sh                 every test
#   scripts/test_asan.sh t/ads.t ...     these (unit tests by their path,
#                                        e.g. build/asan/tests/test_ads)
#
# The tests that move nginx's clock are skipped: libfaketime and the ASan
# runtime preloaded together hang nginx.  Leak reports are off (nginx
# leaves its pools to exit).  Prints the summary of scripts/test.sh.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

scripts/build.sh deps

asan=build/asan
sanitize="-fsanitize=address,undefined -fno-omit-frame-pointer"
runtime=$(cc -print-file-name=libasan.so)
[ -f "$runtime" ] || { echo "test_asan.sh: no libasan.so for cc" >&2; exit 1; }

echo "== sanitizer build ($asan)"
# undefined behaviour stops the unit tests and storefrontctl; -Wrestrict
# misfires under the sanitizers' instrumentation
make -s -j"$(nproc)" B="$asan" engine \
    EXTRA_CFLAGS="$sanitize -fno-sanitize-recover=undefined -Wno-restrict"
make -s B="$asan" NGX_CC_OPT="-g -O1 $sanitize" NGX_LD_OPT="$sanitize" \
    module > "$asan/module-build.log" 2>&1 \
    || { tail -n 30 "$asan/module-build.log" >&2; exit 1; }

cat > "$asan/nginx-asan" <<EOF
#!/bin/sh
LD_PRELOAD="$runtime\${LD_PRELOAD:+ \$LD_PRELOAD}" exec /usr/sbin/nginx "\$@"
EOF
chmod +x "$asan/nginx-asan"

files=("$@")
if [ "${#files[@]}" -eq 0 ]; then
    shopt -s nullglob
    files=("$asan"/tests/test_* t/*.t)
    shopt -u nullglob
    mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -v '\.d$')
fi

export STOREFRONT_NGINX="$repo/$asan/nginx-asan"
export STOREFRONT_MODULE="$repo/$asan/nginx/ngx_http_storefront_module.so"
export STOREFRONT_CTL="$repo/$asan/storefrontctl"
export STOREFRONT_NO_FAKETIME=1
export ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1
export SF_TEST_NO_BUILD=1

exec scripts/test.sh "${files[@]}"
