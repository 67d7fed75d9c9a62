#!/usr/bin/perl
# Page layouts at the edge (ngx_http_storefront_page_module):
#   - storefrontctl: bad layouts rejected at import (unknown module, empty
#     layout, loop, an experiment naming an unknown layout), export,
#     explain --page with each rule's outcome and --now;
#   - the decision as headers to the upstream and as variables, per tier,
#     segment, category affinity (cross-sell) and experiment variation, in
#     rule order; spoofed headers removed; a page type from a variable;
#     the decision after try_files in a location named later; with the
#     decision cache on, a returning visitor's layout (a variation's
#     layout kept, rules seeing the request's URL);
#   - edge assembly: the shell with the fragments in layout order, fetched
#     in parallel, cached by $uri$args (one upstream request per key),
#     never with the user id, cookies or decision headers; failure,
#     timeout and error statuses replaced by fallbacks with the page still
#     200; a fragment that is the page (or another assembled page)
#     refused; gzip and SSI on; Vary and Cache-Control; a failing shell;
#   - the promotion-day window with nginx's clock moved (libfaketime);
#   - configuration errors, and a reload.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use IO::Uncompress::Gunzip qw(gunzip);
use POSIX qw(strftime WNOHANG);
use Test::More;
use Time::HiRes qw(time sleep);
use Storefront::Test qw(gb_assign json_encode json_decode);

my $t = Storefront::Test->new;

sub day { strftime('%Y-%m-%d', gmtime(time + $_[0] * 86400)) }

# ---- data ------------------------------------------------------------------

my $layout_test = {
    key => 'layout-test',
    variations => [ {}, { layout => 'home-b' } ],
    meta => [ { key => 'a' }, { key => 'b' } ],
};

my %modules = (
    hero     => { fragment => '/frag/hero', vary => [ 'segment' ] },
    perks    => { fragment => '/frag/perks', vary => [ 'tier' ] },
    guess    => { fragment => '/frag/guess', vary => [ 'segment' ],
                  fallback => '<p>guess-fallback</p>' },
    best     => { fragment => '/frag/best' },
    new      => { fragment => '/frag/new' },
    sale     => { fragment => '/frag/sale' },
    baby     => { fragment => '/frag/baby' },
    rec      => { fragment => '/frag/rec' },
    winback  => { fragment => '/frag/winback', vary => [ 'lifecycle' ] },
    exp      => { fragment => '/frag/exp', vary => [ 'variants' ] },
    footer   => { fragment => '/frag/footer' },
    slow1    => { fragment => '/slow/sleep/400/s1' },
    slow2    => { fragment => '/slow/sleep/400/s2' },
    slow3    => { fragment => '/slow/sleep/400/s3' },
    slow4    => { fragment => '/slow/sleep/400/s4' },
    hang     => { fragment => '/slow/hang', fallback => '<p>hang-fallback</p>' },
    error    => { fragment => '/frag/error', fallback => '<p>error-fallback</p>' },
    missing  => { fragment => '/nowhere/missing' },
    refused  => { fragment => '/frag/closed', fallback => '<p>refused-fallback</p>' },
    self     => { fragment => '/broken-page', fallback => '<p>self-fallback</p>' },
    alias    => { fragment => '/home-alias', fallback => '<p>alias-fallback</p>' },
    big      => { fragment => '/frag/big', fallback => '<p>big-fallback</p>' },
);

my %layouts = (
    footer        => [ { module => 'footer' } ],
    'home-default'=> [ { module => 'hero', params => { banner => 'spring sale' } },
                       { module => 'best' }, { module => 'new' },
                       { layout => 'footer' } ],
    'home-b'      => [ { module => 'new' }, { module => 'best' },
                       { module => 'hero' }, { layout => 'footer' } ],
    'home-vip'    => [ { module => 'perks' },
                       { module => 'guess', params => { sponsored => 1, organic => 5 } },
                       { module => 'exp' }, { layout => 'footer' } ],
    'home-baby'   => [ { module => 'baby', params => { category => 'baby' } },
                       { module => 'guess' }, { layout => 'footer' } ],
    'home-run'    => [ { module => 'hero' },
                       { derive => 'cross_sell', module => 'rec', max => 2 },
                       { layout => 'footer' } ],
    'home-winback'=> [ { module => 'winback' }, { module => 'sale' },
                       { layout => 'footer' } ],
    'home-sale'   => [ { module => 'sale', params => { event => 'double-11' } },
                       { layout => 'home-default' } ],
    'home-slow'   => [ map({ { module => "slow$_" } } 1 .. 4),
                       { layout => 'footer' } ],
    'home-broken' => [ { module => 'hero' }, { module => 'hang' },
                       { module => 'error' }, { module => 'missing' },
                       { module => 'refused' }, { module => 'self' },
                       { module => 'alias' }, { module => 'big' },
                       { layout => 'footer' } ],
    cart          => [ { module => 'best' } ],
    'home-campaign' => [ { module => 'sale' }, { layout => 'footer' } ],
);

my %pages = (
    modules => \%modules,
    layouts => \%layouts,
    pages => {
        home => { default => 'home-default', rules => [
            { name => 'double-11', from => '2030-11-11T00:00:00+08:00',
              to => '2030-11-12T00:00:00+08:00', layout => 'home-sale' },
            { name => 'vip', when => { tier => 'gold' }, layout => 'home-vip' },
            { name => 'baby-fans', when => { 'categories.baby' => { '$gte' => 3 } },
              layout => 'home-baby' },
            { name => 'runners', when => { top_category => 'running_shoes' },
              layout => 'home-run' },
            { name => 'win-back', when => { segment => { '$in' => [ 'lost',
              'hibernating' ] } }, layout => 'home-winback' },
            { name => 'campaign', when => { url => {
              '$regex' => '[?&]campaign=spring' } }, layout => 'home-campaign' },
            { name => 'layout-test', experiment => 'layout-test' },
        ] },
        slow => { default => 'home-slow' },
        broken => { default => 'home-broken' },
        cart => { default => 'cart' },
    },
    cross_sell => [
        { bought => 'running_shoes', recommend => [ 'socks', 'insoles' ] },
        { bought => 'baby', recommend => 'toys' },
    ],
);

my @profiles = (
    { id => 'gold1', orders => 12, monetary => 9000, spend_365 => 6000,
      first_order => day(-300), last_order => day(-3),
      categories => { baby => 9 } },
    { id => 'gold2', orders => 6, monetary => 7000, spend_365 => 5500,
      first_order => day(-200), last_order => day(-10) },
    { id => 'baby1', orders => 4, monetary => 800, spend_365 => 800,
      first_order => day(-150), last_order => day(-20),
      categories => { baby => 4 } },
    { id => 'runner', orders => 3, monetary => 1200, spend_365 => 1200,
      first_order => day(-200), last_order => day(-30),
      categories => { running_shoes => 3 } },
    { id => 'sleepy', orders => 1, monetary => 50,
      first_order => day(-700), last_order => day(-700) },
);

# ---- import: bad layouts are rejected ------------------------------------

sub import_pages {
    my ($p, @more) = @_;
    return $t->import_data({ pages => $p, @more });
}

my ($code, $out, $err) = import_pages({ %pages, layouts => { %layouts,
    cart => [ { module => 'nope' } ] } });
if ($code != 0 && $err =~ /unknown member "pages"/) {
    plan skip_all => 'storefrontctl cannot import "pages" yet';
}
isnt($code, 0, 'import: a layout with an unknown module is rejected');
like($err, qr/pages: layout "cart" uses unknown module "nope"/,
    '... naming the layout and the module');
like($err, qr/nothing was imported/, '... and nothing is imported');

($code, $out, $err) = import_pages({ %pages, layouts => { %layouts,
    cart => [] } });
isnt($code, 0, 'import: an empty layout is rejected');
like($err, qr/layout "cart" is empty/, '... with a clear message');

($code, $out, $err) = import_pages({ %pages, layouts => { %layouts,
    loop1 => [ { layout => 'loop2' } ], loop2 => [ { layout => 'loop1' } ] } });
isnt($code, 0, 'import: layouts including each other are rejected');
like($err, qr/loop: loop1 -> loop2 -> loop1/, '... showing the loop');

($code, $out, $err) = import_pages(\%pages, experiments => [
    { %$layout_test, variations => [ {}, { layout => 'home-x' } ] } ]);
isnt($code, 0, 'import: a variation naming an unknown layout is rejected');
like($err, qr/experiment "layout-test": variation 1 names layout "home-x"/,
    '... naming the experiment, the variation and the layout');

($code, $out, $err) = $t->ctl('explain', '--page', 'home');
isnt($code, 0, 'explain --page after the rejected imports: no layouts');
like($err, qr/no page layouts/, '... says so');

$t->must_import({ experiments => [ $layout_test ], profiles => \@profiles,
    pages => \%pages });

# experiments naming layouts: with the layouts, and over stored ones
($code, $out, $err) = import_pages(\%pages, experiments => [
    { key => 'other', variations => [ {}, { layout => 'gone' } ] } ]);
isnt($code, 0, 'import: a new experiment naming an unknown layout');
($code, $out, $err) = $t->import_data({ experiments => [
    { key => 'other', variations => [ {}, { layout => 'gone' } ] } ] });
isnt($code, 0, 'import of experiments alone: checked against the stored '
    . 'layouts');
like($err, qr/layout "gone"/, '... naming the layout');

($code, $out) = $t->ctl('export');
my $exported = eval { json_decode($out) } // {};
is_deeply([ sort keys %{ $exported->{pages}{layouts} // {} } ],
    [ sort keys %layouts ], 'export: the page layouts as imported');

# ---- explain --page ---------------------------------------------------------

($code, $out, $err) = $t->ctl('explain', '--page', 'home', '--user', 'gold1',
    '--json');
my $x = eval { json_decode($out) } // {};
is($code, 0, 'explain --page home --user gold1 --json') or diag($err);
is($x->{layout}, 'home-vip', '... layout home-vip');
is($x->{rule}, 'vip', '... chosen by the rule "vip"');
is(join(',', map { "$_->{name}=$_->{outcome}" } @{ $x->{rules} }),
    'double-11=window,vip=matched,baby-fans=skipped,runners=skipped,'
    . 'win-back=skipped,campaign=skipped,layout-test=skipped',
    '... each rule\'s outcome');
is(join(';', map { $_->{module} } @{ $x->{modules} }),
    'perks;guess;exp;footer', '... the modules in order');
is($x->{modules}[1]{args}, 'organic=5&sponsored=1&segment=champions',
    '... with the query string of each fragment');

($code, $out) = $t->ctl('explain', '--page', 'home', '--user', 'gold1',
    '--now', '2030-11-11T12:00:00+08:00');
like($out, qr/layout home-sale \(rule double-11\)/,
    'explain --now on the promotion day: the sale layout');
like($out, qr/^\s+1\s+double-11\s+matched$/m, '... rule 1 matched');
like($out, qr/^\s+1\s+sale\s+event=double-11\s+\/frag\/sale\?event=double-11$/m,
    '... modules listed with their fragment URIs');

($code, $out, $err) = $t->ctl('explain', '--page', 'nope', '--user', 'x');
is($code, 1, 'explain --page for an unknown page type fails');
like($err, qr/no layouts for page type "nope"/, '... with a message');

# ---- the servers --------------------------------------------------------------

# A slow upstream on PORT3: /sleep/MS/NAME answers after MS milliseconds,
# /hang never answers; each connection in a process of its own.
my $slow_pid = slow_server($t->port(3));

my $conf = <<'EOF';
%%TEST_GLOBALS%%
worker_processes 1;
events { worker_connections 1024; }
http {
    %%TEST_GLOBALS_HTTP%%
    storefront_db %%DB%%;
    storefront_decision_cache max=1000;
    proxy_cache_path %%PREFIX%%/cache keys_zone=frag:1m;
    log_format uri '$request_uri';

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        storefront on;
        storefront_user_id $http_x_user_id;
        storefront_fragment_timeout 2s;

        location = /home {
            storefront_page home;
            storefront_assemble /shell;
            add_header X-T-Page $storefront_page;
            add_header X-T-Layout $storefront_layout;
            add_header X-T-Rule $storefront_layout_rule;
            add_header X-T-Modules $storefront_modules;
            add_header X-T-Count $storefront_module_count;
            add_header X-T-M1 $storefront_module_1;
            add_header X-T-M2 $storefront_module_2;
            add_header X-T-M9 $storefront_module_9;
        }

        location = /home-alias {
            storefront_page home;
            storefront_assemble /shell;
        }

        location = /home-gz {
            storefront_page home;
            storefront_assemble /shell;
            gzip on;
            gzip_min_length 1;
        }

        location = /home-ssi {
            ssi on;
            storefront_page home;
            storefront_assemble /shell-ssi;
        }

        location = /home-conf {
            storefront_page home;
            storefront_assemble /shell-custom placeholder=<!--MODULES-->;
            storefront_page_cache_control "private, max-age=0";
            storefront_page_vary "Cookie, X-User-Id";
        }

        location = /home-off {
            storefront_page home;
            storefront_assemble /shell;
            storefront_page_cache_control off;
            storefront_page_vary off;
        }

        location = /slow-page {
            storefront_page slow;
            storefront_assemble /shell;
        }

        location = /broken-page {
            storefront_page broken;
            storefront_assemble /shell;
            storefront_fragment_timeout 300ms;
            storefront_fragment_fallback "<p>default-fallback</p>";
        }

        location = /no-shell {
            storefront_page home;
            storefront_assemble /nowhere/shell;
        }

        location = /app {
            storefront_page home;
            proxy_pass http://127.0.0.1:%%PORT2%%/echo;
            add_header X-T-Cache $storefront_decision_cache;
        }

        location = /cart {
            storefront_page cart;
            proxy_pass http://127.0.0.1:%%PORT2%%/echo;
        }

        location = /typed {
            storefront_page $arg_type;
            proxy_pass http://127.0.0.1:%%PORT2%%/echo;
            add_header X-T-Layout $storefront_layout;
        }

        location = /plain {
            storefront_page home;
            storefront off;
            proxy_pass http://127.0.0.1:%%PORT2%%/echo;
        }

        location = /redir {
            try_files /nonexistent @page;
        }

        location @page {
            storefront_page home;
            proxy_pass http://127.0.0.1:%%PORT2%%;
        }

        location = /shell {
            storefront off;
            default_type "text/html; charset=utf-8";
            return 200 "<html><body><h1>shop</h1><!--storefront:modules--></body></html>\n";
        }

        location = /shell-ssi {
            storefront off;
            default_type text/html;
            ssi on;
            return 200 "<h1><!--# echo var=\"storefront_layout\" --></h1><!--storefront:modules--><p><!--# echo var=\"storefront_module_count\" --></p>";
        }

        location = /shell-custom {
            storefront off;
            default_type text/html;
            return 200 "<main><!--MODULES--></main>";
        }

        location /frag/ {
            storefront off;
            proxy_pass http://127.0.0.1:%%PORT2%%;
            proxy_cache frag;
            proxy_cache_key $uri$is_args$args;
            proxy_cache_valid 200 1h;
        }

        location = /frag/closed {
            storefront off;
            proxy_pass http://127.0.0.1:1;
        }

        location /slow/ {
            storefront off;
            proxy_pass http://127.0.0.1:%%PORT3%%/;
            proxy_read_timeout 20s;
        }
    }

    server {
        listen 127.0.0.1:%%PORT2%%;
        server_name backend;
        access_log %%PREFIX%%/backend.log uri;
        default_type text/html;

        location /frag/ {
            return 200 "<div data-m=\"$uri\">$uri?$args cookie=[$http_cookie] uid=[$http_x_storefront_user_id] ae=[$http_accept_encoding]</div>";
        }

        location = /frag/error {
            return 503;
        }

        location = /frag/big {
            root %%PREFIX%%;
            try_files /big.html =404;
        }

        location / {
            default_type text/plain;
            return 200 "layout=$http_x_storefront_layout
modules=$http_x_storefront_modules
uid=$http_x_storefront_user_id
";
        }
    }
}
EOF

mkdir $t->prefix . '/cache';
$t->write_file('big.html', '<div>' . ('0123456789' x 600) . '</div>');
$t->write_config($conf);
my ($tcode, $tout) = $t->nginx_t;
is($tcode, 0, 'nginx -t') or diag($tout);
$t->run;

sub get {
    my ($uri, $user, @h) = @_;
    return $t->get($uri, headers => [ ($user ? ('X-User-Id' => $user) : ()),
        @h ]);
}

sub echo_of {
    my ($r) = @_;
    my %e = map { split /=/, $_, 2 } grep { /=/ } split /\n/, $r->body;
    return \%e;
}

# ---- headers to the upstream, variables ---------------------------------------

my $r = get('/app', 'gold1', 'X-Storefront-Layout' => 'evil',
    'X-Storefront-Modules' => "evil");
my $e = echo_of($r);
is($e->{layout}, 'home-vip', 'upstream: gold tier gets Layout home-vip');
is($e->{modules}, 'perks;guess?organic=5&sponsored=1;exp;footer',
    '... and Modules in order, with parameters');
unlike($r->body, qr/evil/, '... the client\'s own Layout/Modules removed');

$e = echo_of(get('/app?campaign=spring', 'no-profile-1'));
is($e->{layout}, 'home-campaign',
    'a rule on the request\'s "url": home-campaign');
$r = get('/app?campaign=autumn', 'no-profile-1');
isnt(echo_of($r)->{layout}, 'home-campaign', '... not for another campaign');
is($r->header('x-t-cache'), 'HIT', '... a decision from the cache '
    . '(no experiment reads the URL), the rule seeing this URL');

$e = echo_of(get('/app', 'baby1'));
is($e->{layout}, 'home-baby', 'category affinity (baby >= 3): home-baby');
is($e->{modules}, 'baby?category=baby;guess;footer', '... its modules');

$e = echo_of(get('/app', 'runner'));
is($e->{layout}, 'home-run', 'top category running_shoes: home-run');
is($e->{modules}, 'hero;rec?category=socks;rec?category=insoles;footer',
    '... cross-sell: socks and insoles derived from running shoes');

$e = echo_of(get('/app', 'sleepy'));
is($e->{layout}, 'home-winback', 'segment "lost": the win-back layout');

$e = echo_of(get('/app', 'gold2'));
is($e->{layout}, 'home-vip', 'rule order: gold wins for a gold buyer');
$e = echo_of(get('/app', 'gold1'));
is($e->{layout}, 'home-vip', '... also for a gold baby buyer (vip is before '
    . 'baby-fans)');

# visitors without a profile: the layout test decides
my (%arm);
for my $i (1 .. 200) {
    my $v = gb_assign($layout_test, "visitor-$i");
    $arm{$v} //= "visitor-$i";
    last if defined $arm{0} && defined $arm{1};
}
$e = echo_of(get('/app', $arm{1}));
is($e->{layout}, 'home-b', "variation b of layout-test: home-b ($arm{1})");
$r = get('/app', $arm{1});
is(echo_of($r)->{layout}, 'home-b', '... again, from the decision cache')
    and is($r->header('x-t-cache'), 'HIT', '... (a HIT)');
$e = echo_of(get('/app', $arm{0}));
is($e->{layout}, 'home-default', "variation a (no layout): the default "
    . "($arm{0})");

$e = echo_of(get('/cart', 'gold1'));
is($e->{layout}, 'cart', 'storefront_page cart: the cart layout');
$r = get('/typed?type=cart', 'gold1');
is(echo_of($r)->{layout}, 'cart', 'storefront_page $arg_type');
is($r->header('x-t-layout'), 'cart', '... $storefront_layout too');
is(echo_of(get('/typed?type=unknown', 'gold1'))->{layout}, '',
    'an unknown page type: no Layout header');
is(echo_of(get('/typed?type=bad%0d%0aX:1', 'gold1'))->{layout}, '',
    'an invalid page type: no Layout header');
is(echo_of(get('/plain', 'gold1'))->{layout}, '',
    'storefront off: no decision, no header');
$e = echo_of(get('/redir', 'baby1'));
is($e->{layout}, 'home-baby', 'decided in a location named after try_files');
$e = echo_of(get('/redir', 'baby1'));
is($e->{layout}, 'home-baby', '... again, the facts kept from a cached '
    . 'decision');

# ---- the assembled page -----------------------------------------------------------

$r = get('/home', 'gold1', Cookie => 'sid=secret-cookie');
is($r->status, 200, 'assembled page: 200');
is($r->header('x-t-layout'), 'home-vip', '$storefront_layout');
is($r->header('x-t-rule'), 'vip', '$storefront_layout_rule');
is($r->header('x-t-page'), 'home', '$storefront_page');
is($r->header('x-t-modules'), 'perks;guess?organic=5&sponsored=1;exp;footer',
    '$storefront_modules');
is($r->header('x-t-count'), '4', '$storefront_module_count');
is($r->header('x-t-m1'), 'perks', '$storefront_module_1');
is($r->header('x-t-m2'), 'guess?organic=5&sponsored=1',
    '$storefront_module_2: module?params');
is($r->header('x-t-m9'), undef, '$storefront_module_9: not found');
is($r->header('vary'), 'Cookie', 'Vary: Cookie');
is($r->header('cache-control'), 'private, no-store',
    'Cache-Control: private, no-store');
is($r->header('content-type'), 'text/html; charset=utf-8',
    'Content-Type from the shell');
is($r->header('content-length'), length $r->body, 'Content-Length');

my @order = $r->body =~ /data-m="([^"]+)"/g;
is(join(',', @order), '/frag/perks,/frag/guess,/frag/exp,/frag/footer',
    'fragments in layout order');
like($r->body, qr{^<html><body><h1>shop</h1><div data-m="/frag/perks">}s,
    'the shell before the placeholder');
like($r->body, qr{</div></body></html>\n$}, '... and after it');
like($r->body, qr{/frag/perks\?tier=gold }, 'perks varies by tier');
like($r->body, qr{/frag/guess\?organic=5&sponsored=1&segment=champions },
    'guess: parameters and segment');
my $v = gb_assign($layout_test, 'gold1');
like($r->body, qr{/frag/exp\?variants=layout-test%3D@{[ $v ? 'b' : 'a' ]} },
    'exp: the variations, URL-encoded');
like($r->body, qr{cookie=\[\] uid=\[\] ae=\[\]},
    'fragments get no cookie, user id or Accept-Encoding');

my $b1 = get('/home', 'baby1')->body;
is(join(',', $b1 =~ /data-m="([^"]+)"/g),
    '/frag/baby,/frag/guess,/frag/footer', 'another visitor, another page');

# one upstream request per fragment key; never a user id
for my $u (qw(gold1 gold2 gold1 gold2 baby1 runner sleepy), @arm{0, 1}) {
    get('/home', $u);
}
my @fetched = grep { m{^/frag/} } split /\n/, $t->read_file('backend.log');
my %count;
$count{$_}++ for @fetched;
is(scalar(grep { $count{$_} > 1 } keys %count), 0,
    'proxy_cache: the upstream saw each fragment key once ('
    . scalar(keys %count) . ' keys)') or diag(explain \%count);
is(scalar(grep { /gold1|gold2|baby1|runner|sleepy|visitor-/ } @fetched), 0,
    'no fragment URI holds a user id');
ok($count{'/frag/perks?tier=gold'}, 'gold1 and gold2 share the perks '
    . 'fragment (tier=gold)');

# parallel fetch: four fragments of 400 ms each
my $t0 = time;
$r = get('/slow-page', 'gold1');
my $took = time - $t0;
is($r->status, 200, 'slow fragments: 200');
is(join(',', $r->body =~ /<i>(s\d)<\/i>/g), 's1,s2,s3,s4',
    '... in layout order');
cmp_ok($took, '<', 1.2, sprintf('... fetched in parallel (%.2f s for 4 x '
    . '0.4 s)', $took));

# failures: timeout, 503, 404, refused connection, the page itself,
# another assembled page, a fragment too big for the buffer
$t0 = time;
my $c = $t->client;
$r = $c->request('/broken-page', headers => [ 'X-User-Id' => 'gold1' ]);
$took = time - $t0;
is($r->status, 200, 'failing fragments: the page is still 200');
cmp_ok($took, '<', 1.5, sprintf('... sent at the fragment timeout (%.2f s)',
    $took));
my $body = $r->body;
like($body, qr{<div data-m="/frag/hero">}, '... a good fragment is there');
like($body, qr{<p>hang-fallback</p>}, '... timeout: the module\'s fallback');
like($body, qr{<p>error-fallback</p>}, '... 503: the module\'s fallback');
like($body, qr{hang-fallback</p><p>error-fallback</p><p>default-fallback</p>}
    , '... 404: storefront_fragment_fallback, in place');
like($body, qr{<p>refused-fallback</p>}, '... connection refused: fallback');
like($body, qr{<p>self-fallback</p>}, '... the page itself: refused');
like($body, qr{<p>alias-fallback</p>}, '... another assembled page: refused');
like($body, qr{<p>big-fallback</p>}, '... too big for proxy_buffer_size: '
    . 'fallback');
like($body, qr{<div data-m="/frag/footer">}, '... the rest follows');
$t0 = time;
$r = $c->request('/home', headers => [ 'X-User-Id' => 'gold1' ]);
$took = time - $t0;
is($r->status, 200, 'the next request on the same connection');
cmp_ok($took, '<', 0.5, sprintf('... is not held by the hanging fragment '
    . '(%.2f s)', $took));
$c->close;
ok(scalar $t->log_lines(qr/fragment "\/slow\/hang\?" timed out/),
    'the timeout is logged');
ok(scalar $t->log_lines(qr/module "self" would include the page "\/broken-page"/),
    'the self-include is logged');
ok(scalar $t->log_lines(qr/the page "\/home-alias" cannot be included/),
    'the nested page is logged');
$t->allow_log(qr/upstream buffer is too small/);

# gzip, SSI, configured headers
my $plain = get('/home', 'gold1')->body;
$r = get('/home-gz', 'gold1', 'Accept-Encoding' => 'gzip');
is($r->header('content-encoding'), 'gzip', 'gzip on: the page is gzipped');
my $unzipped;
gunzip(\$r->{body} => \$unzipped);
is($unzipped, $plain, '... and holds the same page');
is($r->header('vary') =~ /Cookie/ ? 1 : 0, 1, '... Vary: Cookie kept');

$r = get('/home-ssi', 'gold1');
is($r->status, 200, 'ssi on in the page and the shell');
like($r->body, qr{^<h1>home-vip</h1><div data-m="/frag/perks">.*</div><p>4</p>$}s,
    '... the shell\'s SSI sees the decision; the fragments are in');
unlike($r->body, qr/error occurred/, '... no SSI error');

$r = get('/home-conf', 'gold1');
is($r->header('cache-control'), 'private, max-age=0',
    'storefront_page_cache_control');
is($r->header('vary'), 'Cookie, X-User-Id', 'storefront_page_vary');
like($r->body, qr{^<main><div data-m="/frag/perks">.*</div></main>$}s,
    'placeholder=<!--MODULES-->');
$r = get('/home-off', 'gold1');
ok(!defined $r->header('cache-control') && !defined $r->header('vary'),
    'storefront_page_cache_control off, storefront_page_vary off');

$r = get('/no-shell', 'gold1');
is($r->status, 502, 'a shell that fails: 502');
ok(scalar $t->log_lines(qr/shell "\/nowhere\/shell" failed/),
    '... logged');

$r = $t->get('/home', method => 'HEAD', headers => [ 'X-User-Id' => 'gold1' ]);
is($r->status, 200, 'HEAD: 200');
is($r->body, '', '... no body');
is($r->header('content-length'), length $plain, '... its length');

$r = $t->get('/home', method => 'POST', body => 'x=1',
    headers => [ 'X-User-Id' => 'gold1' ]);
is($r->status, 405, 'POST: 405');

# a reload builds the decision chain again
ok($t->reload, 'reload');
ok($t->reload, 'reload again');
is(get('/home', 'gold1')->body, $plain, 'the same page after two reloads');
is(echo_of(get('/app', 'runner'))->{layout}, 'home-run', '... and headers');

$t->stop;

# ---- the promotion day, with the clock moved --------------------------------

my $lib = Storefront::Test::faketime_lib();

SKIP: {
    skip $Storefront::Test::why, 4 unless $lib;

    {
        local $ENV{LD_PRELOAD} = $lib;
        local $ENV{FAKETIME} = '@2030-11-11 06:00:00';
        local $ENV{TZ} = 'UTC';
        local $ENV{DONT_FAKE_MONOTONIC} = '1';
        $t->run;
    }

    $r = get('/home', 'gold1');
    is($r->header('x-t-layout'), 'home-sale',
        'on 2030-11-11 (+08:00) the promotion-day layout wins');
    is($r->header('x-t-rule'), 'double-11', '... rule double-11');
    like($r->body, qr{^<html><body><h1>shop</h1><div data-m="/frag/sale">},
        '... the sale module first');
    $t->stop;
    ok(1, 'nginx under libfaketime stopped');
}

# ---- configuration errors -----------------------------------------------------------

sub conf_err {
    my ($loc) = @_;
    my ($code, $out) = $t->nginx_t(<<"EOF");
%%TEST_GLOBALS%%
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    storefront_db %%DB%%;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { $loc }
    }
}
EOF
    return $out;
}

like(conf_err('storefront on; storefront_assemble /shell;'),
    qr/"storefront_assemble" requires "storefront_page"/,
    'nginx -t: storefront_assemble without storefront_page');
like(conf_err('storefront_page home; storefront_assemble /shell;'),
    qr/"storefront_assemble" requires "storefront on"/,
    'nginx -t: storefront_assemble without storefront on');
like(conf_err('storefront on; storefront_page "a b";'),
    qr/invalid page type "a b" in "storefront_page" directive/,
    'nginx -t: an invalid page type');
like(conf_err('storefront on; storefront_page home; storefront_assemble '
    . 'shell;'), qr/invalid shell URI "shell"/, 'nginx -t: a shell URI '
    . 'without "/"');
like(conf_err('storefront on; storefront_page home; storefront_assemble '
    . '/shell foo=1;'), qr/invalid parameter "foo=1"/,
    'nginx -t: an unknown parameter');
like(conf_err('storefront_fragment_timeout abc;'),
    qr/"storefront_fragment_timeout" directive invalid value/,
    'nginx -t: a bad timeout');

kill 'TERM', $slow_pid;
waitpid($slow_pid, 0);

done_testing;


sub slow_server {
    my ($port) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => $port, Listen => 128, ReuseAddr => 1)
        or die "listen $port: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid) {
        close $listen;
        return $pid;
    }
    $SIG{TERM} = sub { kill 'TERM', keys %Storefront::Test::slow_kids;
        POSIX::_exit(0) };
    $SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 };
    while (1) {
        my $s = $listen->accept or next;
        my $kid = fork();
        if (!defined $kid) { close $s; next; }
        if ($kid) { $Storefront::Test::slow_kids{$kid} = 1; close $s; next; }
        close $listen;
        my $req = '';
        while ($req !~ /\r\n\r\n/) {
            my $n = sysread($s, $req, 4096, length $req);
            last unless $n;
        }
        my ($path) = $req =~ m{^GET (\S+)};
        $path //= '';
        if ($path =~ m{^/sleep/(\d+)/(\w+)}) {
            sleep($1 / 1000);
            my $body = "<i>$2</i>";
            print $s "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n"
                . "Content-Length: " . length($body) . "\r\n\r\n$body";
        } else {
            sleep 30;    # /hang
        }
        close $s;
        POSIX::_exit(0);
    }
}
