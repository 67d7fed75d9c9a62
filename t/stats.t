#!/usr/bin/perl
# Experiment results: unique exposures across workers, reloads and
# restarts; conversions attributed to what the user saw before (admin
# events and the conversion beacon); the statistics against a
# recomputation and against known values (9463 vs 7681 users on a 50/50
# split: chi-square 185.2); the sample ratio mismatch alarm on a skewed
# split and not on a fair one; start, stop, ramp 10% -> 100% (nobody moves)
# and re-randomisation through the admin endpoint and storefrontctl;
# admin refusals that change nothing; the beacon's refusals.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Storefront::Test qw(gb_assign chi_square json_encode json_decode);

my $TOKEN = 'stats-token-0123456789abcdef';
my $AUTH = [ Authorization => "Bearer $TOKEN" ];

# the country is the hash attribute of "skew": a non-uniform attribute
my $fair = { key => 'fair', variations => [ 'a', 'b' ],
    meta => [ { key => 'control' }, { key => 'treatment' } ] };
my $skew = { key => 'skew', variations => [ 0, 1 ],
    hashAttribute => 'country' };
my $ramp = { key => 'ramp', variations => [ 0, 1 ], coverage => 0.1 };
my $ramp2 = { key => 'ramp2', variations => [ 0, 1, 2 ], coverage => 0.1 };
my $srm = { key => 'srm', variations => [ 0, 1 ], active => JSON::PP::false() };
my $slash = { key => 'shop/hero', variations => [ 0, 1 ], coverage => 0.5 };

my $t = Storefront::Test->new;
$t->must_import({ experiments => [ $fair, $skew, $ramp, $ramp2, $srm,
    $slash ] });

sub config {
    my (%o) = @_;
    my $flush = $o{flush} // '100ms';
    return $t->std_config(workers => 2, listen => 'reuseport',
        http => "storefront_stats_flush $flush;",
        server => <<"EOF");
        storefront_attribute country \$http_x_country;
        location = /sf/convert { storefront_convert; }
        location = /sf/stats { storefront off; storefront_stats_api; }
        location /sf-admin/ {
            storefront_admin;
            storefront_admin_token $TOKEN;
        }
EOF
}

$t->write_config(config());
$t->run(workers => 2);

sub stats {
    my ($key) = @_;
    my $r = $t->get('/sf/stats' . ($key ? "?experiment=$key" : ''));
    return undef unless $r->status == 200;
    my $doc = json_decode($r->body);
    return $key ? $doc->{experiments}[0] : $doc;
}

# Waits until the experiment has n users (the flush is asynchronous).
sub wait_users {
    my ($key, $n, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    my $e;
    while (time < $deadline) {
        $e = stats($key);
        return $e if $e && $e->{users} >= $n;
        sleep 0.05;
    }
    return $e;
}

sub visit {
    my ($user, %h) = @_;
    return $t->get('/', headers => [ 'X-User-Id' => $user, %h ]);
}

sub arms_of {
    my ($exp, @users) = @_;
    my @n = (0) x @{ $exp->{variations} };
    for (@users) {
        my $i = gb_assign($exp, $_);
        $n[$i]++ if $i >= 0;
    }
    return @n;
}

sub users_of { [ map { $_->{users} } @{ $_[0]{variations} } ] }

# ---- unique exposures across workers, a reload and a restart ------------------

my @users = map { "s-$_" } 1 .. 200;
my %workers;
for my $round (1 .. 3) {
    for my $u (@users) {
        my $r = visit($u);
        $workers{ $r->header('x-t-worker') // '?' }++;
    }
}
cmp_ok(scalar keys %workers, '>=', 2, 'the requests went to both workers');

my $e = wait_users('fair', 200);
is($e->{users}, 200, '200 users, 3 requests each on 2 workers: 200 counted');
is_deeply(users_of($e), [ arms_of($fair, @users) ],
    'users per variation as GrowthBook assigns them');
sleep 0.3;
is(stats('fair')->{users}, 200, 'and still 200 a moment later');

# A long interval: exposures wait in the workers; a reload makes the old
# workers exit, writing them.
$t->write_config(config(flush => '60s'));
ok($t->reload(workers => 2), 'reload with storefront_stats_flush 60s');
my @late = map { "late-$_" } 1 .. 30;
visit($_) for @late;
sleep 0.3;
is(stats('fair')->{users}, 200, 'within the interval: not written yet');
ok($t->reload(workers => 2), 'reload');
$e = wait_users('fair', 230);
is($e->{users}, 230, 'the old workers wrote their buffer when they exited');

# QUIT, then the same users again and some new ones after a restart.
visit($_) for map { "quit-$_" } 1 .. 10;
$t->stop;
$t->write_config(config());
$t->run(workers => 2);
$e = wait_users('fair', 240);
is($e->{users}, 240, 'a graceful stop wrote the exposures still buffered');
visit($_) for @users, @late, map { "new-$_" } 1 .. 20;
$e = wait_users('fair', 260);
sleep 0.3;
$e = stats('fair');
is($e->{users}, 260, 'after a restart known users are not counted again');
is_deeply(users_of($e),
    [ arms_of($fair, @users, @late, (map { "quit-$_" } 1 .. 10),
        map { "new-$_" } 1 .. 20) ],
    '... and every user in the variation GrowthBook gives');

# ---- conversions ------------------------------------------------------------

my $now = time;
my (@events, %expect);
my @all = (@users, @late, (map { "quit-$_" } 1 .. 10), map { "new-$_" } 1 .. 20);
$expect{$_} = { converters => 0, orders => 0, revenue => 0, returns => 0,
    returned => 0 } for 0, 1;

# admin events: 30 buyers, 10 of them twice, one order returned
for my $i (0 .. 29) {
    my $u = $users[$i];
    my $arm = gb_assign($fair, $u);
    push @events, { type => 'purchase', user => $u, order_id => "a$i",
        amount => 10 + $i };
    $expect{$arm}{converters}++;
    $expect{$arm}{orders}++;
    $expect{$arm}{revenue} += 10 + $i;
    if ($i < 10) {
        push @events, { type => 'purchase', user => $u, order_id => "b$i",
            amount => 5 };
        $expect{$arm}{orders}++;
        $expect{$arm}{revenue} += 5;
    }
}
push @events, { type => 'return', user => $users[0], order_id => 'a0' };
$expect{ gb_assign($fair, $users[0]) }{returns}++;
$expect{ gb_assign($fair, $users[0]) }{returned} += 10;

# not attributed: a user never exposed, and a purchase before the exposure
push @events, { type => 'purchase', user => 'never-seen', order_id => 'n1',
    amount => 99 };
push @events, { type => 'purchase', user => $users[50], order_id => 'old',
    amount => 77, time => int($now) - 86400 };

my $r = $t->get('/sf-admin/events', method => 'POST', headers => $AUTH,
    body => json_encode(\@events));
is($r->status, 200, 'purchases and a return through the admin endpoint')
    or diag($r->body);

# beacons: 20 more buyers, identified as the pages identify them
for my $i (100 .. 119) {
    my $u = $users[$i];
    my $arm = gb_assign($fair, $u);
    $r = $t->get('/sf/convert', method => 'POST',
        headers => [ 'X-User-Id' => $u ],
        body => json_encode({ order_id => "c$i", amount => 20,
            categories => [ 'shoes' ] }));
    $expect{$arm}{converters}++;
    $expect{$arm}{orders}++;
    $expect{$arm}{revenue} += 20;
}
is($r->status, 200, 'conversion beacons accepted');
is_deeply(json_decode($r->body), { applied => JSON::PP::true(),
    duplicate => JSON::PP::false() }, '... applied');

# a new visitor whose exposure is still in the worker's buffer: the beacon
# writes it first, so the purchase is attributed at once
$t->write_config(config(flush => '60s'));
ok($t->reload(workers => 2), 'reload with a long interval');
my $c = $t->client;
my $fresh = 'fresh-buyer';
$r = $c->request('/', headers => [ 'X-User-Id' => $fresh ]);
$r = $c->request('/sf/convert', method => 'POST',
    headers => [ 'X-User-Id' => $fresh ],
    body => '{"order_id":"f1","amount":42}');
is($r->status, 200, 'a beacon right after the first page view');
$c->close;
my $farm = gb_assign($fair, $fresh);
$expect{$farm}{converters}++;
$expect{$farm}{orders}++;
$expect{$farm}{revenue} += 42;
$t->write_config(config());
ok($t->reload(workers => 2), 'reload with the short interval again');

$e = stats('fair');
for my $i (0, 1) {
    my $v = $e->{variations}[$i];
    is_deeply({ map { $_ => $v->{$_} } qw(converters orders revenue returns
        returned) }, $expect{$i}, "variation $i: converters, orders, "
        . 'revenue, returns as attributed');
}
is($e->{users}, 261, 'the beacon counted the new visitor too');

# the beacon's refusals
$r = $t->get('/sf/convert', headers => [ 'X-User-Id' => 'x' ]);
is($r->status, 405, 'beacon: GET is not allowed');
is($r->header('allow'), 'POST', '... Allow: POST');
$r = $t->get('/sf/convert', method => 'POST', body => '{"order_id":"z",'
    . '"amount":1}');
is($r->status, 400, 'beacon: a visitor without an id is refused');
$r = $t->get('/sf/convert', method => 'POST',
    headers => [ 'X-User-Id' => $users[1] ],
    body => '{"order_id":"z","amount":1,"user":"someone-else"}');
is($r->status, 403, 'beacon: cannot act for another user');
$r = $t->get('/sf/convert', method => 'POST',
    headers => [ 'X-User-Id' => $users[1] ],
    body => '{"order_id":"z","amount":1,"pad":"' . ('x' x 5000) . '"}');
is($r->status, 413, 'beacon: a body over 4 KiB is refused');
for my $bad ('{"order_id":"z","amount":-1}', '{"order_id":"","amount":1}',
    '{"amount":1}', '{"order_id":"z","amount":"1"}', 'not json',
    '{"order_id":"z","amount":1,"type":"return"}',
    '{"order_id":"z","amount":1,"categories":"shoes"}')
{
    $r = $t->get('/sf/convert', method => 'POST',
        headers => [ 'X-User-Id' => $users[1] ], body => $bad);
    is($r->status, 400, "beacon refuses $bad");
}
$r = $t->get('/sf/convert', method => 'POST',
    headers => [ 'X-User-Id' => $users[100] ],
    body => '{"order_id":"c100","amount":20}');
is_deeply(json_decode($r->body), { applied => JSON::PP::false(),
    duplicate => JSON::PP::true() }, 'beacon: a repeated order is a duplicate');
$r = $t->get('/sf/convert?order_id=q1&amount=12.5', method => 'POST',
    headers => [ 'X-User-Id' => $users[120] ]);
is($r->status, 200, 'beacon: order_id and amount in the query string');
$expect{ gb_assign($fair, $users[120]) }{converters}++;
$expect{ gb_assign($fair, $users[120]) }{orders}++;
$expect{ gb_assign($fair, $users[120]) }{revenue} += 12.5;
$e = stats('fair');
is_deeply([ map { $_->{orders} } @{ $e->{variations} } ],
    [ $expect{0}{orders}, $expect{1}{orders} ],
    'refused and repeated beacons changed nothing');

# ---- statistics against a recomputation -------------------------------------

sub near { abs($_[0] - $_[1]) <= 1e-9 * (1 + abs($_[1])) }

my ($v0, $v1) = @{ $e->{variations} };
my ($n0, $n1) = ($v0->{users}, $v1->{users});
my ($p0, $p1) = ($v0->{converters} / $n0, $v1->{converters} / $n1);
my $pool = ($v0->{converters} + $v1->{converters}) / ($n0 + $n1);
my $se = sqrt($pool * (1 - $pool) * (1 / $n0 + 1 / $n1));
my $z = ($p1 - $p0) / $se;
my $pv = POSIX::erfc(abs($z) / sqrt(2));
my $sed = sqrt($p0 * (1 - $p0) / $n0 + $p1 * (1 - $p1) / $n1);
ok(near($v0->{conversion_rate}, $p0) && near($v1->{conversion_rate}, $p1),
    "conversion rates $p0, $p1");
ok(near($v1->{z}, $z) && near($v1->{p_value}, $pv),
    "two-proportion z-test: z $z, p $pv");
ok(near($v1->{ci_low}, $p1 - $p0 - 1.959963984540054 * $sed)
    && near($v1->{ci_high}, $p1 - $p0 + 1.959963984540054 * $sed),
    '95% confidence interval of the difference');
ok(near($v1->{lift}, ($p1 - $p0) / $p0), 'relative lift');
ok(near($v0->{average_order_value}, $v0->{revenue} / $v0->{orders})
    && near($v1->{revenue_per_user}, $v1->{revenue} / $n1)
    && near($v0->{return_rate}, $v0->{returns} / $v0->{orders}),
    'average order value, revenue per user, return rate');
my $x2 = chi_square([ $n0, $n1 ], [ 0.5, 0.5 ]);
ok(near($e->{srm}{chi2}, $x2) && near($e->{srm}{p}, POSIX::erfc(sqrt($x2 / 2))),
    "sample ratio: chi-square $x2 against 50/50");
ok(!$e->{srm}{alarm}, 'no sample ratio alarm on the fair split');
ok(!$e->{enough_data} && $e->{status} eq 'not enough data'
    && !$v1->{significant}, '"not enough data" below 1000 users per arm');

# ---- the sample ratio mismatch alarm ------------------------------------------

# "skew" hashes the country: 150 visitors from one country, 50 from another
my ($c0, $c1);
for my $i (1 .. 1000) {
    my $arm = gb_assign($skew, "country-$i");
    $c0 //= "country-$i" if $arm == 0;
    $c1 //= "country-$i" if $arm == 1;
    last if defined $c0 && defined $c1;
}
visit("sk-$_", 'X-Country' => $_ <= 150 ? $c0 : $c1) for 1 .. 200;
$e = wait_users('skew', 200);
is_deeply(users_of($e), [ 150, 50 ], 'skew: 150 and 50 users on a 50/50 split');
ok($e->{srm}{alarm} && $e->{srm}{p} < 0.001
    && near($e->{srm}{chi2}, 50), "skew: alarm (chi-square $e->{srm}{chi2})");
is($e->{status}, 'sample ratio mismatch', 'skew: status says so');

# known values: 9463 and 7681 users on 50/50 give chi-square 185.2
my $T = Storefront::Test->new;
my $srm_on = { %$srm, active => JSON::PP::true() };
$T->must_import({ experiments => [ $srm_on ] });
$T->write_config($T->std_config(workers => 1,
    server => 'location = /s { storefront off; storefront_stats_api; }'));
$T->run(workers => 1);
my %need = (0 => 9463, 1 => 7681);
my $kc = $T->client;
my $sent = 0;
for (my $i = 0; $need{0} + $need{1} > 0; $i++) {
    my $id = "k$i";
    my $arm = gb_assign($srm_on, $id);
    next unless $need{$arm};
    $need{$arm}--;
    $kc->request('/', headers => [ 'X-User-Id' => $id ]);
    $sent++;
}
$kc->close;
my $deadline = time + 10;
my $k;
while (time < $deadline) {
    $k = json_decode($T->get('/s')->body)->{experiments}[0];
    last if $k->{users} >= 17144;
    sleep 0.1;
}
is_deeply(users_of($k), [ 9463, 7681 ], "srm: $sent visitors, 9463 and 7681");
ok(abs($k->{srm}{chi2} - 185.2266) < 1e-3 && $k->{srm}{p} < 1e-40
    && $k->{srm}{alarm}, sprintf('srm: chi-square %.1f, p %.3g, alarm',
    $k->{srm}{chi2}, $k->{srm}{p}));
ok($k->{enough_data}, 'srm: enough data with over 1000 users per arm');
$T->stop;

# ---- ramp, start, stop, re-randomise -------------------------------------------

sub assigned {
    my ($key, @who) = @_;
    my %v;
    for my $u (@who) {
        my $var = visit($u)->variants;
        $v{$u} = $var->{$key};
    }
    return \%v;
}

my @rusers = map { "r-$_" } 1 .. 300;
my $before = assigned('ramp', @rusers);
my @in = grep { defined $before->{$_} } @rusers;
cmp_ok(scalar @in, '>', 10, scalar(@in) . ' of 300 users in at 10%');
cmp_ok(scalar @in, '<', 60, '... about a tenth');

my $off = -s $t->error_log_path;
$r = $t->get('/sf-admin/experiments/ramp', method => 'POST', headers => $AUTH,
    body => '{"coverage":1}');
is($r->status, 200, 'admin: ramp to 100%') or diag($r->body);
like(json_decode($r->body)->{changed}, qr/^coverage 0\.1 -> 1$/,
    '... answers what changed');
ok(scalar $t->log_lines(qr/\[notice\].*storefront admin: experiment "ramp": coverage 0\.1 -> 1/, $off),
    '... logged at notice level');
my $after = assigned('ramp', @rusers);
is(scalar(grep { defined $after->{$_} } @rusers), 300, 'everyone in at 100%');
is(scalar(grep { $before->{$_} ne $after->{$_} } @in), 0,
    'nobody who was in moved to another variation');
is(scalar(grep { $after->{$_} ne gb_assign({ %$ramp, coverage => 1 }, $_) }
    @rusers), 0, '... and all match GrowthBook at coverage 1');

$r = $t->get('/sf-admin/experiments/ramp', method => 'POST', headers => $AUTH,
    body => '{"active":false}');
is($r->status, 200, 'admin: stop');
is(scalar(grep { defined } values %{ assigned('ramp', @rusers[0 .. 19]) }), 0,
    '... nobody is in a stopped experiment');
$r = $t->get('/sf-admin/experiments/ramp', method => 'POST', headers => $AUTH,
    body => '{"active":true}');
is_deeply(assigned('ramp', @rusers[0 .. 19]),
    { map { $_ => $after->{$_} } @rusers[0 .. 19] },
    'admin: start again, the same variations');

$r = $t->get('/sf-admin/experiments/ramp', method => 'POST', headers => $AUTH,
    body => '{"weights":[0.2,0.8]}');
is($r->status, 200, 'admin: new weights');
like(json_decode($r->body)->{changed}, qr/re-randomised: seed "ramp:v1"/,
    '... re-randomise (a new seed)');
my $rw = { %$ramp, coverage => 1, seed => 'ramp:v1', weights => [ 0.2, 0.8 ] };
my $again = assigned('ramp', @rusers);
is(scalar(grep { $again->{$_} ne gb_assign($rw, $_) } @rusers), 0,
    '... users follow the new seed and weights');
$e = stats('ramp');
is($e->{bucket_version}, 1, '... bucket version 1 in the stats');
is_deeply($e->{weights}, [ 0.2, 0.8 ], '... and the weights');

# refusals change nothing
my ($x, $export) = $t->ctl('export');
my @refusals = (
    [ 'no token', [], '{"coverage":0.5}', 401 ],
    [ 'a wrong token', [ Authorization => 'Bearer wrong-token-0123456789' ],
      '{"coverage":0.5}', 401 ],
    [ 'coverage 2', $AUTH, '{"coverage":2}', 400 ],
    [ 'negative coverage', $AUTH, '{"coverage":-0.1}', 400 ],
    [ 'active "yes"', $AUTH, '{"active":"yes"}', 400 ],
    [ 'weights of the wrong length', $AUTH, '{"weights":[1]}', 400 ],
    [ 'weights not adding up to 1', $AUTH, '{"weights":[0.5,0.6]}', 400 ],
    [ 'another member', $AUTH, '{"key":"other"}', 400 ],
    [ 'an empty object', $AUTH, '{}', 400 ],
    [ 'malformed JSON', $AUTH, '{"coverage":', 400 ],
    [ 'an array', $AUTH, '[1]', 400 ],
);
$off = -s $t->error_log_path;
for my $case (@refusals) {
    my ($what, $h, $body, $status) = @$case;
    $r = $t->get('/sf-admin/experiments/ramp', method => 'POST',
        headers => $h, body => $body);
    is($r->status, $status, "admin refuses $what: $status");
}
$r = $t->get('/sf-admin/experiments/nope', method => 'POST', headers => $AUTH,
    body => '{"coverage":1}');
is($r->status, 404, 'admin: an unknown experiment is 404');
like($r->body, qr/no experiment \\"nope\\"/, '... saying which');
$r = $t->get('/sf-admin/experiments/ramp', method => 'PUT', headers => $AUTH,
    body => '{"coverage":1}');
is($r->status, 405, 'admin: PUT is 405');
my ($y, $export2) = $t->ctl('export');
is($export2, $export, 'the refusals changed no experiment');
is(scalar $t->log_lines(qr/storefront admin: experiment "/, $off), 0,
    '... and logged no change');

$r = $t->get('/sf-admin/experiments/ramp', headers => $AUTH);
is(json_decode($r->body)->{experiments}[0]{key}, 'ramp',
    'admin: GET an experiment\'s results');
$r = $t->get('/sf-admin/experiments', headers => $AUTH);
is(scalar @{ json_decode($r->body)->{experiments} }, 6,
    'admin: GET every experiment\'s results');
$r = $t->get('/sf-admin/experiments/shop/hero', method => 'POST',
    headers => $AUTH, body => '{"coverage":1}');
is($r->status, 200, 'admin: a key with a slash');
is(json_decode($r->body)->{changed}, 'coverage 0.5 -> 1', '... ramped');

# ---- storefrontctl ------------------------------------------------------------

my ($code, $out, $err) = $t->ctl('experiment', 'ramp', 'ramp2', '100%');
SKIP: {
    skip 'storefrontctl has no "experiment" command', 9
        if $err =~ /unknown command/;

    # ramp2 was ramped above (through storefrontctl): check nobody moved
    my $b2 = { map { $_ => gb_assign($ramp2, $_) } @rusers };
    is($code, 0, 'storefrontctl experiment ramp ramp2 100%') or diag($err);
    like($out, qr/^experiment "ramp2": coverage 0\.1 -> 1$/m,
        '... prints what changed');
    my $a2 = assigned('ramp2', @rusers);
    is(scalar(grep { $b2->{$_} >= 0 && $a2->{$_} ne $b2->{$_} } @rusers), 0,
        '... nobody who was in moved');
    is(scalar(grep { defined $a2->{$_} } @rusers), 300, '... everyone in');

    ($code, $out) = $t->ctl('experiment', 'stop', 'ramp2');
    is($code, 0, 'storefrontctl experiment stop');
    is(scalar(grep { defined } values %{ assigned('ramp2', @rusers[0 .. 9]) }),
        0, '... seen by nginx at once');
    ($code, $out) = $t->ctl('experiment', 'start', 'ramp2');
    is($code, 0, 'storefrontctl experiment start');
    ($code, $out, $err) = $t->ctl('experiment', 'ramp', 'ramp2', '1.5');
    is($code, 2, 'storefrontctl experiment ramp refuses 1.5');
    ($code, $out, $err) = $t->ctl('experiment', 'weights', 'ramp2', '0.5,0.5');
    is($code, 1, 'storefrontctl experiment weights refuses two weights for '
        . 'three variations');
}

# The workers flush exposures on a timer: compare while nothing changes,
# that is when the endpoint answers the same before and after the CLI.
my ($cli, $api);
for (1 .. 20) {
    my $before = stats();
    ($code, $out, $err) = $t->ctl('stats', '--json');
    last if $err =~ /unknown command/;
    $api = stats();
    $cli = json_decode($out);
    delete $_->{generated_at} for $cli, $api, $before;
    last if JSON::PP->new->canonical->encode($before)
            eq JSON::PP->new->canonical->encode($api);
    sleep 0.3;
}
SKIP: {
    skip 'storefrontctl has no "stats" command', 3
        if $err =~ /unknown command/;
    is($code, 0, 'storefrontctl stats --json');
    is_deeply($cli, $api, '... the same results as the stats endpoint');
    ($code, $out) = $t->ctl('stats', 'fair');
    like($out, qr/experiment "fair".*\n.*users \d+.*\n.*\n\s+control\s+\d+/,
        'storefrontctl stats fair: a table');
}

$t->stop;
done_testing;
