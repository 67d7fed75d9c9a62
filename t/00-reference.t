#!/usr/bin/perl
# The Perl GrowthBook reference that the nginx tests use as their oracle,
# checked against GrowthBook's own SDK cases (skipped when absent).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Encode ();
use Test::More;
use Storefront::Test qw(gb_hash gb_bucket_ranges gb_choose_variation
    gb_in_namespace gb_equal_weights gb_fnv1a32 json_decode repo_path);

my $cases = $ENV{STOREFRONT_GB_CASES}
    // repo_path('../shared/conformance/growthbook-cases.json');
plan skip_all => 'conformance file absent' unless -f $cases;

my $data = do {
    open my $fh, '<:raw', $cases or die "$cases: $!";
    local $/;
    json_decode(scalar <$fh>);
};

# Known values: FNV-1a 32 of "" and "a" (UTF-16 code units equal bytes).
is(gb_fnv1a32(''), 0x811c9dc5, 'fnv1a32("")');
is(gb_fnv1a32('a'), 0xe40c292c, 'fnv1a32("a")');

sub round8 { int($_[0] * 1e8) / 1e8 }

for my $c (@{ $data->{hash} }) {
    my ($seed, $value, $version, $expected) = @$c;
    my $got = gb_hash($seed, Encode::encode('UTF-8', $value), $version);
    if (defined $expected) {
        ok(defined $got && abs($got - $expected) < 1e-9,
            "hash('$seed', v$version)") or diag("got " . ($got // 'undef'));
    } else {
        ok(!defined $got, "hash v$version is null");
    }
}

for my $c (@{ $data->{getBucketRange} }) {
    my ($name, $args, $expected) = @$c;
    my $got = gb_bucket_ranges(@$args);
    my @g = map { [ round8($_->[0]), round8($_->[1]) ] } @$got;
    my @e = map { [ round8($_->[0]), round8($_->[1]) ] } @$expected;
    is_deeply(\@g, \@e, "getBucketRange: $name");
}

for my $c (@{ $data->{chooseVariation} }) {
    my ($name, $n, $ranges, $expected) = @$c;
    is(gb_choose_variation($n, $ranges), $expected, "chooseVariation: $name");
}

for my $c (@{ $data->{inNamespace} }) {
    my ($name, $id, $ns, $expected) = @$c;
    is(gb_in_namespace(Encode::encode('UTF-8', $id), $ns), $expected ? 1 : 0,
        "inNamespace: $name");
}

for my $c (@{ $data->{getEqualWeights} }) {
    my ($n, $expected) = @$c;
    my @g = map { round8($_) } @{ gb_equal_weights($n) };
    my @e = map { round8($_) } @$expected;
    is_deeply(\@g, \@e, "getEqualWeights($n)");
}

done_testing;
