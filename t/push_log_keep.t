#!/usr/bin/perl
# The push decision log is bounded in time (storefront_push_log_keep):
# decisions older than the time kept leave the log as new ones are made
# (two for each new one), the counters still add up (push verify counts
# what expired), "off" keeps everything; configuration errors.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use Storefront::Test qw(json_decode);

my $TOKEN = 'push-keep-token-0123456789';
my @AUTH = (Authorization => "Bearer $TOKEN");

my $t = Storefront::Test->new;

sub conf_with {
    my ($directive) = @_;
    return <<"EOF";
%%TEST_GLOBALS%%
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    storefront_db %%DB%%;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /push/ {
            storefront_push;
            storefront_push_token $TOKEN;
            $directive
        }
    }
}
EOF
}

for my $case ([ 'storefront_push_log_keep 7d;', undef ],
    [ 'storefront_push_log_keep off;', undef ],
    [ 'storefront_push_log_keep 0s;', qr/invalid value "0s"/ ],
    [ 'storefront_push_log_keep forever;', qr/invalid value "forever"/ ],
    [ 'storefront_push_log_keep 1d; storefront_push_log_keep 2d;',
      qr/is duplicate/ ])
{
    my ($line, $error) = @$case;
    my ($code, $out) = $t->nginx_t(conf_with($line));
    if ($error) {
        isnt($code, 0, "\"$line\" fails nginx -t");
        like($out, $error, '... saying why');
    } else {
        is($code, 0, "\"$line\" passes nginx -t") or diag($out);
    }
}

$t->write_config(<<"EOF");
%%TEST_GLOBALS%%
worker_processes 1;
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    storefront_db %%DB%%;

    server {
        listen 127.0.0.1:%%PORT%%;
        storefront_push_token $TOKEN;
        storefront_push_quiet_hours off;
        storefront_push_cap news off;

        location /short/ {
            storefront_push;
            storefront_push_log_keep 1s;
        }

        location /all/ {
            storefront_push;
            storefront_push_log_keep off;
        }
    }
}
EOF
$t->run;

sub decide {
    my ($path, $user) = @_;
    my $r = $t->get("$path?user=$user&category=news", headers => \@AUTH);
    my $a = eval { json_decode($r->body) } // {};
    return $a->{decision} // 'none';
}

sub logged {
    my ($code, $out) = $t->ctl('push', 'log', '--jsonl');
    return map { json_decode($_)->{user} } grep { length } split /\n/, $out;
}

my $allowed = grep { decide('/short/', "old-$_") eq 'allow' } 1 .. 10;
is($allowed, 10, '10 decisions made');
is(scalar(logged()), 10, '... all in the log');

sleep 1.3;
$allowed = grep { decide('/short/', "new-$_") eq 'allow' } 1 .. 10;
is($allowed, 10, '10 more, more than a second later');
my @users = logged();
is(scalar(@users), 10, 'the log keeps the last second: 10 decisions');
is(scalar(grep { /^new-/ } @users), 10, '... the new ones');

my ($code, $out) = $t->ctl('push', 'verify', '--json');
my $v = eval { json_decode($out) } // {};
is($code, 0, 'push verify passes') or diag($out);
is($v->{expired}{allow}, 10, '... 10 decisions expired from the log');
is($v->{counters_match}, JSON::PP::true(),
    '... the counters equal the log plus what expired');

# "off" keeps everything, whatever its age
sleep 1.3;
$allowed = grep { decide('/all/', "kept-$_") eq 'allow' } 1 .. 4;
is($allowed, 4, 'decisions where the log keeps everything');
is(scalar(logged()), 14, '... nothing expired: 14 in the log');

$t->stop;

done_testing;
