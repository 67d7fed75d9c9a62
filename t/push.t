#!/usr/bin/perl
# Push decisions against a real nginx: every reason (allow, cap,
# quiet_hours, opted_out, throttled, duplicate), rate-limit headers, caps
# rolling with a moved clock, quiet hours across midnight and time zones,
# exemptions, urgent categories, dry runs, duplicates, batches (JSON array
# and JSON lines, atomic), bad input and auth refusals that record
# nothing, the log variables, counters, the stored policy, explain and
# verify, and durability across kill -9 of the workers and a restart.
#
# The clock is moved with libfaketime (Debian package faketime): nginx
# runs with it preloaded and reads the time from a file the test rewrites.
# Without it the tests that need a moved clock are skipped.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);
use Storefront::Test qw(json_encode json_decode);

my $TOKEN = 'push-test-token-0123456789';
my $AUTH = [ Authorization => "Bearer $TOKEN" ];

my $t = Storefront::Test->new;

# ---- local helpers -----------------------------------------------------------

sub push_cmd {
    my (@args) = @_;
    return $t->ctl('push', @args);
}

sub explain_cmd {
    my (@args) = @_;
    return $t->ctl('explain', '--push', @args);
}

# Profiles and the push policy, with storefrontctl import.
sub import_push_data {
    my ($data) = @_;
    my ($code, $out, $err) = $t->import_data($data);
    diag($err) if $code;
    return $code == 0;
}

sub esc {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub decide {
    my ($path, %q) = @_;
    my $auth = delete $q{auth} // $AUTH;
    my $qs = join '&', map { "$_=" . esc($q{$_}) } sort keys %q;
    return $t->get("$path?$qs", headers => $auth);
}

sub post {
    my ($path, $body, %opt) = @_;
    my $c = $t->client;
    my $r = $c->request($path, method => 'POST', body => $body,
        headers => [ @{ $opt{auth} // $AUTH },
            'Content-Type' => 'application/json' ], close => 1);
    $c->close;
    return $r;
}

sub answer {
    my ($r) = @_;
    my $a = eval { json_decode($r->body) };
    return $a // { error => 'not JSON: ' . $r->body };
}

sub counters {
    my $r = $t->get('/pushnq/counters', headers => $AUTH);
    return answer($r);
}

sub iso {
    my ($epoch) = @_;
    my @g = gmtime $epoch;
    return sprintf '%04d-%02d-%02dT%02d:%02d:%02dZ', $g[5] + 1900, $g[4] + 1,
        @g[3, 2, 1, 0];
}

sub epoch_of {
    my ($iso) = @_;
    my ($y, $mo, $d, $h, $mi, $s) = $iso =~
        /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)/ or return undef;
    # days from civil (proleptic Gregorian), UTC
    $y -= $mo <= 2;
    my $era = int(($y >= 0 ? $y : $y - 399) / 400);
    my $yoe = $y - $era * 400;
    my $doy = int((153 * ($mo + ($mo > 2 ? -3 : 9)) + 2) / 5) + $d - 1;
    my $doe = $yoe * 365 + int($yoe / 4) - int($yoe / 100) + $doy;
    my $days = $era * 146097 + $doe - 719468;
    return $days * 86400 + $h * 3600 + $mi * 60 + $s;
}

# libfaketime, and the environment that makes nginx read the time from
# a file (the variables are kept for the workers by "env").
my $FAKELIB = Storefront::Test::faketime_lib();
my $FAKE = defined $FAKELIB;
diag("$Storefront::Test::why: the tests that move the clock are skipped")
    unless $FAKE;

sub set_time {
    my ($when) = @_;
    $t->write_file('faketime', "\@$when\n");
    sleep 0.05;
}

sub start {
    local $ENV{LD_PRELOAD} = $FAKE ? $FAKELIB : '';
    local $ENV{FAKETIME_TIMESTAMP_FILE} = $t->prefix . '/faketime';
    local $ENV{FAKETIME_NO_CACHE} = '1';
    local $ENV{FAKETIME_DONT_FAKE_MONOTONIC} = '1';
    local $ENV{TZ} = 'UTC';
    $t->run(workers => 2);
}

sub worker_pids {
    my ($master) = @_;
    my @pids;
    opendir my $d, '/proc' or return ();
    for my $pid (grep { /^\d+$/ } readdir $d) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh> // next;
        my ($ppid) = $stat =~ /^\d+ \(.*\) \S (\d+)/ or next;
        push @pids, $pid if $ppid == $master;
    }
    @pids = sort { $a <=> $b } @pids;
    return @pids;
}

# ---- configuration --------------------------------------------------------------

# 2030-01-07 is a Monday; users without a profile are at +08:00.
set_time('2030-01-07 02:00:00');

my $CONF = <<"END";
%%TEST_GLOBALS%%
worker_processes 2;
env LD_PRELOAD;
env FAKETIME_TIMESTAMP_FILE;
env FAKETIME_NO_CACHE;
env FAKETIME_DONT_FAKE_MONOTONIC;
events { worker_connections 1024; }
http {
    %%TEST_GLOBALS_HTTP%%
    storefront_db %%DB%%;
    log_format push '\$storefront_push_user|\$storefront_push_category|'
                    '\$storefront_push_decision|\$storefront_push_reason|'
                    '\$status';

    server {
        listen 127.0.0.1:%%PORT%%;
        storefront_push_token $TOKEN;
        storefront_push_default_tz +08:00;
        storefront_push_cap promo 1/1d 2/7d;
        storefront_push_cap news off;
        storefront_push_exempt transactional order_status;
        storefront_push_urgent transactional flash;
        storefront_push_max_batch 50;

        location /push/ {
            storefront_push;
            storefront_push_quiet_hours 22:00-08:00;
        }

        location /pushnq/ {
            access_log %%PREFIX%%/push.log push;
            storefront_push;
            storefront_push_quiet_hours off;
        }

        location /relaxed/ {
            storefront_push;
            storefront_push_quiet_hours off;
            storefront_push_durability relaxed;
        }

        location /throttled/ {
            storefront_push;
            storefront_push_quiet_hours off;
            storefront_push_cap promo off;
            storefront_push_throttle 1r/s burst=1;
        }

        location /denied/ {
            deny 127.0.0.1;
            storefront_push;
        }
    }
}
END

# ---- nginx -t --------------------------------------------------------------------

sub conf_with {
    my ($directives, $http) = @_;
    $http //= 'storefront_db %%DB%%;';
    return <<"END";
%%TEST_GLOBALS%%
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    $http
    server {
        listen 127.0.0.1:%%PORT%%;
        location /push/ { storefront_push; $directives }
    }
}
END
}

my ($code, $out) = $t->nginx_t(conf_with("storefront_push_token $TOKEN;
    storefront_push_cap promo 2/7d 1/1d; storefront_push_cap news off;
    storefront_push_exempt transactional; storefront_push_urgent none;
    storefront_push_quiet_hours 21:30-07:15;
    storefront_push_default_tz -05:30; storefront_push_throttle 100r/s
    burst=20; storefront_push_durability relaxed;
    storefront_push_max_batch 100;"));
is($code, 0, 'nginx -t: every push directive') or diag($out);

for my $bad (
    [ '', qr/"storefront_push" requires "storefront_push_token"/ ],
    [ 'storefront_push_token short;', qr/must be 16 to \d+ characters/ ],
    [ "storefront_push_token $TOKEN; storefront_push_cap promo 2/7x;",
      qr/invalid cap "2\/7x" in "storefront_push_cap" directive/ ],
    [ "storefront_push_token $TOKEN; storefront_push_cap promo 65/7d;",
      qr/invalid cap "65\/7d"/ ],
    [ "storefront_push_token $TOKEN; storefront_push_cap Promo 2/7d;",
      qr/invalid category "Promo".*"storefront_push_cap" directive/ ],
    [ "storefront_push_token $TOKEN; storefront_push_cap promo 1/1d;"
      . " storefront_push_cap promo 2/7d;", qr/duplicate category "promo"/ ],
    [ "storefront_push_token $TOKEN; storefront_push_cap promo 1/1s 1/1m"
      . " 1/1h 1/1d 1/1w;", qr/too many caps/ ],
    [ "storefront_push_token $TOKEN; storefront_push_quiet_hours 22-08;",
      qr/invalid quiet hours "22-08"/ ],
    [ "storefront_push_token $TOKEN; storefront_push_quiet_hours"
      . " 24:00-08:00;", qr/invalid quiet hours/ ],
    [ "storefront_push_token $TOKEN; storefront_push_default_tz +15:00;",
      qr/invalid time zone offset "\+15:00"/ ],
    [ "storefront_push_token $TOKEN; storefront_push_throttle 10r/h;",
      qr/invalid rate "10r\/h"/ ],
    [ "storefront_push_token $TOKEN; storefront_push_throttle 10r/s"
      . " brust=5;", qr/invalid parameter "brust=5"/ ],
    [ "storefront_push_token $TOKEN; storefront_push_durability fast;",
      qr/invalid value "fast"/ ],
    [ "storefront_push_token $TOKEN; storefront_push_max_batch 0;",
      qr/value must be between 1 and 1000000/ ],
    [ "storefront_push_token $TOKEN; storefront_push;",
      qr/"storefront_push" directive is duplicate/ ],
) {
    my ($directives, $re) = @$bad;
    ($code, $out) = $t->nginx_t(conf_with($directives));
    isnt($code, 0, "nginx -t fails: " . ($directives || 'no token'));
    like($out, $re, "... with the reason") or diag($out);
}

($code, $out) = $t->nginx_t(conf_with("storefront_push_token $TOKEN;", ''));
isnt($code, 0, 'nginx -t fails without storefront_db');
like($out, qr/no "storefront_db" is defined for "storefront_push"/,
    '... naming it') or diag($out);

# ---- start -----------------------------------------------------------------------

$t->write_config($CONF);
start();

my $r = decide('/pushnq/', user => 'warmup', category => 'transactional');
is($r->status, 200, 'a decision answers 200') or diag($r->body);
my $warm = answer($r);
my $T0 = epoch_of($warm->{time} // '');
if ($FAKE) {
    ok(defined $T0 && abs($T0 - epoch_of('2030-01-07T02:00:00Z')) < 30,
        'nginx runs at the faked time') or diag($warm->{time});
}

# ---- auth: nothing is recorded -----------------------------------------------

my $before = counters();
is($before->{decisions}, 1, 'counters: one decision so far');

$r = decide('/pushnq/', user => 'a1', category => 'promo', auth => []);
is($r->status, 401, 'no token: 401');
like($r->header('www-authenticate') // '', qr/^Bearer realm="storefront"$/,
    '... WWW-Authenticate: Bearer');
is(answer($r)->{error}, 'a bearer token is required', '... JSON error');

$r = decide('/pushnq/', user => 'a1', category => 'promo',
    auth => [ Authorization => 'Bearer wrong-token-0123456789' ]);
is($r->status, 401, 'wrong token: 401');
like($r->header('www-authenticate') // '', qr/error="invalid_token"/,
    '... invalid_token');

$r = post('/pushnq/batch', '[{"user":"a1","category":"promo"}]',
    auth => [ Authorization => 'Basic dXNlcjpwYXNz' ]);
is($r->status, 401, 'batch with another scheme: 401');

$r = decide('/denied/', user => 'a1', category => 'promo');
is($r->status, 403, 'denied address: 403 (nginx allow/deny)');

is_deeply(counters(), $before, 'refused requests recorded nothing');
$r = decide('/pushnq/', user => 'a1', category => 'promo', dry_run => 1);
is(answer($r)->{decision}, 'allow', '... a1 still has its whole cap');

# ---- allow, cap and the rate-limit headers -------------------------------------

$r = decide('/pushnq/', user => 'u1', category => 'promo', campaign => 'c-1');
my $a = answer($r);
is($a->{decision}, 'allow', 'u1 promo: allow');
is($a->{reason}, 'allow', '... reason allow');
is($a->{limit}, 1, '... the tightest cap: 1 a day');
is($a->{remaining}, 0, '... remaining 0 after this one');
is($a->{retry_after}, undef, '... retry_after null');
is($a->{campaign}, 'c-1', '... campaign echoed');
is($r->header('x-ratelimit-limit'), 1, 'X-RateLimit-Limit: 1');
is($r->header('x-ratelimit-remaining'), 0, 'X-RateLimit-Remaining: 0');
cmp_ok($r->header('x-ratelimit-reset') // 0, '>=', 86399,
    'X-RateLimit-Reset: a day');
is($r->header('retry-after'), undef, 'no Retry-After when allowed');
like($r->header('content-type') // '', qr{^application/json}, 'JSON');

$r = decide('/pushnq/', user => 'u1', category => 'promo');
$a = answer($r);
is($a->{decision}, 'deny', 'u1 promo again: deny');
is($a->{reason}, 'cap', '... reason cap');
cmp_ok($a->{retry_after} // 0, '>=', 86398, '... retry_after about a day');
cmp_ok($a->{retry_after} // 0, '<=', 86400, '... not more');
is($r->status, 200, '... HTTP 200: a decision, not an error');
is($r->header('retry-after'), $a->{retry_after}, 'Retry-After header');
is($r->header('x-ratelimit-remaining'), 0, 'X-RateLimit-Remaining: 0');
my $gap = epoch_of($a->{next_allowed} // '') - epoch_of($a->{time})
    - $a->{retry_after};
ok($gap >= 0 && $gap <= 1, 'next_allowed = time + retry_after (rounded up)')
    or diag("$a->{time} + $a->{retry_after} vs $a->{next_allowed}");

$r = decide('/pushnq/', user => 'u1', category => 'promo', channel => 'sms');
is(answer($r)->{decision}, 'allow', 'caps are per channel: sms allowed');

# ---- exemptions -----------------------------------------------------------------

my $exempt_ok = 0;
for (1 .. 5) {
    $r = decide('/pushnq/', user => 'u1', category => 'transactional');
    $a = answer($r);
    $exempt_ok++ if $a->{decision} eq 'allow' && !defined $a->{limit};
}
is($exempt_ok, 5, 'transactional (exempt): always allowed, no limit');
is($r->header('x-ratelimit-limit'), undef, '... no X-RateLimit headers');

$r = decide('/pushnq/', user => 'u1', category => 'order_status');
is(answer($r)->{decision}, 'allow', 'order_status: a category made exempt');

$r = decide('/pushnq/', user => 'u1', category => 'news');
$a = answer($r);
is($a->{decision}, 'allow', 'news: a category without caps');
is($a->{limit}, undef, '... no limit');

# ---- bad input: 4xx JSON, nothing recorded ------------------------------------

$before = counters();

$r = decide('/pushnq/', category => 'promo');
is($r->status, 400, 'missing user: 400');
like(answer($r)->{error} // '', qr/"user"/, '... names "user"');

$r = decide('/pushnq/', user => 'b1', category => 'nope');
is($r->status, 400, 'unknown category: 400');
is(answer($r)->{error}, 'unknown category "nope"', '... says so');

$r = decide('/pushnq/', user => 'b1', category => 'promo', channel => 'SMS!');
is($r->status, 400, 'invalid channel: 400');

$r = decide('/pushnq/', user => 'b1', category => 'promo', dry_run => 'yes');
is($r->status, 400, 'dry_run=yes: 400');

$r = post('/pushnq/', '{"user":"b1","category":"promo"');
is($r->status, 400, 'malformed JSON: 400');
like(answer($r)->{error} // '', qr/^malformed JSON/, '... says so');

$r = post('/pushnq/', '"b1"');
is($r->status, 400, 'a JSON string: 400');

$r = post('/pushnq/batch', '[{"user":"b1","category":"promo"},'
    . '{"user":"b2","category":"promo"},{"user":"b3","category":"nope"}]');
is($r->status, 400, 'batch with an unknown category: 400');
is(answer($r)->{index}, 2, '... the index of the bad element');
like(answer($r)->{error} // '', qr/^decision 2: unknown category "nope"/,
    '... and why');

$r = post('/pushnq/batch', '[{"user":"b1","category":"promo"},'
    . '{"category":"promo"}]');
is($r->status, 400, 'batch with a request without user: 400');
is(answer($r)->{index}, 1, '... index 1');

$r = post('/pushnq/', qq({"user":"b1","category":"promo"}\n{"user":"b2"}\n));
is($r->status, 400, 'JSON lines with a bad line: 400');
is(answer($r)->{line}, 2, '... line 2');

$r = post('/pushnq/', qq({"user":"b1","category":"promo"}\n{"user":\n));
is($r->status, 400, 'JSON lines with malformed JSON: 400');
is(answer($r)->{line}, 2, '... line 2');

my $big = '[' . join(',', map { qq({"user":"big$_","category":"promo"}) }
    1 .. 51) . ']';
$r = post('/pushnq/batch', $big);
is($r->status, 413, 'batch over storefront_push_max_batch: 413');
like(answer($r)->{error} // '', qr/51 decision requests in one batch, at most 50/,
    '... JSON error');

my $big_lines = join("\n", map { qq({"user":"big$_","category":"promo"}) }
    1 .. 51) . "\n";
$r = post('/pushnq/', $big_lines);
is($r->status, 413, 'JSON lines over the limit: 413');

$r = $t->get('/pushnq/batch', headers => $AUTH);
is($r->status, 405, 'GET .../batch: 405');
is($r->header('allow'), 'POST', '... Allow: POST');

my $c = $t->client;
$r = $c->request('/pushnq/?user=b1&category=promo', method => 'DELETE',
    headers => $AUTH, close => 1);
$c->close;
is($r->status, 405, 'DELETE: 405');

is_deeply(counters(), $before, 'bad input recorded nothing');
$r = post('/pushnq/batch', '[{"user":"b1","category":"promo","dry_run":true},'
    . '{"user":"b2","category":"promo","dry_run":true}]');
is(join(',', map { $_->{decision} } @{ answer($r) }), 'allow,allow',
    '... the users of the rejected batch were not charged');

# ---- dry run ------------------------------------------------------------------------

$before = counters();
for (1 .. 3) {
    $r = decide('/pushnq/', user => 'd1', category => 'promo', dry_run => 1);
}
$a = answer($r);
is($a->{decision}, 'allow', 'dry run: allow');
is($a->{dry_run}, JSON::PP::true, '... dry_run true');
is($a->{remaining}, 0, '... remaining as if sent');
$r = post('/pushnq/?dry_run=1', '{"user":"d1","category":"promo"}');
is(answer($r)->{decision}, 'allow', 'dry run by POST: allow');
$r = post('/pushnq/batch?dry_run=1', '[{"user":"d1","category":"promo"},'
    . '{"user":"d1","category":"promo"}]');
is(join(',', map { $_->{decision} } @{ answer($r) }), 'allow,allow',
    'dry run batch: nothing spent between its elements');
is_deeply(counters(), $before, 'dry runs recorded nothing');
$r = decide('/pushnq/', user => 'd1', category => 'promo');
is(answer($r)->{decision}, 'allow', 'the real decision after them: allow');

# ---- duplicates ---------------------------------------------------------------------

$r = decide('/pushnq/', user => 'p1', category => 'news', campaign => 'spring');
is(answer($r)->{decision}, 'allow', 'campaign "spring" to p1: allow');
$r = decide('/pushnq/', user => 'p1', category => 'news', campaign => 'spring');
$a = answer($r);
is($a->{reason}, 'duplicate', 'the same campaign again: duplicate');
is($a->{retry_after}, undef, '... never: retry_after null');
is($a->{next_allowed}, undef, '... next_allowed null');
is($r->header('retry-after'), undef, '... no Retry-After');
$r = decide('/pushnq/', user => 'p1', category => 'transactional',
    campaign => 'spring');
is(answer($r)->{reason}, 'duplicate',
    'duplicates are per user and campaign, exempt or not');
$r = decide('/pushnq/', user => 'p1', category => 'news', campaign => 'summer');
is(answer($r)->{decision}, 'allow', 'another campaign: allow');
$r = decide('/pushnq/', user => 'p2', category => 'news', campaign => 'spring');
is(answer($r)->{decision}, 'allow', 'the campaign to another user: allow');

# ---- opt-out (profiles) ------------------------------------------------------------

my $profiles_ok = import_push_data({ profiles => [
    { id => 'o1', opt_out => ['promo'] },
    { id => 'o2', opt_out => ['sms'] },
    { id => 'o3', opt_out => ['all'] },
    { id => 'z-ny', tz_offset => -300 },
    { id => 'z-tokyo', tz_offset => '+09:00', quiet_hours => '21:00-07:00' },
    { id => 'z-nepal', tz_offset => '+05:45' },
    { id => 'z-noon', tz_offset => 0, quiet_hours => '12:00-14:00' },
] });
ok($profiles_ok, 'profiles imported');

SKIP: {
    skip 'no profiles', 8 unless $profiles_ok;

    $r = decide('/pushnq/', user => 'o1', category => 'promo');
    $a = answer($r);
    is($a->{reason}, 'opted_out', 'opted out of promo: opted_out');
    is($a->{retry_after}, undef, '... retry_after null');
    is($r->header('x-ratelimit-limit'), undef, '... no cap applied');
    is(answer(decide('/pushnq/', user => 'o1', category => 'transactional'))
        ->{decision}, 'allow', '... transactional still goes');
    is(answer(decide('/pushnq/', user => 'o2', category => 'promo',
        channel => 'sms'))->{reason}, 'opted_out', 'opted out of sms');
    is(answer(decide('/pushnq/', user => 'o2', category => 'promo'))
        ->{decision}, 'allow', '... push still goes');
    is(answer(decide('/pushnq/', user => 'o3', category => 'transactional'))
        ->{reason}, 'opted_out', 'opted out of all: even transactional');
    is(answer(decide('/pushnq/', user => 'o3', category => 'news'))->{reason},
        'opted_out', '... and news');
}

# ---- throttled (GCRA, 1/s with a burst of 1) ---------------------------------------

$r = post('/throttled/batch', '[{"user":"t1","category":"promo"},'
    . '{"user":"t2","category":"promo"},{"user":"t3","category":"promo"},'
    . '{"user":"t4","category":"transactional"}]');
my $ans = answer($r);
is(join(',', map { $_->{reason} } @$ans),
    'allow,allow,throttled,allow',
    'throttle: the rate plus the burst, then throttled; exempt not throttled');
is($ans->[2]{retry_after}, 1, '... retry_after 1 s');
sleep 1.2;
is(answer(decide('/throttled/', user => 't3', category => 'promo'))
    ->{decision}, 'allow', '... allowed a second later');

# ---- batches: in order, one transaction -----------------------------------------

$r = post('/pushnq/batch', '[{"user":"w1","category":"promo"},'
    . '{"user":"w1","category":"promo"},{"user":"w1","category":"promo",'
    . '"channel":"sms"},{"user":"w2","category":"transactional"}]');
is($r->status, 200, 'batch: 200');
$ans = answer($r);
is(ref $ans, 'ARRAY', '... a JSON array');
is(join(',', map { "$_->{user}:$_->{reason}" } @$ans),
    'w1:allow,w1:cap,w1:allow,w2:allow', '... answers in order');

$r = post('/pushnq/', '[{"user":"w3","category":"promo"},'
    . '{"user":"w3","category":"promo"}]');
is(join(',', map { $_->{reason} } @{ answer($r) }), 'allow,cap',
    'a JSON array posted to the decision route is a batch');

$r = post('/pushnq/batch', '{"user":"w4","category":"promo"}');
is(ref answer($r), 'ARRAY', 'one object posted to .../batch: an array of one');

$r = post('/pushnq/', qq({"user":"w5","category":"promo"}\n\n)
    . qq({"user":"w5","category":"promo"}\n{"user":"w6","category":"news"}));
is($r->status, 200, 'JSON lines: 200');
like($r->header('content-type') // '', qr{^application/x-ndjson},
    '... answered as JSON lines');
my @lines = map { json_decode($_) } grep { length } split /\n/, $r->body;
is(join(',', map { "$_->{user}:$_->{reason}" } @lines),
    'w5:allow,w5:cap,w6:allow', '... one answer per line, in order');

$r = post('/pushnq/batch', '[]');
is($r->body, "[]\n", 'an empty batch: []');

# ---- the log variables --------------------------------------------------------------

sleep 0.1;
my $log = $t->read_file('push.log') // '';
like($log, qr/^u1\|promo\|allow\|allow\|200$/m,
    'access log: user, category, decision, reason');
like($log, qr/^u1\|promo\|deny\|cap\|200$/m, '... a capped send');
like($log, qr/^-\|-\|allow=3,deny=1\|allow=3,cap=1\|200$/m,
    '... a batch: the counts');
like($log, qr/^-\|-\|-\|-\|401$/m, '... a refused request: no decision');

# ---- counters, policy ---------------------------------------------------------------

my $cnt = counters();
is($cnt->{decisions}, $cnt->{allow} + $cnt->{cap} + $cnt->{quiet_hours}
    + $cnt->{opted_out} + $cnt->{throttled} + $cnt->{duplicate},
    'counters: decisions is the sum of the reasons');
cmp_ok($cnt->{duplicate}, '>=', 2, '... duplicates counted');
cmp_ok($cnt->{throttled}, '>=', 1, '... throttled counted');

my ($cc, $cout) = push_cmd('counters', '--json');
is($cc, 0, 'push counters: exit 0');
is_deeply(eval { json_decode($cout) }, $cnt,
    '... the same numbers as the endpoint');

$r = $t->get('/pushnq/policy', headers => $AUTH);
$a = answer($r);
is($a->{source}, 'nginx', 'policy: from the nginx directives');
is_deeply($a->{policy}{categories}{promo}{caps}, [ '1/1d', '2/1w' ],
    '... promo caps');
is($a->{policy}{default_tz_offset}, 480, '... default tz +08:00');
is($a->{policy}{categories}{news}{exempt}, JSON::PP::false,
    '... news not exempt');
is($a->{policy}{categories}{order_status}{exempt}, JSON::PP::true,
    '... order_status exempt');

# ---- the audit log, verify, explain -------------------------------------------------

my ($lc, $lout) = push_cmd('log', '--jsonl', '--user', 'u1');
is($lc, 0, 'push log: exit 0');
my @u1 = map { json_decode($_) } grep { length } split /\n/, $lout;
is(join(',', map { "$_->{category}/$_->{channel}:$_->{reason}" } @u1[0 .. 2]),
    'promo/push:allow,promo/push:cap,promo/sms:allow',
    '... the decisions of u1, in order');

# the policy of /pushnq/ as a file (the directives are not in the database)
my $policy_file = $t->write_file('policy.json', json_encode({ categories => {
    promo => { caps => [ '1/1d', '2/7d' ] }, news => { caps => [] },
    order_status => { exempt => JSON::PP::true } },
    quiet_hours => undef, default_tz_offset => 480, throttle => undef }));
my ($vc, $vout) = push_cmd('verify', '--policy', $policy_file, '--json');
is($vc, 0, 'push verify: no violation') or diag($vout);
my $v = eval { json_decode($vout) } // {};
is($v->{cap_violations}, 0, '... 0 cap violations');
is($v->{counters_match}, JSON::PP::true, '... counters equal to the log');

# p1 had two news campaigns: a cap of one a week is broken
my $strict = $t->write_file('strict.json', json_encode({ categories => {
    promo => { caps => [ '1/1d' ] }, news => { caps => [ '1/7d' ] } } }));
($vc, $vout) = push_cmd('verify', '--policy', $strict);
is($vc, 1, 'push verify with a stricter policy finds violations');
like($vout, qr/cap violations: [1-9]/, '... counts them') or diag($vout);
like($vout, qr/first violation: seq \d+: user "p1" category "news" channel "push": over the cap 1\/1w/,
    '... and says where') or diag($vout);

$before = counters();
my $now = answer(decide('/pushnq/', user => 'x', category => 'news',
    dry_run => 1))->{time};
my ($ec, $eout) = explain_cmd('--user', 'u1', '--category', 'promo',
    '--policy', $policy_file, '--at', $now, '--json');
is($ec, 0, 'explain --push: exit 0') or diag($eout);
my $e = eval { json_decode($eout) } // {};
is($e->{decision}, 'deny', '... deny');
is($e->{reason}, 'cap', '... cap');
my %checks = map { ($_->{check} . ($_->{cap} // '')) => $_ } @{ $e->{checks} };
is($checks{'cap1/1d'}{result}, 'fail', '... the daily cap fails');
is($checks{'cap1/1d'}{used}, 1, '... 1 used of 1');
is($checks{'cap2/1w'}{result}, 'pass', '... the weekly cap passes');
is($checks{'cap2/1w'}{used}, 1, '... 1 used of 2');
is($checks{opt_out}{result}, 'pass', '... not opted out');
($ec, $eout) = explain_cmd('--user', 'u1', '--category', 'promo',
    '--policy', $policy_file, '--at', $now);
like($eout, qr/^decision: deny \(cap\), next allowed /m,
    'explain (text): the decision and when');
is_deeply(counters(), $before, 'explain recorded nothing');

# ---- caps rolling with a moved clock ----------------------------------------------

SKIP: {
    skip 'libfaketime missing: caps rolling with a moved clock', 9
        unless $FAKE;

    $r = decide('/pushnq/', user => 'roll', category => 'promo');
    $a = answer($r);
    is($a->{decision}, 'allow', 'day 0: allow');
    my $first = epoch_of($a->{time});

    set_time(join ' ', split /T|Z/, iso($first + 18 * 3600));
    $a = answer(decide('/pushnq/', user => 'roll', category => 'promo'));
    is($a->{reason}, 'cap', 'day 0 + 18 h: cap (1 a day)');
    my $next = epoch_of($a->{next_allowed} // '') // 0;
    ok($next - $first >= 86400 && $next - $first <= 86401,
        '... next allowed a day after the first') or diag($a->{next_allowed});

    set_time(join ' ', split /T|Z/, iso($first + 86400 + 60));
    $a = answer(decide('/pushnq/', user => 'roll', category => 'promo'));
    is($a->{decision}, 'allow', 'day 1: allow (the day rolled)');
    is($a->{remaining}, 0, '... and that was the last of the week');

    set_time(join ' ', split /T|Z/, iso($first + 2 * 86400 + 120));
    $a = answer(decide('/pushnq/', user => 'roll', category => 'promo'));
    is($a->{reason}, 'cap', 'day 2: cap (2 a week)');
    $next = epoch_of($a->{next_allowed} // '') // 0;
    ok($next - $first >= 7 * 86400 && $next - $first <= 7 * 86400 + 1,
        '... next allowed a week after the first') or diag($a->{next_allowed});

    set_time(join ' ', split /T|Z/, iso($first + 7 * 86400 - 60));
    is(answer(decide('/pushnq/', user => 'roll', category => 'promo'))
        ->{reason}, 'cap', 'a minute before the week is over: cap');

    set_time(join ' ', split /T|Z/, iso($first + 7 * 86400 + 5));
    is(answer(decide('/pushnq/', user => 'roll', category => 'promo'))
        ->{decision}, 'allow', 'the week rolled: allow');
}

# ---- quiet hours across midnight and time zones -----------------------------------

SKIP: {
    skip 'libfaketime missing: quiet hours at a moved clock', 17
        unless $FAKE;

    # 15:00 UTC: 23:00 at +08:00 (the default), inside 22:00-08:00
    set_time('2030-01-15 15:00:00');
    $r = decide('/push/', user => 'q1', category => 'promo');
    $a = answer($r);
    is($a->{reason}, 'quiet_hours', '23:00 local (default +08:00): quiet');
    is($a->{local_time}, '23:00', '... local time 23:00');
    is($a->{next_allowed}, '2030-01-16T00:00:00Z',
        '... next allowed at 08:00 local, across midnight');
    ok($a->{retry_after} > 32300 && $a->{retry_after} <= 32400,
        '... retry_after about 9 h');
    is($r->header('retry-after'), $a->{retry_after}, '... Retry-After');

    $a = answer(decide('/push/', user => 'q1', category => 'flash'));
    is($a->{decision}, 'allow', 'an urgent category goes in quiet hours');
    is($a->{quiet}, JSON::PP::true, '... flagged quiet');
    is(answer(decide('/push/', user => 'q1', category => 'transactional'))
        ->{decision}, 'allow', 'transactional (urgent) goes too');

    SKIP: {
        skip 'no profiles', 5 unless $profiles_ok;
        $a = answer(decide('/push/', user => 'z-ny', category => 'promo'));
        is($a->{decision}, 'allow', 'New York (-05:00): 10:00, allowed');
        is($a->{local_time}, '10:00', '... local time 10:00');

        $a = answer(decide('/push/', user => 'z-tokyo', category => 'promo'));
        is($a->{reason}, 'quiet_hours',
            'Tokyo (+09:00) with its own 21:00-07:00: 00:00, quiet');
        is($a->{next_allowed}, '2030-01-15T22:00:00Z',
            '... next allowed at 07:00 Tokyo');

        is(answer(decide('/push/', user => 'z-nepal', category => 'promo'))
            ->{local_time}, '20:45', 'Nepal (+05:45): 20:45');
    }

    # 16:30 UTC: 00:30 at +08:00, still quiet after midnight
    set_time('2030-01-15 16:30:00');
    $a = answer(decide('/push/', user => 'q1', category => 'promo'));
    is($a->{reason}, 'quiet_hours', '00:30 local: still quiet');

    # 00:00:30 UTC: 08:00:30 at +08:00
    set_time('2030-01-16 00:00:30');
    is(answer(decide('/push/', user => 'q1', category => 'promo'))
        ->{decision}, 'allow', '08:00 local: allowed');

    SKIP: {
        skip 'no profiles', 2 unless $profiles_ok;
        set_time('2030-01-16 13:00:00');
        $a = answer(decide('/push/', user => 'z-noon', category => 'promo'));
        is($a->{reason}, 'quiet_hours',
            'a window that does not wrap (12:00-14:00): quiet at 13:00');
        is($a->{next_allowed}, '2030-01-16T14:00:00Z', '... until 14:00');
    }
}

# ---- durability: kill -9 of the workers, then a restart --------------------------

# A client decides in a loop (singles and batches, durable and relaxed
# locations) and writes down every allowed answer it got; the workers are
# killed twice meanwhile.  Every answered allow must be in the log.

my $answered = $t->prefix . '/answered.txt';
my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    open my $fh, '>', $answered or POSIX::_exit(1);
    $fh->autoflush(1);
    my $deadline = time + 3;
    my $i = 0;
    while (time < $deadline) {
        $i++;
        my $loc = $i % 2 ? '/pushnq/' : '/relaxed/';
        my $res = eval {
            if ($i % 3) {
                my $x = decide($loc, user => "k$i", category => 'promo');
                my $y = json_decode($x->body);
                [ $y ];
            } else {
                my $x = post("${loc}batch", json_encode([ map {
                    { user => "k$i-$_", category => 'promo' } } 1 .. 5 ]));
                json_decode($x->body);
            }
        };
        next unless ref $res eq 'ARRAY';
        for (@$res) {
            print $fh "$_->{user}\n" if ($_->{decision} // '') eq 'allow';
        }
    }
    close $fh;
    POSIX::_exit(0);
}

$t->allow_log(qr/worker process \d+ exited on signal 9/);
my $master = $t->pid;
for (1, 2) {
    sleep 0.8;
    my @w = worker_pids($master);
    kill 'KILL', @w;
}
waitpid($pid, 0);

open my $afh, '<', $answered or die "$answered: $!";
my %answered = map { chomp; ($_ => 1) } <$afh>;
close $afh;
cmp_ok(scalar keys %answered, '>', 50, 'answers were given around the kills')
    or diag(scalar keys %answered);

sub logged_allows {
    my ($code, $out) = push_cmd('log', '--jsonl', '--reason', 'allow');
    return { map { my $d = json_decode($_); ($d->{user} => 1) }
        grep { length } split /\n/, $out };
}

my $logged = logged_allows();
my @lost = grep { !$logged->{$_} } sort keys %answered;
is(scalar @lost, 0, 'every answered allow survived kill -9 of the workers')
    or diag("lost: @lost[0 .. ($#lost < 9 ? $#lost : 9)]");

my $deadline = time + 5;
sleep 0.1 while @{[ worker_pids($master) ]} < 2 && time < $deadline;
is(scalar @{[ worker_pids($master) ]}, 2, 'the master started new workers');
my $cnt_before = counters();
cmp_ok($cnt_before->{allow}, '>=', scalar keys %answered,
    '... which read the counters: at least every answered allow');

$t->stop(no_check => 1);
start();

my $cnt_after = counters();
is_deeply($cnt_after, $cnt_before, 'counters unchanged by a restart');
my @k = (sort keys %answered)[0 .. 4];
my $capped = grep { answer(decide('/pushnq/', user => $_, category => 'promo'))
    ->{reason} eq 'cap' } @k;
is($capped, 5, 'users answered before the restart are still capped');
($vc, $vout) = push_cmd('verify', '--policy', $policy_file);
is($vc, 0, 'push verify after the kills: the log is whole and within caps')
    or diag($vout);

# ---- a policy stored in the database replaces the directives ---------------------

ok(import_push_data({ push => { quiet_hours => undef, categories => {
    promo => { caps => [ '3/1d' ] }, flash => { caps => [ '1/1h' ] } } } }),
    'push policy imported');
$a = answer($t->get('/pushnq/policy', headers => $AUTH));
is($a->{source}, 'database', 'policy: from the database');
is_deeply($a->{policy}{categories}{promo}{caps}, [ '3/1d' ],
    '... promo 3 a day');
is(join(',', map { answer(decide('/pushnq/', user => 'sp1',
    category => 'promo'))->{reason} } 1 .. 4), 'allow,allow,allow,cap',
    'the stored caps apply');
is(join(',', map { answer(decide('/pushnq/', user => 'sp1',
    category => 'flash'))->{reason} } 1 .. 2), 'allow,cap',
    'a category defined in the database');
$r = decide('/pushnq/', user => 'sp1', category => 'order_status');
is($r->status, 400,
    'the stored policy is the defaults plus its changes, not the directives');

$t->stop;

done_testing;
