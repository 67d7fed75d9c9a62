/*
 * Profiles: import records, events (idempotent), RFM scores and
 * segments, lifecycle, tiers, points, rules, and the attributes that
 * targeting conditions see.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storefront.h"
#include "tap.h"


#define DAY   86400
#define NOW   1795000000      /* 2026-11-18 */

static sf_arena  *arena;


static sf_value
json(const char *text)
{
    sf_value  v;
    sf_error  err;

    if (sf_json_parse(text, strlen(text), arena, &v, &err) != SF_OK) {
        printf("# bad test JSON: %s\n", err.msg);
        v.type = SF_NULL;
    }
    return v;
}


static void *
arena_alloc(void *ctx, size_t n)
{
    return sf_arena_alloc(ctx, n);
}


static int
event(sf_db *db, const char *text, sf_event_result *res, sf_error *err)
{
    int       rc;
    sf_txn   *t;
    sf_event  ev;
    sf_value  v;

    v = json(text);
    rc = sf_event_from_json(&v, NOW, &ev, err);
    if (rc == SF_OK) {
        rc = sf_txn_begin(db, &t, err);
    }
    if (rc == SF_OK) {
        rc = sf_txn_apply_event(t, &ev, res, err);
        if (rc == SF_OK) {
            rc = sf_txn_commit(t, err);
        } else {
            sf_txn_abort(t);
        }
    }
    return rc;
}


/*
 * The profile and what is derived from it point into the snapshot (the
 * record, the rules), as in a request: the snapshot is kept until the
 * next lookup, or lookup_end() before the database is closed.
 */
static sf_snapshot  *lookup_snapshot;

static void
lookup_end(void)
{
    if (lookup_snapshot != NULL) {
        sf_snapshot_reset(lookup_snapshot);
        sf_snapshot_free(lookup_snapshot);
        lookup_snapshot = NULL;
    }
}


static void
lookup(sf_db *db, const char *id, int64_t now, sf_profile *p, sf_derived *d)
{
    sf_error         err;
    sf_snapshot     *s;
    const sf_rules  *rules;

    lookup_end();
    sf_snapshot_create(db, &lookup_snapshot, &err);
    s = lookup_snapshot;

    sf_snapshot_renew(s, &err);
    sf_snapshot_get_profile(s, id, strlen(id), p, &err);
    sf_snapshot_rules(s, &rules, &err);
    sf_profile_derive(p, rules, now, d);
}


static void
test_records(void)
{
    sf_buf       rec, out;
    sf_error     err;
    sf_value     v;
    sf_profile   p;
    sf_rules     rules;
    sf_derived   d;
    size_t       id_len;
    const char  *id;

    sf_buf_init(&rec);
    sf_buf_init(&out);
    sf_rules_default(&rules);

    v = json("{\"id\":\"u1\",\"attributes\":{\"country\":\"CN\",\"tags\":"
             "[\"high_repurchase\"]},\"first_order\":\"2025-01-10\","
             "\"last_order\":\"2026-11-08T10:00:00Z\",\"orders\":12,"
             "\"monetary\":4200,\"spend_365\":6000,\"returns\":1,"
             "\"points\":4200,\"categories\":{\"baby\":9,\"shoes\":2},"
             "\"tz_offset\":\"+08:00\",\"quiet_hours\":\"22:00-08:00\","
             "\"opt_out\":[\"sms\"]}");
    tap_ok(sf_profile_compile(&v, NOW, &rec, &id, &id_len, &err) == SF_OK
           && id_len == 2, "a full profile compiles");

    sf_profile_init(&p);
    tap_ok(sf_profile_decode(rec.data, rec.len, &p) == SF_OK
           && p.orders == 12 && p.returns == 1 && p.monetary == 4200
           && p.tz_offset_min == 480 && p.quiet_start == 22 * 60
           && p.quiet_end == 8 * 60 && p.ncategories == 2
           && p.categories[0].count == 9 && p.opt_out_len == 3,
           "decoded back");

    sf_profile_derive(&p, &rules, NOW, &d);
    tap_ok(d.r == 5 && d.f == 5 && d.m == 5 && strcmp(d.rfm, "555") == 0
           && strcmp(d.segment, "champions") == 0
           && strcmp(d.lifecycle, "active") == 0
           && strcmp(d.tier, "gold") == 0 && d.spend_365 == 6000,
           "scores %s, segment %s, lifecycle %s, tier %s", d.rfm, d.segment,
           d.lifecycle, d.tier);

    /* the same profile ages with the clock, without being rewritten */
    sf_profile_derive(&p, &rules, NOW + 120 * DAY, &d);
    tap_ok(d.r == 3 && strcmp(d.lifecycle, "at_risk") == 0,
           "120 days later: R %d, lifecycle %s", d.r, d.lifecycle);
    sf_profile_derive(&p, &rules, NOW + 400 * DAY, &d);
    tap_ok(d.r == 1 && strcmp(d.lifecycle, "lost") == 0
           && strcmp(d.segment, "cant_lose_them") == 0
           && d.spend_365 == 0 && strcmp(d.tier, "regular") == 0,
           "400 days later: segment %s, lifecycle %s, spend_365 %g, tier %s",
           d.segment, d.lifecycle, d.spend_365, d.tier);

    sf_profile_to_json(id, id_len, &p, &out);
    tap_ok(strstr(out.data, "\"last_order\":\"2026-11-08T10:00:00Z\"")
           && strstr(out.data, "\"quiet_hours\":\"22:00-08:00\"")
           && strstr(out.data, "\"opt_out\":[\"sms\"]")
           && strstr(out.data, "\"attributes\":{\"country\":\"CN\""),
           "profile exported as JSON");

    {
        sf_buf   again;
        sf_value w;

        sf_buf_init(&again);
        w = json(out.data);
        tap_ok(sf_profile_compile(&w, NOW, &again, &id, &id_len, &err) == SF_OK
               && again.len == rec.len
               && memcmp(again.data, rec.data, rec.len) == 0,
               "export imports back to the same record");
        sf_buf_free(&again);
    }

    sf_profile_init(&p);
    sf_profile_derive(&p, &rules, NOW, &d);
    tap_ok(strcmp(d.rfm, "000") == 0 && strcmp(d.segment, "others") == 0
           && strcmp(d.lifecycle, "new") == 0
           && strcmp(d.tier, "regular") == 0,
           "a visitor without a profile: defaults, not an error");

    v = json("{\"id\":\"u2\",\"orders\":\"many\"}");
    tap_ok(sf_profile_compile(&v, NOW, &rec, &id, &id_len, &err)
           == SF_ERR_INVALID && strstr(err.msg, "profile \"u2\""),
           "bad profile rejected: %s", err.msg);
    v = json("{\"id\":\"u2\",\"colour\":1}");
    tap_ok(sf_profile_compile(&v, NOW, &rec, &id, &id_len, &err)
           == SF_ERR_INVALID && strstr(err.msg, "unknown member \"colour\""),
           "unknown member rejected: %s", err.msg);
    v = json("{\"id\":\"u2\",\"quiet_hours\":\"25:00-08:00\"}");
    tap_ok(sf_profile_compile(&v, NOW, &rec, &id, &id_len, &err)
           == SF_ERR_INVALID, "bad quiet hours rejected: %s", err.msg);

    sf_buf_free(&rec);
    sf_buf_free(&out);
}


static void
test_rules(void)
{
    sf_buf    b;
    sf_rules  r, r2;
    sf_error  err;
    sf_value  v;
    sf_profile p;
    sf_derived d;

    sf_buf_init(&b);
    sf_rules_default(&r);

    v = json("{\"tiers\":[{\"name\":\"junior\",\"min_spend_365\":0},"
             "{\"name\":\"intermediate\",\"min_spend_365\":500},"
             "{\"name\":\"senior\",\"min_spend_365\":2000},"
             "{\"name\":\"diamond\",\"min_spend_365\":10000,\"benefits\":"
             "{\"discount\":0.15,\"free_shipping\":true}}],"
             "\"lifecycle\":{\"new_days\":14,\"at_risk_days\":60,"
             "\"lost_days\":180},"
             "\"points\":{\"per_unit\":1,\"multipliers\":[{\"date\":"
             "\"2026-11-11\",\"multiplier\":2},{\"weekday\":\"sat\","
             "\"multiplier\":1.5}]}}");
    tap_ok(sf_rules_apply_json(&r, &v, &err) == SF_OK && r.ntiers == 4,
           "four tiers, lifecycle and points days accepted");

    sf_profile_init(&p);
    p.found = 1;
    p.orders = 3;
    p.monetary = 12000;
    p.first_order = NOW - 100 * DAY;
    p.last_order = NOW - 70 * DAY;
    p.spend_epoch = (int32_t) ((NOW - 70 * DAY) / DAY / 30);
    p.spend[p.spend_epoch % SF_SPEND_BUCKETS] = 12000;
    sf_profile_derive(&p, &r, NOW, &d);
    tap_ok(strcmp(d.tier, "diamond") == 0
           && strcmp(d.tier_benefits,
                     "{\"discount\":0.15,\"free_shipping\":true}") == 0
           && strcmp(d.lifecycle, "at_risk") == 0,
           "tier %s with benefits %s, lifecycle %s", d.tier, d.tier_benefits,
           d.lifecycle);

    tap_ok(sf_rules_points_multiplier(&r, 1794355200 + 3600) == 2
           && sf_rules_points_multiplier(&r, 1794355200 + 86400 * 3) == 1.5
           && sf_rules_points_multiplier(&r, 1794355200 + 86400) == 1,
           "double points on 2026-11-11, 1.5 on Saturdays, else 1");

    sf_rules_to_json(&r, &b);
    sf_rules_default(&r2);
    v = json(b.data);
    tap_ok(sf_rules_apply_json(&r2, &v, &err) == SF_OK
           && memcmp(&r.tiers, &r2.tiers, sizeof(r.tiers)) == 0
           && memcmp(&r.point_days, &r2.point_days, sizeof(r.point_days)) == 0
           && r2.new_days == 14,
           "rules round-trip through JSON");

    v = json("{\"tiers\":[{\"name\":\"a\",\"min_spend_365\":10},"
             "{\"name\":\"b\",\"min_spend_365\":5}]}");
    r2 = r;
    tap_ok(sf_rules_apply_json(&r2, &v, &err) == SF_ERR_INVALID
           && strstr(err.msg, "ascending") && r2.ntiers == 4,
           "tiers out of order rejected, rules unchanged: %s", err.msg);
    v = json("{\"rfm\":{\"recency_days\":[1,2,3]}}");
    tap_ok(sf_rules_apply_json(&r2, &v, &err) == SF_ERR_INVALID,
           "bad cut-points rejected: %s", err.msg);
    v = json("{\"segments\":[{\"name\":\"vip\",\"r\":[4,9]}]}");
    tap_ok(sf_rules_apply_json(&r2, &v, &err) == SF_ERR_INVALID,
           "bad segment rule rejected: %s", err.msg);
    v = json("{\"segments\":[{\"name\":\"vip\",\"r\":[5,5],\"f\":[5,5]}]}");
    tap_ok(sf_rules_apply_json(&r2, &v, &err) == SF_OK && r2.nsegments == 1,
           "an edited segment table replaces the default");

    sf_buf_free(&b);
}


static void
test_events(void)
{
    int              rc;
    char             dir[] = "/tmp/sf-profile-XXXXXX", cmd[64];
    size_t           n;
    sf_db           *db;
    sf_error         err;
    sf_profile       p;
    sf_derived       d;
    sf_rules         rules;
    sf_event_result  res;

    mkdtemp(dir);
    sf_db_open(&db, dir, 0, 0, &err);

    /* 2026-11-11 is a double-points day */
    {
        sf_txn   *t;
        sf_value  v;

        sf_rules_default(&rules);
        v = json("{\"points\":{\"multipliers\":[{\"date\":\"2026-11-11\","
                 "\"multiplier\":2}]}}");
        sf_rules_apply_json(&rules, &v, &err);
        sf_txn_begin(db, &t, &err);
        sf_txn_put_rules(t, &rules, &err);
        sf_txn_commit(t, &err);
    }

    rc = event(db, "{\"type\":\"purchase\",\"user\":\"u1\",\"order_id\":\"o1\","
               "\"amount\":120.5,\"categories\":[\"shoes\"],"
               "\"time\":\"2026-11-11T12:00:00Z\"}", &res, &err);
    tap_ok(rc == SF_OK && !res.duplicate && res.points_earned == 241,
           "purchase on a double-points day earns %g points",
           res.points_earned);

    rc = event(db, "{\"type\":\"purchase\",\"user\":\"u1\",\"order_id\":\"o1\","
               "\"amount\":120.5,\"time\":\"2026-11-11T12:00:00Z\"}", &res,
               &err);
    tap_ok(rc == SF_OK && res.duplicate, "the same order twice counts once");

    event(db, "{\"type\":\"purchase\",\"user\":\"u1\",\"order_id\":\"o2\","
          "\"amount\":30,\"categories\":[\"socks\",\"shoes\"],"
          "\"time\":\"2026-11-15T12:00:00Z\"}", &res, &err);

    lookup(db, "u1", NOW, &p, &d);
    tap_ok(p.orders == 2 && p.monetary == 150.5 && p.points == 271
           && p.ncategories == 2 && p.categories[0].count == 2
           && d.spend_365 == 150.5 && strcmp(d.lifecycle, "new") == 0,
           "aggregates: %u orders, %g spent, %g points, top %.*s",
           p.orders, p.monetary, p.points, (int) p.categories[0].name_len,
           p.categories[0].name);

    rc = event(db, "{\"type\":\"return\",\"user\":\"u1\",\"order_id\":\"o2\"}",
               &res, &err);
    tap_ok(rc == SF_OK && res.points_earned == -30, "a return takes back "
           "its points");
    rc = event(db, "{\"type\":\"return\",\"user\":\"u1\",\"order_id\":\"o2\"}",
               &res, &err);
    tap_ok(rc == SF_OK && res.duplicate, "the same return twice counts once");
    rc = event(db, "{\"type\":\"return\",\"user\":\"u1\",\"order_id\":\"zz\"}",
               &res, &err);
    tap_ok(rc == SF_ERR_NOT_FOUND, "a return of an unknown order: %s",
           err.msg);

    lookup(db, "u1", NOW, &p, &d);
    tap_ok(p.returns == 1 && p.monetary == 120.5 && p.points == 241,
           "after the return: %g spent, %g points", p.monetary, p.points);

    rc = event(db, "{\"type\":\"points\",\"user\":\"u1\",\"order_id\":\"r1\","
               "\"amount\":-1000}", &res, &err);
    tap_ok(rc == SF_ERR_INVALID, "cannot redeem more points than held: %s",
           err.msg);

    rc = event(db, "{\"type\":\"purchase\",\"user\":\"u1\",\"amount\":5}",
               &res, &err);
    tap_ok(rc == SF_ERR_INVALID && strstr(err.msg, "order_id"),
           "an event without an order id is rejected: %s", err.msg);
    rc = event(db, "{\"type\":\"refund\",\"user\":\"u1\",\"order_id\":\"x\"}",
               &res, &err);
    tap_ok(rc == SF_ERR_INVALID, "unknown event type: %s", err.msg);

    /* quintile cut-points over a population */
    {
        int   i;
        char  e[256];

        for (i = 1; i <= 50; i++) {
            snprintf(e, sizeof(e), "{\"type\":\"purchase\",\"user\":\"p%d\","
                     "\"order_id\":\"o\",\"amount\":%d,\"time\":%d}", i,
                     i * 10, NOW - i * DAY);
            event(db, e, &res, &err);
        }
    }
    rc = sf_rfm_rebuild(db, NOW, &rules, &n, &err);
    tap_ok(rc == SF_OK && n == 51 && rules.recency_days[0] > 5
           && rules.recency_days[0] < 15 && rules.monetary[3] > 300,
           "rfm rebuild over %zu profiles: R cuts %g/%g/%g/%g, M cuts "
           "%g/%g/%g/%g", n, rules.recency_days[0], rules.recency_days[1],
           rules.recency_days[2], rules.recency_days[3], rules.monetary[0],
           rules.monetary[1], rules.monetary[2], rules.monetary[3]);

    lookup(db, "p1", NOW, &p, &d);
    tap_ok(d.r == 5 && d.m == 1, "p1 (yesterday, small spend): %s", d.rfm);
    lookup(db, "p50", NOW, &p, &d);
    tap_ok(d.r == 1 && d.m == 5, "p50 (50 days ago, big spend): %s", d.rfm);

    /* the attributes targeting sees */
    {
        sf_value   attrs, req;
        const sf_value  *a;

        lookup(db, "u1", NOW, &p, &d);
        req = json("{\"id\":\"u1\",\"country\":\"FR\",\"segment\":\"x\"}");
        sf_profile_attributes(&p, &d, &req, arena_alloc, arena, &attrs);
        a = sf_value_member(&attrs, "segment", 7);
        tap_ok(a && a->type == SF_STRING
               && a->u.str.len == strlen(d.segment)
               && sf_value_member(&attrs, "country", 7)->u.str.p[0] == 'F'
               && sf_value_path(&attrs, "categories.shoes", 16)->u.number == 2
               && sf_value_member(&attrs, "orders", 6)->u.number == 2,
               "attributes: computed values win, request attributes kept, "
               "categories by path");
    }

    lookup_end();
    sf_db_close(db);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd)) { /* best effort */ }
}


int
main(void)
{
    arena = sf_arena_create(0);

    test_records();
    test_rules();
    test_events();

    sf_arena_destroy(arena);
    return tap_done();
}
