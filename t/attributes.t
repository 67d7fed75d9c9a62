#!/usr/bin/perl
# Attributes from storefront_attribute reach the engine: an experiment can
# hash on one (hashAttribute) with a fallback (fallbackAttribute, e.g. the
# anonymous id), and a targeting condition can use one.  The request's URL
# is the attribute "url" ($scheme://$host$request_uri), unless a
# storefront_attribute names "url".

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Storefront::Test qw(gb_assign);

my $by_company = { key => 'b2b', variations => [ 0, 1, 2 ],
    hashAttribute => 'company', fallbackAttribute => 'anonymous_id' };
my $targeted = { key => 'cn_only', variations => [ 0, 1 ],
    condition => { country => 'CN' } };
my $on_sale = { key => 'sale_banner', variations => [ 0, 1 ],
    condition => { url => { '$regex' => '^http://localhost/sale/' } } };

my $t = Storefront::Test->new;
$t->must_import({ experiments => [ $by_company, $targeted, $on_sale ] });
$t->write_config($t->std_config(server => q{
        storefront_attribute company $http_x_company;
        storefront_attribute country $http_x_country;

        location /own-url/ {
            storefront_attribute url "http://localhost/sale/$http_x_page";
            proxy_pass http://127.0.0.1:%%PORT2%%;
            add_header X-T-Variants $storefront_variants;
        }
}));
$t->run;

# Hashing on the attribute: users of one company share the variation.
my ($same, $oracle) = (0, 0);
my @companies = map { "company-$_" } 1 .. 30;
for my $c (@companies) {
    my %seen;
    for my $u (1 .. 3) {
        my $r = $t->get('/', headers => [ 'X-User-Id' => "$c-user-$u",
            'X-Company' => $c ]);
        $seen{ $r->variants->{b2b} // 'none' } = 1;
    }
    my ($v) = keys %seen;
    $same++ if keys %seen == 1;
    $oracle++ if keys %seen == 1 && $v eq gb_assign($by_company, $c);
}
is($same, scalar @companies, 'hashAttribute: one variation per company');
is($oracle, scalar @companies, 'hashAttribute: GrowthBook\'s variation');

# Without the attribute: the fallback (the anonymous id) is used.
my %jar;
my $r = $t->get('/', jar => \%jar);
my $anon = $jar{sf_anon} // '';
like($anon, qr/^[0-9a-f]{32}$/, 'anonymous visitor');
is($r->variants->{b2b}, gb_assign($by_company, $anon),
    'fallbackAttribute anonymous_id used without a company');

# A condition on an attribute.
my ($in_cn, $in_us, $in_none) = (0, 0, 0);
for my $u (map { "geo-$_" } 1 .. 40) {
    $in_cn++ if exists $t->get('/', headers => [ 'X-User-Id' => $u,
        'X-Country' => 'CN' ])->variants->{cn_only};
    $in_us++ if exists $t->get('/', headers => [ 'X-User-Id' => $u,
        'X-Country' => 'US' ])->variants->{cn_only};
    $in_none++ if exists $t->get('/', headers => [ 'X-User-Id' => $u ])
        ->variants->{cn_only};
}
is($in_cn, 40, 'condition {"country":"CN"}: every CN visitor in');
is($in_us, 0, 'condition: US visitors not in');
is($in_none, 0, 'condition: visitors without a country not in');

# A condition on the URL.
my ($sale, $home, $query) = (0, 0, 0);
for my $u (map { "url-$_" } 1 .. 20) {
    $sale++ if exists $t->get('/sale/shoes?page=2', headers => [
        'X-User-Id' => $u ])->variants->{sale_banner};
    $home++ if exists $t->get('/', headers => [ 'X-User-Id' => $u ])
        ->variants->{sale_banner};
    $query++ if exists $t->get('/shoes?from=/sale/', headers => [
        'X-User-Id' => $u ])->variants->{sale_banner};
}
is($sale, 20, 'condition on "url": in on /sale/...');
is($home, 0, '... not on /');
is($query, 0, '... nor with /sale/ only in the query string');
ok(exists $t->get('/own-url/x', headers => [ 'X-User-Id' => 'url-1' ])
    ->variants->{sale_banner}, 'a storefront_attribute named "url" replaces it');

$t->stop;
done_testing;
