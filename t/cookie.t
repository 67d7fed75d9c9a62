#!/usr/bin/perl
# The anonymous id cookie: minted once, with the configured attributes;
# garbage, 10 KB and CR/LF cookies and user ids handled without errors;
# non-ASCII user ids hashed over UTF-16 code units like GrowthBook.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Encode qw(encode);
use Test::More;
use Storefront::Test qw(gb_assign parse_set_cookie);

my @experiments = map {
    { key => "c$_", variations => [ 0, 1, 2, 3 ], seed => "seed-$_" }
} 1 .. 4;
push @experiments, { key => 'c5', variations => [ 0, 1 ], hashVersion => 2 };

sub expected {
    my ($id) = @_;
    my %v;
    for my $e (@experiments) {
        my $i = gb_assign($e, $id);
        $v{ $e->{key} } = "$i" if $i >= 0;
    }
    return \%v;
}

my $t = Storefront::Test->new;
$t->must_import({ experiments => \@experiments });

my $echo = $t->echo_server;
$t->write_config(<<"EOF");
%%TEST_GLOBALS%%
worker_processes 1;
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    large_client_header_buffers 4 32k;
    storefront_db %%DB%%;

    server {
        listen 127.0.0.1:%%PORT%%;
        storefront on;
        storefront_user_id \$http_x_user_id;
        storefront_cookie sf_anon max_age=30d domain=shop.example path=/
            secure httponly samesite=strict;

        location / {
            proxy_pass http://127.0.0.1:%%PORT2%%;
            add_header X-T-Minted \$storefront_id_minted;
        }
        location /plain/ {
            storefront_cookie shopper;
            proxy_pass http://127.0.0.1:%%PORT2%%;
        }
    }
$echo
}
EOF
$t->run;

my $HEX32 = qr/^[0-9a-f]{32}$/;
sub is_false { ($_[0] // '') =~ /^(?:|0|false|no|off)$/i }
sub is_true { ($_[0] // '') =~ /^(?:1|true|yes|on)$/i }

# ---- minted once, with its attributes ---------------------------------------

my $r = $t->get('/');
my @sc = grep { /^sf_anon=/ } $r->headers('set-cookie');
is(scalar @sc, 1, 'one sf_anon Set-Cookie');
my $c = parse_set_cookie($sc[0] // '');
like($c->{value}, $HEX32, 'value: 128 bits as 32 lowercase hex');
is($c->{attrs}{'max-age'}, 2592000, 'Max-Age=2592000 (30d)');
is(lc($c->{attrs}{domain} // ''), 'shop.example', 'Domain');
is($c->{attrs}{path}, '/', 'Path=/');
ok($c->{attrs}{secure}, 'Secure');
ok($c->{attrs}{httponly}, 'HttpOnly');
is(lc($c->{attrs}{samesite} // ''), 'strict', 'SameSite=Strict');
my %e = $r->echo;
is($e{uid}, $c->{value}, 'upstream sees the minted id');
ok(is_true($e{minted}), 'upstream Id-Minted true on the minting request')
    or diag("minted=$e{minted}");
ok(is_true($r->header('x-t-minted')), '$storefront_id_minted true');
is_deeply($r->variants, expected($c->{value}), 'variants of the minted id');

my $id = $c->{value};
my %jar = (sf_anon => $id);
$r = $t->get('/', jar => \%jar);
%e = $r->echo;
is(scalar($r->headers('set-cookie')), 0, 'no Set-Cookie when the cookie is sent');
is($e{uid}, $id, 'same id on the next request');
ok(is_false($e{minted}), 'Id-Minted false on the next request');
ok(is_false($r->header('x-t-minted')), '$storefront_id_minted false');
is_deeply($r->variants, expected($id), 'same variants on the next request');

# Two fresh visitors get different ids.
my $id2 = parse_set_cookie(($t->get('/')->headers('set-cookie'))[0] // '')
    ->{value} // '';
like($id2, $HEX32, 'second visitor minted');
isnt($id2, $id, 'second visitor has another id');

# Cookie name from the location; the logged-in id needs no cookie.
$r = $t->get('/plain/');
like(($r->headers('set-cookie'))[0] // '', qr/^shopper=[0-9a-f]{32}(;|$)/,
    'storefront_cookie in a location sets the name');
$r = $t->get('/', headers => [ 'X-User-Id' => 'member-1' ]);
%e = $r->echo;
is($e{uid}, 'member-1', 'logged-in id wins');
is(scalar($r->headers('set-cookie')), 0, 'logged-in user: no cookie minted');
ok(is_false($e{minted}), 'logged-in user: Id-Minted false');
$r = $t->get('/', headers => [ 'X-User-Id' => 'member-1' ], jar => \%jar);
is(+{ $r->echo }->{uid}, 'member-1', 'logged-in id before the anonymous one');

# ---- bad cookies: a fresh valid id, never an error -------------------------

my %bad = (
    'garbage' => 'sf_anon=%%%not*hex!!',
    'short hex' => 'sf_anon=abc123',
    'too long hex' => 'sf_anon=' . ('a' x 33),
    'upper-case hex' => 'sf_anon=' . ('A' x 32),
    '10 KB value' => 'sf_anon=' . ('a' x 10240),
    'empty' => 'sf_anon=',
    'quoted' => 'sf_anon="' . ('b' x 30) . '"',
    'non-ASCII' => encode('UTF-8', 'sf_anon=' . ('é' x 16)),
);
for my $name (sort keys %bad) {
    $r = $t->get('/', headers => [ Cookie => $bad{$name} ]);
    %e = $r->echo;
    is($r->status, 200, "$name cookie: 200");
    my ($new) = grep { /^sf_anon=/ } $r->headers('set-cookie');
    my $v = parse_set_cookie($new // '')->{value} // '';
    if ($name eq 'upper-case hex' && !defined $new) {
        # accepting A..F as the same id is fine too, as long as it is bounded
        like($e{uid}, qr/^[0-9a-fA-F]{32}$/, "$name cookie: accepted as is");
        pass("$name cookie: upstream id");
        next;
    }
    like($v, $HEX32, "$name cookie: a valid id minted instead");
    is($e{uid}, $v, "$name cookie: upstream gets the new id");
}

# A 10 KB cookie next to a valid one keeps the valid one.
$r = $t->get('/', headers => [ Cookie => 'junk=' . ('x' x 10240)
    . "; sf_anon=$id; more=1" ]);
%e = $r->echo;
is($e{uid}, $id, 'valid id found next to a 10 KB cookie');
is(scalar($r->headers('set-cookie')), 0, 'and not minted again');

# CR/LF: obsolete folding in a Cookie header.
my $raw = $t->http_raw("GET / HTTP/1.0\r\nHost: localhost\r\n"
    . "Cookie: sf_anon=$id\r\n X-Injected: 1\r\n\r\n");
$r = $t->http_parse($raw);
ok($r && ($r->status == 200 || $r->status == 400),
    'folded Cookie header: 200 or 400');
ok(!$r || $r->status != 200 || +{ $r->echo }->{injected} eq '',
    'folded Cookie header: nothing injected');

# ---- user ids: long, non-ASCII -------------------------------------------

$r = $t->get('/', headers => [ 'X-User-Id' => 'u' x 10240 ]);
%e = $r->echo;
is($r->status, 200, '10 KB user id: 200');
cmp_ok(length($e{uid} // ''), '<=', 1024, '10 KB user id: bounded header')
    or diag('User-Id length ' . length $e{uid});
unlike($e{variants} // '', qr/[\r\n]/, '10 KB user id: clean Variants');

for my $uid ('käufer-42', '用户42', "emoji-\x{1F600}", 'ÅÄÖ') {
    my $bytes = encode('UTF-8', $uid);
    $r = $t->get('/', headers => [ 'X-User-Id' => $bytes ]);
    is($r->status, 200, "non-ASCII user id $bytes: 200");
    is_deeply($r->variants, expected($bytes),
        "non-ASCII user id $bytes: GrowthBook variants (UTF-16 hashing)");
    unlike(+{ $r->echo }->{uid} // '', qr/[\x00-\x1f\x7f]/,
        "non-ASCII user id $bytes: no control characters upstream");
}

# Invalid UTF-8 and control bytes: served, header clean.
for my $bytes ("\xff\xfe\xfd", "tab\there", "nul-less\x01\x02") {
    $r = $t->get('/', headers => [ 'X-User-Id' => $bytes ]);
    (my $show = $bytes) =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;
    is($r->status, 200, "user id \"$show\": 200");
    unlike(+{ $r->echo }->{uid} // '', qr/[\x00-\x08\x0a-\x1f\x7f]/,
        "user id \"$show\": no control characters upstream");
}

$t->stop;
done_testing;
