#!/usr/bin/perl
# Sticky assignment: an anonymous visitor (minted cookie) and a logged-in
# user (X-User-Id) keep their variations across requests, connections,
# both workers, a reload and a restart; the variations are GrowthBook's.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Storefront::Test qw(gb_assign parse_variants);

my @experiments = (
    { key => 'hero', variations => [ { banner => 'spring-sale' },
        { banner => 'new-arrivals' } ],
      meta => [ { key => 'spring' }, { key => 'arrivals' } ] },
    { key => 'button', variations => [ 'red', 'blue', 'green' ],
      weights => [ 0.5, 0.25, 0.25 ] },
    { key => 'v2', variations => [ 0, 1 ], hashVersion => 2,
      seed => 'v2-seed' },
);

# The variants map GrowthBook gives the id.
sub expected {
    my ($id) = @_;
    my %v;
    for my $e (@experiments) {
        my $i = gb_assign($e, $id);
        next if $i < 0;
        $v{ $e->{key} } = $e->{meta} ? $e->{meta}[$i]{key} : "$i";
    }
    return \%v;
}

my $t = Storefront::Test->new;
$t->must_import({ experiments => \@experiments });
$t->write_config($t->std_config(workers => 2, listen => 'reuseport'));
$t->run(workers => 2);

# ---- anonymous visitor -------------------------------------------------------

my %jar;
my $r = $t->get('/', jar => \%jar);
is($r->status, 200, 'first request 200');
my @sc = $r->headers('set-cookie');
is(scalar @sc, 1, 'one Set-Cookie on the first request');
my $anon = $jar{sf_anon} // '';
like($anon, qr/^[0-9a-f]{32}$/, 'sf_anon is 32 lowercase hex');

my %e = $r->echo;
is($e{uid}, $anon, 'upstream User-Id is the minted id');
is($e{status}, 'ok', 'upstream Status ok');
is_deeply($r->variants, expected($anon),
    'variants are GrowthBook\'s for the minted id');
my $first = $e{variants};

my %workers;
my ($same, $nocookie, $notminted) = (0, 0, 0);
my $n = 60;
for (1 .. $n) {
    $r = $t->get('/', jar => \%jar);
    my %x = $r->echo;
    $same++ if $r->status == 200 && $x{variants} eq $first
        && $x{uid} eq $anon;
    $nocookie++ unless $r->headers('set-cookie');
    $notminted++ if ($x{minted} // '') =~ /^(?:|0|false|no)$/;
    $workers{ $r->header('x-t-worker') // '?' }++;
}
is($same, $n, "same id and variants on $n new connections");
is($nocookie, $n, 'cookie not minted again');
is($notminted, $n, 'Id-Minted false once the cookie is sent');
cmp_ok(scalar(grep { /^\d+$/ } keys %workers), '>=', 2,
    'requests were served by both workers')
    or diag(explain \%workers);

# ---- logged-in user ----------------------------------------------------------

my @users = map { "member-$_" } 1 .. 20;
my %seen;
for my $u (@users) {
    $r = $t->get('/', headers => [ 'X-User-Id' => $u ]);
    my %x = $r->echo;
    $seen{$u} = $x{variants};
}
my $ok = grep {
    my $u = $_;
    my $c = $t->client;
    my $all = 1;
    for (1 .. 3) {
        my %x = $c->request('/', headers => [ 'X-User-Id' => $u ])->echo;
        $all &&= $x{variants} eq $seen{$u} && $x{uid} eq $u;
    }
    $c->close;
    $all;
} @users;
is($ok, scalar @users, 'logged-in users sticky over keep-alive requests');

my $match = grep {
    my $v = $t->get('/', headers => [ 'X-User-Id' => $_ ])->variants;
    eq_hash($v, expected($_));
} @users;
is($match, scalar @users, 'every logged-in user gets GrowthBook\'s variants');

# ---- reload and restart ------------------------------------------------------

sub check_all {
    my ($when) = @_;
    my %x = $t->get('/', jar => \%jar)->echo;
    is($x{variants}, $first, "anonymous visitor sticky after $when");
    is($x{uid}, $anon, "anonymous id kept after $when");
    my $same = grep {
        my %y = $t->get('/', headers => [ 'X-User-Id' => $_ ])->echo;
        $y{variants} eq $seen{$_};
    } @users;
    is($same, scalar @users, "logged-in users sticky after $when");
}

ok($t->reload(workers => 2), 'reload (HUP)');
check_all('a reload');

$t->restart(workers => 2);
check_all('a restart');

$t->stop;
done_testing;
