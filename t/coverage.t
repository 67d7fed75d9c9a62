#!/usr/bin/perl
# A coverage change (re-import with higher, then lower coverage while nginx
# runs) moves no user from one variation to another: users only enter or
# leave the experiment.  Namespaced experiments are mutually exclusive.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Storefront::Test qw(gb_assign);

my $N = 3000;
my @ids = map { "cov-$_" } 1 .. $N;

sub exp_cov {
    my ($coverage) = @_;
    return { key => 'rollout', variations => [ 'off', 'on' ],
        weights => [ 0.5, 0.5 ], coverage => $coverage };
}

my @ns = (
    { key => 'ns-left', variations => [ 0, 1 ],
      namespace => [ 'checkout', 0, 0.5 ] },
    { key => 'ns-right', variations => [ 0, 1, 2 ],
      namespace => [ 'checkout', 0.5, 1 ] },
    { key => 'ns-other', variations => [ 0, 1 ],
      namespace => [ 'search', 0, 0.3 ] },
);

my $t = Storefront::Test->new;
$t->must_import({ experiments => [ exp_cov(0.3), @ns ] });
$t->write_config($t->std_config(workers => 2));
$t->run(workers => 2);

sub snapshot {
    my %v;
    my $c = $t->client;
    for my $id (@ids) {
        $v{$id} = $c->request('/', headers => [ 'X-User-Id' => $id ])
            ->variants;
    }
    $c->close;
    return \%v;
}

sub in_count {
    my ($snap, $key) = @_;
    return scalar grep { exists $snap->{$_}{$key} } @ids;
}

# Users that left, users that entered, users that changed variation.
sub diff {
    my ($a, $b, $key) = @_;
    my ($left, $entered, $moved) = (0, 0, 0);
    for my $id (@ids) {
        my ($x, $y) = ($a->{$id}{$key}, $b->{$id}{$key});
        if (defined $x && defined $y) { $moved++ if $x ne $y }
        elsif (defined $x) { $left++ }
        elsif (defined $y) { $entered++ }
    }
    return ($left, $entered, $moved);
}

sub agrees {
    my ($snap, $exp) = @_;
    my $bad = grep {
        my $i = gb_assign($exp, $_);
        my $got = $snap->{$_}{ $exp->{key} };
        $i < 0 ? defined $got : ($got // '') ne "$i";
    } @ids;
    return $bad;
}

my $s30 = snapshot();
my $in30 = in_count($s30, 'rollout');
cmp_ok(abs($in30 / $N - 0.3), '<', 0.04, "coverage 0.3: $in30 of $N in");
is(agrees($s30, exp_cov(0.3)), 0, 'coverage 0.3: GrowthBook assignment');

# ---- raise coverage without a reload ---------------------------------------

$t->must_import({ experiments => [ exp_cov(0.8), @ns ] });
my $s80 = snapshot();
my ($left, $entered, $moved) = diff($s30, $s80, 'rollout');
is($moved, 0, '0.3 -> 0.8: no user changed variation');
is($left, 0, '0.3 -> 0.8: no user left');
cmp_ok($entered, '>', 0.4 * $N, "0.3 -> 0.8: $entered users entered");
is(agrees($s80, exp_cov(0.8)), 0, 'coverage 0.8: GrowthBook assignment');

# ---- lower it again ----------------------------------------------------------

$t->must_import({ experiments => [ exp_cov(0.1), @ns ] });
my $s10 = snapshot();
($left, $entered, $moved) = diff($s80, $s10, 'rollout');
is($moved, 0, '0.8 -> 0.1: no user changed variation');
is($entered, 0, '0.8 -> 0.1: no user entered');
is(agrees($s10, exp_cov(0.1)), 0, 'coverage 0.1: GrowthBook assignment');

# ---- namespaces ----------------------------------------------------------------

my $both = grep { exists $s10->{$_}{'ns-left'} && exists $s10->{$_}{'ns-right'} }
    @ids;
is($both, 0, 'no user in two experiments of one namespace range split');
my ($l, $r) = (in_count($s10, 'ns-left'), in_count($s10, 'ns-right'));
cmp_ok($l, '>', 0.4 * $N, "ns-left has $l users");
cmp_ok($r, '>', 0.4 * $N, "ns-right has $r users");
is($l + $r, $N, 'namespace ranges [0,0.5) and [0.5,1) cover everyone');
my $o = in_count($s10, 'ns-other');
cmp_ok(abs($o / $N - 0.3), '<', 0.04, "other namespace independent: $o");
is(agrees($s10, $_), 0, "$_->{key}: GrowthBook namespace assignment")
    for @ns;

$t->stop;
done_testing;
