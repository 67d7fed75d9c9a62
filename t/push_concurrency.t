#!/usr/bin/perl
# Push decisions under concurrency: more than 200,000 decisions for 2,000
# users from 16 client processes with their own connections, over both
# workers (reuseport), as batches (JSON arrays and JSON lines) and single
# decisions, with caps of a few seconds so that windows roll during the
# run.  Then, from the recorded sends (the audit log): no user ever went
# over any cap in any window, and none was lost (allowed answers ==
# allowed decisions recorded == the allow counter).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX ();
use Test::More;
use Time::HiRes qw(time);
use Storefront::Test qw(json_encode json_decode);

my $TOKEN = 'push-load-token-0123456789';
my $AUTH = [ Authorization => "Bearer $TOKEN" ];
my $CLIENTS = 16;
my $USERS = 2000;
my $BATCHES = 30;              # per client
my $BATCH = 500;               # decisions per batch
my $SINGLES = 7;               # single decisions after each batch
my @CATEGORIES = (('promo') x 5, ('reminder') x 3, 'transactional');
my @CHANNELS = ('push', 'push', 'sms');

my $t = Storefront::Test->new;

# ---- local helpers ------------------------------------------------------------

sub push_cmd {
    my (@args) = @_;
    return $t->ctl('push', @args);
}

# ---- nginx --------------------------------------------------------------------

$t->write_config(<<"END");
%%TEST_GLOBALS%%
worker_processes 2;
events { worker_connections 1024; }
http {
    %%TEST_GLOBALS_HTTP%%
    access_log off;
    storefront_db %%DB%%;

    server {
        listen 127.0.0.1:%%PORT%% reuseport;

        location /push/ {
            client_max_body_size 4m;
            storefront_push;
            storefront_push_token $TOKEN;
            storefront_push_cap promo 2/1s 3/3s;
            storefront_push_cap reminder 1/2s;
            storefront_push_quiet_hours off;
            storefront_push_max_batch 1000;
            add_header X-Worker \$pid always;
        }
    }
}
END
$t->run(workers => 2);

# the same policy for push verify
my $policy = $t->write_file('policy.json', json_encode({
    categories => { promo => { caps => [ '2/1s', '3/3s' ] },
                    reminder => { caps => [ '1/2s' ] } },
    quiet_hours => undef }));

# ---- the load -------------------------------------------------------------------

# Each client writes "<answers> <allowed> <errors> <pids...>" to a file.
sub client {
    my ($n) = @_;
    srand($n * 7919 + $$);
    my ($answers, $allowed, $errors) = (0, 0, 0);
    my %pids;
    my $c = $t->client;

    my $check = sub {
        my ($r, $users) = @_;
        $pids{ $r->header('x-worker') // '?' } = 1;
        if ($r->status != 200) {
            $errors++;
            return;
        }
        my @got = $r->body =~ /"user":"([^"]*)"/g;
        if ("@got" ne "@$users") {
            $errors++;
            return;
        }
        $answers += @got;
        $allowed += () = $r->body =~ /"decision":"allow"/g;
    };

    for my $b (1 .. $BATCHES) {
        my (@users, @req);
        for (1 .. $BATCH) {
            my $u = 'u' . int(rand $USERS);
            push @users, $u;
            push @req, qq({"user":"$u","category":")
                . $CATEGORIES[ rand @CATEGORIES ] . qq(","channel":")
                . $CHANNELS[ rand @CHANNELS ] . qq("});
        }
        my $lines = $b % 2;
        my $body = $lines ? join("\n", @req) . "\n"
            : '[' . join(',', @req) . ']';
        my $r = $c->request('/push/batch', method => 'POST', body => $body,
            headers => $AUTH);
        $check->($r, \@users);

        for (1 .. $SINGLES) {
            my $u = 'u' . int(rand $USERS);
            my $cat = $CATEGORIES[ rand @CATEGORIES ];
            $r = $c->request("/push/?user=$u&category=$cat", headers => $AUTH);
            $check->($r, [$u]);
        }
    }
    $c->close;

    $t->write_file("client-$n.txt",
        join(' ', $answers, $allowed, $errors, sort keys %pids) . "\n");
}

my $start = time;
my @kids;
for my $n (1 .. $CLIENTS) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my $ok = eval { client($n); 1 };
        print STDERR "client $n: $@" unless $ok;
        POSIX::_exit($ok ? 0 : 1);
    }
    push @kids, $pid;
}
my $failed_kids = 0;
for (@kids) {
    waitpid($_, 0);
    $failed_kids++ if $?;
}
my $elapsed = time - $start;

is($failed_kids, 0, "$CLIENTS clients finished");

my ($answers, $allowed, $errors) = (0, 0, 0);
my %pids;
for my $n (1 .. $CLIENTS) {
    my $line = $t->read_file("client-$n.txt") // '';
    my ($a, $al, $e, @p) = split ' ', $line;
    $answers += $a // 0;
    $allowed += $al // 0;
    $errors += $e // 0;
    $pids{$_} = 1 for @p;
}

my $expected = $CLIENTS * $BATCHES * ($BATCH + $SINGLES);
is($errors, 0, 'every response 200 with the answers in request order');
is($answers, $expected, "$expected decisions answered");
cmp_ok($answers, '>=', 200_000, '... at least 200,000');
is(scalar(grep { /^\d+$/ } keys %pids), 2, 'both workers decided')
    or diag(join ' ', keys %pids);
diag(sprintf '%d decisions in %.1f s (%.0f/s), %d allowed', $answers,
    $elapsed, $answers / ($elapsed || 1), $allowed);
cmp_ok($allowed, '>', $answers / 20, 'many were allowed');
cmp_ok($allowed, '<', $answers / 2, 'many were capped');

# ---- from the recorded sends ---------------------------------------------------

my $r = $t->get('/push/counters', headers => $AUTH);
my $cnt = json_decode($r->body);
is($cnt->{decisions}, $answers, 'counters: every decision counted');
is($cnt->{allow}, $allowed, 'counters: allowed == allowed answers');

my ($code, $out, $err) = push_cmd('verify', '--policy', $policy, '--json');
my $v = eval { json_decode($out) } // {};
is($code, 0, 'push verify passes') or diag("$out$err");
is($v->{decisions}, $answers, 'the log holds every decision');
is($v->{log}{allow}, $allowed, 'the log holds every allowed send: none lost');
is($v->{cap_violations}, 0, 'no user over any cap in any window');
is($v->{counters_match}, JSON::PP::true, 'counters equal to the log');
is($v->{out_of_order}, 0, 'recorded times follow the commit order');
cmp_ok($v->{keys}, '>', $USERS, 'capped (user, category, channel) checked');

$t->stop;

done_testing;
