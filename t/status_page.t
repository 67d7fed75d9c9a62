#!/usr/bin/perl
# The status page (storefront_status_page) in a real browser: headless
# Chromium loads it, saves a screenshot (build/status_page.png, its path
# is printed) and dumps the DOM, which must hold one article per
# experiment with a row and a confidence-interval bar per variation, the
# sample ratio mismatch warning on the skewed experiment only, the ramp
# state, the counters, and the names as text (no markup injected).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;
use Time::HiRes qw(sleep time);
use Storefront::Test qw(gb_assign json_encode json_decode repo_path);

my ($chromium) = grep { -x } map { "$_/chromium" } split /:/, $ENV{PATH};
plan skip_all => 'chromium is not installed (scripts/build.sh installs it)'
    unless $chromium;

my $TOKEN = 'status-token-0123456789abc';
my $XSS = '<script>alert(1)</script><img src=x onerror=alert(2)> & "q"';

my $checkout = { key => 'checkout', name => $XSS, variations => [ 0, 1 ],
    meta => [ { key => 'blue', name => 'Blue <b>button</b>' },
              { key => 'green' } ] };
my $skewed = { key => 'skewed', variations => [ 0, 1 ],
    hashAttribute => 'country' };
my $rollout = { key => 'rollout', variations => [ 0, 1, 2 ],
    coverage => 0.1 };

my $t = Storefront::Test->new;
$t->must_import({ experiments => [ $checkout, $skewed, $rollout ] });
$t->write_config($t->std_config(http => 'storefront_stats_flush 50ms;',
    server => <<"EOF"));
        storefront_attribute country \$http_x_country;
        storefront_admin_token $TOKEN;
        location = /status { storefront off; storefront_status_page; }
        location = /stats { storefront off; storefront_stats_api; }
        location /admin/ { storefront_admin; }
EOF
$t->run;

# 300 visitors: the country decides "skewed", 3 in 4 from one country
my ($c0, $c1);
for my $i (1 .. 1000) {
    my $arm = gb_assign($skewed, "c$i");
    $c0 //= "c$i" if $arm == 0;
    $c1 //= "c$i" if $arm == 1;
}
my @users = map { "p-$_" } 1 .. 300;
my $n = 0;
for my $u (@users) {
    $t->get('/', headers => [ 'X-User-Id' => $u,
        'X-Country' => $n++ % 4 ? $c0 : $c1 ]);
}
my @buy = map { { type => 'purchase', user => $users[$_],
    order_id => "o$_", amount => 20 + $_ } } 0 .. 59;
sleep 0.3;
my $r = $t->get('/admin/events', method => 'POST',
    headers => [ Authorization => "Bearer $TOKEN" ], body => json_encode(\@buy));
is($r->status, 200, 'purchases') or diag($r->body);

my $stats = json_decode($t->get('/stats')->body);
my %exp = map { $_->{key} => $_ } @{ $stats->{experiments} };
is($exp{checkout}{users}, 300, 'the stats see 300 users');

$r = $t->get('/status');
is($r->status, 200, 'GET /status');
like($r->header('content-type'), qr{^text/html; charset=utf-8}, 'HTML');
like($r->header('content-security-policy') // '', qr/default-src 'none'/,
    'a Content-Security-Policy that allows no external or script content');
unlike($r->body, qr/<(?:link|script|img|iframe|object|embed)\b|url\(/i,
    'no external assets and no script in the page');

# ---- the browser --------------------------------------------------------------

my $profile = tempdir('sft-chromium-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $dir = repo_path('build');
$dir = $t->prefix unless -d $dir && -w $dir;
my $shot = "$dir/status_page.png";
unlink $shot;
my $url = 'http://127.0.0.1:' . $t->port . '/status';
my @chrome = ('timeout', '90', $chromium, '--headless', '--no-sandbox',
    '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update',
    '--disable-sync', "--user-data-dir=$profile");

my ($code, $out, $err) = Storefront::Test::run_cmd(@chrome,
    "--screenshot=$shot", '--window-size=1280,900', $url);
ok($code == 0 && -s $shot, 'chromium saved a screenshot') or diag($err);
diag("status page screenshot: $shot");
open my $png, '<:raw', $shot;
my $magic = '';
read($png, $magic, 8) if $png;
is($magic, "\x89PNG\r\n\x1a\n", '... a PNG');

($code, my $dom, $err) = Storefront::Test::run_cmd(@chrome, '--dump-dom',
    $url);
is($code, 0, 'chromium dumped the DOM') or diag($err);

# the articles, each with its own rows
my %article;
while ($dom =~ m{<article class="experiment" id="exp-\d+" data-key="([^"]*)"[^>]*>(.*?)</article>}gs)
{
    $article{$1} = $2;
}
is_deeply([ sort keys %article ], [ qw(checkout rollout skewed) ],
    'one article per experiment');

for my $key (sort keys %article) {
    my $e = $exp{$key};
    my $html = $article{$key};
    my $arms = () = $html =~ /<tr class="arm\b/g;
    my $rate = () = $html =~ /<svg class="ci ci-rate"/g;
    my $diff = () = $html =~ /<svg class="ci ci-diff"/g;
    my $want_diff = grep { $_->{index} > 0 && $_->{users} > 0 }
        @{ $e->{variations} };
    $want_diff = 0 unless $e->{variations}[0]{users};
    is($arms, scalar @{ $e->{variations} }, "$key: a row per variation");
    is($rate, $arms, "$key: a conversion-rate CI bar per variation");
    is($diff, $want_diff, "$key: a difference CI bar per treatment with "
        . 'users');
    my @users = $html =~ m{<td class="users">(\d+)</td>}g;
    is_deeply(\@users, [ map { $_->{users} } @{ $e->{variations} } ],
        "$key: users per variation as the stats say");
    like($html, qr{<dd class="users">$e->{users}</dd>}, "$key: total users");
}

my @alarms = $dom =~ /<div class="srm-alarm"/g;
is(scalar @alarms, 1, 'one sample ratio mismatch warning');
like($article{skewed}, qr/<div class="srm-alarm" role="alert">/,
    '... on the skewed experiment');
ok($exp{skewed}{srm}{alarm} && !$exp{checkout}{srm}{alarm},
    '... as the stats say');
like($article{rollout}, qr{<dd class="coverage">10\.00%</dd>},
    'ramp state: coverage 10%');
like($article{rollout}, qr{<dd class="weights">33\.33% / 33\.33% / 33\.33%</dd>},
    'ramp state: weights');
like($article{rollout}, qr{<dd class="bucket-version">0</dd>},
    'ramp state: bucket version');
like($article{checkout}, qr/not-enough-data/, '"not enough data" shown');
like($dom, qr{<td id="requests-decided">300</td>}, 'counters: 300 decided');
like($dom, qr{<td id="push-allow">0</td>}, 'counters: push decisions');

# names are text: the markup in them is shown, not run
unlike($dom, qr/<script/i, 'no script element');
unlike($dom, qr/<img/i, 'no injected image element');
unlike($dom, qr/<b>button/, 'no injected bold element');
like($article{checkout}, qr{&lt;script&gt;alert\(1\)&lt;/script&gt;&lt;img src=x},
    'the name is shown as text');

$t->stop;
done_testing;
