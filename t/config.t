#!/usr/bin/perl
# nginx -t accepts a full valid configuration and rejects bad directives with
# a message that names the directive and the bad value.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Storefront::Test;

my $t = Storefront::Test->new;

sub conf {
    my (%o) = @_;
    my $http = $o{http} // 'storefront_db %%DB%%;';
    my $server = $o{server} // '';
    my $location = $o{location} // '';
    return <<"END";
%%TEST_GLOBALS%%
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    $http
    server {
        listen 127.0.0.1:%%PORT%%;
        $server
        location / {
            $location
            return 204;
        }
    }
}
END
}

# ---- valid ------------------------------------------------------------------

my ($code, $out) = $t->nginx_t(conf(
    http => 'storefront_db %%DB%% map_size=64m;',
    server => q{
        storefront on;
        storefront_user_id $cookie_uid;
        storefront_cookie sf_anon max_age=30d domain=example.com path=/
            secure httponly samesite=lax;
        storefront_attribute country $http_x_country;
        storefront_attribute device "$http_user_agent";
        storefront_qa_override on;
        storefront_header_prefix X-Shop-;
    },
    location => 'storefront off; storefront_qa_override off;'));
is($code, 0, 'all directives: nginx -t succeeds') or diag($out);
like($out, qr/test is successful/, 'all directives: test is successful');

($code, $out) = $t->nginx_t(conf(server => 'storefront on;'));
is($code, 0, 'minimal: storefront_db + storefront on') or diag($out);

for my $ss (qw(strict lax none)) {
    ($code, $out) = $t->nginx_t(conf(server => "storefront on;
        storefront_cookie shopper samesite=$ss secure;"));
    is($code, 0, "samesite=$ss accepted") or diag($out);
}

# ---- invalid: [name, config, directive, bad value] -------------------------

my @bad = (
    [ 'flag value', conf(server => 'storefront maybe;'),
      'storefront', 'maybe' ],
    [ 'qa_override value', conf(server => 'storefront_qa_override yes;'),
      'storefront_qa_override', 'yes' ],
    [ 'map_size value', conf(http => 'storefront_db %%DB%% map_size=lots;'),
      'storefront_db', 'lots' ],
    [ 'storefront_db parameter',
      conf(http => 'storefront_db %%DB%% colour=red;'),
      'storefront_db', 'colour=red' ],
    [ 'samesite value',
      conf(server => 'storefront_cookie sf_anon samesite=sometimes;'),
      'storefront_cookie', 'sometimes' ],
    [ 'max_age value',
      conf(server => 'storefront_cookie sf_anon max_age=forever;'),
      'storefront_cookie', 'forever' ],
    [ 'cookie parameter',
      conf(server => 'storefront_cookie sf_anon colour=red;'),
      'storefront_cookie', 'colour=red' ],
    [ 'cookie name', conf(server => 'storefront_cookie "sf;anon";'),
      'storefront_cookie', 'sf;anon' ],
    [ 'header prefix', conf(server => 'storefront_header_prefix "X Bad:";'),
      'storefront_header_prefix', 'X Bad:' ],
);

for my $b (@bad) {
    my ($name, $conf, $directive, $value) = @$b;
    my ($c, $o) = $t->nginx_t($conf);
    isnt($c, 0, "$name: nginx -t fails");
    like($o, qr/\[emerg\]/, "$name: emerg");
    like($o, qr/(?<![\w\/-])\Q$directive\E(?![\w-])/,
        "$name: message names \"$directive\"")
        or diag($o);
    like($o, qr/\Q$value\E/, "$name: message names the value \"$value\"")
        or diag($o);
    like($o, qr/\.conf:\d+/, "$name: message has file and line") or diag($o);
}

# nginx's own checks still apply to the module's directives.
my @core = (
    [ 'arguments', conf(server => 'storefront_attribute country;'),
      qr/invalid number of arguments in "storefront_attribute" directive/ ],
    [ 'unknown variable', conf(server => 'storefront_user_id $no_such_var;'),
      qr/unknown "no_such_var" variable/ ],
    [ 'context', conf(server => 'storefront_db %%DB%%;'),
      qr/"storefront_db" directive is not allowed here/ ],
    [ 'duplicate', conf(http => 'storefront_db %%DB%%; storefront_db /x;'),
      qr/"storefront_db" directive is duplicate/ ],
    [ 'flag arguments', conf(server => 'storefront on off;'),
      qr/invalid number of arguments in "storefront" directive/ ],
);

for my $c (@core) {
    my ($name, $conf, $re) = @$c;
    my ($rc, $o) = $t->nginx_t($conf);
    isnt($rc, 0, "$name: nginx -t fails");
    like($o, $re, "$name: message") or diag($o);
}

done_testing;
