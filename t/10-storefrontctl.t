#!/usr/bin/perl

# storefrontctl: import, export, list, explain, info and their errors.
# Runs build/storefrontctl (or $STOREFRONT_CTL) on temporary directories; no
# nginx needed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Storefront::Test;

my $ctl = $Storefront::Test::CTL;    # $STOREFRONT_CTL or build/storefrontctl

plan skip_all => "$ctl not built (run make engine)" unless -x $ctl;

delete $ENV{STOREFRONT_DB};

my $tmp = tempdir('sfctl-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $json = JSON::PP->new->canonical;

# Runs storefrontctl with @args (stdin from the file $opt{stdin}, else
# /dev/null); returns { code, out, err }.
sub ctl {
    my (@args) = @_;
    my %opt = ref $args[-1] eq 'HASH' ? %{ pop @args } : ();
    my @stdin = defined $opt{stdin} ? (\slurp($opt{stdin})) : ();
    my ($code, $out, $err) = Storefront::Test::run_cmd(@stdin, $ctl, @args);
    return { code => $code, out => $out, err => $err };
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    local $/;
    my $s = <$fh>;
    return $s // '';
}

sub spew {
    my ($name, $text) = @_;
    my $f = "$tmp/$name";
    open my $fh, '>', $f or die "$f: $!";
    print $fh $text;
    close $fh;
    return $f;
}

sub explain_json {
    my ($db, @args) = @_;
    my $r = ctl('--db', $db, 'explain', '--json', @args);
    is($r->{code}, 0, "explain @args: exit 0") or diag $r->{err};
    my $d = eval { $json->decode($r->{out}) };
    ok($d, "explain @args: JSON output") or diag "$@ $r->{out}";
    return { map { $_->{key} => $_ } @{ $d->{experiments} || [] } }, $d;
}

# ---- usage ------------------------------------------------------------------

my $r = ctl('--help');
is($r->{code}, 0, '--help exits 0');
like($r->{out}, qr/^Usage: storefrontctl .*import FILE.*export.*list.*explain.*info/s,
     '--help lists the commands');

$r = ctl('--version');
is($r->{code}, 0, '--version exits 0');
like($r->{out}, qr/^storefrontctl \d+\.\d+/, '--version prints it');

my $db = "$tmp/db/nested";     # import creates missing directories

for my $case (
    [ 'no command', [] ],
    [ 'unknown command', [ '--db', $db, 'frobnicate' ] ],
    [ 'unknown global option', [ '--frob', 'list' ] ],
    [ 'unknown command option', [ '--db', $db, 'list', '--frob' ] ],
    [ 'no database', [ 'list' ] ],
    [ 'import without FILE', [ '--db', $db, 'import' ] ],
    [ 'import with two FILEs', [ '--db', $db, 'import', 'a', 'b' ] ],
    [ 'bad --map-size', [ '--db', $db, '--map-size', '12Q', 'info' ] ],
    [ '--db without value', [ 'list', '--db' ] ],
    [ '--attr without =', [ '--db', $db, 'explain', '--user', '1',
                            '--attr', 'country' ] ],
    [ '--attr with empty name', [ '--db', $db, 'explain', '--attr', '=x' ] ],
    [ 'list takes no argument', [ '--db', $db, 'list', 'x' ] ],
    [ '--replace takes no value', [ '--db', $db, 'import', 'f',
                                    '--replace=1' ] ],
) {
    my ($name, $args) = @$case;
    $r = ctl(@$args);
    is($r->{code}, 2, "usage error: $name: exit 2");
    like($r->{err}, qr/^storefrontctl: \S/, "usage error: $name: message");
}
ok(!-e "$tmp/db", 'usage errors created no database');

# ---- import ---------------------------------------------------------------

my $good = spew('good.json', <<'EOF');
{
  "experiments": [
    {"key": "my-test", "variations": [{"color": "blue", "size": "small"},
                                      {"color": "green", "size": "large"}],
     "meta": [{"key": "control"}, {"key": "green"}]},
    {"key": "my-test-3", "variations": [0, 1]},
    {"key": "uneven", "variations": [0, 1], "weights": [0.1, 0.9]},
    {"key": "cov", "variations": [0, 1], "coverage": 0.4},
    {"key": "forced-test-qs", "variations": [0, 1]},
    {"key": "ns-out", "variations": [0, 1],
     "namespace": ["namespace", 0, 0.1]},
    {"key": "off", "active": false, "variations": ["a", "b"]},
    {"key": "key", "seed": "foo", "hashVersion": 2, "variations": [0, 1]}
  ]
}
EOF

$r = ctl('--db', $db, 'import', $good);
is($r->{code}, 0, 'import: exit 0') or diag $r->{err};
is($r->{out}, "imported 8 experiments into $db\n", 'import: summary');
is($r->{err}, '', 'import: nothing on stderr (not a terminal)');
ok(-d $db, 'import created the database directory');

$r = ctl('--db', $db, 'info');
is($r->{code}, 0, 'info: exit 0');
like($r->{out}, qr/^experiments\s+8$/m, 'info: experiment count');
like($r->{out}, qr/^map size\s+\d+/m, 'info: map size');
$r = ctl('--db', $db, 'info', '--json');
my $info = eval { $json->decode($r->{out}) };
is($info && $info->{experiments}, 8, 'info --json: experiments');

# ---- list -------------------------------------------------------------------

$r = ctl('--db', $db, 'list');
is($r->{code}, 0, 'list: exit 0');
my @lines = split /\n/, $r->{out};
is(scalar @lines, 9, 'list: header and one line per experiment');
like($lines[0], qr/^KEY\s+STATUS\s+VARIATIONS/, 'list: header');
like($r->{out}, qr/^off\s+inactive\s+2\s/m, 'list: inactive experiment');
like($r->{out}, qr/^uneven\s+active\s+2\s+0\.1\/0\.9\s+1\s+-\s+id$/m,
     'list: weights, coverage, no namespace, hash attribute');
like($r->{out}, qr/^cov\s+active\s+2\s+equal\s+0\.4\s/m, 'list: coverage');
like($r->{out}, qr/^ns-out\s.*namespace \[0,0\.1\)/m, 'list: namespace');

$r = ctl('--db', $db, 'list', '--json');
my $list = eval { $json->decode($r->{out}) };
ok($list, 'list --json: valid JSON') or diag $r->{out};
my %l = map { $_->{key} => $_ } @{ $list->{experiments} || [] };
is(scalar keys %l, 8, 'list --json: 8 experiments');
ok(!$l{off}{active} && $l{'my-test'}{active}, 'list --json: active');
is($l{cov}{coverage}, 0.4, 'list --json: coverage');
is($l{'my-test'}{variations}, 2, 'list --json: variations');
is_deeply($l{'ns-out'}{namespace}, [ 'namespace', 0, 0.1 ],
          'list --json: namespace');
is($l{key}{seed}, 'foo', 'list --json: seed');

# ---- export round trip --------------------------------------------------------

my $export = ctl('--db', $db, 'export');
is($export->{code}, 0, 'export: exit 0');
my $doc = eval { $json->decode($export->{out}) };
is(ref($doc && $doc->{experiments}), 'ARRAY', 'export: {"experiments":[...]}');
is(scalar @{ $doc->{experiments} }, 8, 'export: 8 experiments');

my $ex1 = spew('export1.json', $export->{out});
my $db2 = "$tmp/db2";
$r = ctl('--db', $db2, 'import', '--replace', $ex1);
is($r->{code}, 0, 'export imports back') or diag $r->{err};
$r = ctl('--db', $db2, 'export');
is($r->{out}, $export->{out}, 'export -> import -> export is identical');

$r = ctl('--db', $db, 'import', $ex1, '--replace');
is($r->{out}, "imported 8 experiments and rules into $db (0 removed)\n",
   'reimport with --replace: summary (the export carries the rules)');
is(ctl('--db', $db, 'export')->{out}, $export->{out},
   'reimport into the same database: identical export');

$r = ctl('--db', $db, 'export', "$tmp/export2.json");
is($r->{code}, 0, 'export FILE: exit 0');
is($r->{out}, '', 'export FILE: nothing on stdout');
is(slurp("$tmp/export2.json"), $export->{out}, 'export FILE: same content');
my @left = glob("$tmp/export2.json.tmp*");
is(scalar @left, 0, 'export FILE: no temporary file left');

# ---- explain: GrowthBook conformance values ---------------------------------

my ($e, $d) = explain_json($db, '--user', '1');
is($d->{user}, '1', 'explain --json: user');
is($e->{'my-test'}{variation}, 1, 'my-test, id 1: variation 1');
ok($e->{'my-test'}{in_experiment}, 'my-test, id 1: in experiment');
is($e->{'my-test'}{variation_key}, 'green', 'my-test, id 1: meta key');
is_deeply($e->{'my-test'}{value}, { color => 'green', size => 'large' },
          'my-test, id 1: the variation value');
is($e->{'my-test'}{seed}, 'my-test', 'my-test: seed is the key');
is($e->{'my-test'}{hash_attribute}, 'id', 'my-test: hash attribute id');
ok(defined $e->{'my-test'}{hash} && $e->{'my-test'}{hash} >= 0.5
   && $e->{'my-test'}{hash} < 1, 'my-test, id 1: hash in [0.5,1)');
is($e->{'my-test'}{reason}, 'assigned', 'my-test, id 1: reason');
is($e->{'my-test-3'}{variation}, 0, 'my-test-3, id 1: variation 0');
ok(!$e->{'ns-out'}{in_experiment}, 'namespace [0,0.1), id 1: not in');
is($e->{'ns-out'}{reason}, 'namespace', 'namespace: reason');
ok(!$e->{off}{in_experiment}, 'inactive: not in');
is($e->{off}{reason}, 'inactive', 'inactive: reason');
is($e->{off}{variation}, 0, 'inactive: serves variation 0');
is($e->{off}{value}, 'a', 'inactive: value of variation 0');
is($e->{off}{hash}, undef, 'inactive: hash null');
is($e->{key}{variation}, 1, 'seed foo, hashVersion 2, id 1: variation 1');
is($e->{key}{seed}, 'foo', 'seed foo: reported');

($e) = explain_json($db, '--user', '2');
is($e->{'my-test'}{variation}, 0, 'my-test, id 2: variation 0');
is($e->{'my-test'}{variation_key}, 'control', 'my-test, id 2: meta key');

# GrowthBook "run" cases with weights and coverage (key "my-test")
my %run = (
    uneven => [ '"weights": [0.1, 0.9]',
                [ 1, 1, 1 ], [ 2, 1, 1 ], [ 3, 1, 0 ], [ 7, 1, 0 ] ],
    coverage => [ '"coverage": 0.4',
                  [ 1, 0, 0 ], [ 2, 1, 0 ], [ 4, 0, 0 ], [ 5, 1, 1 ],
                  [ 8, 1, 1 ] ],
    three => [ '"variations": [0, 1, 2]',
               [ 1, 1, 2 ], [ 2, 1, 0 ], [ 5, 1, 1 ] ],
);
for my $name (sort keys %run) {
    my ($extra, @cases) = @{ $run{$name} };
    my $vars = $extra =~ /variations/ ? '' : '"variations": [0, 1], ';
    my $f = spew("run-$name.json",
                 qq({"experiments": [{"key": "my-test", $vars$extra}]}\n));
    my $rdb = "$tmp/run-$name";
    is(ctl('--db', $rdb, 'import', $f)->{code}, 0, "$name: import");
    for my $c (@cases) {
        my ($id, $in, $var) = @$c;
        my ($e) = explain_json($rdb, '--user', $id);
        my $a = $e->{'my-test'};
        is($a->{in_experiment} ? 1 : 0, $in, "$name, id $id: in = $in");
        is($a->{variation}, $var, "$name, id $id: variation $var");
        is($a->{reason}, $in ? 'assigned' : 'coverage',
           "$name, id $id: reason");
        ok(defined $a->{hash}, "$name, id $id: hash computed");
    }
}

($e, $d) = explain_json($db);
is($d->{user}, undef, 'explain without --user: user null');
is($e->{'my-test'}{reason}, 'no_id', 'explain without --user: reason no_id')
    or diag explain $e->{'my-test'};
ok(!$e->{'my-test'}{in_experiment}, 'explain without --user: not in');

# query-string forcing only with --qa
my $url = 'http://example.com?forced-test-qs=0#someanchor';
($e) = explain_json($db, '--user', '1', '--url', $url);
isnt($e->{'forced-test-qs'}{reason}, 'query_override',
     'query string ignored without --qa');
($e) = explain_json($db, '--user', '1', '--url', $url, '--qa');
is($e->{'forced-test-qs'}{variation}, 0, '--qa: forced variation');
ok($e->{'forced-test-qs'}{in_experiment}, '--qa: in experiment');
isnt($e->{'forced-test-qs'}{reason}, 'assigned', '--qa: reason says forced');
($e) = explain_json($db, '--user', '1', '--url',
                    'http://example.com?forced-test-qs=1', '--qa');
is($e->{'forced-test-qs'}{variation}, 1, '--qa: forced variation 1');

# text form
$r = ctl('--db', $db, 'explain', '--user', '1');
is($r->{code}, 0, 'explain text: exit 0');
like($r->{out}, qr/^attributes \{"id":"1"\}$/m, 'explain text: attributes');
like($r->{out}, qr/^EXPERIMENT\s+IN\s+VARIATION\s+KEY\s+HASH\s+SEED/m,
     'explain text: header');
like($r->{out}, qr/^my-test\s+yes\s+1\s+green\s+0\.\d+\s+my-test\s+id\s+-\s+assigned\s+\{"color":"green"/m,
     'explain text: assigned row (no condition)');
like($r->{out}, qr/^off\s+no\s+0\s+0\s+-\s+off\s+\S+\s+-\s+inactive\s/m,
     'explain text: inactive row');
like($r->{out}, qr/^1: no profile: defaults/m,
     'explain text: a user without a profile gets the defaults');

# custom hash attribute, attributes and "last wins"
my $cdb = "$tmp/custom";
my $custom = spew('custom.json', <<'EOF');
{"experiments": [{"key": "my-test", "variations": [0, 1],
                  "hashAttribute": "companyId"}]}
EOF
is(ctl('--db', $cdb, 'import', $custom)->{code}, 0, 'import custom');
($e) = explain_json($cdb, '--user', '2', '--attr', 'companyId=7',
                    '--attr', 'companyId=1');
is($e->{'my-test'}{variation}, 1, 'hashAttribute companyId=1: variation 1');
is($e->{'my-test'}{hash_attribute}, 'companyId', 'hash attribute reported');
($e) = explain_json($cdb, '--user', '2');
is($e->{'my-test'}{reason}, 'no_id', 'hash attribute missing: no_id');

# targeting condition on --attr values (GrowthBook "evaluates conditions")
my $cond = spew('cond.json', <<'EOF');
{"experiments": [{"key": "my-test", "variations": [0, 1],
                  "condition": {"browser": "firefox"}}]}
EOF
is(ctl('--db', "$tmp/cond", 'import', $cond)->{code}, 0, 'import condition');
($e) = explain_json("$tmp/cond", '--user', '1', '--attr', 'browser=firefox');
is($e->{'my-test'}{variation}, 1, 'condition holds: variation 1');
ok($e->{'my-test'}{in_experiment}, 'condition holds: in');
($e) = explain_json("$tmp/cond", '--user', '1', '--attr', 'browser=chrome');
ok(!$e->{'my-test'}{in_experiment}, 'condition fails: not in');
is($e->{'my-test'}{reason}, 'condition', 'condition fails: reason');

# ---- errors leave the database unchanged --------------------------------------

my $before = ctl('--db', $db, 'export')->{out};

my $nbad = 0;

sub import_fails {
    my ($name, $text, $re, @opts) = @_;
    my $f = spew("bad-" . ++$nbad . ".json", $text);
    my $r = ctl('--db', $db, 'import', @opts, $f);
    is($r->{code}, 1, "$name: exit 1");
    like($r->{err}, qr/^storefrontctl: \Q$f\E:$re/, "$name: message")
        or diag $r->{err};
    is($r->{out}, '', "$name: nothing on stdout");
    is(ctl('--db', $db, 'export')->{out}, $before, "$name: database unchanged");
}

import_fails('malformed JSON', <<'EOF', qr/3:\d+: /);
{"experiments": [
  {"key": "new-one", "variations": [0, 1]},
  {"key": "x", "variations": [0, 1],, }
]}
EOF
import_fails('truncated JSON', <<'EOF', qr/\d+(:\d+)?: /, '--replace');
{"experiments": [
  {"key": "new-one", "variations": [0, 1]},
EOF
import_fails('an array of non-objects', "[1, 2]\n",
             qr/1: profile: a profile must be a JSON object/);
import_fails('not JSON', "experiments\n", qr/1:\d+: /);
import_fails('weights not numbers', <<'EOF', qr/3: experiment "w-bad": \S/);
{"experiments": [
  {"key": "new-one", "variations": [0, 1]},
  {"key": "w-bad", "variations": [0, 1], "weights": ["a", "b"]}
]}
EOF
import_fails('missing key', <<'EOF', qr/3: experiments\[1\]: .*key/);
{"experiments": [
  {"key": "new-one", "variations": [0, 1]},
  {"variations": [0, 1]}
]}
EOF
import_fails('variations not an array', <<'EOF', qr/2: experiment "v-bad": .*variations/, '--replace');
{"experiments": [
  {"key": "v-bad", "variations": {"a": 1}}
]}
EOF
import_fails('duplicate key', <<'EOF', qr/4: experiment "dup": duplicate key \(first defined on line 2\)/);
{"experiments": [
  {"key": "dup", "variations": [0, 1]},
  {"key": "other", "variations": [0, 1]},
  {"key": "dup", "variations": [1, 0]}
]}
EOF
import_fails('experiment not an object', <<'EOF', qr/2: experiments\[0\]: /);
{"experiments": [
  "my-test"
]}
EOF
import_fails('experiments not an array', <<'EOF', qr/1: .*"experiments" must be an array/);
{"experiments": {"key": "x"}}
EOF
import_fails('unknown member', <<'EOF', qr/3: unknown member "campaign" \(known: "experiments", [^)]*"profiles", "rules"[^)]*\)/);
{"experiments": [
  {"key": "new-one", "variations": [0, 1]}],
 "campaign": [{"id": "u1"}]
}
EOF

$r = ctl('--db', $db, 'import', "$tmp/does-not-exist.json");
is($r->{code}, 1, 'missing file: exit 1');
like($r->{err}, qr/^storefrontctl: .*does-not-exist\.json: No such file/,
     'missing file: message');

$r = ctl('--db', "$tmp/nodb", 'export');
is($r->{code}, 1, 'export of a missing database: exit 1');
like($r->{err}, qr/^storefrontctl: \Q$tmp\E\/nodb: /,
     'export of a missing database: message');
ok(!-e "$tmp/nodb", 'export does not create a database');

# ---- upsert and --replace -------------------------------------------------------

my $update = spew('update.json', <<'EOF');
{"experiments": [
  {"key": "uneven", "variations": [0, 1], "weights": [0.1, 0.9],
   "coverage": 0.5},
  {"key": "brand-new", "variations": ["x", "y", "z"]}
]}
EOF

$r = ctl('--db', $db, 'import', $update);
is($r->{code}, 0, 'upsert: exit 0');
is($r->{out}, "imported 2 experiments into $db\n", 'upsert: summary');
$list = $json->decode(ctl('--db', $db, 'list', '--json')->{out});
%l = map { $_->{key} => $_ } @{ $list->{experiments} };
is(scalar keys %l, 9, 'upsert: other experiments kept');
is($l{uneven}{coverage}, 0.5, 'upsert: existing experiment updated');
is($l{'brand-new'}{variations}, 3, 'upsert: new experiment added');

$r = ctl('--db', $db, 'import', '--replace', '-', { stdin => $update });
is($r->{code}, 0, '--replace from stdin: exit 0') or diag $r->{err};
is($r->{out}, "imported 2 experiments into $db (7 removed)\n",
   '--replace: summary counts removed experiments');
$list = $json->decode(ctl('--db', $db, 'list', '--json')->{out});
is_deeply([ map { $_->{key} } @{ $list->{experiments} } ],
          [ 'brand-new', 'uneven' ], '--replace: only the file remains');

# an empty import with --replace empties the database
$r = ctl('--db', $db, 'import', '--replace', spew('empty.json', "{}\n"));
is($r->{code}, 0, 'empty --replace: exit 0');
is(ctl('--db', $db, 'list')->{out}, "no experiments\n", 'empty: list');
my $empty = ctl('--db', $db, 'export')->{out};
like($empty, qr/^\{"experiments":\[\],\n"rules":\{"rfm":/, 'empty: export');
is(ref(eval { $json->decode($empty) }->{rules}), 'HASH',
   'empty: export has the rules');

# STOREFRONT_DB and --map-size
{
    local $ENV{STOREFRONT_DB} = $db2;
    $r = ctl('info');
    is($r->{code}, 0, 'STOREFRONT_DB: exit 0');
    like($r->{out}, qr/^experiments\s+8$/m, 'STOREFRONT_DB: used');
}

my $small = "$tmp/small";
$r = ctl('--db', $small, '--map-size', '64M', 'import', $good);
is($r->{code}, 0, '--map-size 64M: import') or diag $r->{err};
$info = $json->decode(ctl('--db', $small, 'info', '--json')->{out});
is($info->{map_size}, 64 << 20, '--map-size: map size used');

done_testing();
