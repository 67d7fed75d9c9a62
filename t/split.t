#!/usr/bin/perl
# The split of 10 000 synthetic users (ids from X-User-Id): counts within a
# chi-square bound of the weights, every user's variation equal to
# GrowthBook's, the variables ($storefront_variant_<key>,
# $storefront_cache_key) consistent with the headers, and storefrontctl
# explain agreeing with nginx.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Storefront::Test qw(gb_assign gb_hash chi_square json_decode);

my $N = $ENV{STOREFRONT_SPLIT_USERS} || 10_000;

my @experiments = (
    { key => 'split3', variations => [ 'a', 'b', 'c' ],
      weights => [ 0.2, 0.3, 0.5 ],
      meta => [ { key => 'control' }, { key => 'small' },
          { key => 'large' } ] },
    { key => 'split2', variations => [ 0, 1 ], hashVersion => 2 },
);
my %exp = map { $_->{key} => $_ } @experiments;

my $t = Storefront::Test->new;
$t->must_import({ experiments => \@experiments });
$t->write_config($t->std_config(workers => 2, location => q{
            add_header X-T-Split3 $storefront_variant_split3;
            add_header X-T-Split2 $storefront_variant_split2;
}));
$t->run(workers => 2);

my %count = (split3 => {}, split2 => {});
my ($mismatch, $var_mismatch, %cache_keys, %combo_of_key) = (0, 0);
my $key_ok = 1;
my $c = $t->client;
for my $i (1 .. $N) {
    my $id = sprintf 'user-%05d', $i;
    my $r = $c->request('/', headers => [ 'X-User-Id' => $id ]);
    my $v = $r->variants;
    $count{$_}{ $v->{$_} // 'none' }++ for keys %count;

    my %want;
    for my $e (@experiments) {
        my $x = gb_assign($e, $id);
        $want{ $e->{key} } = $e->{meta} ? $e->{meta}[$x]{key} : "$x"
            if $x >= 0;
    }
    unless ($r->status == 200 && eq_hash($v, \%want)) {
        diag("$id: got " . explain($v) . ' want ' . explain(\%want))
            if $mismatch++ < 5;
    }
    $var_mismatch++
        if ($r->header('x-t-split3') // '') ne ($v->{split3} // '')
        || ($r->header('x-t-split2') // '') ne ($v->{split2} // '');

    my $ck = $r->header('x-t-cache-key') // '';
    my $combo = join ';', map { "$_=$v->{$_}" } sort keys %$v;
    $cache_keys{$ck}{$combo} = 1;
    $key_ok = 0 if index($ck, $id) >= 0;
}
$c->close;

is($mismatch, 0, "all $N users get GrowthBook's variations");
is($var_mismatch, 0, '$storefront_variant_<key> equals the Variants header');

# Low cardinality: one cache key per combination of variations, not per user.
my @ck = keys %cache_keys;
cmp_ok(scalar @ck, '<=', 6, '$storefront_cache_key has few values')
    or diag(scalar(@ck) . ' distinct cache keys');
is(scalar(grep { keys %{ $cache_keys{$_} } == 1 } @ck), scalar @ck,
    'each cache key stands for one combination of variations');
ok($key_ok, 'the cache key does not contain the user id');

# Chi-square against the weights (p = 0.001 critical values).
{
    my @w = @{ $exp{split3}{weights} };
    my @o = map { $count{split3}{$_} // 0 } qw(control small large);
    is($o[0] + $o[1] + $o[2], $N, 'split3: every user in a variation');
    my $x2 = chi_square(\@o, \@w);
    cmp_ok($x2, '<', 13.816, "split3 0.2/0.3/0.5 chi-square (df 2) = "
        . sprintf('%.2f', $x2) . " (counts @o)");
}
{
    my @o = map { $count{split2}{$_} // 0 } qw(0 1);
    is($o[0] + $o[1], $N, 'split2: every user in a variation');
    my $x2 = chi_square(\@o, [ 0.5, 0.5 ]);
    cmp_ok($x2, '<', 10.828, "split2 50/50 hash v2 chi-square (df 1) = "
        . sprintf('%.2f', $x2) . " (counts @o)");
}

# storefrontctl explain agrees with nginx (and GrowthBook) on a sample.
my ($explain_ok, $explain_n) = (0, 0);
for my $i (map { $_ * 97 } 1 .. 40) {
    my $id = sprintf 'user-%05d', $i;
    my ($code, $out, $err) = $t->ctl('explain', '--user', $id, '--json');
    $explain_n++;
    my $j = eval { json_decode($out) };
    unless ($code == 0 && $j) {
        diag("explain $id: exit $code: $err") if $explain_n - $explain_ok < 3;
        next;
    }
    my %by = map { $_->{key} => $_ } @{ $j->{experiments} // [] };
    my $good = 1;
    for my $e (@experiments) {
        my $x = gb_assign($e, $id);
        my $h = gb_hash($e->{seed} // $e->{key}, $id, $e->{hashVersion} // 1);
        my $got = $by{ $e->{key} } or do { $good = 0; last };
        $good &&= ($got->{in_experiment} ? 1 : 0) == ($x >= 0 ? 1 : 0);
        $good &&= $got->{variation} == $x if $x >= 0;
        $good &&= defined $got->{hash} && abs($got->{hash} - $h) < 1e-9;
    }
    $explain_ok++ if $good;
    diag("explain $id: $out") if !$good && $explain_n - $explain_ok < 3;
}
is($explain_ok, $explain_n, 'storefrontctl explain --json agrees');

$t->stop;
done_testing;
