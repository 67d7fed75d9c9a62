#!/usr/bin/perl
# The demo's home page in a real browser: headless Chromium (Debian package
# chromium) loads the demo (conf/demo) as two shoppers, mei (gold tier,
# buys baby products) and a new visitor, saves a screenshot of each under
# build/page-browser/ and checks on the DOM that the modules appear in the
# order of the layout decision and that the two pages differ.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use Test::More;
use Storefront::Test qw(repo_path);

my $chromium = find_chromium();
plan skip_all => 'chromium is not installed (apt-get install chromium)'
    unless $chromium;

my $t = Storefront::Test->new;

my ($code, $out, $err) = $t->ctl('import', repo_path('conf/demo/data.json'));
plan skip_all => 'storefrontctl cannot import "pages" yet'
    if $code != 0 && $err =~ /unknown member "pages"/;
is($code, 0, 'demo data imports') or diag($err);

# The demo's nginx.conf with the test's prefix and ports, as demo.t does.
my $conf = $t->read_file(repo_path('conf/demo/nginx.conf'));
my $p = $t->prefix;
mkdir "$p/$_" for qw(logs temp);
my %sub = (
    MODULE => $t->module, PREFIX => $p, HTML => repo_path('conf/demo/html'),
    PORT => $t->port(1), UPSTREAM_PORT => $t->port(2),
    USER => $> == 0 ? 'user root;' : '',
);
$conf =~ s/\@(\w+)\@/$sub{$1} \/\/ die "unknown placeholder $1"/ge;
$t->write_file('nginx.conf', $conf);
$t->run(workers => 2);

my $shots = repo_path('build/page-browser');
make_path($shots);

my %page;
for my $who ([ mei => 'mei' ], [ visitor => '' ]) {
    my ($name, $user) = @$who;
    my $url = 'http://127.0.0.1:' . $t->port . '/login'
        . ($user ? "?user=$user" : '');

    my $dom = chromium($url, '--dump-dom');
    ok(length $dom > 1000, "$name: Chromium loaded the page")
        or diag(substr($dom, 0, 500));

    my ($main) = $dom =~ m{<main class="modules"[^>]*>(.*?)</main>}s;
    $main //= '';
    my ($layout) = $dom =~ m{<main class="modules" id="modules" data-layout="([^"]*)"};
    my @dom_order = $main =~ /data-module="([^"]+)"/g;
    my ($header) = $dom =~ m{<th>X-Storefront-Modules</th>\s*<td>([^<]*)</td>};
    $header //= '';
    $header =~ s/&amp;/&/g;
    my @decided = map { (split /\?/, $_)[0] } split /;/, $header;

    ok(@decided >= 4, "$name: the decision lists the modules ($header)");
    is(join(',', @dom_order), join(',', @decided),
        "$name: the DOM shows the modules in the decided order");
    $page{$name} = { layout => $layout // '', order => \@dom_order };

    my $png = "$shots/$name.png";
    unlink $png;
    chromium($url, "--screenshot=$png", '--window-size=1000,1600');
    ok(-s $png && -s $png > 10000, "$name: screenshot saved") or next;
    open my $fh, '<:raw', $png or die "$png: $!";
    read $fh, my $magic, 8;
    close $fh;
    is($magic, "\x89PNG\r\n\x1a\n", "$name: a PNG image");
    diag("screenshot: $png");
}

is($page{mei}{layout}, 'home-vip', 'mei (gold tier) gets the VIP layout');
is(join(',', @{ $page{mei}{order} }),
    'vip-perks,guess,recommend,recommend,recommend,new-arrivals,footer',
    'mei: VIP perks, guess you like, three cross-sell modules');
like($page{visitor}{layout}, qr/^home-(default|new-first)$/,
    "the new visitor: a default layout ($page{visitor}{layout})");
is($page{visitor}{order}[0], 'welcome', 'the new visitor is welcomed first');
isnt(join(',', @{ $page{mei}{order} }), join(',', @{ $page{visitor}{order} }),
    'the two home pages differ');

$t->stop;
done_testing;


sub find_chromium {
    for my $c (qw(/usr/bin/chromium /usr/bin/chromium-browser)) {
        return $c if -x $c;
    }
    return undef if $> != 0 || !-x '/usr/bin/apt-get';

    diag('installing the chromium package');
    local $ENV{DEBIAN_FRONTEND} = 'noninteractive';
    my ($code) = Storefront::Test::run_cmd('/usr/bin/apt-get', 'install',
        '-y', '-qq', '--no-install-recommends', 'chromium');
    if ($code != 0) {
        Storefront::Test::run_cmd('/usr/bin/apt-get', 'update', '-qq');
        Storefront::Test::run_cmd('/usr/bin/apt-get', 'install', '-y', '-qq',
            '--no-install-recommends', 'chromium');
    }
    return -x '/usr/bin/chromium' ? '/usr/bin/chromium' : undef;
}

# One headless run on a profile of its own; returns standard output.
sub chromium {
    my ($url, @args) = @_;
    my $profile = tempdir('sft-chromium-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my ($code, $out, $err) = Storefront::Test::run_cmd('timeout', '-k', '5',
        '90', $chromium, '--headless', '--no-sandbox', '--disable-gpu',
        '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync',
        "--user-data-dir=$profile", @args, $url);
    diag("chromium exited with $code: " . substr($err, -500)) if $code != 0;
    return $out;
}
