#!/usr/bin/perl
# Ad slots at the edge: the page's slot limit is never exceeded (the
# location asks for five, the directive and the data lower it); one
# campaign and one advertiser per page (unless the campaign allows its
# advertiser twice); every frequency cap unit (minute, hour, day, week,
# 30-day month, lifetime) rolls with a moved clock and is not a calendar
# cap (nginx under libfaketime, restarted at each time: the state lives in
# LMDB between runs; with the decision cache, so that a returning
# visitor's ads are decided from a cached decision); cool-down; flight; daypart in the visitor's time
# zone; targeting on the profile and on request attributes; one user from
# many connections over two workers never gets more than the cap;
# impression counters survive a reload and a restart; signed click links
# redirect to the landing URL of the data and count the click, forged or
# tampered ones get 400 and count nothing; bad campaign data is refused
# at import with a clear message; directives fail nginx -t in nginx's
# words.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64);
use POSIX qw(strftime);
use Test::More;
use Time::Local qw(timegm);
use Storefront::Test qw(json_encode json_decode);

my $KEY = 'ads-test-click-key-0123456789';

my $t = Storefront::Test->new;

# ---- the ads commands -----------------------------------------------------------

sub ads_import {
    my ($data) = @_;
    return $t->import_data($data);
}

sub ads_cmd {
    my (@args) = @_;
    return $t->ctl('ads', @args);
}

sub report {
    my ($code, $out, $err) = ads_cmd('report', '--json');
    die "ads report failed ($code): $err" if $code;
    my $r = json_decode($out);
    my %c = map { $_->{campaign} => $_ } @{ $r->{campaigns} };
    return (\%c, $r);
}

# ---- data ------------------------------------------------------------------

sub creative {
    my ($id, %o) = @_;
    return { id => $id, url => $o{url} // "https://$id.example/landing",
        format => $o{format} // 'banner',
        (exists $o{skippable} ? (skippable => $o{skippable}) : ()) };
}

my @campaigns;

# the home page: six advertisers, no caps
for my $i (1 .. 6) {
    push @campaigns, { id => "h$i", advertiser => "adv$i", priority => 1,
        weight => $i, pages => [ 'home', 'product', 'cart', 'adpage' ],
        slots => [ 'banner', 'infeed' ],
        creatives => [ creative("h${i}a"),
            creative("h${i}b", skippable => JSON::PP::false()) ] };
}

# exclusivity: acme three times (once allowing its advertiser twice)
push @campaigns,
    { id => 'ex-a1', advertiser => 'acme', pages => ['excl'],
      creatives => [ creative('xa1') ] },
    { id => 'ex-a2', advertiser => 'acme', pages => ['excl'],
      creatives => [ creative('xa2') ] },
    { id => 'ex-a3', advertiser => 'acme', pages => ['excl'],
      allow_same_advertiser => JSON::PP::true(),
      creatives => [ creative('xa3') ] },
    { id => 'ex-b1', advertiser => 'beta', pages => ['excl'],
      creatives => [ creative('xb1') ] };

# one capped campaign per unit, each on a page of its own
my %UNIT = (minute => 60, hour => 3600, day => 86400, week => 7 * 86400,
    month => 30 * 86400, lifetime => 0);
for my $u (sort keys %UNIT) {
    push @campaigns, { id => "cap-$u", advertiser => "cap-$u",
        pages => [ $u ], caps => [ $u eq 'lifetime' ? '2/lifetime'
            : $u eq 'month' ? '2/1month' : "2/1$u" ],
        creatives => [ creative("cap-$u") ] };
}

push @campaigns,
    { id => 'cool', advertiser => 'cool', pages => ['cool'],
      caps => ['5/1d'], cooldown => '10m', creatives => [ creative('cool') ] },
    { id => 'flight', advertiser => 'flight', pages => ['flight'],
      start => '2027-09-01T00:00:00Z', end => '2027-09-05T00:00:00Z',
      creatives => [ creative('flight') ] },
    { id => 'dayp', advertiser => 'dayp', pages => ['daypart'],
      daypart => { days => ['mon'], hours => [ 9, 13 ] },
      creatives => [ creative('dayp') ] },
    { id => 'baby', advertiser => 'babyco', pages => ['target'],
      condition => { top_category => 'baby' },
      creatives => [ creative('baby') ] },
    { id => 'cn-only', advertiser => 'cnco', pages => ['target2'],
      condition => { country => 'cn' }, creatives => [ creative('cn') ] },
    { id => 'conc', advertiser => 'conc', pages => ['conc'],
      caps => [ '5/1h' ], creatives => [ creative('conc') ] },
    { id => 'conc-many', advertiser => 'conc-many', pages => ['concmany'],
      caps => [ '3/1d' ], creatives => [ creative('concm') ] },
    { id => 'conc-life', advertiser => 'conc-life', pages => ['conclife'],
      caps => [ '400/lifetime' ], creatives => [ creative('concl') ] },
    { id => 'conc-wrk', advertiser => 'conc-wrk', pages => ['concwrk'],
      caps => [ '3000/lifetime' ], creatives => [ creative('concw') ] };

my %DATA = (campaigns => \@campaigns,
    ad_pages => { product => { max_slots => 1 }, cart => { max_slots => 0 },
        home => { max_slots => 5 } });

my ($code, $out, $err) = ads_import(\%DATA);
is($code, 0, 'campaigns imported') or diag($err);

# a page layout with four ad positions (storefrontctl imports layouts)
my ($pc, undef, $perr) = $t->import_data({ pages => {
    modules => {
        hero => { fragment => '/frag/hero' },
        'ad-top' => { fragment => '/frag/ad', ad_slot => 'banner',
            fallback => 'NOAD' },
        'ad-feed' => { fragment => '/frag/ad', ad_slot => 'infeed',
            fallback => 'NOAD' },
        'ad-side' => { fragment => '/frag/ad', ad_slot => 'banner',
            fallback => 'NOAD' },
    },
    layouts => { 'ad-layout' => [ { module => 'hero' },
        { module => 'ad-top' }, { module => 'ad-feed' },
        { module => 'ad-side' }, { module => 'ad-side' } ] },
    pages => { adpage => { default => 'ad-layout' } },
} });
my $PAGES = $pc == 0;
note("page layouts: $perr") unless $PAGES;

$t->must_import({ profiles => [
    { id => 'u-baby', categories => { baby => 7, toys => 1 } },
    { id => 'u-cn', tz_offset => '+08:00' },
] });

# ---- configuration ---------------------------------------------------------

# with the decision cache: a returning visitor's experiments come from it,
# the ads are still decided on every page view
sub config {
    my ($workers, $cache) = @_;
    $cache = $cache ? 'storefront_decision_cache max=1000;' : '';
    return <<"EOF";
%%TEST_GLOBALS%%
env FAKETIME;
env FAKETIME_DONT_FAKE_MONOTONIC;
worker_processes $workers;
events { worker_connections 1024; }
http {
    %%TEST_GLOBALS_HTTP%%
    storefront_db %%DB%%;
    storefront_ad_zone ads 4m flush=200ms;
    storefront_ad_click_key $KEY;
    $cache

    server {
        listen 127.0.0.1:%%PORT%%;
        storefront on;
        storefront_user_id \$http_x_user_id;
        storefront_attribute country \$http_x_country;

        add_header X-T-Ads \$storefront_ads;
        add_header X-T-Count \$storefront_ad_count;
        add_header X-T-Ad1 \$storefront_ad_1;
        add_header X-T-Click1 \$storefront_ad_click_1;
        add_header X-T-Click2 \$storefront_ad_click_2;
        add_header X-T-Worker \$pid;
        add_header X-T-Cache \$storefront_decision_cache;

        location / {
            storefront_ad_slots page=\$arg_page banner infeed banner infeed
                                banner;
            proxy_pass http://127.0.0.1:%%PORT2%%;
        }

        location /three {
            storefront_ad_slots page=\$arg_page banner infeed banner infeed
                                banner;
            storefront_ad_max_slots 3;
            proxy_pass http://127.0.0.1:%%PORT2%%;
        }

        location /one {
            storefront_ad_slots page=\$arg_page banner;
            proxy_pass http://127.0.0.1:%%PORT2%%;
        }

        location /none {
            proxy_pass http://127.0.0.1:%%PORT2%%;
        }

        location = /ad/click {
            storefront_ad_click;
        }

        # the page assembled at the edge: its layout has four ad positions
        location = /assembled {
            storefront_page adpage;
            storefront_assemble /ashell;
        }

        location = /ashell {
            storefront off;
            return 200 "<main><!--storefront:modules--></main>";
        }

        location /frag/ {
            storefront off;
            proxy_pass http://127.0.0.1:%%PORT2%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT2%%;
        location / {
            default_type text/plain;
            return 200 "ads=\$http_x_storefront_ads
";
        }
        location /frag/hero {
            return 200 "[hero]";
        }
        location /frag/ad {
            return 200 "[ad \$args]";
        }
    }
}
EOF
}

# ---- nginx -t ----------------------------------------------------------------

sub conf_with {
    my ($http, $server) = @_;
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
        $server
    }
}
EOF
}

my @bad = (
    [ '', 'location = /c { storefront_ad_click; }',
      qr/"storefront_ad_click" requires "storefront_ad_click_key"/,
      'a click endpoint without a key' ],
    [ 'storefront_ad_click_key short;', '',
      qr/the key in "storefront_ad_click_key" directive must be 16 to 512/,
      'a short click key' ],
    [ '', 'storefront_ad_slots banner;',
      qr/"storefront_ad_slots" requires "storefront_ad_click_key"/,
      'slots without a key to sign the click links' ],
    [ "storefront_ad_click_key $KEY;", 'storefront_ad_slots "bad slot";',
      qr/invalid parameter "bad slot" in "storefront_ad_slots" directive/,
      'a slot name with a space' ],
    [ "storefront_ad_click_key $KEY;", 'storefront_ad_slots page=x;',
      qr/no slots in "storefront_ad_slots" directive/, 'a page and no slot' ],
    [ '', 'storefront_ad_max_slots 9;',
      qr/value must be between 0 and 8/,
      'more than 8 slots' ],
    [ 'storefront_ad_zone ads 10x;', '', qr/invalid zone size "10x"/,
      'a bad zone size' ],
    [ 'storefront_ad_zone ads 1m flush=0;', '',
      qr/invalid flush "0" in "storefront_ad_zone" directive/,
      'a bad flush interval' ],
    [ 'storefront_ad_zone ads 1m bogus;', '',
      qr/invalid parameter "bogus" in "storefront_ad_zone" directive/,
      'an unknown zone parameter' ],
    [ "storefront_ad_click_key $KEY;", 'storefront_ad_click_path ad/click;',
      qr/invalid path "ad\/click" in "storefront_ad_click_path" directive/,
      'a click path that is not absolute' ],
);

for my $b (@bad) {
    my ($c, $o) = $t->nginx_t(conf_with($b->[0], $b->[1]));
    isnt($c, 0, "nginx -t refuses $b->[3]");
    like($o, $b->[2], '... saying why') or diag($o);
}

my ($c, $o) = $t->nginx_t(conf_with("storefront_ad_click_key $KEY; "
    . 'storefront_ad_zone ads 1m flush=500ms sync;',
    'storefront_ad_slots page=home banner infeed; storefront_ad_max_slots 1;'
    . ' location = /c { storefront_ad_click; }'));
is($c, 0, 'a good configuration passes nginx -t') or diag($o);

# ---- helpers -----------------------------------------------------------------

# "slot=campaign/creative/skippable;..." -> [ { slot, campaign, ... } ]
sub parse_ads {
    my ($s) = @_;
    my @ads;
    for my $one (split /;/, $s // '') {
        my ($slot, $rest) = split /=/, $one, 2;
        my ($campaign, $creative, $skip) = split m{/}, $rest // '';
        push @ads, { slot => $slot, campaign => $campaign,
            creative => $creative, skippable => $skip };
    }
    return \@ads;
}

sub page {
    my ($uri, $user, @h) = @_;
    my $r = $t->get($uri, headers => [ 'X-User-Id' => $user, @h ]);
    my ($echo) = $r->body =~ /^ads=(.*)$/m;
    return ($r, parse_ads($echo), $echo);
}

# the campaigns one page view of /one?page=P gets
sub one {
    my ($page, $user, @h) = @_;
    my (undef, $ads) = page("/one?page=$page", $user, @h);
    return join ',', map { $_->{campaign} } @$ads;
}

sub sig {
    my ($campaign, $creative) = @_;
    my $mac = substr(hmac_sha256("$campaign\0$creative", $KEY), 0, 16);
    my $b = encode_base64($mac, '');
    $b =~ tr{+/}{-_};
    $b =~ s/=+$//;
    return $b;
}

# ---- time: every cap unit rolls, cool-down, flight, daypart ------------------

my $lib = Storefront::Test::faketime_lib();

my %served;     # impressions seen in responses, by campaign

SKIP: {
    skip $Storefront::Test::why, 61
        unless $lib;

    $t->write_config(config(1, 'cache'));

    # Sunday 2026-05-31 23:59:30 UTC: 42 seconds later is a new minute,
    # hour, day, ISO week and month, where calendar caps would reset.
    my $T0 = timegm(30, 59, 23, 31, 4, 2026);

    my $at = sub {
        my ($when) = @_;
        $t->stop if $t->pid;
        local $ENV{LD_PRELOAD} = $lib;
        local $ENV{FAKETIME} = strftime('@%Y-%m-%d %H:%M:%S', gmtime $when);
        local $ENV{FAKETIME_DONT_FAKE_MONOTONIC} = 1;
        $t->run;
    };

    $at->($T0);

    my $r = $t->get('/none', headers => [ 'X-User-Id' => 'x' ]);
    my $date = $r->header('Date') // '';
    my $want = strftime('%a, %d %b %Y', gmtime $T0);
    if ($date !~ /^\Q$want\E/) {
        $t->stop;
        skip "nginx does not run under libfaketime (Date: $date)", 61;
    }
    pass("nginx runs at " . strftime('%Y-%m-%d %H:%M:%S', gmtime $T0));

    # each unit: 2 served, then capped
    for my $u (sort keys %UNIT) {
        my @got = map { one($u, 'u-cap') } 1 .. 3;
        is(join('|', @got), "cap-$u|cap-$u|", "$u cap 2: two pages show it, "
            . 'the third does not');
    }
    my ($hit) = page('/one?page=minute', 'u-cap');
    is($hit->header('X-T-Cache'), 'HIT',
        'these page views were decided from the decision cache')
        or diag(join ' ', map { ($_ // '?') } $hit->header('X-T-Cache'), $hit->status);

    is(one('cool', 'u-cap'), 'cool', 'cool-down: shown once');
    is(one('cool', 'u-cap'), '', '... not again at once');

    my @steps = (
        [ 42, 'a new minute, hour, day, week and month', {
            map { $_ => 0 } keys %UNIT }, 0 ],
        [ 65, '65 s later', { minute => 2 }, 0 ],
        [ 590, '9 min 50 s later', {}, 0 ],
        [ 605, '10 min 5 s later', {}, 1 ],
        [ 3590, '59 min 50 s later', { hour => 0 } ],
        [ 3605, '1 h 5 s later', { hour => 2 } ],
        [ 86390, '23:59:50 later', { day => 0 } ],
        [ 86405, '1 day 5 s later', { day => 2 } ],
        [ 7 * 86400 - 10, '7 days less 10 s later', { week => 0 } ],
        [ 7 * 86400 + 5, '7 days 5 s later', { week => 2 } ],
        [ 30 * 86400 - 10, '30 days less 10 s later', { month => 0 } ],
        [ 30 * 86400 + 5, '30 days 5 s later', { month => 2 } ],
        [ 400 * 86400, '400 days later', { lifetime => 0, minute => 2 } ],
    );

    for my $s (@steps) {
        my ($dt, $label, $expect, $cool) = @$s;
        $at->($T0 + $dt);
        for my $u (sort keys %$expect) {
            my $n = $expect->{$u};
            my @got = map { one($u, 'u-cap') } 1 .. $n + 1;
            is(join('|', @got), join('|', ("cap-$u") x $n, ''),
                "$label: $u cap " . ($n ? "rolled, $n more then capped"
                : $u eq 'lifetime' ? 'still holds'
                : 'still holds (rolling, not calendar)'));
        }
        if (defined $cool) {
            is(one('cool', 'u-cap'), $cool ? 'cool' : '',
                "$label: cool-down " . ($cool ? 'over' : 'still holds'));
        }
    }

    # flight: 2027-09-01 .. 2027-09-05
    my @flight = (
        [ timegm(0, 0, 12, 31, 7, 2027), '', 'before its start' ],
        [ timegm(0, 0, 12, 2, 8, 2027), 'flight', 'in flight' ],
        [ timegm(5, 0, 0, 5, 8, 2027), '', 'after its end' ],
    );
    for my $f (@flight) {
        $at->($f->[0]);
        is(one('flight', 'u-f'), $f->[1], "flight: $f->[2]");
    }

    # daypart: Mondays 09:00-13:00 in the visitor's time zone
    my $monday = timegm(0, 0, 0, 6, 8, 2027);
    $monday += 86400 until (gmtime $monday)[6] == 1;
    $at->($monday + 2 * 3600);
    is(one('daypart', 'u-cn'), 'dayp',
        'daypart: 02:00 UTC is 10:00 in +08:00: shown');
    is(one('daypart', 'u-utc'), '', '... not to a visitor in UTC');
    $at->($monday + 12 * 3600);
    is(one('daypart', 'u-utc'), 'dayp', 'daypart: 12:00 UTC: shown in UTC');
    is(one('daypart', 'u-cn'), '', '... not at 20:00 in +08:00');
    $at->($monday + 14 * 3600);
    is(one('daypart', 'u-utc'), '', 'daypart: 14:00 UTC: over');

    $t->stop;
}

# ---- the page: slot limit, exclusivity, targeting, headers ------------------

$t->write_config(config(2));
$t->run(workers => 2);

my ($max, $limits, $excl, $spoofed) = (0, '', 1, 0);
for my $i (1 .. 40) {
    my ($r, $ads, $echo) = page('/?page=home', "u-home-$i",
        'X-Storefront-Ads' => 'banner=evil/evil/skippable');
    $spoofed++ if ($echo // '') =~ /evil/;
    $max = @$ads if @$ads > $max;
    $served{ $_->{campaign} }++ for @$ads;
    my %adv;
    $adv{ $_->{campaign} =~ s/^h/adv/r }++ for @$ads;
    $excl = 0 if grep { $_ > 1 } values %adv;
    $limits .= scalar(@$ads);
    is($r->header('X-T-Count'), scalar(@$ads), '$storefront_ad_count')
        if $i == 1;
    is($r->header('X-T-Ads'), $echo, '$storefront_ads is the header value')
        if $i == 1;
}
is($max, 2, 'five slots asked, storefront_ad_max_slots 2 (default): at most '
    . '2 ads, 40 pages');
is($limits, '2' x 40, '... and every page filled its 2');
ok($excl, '... never the same campaign or advertiser twice on a page');
is($spoofed, 0, 'an Ads header sent by the client never reaches the '
    . 'upstream');

# the number of ads of a page, counting what is served
sub nads {
    my ($uri, $user) = @_;
    my (undef, $x) = page($uri, $user);
    $served{ $_->{campaign} }++ for @$x;
    return scalar @$x;
}

my @three = map { nads('/three?page=home', "u-3-$_") } 1 .. 20;
is(join('', @three), '3' x 20, 'storefront_ad_max_slots 3: 3 ads a page');
my @product = map { nads('/three?page=product', "u-p-$_") } 1 .. 20;
is(join('', @product), '1' x 20, 'the data lowers "product" to 1 ad');
my @cart = map { nads('/?page=cart', "u-c-$_") } 1 .. 10;
is(join('', @cart), '0' x 10, 'and "cart" to none');

# one slot filled per position, skippable flags from the data
my ($r, $ads) = page('/?page=home', 'u-flags');
is(scalar @$ads, 2, 'two ads');
is($ads->[0]{slot}, 'banner', '... the first in the first slot (banner)');
is($ads->[1]{slot}, 'infeed', '... the second in the second (infeed)');
for my $a (@$ads) {
    my $want = $a->{creative} =~ /b$/ ? 'unskippable' : 'skippable';
    is($a->{skippable}, $want, "$a->{creative} is $want, as in the data");
}
$served{ $_->{campaign} }++ for @$ads;
is($r->header('X-T-Ad1'), "$ads->[0]{campaign}/$ads->[0]{creative}",
    '$storefront_ad_1 is campaign/creative');

my $click = $r->header('X-T-Click1') // '';
is($click, "/ad/click?c=$ads->[0]{campaign}&cr=$ads->[0]{creative}&s="
    . sig($ads->[0]{campaign}, $ads->[0]{creative}),
    '$storefront_ad_click_1: the signed click link');

# exclusivity with an advertiser that may appear twice
my ($pairs_ok, $a3_with_acme) = (1, 0);
for my $i (1 .. 60) {
    my (undef, $x) = page('/three?page=excl', "u-ex-$i");
    my %seen;
    my %adv = (acme => 0, beta => 0);
    for (@$x) {
        $pairs_ok = 0 if $seen{ $_->{campaign} }++;
        $adv{ $_->{campaign} =~ /^ex-a/ ? 'acme' : 'beta' }++;
    }
    my @acme = grep { $_->{campaign} =~ /^ex-a/ } @$x;
    if (@acme > 1) {
        $pairs_ok = 0 unless grep { $_->{campaign} eq 'ex-a3' } @acme;
        $pairs_ok = 0 if @acme > 2;
        $a3_with_acme++;
    }
    $served{ $_->{campaign} }++ for @$x;
}
ok($pairs_ok, 'excl: a campaign once a page; acme twice only with the '
    . 'campaign that allows it');
ok($a3_with_acme > 0, "... which happened on $a3_with_acme of 60 pages");

# targeting: a profile's top category, a request attribute
is(one('target', 'u-baby'), 'baby', 'targeting: a baby-products buyer sees '
    . 'the baby campaign');
is(one('target', 'u-other'), '', '... another visitor does not');
is(one('target2', 'u-any', 'X-Country' => 'cn'), 'cn-only',
    'targeting: the request attribute country=cn');
is(one('target2', 'u-any', 'X-Country' => 'us'), '', '... not country=us');
$served{$_}++ for qw(baby cn-only);

# no slots: no ads, no header
($r, $ads) = page('/none', 'u-none');
is(scalar @$ads, 0, 'a location without slots has no ads');
is($r->header('X-T-Count'), '0', '... $storefront_ad_count is 0');
is($r->header('X-T-Ads'), undef, '... and $storefront_ads is empty');

# ---- the page assembled at the edge: its ad positions ------------------------

SKIP: {
    skip 'storefrontctl cannot import page layouts', 5 unless $PAGES;

    my $n = 0;
    my ($ok_limit, $ok_fallback, $ok_sig, $ok_excl) = (1, 1, 1, 1);
    for my $i (1 .. 20) {
        my $r = $t->get('/assembled', headers => [ 'X-User-Id' => "u-asm-$i" ]);
        my @parts = $r->body =~ /\[(hero|ad [^\]]*)\]|(NOAD)/g;
        my @pos = grep { defined } @parts;
        $n++ if $r->status == 200 && $pos[0] eq 'hero';
        my @ads = grep { /^ad / } @pos;
        my $noad = grep { $_ eq 'NOAD' } @pos;
        $ok_limit = 0 unless @ads == 2;
        $ok_fallback = 0 unless $noad == 2;
        my %adv;
        for my $a (@ads) {
            my %q = map { split /=/, $_, 2 } split /&/, substr($a, 3);
            (my $link = $q{ad_click} // '') =~ s/%([0-9A-F]{2})/chr hex $1/ge;
            $ok_sig = 0 unless $link eq "/ad/click?c=$q{ad_campaign}"
                . "&cr=$q{ad_creative}&s=" . sig($q{ad_campaign},
                $q{ad_creative});
            $ok_excl = 0 if $adv{ $q{ad_advertiser} }++;
            $served{ $q{ad_campaign} }++;
        }
    }
    is($n, 20, 'an assembled page with four ad positions, 20 visitors');
    ok($ok_limit, '... two positions filled (the slot limit), never more');
    ok($ok_fallback, '... the other two get their fallback');
    ok($ok_sig, '... each ad fragment gets its campaign, creative and the '
        . 'signed click link as query arguments');
    ok($ok_excl, '... never one advertiser twice');
}

# ---- concurrency: one user, many connections, two workers ------------------

sub hammer {
    my ($uri, $users, $conns, $each) = @_;
    my @kids;
    for my $k (1 .. $conns) {
        my $file = $t->prefix . "/hammer-$k";
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            my $cl = $t->client;
            my ($n, %pids, %by) = (0);
            for my $i (1 .. $each) {
                my $u = $users->[ ($k + $i) % @$users ];
                my $res = $cl->request($uri,
                    headers => [ 'X-User-Id' => $u ]);
                my ($e) = $res->body =~ /^ads=(.*)$/m;
                my $got = scalar @{ parse_ads($e) };
                $by{$u} += $got;
                $pids{ $res->header('X-T-Worker') // '' } = 1;
            }
            open my $fh, '>', $file or POSIX::_exit(1);
            print $fh join(',', map { "$_=$by{$_}" } sort keys %by), "\n",
                join(',', sort keys %pids), "\n";
            close $fh;
            POSIX::_exit(0);
        }
        push @kids, [ $pid, $file ];
    }
    my (%by, %pids);
    for my $kid (@kids) {
        waitpid($kid->[0], 0);
        my $text = $t->read_file($kid->[1]) // '';
        my ($counts, $p) = split /\n/, $text;
        for (split /,/, $counts // '') {
            my ($u, $n) = split /=/;
            $by{$u} += $n;
        }
        $pids{$_} = 1 for split /,/, $p // '';
    }
    return (\%by, scalar keys %pids);
}

my ($by, $workers) = hammer('/one?page=conc', ['u-conc'], 24, 10);
is($by->{'u-conc'}, 5, 'one user from 24 connections, 240 pages at once: '
    . 'exactly 5 impressions (cap 5/1h), never more');
is($workers, 2, '... served by both workers');

# many impressions to spend: many chances for two workers to race
($by, $workers) = hammer('/one?page=conclife', ['u-life'], 24, 40);
is($by->{'u-life'}, 400, 'one user, 960 pages from 24 connections: exactly '
    . '400 impressions (cap 400/lifetime)');
is($workers, 2, '... served by both workers');

# and at full speed: wrk, 64 connections, 2 seconds, one user; what was
# served is what the counters say once written
my $wrk = (grep { -x "$_/wrk" } split /:/, $ENV{PATH})[0];
my $wrk_requests = 0;
SKIP: {
    skip 'wrk is not installed', 1 unless $wrk;
    my ($wc, $wout) = Storefront::Test::run_cmd("$wrk/wrk", '-t2', '-c64',
        '-d2s', '-H', 'X-User-Id: u-wrk',
        'http://127.0.0.1:' . $t->port . '/one?page=concwrk');
    ($wrk_requests) = $wout =~ /(\d+) requests in /;
    $wrk_requests //= 0;
    note("wrk: $wrk_requests requests for u-wrk in 2 s");
    $served{'conc-wrk'} = 3000 if $wrk_requests > 3000;
}

my @many = map { "u-many-$_" } 1 .. 12;
($by) = hammer('/one?page=concmany', \@many, 16, 15);
is(join(',', map { $by->{$_} // 0 } @many), join(',', (3) x 12),
    '12 users over 16 connections: each exactly 3 (cap 3/1d)');
$served{conc} += 5;
$served{'conc-many'} += 36;
$served{'conc-life'} += 400;

# ---- counters survive a reload and a restart --------------------------------

ok($t->reload(workers => 2), 'reload');
for my $i (1 .. 10) {
    my (undef, $x) = page('/?page=home', "u-reload-$i");
    $served{ $_->{campaign} }++ for @$x;
}
is(one('conc', 'u-conc'), '', 'after the reload u-conc is still capped');
$t->stop;

my ($rep) = report();
SKIP: {
    skip 'wrk did not send enough requests', 1 unless $wrk_requests > 3000;
    is($rep->{'conc-wrk'}{impressions}, 3000, "$wrk_requests pages for one "
        . 'user at full speed: exactly 3000 impressions (cap '
        . '3000/lifetime)');
}
my @home = grep { /^(h\d|ex-|conc|baby|cn-only)/ } sort keys %served;
is(join(',', map { $rep->{$_}{impressions} // 0 } @home),
    join(',', map { $served{$_} } @home),
    'after the reload and the stop, every impression served is counted');

$t->run(workers => 2);
is(one('conc', 'u-conc'), '', 'after a restart u-conc is still capped');
for my $i (1 .. 6) {
    my (undef, $x) = page('/?page=home', "u-restart-$i");
    $served{ $_->{campaign} }++ for @$x;
}

# ---- clicks ------------------------------------------------------------------

my ($camp, $cr) = $click =~ /c=([^&]+)&cr=([^&]+)/;
my $clicks0 = $rep->{$camp}{clicks} // 0;

$r = $t->get($click);
is($r->status, 302, 'a signed click link redirects');
my ($landing) = grep { $_->{id} eq $camp } @campaigns;
($landing) = grep { $_->{id} eq $cr } @{ $landing->{creatives} };
is($r->header('Location'), $landing->{url},
    '... to the landing URL of the data');
is($r->header('Cache-Control'), 'no-store', '... not cached');
is($r->header('Set-Cookie'), undef, '... and mints no cookie');

$r = $t->get("$click&url=https://evil.example/");
is($r->header('Location'), $landing->{url},
    'a "url" argument added to the link changes nothing');

my $other = $cr =~ /a$/ ? ($cr =~ s/a$/b/r) : ($cr =~ s/b$/a/r);
my $s = sig($camp, $cr);
my $s2 = $s;
substr($s2, 5, 1) = substr($s2, 5, 1) eq 'A' ? 'B' : 'A';
my @forged = (
    [ "/ad/click?c=$camp&cr=$other&s=$s", 'another creative, same signature' ],
    [ "/ad/click?c=$camp&cr=$cr&s=$s2", 'a changed signature' ],
    [ "/ad/click?c=$camp&cr=$cr", 'no signature' ],
    [ "/ad/click?c=$camp&cr=$cr&s=" . substr($s, 0, 21), 'a short signature' ],
    [ "/ad/click?c=$camp&c=h1&cr=$cr&s=$s", 'the campaign twice' ],
    [ "/ad/click?c=nope&cr=x1&s=" . sig('nope', 'x1'),
      'a signed link to an unknown campaign' ],
);
for my $f (@forged) {
    $r = $t->get($f->[0]);
    is($r->status, 400, "$f->[1]: 400");
    like($r->body, qr/"error"/, '... with a JSON error');
    is($r->header('Location'), undef, '... and no redirect');
}
$r = $t->get("/ad/click?c=$camp&cr=$cr&s=$s", method => 'POST');
is($r->status, 405, 'POST to the click endpoint: 405');

$t->stop;

($rep) = report();
is($rep->{$camp}{clicks}, $clicks0 + 2,
    'two valid clicks counted, forged ones not');
is(join(',', map { $rep->{$_}{impressions} // 0 } @home),
    join(',', map { $served{$_} } @home),
    'impressions after the restart: still every one');

my (undef, $full) = report();
my ($crow) = grep { $_->{campaign} eq $camp && $_->{creative} eq $cr }
    @{ $full->{creatives} };
ok($crow && $crow->{clicks} == 2, 'the creative has the clicks');
ok(defined $full->{total}{ctr} && $full->{total}{clicks} >= 2,
    'totals with a click-through rate');
my $cp = $rep->{$camp};
is(sprintf('%.6f', $cp->{ctr}),
    sprintf('%.6f', $cp->{clicks} / $cp->{impressions}), 'CTR = clicks / '
    . 'impressions');

($code, $out) = ads_cmd('report');
is($code, 0, 'ads report (text)');
like($out, qr/^CAMPAIGN\s+ADVERTISER\s+IMPRESSIONS\s+CLICKS\s+CTR/m,
    '... a table of campaigns');
like($out, qr/^total: \d+ impressions, \d+ clicks, CTR/m, '... and a total');

# ---- explain -------------------------------------------------------------------

($code, $out, $err) = ads_cmd('explain', '--user', 'u-explain', '--page',
    'home', '--slots', 'banner,infeed,banner', '--json');
is($code, 0, 'ads explain') or diag($err);
my $x = eval { json_decode($out) } // {};
is(scalar @{ $x->{ads} // [] }, 2, '... 2 ads for 3 slots (limit 2)');
is($x->{skipped}{page}, scalar(@campaigns) - 6,
    '... every campaign not for "home" skipped as "page"');
($code, $out) = ads_cmd('explain', '--user', 'u-conc', '--page', 'conc',
    '--slots', 'banner');
like($out, qr/campaigns skipped:.*cap 1/, 'explain: u-conc is capped');
($code, undef, $err) = ads_cmd('explain', '--page', 'home');
is($code, 2, 'explain without --user: usage error');

# ---- bad campaign data -------------------------------------------------------

my ($c0, $before) = $t->ctl('export');
my @bad_data = (
    [ { id => 'b1', advertiser => 'x', caps => ['3/1x'],
        creatives => [ creative('b') ] },
      qr/campaign "b1": invalid cap \(use "3\/1d"/, 'a cap in an unknown unit' ],
    [ { id => 'b2', creatives => [ creative('b') ] },
      qr/campaign "b2": "advertiser" must be a name/, 'no advertiser' ],
    [ { id => 'b3', advertiser => 'x',
        creatives => [ { id => 'c', url => 'javascript:alert(1)' } ] },
      qr/campaign "b3": creative 0: "url" must be an http\(s\) URL/,
      'a javascript: landing URL' ],
    [ { id => 'b4', advertiser => 'x', creatives => [] },
      qr/campaign "b4": "creatives" must be 1 to 64/, 'no creatives' ],
    [ { id => 'bad id', advertiser => 'x', creatives => [ creative('b') ] },
      qr/"id" must be 1 to 64 letters/, 'an id with a space' ],
    [ { id => 'b6', advertiser => 'x', daypart => { hours => [ 25, 3 ] },
        creatives => [ creative('b') ] },
      qr/campaign "b6": "daypart" must be/, 'an hour 25' ],
);
for my $b (@bad_data) {
    ($code, $out, $err) = ads_import({ campaigns => [ @campaigns, $b->[0] ] });
    isnt($code, 0, "import refuses $b->[2]");
    like($err, $b->[1], '... with a clear message') or diag($err);
}
($code, $out, $err) = ads_import({ campaigns => [ @campaigns, $campaigns[0] ] });
like($err, qr/campaign "h1" appears twice/, 'a duplicate id is refused');
($code, $out, $err) = ads_import({ campaigns => \@campaigns,
    ad_pages => { home => { max_slots => 9 } } });
like($err, qr/ad page "home": "max_slots" must be 0 to 8/,
    'a page limit above 8 is refused');
my (undef, $after) = $t->ctl('export');
is($after, $before, '... and nothing was written');

done_testing;
