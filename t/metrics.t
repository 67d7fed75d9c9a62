#!/usr/bin/perl
# The Prometheus endpoint (storefront_metrics): the text parses with a
# strict parser of the exposition format 0.0.4 (HELP and TYPE once per
# family and before its samples, families not interleaved, label syntax
# and escapes, float values, no duplicate series, counters named _total
# and not negative) and the values are the traffic's: requests decided,
# decisions and exposures per experiment and variation, conversions,
# push decisions by reason, database gauges; a database that cannot be
# opened is counted as fail-open; "token" requires the admin token;
# storefront_stats off counts nothing; configuration errors.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Storefront::Test qw(gb_assign json_encode);

my $TOKEN = 'metrics-token-0123456789ab';

# ---- a strict parser --------------------------------------------------------

my $NAME = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
my $LABEL = qr/[a-zA-Z_][a-zA-Z0-9_]*/;
my $FLOAT = qr/[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Inf|NaN)/;

# Returns ({ name => { type, help, samples => [ [ \%labels, value ] ] } },
# \@errors).
sub parse_prometheus {
    my ($text) = @_;
    my (%fam, @err, %done, %series);
    my $current = '';
    push @err, 'does not end with a newline' unless $text =~ /\n\z/;
    my $n = 0;
    for my $line (split /\n/, $text) {
        $n++;
        if ($line =~ /^# (HELP|TYPE) ($NAME) (.*)$/) {
            my ($kind, $name, $rest) = ($1, $2, $3);
            push @err, "line $n: $kind of $name after its samples"
                if $fam{$name}{samples} && @{ $fam{$name}{samples} };
            push @err, "line $n: second $kind for $name"
                if defined $fam{$name}{ lc $kind };
            if ($kind eq 'TYPE') {
                push @err, "line $n: unknown type $rest"
                    unless $rest =~ /^(?:counter|gauge|histogram|summary|untyped)$/;
            } else {
                push @err, "line $n: bad escape in HELP"
                    if $rest =~ /\\(?![\\n])/;
            }
            $fam{$name}{ lc $kind } = $rest;
            next;
        }
        if ($line =~ /^#/) {
            push @err, "line $n: not a HELP or TYPE line: $line";
            next;
        }
        my ($name, $labels, $value) =
            $line =~ /^($NAME)(?:\{(.*)\})? ($FLOAT)(?: -?\d+)?$/
            or do { push @err, "line $n: not a sample: $line"; next };
        my %l;
        my $rest = $labels // '';
        while (length $rest) {
            $rest =~ s/^($LABEL)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)//
                or do { push @err, "line $n: bad labels: {$labels}"; last };
            my ($k, $v) = ($1, $2);
            push @err, "line $n: label $k twice" if exists $l{$k};
            $v =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ge;
            $l{$k} = $v;
        }
        if ($name ne $current) {
            push @err, "line $n: samples of $name are not grouped"
                if $done{$name};
            $done{$current} = 1 if $current;
            $current = $name;
        }
        push @err, "line $n: sample of $name without TYPE"
            unless defined $fam{$name}{type};
        my $id = join "\0", $name, map { "$_=$l{$_}" } sort keys %l;
        push @err, "line $n: duplicate series $line" if $series{$id}++;
        if (($fam{$name}{type} // '') eq 'counter') {
            push @err, "line $n: counter $name not named _total"
                unless $name =~ /_total$/;
            push @err, "line $n: negative counter" if $value < 0;
        }
        push @{ $fam{$name}{samples} }, [ \%l, $value ];
    }
    return (\%fam, \@err);
}

# the value of one series, undef when absent
sub value {
    my ($fam, $name, %labels) = @_;
    for my $s (@{ $fam->{$name}{samples} // [] }) {
        next unless keys %{ $s->[0] } == keys %labels;
        next if grep { ($s->[0]{$_} // "\0") ne $labels{$_} } keys %labels;
        return $s->[1];
    }
    return undef;
}

# the parser refuses what it should
{
    my ($f, $e) = parse_prometheus("# TYPE a_total counter\na_total 1\n");
    is_deeply($e, [], 'parser: a valid text');
    for my $bad ("a_total 1\n", "# TYPE a gauge\na{x=\"1\"} one\n",
        "# TYPE a gauge\na{x=\"\\q\"} 1\n", "# TYPE a gauge\na 1\n# TYPE a gauge\n",
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"1\"} 1\n",
        "# TYPE a gauge\na 1\na 2\n", "# TYPE a counter\na 1\n",
        "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n", "# TYPE a gauge\na 1")
    {
        my (undef, $err) = parse_prometheus($bad);
        ok(scalar @$err, 'parser refuses ' . ($bad =~ s/\n/\\n/gr));
    }
}

# ---- configuration ------------------------------------------------------------

my $t = Storefront::Test->new;

sub conf_with {
    my ($http, $location) = @_;
    return <<"EOF";
%%TEST_GLOBALS%%
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    $http
    server {
        listen 127.0.0.1:%%PORT%%;
        location /x {
            $location
        }
    }
}
EOF
}

my @bad = (
    [ '', 'storefront_metrics;',
      qr/no "storefront_db" is defined for "storefront_metrics"/ ],
    [ 'storefront_db %%DB%%;', 'storefront_metrics token;',
      qr/"storefront_metrics token" requires "storefront_admin_token"/ ],
    [ 'storefront_db %%DB%%;', 'storefront_metrics secret;',
      qr/invalid parameter "secret" in "storefront_metrics" directive/ ],
    [ 'storefront_db %%DB%%;', 'storefront_convert;',
      qr/"storefront_convert" requires "storefront on"/ ],
    [ 'storefront_db %%DB%%; storefront_stats_flush 5ms;', '',
      qr/"storefront_stats_flush" directive must be from 10ms to 60s/ ],
    [ 'storefront_db %%DB%%; storefront_stats maybe;', '',
      qr/invalid value "maybe" in "storefront_stats" directive/ ],
    [ 'storefront_db %%DB%%;', 'storefront_status_page; storefront_status_page;',
      qr/"storefront_status_page" directive is duplicate/ ],
);
for my $case (@bad) {
    my ($code, $out) = $t->nginx_t(conf_with($case->[0], $case->[1]));
    isnt($code, 0, "nginx -t fails: $case->[1] $case->[0]");
    like($out, $case->[2], '... saying why');
}
my ($code, $out) = $t->nginx_t(conf_with('storefront_db %%DB%%; '
    . "storefront_stats_flush 250ms; storefront_admin_token $TOKEN;",
    'storefront_metrics token;'));
is($code, 0, 'storefront_metrics token with a token passes') or diag($out);

# ---- values -------------------------------------------------------------------

my $exp = { key => 'm-exp', variations => [ 'x', 'y', 'z' ],
    meta => [ { key => 'ctl' }, { key => 'v1' }, { key => 'v2' } ] };
my $forced = { key => 'm-forced', variations => [ 0, 1 ], force => 1 };
$t->must_import({ experiments => [ $exp, $forced ] });

$t->write_config($t->std_config(workers => 2, listen => 'reuseport',
    http => 'storefront_stats_flush 50ms;', server => <<"EOF"));
        storefront_admin_token $TOKEN;
        location = /metrics { storefront off; storefront_metrics; }
        location = /metrics-t { storefront off; storefront_metrics token; }
        location /admin/ { storefront_admin; }
        location /nocount {
            storefront_stats off;
            proxy_pass http://127.0.0.1:%%PORT2%%;
        }
EOF
$t->run(workers => 2);

# a location with storefront_stats off decides but counts nothing
my $nc = 0;
for my $u (map { "nc-$_" } 1 .. 5) {
    $nc++ if exists $t->get('/nocount', headers => [ 'X-User-Id' => $u ])
        ->variants->{'m-exp'};
}
is($nc, 5, 'storefront_stats off in a location: decisions are made');

my @users = map { "m-$_" } 1 .. 120;
my (%decisions, %expo);
for my $round (1 .. 2) {
    for my $u (@users) {
        my $r = $t->get('/', headers => [ 'X-User-Id' => $u ]);
        my $v = $r->variants->{'m-exp'};
        $decisions{$v}++;
    }
}
$expo{ $exp->{meta}[ gb_assign($exp, $_) ]{key} }++ for @users;

my @buy = map { { type => 'purchase', user => $users[$_],
    order_id => "o$_", amount => 10 } } 0 .. 29;
sleep 0.3;
my $r = $t->get('/admin/events', method => 'POST',
    headers => [ Authorization => "Bearer $TOKEN" ], body => json_encode(\@buy));
is($r->status, 200, '30 purchases') or diag($r->body);
my %conv;
$conv{ $exp->{meta}[ gb_assign($exp, $users[$_]) ]{key} }++ for 0 .. 29;

$r = $t->get('/metrics');
is($r->status, 200, 'GET /metrics');
like($r->header('content-type'), qr{^text/plain; version=0\.0\.4},
    'Content-Type text/plain; version=0.0.4');
my ($fam, $err) = parse_prometheus($r->body);
is_deeply($err, [], 'the metrics parse as Prometheus text')
    or diag(join "\n", @$err[0 .. ($#$err < 9 ? $#$err : 9)]);

for my $f (qw(storefront_requests_decided_total
    storefront_requests_fail_open_total storefront_decisions_total
    storefront_exposures_total storefront_conversions_total
    storefront_orders_total storefront_revenue_total storefront_returns_total
    storefront_ad_impressions_total storefront_ad_clicks_total
    storefront_push_decisions_total storefront_db_map_size_bytes
    storefront_db_used_bytes storefront_db_readers
    storefront_experiment_srm_alarm storefront_exposures_dropped_total))
{
    ok(defined $fam->{$f}{type} && defined $fam->{$f}{help},
        "$f has HELP and TYPE");
}

is(value($fam, 'storefront_requests_decided_total'), 240,
    'requests decided: 240 (the endpoints have storefront off, /nocount '
    . 'storefront_stats off)');
is(value($fam, 'storefront_requests_fail_open_total'), 0, 'fail-open: 0');
is_deeply({ map { $_ => value($fam, 'storefront_decisions_total',
    experiment => 'm-exp', variation => $_) } keys %decisions },
    \%decisions, 'decisions per variation: every request');
is(value($fam, 'storefront_decisions_total', experiment => 'm-forced',
    variation => '1'), 240, 'forced variations are decisions too');
is_deeply({ map { $_ => value($fam, 'storefront_exposures_total',
    experiment => 'm-exp', variation => $_) } keys %expo }, \%expo,
    'exposures per variation: unique users (none from /nocount)');
is(value($fam, 'storefront_exposures_total', experiment => 'm-forced',
    variation => '1'), 0, 'forced variations are not exposures');
is_deeply({ map { $_ => value($fam, 'storefront_conversions_total',
    experiment => 'm-exp', variation => $_) } keys %conv }, \%conv,
    'conversions per variation');
is(value($fam, 'storefront_revenue_total', experiment => 'm-exp',
    variation => 'ctl'), 10 * ($conv{ctl} // 0), 'revenue of the control');
is_deeply([ sort map { $_->[0]{reason} }
    @{ $fam->{storefront_push_decisions_total}{samples} } ],
    [ sort qw(allow cap quiet_hours opted_out throttled duplicate) ],
    'push decisions by every reason');
is(value($fam, 'storefront_db_up'), 1, 'database up');
is(value($fam, 'storefront_db_experiments'), 2, 'two experiments');
cmp_ok(value($fam, 'storefront_db_readers'), '>=', 1, 'readers in use');
cmp_ok(value($fam, 'storefront_db_used_bytes'), '<',
    value($fam, 'storefront_db_map_size_bytes'), 'map usage below the map');
is(value($fam, 'storefront_experiment_srm_alarm', experiment => 'm-exp'), 0,
    'no sample ratio alarm');

$r = $t->get('/metrics-t');
is($r->status, 401, 'metrics with "token": 401 without the token');
$r = $t->get('/metrics-t', headers => [ Authorization => 'Bearer nope' ]);
is($r->status, 401, '... and with another');
$r = $t->get('/metrics-t', headers => [ Authorization => "Bearer $TOKEN" ]);
is($r->status, 200, '... 200 with it');
$r = $t->get('/metrics', method => 'POST', body => 'x');
is($r->status, 405, 'POST /metrics: 405');

# the counters are the cluster's and survive a reload
ok($t->reload(workers => 2), 'reload');
($fam) = parse_prometheus($t->get('/metrics')->body);
is(value($fam, 'storefront_requests_decided_total'), 240,
    'the shared counters survive a reload');
$t->stop;

# ---- fail-open and storefront_stats off ----------------------------------------

my $f = Storefront::Test->new;
$f->write_config($f->std_config(db => '%%PREFIX%%/no/such/db',
    http => 'storefront_stats_flush 50ms;',
    server => 'location = /metrics { storefront off; storefront_metrics; }'));
$f->run;
$f->get('/', headers => [ 'X-User-Id' => "f-$_" ]) for 1 .. 7;
sleep 0.2;
($fam, $err) = parse_prometheus($f->get('/metrics')->body);
is_deeply($err, [], 'no database: the metrics still parse');
is(value($fam, 'storefront_requests_fail_open_total'), 7,
    'no database: 7 requests served fail-open');
is(value($fam, 'storefront_requests_decided_total'), 0, '... none decided');
is(value($fam, 'storefront_db_up'), 0, '... database down');
is(value($fam, 'storefront_db_used_bytes'), undef,
    '... and no database gauges');
$f->stop;

my $o = Storefront::Test->new;
$o->must_import({ experiments => [ $exp ] });
$o->write_config($o->std_config(http => 'storefront_stats off;',
    server => 'location = /metrics { storefront off; storefront_metrics; }'));
$o->run;
$o->get('/', headers => [ 'X-User-Id' => "o-$_" ]) for 1 .. 5;
sleep 1.2;
($fam) = parse_prometheus($o->get('/metrics')->body);
is(value($fam, 'storefront_requests_decided_total'), 0,
    'storefront_stats off: requests are not counted');
is(value($fam, 'storefront_exposures_total', experiment => 'm-exp',
    variation => 'ctl'), 0, '... and no exposures');
$o->stop;

done_testing;
