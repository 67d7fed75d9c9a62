/*
 * Ads: the per-request state update (sf_ads_state_add) decides exactly as
 * the full one (sf_ads_state_record) over long random runs with caps of
 * every unit, cool-downs and several slots; it keeps other entries as
 * they are, rejects a decision from other data, and costs time in
 * proportion to the state, not to the number of campaigns.
 */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storefront.h"
#include "tap.h"


#define MIN    (60LL * 1000)
#define HOUR   (60 * MIN)
#define DAY    (24 * HOUR)
/* 2026-11-16 12:00 UTC, a Monday */
#define NOW    1795348800000LL

static sf_arena  *arena;


static int
compile(const char *json, size_t len, sf_buf *out, sf_error *err)
{
    sf_value  v;

    if (sf_json_parse(json, len, arena, &v, err) != SF_OK) {
        return SF_ERR_INVALID;
    }
    return sf_ads_compile(&v, out, err);
}


/* n campaigns over 40 advertisers, caps of every unit, some cool-downs */
static void
campaigns(int n, sf_buf *blob)
{
    int          i;
    sf_buf       json;
    sf_error     err;
    const char  *caps[] = { "\"2/1m\"", "\"3/1h\",\"5/1d\"", "\"4/1d\"",
                            "\"6/1w\",\"2/1h\"", "\"8/1month\"",
                            "\"3/lifetime\"", "\"1/10m\",\"9/lifetime\"" };

    sf_buf_init(&json);
    sf_buf_appends(&json, "{\"campaigns\":[");
    for (i = 0; i < n; i++) {
        sf_buf_printf(&json, "%s{\"id\":\"c%d\",\"advertiser\":\"a%d\","
                      "\"priority\":%d,\"weight\":%d,\"creatives\":["
                      "{\"id\":\"x\",\"url\":\"/x\"},{\"id\":\"y\","
                      "\"url\":\"/y\"}],\"slots\":[\"%s\"],\"caps\":[%s]%s%s}",
                      i ? "," : "", i, i % 40, i % 3, 1 + i % 5,
                      i % 4 ? "banner" : "infeed", caps[i % 7],
                      i % 5 == 0 ? ",\"cooldown\":\"20m\"" : "",
                      i % 6 == 0 ? ",\"allow_same_advertiser\":true" : "");
    }
    sf_buf_appends(&json, "]}");

    if (compile(json.data, json.len, blob, &err) != SF_OK) {
        printf("Bail out! %s\n", err.msg);
        exit(1);
    }
    sf_buf_free(&json);
}


static int
same_fills(const sf_ad_decision *a, const sf_ad_decision *b)
{
    size_t  i;

    if (a->nfills != b->nfills) {
        return 0;
    }
    for (i = 0; i < a->nfills; i++) {
        if (a->fills[i].campaign_index != b->fills[i].campaign_index
            || a->fills[i].creative != b->fills[i].creative)
        {
            return 0;
        }
    }
    for (i = SF_AD_SKIP_FLIGHT; i < SF_AD_SKIP__COUNT; i++) {
        if (a->skipped[i] != b->skipped[i]) {
            return 0;
        }
    }
    return 1;
}


/* Two states, one kept by each function, decide the same for a long run. */
static void
test_equivalence(void)
{
    int             run, step, same, shown, held, ncamp;
    sf_buf          blob, full, incr, next;
    int64_t         t;
    uint64_t        rnd;
    sf_value        a;
    sf_error        err;
    sf_ad_fill      asked[3];
    sf_ad_decision  d1, d2;

    tap_section("equivalence");

    sf_buf_init(&blob);
    sf_buf_init(&full);
    sf_buf_init(&incr);
    sf_buf_init(&next);
    sf_json_parse("{}", 2, arena, &a, &err);

    memset(asked, 0, sizeof(asked));
    asked[0].slot = "banner";
    asked[0].slot_len = 6;
    asked[1].slot = "infeed";
    asked[1].slot_len = 6;
    asked[2].slot = "banner";
    asked[2].slot_len = 6;

    for (run = 0; run < 4; run++) {
        ncamp = run < 2 ? 12 : 60;
        campaigns(ncamp, &blob);
        full.len = 0;
        incr.len = 0;
        t = NOW;
        rnd = 0x9e3779b97f4a7c15ULL * (uint64_t) (run + 1);
        same = 1;
        shown = 0;
        held = 0;

        for (step = 0; step < 3000 && same; step++) {
            /* steps from a second to two days: every window rolls */
            rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
            switch ((rnd >> 33) % 6) {
            case 0: t += 1000; break;
            case 1: t += 20 * 1000; break;
            case 2: t += 7 * MIN; break;
            case 3: t += 50 * MIN; break;
            case 4: t += 9 * HOUR; break;
            default: t += 2 * DAY; break;
            }

            sf_ads_decide(blob.data, blob.len, "home", 4, asked, 3, 3, &a,
                          full.data, full.len, t, 0, rnd, &d1);
            sf_ads_decide(blob.data, blob.len, "home", 4, asked, 3, 3, &a,
                          incr.data, incr.len, t, 0, rnd, &d2);
            same = same_fills(&d1, &d2);
            shown += (int) d1.nfills;
            held += (d1.skipped[SF_AD_SKIP_CAP]
                     + d1.skipped[SF_AD_SKIP_COOLDOWN]) > 0;

            sf_ads_state_record(blob.data, blob.len, full.data, full.len,
                                &d1, t, &next);
            full.len = 0;
            sf_buf_append(&full, next.data, next.len);

            if (sf_ads_state_add(blob.data, blob.len, incr.data, incr.len,
                                 &d2, t, &next) != SF_OK)
            {
                same = 0;
                break;
            }
            incr.len = 0;
            sf_buf_append(&incr, next.data, next.len);
        }

        tap_ok(same && step == 3000, "%d campaigns: 3000 pages decide the "
               "same with either state (%d ads shown)", ncamp, shown);
        tap_ok(shown > 300 && held > 300, "run %d: ads were served and "
               "caps held campaigns back on %d pages", run, held);
    }

    sf_buf_free(&blob);
    sf_buf_free(&full);
    sf_buf_free(&incr);
    sf_buf_free(&next);
    tap_section_end();
}


static void
test_entries(void)
{
    sf_buf          blob, other, s1, s2;
    sf_value        a;
    sf_error        err;
    sf_ad_fill      asked[2];
    sf_ad_decision  d, none;

    tap_section("entries");

    sf_buf_init(&blob);
    sf_buf_init(&other);
    sf_buf_init(&s1);
    sf_buf_init(&s2);
    sf_json_parse("{}", 2, arena, &a, &err);

    campaigns(8, &blob);
    memset(asked, 0, sizeof(asked));
    asked[0].slot = "banner";
    asked[0].slot_len = 6;
    asked[1].slot = "infeed";
    asked[1].slot_len = 6;

    sf_ads_decide(blob.data, blob.len, "home", 4, asked, 2, 2, &a, NULL, 0,
                  NOW, 0, 7, &d);
    tap_ok(d.nfills == 2, "two slots filled");

    tap_ok(sf_ads_state_add(blob.data, blob.len, NULL, 0, &d, NOW, &s1)
           == SF_OK && s1.len > 8, "a first state from nothing");

    /* nothing shown: the state is copied as it is */
    memset(&none, 0, sizeof(none));
    tap_ok(sf_ads_state_add(blob.data, blob.len, s1.data, s1.len, &none,
                            NOW + MIN, &s2) == SF_OK
           && s2.len == s1.len && memcmp(s1.data, s2.data, s1.len) == 0,
           "a page without ads leaves the state unchanged");

    /* the entry of a campaign gone from the data is kept */
    campaigns(30, &other);
    sf_ads_decide(other.data, other.len, "home", 4, asked, 2, 2, &a, NULL, 0,
                  NOW, 0, 99, &d);
    sf_ads_state_add(other.data, other.len, NULL, 0, &d, NOW, &s1);
    campaigns(8, &blob);
    memset(&none, 0, sizeof(none));
    tap_ok(sf_ads_state_add(blob.data, blob.len, s1.data, s1.len, &none,
                            NOW, &s2) == SF_OK && s2.len == s1.len,
           "entries of other campaigns are copied");

    /* a decision from bigger data does not fit this blob */
    d.nfills = 1;
    d.fills[0].campaign_index = 29;
    tap_ok(sf_ads_state_add(blob.data, blob.len, NULL, 0, &d, NOW, &s2)
           == SF_ERR_INVALID, "a decision naming an unknown campaign is "
           "refused");

    /* damaged state: the good head is kept, no crash */
    sf_ads_decide(blob.data, blob.len, "home", 4, asked, 2, 2, &a, NULL, 0,
                  NOW, 0, 3, &d);
    sf_ads_state_add(blob.data, blob.len, NULL, 0, &d, NOW, &s1);
    tap_ok(sf_ads_state_add(blob.data, blob.len, s1.data, s1.len - 5, &none,
                            NOW, &s2) == SF_OK && s2.len < s1.len,
           "a truncated state is read up to the damage");

    sf_buf_free(&blob);
    sf_buf_free(&other);
    sf_buf_free(&s1);
    sf_buf_free(&s2);
    tap_section_end();
}


static double
elapsed(const struct timespec *a)
{
    struct timespec  b;

    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double) (b.tv_sec - a->tv_sec) + (b.tv_nsec - a->tv_nsec) / 1e9;
}


/* 1,000 campaigns and a user who saw 60 of them */
static void
test_cost(void)
{
    int              i;
    sf_buf           blob, state, next;
    double           t_full, t_incr;
    sf_value         a;
    sf_error         err;
    sf_ad_fill       asked[2];
    sf_ad_decision   d;
    struct timespec  t0;

    tap_section("cost");

    sf_buf_init(&blob);
    sf_buf_init(&state);
    sf_buf_init(&next);
    sf_json_parse("{}", 2, arena, &a, &err);
    campaigns(1000, &blob);

    memset(asked, 0, sizeof(asked));
    asked[0].slot = "banner";
    asked[0].slot_len = 6;
    asked[1].slot = "infeed";
    asked[1].slot_len = 6;

    for (i = 0; i < 30; i++) {
        sf_ads_decide(blob.data, blob.len, "home", 4, asked, 2, 2, &a,
                      state.data, state.len, NOW + i * MIN, 0, (uint64_t) i,
                      &d);
        sf_ads_state_add(blob.data, blob.len, state.data, state.len, &d,
                         NOW + i * MIN, &next);
        state.len = 0;
        sf_buf_append(&state, next.data, next.len);
    }

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < 200; i++) {
        sf_ads_state_record(blob.data, blob.len, state.data, state.len, &d,
                            NOW + HOUR, &next);
    }
    t_full = elapsed(&t0) / 200;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < 200; i++) {
        sf_ads_state_add(blob.data, blob.len, state.data, state.len, &d,
                         NOW + HOUR, &next);
    }
    t_incr = elapsed(&t0) / 200;

    printf("# state of %zu bytes, 1000 campaigns: sf_ads_state_record "
           "%.2f us, sf_ads_state_add %.2f us\n", state.len, t_full * 1e6,
           t_incr * 1e6);
    tap_ok(t_incr * 4 < t_full, "the per-request update is at least 4x "
           "cheaper than the full one with 1,000 campaigns");

    sf_buf_free(&blob);
    sf_buf_free(&state);
    sf_buf_free(&next);
    tap_section_end();
}


int
main(void)
{
    arena = sf_arena_create(1 << 20);

    test_equivalence();
    test_entries();
    test_cost();

    sf_arena_destroy(arena);
    return tap_done();
}
