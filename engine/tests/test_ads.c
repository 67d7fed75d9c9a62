/*
 * Ads: slot limits, exclusivity on a page, priority then weight, flight,
 * daypart, targeting, rolling frequency caps of every unit, cool-down,
 * signed click links, and bad campaign data.
 */

#include <stdlib.h>
#include <string.h>

#include "storefront.h"
#include "tap.h"


#define MIN    (60LL * 1000)
#define HOUR   (60 * MIN)
#define DAY    (24 * HOUR)
/* 2026-11-16 12:00 UTC, a Monday */
#define NOW    1795348800000LL

static sf_arena  *arena;


static int
compile(const char *json, sf_buf *out, sf_error *err)
{
    sf_value  v;

    if (sf_json_parse(json, strlen(json), arena, &v, err) != SF_OK) {
        return SF_ERR_INVALID;
    }
    return sf_ads_compile(&v, out, err);
}


static sf_value
attrs(const char *json)
{
    sf_value  v;
    sf_error  err;

    sf_json_parse(json, strlen(json), arena, &v, &err);
    return v;
}


static size_t
decide(const sf_buf *blob, const char *page, int nslots, const char *slot,
    const sf_value *a, const sf_buf *state, int64_t now, uint64_t seed,
    sf_ad_decision *d)
{
    int         i;
    sf_ad_fill  asked[SF_ADS_MAX_SLOTS];

    memset(asked, 0, sizeof(asked));
    for (i = 0; i < nslots; i++) {
        asked[i].slot = slot;
        asked[i].slot_len = strlen(slot);
    }
    sf_ads_decide(blob->data, blob->len, page, strlen(page), asked,
                  (size_t) nslots, SF_ADS_DEFAULT_SLOTS, a,
                  state ? state->data : NULL, state ? state->len : 0, now, 0,
                  seed, d);
    return d->nfills;
}


/* Serves the page n times at now + i * step and keeps the state. */
static int
serve(const sf_buf *blob, sf_buf *state, int n, int64_t now, int64_t step)
{
    int             i, shown;
    sf_buf          next;
    sf_value        a;
    sf_ad_decision  d;

    a = attrs("{}");
    sf_buf_init(&next);
    shown = 0;
    for (i = 0; i < n; i++) {
        decide(blob, "home", 1, "banner", &a, state, now + i * step,
               (uint64_t) i, &d);
        shown += (int) d.nfills;
        sf_ads_state_record(blob->data, blob->len, state->data, state->len,
                            &d, now + i * step, &next);
        state->len = 0;
        sf_buf_append(state, next.data, next.len);
    }
    sf_buf_free(&next);
    return shown;
}


static void
test_page_rules(void)
{
    int             i, counts[3];
    sf_buf          blob;
    sf_error        err;
    sf_value        a;
    sf_ad_decision  d;
    const char     *json =
        "{\"campaigns\":["
        " {\"id\":\"nike-run\",\"advertiser\":\"nike\",\"priority\":5,"
        "  \"weight\":3,\"creatives\":[{\"id\":\"n1\",\"url\":"
        "\"https://nike.example/run\"}],\"slots\":[\"banner\",\"infeed\"]},"
        " {\"id\":\"nike-kids\",\"advertiser\":\"nike\",\"priority\":5,"
        "  \"weight\":1,\"creatives\":[{\"id\":\"k1\",\"url\":\"/kids\","
        "\"skippable\":false}],\"slots\":[\"banner\"]},"
        " {\"id\":\"adidas\",\"advertiser\":\"adidas\",\"priority\":1,"
        "  \"creatives\":[{\"id\":\"a1\",\"url\":\"https://adidas.example/\"}]},"
        " {\"id\":\"baby-sale\",\"advertiser\":\"babyco\",\"priority\":9,"
        "  \"condition\":{\"top_category\":\"baby\"},\"pages\":[\"home\"],"
        "  \"creatives\":[{\"id\":\"b1\",\"url\":\"https://baby.example/\"}]},"
        " {\"id\":\"night\",\"advertiser\":\"owl\",\"priority\":20,"
        "  \"daypart\":{\"hours\":[22,6]},"
        "  \"creatives\":[{\"id\":\"o1\",\"url\":\"https://owl.example/\"}]},"
        " {\"id\":\"xmas\",\"advertiser\":\"santa\",\"priority\":30,"
        "  \"start\":\"2026-12-01\",\"end\":\"2026-12-26\","
        "  \"creatives\":[{\"id\":\"x1\",\"url\":\"https://xmas.example/\"}]}],"
        " \"ad_pages\":{\"cart\":{\"max_slots\":0},\"product\":{\"max_slots\":1},"
        "  \"home\":{\"max_slots\":5}}}";

    sf_buf_init(&blob);
    i = compile(json, &blob, &err);
    tap_ok(i == SF_OK, "campaigns compile (%s)", i ? err.msg : "ok");

    a = attrs("{}");
    decide(&blob, "home", 6, "banner", &a, NULL, NOW, 1, &d);
    tap_ok(d.nfills == 2 && d.max_slots == 2,
           "6 slots asked on home: 2 filled (the directive's default; data "
           "cannot raise it)");
    tap_ok(strncmp(d.fills[0].advertiser, "nike", 4) == 0
           && strncmp(d.fills[1].advertiser, "adidas", 6) == 0,
           "priority first, and never the same advertiser twice: %.*s, %.*s",
           (int) d.fills[0].campaign_len, d.fills[0].campaign,
           (int) d.fills[1].campaign_len, d.fills[1].campaign);

    decide(&blob, "cart", 2, "banner", &a, NULL, NOW, 1, &d);
    tap_ok(d.nfills == 0 && d.max_slots == 0, "cart: data lowers the limit "
           "to 0");
    decide(&blob, "product", 2, "banner", &a, NULL, NOW, 1, &d);
    tap_ok(d.nfills == 1, "product: data lowers the limit to 1");

    counts[0] = counts[1] = counts[2] = 0;
    for (i = 0; i < 4000; i++) {
        decide(&blob, "home", 1, "banner", &a, NULL, NOW, (uint64_t) i, &d);
        counts[d.fills[0].campaign_len == 8 ? 0 : 1]++;
    }
    tap_ok(counts[0] > 2800 && counts[0] < 3200,
           "weights 3:1 within a priority: %d nike-run, %d nike-kids",
           counts[0], counts[1]);

    decide(&blob, "home", 1, "infeed", &a, NULL, NOW, 7, &d);
    tap_ok(d.nfills == 1 && strncmp(d.fills[0].campaign, "nike-run", 8) == 0,
           "slot types: only nike-run and adidas take infeed slots");

    a = attrs("{\"top_category\":\"baby\"}");
    decide(&blob, "home", 1, "banner", &a, NULL, NOW, 1, &d);
    tap_ok(strncmp(d.fills[0].campaign, "baby-sale", 9) == 0,
           "targeting: baby buyers see the baby sale");
    decide(&blob, "category", 1, "banner", &a, NULL, NOW, 1, &d);
    tap_ok(strncmp(d.fills[0].campaign, "baby-sale", 9) != 0,
           "... only on the pages it names");

    a = attrs("{}");
    decide(&blob, "home", 1, "banner", &a, NULL, NOW + 11 * HOUR, 1, &d);
    tap_ok(strncmp(d.fills[0].campaign, "night", 5) == 0,
           "daypart 22:00-06:00: at 23:00 UTC the night campaign wins");
    {
        sf_ad_fill  asked;

        memset(&asked, 0, sizeof(asked));
        asked.slot = "banner";
        asked.slot_len = 6;
        sf_ads_decide(blob.data, blob.len, "home", 4, &asked, 1, 2, &a, NULL,
                      0, NOW + 11 * HOUR, 8 * 60, 1, &d);
        tap_ok(strncmp(d.fills[0].campaign, "night", 5) != 0,
               "... in the user's time zone: 07:00 in +08:00 is outside");
    }

    decide(&blob, "home", 1, "banner", &a, NULL, NOW + 20 * DAY, 1, &d);
    tap_ok(strncmp(d.fills[0].campaign, "xmas", 4) == 0,
           "flight: xmas runs from December 1st");
    decide(&blob, "home", 1, "banner", &a, NULL, NOW + 45 * DAY, 1, &d);
    tap_ok(strncmp(d.fills[0].campaign, "xmas", 4) != 0, "... to the 26th");

    sf_buf_free(&blob);
}


static void
test_caps(void)
{
    sf_buf          blob, state;
    sf_error        err;
    sf_value        a;
    sf_ad_decision  d;
    char            json[512];
    static const struct {
        const char  *cap;
        int64_t      step;
        int          n;
        int          want;
    } cases[] = {
        { "2/1m", 10 * 1000, 12, 4 },        /* 2 a minute over 2 minutes */
        { "3/1h", 10 * MIN, 12, 6 },         /* 3 an hour over 2 hours */
        { "1/1d", 6 * HOUR, 8, 2 },          /* 1 a day over 2 days */
        { "2/1w", DAY, 14, 4 },              /* 2 a week over 2 weeks */
        { "1/1month", 10 * DAY, 6, 2 },      /* 1 in 30 days over 60 */
        { "3/lifetime", DAY, 100, 3 },
    };
    size_t          i;

    sf_buf_init(&blob);
    sf_buf_init(&state);

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(json, sizeof(json), "{\"campaigns\":[{\"id\":\"c\","
                 "\"advertiser\":\"a\",\"caps\":[\"%s\"],\"creatives\":"
                 "[{\"id\":\"x\",\"url\":\"/x\"}]}]}", cases[i].cap);
        compile(json, &blob, &err);
        state.len = 0;
        tap_ok(serve(&blob, &state, cases[i].n, NOW, cases[i].step)
               == cases[i].want, "cap %s: %d of %d pages show it (rolling)",
               cases[i].cap, cases[i].want, cases[i].n);
    }

    /* rolling, not calendar: 1/1d at 23:00 and 01:00 is one impression */
    compile("{\"campaigns\":[{\"id\":\"c\",\"advertiser\":\"a\",\"caps\":"
            "[\"1/1d\"],\"creatives\":[{\"id\":\"x\",\"url\":\"/x\"}]}]}",
            &blob, &err);
    state.len = 0;
    tap_ok(serve(&blob, &state, 2, NOW + 11 * HOUR, 2 * HOUR) == 1,
           "rolling window: 23:00 then 01:00 the next day shows once");

    /* several caps together, and a cool-down */
    compile("{\"campaigns\":[{\"id\":\"c\",\"advertiser\":\"a\",\"caps\":"
            "[\"5/1d\",\"1/1h\"],\"cooldown\":\"90m\",\"creatives\":[{\"id\":"
            "\"x\",\"url\":\"/x\"}]}]}", &blob, &err);
    state.len = 0;
    tap_ok(serve(&blob, &state, 24, NOW, 30 * MIN) == 5,
           "5/1d and 1/1h with a 90-minute cool-down: 5 in 12 hours");

    a = attrs("{}");
    decide(&blob, "home", 1, "banner", &a, &state, NOW + 12 * HOUR, 1, &d);
    tap_ok(d.nfills == 0 && d.skipped[SF_AD_SKIP_CAP] == 1,
           "explained: skipped for its cap");

    sf_buf_free(&blob);
    sf_buf_free(&state);
}


static void
test_bad_data(void)
{
    sf_buf       blob;
    sf_error     err;
    size_t       i;
    static const char  *bad[] = {
        "{\"campaigns\":[{\"advertiser\":\"a\",\"creatives\":[{\"id\":\"x\","
        "\"url\":\"/x\"}]}]}",
        "{\"campaigns\":[{\"id\":\"c\",\"advertiser\":\"a\",\"creatives\":[]}]}",
        "{\"campaigns\":[{\"id\":\"c\",\"advertiser\":\"a\",\"creatives\":"
        "[{\"id\":\"x\",\"url\":\"javascript:alert(1)\"}]}]}",
        "{\"campaigns\":[{\"id\":\"c\",\"advertiser\":\"a\",\"caps\":[\"3/1y\"],"
        "\"creatives\":[{\"id\":\"x\",\"url\":\"/x\"}]}]}",
        "{\"campaigns\":[{\"id\":\"c\",\"advertiser\":\"a\",\"daypart\":"
        "{\"hours\":[9,30]},\"creatives\":[{\"id\":\"x\",\"url\":\"/x\"}]}]}",
        "{\"campaigns\":[{\"id\":\"c\",\"advertiser\":\"a\",\"creatives\":"
        "[{\"id\":\"x\",\"url\":\"/x\"}]},{\"id\":\"c\",\"advertiser\":\"b\","
        "\"creatives\":[{\"id\":\"y\",\"url\":\"/y\"}]}]}",
        "{\"ad_pages\":{\"home\":{\"max_slots\":99}}}",
    };

    sf_buf_init(&blob);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tap_ok(compile(bad[i], &blob, &err) == SF_ERR_INVALID,
               "bad campaign data rejected: %s", err.msg);
    }
    sf_buf_free(&blob);
}


static void
test_clicks(void)
{
    char        s1[23], s2[23], s3[23];
    sf_buf      blob;
    sf_error    err;
    sf_ad_fill  f;

    sf_ad_click_signature("key-1", 5, "nike-run", 8, "n1", 2, s1);
    sf_ad_click_signature("key-1", 5, "nike-run", 8, "n1", 2, s2);
    sf_ad_click_signature("key-1", 5, "nike-run", 8, "n2", 2, s3);
    tap_ok(strlen(s1) == 22 && strcmp(s1, s2) == 0 && strcmp(s1, s3) != 0,
           "click signatures are stable and bound to the creative (%s)", s1);
    sf_ad_click_signature("key-2", 5, "nike-run", 8, "n1", 2, s2);
    tap_ok(strcmp(s1, s2) != 0, "... and to the key");

    sf_buf_init(&blob);
    compile("{\"campaigns\":[{\"id\":\"c\",\"advertiser\":\"a\",\"creatives\":"
            "[{\"id\":\"x\",\"url\":\"https://a.example/landing\"}]}]}", &blob,
            &err);
    tap_ok(sf_ads_find_creative(blob.data, blob.len, "c", 1, "x", 1, &f)
           == SF_OK && f.url_len == 25
           && sf_ads_find_creative(blob.data, blob.len, "c", 1, "y", 1, &f)
              == SF_ERR_NOT_FOUND,
           "the landing URL comes from the data, never from the link");
    sf_buf_free(&blob);
}


int
main(void)
{
    arena = sf_arena_create(0);

    test_page_rules();
    test_caps();
    test_bad_data();
    test_clicks();

    sf_arena_destroy(arena);
    return tap_done();
}
