#!/usr/bin/perl
# The decision cache (storefront_decision_cache): a returning visitor's
# second request is answered from the worker's cache (HIT) with exactly
# the headers the first one (MISS) sent upstream, for 200 visitors; a
# different storefront_attribute value, a purchase event posted to the
# admin endpoint, an import by storefrontctl (another process) and the
# end of valid= each give a fresh decision at once, and so does an
# experiment stopped through the admin endpoint; the QA override's
# query string is part of the key, the URL too while an experiment reads
# the attribute "url"; a location with ad slots is answered from the
# cache too, its ads decided on every page view (caps hold, campaigns see
# the page's URL); decisions are counted on every request and exposures
# once per visitor; configuration errors.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Storefront::Test qw(json_encode json_decode);

my $TOKEN = 'cache-test-token-0123456789';
my @AUTH = (Authorization => "Bearer $TOKEN");

my @experiments = (
    { key => 'hero', variations => [ 0, 1 ],
      meta => [ { key => 'old' }, { key => 'new' } ] },
    { key => 'cn-only', variations => [ 'a', 'b' ],
      condition => { country => 'CN' } },
    { key => 'gold-price', variations => [ 'x', 'y' ],
      condition => { tier => 'gold' } },
);

# ads: the top campaign once a day, then the next; a third for sale pages
sub campaign {
    my ($id, $priority, %o) = @_;
    return { id => $id, advertiser => $id, priority => $priority,
        pages => ['home'], slots => ['banner'], %o,
        creatives => [ { id => "$id-1", url => "https://$id.example/" } ] };
}

my $t = Storefront::Test->new;
$t->must_import({ experiments => \@experiments, campaigns => [
    campaign('always', 1), campaign('once', 2, caps => ['1/1d']),
    campaign('sale', 3, condition => { url => { '$regex' => 'sale' } }) ] });

# ---- configuration ----------------------------------------------------------

sub conf_with {
    my ($http) = @_;
    return <<"EOF";
%%TEST_GLOBALS%%
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    storefront_db %%DB%%;
    $http
    server {
        listen 127.0.0.1:%%PORT%%;
        storefront on;
    }
}
EOF
}

for my $case (
    [ 'storefront_decision_cache max=1000 valid=30s;', undef ],
    [ 'storefront_decision_cache max=1000;', undef ],
    [ 'storefront_decision_cache off;', undef ],
    [ 'storefront_decision_cache valid=10s;', qr/needs max=/ ],
    [ 'storefront_decision_cache max=0;', qr/invalid "max=0"/ ],
    [ 'storefront_decision_cache max=10 valid=0s;', qr/invalid "valid=0s"/ ],
    [ 'storefront_decision_cache max=10 size=3;',
      qr/invalid parameter "size=3"/ ],
    [ 'storefront_decision_cache off max=10;', qr/takes no parameter/ ],
    [ "storefront_decision_cache max=10;\n"
      . "    storefront_decision_cache max=20;", qr/is duplicate/ ])
{
    my ($line, $error) = @$case;
    my ($code, $out) = $t->nginx_t(conf_with($line));
    $line =~ s/\n\s*/ /g;
    if ($error) {
        isnt($code, 0, "\"$line\" fails nginx -t");
        like($out, $error, '... saying why');
    } else {
        is($code, 0, "\"$line\" passes nginx -t") or diag($out);
    }
}

# ---- a storefront with the cache ---------------------------------------------

my $hp = 'x_storefront_';
my $echo = <<"EOF";
    server {
        listen 127.0.0.1:%%PORT2%%;
        location / {
            default_type text/plain;
            return 200 "variants=\$http_${hp}variants
segment=\$http_${hp}segment
tier=\$http_${hp}tier
points=\$http_${hp}points
benefits=\$http_${hp}tier_benefits
a_country=\$http_${hp}attr_country
";
        }
    }
EOF

$t->write_config(<<"EOF");
%%TEST_GLOBALS%%
worker_processes 1;
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    storefront_db %%DB%%;
    storefront_decision_cache max=4096 valid=4s;
    storefront_profile_attributes country;
    storefront_stats_flush 100ms;
    storefront_ad_click_key 0123456789abcdef0123456789abcdef;
    storefront_ad_zone ads 1m flush=100ms;

    server {
        listen 127.0.0.1:%%PORT%%;
        storefront on;
        storefront_user_id \$http_x_user_id;
        storefront_attribute country \$http_x_country;

        location / {
            proxy_pass http://127.0.0.1:%%PORT2%%;
            add_header X-T-Cache \$storefront_decision_cache;
            add_header X-T-Variants \$storefront_variants;
        }

        location /qa/ {
            storefront_qa_override on;
            proxy_pass http://127.0.0.1:%%PORT2%%;
            add_header X-T-Cache \$storefront_decision_cache;
        }

        location /ads/ {
            storefront_ad_slots page=home banner;
            proxy_pass http://127.0.0.1:%%PORT2%%;
            add_header X-T-Cache \$storefront_decision_cache;
            add_header X-T-Ads \$storefront_ads;
        }

        location = /metrics { storefront off; storefront_metrics; }

        location /admin/ {
            storefront_admin;
            storefront_admin_token $TOKEN;
        }
    }

$echo
}
EOF
$t->run;

sub visit {
    my ($user, %opt) = @_;
    my @h = defined $user ? ('X-User-Id' => $user) : ();
    push @h, 'X-Country' => $opt{country} if defined $opt{country};
    my $r = $t->get($opt{path} // '/', headers => \@h);
    return ($r, { $r->echo });
}

sub decisions_total {
    my $body = $t->get('/metrics')->body;
    my $n = 0;
    $n += $1 while $body =~
        /^storefront_decisions_total\{experiment="hero",[^}]*\} (\d+)$/mg;
    return $n;
}

sub exposures_total {
    my $body = $t->get('/metrics')->body;
    my $n = 0;
    $n += $1 while $body =~
        /^storefront_exposures_total\{experiment="hero",[^}]*\} (\d+)$/mg;
    return $n;
}

# the same answer from the cache, for many visitors
my ($same, $hits, $misses) = (0, 0, 0);
for my $u (map { "visitor-$_" } 1 .. 200) {
    my ($r1, $e1) = visit($u);
    my ($r2, $e2) = visit($u);
    $misses++ if ($r1->header('x-t-cache') // '') eq 'MISS';
    $hits++ if ($r2->header('x-t-cache') // '') eq 'HIT';
    $same++ if json_encode($e1) eq json_encode($e2)
        && $r1->header('x-t-variants') eq $r2->header('x-t-variants')
        && $e1->{variants} =~ /hero=/;
}
is($misses, 200, 'a first visit is a MISS ($storefront_decision_cache)');
is($hits, 200, 'the second one a HIT');
is($same, 200, 'and the upstream gets the same headers from either');

# decisions are counted on every request, exposures once per visitor
sleep 0.4;
is(decisions_total(), 400, 'decisions counted for hits too: 400');
is(exposures_total(), 200, 'exposures: once per visitor (200)');

# a different attribute is a different question
my ($r, $e) = visit('visitor-1');
($r, $e) = visit('visitor-1', country => 'CN');
is($r->header('x-t-cache'), 'MISS', 'another country: MISS');
like($e->{variants}, qr/cn-only=/, '... and the targeted experiment');
is($e->{a_country}, 'CN', '... the attribute as sent');
($r, $e) = visit('visitor-1', country => 'CN');
is($r->header('x-t-cache'), 'HIT', 'that answer is cached too');
($r, $e) = visit('visitor-1');
is($r->header('x-t-cache'), 'HIT', 'and the one without a country still');
unlike($e->{variants}, qr/cn-only=/, '... without the targeted experiment');

# a purchase posted to the admin endpoint changes the answer at once
($r, $e) = visit('buyer');
($r, $e) = visit('buyer');
is($r->header('x-t-cache'), 'HIT', 'a buyer before the purchase: HIT');
is($e->{tier}, 'regular', '... tier regular');
$r = $t->get('/admin/events', method => 'POST', headers => [ @AUTH ],
    body => json_encode([ { type => 'purchase', user => 'buyer',
        order_id => 'big-1', amount => 100000 } ]));
is($r->status, 200, 'a large purchase posted') or diag($r->body);
($r, $e) = visit('buyer');
is($r->header('x-t-cache'), 'MISS', 'the next request is a MISS');
isnt($e->{tier}, 'regular', "... with the new tier ($e->{tier})");
cmp_ok($e->{points}, '>', 0, "... and the points ($e->{points})");

# the purchase changed the data generation: every entry is renewed
($r, $e) = visit('visitor-2');
is($r->header('x-t-cache'), 'MISS', 'another visitor after the purchase: MISS');

# an import by another process, seen within a few milliseconds
($r, $e) = visit('visitor-2');
is($r->header('x-t-cache'), 'HIT', 'visitor-2 cached again');
$t->must_import({ experiments => [ @experiments,
    { key => 'late', variations => [ 0, 1 ] } ] });
sleep 0.05;
($r, $e) = visit('visitor-2');
is($r->header('x-t-cache'), 'MISS', 'after storefrontctl import: MISS');
like($e->{variants}, qr/late=/, '... with the new experiment');

# an experiment stopped through the admin endpoint, by this worker
($r, $e) = visit('visitor-3');
($r, $e) = visit('visitor-3');
is($r->header('x-t-cache'), 'HIT', 'visitor-3 cached');
like($e->{variants}, qr/hero=/, '... in "hero"');
$r = $t->get('/admin/experiments/hero', method => 'POST', headers => [ @AUTH ],
    body => json_encode({ active => JSON::PP::false() }));
is($r->status, 200, '"hero" stopped through the admin endpoint')
    or diag($r->body);
($r, $e) = visit('visitor-3');
is($r->header('x-t-cache'), 'MISS', 'the next request is a MISS');
unlike($e->{variants}, qr/hero=/, '... and no longer in "hero"');

# state written on the request path keeps the entries
($r, $e) = visit('visitor-2');
sleep 0.3;      # a stats flush commits exposures
($r, $e) = visit('visitor-2');
is($r->header('x-t-cache'), 'HIT', 'a stats flush keeps the entries');

# valid= bounds the age of an answer
sleep 4.1;
($r, $e) = visit('visitor-2');
is($r->header('x-t-cache'), 'MISS', 'after valid=4s: MISS');

# the QA override reads the URL: it is part of the key
my ($plain) = visit('qa-user', path => '/qa/');
my ($forced) = visit('qa-user', path => '/qa/?hero=1');
is($plain->header('x-t-cache'), 'MISS', 'QA location: MISS');
is($forced->header('x-t-cache'), 'MISS', '... another query string: MISS');
my %fv = $forced->echo;
like($fv{variants}, qr/hero=new/, '... and the forced variation');
($forced) = visit('qa-user', path => '/qa/?hero=0');
%fv = $forced->echo;
like($fv{variants}, qr/hero=old/, '... forced the other way too');

# ad slots: the experiments from the cache, the ads decided every time
my @pages;
for my $path ('/ads/', '/ads/', '/ads/sale-shoes', '/ads/') {
    ($r) = visit('ads-user', path => $path);
    my ($ad) = ($r->header('x-t-ads') // '') =~ m{^banner=([^/]+)/};
    push @pages, ($r->header('x-t-cache') // '') . ' ' . ($ad // '-');
}
is($pages[0], 'MISS once',
    'ad slots: a first page view is a MISS, with the top campaign');
is($pages[1], 'HIT always',
    '... the next a HIT, and the top one is capped (1/1d): the next one');
is($pages[2], 'HIT sale', '... a sale page: a HIT whose ads see its URL');
is($pages[3], 'HIT always', '... and back to another page');
sleep 0.4;
my ($rc, $out) = $t->ctl('ads', 'report', '--json');
my %shown = map { $_->{campaign} => $_->{impressions} }
    @{ json_decode($out)->{campaigns} };
is(join(' ', map { "$_=" . ($shown{$_} // 0) } qw(always once sale)),
    'always=2 once=1 sale=1', '... every impression counted');

# the URL is in the key only while an experiment reads it
my ($a1) = visit('url-visitor', path => '/shoes');
my ($a2) = visit('url-visitor', path => '/bags');
is($a2->header('x-t-cache'), 'HIT',
    'no experiment reads "url": another page is a HIT');
$t->must_import({ experiments => [ @experiments,
    { key => 'sale', variations => [ 0, 1 ],
      condition => { url => { '$regex' => '/sale/' } } } ] });
sleep 0.05;
my ($s1, $s1e) = visit('url-visitor', path => '/sale/shoes');
my ($s2, $s2e) = visit('url-visitor', path => '/sale/shoes');
my ($s3, $s3e) = visit('url-visitor', path => '/bags');
is($s1->header('x-t-cache'), 'MISS', 'one does: a sale page is a MISS');
like($s1e->{variants}, qr/sale=/, '... in the URL-targeted experiment');
is($s2->header('x-t-cache'), 'HIT', '... the same page again a HIT');
like($s2e->{variants}, qr/sale=/, '... still in it');
is($s3->header('x-t-cache'), 'MISS', '... another page a MISS');
unlike($s3e->{variants}, qr/sale=/, '... and not in it');

# the results counted for Prometheus
sleep 0.3;
my $metrics = $t->get('/metrics')->body;
my %result = $metrics =~ /^storefront_decision_cache_total\{result="(\w+)"\} (\d+)$/mg;
cmp_ok($result{hit} // 0, '>=', 200, "decision cache hits counted ($result{hit})");
cmp_ok($result{miss} // 0, '>=', 200, "... misses ($result{miss})");
ok(!exists $result{bypass}, '... nothing else');

$t->check_log;
$t->stop;

done_testing;
