#!/usr/bin/perl
# storefrontctl: import is all-or-nothing (bad JSON or an invalid experiment
# leaves the database exactly as it was, with a message naming the file and
# line/column or the experiment), export round-trips, list, explain --json
# agrees with GrowthBook.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Storefront::Test qw(gb_assign gb_hash json_encode json_decode);

my $t = Storefront::Test->new(no_module => 1);
ok(-x $t->ctl_path, 'storefrontctl built') or BAIL_OUT('no storefrontctl');

my @experiments = (
    { key => 'home-hero', variations => [ { banner => 'spring-sale' },
        { banner => 'new-arrivals' } ],
      meta => [ { key => 'spring-sale' }, { key => 'new-arrivals' } ] },
    { key => 'buy-button-color', variations => [ { button_color => 'red' },
        { button_color => 'blue' } ], weights => [ 0.5, 0.5 ] },
    { key => 'new-checkout', variations => [ 0, 1 ], coverage => 0.1,
      seed => 'nc-2024', hashVersion => 2 },
    { key => 'paused', variations => [ 0, 1 ], active => JSON::PP::false() },
    { key => 'ns', variations => [ 0, 1 ], namespace => [ 'pay', 0, 0.2 ] },
);

my ($code, $out, $err) = $t->import_data({ experiments => \@experiments });
is($code, 0, 'import valid file') or diag($err);

($code, $out, $err) = $t->ctl('list');
is($code, 0, 'list');
like($out, qr/\Q$_->{key}\E/, "list shows $_->{key}") for @experiments;

my ($c0, $before, $e0) = $t->ctl('export');
is($c0, 0, 'export') or diag($e0);
my $doc = eval { json_decode($before) };
ok($doc && ref $doc->{experiments} eq 'ARRAY', 'export is {"experiments":[...]}')
    or diag($before);
is_deeply([ sort map { $_->{key} } @{ $doc->{experiments} // [] } ],
    [ sort map { $_->{key} } @experiments ], 'export has every experiment');

# Round trip: the export imports into an empty database to the same state.
{
    my $db2 = $t->prefix . '/db2';
    mkdir $db2;
    my $file = $t->write_file('export.json', $before);
    my ($c, $o, $e) = $t->ctl('--db', $db2, 'import', $file);
    is($c, 0, 'export imports back') or diag($e);
    my ($c2, $again) = $t->ctl('--db', $db2, 'export');
    is($again, $before, 'round trip gives the same export');
}

# ---- all-or-nothing ---------------------------------------------------------

sub unchanged {
    my ($name) = @_;
    my ($c, $now) = $t->ctl('export');
    is($now, $before, "$name: database unchanged");
}

my $new = { key => 'brand-new', variations => [ 0, 1 ] };
my $good = json_encode($new);

my @bad = (
    [ 'truncated JSON', qq({"experiments": [\n  $good,\n  {"key": "x"),
      qr/import-\d+\.json/, qr/line\D{0,12}\d+|:\d+(?::\d+)?/ ],
    [ 'syntax error', qq({"experiments": [\n  $good,\n  {"key": "x",,}\n]}),
      qr/import-\d+\.json/, qr/line\D{0,12}3|:3\b/ ],
    [ 'not JSON', "experiments: none\n", qr/import-\d+\.json/, qr/./ ],
    [ 'variations not an array',
      json_encode({ experiments => [ $new,
          { key => 'broken-one', variations => 'abc' } ] }),
      qr/broken-one/, qr/variations/ ],
    [ 'experiment without key',
      json_encode({ experiments => [ $new, { variations => [ 0, 1 ] } ] }),
      qr/key/, qr/./ ],
    [ 'weights not numbers',
      json_encode({ experiments => [ $new, { key => 'bad-weights',
          variations => [ 0, 1 ], weights => [ 'a', 'b' ] } ] }),
      qr/bad-weights/, qr/weights/ ],
    [ 'experiments not an array', '{"experiments": {"key": "x"}}',
      qr/experiments/, qr/./ ],
    [ 'top level not an object', '[1, 2, 3]', qr/import-\d+\.json/, qr/./ ],
);

for my $b (@bad) {
    my ($name, $text, $re1, $re2) = @$b;
    my ($c, $o, $e) = $t->import_data($text);
    isnt($c, 0, "$name: non-zero exit");
    like($e, $re1, "$name: message names " . ($re1 =~ /json/ ? 'the file'
        : 'the experiment or problem')) or diag($e);
    like($e, $re2, "$name: message says where or what") or diag($e);
    unchanged($name);
}

($code, $out, $err) = $t->ctl('import', $t->prefix . '/no-such-file.json');
isnt($code, 0, 'missing file: non-zero exit');
like($err, qr/no-such-file\.json/, 'missing file: named');
unchanged('missing file');

# ---- explain ------------------------------------------------------------------

my %by_key = map { $_->{key} => $_ } @experiments;
my ($agree, $n) = (0, 0);
for my $u (map { "shopper-$_" } 1 .. 60) {
    my ($c, $o, $e) = $t->ctl('explain', '--user', $u, '--json');
    $n++;
    my $j = eval { json_decode($o) };
    unless ($c == 0 && $j && ref $j->{experiments} eq 'ARRAY') {
        diag("explain $u: exit $c, $e$o") if $n - $agree < 3;
        next;
    }
    my $ok = @{ $j->{experiments} } == @experiments;
    for my $x (@{ $j->{experiments} }) {
        my $exp = $by_key{ $x->{key} // '' } or do { $ok = 0; next };
        my $i = gb_assign($exp, $u);
        $ok &&= !!$x->{in_experiment} == ($i >= 0);
        $ok &&= exists $x->{reason} && exists $x->{hash};
        if ($i >= 0) {
            $ok &&= $x->{variation} == $i;
            my $vk = $exp->{meta} ? $exp->{meta}[$i]{key} : "$i";
            $ok &&= ($x->{variation_key} // '') eq $vk;
        }
        my $h = gb_hash($exp->{seed} // $exp->{key}, $u,
            $exp->{hashVersion} // 1);
        if ($x->{key} eq 'paused') {
            $ok &&= !defined $x->{hash};
            $ok &&= ($x->{reason} // '') =~ /inactive/i;
        } elsif ($x->{key} eq 'ns' && $i < 0) {
            # outside the namespace: no bucketing hash computed
            $ok &&= ($x->{reason} // '') =~ /namespace/i;
        } else {
            $ok &&= defined $x->{hash} && abs($x->{hash} - $h) < 1e-9;
        }
        if ($x->{key} eq 'new-checkout' && $i < 0) {
            $ok &&= ($x->{reason} // '') =~ /coverage/i;
        }
    }
    $agree++ if $ok;
    diag("explain $u: $o") if !$ok && $n - $agree < 3;
}
is($agree, $n, 'explain --json agrees with GrowthBook for every user');

# --attr id=... is the same as --user; the text output names seeds.
my (undef, $j1) = $t->ctl('explain', '--user', 'shopper-7', '--json');
my (undef, $j2) = $t->ctl('explain', '--attr', 'id=shopper-7', '--json');
is_deeply(eval { json_decode($j2)->{experiments} },
    eval { json_decode($j1)->{experiments} },
    'explain --attr id=X decides as --user X');
my ($ct, $text) = $t->ctl('explain', '--user', 'shopper-7');
is($ct, 0, 'explain text output');
like($text, qr/nc-2024/, 'explain names the seed used');

# No id: every experiment says so.
my ($cn, $jn) = $t->ctl('explain', '--json');
my $jd = eval { json_decode($jn) };
ok($cn == 0 && $jd && !grep({ $_->{in_experiment} }
    @{ $jd->{experiments} // [] }), 'explain without a user: in no experiment')
    or diag($jn);

# --url is the attribute "url" for conditions, as at the edge.
{
    my $u = Storefront::Test->new(no_module => 1);
    $u->must_import({ experiments => [ { key => 'sale', variations => [ 0, 1 ],
        condition => { url => { '$regex' => '/sale/' } } } ] });
    my $in = sub {
        my ($c, $o) = $u->ctl('explain', '--user', 'u1', @_, '--json');
        my $d = eval { json_decode($o) } or return undef;
        return $d->{experiments}[0]{in_experiment} ? 1 : 0;
    };
    is($in->('--url', 'https://shop.example/sale/shoes'), 1,
        'explain --url: a condition on "url" holds for a sale page');
    is($in->('--url', 'https://shop.example/bags'), 0, '... not for another');
    is($in->('--attr', 'url=https://shop.example/bags', '--url',
        'https://shop.example/sale/x'), 0, '... --attr url=... wins');

    # and for page layouts (explain --page)
    $u->must_import({ pages => {
        modules => { m => { fragment => '/f/m' } },
        layouts => { plain => [ { module => 'm' } ],
                     sale => [ { module => 'm' } ] },
        pages => { home => { default => 'plain', rules => [ { name => 'sale',
            when => { url => { '$regex' => '/sale/' } },
            layout => 'sale' } ] } } } });
    my $layout = sub {
        my ($c, $o) = $u->ctl('explain', '--page', 'home', '--user', 'u1',
            '--url', $_[0], '--json');
        return (eval { json_decode($o) } // {})->{layout} // "exit $c";
    };
    is($layout->('https://shop.example/sale/shoes'), 'sale',
        'explain --page --url: a page rule on "url" holds for a sale page');
    is($layout->('https://shop.example/bags'), 'plain', '... not for another');
}

done_testing;
