#!/usr/bin/perl
# The admin endpoint (storefront_admin): configuration checks, refusals
# that change nothing (no token, wrong token, denied address, malformed
# JSON, oversize body, a batch with one bad event), events applied in one
# transaction and idempotently, JSON lines, bodies buffered to a file,
# the profile and rules routes, methods and unknown routes.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Storefront::Test qw(json_encode json_decode);

my $TOKEN = 'test-token-0123456789abcdef';

# an oversize body is answered before it is all sent
$SIG{PIPE} = "IGNORE";

my $t = Storefront::Test->new;

# ---- configuration ---------------------------------------------------------

sub conf_with {
    my ($location) = @_;
    return <<"EOF";
%%TEST_GLOBALS%%
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    storefront_db %%DB%%;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ {
            $location
        }
    }
}
EOF
}

my ($code, $out) = $t->nginx_t(conf_with('storefront_admin;'));
isnt($code, 0, 'storefront_admin without a token: nginx -t fails');
like($out, qr/"storefront_admin" requires "storefront_admin_token"/,
    '... naming the missing directive');

($code, $out) = $t->nginx_t(conf_with(
    'storefront_admin; storefront_admin_token short-token;'));
isnt($code, 0, 'a token under 16 characters fails');
like($out, qr/storefront_admin_token.*16/, '... saying the minimum');

($code, $out) = $t->nginx_t(conf_with(
    'storefront_admin; storefront_admin_token "bad token with spaces";'));
isnt($code, 0, 'a token with spaces fails');
like($out, qr/invalid token in "storefront_admin_token"/, '... as invalid');

($code, $out) = $t->nginx_t(conf_with(
    "storefront_admin; storefront_admin_token $TOKEN;"));
is($code, 0, 'storefront_admin with a token passes nginx -t') or diag($out);

# the token may be set at the server level and inherited
($code, $out) = $t->nginx_t(<<"EOF");
%%TEST_GLOBALS%%
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    storefront_db %%DB%%;
    storefront_admin_token $TOKEN;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { storefront_admin; }
    }
}
EOF
is($code, 0, 'an inherited token is accepted') or diag($out);

($code, $out) = $t->nginx_t(<<"EOF");
%%TEST_GLOBALS%%
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ {
            storefront_admin;
            storefront_admin_token $TOKEN;
        }
    }
}
EOF
isnt($code, 0, 'storefront_admin without storefront_db fails');
like($out, qr/no "storefront_db" is defined for "storefront_admin"/,
    '... naming storefront_db');

# ---- the running endpoint --------------------------------------------------

$t->write_config(<<"EOF");
%%TEST_GLOBALS%%
worker_processes 1;
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    storefront_db %%DB%%;

    server {
        listen 127.0.0.1:%%PORT%%;
        storefront on;
        storefront_user_id \$http_x_user_id;

        location / {
            return 200 "ok\\n";
        }

        # allow/deny run before the token is looked at
        location /admin/ {
            allow 127.0.0.1;
            deny all;
            client_max_body_size 1m;
            client_body_buffer_size 1k;
            storefront_admin;
            storefront_admin_token $TOKEN;
        }

        location /denied/ {
            deny 127.0.0.1;
            storefront_admin;
            storefront_admin_token $TOKEN;
        }
    }
}
EOF
$t->run;

my @AUTH = (Authorization => "Bearer $TOKEN");

sub post_events {
    my ($body, %opt) = @_;
    return $t->get($opt{path} // '/admin/events', method => 'POST',
        body => ref $body ? json_encode($body) : $body,
        headers => $opt{headers} // [ @AUTH ]);
}

sub profile {
    my ($user) = @_;
    my $r = $t->get("/admin/profile?user=$user", headers => [ @AUTH ]);
    return undef if $r->status == 404;
    die 'profile: ' . $r->status . ' ' . $r->body if $r->status != 200;
    return json_decode($r->body);
}

sub json_error {
    my ($r) = @_;
    my $j = eval { json_decode($r->body) };
    return $j && ref $j eq 'HASH' ? $j->{error} // '' : '';
}

my $buy = { type => 'purchase', user => 'ann', order_id => 'o-1',
    amount => 120, categories => [ 'shoes' ] };

# No token: 401, a Bearer challenge, a JSON error, nothing written.
my $r = post_events($buy, headers => []);
is($r->status, 401, 'no token: 401');
like($r->header('www-authenticate') // '', qr/^Bearer realm="storefront"$/,
    '... with a Bearer challenge');
like($r->header('content-type') // '', qr{^application/json}, '... JSON');
like(json_error($r), qr/bearer token is required/, '... and a message');
is(profile('ann'), undef, '... nothing written');

# A wrong token, or another scheme: 401 invalid_token.
for my $auth ("Bearer $TOKEN-x", 'Bearer ' . substr($TOKEN, 0, -1),
    "Basic $TOKEN", 'Bearer')
{
    $r = post_events($buy, headers => [ Authorization => $auth ]);
    is($r->status, 401, "\"$auth\": 401");
    like($r->header('www-authenticate') // '', qr/error="invalid_token"/,
        '... invalid_token');
}
is(profile('ann'), undef, 'wrong tokens wrote nothing');
ok(scalar $t->log_lines(qr/storefront admin: invalid bearer token/),
    'wrong tokens are logged');

# A denied address: nginx's 403 even with the right token.
$r = post_events($buy, path => '/denied/events');
is($r->status, 403, 'denied address: 403');
is(profile('ann'), undef, '... nothing written');

# Malformed JSON: 400 with the parser's message.
$r = post_events('{"type":"purchase","user":"ann",');
is($r->status, 400, 'malformed JSON: 400');
like(json_error($r), qr/malformed JSON: .*parse error/i,
    '... with the parser\'s message');
$r = post_events('');
is($r->status, 400, 'empty body: 400');
is(profile('ann'), undef, '... nothing written');

# Oversize body (client_max_body_size 1m): nginx's 413.
my $big = json_encode([ map { { %$buy, order_id => "big-$_" } } 1 .. 20000 ]);
cmp_ok(length $big, '>', 1024 * 1024, 'the oversize body is over 1m');
$r = post_events($big);
is($r->status, 413, 'oversize body: 413');
is(profile('ann'), undef, '... nothing written');

# More events than the cap (10000) within the size limit: 413, JSON.
my $many = join "\n", map {
    qq({"type":"points","user":"cap","order_id":"p$_","amount":1})
} 1 .. 10001;
cmp_ok(length $many, '<', 1024 * 1024, 'the 10001 events fit in 1m');
$r = post_events($many);
is($r->status, 413, 'more than 10000 events: 413');
like(json_error($r), qr/10001 events .* at most 10000/, '... saying so');
is(profile('cap'), undef, '... nothing written');

# One bad event in a batch: 400 naming it, nothing written.
$r = post_events([ $buy, { %$buy, order_id => 'o-2' },
    { type => 'purchase', user => 'ann', order_id => 'o-3' } ]);
is($r->status, 400, 'a batch with a bad event: 400');
my $err = json_decode($r->body);
is($err->{index}, 2, '... naming the index');
like($err->{error}, qr/^event 2: .*amount/, '... and the problem');
is(profile('ann'), undef, '... nothing written');

$r = post_events(join "\n", json_encode($buy),
    '{"type":"purchase","user":"ann","order_id":"o-9","amount":"ten"}');
is($r->status, 400, 'JSON lines with a bad event: 400');
like(json_error($r), qr/^line 2: /, '... naming the line');
is(profile('ann'), undef, '... nothing written');

$r = post_events([ $buy, { type => 'bogus', user => 'ann',
    order_id => 'x' } ]);
is($r->status, 400, 'an unknown event type: 400');
like(json_error($r), qr/unknown event type "bogus"/, '... named');

# A return of an unknown order after a valid purchase: 409, all undone.
$r = post_events([ $buy, { type => 'return', user => 'ann',
    order_id => 'never-bought' } ]);
is($r->status, 409, 'a return of an unknown order: 409');
like(json_error($r), qr/^event 1: .*never-bought/, '... naming it');
is(profile('ann'), undef, '... and the valid purchase is rolled back');

# A valid batch: applied in one transaction.
$r = post_events([ $buy, { %$buy, order_id => 'o-2', amount => 80,
    categories => [ 'socks', 'shoes' ] } ]);
is($r->status, 200, 'a valid batch: 200') or diag($r->body);
my $res = json_decode($r->body);
is($res->{applied}, 2, '... 2 applied');
is($res->{duplicates}, 0, '... no duplicates');
is_deeply([ map { [ $_->{user}, $_->{order_id}, $_->{duplicate} ? 1 : 0,
    $_->{points} ] } @{ $res->{results} } ],
    [ [ 'ann', 'o-1', 0, 120 ], [ 'ann', 'o-2', 0, 80 ] ],
    '... results per event with the points earned');
ok(scalar $t->log_lines(qr/storefront admin: 2 events applied, 0 dup/),
    '... logged at info');

my $p = profile('ann');
is($p->{orders}, 2, 'profile: 2 orders');
is($p->{monetary}, 200, 'profile: monetary 200');
is($p->{points}, 200, 'profile: 200 points');
is_deeply($p->{categories}, { shoes => 2, socks => 1 }, 'profile: categories');
is($p->{derived}{tier}, 'regular', 'profile: derived tier');
is($p->{derived}{rfm}, '522', 'profile: derived RFM code');
is($p->{derived}{lifecycle}, 'new', 'profile: derived lifecycle');
ok(exists $p->{derived}{tier_benefits}{discount},
    'profile: tier benefits as an object');

# The same events again: duplicates, nothing changes.
$r = post_events([ $buy, { %$buy, order_id => 'o-2', amount => 80 } ]);
is($r->status, 200, 'the same batch again: 200');
$res = json_decode($r->body);
is($res->{applied}, 0, '... 0 applied');
is($res->{duplicates}, 2, '... 2 duplicates');
ok($res->{results}[0]{duplicate}, '... marked duplicate');
is_deeply(profile('ann'), { %$p, derived => profile('ann')->{derived} },
    '... the profile is unchanged');
is(profile('ann')->{orders}, 2, '... still 2 orders');

# Twice in one batch counts once too.
$r = post_events([ map { { type => 'purchase', user => 'bo',
    order_id => 'same', amount => 10 } } 1 .. 2 ]);
$res = json_decode($r->body);
is_deeply([ $res->{applied}, $res->{duplicates} ], [ 1, 1 ],
    'the same order twice in one batch counts once');

# JSON lines, with blank lines and CRLF.
$r = post_events(join("\r\n",
    '{"type":"purchase","user":"cy","order_id":"a","amount":10}', '',
    '{"type":"purchase","user":"cy","order_id":"b","amount":15}') . "\n");
is($r->status, 200, 'JSON lines: 200') or diag($r->body);
is(json_decode($r->body)->{applied}, 2, '... 2 applied');
is(profile('cy')->{orders}, 2, '... profile updated');

# A body larger than client_body_buffer_size goes to a temporary file.
my $offset = -s $t->error_log_path;
my @file = map { { type => 'purchase', user => 'dee', order_id => "f$_",
    amount => 1 } } 1 .. 300;
$r = post_events(\@file);
is($r->status, 200, 'a body buffered to a file: 200') or diag($r->body);
is(json_decode($r->body)->{applied}, 300, '... 300 applied');
ok(scalar $t->log_lines(qr/buffered to a temporary file/, $offset),
    '... it was read from the temporary file');
is(profile('dee')->{orders}, 300, '... profile has 300 orders');

# Returns and points.
$r = post_events({ type => 'return', user => 'ann', order_id => 'o-2' });
is($r->status, 200, 'a return: 200');
is(json_decode($r->body)->{results}[0]{points}, -80, '... points taken back');
is(profile('ann')->{returns}, 1, '... counted');
$r = post_events({ type => 'points', user => 'ann', order_id => 'redeem-1',
    amount => -1000 });
is($r->status, 422, 'redeeming more points than the balance: 422');
like($r->raw, qr{^HTTP/1\.1 422 Unprocessable Entity}, '... status line');
is(profile('ann')->{points}, 120, '... balance unchanged');

# GET profile of an unknown user, bad arguments.
$r = $t->get('/admin/profile?user=nobody', headers => [ @AUTH ]);
is($r->status, 404, 'profile of an unknown user: 404');
like(json_error($r), qr/"nobody" has no profile/, '... JSON error');
$r = $t->get('/admin/profile', headers => [ @AUTH ]);
is($r->status, 400, 'profile without user: 400');
$r = $t->get('/admin/profile?user=a%0Ab', headers => [ @AUTH ]);
is($r->status, 400, 'profile of a user id with a newline: 400');
$r = $t->get('/admin/profile?user=ann', headers => [ ]);
is($r->status, 401, 'profile without the token: 401');

# GET rules.
$r = $t->get('/admin/rules', headers => [ @AUTH ]);
is($r->status, 200, 'rules: 200');
my $rules = json_decode($r->body);
is_deeply([ map { $_->{name} } @{ $rules->{tiers} } ],
    [ 'regular', 'silver', 'gold' ], 'rules: the default tiers');
$r = $t->get('/admin/rules', method => 'HEAD', headers => [ @AUTH ]);
is($r->status, 200, 'HEAD rules: 200');
is($r->body, '', '... no body');

# Methods and routes.
$r = $t->get('/admin/events', headers => [ @AUTH ]);
is($r->status, 405, 'GET events: 405');
is($r->header('allow'), 'POST', '... Allow: POST');
$r = post_events('{}', path => '/admin/rules');
is($r->status, 405, 'POST rules: 405');
is($r->header('allow'), 'GET, HEAD', '... Allow: GET, HEAD');
$r = $t->get('/admin/nothing', headers => [ @AUTH ]);
is($r->status, 404, 'unknown route: 404');
like($r->header('content-type') // '', qr{^application/json}, '... JSON');
$r = $t->get('/admin/nothing', headers => [ ]);
is($r->status, 401, 'unknown route without the token: 401 first');

# The admin location makes no storefront decision (no cookie).
$r = $t->get('/admin/rules', headers => [ @AUTH ]);
is($r->header('set-cookie'), undef, 'no anonymous id cookie from the API');

$t->stop;

done_testing;
