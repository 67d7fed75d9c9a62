#!/usr/bin/perl
# The demo (conf/demo) works: its data imports, its nginx.conf passes
# nginx -t and serves the page with the variations of each visitor, and the
# "10% of users" rollout reaches about 10% of them.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Storefront::Test qw(gb_assign json_decode repo_path);

my $t = Storefront::Test->new;

my ($code, $out, $err) = $t->ctl('import', repo_path('conf/demo/data.json'));
is($code, 0, 'demo data imports') or diag($err);

my $data = do {
    open my $fh, '<:raw', repo_path('conf/demo/data.json') or die $!;
    local $/;
    json_decode(scalar <$fh>);
};
my %exp = map { $_->{key} => $_ } @{ $data->{experiments} };
is_deeply([ sort keys %exp ], [ qw(buy-button-color home-hero new-checkout) ],
    'three demo experiments');

# The same substitutions as scripts/demo.sh, on the test's prefix and ports.
my $conf = $t->read_file(repo_path('conf/demo/nginx.conf'));
my $p = $t->prefix;
mkdir "$p/$_" for qw(logs temp);
$conf =~ s/\@PREFIX\@\/logs\/error\.log/$p\/error.log/g;
my %sub = (
    MODULE => $t->module, PREFIX => $p, HTML => repo_path('conf/demo/html'),
    PORT => $t->port(1), UPSTREAM_PORT => $t->port(2),
    USER => $> == 0 ? 'user root;' : '',
);
$conf =~ s/\@(\w+)\@/$sub{$1} \/\/ die "unknown placeholder $1"/ge;
$t->write_file('nginx.conf', $conf);

($code, $out) = $t->nginx_t;
is($code, 0, 'demo nginx.conf: nginx -t') or diag($out);
$t->run(workers => 2);

my $r = $t->get('/');
is($r->status, 200, 'page served');
like(($r->headers('set-cookie'))[0] // '', qr/^sf_anon=[0-9a-f]{32};/,
    'anonymous visitor gets sf_anon');
unlike($r->body, qr/error occurred/, 'no SSI errors in the page');
like($r->body, qr/X-Storefront-Variants<\/th>\s*<td>[^<]*home-hero=/,
    'the page shows the Variants header it received');

# The page follows each visitor's variations.
my ($hero_ok, $button_ok, $n, %count) = (0, 0, 0);
for my $i (1 .. 300) {
    my $uid = "shopper-$i";
    my $d = $t->get('/decisions', headers => [ Cookie => "uid=$uid" ]);
    my %e = $d->echo;
    my %v = map { split /=/, $_, 2 } split /;/, $e{variants} // '';
    $count{$_}{ $v{$_} // 'none' }++ for keys %exp;
    next unless $i <= 20;
    $n++;
    my $page = $t->get('/', headers => [ Cookie => "uid=$uid" ])->body;
    my $h = gb_assign($exp{'home-hero'}, $uid);
    my $b = gb_assign($exp{'buy-button-color'}, $uid);
    my $hk = $exp{'home-hero'}{meta}[$h]{key};
    $hero_ok++ if $page =~ /class="hero \Q$hk\E"/;
    $button_ok++ if $page =~ /class="buy \Q@{[ $b ? 'blue' : 'red' ]}\E"/;
}
is($hero_ok, $n, 'hero banner follows home-hero');
is($button_ok, $n, 'buy button follows buy-button-color');

my $new = $count{'new-checkout'}{new} // 0;
cmp_ok($new, '>=', 15, "new-checkout reaches about 10% ($new of 300)");
cmp_ok($new, '<=', 45, 'new-checkout: not more');
is($count{'new-checkout'}{classic} // 0, 0, 'nobody in the classic arm');
my $blue = $count{'buy-button-color'}{blue} // 0;
cmp_ok(abs($blue - 150), '<', 40, "buy button roughly 50/50 ($blue blue)");

# QA forcing is on in the demo.
like($t->get('/?buy-button-color=1', headers => [ Cookie => 'uid=qa' ])->body,
    qr/class="buy blue"/, '?buy-button-color=1 shows the blue button');
like($t->get('/?buy-button-color=0', headers => [ Cookie => 'uid=qa' ])->body,
    qr/class="buy red"/, '?buy-button-color=0 shows the red button');

$t->stop;
done_testing;
