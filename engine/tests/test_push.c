/*
 * Push decisions: every reason, rolling caps with a moved clock, quiet
 * hours across midnight and time zones, exemptions, dry runs, duplicate
 * campaigns, the global throttle, and exactness across processes.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "storefront.h"
#include "tap.h"


#define H      (3600LL * 1000)
#define D      (24 * H)
/* 2026-11-16 12:00 UTC, a Monday */
#define NOON   1795348800000LL

static sf_db           *db;
static sf_push_policy   policy;


static sf_push_decision
decide_at(const char *user, const char *category, const char *channel,
    const char *campaign, int64_t now, int dry_run)
{
    int               rc;
    sf_txn           *t;
    sf_error          err;
    sf_push_request   req;
    sf_push_decision  d;

    memset(&req, 0, sizeof(req));
    req.user = user;
    req.user_len = strlen(user);
    req.category = category;
    req.category_len = strlen(category);
    req.channel = channel;
    req.channel_len = strlen(channel);
    if (campaign) {
        req.campaign = campaign;
        req.campaign_len = strlen(campaign);
    }
    req.now_ms = now;
    req.dry_run = dry_run;

    memset(&d, 0, sizeof(d));
    sf_txn_begin(db, &t, &err);
    rc = sf_txn_push_decide(t, &policy, &req, &d, &err);
    if (rc == SF_OK) {
        sf_txn_commit(t, &err);
    } else {
        sf_txn_abort(t);
        d.reason = (sf_push_reason) -1;
        printf("# decide: %s\n", err.msg);
    }
    return d;
}


static void
profile(const char *json)
{
    sf_buf       rec;
    sf_txn      *t;
    sf_error     err;
    sf_value     v;
    sf_arena    *a;
    size_t       id_len;
    const char  *id;

    a = sf_arena_create(0);
    sf_buf_init(&rec);
    sf_json_parse(json, strlen(json), a, &v, &err);
    if (sf_profile_compile(&v, 0, &rec, &id, &id_len, &err) != SF_OK) {
        printf("# profile: %s\n", err.msg);
    }
    sf_txn_begin(db, &t, &err);
    sf_txn_put_profile(t, id, id_len, rec.data, rec.len, &err);
    sf_txn_commit(t, &err);
    sf_buf_free(&rec);
    sf_arena_destroy(a);
}


static void
test_policy(void)
{
    sf_buf          b;
    sf_push_cap     cap;
    sf_error        err;
    sf_push_policy  p;
    sf_value        v;
    sf_arena       *a;
    const char     *json;

    json = "{\"categories\":{\"promo\":{\"caps\":[\"1/1d\","
                           "\"2/7d\"]},\"flash\":{\"caps\":[\"3/2h\"],"
                           "\"urgent\":true}},\"quiet_hours\":\"23:00-07:30\","
                           "\"default_tz_offset\":480,\"throttle\":{\"rate\":"
                           "100,\"burst\":10}}";

    tap_ok(sf_push_parse_cap("2/7d", 4, &cap) == SF_OK && cap.max == 2
           && cap.window_ms == 7 * D, "\"2/7d\" is 2 per 7 days");
    tap_ok(sf_push_parse_cap("1/day", 5, &cap) == SF_OK
           && cap.window_ms == D, "\"1/day\" is 1 per day");
    tap_ok(sf_push_parse_cap("0/1d", 4, &cap) == SF_ERR_INVALID
           && sf_push_parse_cap("2/7y", 4, &cap) == SF_ERR_INVALID
           && sf_push_parse_cap("99/1d", 5, &cap) == SF_ERR_INVALID,
           "bad caps rejected");

    a = sf_arena_create(0);
    sf_buf_init(&b);
    sf_push_policy_default(&p);
    sf_json_parse(json, strlen(json), a, &v, &err);
    tap_ok(sf_push_policy_apply_json(&p, &v, &err) == SF_OK
           && p.ncategories == 4 && p.default_tz_min == 480
           && p.quiet_start == 23 * 60 && p.quiet_end == 7 * 60 + 30,
           "policy from JSON");
    sf_push_policy_to_json(&p, &b);
    tap_ok(strstr(b.data, "\"promo\":{\"caps\":[\"1/1d\",\"1/1w\"") == NULL
           && strstr(b.data, "\"promo\":{\"caps\":[\"1/1d\",\"2/1w\"]"),
           "policy as JSON: %s", b.data);

    json = "{\"categories\":{\"promo\":{\"caps\":[\"x\"]}}}";
    sf_json_parse(json, strlen(json), a, &v, &err);
    tap_ok(sf_push_policy_apply_json(&p, &v, &err) == SF_ERR_INVALID,
           "invalid cap in JSON: %s", err.msg);

    sf_buf_free(&b);
    sf_arena_destroy(a);
}


static void
test_decisions(void)
{
    int64_t           t;
    sf_push_decision  d;

    /* promo: 1 per day and 2 per week together, UTC, quiet 22:00-08:00 */
    sf_push_policy_default(&policy);
    {
        sf_push_cap  caps[2] = { { 1, D }, { 2, 7 * D } };

        sf_push_policy_set(&policy, "promo", 5, caps, 2, -1, -1, NULL);
    }

    d = decide_at("u1", "promo", "push", NULL, NOON, 0);
    tap_ok(d.allow && d.limit == 1 && d.remaining == 0
           && d.reset_ms == NOON + D, "first promo allowed (limit %u, "
           "remaining %u)", d.limit, d.remaining);

    d = decide_at("u1", "promo", "push", NULL, NOON + H, 0);
    tap_ok(!d.allow && d.reason == SF_PUSH_CAP && d.retry_at_ms == NOON + D,
           "second the same day: cap, retry at +24h");

    d = decide_at("u1", "promo", "sms", NULL, NOON + H, 0);
    tap_ok(d.allow, "caps are per channel: sms allowed");

    d = decide_at("u1", "promo", "push", NULL, NOON + D, 0);
    tap_ok(d.allow, "a day later (rolling window): allowed");

    d = decide_at("u1", "promo", "push", NULL, NOON + 2 * D, 0);
    tap_ok(!d.allow && d.reason == SF_PUSH_CAP
           && d.retry_at_ms == NOON + 7 * D,
           "third in a week: the weekly cap, retry when the first leaves");

    d = decide_at("u1", "promo", "push", NULL, NOON + 7 * D, 0);
    tap_ok(d.allow, "a week after the first: allowed again");

    /* dry run records nothing */
    d = decide_at("u2", "promo", "push", NULL, NOON, 1);
    tap_ok(d.allow, "dry run: allowed");
    d = decide_at("u2", "promo", "push", NULL, NOON, 1);
    tap_ok(d.allow, "dry run again: still allowed, nothing recorded");

    /* transactional: exempt and urgent */
    for (t = 0; t < 5; t++) {
        d = decide_at("u2", "transactional", "push", NULL, NOON + t, 0);
    }
    tap_ok(d.allow && d.limit == 0, "transactional: exempt from caps");
    d = decide_at("u2", "transactional", "sms", NULL, NOON + 12 * H, 0);
    tap_ok(d.allow && d.quiet, "transactional at midnight UTC: allowed "
           "(urgent) though quiet");

    /* quiet hours wrap midnight, in the user's time zone */
    d = decide_at("u3", "promo", "push", NULL, NOON + 11 * H, 0);
    tap_ok(!d.allow && d.reason == SF_PUSH_QUIET_HOURS
           && d.retry_at_ms == NOON + 20 * H,
           "23:00 UTC: quiet hours, may go at 08:00");
    d = decide_at("u3", "promo", "push", NULL, NOON + 15 * H, 0);
    tap_ok(!d.allow && d.reason == SF_PUSH_QUIET_HOURS
           && d.retry_at_ms == NOON + 20 * H,
           "03:00 UTC: still quiet (after midnight), may go at 08:00");

    profile("{\"id\":\"cn\",\"tz_offset\":\"+08:00\"}");
    d = decide_at("cn", "promo", "push", NULL, NOON, 0);
    tap_ok(d.allow && d.local_minute == 20 * 60,
           "noon UTC is 20:00 in +08:00: allowed");
    d = decide_at("cn", "reminder", "push", NULL, NOON + 3 * H, 0);
    tap_ok(!d.allow && d.reason == SF_PUSH_QUIET_HOURS
           && d.local_minute == 23 * 60 && d.retry_at_ms == NOON + 12 * H,
           "15:00 UTC is 23:00 in +08:00: quiet until 08:00 local");

    profile("{\"id\":\"dnd\",\"quiet_hours\":\"09:00-18:00\"}");
    d = decide_at("dnd", "promo", "push", NULL, NOON, 0);
    tap_ok(!d.allow && d.reason == SF_PUSH_QUIET_HOURS
           && d.retry_at_ms == NOON + 6 * H,
           "a user's own do-not-disturb window");
    d = decide_at("dnd", "promo", "push", NULL, NOON + 11 * H, 0);
    tap_ok(d.allow, "... which replaces the default window");

    /* opt-outs */
    profile("{\"id\":\"o1\",\"opt_out\":[\"promo\"]}");
    profile("{\"id\":\"o2\",\"opt_out\":[\"sms\"]}");
    profile("{\"id\":\"o3\",\"opt_out\":[\"all\"]}");
    tap_ok(decide_at("o1", "promo", "push", NULL, NOON, 0).reason
               == SF_PUSH_OPTED_OUT
           && decide_at("o1", "reminder", "push", NULL, NOON, 0).allow
           && decide_at("o2", "promo", "sms", NULL, NOON, 0).reason
               == SF_PUSH_OPTED_OUT
           && decide_at("o2", "promo", "push", NULL, NOON, 0).allow
           && decide_at("o3", "transactional", "push", NULL, NOON, 0).reason
               == SF_PUSH_OPTED_OUT,
           "opt-out by category, by channel and from everything");

    /* campaigns: never twice to one user */
    d = decide_at("u4", "reminder", "push", "black-friday", NOON, 0);
    tap_ok(d.allow, "campaign sent");
    d = decide_at("u4", "reminder", "sms", "black-friday", NOON + 3 * D, 0);
    tap_ok(!d.allow && d.reason == SF_PUSH_DUPLICATE,
           "the same campaign again: duplicate");

    d = decide_at("u4", "nope", "push", NULL, NOON, 0);
    tap_ok((int) d.reason == -1, "an unknown category is an error");
}


static void
test_throttle(void)
{
    int               i, allowed, throttled;
    char              user[16];
    sf_push_decision  d;

    /* 10 per second with a burst of 5: at one instant 6 go */
    policy.throttle_rate = 10;
    policy.throttle_burst = 5;

    allowed = throttled = 0;
    for (i = 0; i < 20; i++) {
        snprintf(user, sizeof(user), "t%d", i);
        d = decide_at(user, "reminder", "push", NULL, NOON + 100, 0);
        allowed += d.allow;
        throttled += (d.reason == SF_PUSH_THROTTLED);
    }
    tap_ok(allowed == 6 && throttled == 14, "GCRA at one instant: %d allowed, "
           "%d throttled", allowed, throttled);
    tap_ok(d.retry_at_ms > NOON + 100 && d.retry_at_ms <= NOON + 200,
           "throttled: retry within one interval");

    d = decide_at("t-late", "reminder", "push", NULL, NOON + 100 + 1000, 0);
    tap_ok(d.allow, "a second later: allowed");
    d = decide_at("t-tx", "transactional", "push", NULL, NOON + 100 + 1000, 0);
    tap_ok(d.allow, "transactional is not throttled");

    policy.throttle_rate = 0;
}


typedef struct {
    int  allowed[64];
    int  total;
} audit;


static int
audit_entry(void *ctx, uint64_t seq, int64_t time_ms, const char *user,
    size_t user_len, const char *category, size_t category_len,
    const char *channel, size_t channel_len, sf_push_reason reason)
{
    audit  *a = ctx;
    int     n;

    (void) seq;
    (void) time_ms;
    (void) category;
    (void) category_len;
    (void) channel;
    (void) channel_len;

    a->total++;
    if (reason == SF_PUSH_ALLOW && user_len > 2 && user[0] == 'c'
        && user[1] == '-')
    {
        n = atoi(user + 2);
        if (n >= 0 && n < 64) {
            a->allowed[n]++;
        }
    }
    return 0;
}


static void
test_processes(void)
{
    int       i, j, status, over, ok;
    char      user[16];
    pid_t     pids[4];
    audit     a;
    sf_error  err;
    uint64_t  counts[SF_PUSH__COUNT], before[SF_PUSH__COUNT];

    sf_db_push_counters(db, before, &err);

    /* four processes race for 50 users with a cap of 2 per week */
    for (i = 0; i < 4; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            sf_db_close(db);
            sf_db_open(&db, getenv("SF_TEST_DB"), 0, 0, &err);
            sf_db_set_durable(db, 0, &err);
            for (j = 0; j < 500; j++) {
                snprintf(user, sizeof(user), "c-%d", (j * 7 + i) % 50);
                decide_at(user, "promo", "push", NULL, NOON + j, 0);
            }
            sf_db_close(db);
            _exit(0);
        }
    }

    ok = 1;
    for (i = 0; i < 4; i++) {
        waitpid(pids[i], &status, 0);
        ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }

    memset(&a, 0, sizeof(a));
    sf_db_push_log(db, audit_entry, &a, &err);
    over = 0;
    for (i = 0; i < 50; i++) {
        over += (a.allowed[i] != 1);
    }
    sf_db_push_counters(db, counts, &err);

    tap_ok(ok && over == 0, "2000 decisions from 4 processes: every user got "
           "exactly one promo (1 per day), none over");
    tap_ok(counts[SF_PUSH_ALLOW] - before[SF_PUSH_ALLOW] == 50
           && counts[SF_PUSH_CAP] - before[SF_PUSH_CAP] == 1950,
           "counters: %llu allowed, %llu capped",
           (unsigned long long) (counts[SF_PUSH_ALLOW] - before[SF_PUSH_ALLOW]),
           (unsigned long long) (counts[SF_PUSH_CAP] - before[SF_PUSH_CAP]));
}


int
main(void)
{
    char      dir[] = "/tmp/sf-push-XXXXXX", cmd[64];
    sf_error  err;

    mkdtemp(dir);
    setenv("SF_TEST_DB", dir, 1);
    if (sf_db_open(&db, dir, 0, 0, &err) != SF_OK) {
        printf("Bail out! %s\n", err.msg);
        return 1;
    }

    test_policy();
    test_decisions();
    test_throttle();
    test_processes();

    sf_db_close(db);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd)) { /* best effort */ }
    return tap_done();
}
