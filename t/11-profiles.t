#!/usr/bin/perl

# storefrontctl and profiles: import (document member, JSON lines, array),
# bad records, --skip-bad, --resume, events, RFM, rules and tiers, explain
# with the profile and --now, export round trips (with the applied events:
# a repeated event still counts once after an import elsewhere).  Runs
# build/storefrontctl (or $STOREFRONT_CTL) on temporary directories; no
# nginx needed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Time::Local qw(timegm);
use Storefront::Test;

my $ctl = $Storefront::Test::CTL;
my $gen = $ENV{STOREFRONT_GEN}
    // Storefront::Test::repo_path('build/bench/gen_profiles');

plan skip_all => "$ctl not built (run make engine)" unless -x $ctl;

delete $ENV{STOREFRONT_DB};

my $tmp = tempdir('sfprof-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $json = JSON::PP->new->canonical;
my $NOW = '2026-11-18T00:00:00Z';

sub ctl {
    my (@args) = @_;
    my %opt = ref $args[-1] eq 'HASH' ? %{ pop @args } : ();
    my @stdin = defined $opt{stdin} ? (\$opt{stdin}) : ();
    my ($code, $out, $err) = Storefront::Test::run_cmd(@stdin, $ctl, @args);
    return { code => $code, out => $out, err => $err };
}

sub spew {
    my ($name, $text) = @_;
    my $f = "$tmp/$name";
    open my $fh, '>', $f or die "$f: $!";
    print $fh $text;
    close $fh;
    return $f;
}

sub lines { join '', map { $json->encode($_) . "\n" } @_ }

# storefrontctl ... --json, decoded
sub ctl_json {
    my (@args) = @_;
    my $r = ctl(@args);
    my $d = eval { $json->decode($r->{out}) };
    ok($r->{code} == 0 && $d, "@args[2 .. $#args]: JSON")
        or diag "exit $r->{code}: $r->{err}$r->{out}";
    return $d || {};
}

sub profile {
    my ($db, $id, @now) = @_;
    return ctl_json('--db', $db, @now ? ('--now', @now) : ('--now', $NOW),
                    'profile', 'show', $id, '--json');
}

sub count {
    my ($db) = @_;
    my $r = ctl('--db', $db, 'info', '--json');
    my $d = eval { $json->decode($r->{out}) } || {};
    return $d->{profiles};
}

my @people = (
    { id => 'alice', orders => 12, monetary => 4200, spend_365 => 6000,
      first_order => '2025-01-10', last_order => '2026-11-08T10:00:00Z',
      points => 4200, categories => { baby => 9, shoes => 2 },
      attributes => { country => 'CN', tags => ['high_repurchase'] },
      tz_offset => '+08:00', quiet_hours => '22:00-08:00',
      opt_out => ['sms'] },
    { id => 'bob', orders => 1, monetary => 20, last_order => '2025-01-01' },
    { id => 'dave', orders => 3, monetary => 12000, spend_365 => 12000,
      last_order => '2026-10-01' },
);

# ---- import: JSON lines, array, document member ----------------------------

my $jl = spew('people.jsonl', lines(@people));
my $db = "$tmp/jl";
my $r = ctl('--db', $db, 'import', $jl);
is($r->{code}, 0, 'JSON lines: exit 0') or diag $r->{err};
like($r->{out}, qr/^imported 3 profiles into \Q$db\E\n/, 'JSON lines: summary');
is($r->{err}, '', 'JSON lines: nothing on stderr (no terminal)');
is(count($db), 3, 'JSON lines: 3 profiles stored');

my $p = profile($db, 'alice');
is($p->{profile}{orders}, 12, 'alice: orders stored');
is_deeply($p->{profile}{attributes},
          { country => 'CN', tags => ['high_repurchase'] },
          'alice: attributes stored');
is($p->{derived}{rfm}, '555', 'alice: RFM 555');
is($p->{derived}{segment}, 'champions', 'alice: champions');
is($p->{derived}{lifecycle}, 'active', 'alice: active');
is($p->{derived}{tier}, 'gold', 'alice: gold (6000 in 365 days)');
is_deeply($p->{derived}{tier_benefits},
          { discount => 0.1, free_shipping => JSON::PP::true },
          'alice: gold benefits');
$p = profile($db, 'bob');
is($p->{derived}{rfm}, '111', 'bob: 111');
is($p->{derived}{segment}, 'lost', 'bob: lost');
$p = profile($db, 'nobody');
ok(!$p->{derived}{found} && !defined $p->{profile},
   'no profile: found false, defaults');
is($p->{derived}{lifecycle}, 'new', 'no profile: lifecycle new');
is($p->{derived}{segment}, 'others', 'no profile: segment others');

my $arr = spew('people.json', "[\n" . join(",\n", map { $json->encode($_) }
                                                   @people) . "\n]\n");
$r = ctl('--db', "$tmp/arr", 'import', $arr);
is($r->{code}, 0, 'array: exit 0') or diag $r->{err};
is(count("$tmp/arr"), 3, 'array: 3 profiles');

my $doc = spew('doc.json', $json->encode({
    experiments => [
        { key => 'vip-price', variations => [ 0, 1 ],
          condition => { segment => 'champions' } },
        { key => 'everyone', variations => [ 0, 1 ] } ],
    rules => { tiers => [
        { name => 'junior', min_spend_365 => 0 },
        { name => 'intermediate', min_spend_365 => 500 },
        { name => 'senior', min_spend_365 => 2000 },
        { name => 'diamond', min_spend_365 => 10000,
          benefits => { discount => 0.15, free_shipping => JSON::PP::true } },
    ] },
    profiles => \@people }) . "\n");
my $ddb = "$tmp/doc";
$r = ctl('--db', $ddb, 'import', $doc);
is($r->{code}, 0, 'document: exit 0') or diag $r->{err};
like($r->{out}, qr/^imported 2 experiments, rules and 3 profiles into /,
     'document: summary names the three parts');

# the same file from standard input
$r = ctl('--db', "$tmp/stdin", 'import', '-', { stdin => lines(@people) });
is($r->{code}, 0, 'JSON lines from stdin: exit 0') or diag $r->{err};
is(count("$tmp/stdin"), 3, 'JSON lines from stdin: 3 profiles');

# ---- rules: four tiers, tier from spend ---------------------------------------

my $rules = ctl_json('--db', $ddb, 'rules', 'show', '--json');
is_deeply([ map { $_->{name} } @{ $rules->{tiers} || [] } ],
          [ qw(junior intermediate senior diamond) ], 'rules: 4 tiers');
$r = ctl('--db', $ddb, 'rules', 'show');
like($r->{out}, qr/^\s+diamond\s+from 10000\s+\{"discount":0.15/m,
     'rules show: tier table');
like($r->{out}, qr/^champions\s+4-5\s+4-5\s+4-5$/m,
     'rules show: segment table');

is(profile($ddb, 'alice')->{derived}{tier}, 'senior', 'alice: senior (6000)');
$p = profile($ddb, 'dave');
is($p->{derived}{tier}, 'diamond', 'dave: diamond (12000)');
is($p->{derived}{tier_benefits}{discount}, 0.15, 'dave: diamond benefits');
is(profile($ddb, 'bob')->{derived}{tier}, 'junior', 'bob: junior');

# ---- explain: profile, condition on the segment, --now ageing ---------------

my $e = ctl_json('--db', $ddb, '--now', $NOW, 'explain', '--user', 'alice',
                 '--json');
is($e->{profile}{segment}, 'champions', 'explain: profile segment');
is($e->{profile}{rfm}, '555', 'explain: rfm');
is_deeply([ @{ $e->{profile} }{qw(r f m)} ], [ 5, 5, 5 ], 'explain: scores');
is($e->{profile}{tier}, 'senior', 'explain: tier');
ok($e->{profile}{found}, 'explain: profile found');
is($e->{targeting_attributes}{segment}, 'champions',
   'explain: conditions see the segment');
my %x = map { $_->{key} => $_ } @{ $e->{experiments} || [] };
ok($x{'vip-price'}{condition_matched}, 'champions: condition holds');
ok($x{'vip-price'}{in_experiment}, 'champions: in the targeted test');
is($x{everyone}{condition_matched}, undef, 'no condition: null');

$e = ctl_json('--db', $ddb, '--now', $NOW, 'explain', '--user', 'bob',
              '--json');
%x = map { $_->{key} => $_ } @{ $e->{experiments} || [] };
ok(!$x{'vip-price'}{in_experiment}, 'lost customer: not in the test');
is($x{'vip-price'}{reason}, 'condition', 'lost customer: reason condition');
ok(defined $x{'vip-price'}{condition_matched}
   && !$x{'vip-price'}{condition_matched}, 'lost customer: matched false');
ok($x{everyone}{in_experiment}, 'lost customer: in the untargeted test');

# recency ages with the clock: the same record, later
$e = ctl_json('--db', $ddb, '--now', '2027-03-18', 'explain', '--user',
              'alice', '--json');
is($e->{profile}{r}, 3, '130 days later: R 3');
is($e->{profile}{lifecycle}, 'at_risk', '130 days later: at risk');
is($e->{profile}{segment}, 'loyal', '130 days later: loyal');
%x = map { $_->{key} => $_ } @{ $e->{experiments} || [] };
ok(!$x{'vip-price'}{in_experiment}, '130 days later: out of the vip test');
$e = ctl_json('--db', $ddb, '--now', '2027-12-31', 'explain', '--user',
              'alice', '--json');
is($e->{profile}{lifecycle}, 'lost', 'a year later: lost');
is($e->{profile}{tier}, 'junior', 'a year later: spend gone, junior');

my $e2 = ctl_json('--db', $ddb, '--now', $NOW, 'explain', '--attr',
                  'id=alice', '--json');
is($e2->{profile}{segment}, 'champions', 'explain --attr id=alice: her profile');

$r = ctl('--db', $ddb, '--now', $NOW, 'explain', '--user', 'alice');
like($r->{out}, qr/^profile alice$/m, 'explain text: profile');
like($r->{out}, qr/rfm 555 \(R 5, F 5, M 5\)\s+segment champions\s+lifecycle active/,
     'explain text: scores, segment, lifecycle');
like($r->{out}, qr/^vip-price\s+yes\s.*\syes\s+assigned\s/m,
     'explain text: condition column');
$r = ctl('--db', $ddb, 'explain', '--user', 'zed');
like($r->{out}, qr/^zed: no profile: defaults/m, 'explain text: no profile');
$r = ctl('--db', $ddb, '--now', 'yesterday', 'explain');
is($r->{code}, 2, '--now must be a time');

# ---- bad records ---------------------------------------------------------------

my $bad = spew('bad.jsonl', lines($people[0]) . "\n"
    . qq({"id":"p2","orders":"many"}\n)
    . qq({"id":"p3"\n)
    . qq({"id":"p4","colour":1}\n)
    . lines($people[1]));
my $bdb = "$tmp/bad";
$r = ctl('--db', $bdb, 'import', $bad);
is($r->{code}, 1, 'bad records: exit 1');
like($r->{err}, qr/^storefrontctl: \Q$bad\E:3: profile "p2": "orders"/m,
     'bad records: file:line and the problem');
like($r->{err}, qr/^storefrontctl: \Q$bad\E:4:\d+: incomplete JSON/m,
     'bad records: a broken line');
like($r->{err}, qr/^storefrontctl: \Q$bad\E:5: profile "p4": unknown member "colour"/m,
     'bad records: an unknown member');
like($r->{err}, qr/rejected: 3 bad records/, 'bad records: counted');
like($r->{err}, qr/nothing was imported/, 'bad records: nothing imported');
is($r->{out}, '', 'bad records: nothing on stdout');
ok(!-e $bdb, 'bad records: no database written');

$r = ctl('--db', $bdb, 'import', '--skip-bad', $bad);
is($r->{code}, 3, '--skip-bad: exit 3 (some skipped)');
like($r->{err}, qr/\Q$bad\E:3: profile "p2"/, '--skip-bad: reports them');
like($r->{out}, qr/^imported 2 profiles into /, '--skip-bad: loads the rest');
like($r->{out}, qr/^skipped 3 bad records \(--skip-bad\)$/m,
     '--skip-bad: says how many were skipped');
is(count($bdb), 2, '--skip-bad: 2 profiles stored');

# a bad experiment rejects the whole document, profiles included
my $bdoc = spew('baddoc.json', $json->encode({
    profiles => [ { id => 'zz' } ],
    experiments => [ { key => 'broken', variations => 'x' } ] }));
$r = ctl('--db', "$tmp/baddoc", 'import', '--skip-bad', $bdoc);
is($r->{code}, 1, 'bad experiment: exit 1');
like($r->{err}, qr/experiment "broken"/, 'bad experiment: named');
ok(!-e "$tmp/baddoc", 'bad experiment: nothing written');

# bad rules too
$r = ctl('--db', $ddb, 'import', spew('badrules.json', <<'EOF'));
{"rules": {"tiers": [{"name": "a", "min_spend_365": 10},
                     {"name": "b", "min_spend_365": 5}]},
 "profiles": [{"id": "newbie"}]}
EOF
is($r->{code}, 1, 'bad rules: exit 1');
like($r->{err}, qr/:1: rules: .*ascending/, 'bad rules: the problem');
is(profile($ddb, 'newbie')->{profile}, undef, 'bad rules: no profile written');

# formats: told from the first bytes, or forced
$r = ctl('--db', "$tmp/fmt", 'import', '--format', 'array', $jl);
is($r->{code}, 1, '--format array on JSON lines: exit 1');
like($r->{err}, qr/must be a JSON array/, '--format array: says why');
$r = ctl('--db', "$tmp/fmt", 'import', '--format', 'jsonl', $doc);
is($r->{code}, 1, '--format jsonl on a document: exit 1');
$r = ctl('--db', "$tmp/fmt", 'import', '--format', 'document', $jl);
is($r->{code}, 1, '--format document on JSON lines: exit 1');
like($r->{err}, qr/:1: unknown member "attributes"/, '--format document: says why');
$r = ctl('--db', "$tmp/fmt", 'import', '--format', 'yaml', $jl);
is($r->{code}, 2, '--format yaml: usage error');

# ---- resume: --limit stops with a checkpoint -----------------------------------

my @seven = map { { id => "r$_", orders => $_, monetary => 100 * $_,
                    last_order => "2026-11-0$_" } } 1 .. 7;
my $seven = spew('seven.jsonl', lines(@seven));
my $rdb = "$tmp/resume";
$r = ctl('--db', $rdb, 'import', '--batch', 2, '--limit', 3, $seven);
is($r->{code}, 0, '--limit 3: exit 0') or diag $r->{err};
like($r->{out}, qr/stopped after 3 of 7 profiles \(--limit\): run the same command with --resume/,
     '--limit: says how to continue');
is(count($rdb), 3, '--limit: 3 committed');

$r = ctl('--db', $rdb, 'import', '--resume', '--batch', 2, $seven);
is($r->{code}, 0, '--resume: exit 0') or diag $r->{err};
like($r->{out}, qr/^resuming the import of \Q$seven\E: 3 of 7 profiles were committed$/m,
     '--resume: from the checkpoint');
like($r->{out}, qr/^imported 4 profiles into /m, '--resume: the 4 others');
is(count($rdb), 7, '--resume: all 7');

$r = ctl('--db', "$tmp/full", 'import', $seven);
is(ctl('--db', $rdb, 'export', '--jsonl')->{out},
   ctl('--db', "$tmp/full", 'export', '--jsonl')->{out},
   '--resume: the same state as one import');

$r = ctl('--db', $rdb, 'import', '--resume', $seven);
is($r->{code}, 1, '--resume when done: exit 1');
like($r->{err}, qr/no interrupted import to resume/, '--resume when done: says so');

$r = ctl('--db', $rdb, 'import', '--limit', 2, $seven);
spew('seven.jsonl', lines(@seven[0 .. 5]));    # the file changed
$r = ctl('--db', $rdb, 'import', '--resume', $seven);
is($r->{code}, 1, '--resume of a changed file: exit 1');
like($r->{err}, qr/not of this file as it is now/, '--resume: identity checked');
$r = ctl('--db', $rdb, 'import', '--resume', '-', { stdin => '' });
is($r->{code}, 2, '--resume from stdin: usage error');

# ---- events ----------------------------------------------------------------------

my $edb = "$tmp/events";
$r = ctl('--db', $edb, 'event', 'purchase', '--user', 'carol', '--order', 'o1',
         '--amount', '120.5', '--category', 'shoes', '--category', 'socks',
         '--time', '2026-11-11T12:00:00Z');
is($r->{code}, 0, 'purchase: exit 0') or diag $r->{err};
like($r->{out}, qr/^purchase o1 of carol: applied, 120 points earned$/m,
     'purchase: applied, points');
$r = ctl('--db', $edb, 'event', 'purchase', '--user', 'carol', '--order', 'o1',
         '--amount', '120.5');
is($r->{code}, 0, 'same order again: exit 0');
like($r->{out}, qr/duplicate/, 'same order again: duplicate');
$p = profile($edb, 'carol');
is($p->{profile}{orders}, 1, 'same order twice counts once');
is($p->{profile}{monetary}, 120.5, 'monetary once');
is($p->{profile}{points}, 120, 'points once');
is_deeply($p->{profile}{categories}, { shoes => 1, socks => 1 },
          'categories counted');

$r = ctl('--db', $edb, 'event', 'return', '--user', 'carol', '--order', 'o1',
         '--amount', '20');
like($r->{out}, qr/applied, 19 points taken back/, 'return: points back');
$p = profile($edb, 'carol');
is($p->{profile}{returns}, 1, 'return: counted');
is($p->{profile}{monetary}, 100.5, 'return: monetary net');
$r = ctl('--db', $edb, 'event', 'return', '--user', 'carol', '--order', 'o1');
like($r->{out}, qr/duplicate/, 'the same return twice: duplicate');
$r = ctl('--db', $edb, 'event', 'return', '--user', 'carol', '--order', 'nope');
is($r->{code}, 1, 'return of an unknown order: exit 1');
like($r->{err}, qr/no order "nope"/, 'return of an unknown order: says so');

$r = ctl('--db', $edb, 'event', 'points', '--user', 'carol', '--id', 'r1',
         '--amount', '-50');
like($r->{out}, qr/applied, -50 points/, 'redemption applied');
is(profile($edb, 'carol')->{profile}{points}, 51, 'points balance');
$r = ctl('--db', $edb, 'event', 'points', '--user', 'carol', '--id', 'r2',
         '--amount', '-5000');
is($r->{code}, 1, 'redeeming more than held: exit 1');
is(profile($edb, 'carol')->{profile}{points}, 51, 'balance unchanged');
$r = ctl('--db', $edb, 'event', 'points', '--user', 'carol', '--id', 'r1',
         '--amount', '-50', '--json');
my $ej = eval { $json->decode($r->{out}) } || {};
ok($ej->{duplicate} && !$ej->{applied}, 'points --json: duplicate');
$r = ctl('--db', $edb, 'event', 'purchase', '--user', 'carol',
         '--amount', '5');
is($r->{code}, 2, 'purchase without --order: usage error');

# tier after purchases, without any reload or rewrite
$r = ctl('--db', $ddb, 'event', 'purchase', '--user', 'bob', '--order', 'b2',
         '--amount', '600', '--time', '2026-11-17');
is(profile($ddb, 'bob')->{derived}{tier}, 'intermediate',
   'bob: 600 spent: intermediate');

# events from a file: checked first, then batches
my $evf = spew('events.jsonl', lines(
    { type => 'purchase', user => 'dan', order_id => 'a', amount => 10 },
    { type => 'purchase', user => 'dan', order_id => 'a', amount => 10 },
    { type => 'purchase', user => 'dan', order_id => 'b', amount => 5,
      time => '2026-11-01' },
    { type => 'return', user => 'dan', order_id => 'b' }) . "\n");
$r = ctl('--db', $edb, 'event', '--file', $evf, '--batch', 2);
is($r->{code}, 0, 'event --file: exit 0') or diag $r->{err};
like($r->{out}, qr/^applied 3 events from .*, 1 duplicate /,
     'event --file: applied and duplicates');
$r = ctl('--db', $edb, 'event', '--file', $evf);
like($r->{out}, qr/^applied 0 events from .*, 4 duplicates /,
     'event --file again: all duplicates');
is(profile($edb, 'dan')->{profile}{orders}, 2, 'event --file: dan 2 orders');

my $evbad = spew('events-bad.json', "[\n"
    . qq({"type":"purchase","user":"eve","order_id":"x","amount":1},\n)
    . qq({"type":"refund","user":"eve","order_id":"x"}\n]\n));
$r = ctl('--db', $edb, 'event', '--file', $evbad);
is($r->{code}, 1, 'a bad event: exit 1');
like($r->{err}, qr/\Q$evbad\E:3: unknown event type "refund"/,
     'a bad event: file:line');
ok(!profile($edb, 'eve')->{derived}{found}, 'a bad event: nothing applied');
$r = ctl('--db', $edb, 'event', '--file', $evbad, '--skip-bad');
is($r->{code}, 3, 'event --skip-bad: exit 3');
is(profile($edb, 'eve')->{profile}{orders}, 1, 'event --skip-bad: others applied');

# ---- rfm ---------------------------------------------------------------------

# p1 .. p50: bought i days before $NOW for 10 * i
my $now_s = timegm(0, 0, 0, 18, 10, 2026);
my $pop = spew('population.jsonl', lines(map {
    { id => "p$_", orders => 1, monetary => 10 * $_,
      last_order => $now_s - $_ * 86400 }
} 1 .. 50));
my $fdb = "$tmp/rfm";
is(ctl('--db', $fdb, 'import', $pop)->{code}, 0, 'population imported');
$r = ctl('--db', $fdb, 'rfm', 'show');
like($r->{out}, qr/preset/, 'rfm show: preset before a rebuild');
$r = ctl('--db', $fdb, '--now', $NOW, 'rfm', 'rebuild');
is($r->{code}, 0, 'rfm rebuild: exit 0') or diag $r->{err};
like($r->{out}, qr/^computed over 50 profiles with orders$/m,
     'rfm rebuild: over the population');
like($r->{out}, qr/computed on 2026-11-18/, 'rfm rebuild: computed, dated');
my $cuts = ctl_json('--db', $fdb, 'rfm', 'show', '--json');
is($cuts->{computed_on}, '2026-11-18', 'rfm show --json: computed on');
is_deeply($cuts->{monetary}, [ 100, 200, 300, 400 ], 'monetary quintiles');
$p = profile($fdb, 'p1');
is($p->{derived}{rfm}, '511', 'p1 (yesterday, small): 511');
is($p->{derived}{segment}, 'new', 'p1: segment new');
$p = profile($fdb, 'p50');
is($p->{derived}{rfm}, '115', 'p50 (long ago, big): 115');
is($p->{derived}{segment}, 'lost', 'p50: segment lost');

$r = ctl('--db', $fdb, 'rfm', 'set', '--monetary', '1,2,3,4');
is($r->{code}, 0, 'rfm set: exit 0') or diag $r->{err};
is(profile($fdb, 'p1')->{derived}{m}, 5, 'rfm set: monetary cut-points used');
$cuts = ctl_json('--db', $fdb, 'rfm', 'show', '--json');
is($cuts->{computed_on}, undef, 'rfm set: preset');
$r = ctl('--db', $fdb, 'rfm', 'set', '--recency', '4,3,2,1');
is($r->{code}, 1, 'rfm set: descending cut-points refused');
$r = ctl('--db', $fdb, 'rfm', 'set', '--recency', '1,2,3');
is($r->{code}, 2, 'rfm set: 3 numbers is a usage error');

# ---- export round trips --------------------------------------------------------

my $x1 = ctl('--db', $ddb, 'export', '--profiles');
is($x1->{code}, 0, 'export --profiles: exit 0');
my $xd = eval { $json->decode($x1->{out}) } || {};
is(scalar @{ $xd->{profiles} || [] }, 3, 'export --profiles: 3 profiles');
is(ref $xd->{rules}, 'HASH', 'export: rules');
my $xf = spew('export.json', $x1->{out});
is(ctl('--db', "$tmp/rt", 'import', $xf)->{code}, 0, 'the export imports');
is(ctl('--db', "$tmp/rt", 'export', '--profiles')->{out}, $x1->{out},
   'export -> import -> export is identical');
is_deeply(profile("$tmp/rt", 'alice'), profile($ddb, 'alice'),
          'round trip: the same derived values');
my $x2 = ctl('--db', $ddb, 'export', '--jsonl');
is(scalar(() = $x2->{out} =~ /\n/g), 3, 'export --jsonl: a line a profile');
is(ctl('--db', "$tmp/rt2", 'import', spew('x.jsonl', $x2->{out}))->{code}, 0,
   'export --jsonl imports');
is(ctl('--db', "$tmp/rt2", 'export', '--jsonl')->{out}, $x2->{out},
   'JSON lines round trip');
is(ctl('--db', $ddb, 'export', '--jsonl', '--profiles')->{code}, 2,
   '--jsonl and --profiles: usage error');

# the applied events go with the profiles: a repeat still counts once
my $odb = "$tmp/orders";
for my $ev ([ 'purchase', '--order', 'o-1', '--amount', 100, '--time',
              '2026-11-01' ],
            [ 'purchase', '--order', 'o-2', '--amount', 50, '--time',
              '2026-11-10' ],
            [ 'return', '--order', 'o-1', '--amount', 30 ],
            [ 'points', '--id', 'redeem-1', '--amount', -20 ]) {
    my ($type, @rest) = @$ev;
    $r = ctl('--db', $odb, '--now', $NOW, 'event', $type, '--user', 'olga',
             @rest);
    is($r->{code}, 0, "olga: $type applied") or diag $r->{err};
}
my $ox = ctl('--db', $odb, 'export', '--profiles');
my $od = eval { $json->decode($ox->{out}) } || {};
is_deeply([ map { "$_->{order_id} $_->{type} $_->{amount} $_->{returned} "
                  . "$_->{points}" } @{ $od->{orders} || [] } ],
          [ 'o-1 purchase 100 30 100', 'o-2 purchase 50 0 50',
            'redeem-1 points -20 0 -20' ],
          'export --profiles: the applied events, the return kept on its '
          . 'purchase');
my $odb2 = "$tmp/orders2";
$r = ctl('--db', $odb2, 'import', spew('orders.json', $ox->{out}));
like($r->{out}, qr/3 orders and 1 profile/, 'they import') or diag $r->{err};
is(ctl('--db', $odb2, 'export', '--profiles')->{out}, $ox->{out},
   '... export -> import -> export is identical');
for my $ev ([ 'purchase', '--order', 'o-1', '--amount', 100 ],
            [ 'return', '--order', 'o-1' ],
            [ 'points', '--id', 'redeem-1', '--amount', -20 ]) {
    $r = ctl('--db', $odb2, '--now', $NOW, 'event', @$ev[0], '--user', 'olga',
             @$ev[1 .. $#$ev]);
    like($r->{out}, qr/duplicate/, "after the import, $ev->[0] "
         . "$ev->[2] again: duplicate");
}
for my $db ($odb, $odb2) {
    $r = ctl('--db', $db, '--now', $NOW, 'event', 'return', '--user', 'olga',
             '--order', 'o-2');
    like($r->{out}, qr/applied, 50 points taken back/,
         'a return finds its purchase, with its points');
}
is_deeply(profile($odb2, 'olga'), profile($odb, 'olga'),
          '... the same profile on both sides');

# bad orders: the file is refused, naming the line and the problem
for my $bad (
    [ { user => 'olga', order_id => 'x', type => 'return', time => 1,
        amount => 1 }, qr/"type" must be "purchase" or "points"/ ],
    [ { user => 'olga', order_id => 'x', type => 'purchase', time => 1,
        amount => 10, returned => 11 }, qr/"returned" must be a number/ ],
    [ { order_id => 'x', type => 'purchase', time => 1, amount => 1 },
      qr/"user" must be a string/ ],
    [ { user => 'olga', order_id => 'x', type => 'purchase', amount => 1 },
      qr/"time" must be/ ],
    [ { user => 'olga', order_id => 'x', type => 'purchase', time => 1,
        amount => 1, coupon => 'y' }, qr/unknown member "coupon"/ ]) {
    my ($order, $want) = @$bad;
    my $f = spew('bad-orders.json', "{\"orders\": [\n"
        . $json->encode({ user => 'olga', order_id => 'ok', type => 'purchase',
                          time => 1, amount => 1 })
        . ",\n" . $json->encode($order) . "\n]}\n");
    $r = ctl('--db', $odb2, 'import', $f);
    is($r->{code}, 1, 'bad order: exit 1');
    like($r->{err}, qr/bad-orders\.json:3: orders\[1\]: $want/,
         '... the line and the problem');
}
is(ctl('--db', $odb2, 'export', '--profiles')->{out} =~ tr/\n//,
   $ox->{out} =~ tr/\n//, '... and nothing was imported');

# ---- the map grows by itself; parallel reading --------------------------------

SKIP: {
    skip "$gen not built", 9 unless -x $gen;

    my ($c, $big) = Storefront::Test::run_cmd($gen, 60000, '-t',
                                              '1795000000');
    is($c, 0, 'generated 60000 profiles');
    my $bigf = spew('big.jsonl', $big);
    ok(-s $bigf > 16 << 20, 'large enough to be read in parts');

    $r = ctl('--db', "$tmp/small", '--map-size', '256K', 'import', $bigf,
             '--jobs', 2);
    is($r->{code}, 0, 'tiny map: import succeeds') or diag $r->{err};
    like($r->{out}, qr/^the map was grown to /m, 'tiny map: grown');
    is(count("$tmp/small"), 60000, 'tiny map: every profile');

    $r = ctl('--db', "$tmp/one", 'import', $bigf, '--jobs', 1);
    is(ctl('--db', "$tmp/small", 'export', '--jsonl')->{out},
       ctl('--db', "$tmp/one", 'export', '--jsonl')->{out},
       'read in 2 parts or 1: the same profiles');

    # a bad record near the end is named by its line in the whole file
    open my $fh, '>>', $bigf or die;
    print $fh qq({"id":"late","orders":-1}\n);
    close $fh;
    $r = ctl('--db', "$tmp/late", 'import', $bigf, '--jobs', 2);
    is($r->{code}, 1, 'bad last record: exit 1');
    like($r->{err}, qr/\Q$bigf\E:60001: profile "late"/,
         'bad last record: its line in the whole file');
    ok(!-e "$tmp/late", 'bad last record: nothing written');
}

done_testing();
