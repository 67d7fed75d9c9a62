#!/usr/bin/perl
# Live updates: data imported with storefrontctl while nginx runs is seen by
# every worker at the next request, on new and kept-alive connections,
# without a reload (the worker processes stay the same).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Storefront::Test qw(gb_assign);

my $a1 = { key => 'alpha', variations => [ 'x', 'y' ] };
my $b1 = { key => 'beta', variations => [ 'p', 'q', 'r' ] };

my $t = Storefront::Test->new;
$t->must_import({ experiments => [ $a1 ] });
$t->write_config($t->std_config(workers => 2, listen => 'reuseport'));
$t->run(workers => 2);

my @users = map { "live-$_" } 1 .. 30;

# Requests on fresh connections (both workers) plus one kept-alive client.
my $keep = $t->client;
sub look {
    my %seen;
    my %workers;
    for my $u (@users) {
        my $r = $t->get('/', headers => [ 'X-User-Id' => $u ]);
        $seen{$u} = $r->variants;
        $workers{ $r->header('x-t-worker') // '?' } = 1;
    }
    my $k = $keep->request('/', headers => [ 'X-User-Id' => $users[0] ]);
    return (\%seen, [ sort keys %workers ], $k->variants);
}

sub all_match {
    my ($seen, @exps) = @_;
    return scalar grep {
        my $u = $_;
        my %want;
        for my $e (@exps) {
            my $i = gb_assign($e, $u);
            $want{ $e->{key} } = "$i" if $i >= 0;
        }
        eq_hash($seen->{$u}, \%want);
    } @users;
}

my ($seen, $workers0, $kept) = look();
is(all_match($seen, $a1), scalar @users, 'before: alpha only');
ok(exists $kept->{alpha}, 'before: kept-alive connection sees alpha');

# Add an experiment.
$t->must_import({ experiments => [ $a1, $b1 ] });
my $workers1;
($seen, $workers1, $kept) = look();
is(all_match($seen, $a1, $b1), scalar @users, 'added beta seen at once');
ok(exists $kept->{beta}, 'kept-alive connection sees beta');

# Deactivate one.
$t->must_import({ experiments => [ { %$a1, active => JSON::PP::false() },
    $b1 ] });
my $workers2;
($seen, $workers2, $kept) = look();
is(all_match($seen, $b1), scalar @users, 'deactivated alpha gone at once');
ok(!exists $kept->{alpha}, 'kept-alive connection: alpha gone');

# Change weights: everyone into the last variation.
my $b2 = { %$b1, weights => [ 0, 0, 1 ] };
$t->must_import({ experiments => [ { %$a1, active => JSON::PP::false() },
    $b2 ] });
($seen) = look();
is(scalar(grep { ($seen->{$_}{beta} // '') eq '2' } @users), scalar @users,
    'new weights seen at once');

is("@$workers1 @$workers2", "@$workers0 @$workers0",
    'same worker processes throughout (no reload)');
cmp_ok(scalar @$workers0, '>=', 2, 'both workers checked');

$keep->close;
$t->stop;
done_testing;
