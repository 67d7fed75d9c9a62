#!/usr/bin/perl
# Fail open: with a missing or corrupt database nginx starts and serves
# every request (200, never 500) without decisions, status "unavailable",
# logging the problem once per worker.  An empty database is "ok".

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Storefront::Test;

my $WORKERS = 2;
my $REQUESTS = 30;

sub check {
    my ($name, $db, %opt) = @_;
    my $t = Storefront::Test->new;
    $opt{setup}->($t) if $opt{setup};
    $t->write_config($t->std_config(workers => $WORKERS, db => $db));

    my ($code, $out) = $t->nginx_t;
    is($code, 0, "$name: nginx -t passes") or diag($out);
    $t->run(workers => $WORKERS);

    my ($ok200, $status, $novariants, $var_status) = (0, 0, 0, 0);
    for my $i (1 .. $REQUESTS) {
        my $r = $t->get('/', headers => [ 'X-User-Id' => "u$i" ]);
        my %e = $r->echo;
        $ok200++ if $r->status == 200;
        $status++ if ($e{status} // '') eq $opt{status};
        $novariants++ if ($e{variants} // '') eq '';
        $var_status++ if ($r->header('x-t-status') // '') eq $opt{status};
    }
    is($ok200, $REQUESTS, "$name: all requests 200");
    is($status, $REQUESTS, "$name: upstream Status $opt{status}");
    is($var_status, $REQUESTS, "$name: \$storefront_status $opt{status}");
    is($novariants, $REQUESTS, "$name: no variants");

    my @lines = grep { /storefront|lmdb|mdb/i && !/start worker/ }
        $t->log_lines(qr/\[(?:emerg|alert|crit|error|warn)\]/);
    if ($opt{status} eq 'unavailable') {
        cmp_ok(scalar @lines, '>=', 1, "$name: logged");
        cmp_ok(scalar @lines, '<=', $WORKERS,
            "$name: at most one error-log line per worker")
            or diag(join "\n", @lines);
    } else {
        is(scalar @lines, 0, "$name: nothing logged") or diag(join "\n", @lines);
    }
    $opt{after}->($t) if $opt{after};
    $t->stop;
}

# A database created later is picked up without a reload.
check('missing database', '%%PREFIX%%/no/such/db', status => 'unavailable',
    after => sub {
        my ($t) = @_;
        my $db = $t->prefix . '/no/such/db';
        mkdir $t->prefix . '/no';
        mkdir $t->prefix . '/no/such';
        mkdir $db;
        my ($c, $o, $e) = $t->ctl('--db', $db, 'import',
            $t->write_file('late.json', '{"experiments":[{"key":"late",'
                . '"variations":[0,1]}]}'));
        is($c, 0, 'database created while nginx runs') or diag($e);
        my $ok = 0;
        for (1 .. 60) {
            my $all = 1;
            for my $i (1 .. 6) {
                my %e = $t->get('/', headers => [ 'X-User-Id' => "u$i" ])
                    ->echo;
                $all &&= ($e{status} // '') eq 'ok'
                    && ($e{variants} // '') =~ /^late=[01]$/;
            }
            if ($all) { $ok = 1; last }
            select undef, undef, undef, 0.1;
        }
        ok($ok, 'the new database is used within seconds, without a reload');
    });

check('corrupt database', '%%PREFIX%%/corrupt', status => 'unavailable',
    setup => sub {
        my ($t) = @_;
        mkdir $t->prefix . '/corrupt';
        $t->write_file('corrupt/data.mdb', 'this is not an LMDB file ' x 4096);
        $t->write_file('corrupt/lock.mdb', "\0" x 8192);
    });

check('empty database', '%%DB%%', status => 'ok', setup => sub {
    my ($t) = @_;
    $t->must_import({ experiments => [] });
});

done_testing;
