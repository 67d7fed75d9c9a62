/*
 * GrowthBook conformance: the hash, getBucketRange, chooseVariation,
 * inNamespace, getQueryStringOverride, getEqualWeights and run sections of
 * GrowthBook's SDK test suite, read from the shared conformance data.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storefront.h"
#include "tap.h"


static const sf_value *
item(const sf_value *arr, size_t i)
{
    return (arr && arr->type == SF_ARRAY && i < arr->u.arr.n)
           ? &arr->u.arr.items[i] : NULL;
}


static char *
cstr(const sf_value *v)
{
    static char  buf[1024];

    snprintf(buf, sizeof(buf), "%.*s", (int) v->u.str.len, v->u.str.p);
    return buf;
}


static double
floor8(double x)
{
    return floor(x * 1e8) / 1e8;
}


static void
section_hash(const sf_value *cases)
{
    size_t           i;
    double           got;
    int              rc, ok;
    const sf_value  *c, *seed, *value, *version, *expected;

    tap_section("hash");
    for (i = 0; i < cases->u.arr.n; i++) {
        c = item(cases, i);
        seed = item(c, 0);
        value = item(c, 1);
        version = item(c, 2);
        expected = item(c, 3);

        rc = sf_hash(seed->u.str.p, seed->u.str.len, value->u.str.p,
                     value->u.str.len, (int) version->u.number, &got);

        if (expected->type == SF_NULL) {
            ok = (rc != SF_OK);
        } else {
            ok = (rc == SF_OK && fabs(got - expected->u.number) < 1e-9);
        }

        tap_ok(ok, "hash(\"%s\", v%d)", cstr(value), (int) version->u.number);
    }
    tap_section_end();
}


static void
section_bucket_range(const sf_value *cases)
{
    int              n, ok, j, nw;
    size_t           i;
    double           ranges[100][2], weights[100];
    const sf_value  *c, *args, *w, *expected;

    tap_section("getBucketRange");
    for (i = 0; i < cases->u.arr.n; i++) {
        c = item(cases, i);
        args = item(c, 1);
        expected = item(c, 2);
        n = (int) item(args, 0)->u.number;
        w = item(args, 2);

        nw = 0;
        if (w->type == SF_ARRAY) {
            for (j = 0; j < (int) w->u.arr.n; j++) {
                weights[j] = w->u.arr.items[j].u.number;
            }
            nw = (int) w->u.arr.n;
        }

        sf_bucket_ranges(n, item(args, 1)->u.number,
                         w->type == SF_ARRAY ? weights : NULL, nw, ranges);

        ok = ((int) expected->u.arr.n == (n < 0 ? 0 : n));
        for (j = 0; ok && j < n; j++) {
            ok = floor8(ranges[j][0])
                     == floor8(item(item(expected, j), 0)->u.number)
                 && floor8(ranges[j][1])
                     == floor8(item(item(expected, j), 1)->u.number);
        }

        tap_ok(ok, "getBucketRange: %s", cstr(item(c, 0)));
    }
    tap_section_end();
}


static void
section_choose(const sf_value *cases)
{
    size_t           i, j;
    double           ranges[100][2];
    const sf_value  *c, *r;

    tap_section("chooseVariation");
    for (i = 0; i < cases->u.arr.n; i++) {
        c = item(cases, i);
        r = item(c, 2);
        for (j = 0; j < r->u.arr.n; j++) {
            ranges[j][0] = item(item(r, j), 0)->u.number;
            ranges[j][1] = item(item(r, j), 1)->u.number;
        }

        tap_ok(sf_choose_variation(item(c, 1)->u.number,
                                   (const double (*)[2]) ranges,
                                   (int) r->u.arr.n)
               == (int) item(c, 3)->u.number,
               "chooseVariation: %s", cstr(item(c, 0)));
    }
    tap_section_end();
}


static void
section_namespace(const sf_value *cases)
{
    size_t           i;
    const sf_value  *c, *id, *ns;

    tap_section("inNamespace");
    for (i = 0; i < cases->u.arr.n; i++) {
        c = item(cases, i);
        id = item(c, 1);
        ns = item(c, 2);

        tap_ok(sf_in_namespace(id->u.str.p, id->u.str.len,
                               item(ns, 0)->u.str.p, item(ns, 0)->u.str.len,
                               item(ns, 1)->u.number, item(ns, 2)->u.number)
               == item(c, 3)->u.boolean,
               "inNamespace: %s", cstr(item(c, 0)));
    }
    tap_section_end();
}


static void
section_query_string(const sf_value *cases)
{
    int              got, want;
    size_t           i;
    const sf_value  *c, *key, *url, *expected;

    tap_section("getQueryStringOverride");
    for (i = 0; i < cases->u.arr.n; i++) {
        c = item(cases, i);
        key = item(c, 1);
        url = item(c, 2);
        expected = item(c, 4);

        got = sf_query_string_override(key->u.str.p, key->u.str.len,
                                       url->u.str.p, url->u.str.len,
                                       (int) item(c, 3)->u.number);
        want = expected->type == SF_NULL ? -1 : (int) expected->u.number;

        tap_ok(got == want, "getQueryStringOverride: %s (got %d, want %d)",
               cstr(item(c, 0)), got, want);
    }
    tap_section_end();
}


static void
section_equal_weights(const sf_value *cases)
{
    int              n, ok, j;
    size_t           i;
    double           w[100];
    const sf_value  *c, *expected;

    tap_section("getEqualWeights");
    for (i = 0; i < cases->u.arr.n; i++) {
        c = item(cases, i);
        n = (int) item(c, 0)->u.number;
        expected = item(c, 1);

        sf_equal_weights(n, w);
        ok = ((int) expected->u.arr.n == (n < 0 ? 0 : n));
        for (j = 0; ok && j < n; j++) {
            ok = floor8(w[j]) == floor8(item(expected, j)->u.number);
        }

        tap_ok(ok, "getEqualWeights(%d)", n);
    }
    tap_section_end();
}


/* Cases that need GrowthBook features the edge engine does not have. */
static const char *
run_unsupported(const sf_value *ctx, const sf_value *exp)
{
    if (sf_value_member(exp, "parentConditions", 16)) {
        return "prerequisite features";
    }
    if (sf_value_member(exp, "urlPatterns", 11)) {
        return "URL targeting";
    }
    if (sf_value_member(ctx, "stickyBucketAssignmentDocs", 26)) {
        return "sticky bucketing";
    }
    return NULL;
}


static void
section_run(const sf_value *cases)
{
    int              ok;
    size_t           i;
    sf_buf           rec, want;
    sf_error         err;
    sf_request       req;
    const char      *skip;
    sf_assignment    a;
    const sf_value  *c, *ctx, *exp, *url, *enabled, *qa;

    sf_buf_init(&rec);
    sf_buf_init(&want);

    tap_section("run");
    for (i = 0; i < cases->u.arr.n; i++) {
        c = item(cases, i);
        ctx = item(c, 1);
        exp = item(c, 2);

        skip = run_unsupported(ctx, exp);
        if (skip) {
            tap_skip("run: %s: needs %s", cstr(item(c, 0)), skip);
            continue;
        }

        memset(&req, 0, sizeof(req));
        req.attributes = sf_value_member(ctx, "attributes", 10);
        req.forced_variations = sf_value_member(ctx, "forcedVariations", 16);
        req.saved_groups = sf_value_member(ctx, "savedGroups", 11);
        req.qa_override = 1;
        url = sf_value_member(ctx, "url", 3);
        if (url) {
            req.url = url->u.str.p;
            req.url_len = url->u.str.len;
        }
        enabled = sf_value_member(ctx, "enabled", 7);
        req.disabled = enabled && enabled->type == SF_BOOL
                       && !enabled->u.boolean;
        qa = sf_value_member(ctx, "qaMode", 6);
        req.qa_mode = qa && qa->type == SF_BOOL && qa->u.boolean;

        if (sf_experiment_compile(exp, &rec, &err) != SF_OK) {
            tap_ok(0, "run: %s: compile: %s", cstr(item(c, 0)), err.msg);
            continue;
        }

        sf_experiment_evaluate(rec.data, rec.len, &req, &a);

        want.len = 0;
        sf_json_write(&want, item(c, 3));

        ok = a.value_len == want.len && memcmp(a.value, want.data, want.len) == 0
             && a.in_experiment == item(c, 4)->u.boolean
             && a.hash_used == item(c, 5)->u.boolean;

        tap_ok(ok, "run: %s (value %.*s in=%d hashUsed=%d reason=%s)",
               cstr(item(c, 0)), (int) a.value_len, a.value,
               a.in_experiment, a.hash_used, sf_reason_name(a.reason));
    }
    tap_section_end();

    sf_buf_free(&rec);
    sf_buf_free(&want);
}


int
main(void)
{
    char            *text;
    size_t           len;
    sf_arena        *arena;
    sf_error         err;
    sf_value         doc;
    const sf_value  *s;

    text = tap_read_conformance(&len);
    if (text == NULL) {
        return 0;
    }

    arena = sf_arena_create(0);
    if (sf_json_parse(text, len, arena, &doc, &err) != SF_OK) {
        printf("Bail out! cannot parse the conformance file: %s\n", err.msg);
        return 1;
    }

    if ((s = sf_value_member(&doc, "hash", 4))) {
        section_hash(s);
    }
    if ((s = sf_value_member(&doc, "getBucketRange", 14))) {
        section_bucket_range(s);
    }
    if ((s = sf_value_member(&doc, "chooseVariation", 15))) {
        section_choose(s);
    }
    if ((s = sf_value_member(&doc, "inNamespace", 11))) {
        section_namespace(s);
    }
    if ((s = sf_value_member(&doc, "getQueryStringOverride", 22))) {
        section_query_string(s);
    }
    if ((s = sf_value_member(&doc, "getEqualWeights", 15))) {
        section_equal_weights(s);
    }
    if ((s = sf_value_member(&doc, "run", 3))) {
        section_run(s);
    }

    sf_arena_destroy(arena);
    free(text);
    return tap_done();
}
