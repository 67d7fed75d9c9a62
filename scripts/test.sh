#!/usr/bin/env bash
# Builds everything that is missing or stale (scripts/build.sh), then runs
#   - the engine unit tests build/tests/test_* (C programs printing TAP),
#   - the nginx integration tests t/*.t (Perl, real nginx + the module),
# and prints a summary.  The last line counts assertions (TAP test points):
#   N passed, N failed, N skipped
# A test file that crashes, times out or misses its plan without a failed
# assertion counts as one failure.  Exit status is non-zero on any failure.
#
#   scripts/test.sh                 everything
#   scripts/test.sh t/cookie.t ...  only these files (after the build)
#   SF_TEST_TIMEOUT=300             per-file time limit in seconds
#   SF_TEST_VERBOSE=1               show every assertion
#   SF_TEST_NO_BUILD=1              do not build first
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if [ -z "${SF_TEST_NO_BUILD:-}" ]; then
    echo "== build"
    if ! scripts/build.sh; then
        echo
        echo "== summary"
        echo "build failed: no test was run"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi

files=("$@")
if [ "${#files[@]}" -eq 0 ]; then
    shopt -s nullglob
    files=(build/tests/test_* t/*.t)
    shopt -u nullglob
    # the unit test binaries, not their dependency files
    mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -v '\.d$')
fi
if [ "${#files[@]}" -eq 0 ]; then
    echo "no tests found" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

echo "== tests"
exec perl -I"$repo/t/lib" -e '
use strict;
use warnings;
use TAP::Harness;

my $timeout = $ENV{SF_TEST_TIMEOUT} || 300;
my @timeout = (q(timeout), q(-k), q(10), $timeout);
my $harness = TAP::Harness->new({
    verbosity => $ENV{SF_TEST_VERBOSE} ? 1 : 0,
    timer     => 1,
    color     => 0,
    lib       => [ q(t/lib) ],
    exec      => sub {
        my (undef, $file) = @_;
        return [ @timeout, $file ] if $file !~ /\.t$/;
        return [ @timeout, $^X, q(-It/lib), $file ];
    },
});
my $agg = $harness->runtests(@ARGV);

my ($passed, $failed, $skipped) = (0, 0, 0);
my (@bad_files, @skipped_files);
for my $file ($agg->descriptions) {
    my ($p) = $agg->parsers($file);
    if ($p->skip_all) {
        $skipped++;
        push @skipped_files, $file;
        next;
    }
    my $f = scalar $p->failed;
    my $s = scalar $p->skipped;
    $passed += scalar($p->passed) - $s;
    $skipped += $s;
    $failed += $f;
    if ($p->has_problems) {
        $failed++ if $f == 0;
        push @bad_files, $file;
    }
}

print "\n== summary\n";
printf "test files: %d run, %d failed, %d skipped\n",
    scalar($agg->descriptions), scalar(@bad_files), scalar(@skipped_files);
print "  failed:  $_\n" for @bad_files;
print "  skipped: $_\n" for @skipped_files;
print "counts below are assertions; a broken file without a failed ",
    "assertion counts as 1 failure\n";
printf "%d passed, %d failed, %d skipped\n", $passed, $failed, $skipped;
exit($failed ? 1 : 0);
' "${files[@]}"
