#!/usr/bin/perl
# Headers to the upstream: inbound X-Storefront-* (or the configured prefix)
# are removed before the module sets its own; values carry no CR/LF; QA
# forcing by query string works only where storefront_qa_override is on;
# storefront off leaves requests alone.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Storefront::Test qw(gb_assign parse_variants);

my $exp = { key => 'qa', variations => [ 'control', 'treatment' ],
    meta => [ { key => 'control' }, { key => 'treatment' } ] };

my $t = Storefront::Test->new;
$t->must_import({ experiments => [ $exp ] });

my $echo = $t->echo_server;
my $echo_shop = $t->echo_server(var_prefix => 'x_shop_', port => '%%PORT3%%');
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
            proxy_pass http://127.0.0.1:%%PORT2%%;
            add_header X-T-Qa \$storefront_variant_qa;
        }
        location /qa/ {
            storefront_qa_override on;
            proxy_pass http://127.0.0.1:%%PORT2%%;
            add_header X-T-Qa \$storefront_variant_qa;
        }
        location /off/ {
            storefront off;
            proxy_pass http://127.0.0.1:%%PORT2%%;
        }
        location /shop/ {
            storefront_header_prefix X-Shop-;
            proxy_pass http://127.0.0.1:%%PORT3%%;
        }
    }
$echo
$echo_shop
}
EOF
$t->run;

# ---- spoofing ----------------------------------------------------------------

my $r = $t->get('/', headers => [
    'X-User-Id' => 'alice',
    'X-Storefront-User-Id' => 'admin',
    'X-Storefront-Variants' => 'qa=treatment;evil=1',
    'X-Storefront-Status' => 'forged',
    'x-storefront-id-minted' => '1',
    'X-STOREFRONT-SPOOF' => 'yes',
]);
my %e = $r->echo;
is($r->status, 200, 'spoofed request served');
is($e{uid}, 'alice', 'User-Id is the real one');
is($e{status}, 'ok', 'Status is the real one');
is($e{spoof}, '', 'unknown X-Storefront-Spoof removed');
my $want = gb_assign($exp, 'alice') ? 'treatment' : 'control';
is_deeply(parse_variants($e{variants}), { qa => $want },
    'Variants is the real one');
like($e{minted}, qr/^(?:|0|false|no)$/, 'Id-Minted is the real one');

# Inbound headers twice: both copies go.
$r = $t->get('/', headers => [ 'X-User-Id' => 'bob',
    'X-Storefront-Spoof' => 'one', 'X-Storefront-Spoof' => 'two' ]);
%e = $r->echo;
is($e{spoof}, '', 'repeated spoofed header removed');

# Custom prefix: X-Shop-* spoofs removed, X-Shop-* set.
$r = $t->get('/shop/', headers => [ 'X-User-Id' => 'carol',
    'X-Shop-Spoof' => 'yes', 'X-Shop-User-Id' => 'admin' ]);
%e = $r->echo;
is($e{uid}, 'carol', 'custom prefix: X-Shop-User-Id set');
is($e{spoof}, '', 'custom prefix: X-Shop-Spoof removed');
is($e{status}, 'ok', 'custom prefix: X-Shop-Status set');
ok(exists parse_variants($e{variants})->{qa}, 'custom prefix: X-Shop-Variants');

# storefront off: no decisions, no cookie.
$r = $t->get('/off/');
%e = $r->echo;
is($r->status, 200, 'storefront off: served');
is($e{status}, '', 'storefront off: no Status header');
is(scalar($r->headers('set-cookie')), 0, 'storefront off: no cookie minted');

# ---- CR/LF -----------------------------------------------------------------

# Obsolete line folding: the continuation must not become a header of its
# own nor end up in a storefront header.
my $raw = $t->http_raw("GET / HTTP/1.0\r\nHost: localhost\r\n"
    . "X-User-Id: fold\r\n X-Injected: 1\r\n\r\n");
$r = $t->http_parse($raw);
ok($r && ($r->status == 200 || $r->status == 400), 'folded header: 200 or 400')
    or diag($raw);
if ($r && $r->status == 200) {
    %e = $r->echo;
    is($e{injected}, '', 'folded header: nothing injected');
    unlike($e{uid}, qr/[\r\n]/, 'folded header: User-Id without CR/LF');
} else {
    pass('folded header rejected by nginx') for 1 .. 2;
}

# A bare CR inside a value is rejected by nginx's parser (400).
$raw = $t->http_raw("GET / HTTP/1.0\r\nHost: localhost\r\n"
    . "X-User-Id: cr\rX-Injected: 1\r\n\r\n");
$r = $t->http_parse($raw);
ok($r && ($r->status == 400 || ($r->status == 200
    && +{ $r->echo }->{injected} eq '')), 'bare CR: rejected or harmless');

# Percent-encoded CR/LF stays text.
$r = $t->get('/', headers => [ 'X-User-Id' => 'pct%0d%0aX-Injected:%201' ]);
%e = $r->echo;
is($r->status, 200, 'percent-encoded CR/LF: served');
is($e{injected}, '', 'percent-encoded CR/LF: nothing injected');

# ---- QA override -------------------------------------------------------------

# Users naturally in control, forced to treatment with ?qa=1.
my @control = grep { gb_assign($exp, $_) == 0 } map { "qa-user-$_" } 1 .. 40;
my @treat = grep { gb_assign($exp, $_) == 1 } map { "qa-user-$_" } 1 .. 40;
cmp_ok(scalar @control, '>=', 5, 'some users in control');

my ($forced, $ignored, $natural, $reverse) = (0, 0, 0, 0);
for my $u (@control) {
    my $on = $t->get('/qa/?qa=1', headers => [ 'X-User-Id' => $u ]);
    $forced++ if $on->variants->{qa} eq 'treatment'
        && ($on->header('x-t-qa') // '') eq 'treatment';
    my $off = $t->get('/?qa=1', headers => [ 'X-User-Id' => $u ]);
    $ignored++ if $off->variants->{qa} eq 'control'
        && ($off->header('x-t-qa') // '') eq 'control';
    my $plain = $t->get('/qa/', headers => [ 'X-User-Id' => $u ]);
    $natural++ if $plain->variants->{qa} eq 'control';
}
for my $u (@treat) {
    my $on = $t->get('/qa/?x=1&qa=0', headers => [ 'X-User-Id' => $u ]);
    $reverse++ if $on->variants->{qa} eq 'control';
}
is($forced, scalar @control, 'qa_override on: ?qa=1 forces treatment');
is($ignored, scalar @control, 'qa_override off (default): ?qa=1 ignored');
is($natural, scalar @control, 'qa_override on, no parameter: natural');
is($reverse, scalar @treat, 'qa_override on: ?qa=0 forces control');

# Out of range or not a number: no forcing.
my $u = $control[0];
for my $q ('qa=2', 'qa=-1', 'qa=x', 'qa=') {
    my $r2 = $t->get("/qa/?$q", headers => [ 'X-User-Id' => $u ]);
    is($r2->variants->{qa}, 'control', "?$q does not force");
}

$t->stop;
done_testing;
