#!/usr/bin/perl
# Who the visitor is, at the edge: segment, RFM code, lifecycle, tier,
# tier benefits and points as headers to the upstream and as variables,
# for an imported profile (storefrontctl import) and for profiles built
# from events; defaults for a visitor without a profile; changes after
# purchase events posted to the admin endpoint, without a reload;
# idempotent events; targeting conditions on tier and segment (in and
# out); only the attributes named by storefront_profile_attributes go out;
# recency ageing with the clock moved 200 days forward (nginx under
# libfaketime).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX qw(strftime);
use Test::More;
use Storefront::Test qw(json_encode json_decode);

my $TOKEN = 'profile-test-token-0123456789';
my @AUTH = (Authorization => "Bearer $TOKEN");

my @experiments = (
    { key => 'gold_price', variations => [ 'a', 'b' ],
      meta => [ { key => 'a' }, { key => 'b' } ],
      condition => { tier => 'gold' } },
    { key => 'winback', variations => [ 0, 1 ],
      condition => { segment => { '$in' => [ 'need_attention', 'at_risk',
          'lost' ] } } },
    { key => 'repeat', variations => [ 0, 1 ],
      condition => { orders => { '$gte' => 2 } } },
    { key => 'everyone', variations => [ 0, 1 ] },
    { key => 'rfm_coded', variations => [ 0, 1 ],
      condition => { rfm => '534', rfm_r => 5 } },
);

my $t = Storefront::Test->new;
$t->must_import({ experiments => \@experiments });

# A profile with free-form attributes, imported with storefrontctl.
$t->must_import({ profiles => [
    { id => 'imp', orders => 3, monetary => 2000, spend_365 => 1500,
      last_order => time - 86400, first_order => time - 200 * 86400,
      attributes => { country => 'CN', age_band => '25-34',
          tags => [ 'high_repurchase', 'vip' ], secret => 'no',
          bad => "a\r\nX-Injected: 1" } } ] });

# ---- configuration ---------------------------------------------------------

sub conf_with {
    my ($directives) = @_;
    return <<"EOF";
%%TEST_GLOBALS%%
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    storefront_db %%DB%%;
    server {
        listen 127.0.0.1:%%PORT%%;
        storefront on;
        $directives
    }
}
EOF
}

my ($code, $out) = $t->nginx_t(conf_with(
    'storefront_profile_attributes country age_band top_category;'));
is($code, 0, 'storefront_profile_attributes passes nginx -t') or diag($out);
($code, $out) = $t->nginx_t(conf_with(
    'storefront_profile_attributes country "bad name";'));
isnt($code, 0, 'an attribute name with a space fails');
like($out, qr/invalid attribute name "bad name" in "storefront_profile_attr/,
    '... in nginx\'s words');
($code, $out) = $t->nginx_t(conf_with(
    'storefront_profile_attributes age_band Age-Band;'));
isnt($code, 0, 'names giving the same header fail');
like($out, qr/duplicate attribute "Age-Band"/, '... as duplicates');
($code, $out) = $t->nginx_t(conf_with(
    'storefront_attribute tier $http_x_tier;'));
isnt($code, 0, 'storefront_attribute cannot shadow a computed name');
like($out, qr/attribute name "tier" is reserved/, '... "tier" is reserved');

my $hp = 'x_storefront_';
my $echo = <<"EOF";
    server {
        listen 127.0.0.1:%%PORT2%%;
        location / {
            default_type text/plain;
            return 200 "segment=\$http_${hp}segment
rfm=\$http_${hp}rfm
lifecycle=\$http_${hp}lifecycle
tier=\$http_${hp}tier
benefits=\$http_${hp}tier_benefits
points=\$http_${hp}points
variants=\$http_${hp}variants
status=\$http_${hp}status
a_top=\$http_${hp}attr_top_category
a_country=\$http_${hp}attr_country
a_age=\$http_${hp}attr_age_band
a_tags=\$http_${hp}attr_tags
a_orders=\$http_${hp}attr_orders
a_secret=\$http_${hp}attr_secret
a_bad=\$http_${hp}attr_bad
injected=\$http_x_injected
";
        }
    }
EOF

$t->write_config(<<"EOF");
%%TEST_GLOBALS%%
worker_processes 1;
events { }
http {
    %%TEST_GLOBALS_HTTP%%
    storefront_db %%DB%%;
    storefront_profile_attributes top_category country age_band tags bad;

    server {
        listen 127.0.0.1:%%PORT%%;
        storefront on;
        storefront_user_id \$http_x_user_id;

        location / {
            proxy_pass http://127.0.0.1:%%PORT2%%;
            add_header X-T-Segment \$storefront_segment;
            add_header X-T-Rfm \$storefront_rfm;
            add_header X-T-Lifecycle \$storefront_lifecycle;
            add_header X-T-Tier \$storefront_tier;
            add_header X-T-Benefits \$storefront_tier_benefits;
            add_header X-T-Points \$storefront_points;
            add_header X-T-Top \$storefront_profile_top_category;
            add_header X-T-Age \$storefront_profile_age_band;
            add_header X-T-Orders \$storefront_profile_orders;
            add_header X-T-Secret \$storefront_profile_secret;
        }

        location /private/ {
            storefront_profile_attributes off;
            proxy_pass http://127.0.0.1:%%PORT2%%;
            add_header X-T-Top \$storefront_profile_top_category;
        }

        location /numbers/ {
            storefront_profile_attributes orders;
            proxy_pass http://127.0.0.1:%%PORT2%%;
            add_header X-T-Orders \$storefront_profile_orders;
            add_header X-T-Top \$storefront_profile_top_category;
        }

        location /admin/ {
            storefront_admin;
            storefront_admin_token $TOKEN;
        }
    }

$echo
}
EOF
$t->run;

sub visit {
    my ($user, %opt) = @_;
    my @h = defined $user ? ('X-User-Id' => $user) : ();
    my $r = $t->get($opt{path} // '/', headers => [ @h,
        @{ $opt{headers} // [] } ]);
    my %e = $r->echo;
    return ($r, \%e);
}

sub post_events {
    my ($events) = @_;
    my $r = $t->get('/admin/events', method => 'POST',
        body => json_encode($events), headers => [ @AUTH ]);
    die 'events: ' . $r->status . ' ' . $r->body if $r->status != 200;
    return json_decode($r->body);
}

sub iso { strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $_[0]) }

# ---- a visitor without a profile -------------------------------------------

my ($r, $e) = visit('stranger');
is($r->status, 200, 'a visitor without a profile is served');
is($e->{status}, 'ok', '... with decisions');
is($e->{segment}, 'others', '... segment "others"');
is($e->{rfm}, '000', '... RFM 000');
is($e->{lifecycle}, 'new', '... lifecycle "new"');
is($e->{tier}, 'regular', '... the first tier');
is_deeply(json_decode($e->{benefits}),
    { discount => 0, free_shipping => JSON::PP::false },
    '... its benefits as compact JSON');
is($e->{points}, '0', '... 0 points');
is($r->header('x-t-segment'), 'others', '$storefront_segment');
is($r->header('x-t-rfm'), '000', '$storefront_rfm');
is($r->header('x-t-lifecycle'), 'new', '$storefront_lifecycle');
is($r->header('x-t-tier'), 'regular', '$storefront_tier');
like($r->header('x-t-benefits') // '', qr/^\{"discount":0,/,
    '$storefront_tier_benefits');
is($r->header('x-t-points'), '0', '$storefront_points');
is($e->{a_top}, '', '... no top category to send');
my $v = $r->variants;
ok(!exists $v->{gold_price}, '... not in the gold-only experiment');
ok(!exists $v->{winback}, '... not in the win-back experiment');
ok(exists $v->{everyone}, '... in the untargeted experiment');

# An anonymous visitor too.
($r, $e) = visit(undef);
is($e->{segment}, 'others', 'an anonymous visitor: segment "others"');
is($e->{tier}, 'regular', '... and the first tier');

# Spoofed profile headers are replaced.
($r, $e) = visit('stranger', headers => [ 'X-Storefront-Tier' => 'gold',
    'X-Storefront-Segment' => 'champions',
    'X-Storefront-Attr-Country' => 'XX', 'X_Storefront_Points' => '999999' ]);
is($e->{tier}, 'regular', 'a spoofed Tier header is replaced');
is($e->{segment}, 'others', 'a spoofed Segment header is replaced');
is($e->{a_country}, '', 'a spoofed Attr-Country header is removed');
is($e->{points}, '0', 'a spoofed Points header is replaced');

# ---- purchases change segment and tier without a reload --------------------

my $pid = $t->pid;

post_events({ type => 'purchase', user => 'alice', order_id => 'A1',
    amount => 100, categories => [ 'shoes' ] });
($r, $e) = visit('alice');
is($e->{rfm}, '511', 'after a purchase of 100: RFM 511');
is($e->{segment}, 'new', '... segment "new"');
is($e->{lifecycle}, 'new', '... lifecycle "new"');
is($e->{tier}, 'regular', '... tier regular');
is($e->{points}, '100', '... 100 points');
is($e->{a_top}, 'shoes', '... top category sent (listed)');
is($r->header('x-t-top'), 'shoes', '... $storefront_profile_top_category');
ok(!exists $r->variants->{gold_price}, '... not in the gold-only test');
ok(!exists $r->variants->{repeat}, '... not in the repeat-buyer test');

post_events([ { type => 'purchase', user => 'alice', order_id => 'A2',
    amount => 6000, categories => [ 'socks', 'socks' ] } ]);
($r, $e) = visit('alice');
is($e->{rfm}, '525', 'after a purchase of 6000: RFM 525');
is($e->{segment}, 'potential_loyalist', '... segment changed');
is($e->{tier}, 'gold', '... tier gold');
is_deeply(json_decode($e->{benefits}),
    { discount => 0.1, free_shipping => JSON::PP::true },
    '... gold benefits');
is($e->{points}, '6100', '... 6100 points');
is($e->{a_top}, 'socks', '... top category follows the purchases');
is($t->pid, $pid, '... the same nginx, no reload');
my $gold_variation = $r->variants->{gold_price};
ok(defined $gold_variation, 'a gold member is in the gold-only test');
ok(exists $r->variants->{repeat}, '... and in the repeat-buyer test');

# Idempotent: the same order again changes nothing.
my $res = post_events({ type => 'purchase', user => 'alice',
    order_id => 'A2', amount => 6000 });
is($res->{duplicates}, 1, 'the same order again is a duplicate');
($r, $e) = visit('alice');
is($e->{points}, '6100', '... points unchanged');
is($e->{rfm}, '525', '... RFM unchanged');

# A regular member stays out of the gold-only test.
post_events({ type => 'purchase', user => 'bob', order_id => 'B1',
    amount => 50 });
my ($in, $outside) = (0, 0);
for my $u (map { "reg-$_" } 1 .. 20) {
    post_events({ type => 'purchase', user => $u, order_id => 'X',
        amount => 10 });
    ($r, $e) = visit($u);
    $outside++
        if $e->{tier} eq 'regular' && !exists $r->variants->{gold_price};
}
is($outside, 20, 'regular members are never in the gold-only test');
for my $u (map { "gold-$_" } 1 .. 20) {
    post_events({ type => 'purchase', user => $u, order_id => 'X',
        amount => 5000 });
    ($r, $e) = visit($u);
    $in++ if $e->{tier} eq 'gold' && exists $r->variants->{gold_price};
}
is($in, 20, 'gold members are always in the gold-only test');

# Lapsed buyers: the order time sets recency.
post_events({ type => 'purchase', user => 'carol', order_id => 'C1',
    amount => 50, time => iso(time - 400 * 86400) });
($r, $e) = visit('carol');
is($e->{rfm}, '111', 'a purchase 400 days ago: RFM 111');
is($e->{segment}, 'lost', '... segment "lost"');
is($e->{lifecycle}, 'lost', '... lifecycle "lost"');
is($e->{tier}, 'regular', '... outside the 365-day spend');
ok(exists $r->variants->{winback}, '... in the win-back test');

# ---- which attributes go out -----------------------------------------------

($r, $e) = visit('alice');
is($e->{a_orders}, '', '"orders" is not listed: no header');
is($r->header('x-t-orders'), undef, '... and $storefront_profile_orders '
    . 'is not found');
($r, $e) = visit('alice', path => '/private/');
is($e->{a_top}, '', 'storefront_profile_attributes off: no Attr header');
is($r->header('x-t-top'), undef, '... and no variable');
is($e->{segment}, 'potential_loyalist', '... the segment still goes out');

($r, $e) = visit('alice', path => '/numbers/');
is($e->{a_orders}, '2', 'a listed number goes out as JSON text');
is($r->header('x-t-orders'), '2', '... and as $storefront_profile_orders');
is($e->{a_top}, '', '... the inner list replaces the outer one');
is($r->header('x-t-top'), undef, '... for variables too');

# The imported profile.
($r, $e) = visit('imp');
is($e->{a_country}, 'CN', 'a listed string attribute goes out as is');
is($e->{a_age}, '25-34', 'age_band goes out as Attr-Age-Band');
is($r->header('x-t-age'), '25-34', '... and as $storefront_profile_'
    . 'age_band');
is($e->{a_tags}, '["high_repurchase","vip"]',
    'an array goes out as compact JSON');
is($e->{a_secret}, '', 'an attribute not listed stays private');
is($r->header('x-t-secret'), undef, '... also as a variable');
is($e->{a_bad}, '', 'a value with CR/LF is not sent');
is($e->{injected}, '', '... and injects nothing');
is($e->{rfm}, '534', 'an imported profile: RFM from its aggregates');
is($e->{segment}, 'loyal', '... segment "loyal"');
is($e->{lifecycle}, 'active', '... lifecycle "active"');
is($e->{tier}, 'silver', '... tier silver from its 365-day spend');
ok(!exists $r->variants->{gold_price}, '... not in the gold-only test');
ok(exists $r->variants->{rfm_coded},
   '... in a test targeted at the RFM code "534" and R 5');

$t->stop;

# ---- recency ageing with a moved clock -------------------------------------

my $lib = Storefront::Test::faketime_lib();

SKIP: {
    skip $Storefront::Test::why, 12
        unless $lib;

    {
        local $ENV{LD_PRELOAD} = $lib;
        local $ENV{FAKETIME} = '+200d';
        local $ENV{DONT_FAKE_MONOTONIC} = '1';
        $t->run;
    }

    my $r = $t->get('/admin/profile?user=alice', headers => [ @AUTH ]);
    my $p = json_decode($r->body);
    my ($as_of) = $p->{derived}{as_of} =~ /^(\d{4}-\d\d-\d\d)/;
    is($as_of, strftime('%Y-%m-%d', gmtime(time + 200 * 86400)),
        'nginx runs 200 days ahead');

    ($r, $e) = visit('alice');
    is($e->{rfm}, '225', '200 days later: R drops to 2 (RFM 225)');
    is($e->{lifecycle}, 'at_risk', '... lifecycle "at_risk"');
    is($e->{segment}, 'need_attention', '... segment "need_attention"');
    is($e->{tier}, 'gold', '... still gold within 365 days');
    is($e->{points}, '6100', '... points kept');
    ok(exists $r->variants->{winback}, '... now in the win-back test');
    is($r->variants->{gold_price}, $gold_variation,
        '... and in the same gold-only variation');

    ($r, $e) = visit('bob');
    is($e->{rfm}, '211', 'bob 200 days later: RFM 211');
    is($e->{lifecycle}, 'at_risk', '... at risk');
    is($e->{segment}, 'about_to_sleep', '... about to sleep');

    $t->stop;
    ok(1, 'nginx under libfaketime stopped');
}

done_testing;
