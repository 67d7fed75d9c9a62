/*
 * Experiment results: the statistics against known values, unique
 * exposures per (user, experiment), and conversions attributed to the
 * variations seen before the purchase.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storefront.h"
#include "tap.h"


static int
near(double a, double b, double tol)
{
    return fabs(a - b) <= tol;
}


static void
test_statistics(void)
{
    double               w[2] = { 0.5, 0.5 };
    sf_arm_counts        arms[3];
    sf_arm_stats         st[3];
    sf_experiment_stats  sum;

    memset(arms, 0, sizeof(arms));
    arms[0].users = 9463;
    arms[1].users = 7681;
    sf_stats_compute(arms, 2, w, st, &sum);
    tap_ok(near(sum.srm_chi2, 185.2266, 1e-3) && sum.srm_alarm
           && sum.srm_p < 1e-40,
           "9463 vs 7681 on 50/50: chi-square %.1f, p %.3g, alarm",
           sum.srm_chi2, sum.srm_p);

    arms[0].users = 5040;
    arms[1].users = 4960;
    sf_stats_compute(arms, 2, NULL, st, &sum);
    tap_ok(near(sum.srm_chi2, 0.64, 1e-9) && near(sum.srm_p, 0.42371, 1e-4)
           && !sum.srm_alarm, "5040 vs 4960: chi-square %.2f, p %.4f, no "
           "alarm", sum.srm_chi2, sum.srm_p);

    tap_ok(near(sf_stats_chi2_sf(7.815, 3), 0.05, 1e-4)
           && near(sf_stats_chi2_sf(13.816, 2), 0.001, 1e-5),
           "chi-square tails for 3 and 2 degrees of freedom");

    memset(arms, 0, sizeof(arms));
    arms[0].users = 1000;
    arms[0].converters = 100;
    arms[0].orders = 120;
    arms[0].revenue = 12000;
    arms[0].returns = 12;
    arms[1].users = 1000;
    arms[1].converters = 130;
    arms[1].orders = 150;
    arms[1].revenue = 13500;
    arms[1].returns = 6;
    sf_stats_compute(arms, 2, NULL, st, &sum);
    tap_ok(near(st[1].z, 2.10274, 1e-4) && near(st[1].p_value, 0.035488, 1e-5)
           && near(st[1].ci_low, 0.0020679, 1e-6)
           && near(st[1].ci_high, 0.0579321, 1e-6)
           && near(st[1].lift, 0.3, 1e-9) && st[1].significant,
           "10%% vs 13%%: z %.4f, p %.5f, CI [%.5f, %.5f], lift %.2f",
           st[1].z, st[1].p_value, st[1].ci_low, st[1].ci_high, st[1].lift);
    tap_ok(near(st[0].average_order_value, 100, 1e-9)
           && near(st[1].average_order_value, 90, 1e-9)
           && near(st[1].revenue_per_user, 13.5, 1e-9)
           && near(st[0].return_rate, 0.1, 1e-9)
           && near(st[1].return_rate, 0.04, 1e-9),
           "average order value, revenue per user, return rate");

    arms[1].users = 999;
    sf_stats_compute(arms, 2, NULL, st, &sum);
    tap_ok(!sum.enough_data && !st[1].significant,
           "not enough data below 1000 users in an arm");
}


static int
apply(sf_db *db, const char *json, sf_error *err)
{
    int              rc;
    sf_txn          *t;
    sf_event         ev;
    sf_value         v;
    sf_arena        *a;
    sf_event_result  res;

    a = sf_arena_create(0);
    rc = sf_json_parse(json, strlen(json), a, &v, err);
    if (rc == SF_OK) {
        rc = sf_event_from_json(&v, 0, &ev, err);
    }
    if (rc == SF_OK) {
        sf_txn_begin(db, &t, err);
        rc = sf_txn_apply_event(t, &ev, &res, err);
        if (rc == SF_OK) {
            rc = sf_txn_commit(t, err);
        } else {
            sf_txn_abort(t);
        }
    }
    sf_arena_destroy(a);
    return rc;
}


static void
expose(sf_db *db, const char *user, const char *exp, uint32_t var,
    int64_t time, int *is_new)
{
    sf_txn      *t;
    sf_error     err;
    sf_exposure  e;

    e.experiment = exp;
    e.experiment_len = strlen(exp);
    e.variation = var;
    e.user = user;
    e.user_len = strlen(user);
    e.time = time;

    sf_txn_begin(db, &t, &err);
    sf_txn_record_exposure(t, &e, is_new, &err);
    sf_txn_commit(t, &err);
}


static void
test_counting(void)
{
    int            is_new, n1, n2;
    char           dir[] = "/tmp/sf-stats-XXXXXX", cmd[64];
    size_t         n;
    sf_db         *db;
    sf_error       err;
    sf_snapshot   *s;
    sf_arm_counts  arms[4];

    mkdtemp(dir);
    sf_db_open(&db, dir, 0, 0, &err);

    expose(db, "alice", "hero", 1, 1000, &n1);
    expose(db, "alice", "hero", 1, 2000, &n2);
    expose(db, "bob", "hero", 0, 1000, &is_new);
    expose(db, "carol", "hero", 1, 5000, &is_new);
    expose(db, "alice", "button", 0, 1000, &is_new);
    tap_ok(n1 == 1 && n2 == 0, "a user counts once per experiment");

    apply(db, "{\"type\":\"purchase\",\"user\":\"alice\",\"order_id\":\"a1\","
          "\"amount\":50,\"time\":3000}", &err);
    apply(db, "{\"type\":\"purchase\",\"user\":\"alice\",\"order_id\":\"a2\","
          "\"amount\":30,\"time\":3100}", &err);
    apply(db, "{\"type\":\"purchase\",\"user\":\"alice\",\"order_id\":\"a2\","
          "\"amount\":30,\"time\":3100}", &err);
    /* carol bought before she saw the experiment: not attributed */
    apply(db, "{\"type\":\"purchase\",\"user\":\"carol\",\"order_id\":\"c1\","
          "\"amount\":70,\"time\":4000}", &err);
    apply(db, "{\"type\":\"return\",\"user\":\"alice\",\"order_id\":\"a2\"}",
          &err);

    sf_snapshot_create(db, &s, &err);
    sf_snapshot_renew(s, &err);
    sf_snapshot_arm_counts(s, "hero", 4, arms, 4, &n, &err);
    tap_ok(n == 2 && arms[0].users == 1 && arms[1].users == 2
           && arms[1].converters == 1 && arms[1].orders == 2
           && arms[1].revenue == 80 && arms[1].returns == 1
           && arms[1].returned == 30 && arms[0].orders == 0,
           "hero: arm 1 has %llu users, %llu converters, %llu orders, "
           "revenue %g, %llu returns", (unsigned long long) arms[1].users,
           (unsigned long long) arms[1].converters,
           (unsigned long long) arms[1].orders, arms[1].revenue,
           (unsigned long long) arms[1].returns);

    sf_snapshot_arm_counts(s, "button", 6, arms, 4, &n, &err);
    tap_ok(n == 1 && arms[0].users == 1 && arms[0].converters == 1
           && arms[0].orders == 2, "the same purchase counts in every "
           "experiment the user saw");

    sf_snapshot_arm_counts(s, "her", 3, arms, 4, &n, &err);
    tap_ok(n == 0, "keys are not matched by prefix");
    sf_snapshot_reset(s);
    sf_snapshot_free(s);

    sf_db_close(db);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd)) { /* best effort */ }
}


static void
test_operations(void)
{
    int            i, moved, in_before, in_after;
    char           id[16];
    sf_buf         rec, next, summary;
    sf_error       err;
    sf_value       v, changes, attrs;
    sf_member      m;
    sf_arena      *a;
    sf_request     req;
    sf_assignment  before, after;
    const char    *exp = "{\"key\":\"new-checkout\",\"variations\":"
                         "[false,true],\"coverage\":0.1}";

    a = sf_arena_create(0);
    sf_buf_init(&rec);
    sf_buf_init(&next);
    sf_buf_init(&summary);

    sf_json_parse(exp, strlen(exp), a, &v, &err);
    sf_experiment_compile(&v, &rec, &err);

    sf_json_parse("{\"coverage\":1}", 14, a, &changes, &err);
    i = sf_experiment_update(rec.data, rec.len, &changes, &next, &summary,
                             &err);
    tap_ok(i == SF_OK && strcmp(summary.data, "coverage 0.1 -> 1") == 0,
           "ramp: %s", summary.data);

    memset(&req, 0, sizeof(req));
    m.name = "id";
    m.name_len = 2;
    m.value.type = SF_STRING;
    attrs.type = SF_OBJECT;
    attrs.u.obj.members = &m;
    attrs.u.obj.n = 1;
    req.attributes = &attrs;

    moved = in_before = in_after = 0;
    for (i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "user%d", i);
        m.value.u.str.p = id;
        m.value.u.str.len = strlen(id);
        sf_experiment_evaluate(rec.data, rec.len, &req, &before);
        sf_experiment_evaluate(next.data, next.len, &req, &after);
        in_before += before.in_experiment;
        in_after += after.in_experiment;
        moved += before.in_experiment
                 && (!after.in_experiment
                     || after.variation != before.variation);
    }
    tap_ok(moved == 0 && in_before > 400 && in_before < 600
           && in_after == 5000,
           "10%% -> 100%%: %d then %d users in, none moved", in_before,
           in_after);

    summary.len = 0;
    sf_json_parse("{\"weights\":[0.2,0.8]}", 21, a, &changes, &err);
    sf_experiment_update(next.data, next.len, &changes, &rec, &summary, &err);
    tap_ok(strstr(summary.data, "seed \"new-checkout:v1\"") != NULL,
           "new weights re-randomise: %s", summary.data);

    summary.len = 0;
    sf_experiment_update(rec.data, rec.len, &changes, &next, &summary, &err);
    tap_ok(strstr(summary.data, "seed \"new-checkout:v2\"") != NULL,
           "and again: %s", summary.data);

    summary.len = 0;
    sf_json_parse("{\"active\":false}", 16, a, &changes, &err);
    sf_experiment_update(next.data, next.len, &changes, &rec, &summary, &err);
    m.value.u.str.p = "user1";
    m.value.u.str.len = 5;
    sf_experiment_evaluate(rec.data, rec.len, &req, &after);
    tap_ok(strcmp(summary.data, "active true -> false") == 0
           && after.reason == SF_REASON_INACTIVE, "stop: %s", summary.data);

    sf_json_parse("{\"coverage\":2}", 14, a, &changes, &err);
    tap_ok(sf_experiment_update(rec.data, rec.len, &changes, &next, &summary,
                                &err) == SF_ERR_INVALID,
           "an invalid ramp is rejected: %s", err.msg);
    sf_json_parse("{\"key\":\"x\"}", 11, a, &changes, &err);
    tap_ok(sf_experiment_update(rec.data, rec.len, &changes, &next, &summary,
                                &err) == SF_ERR_INVALID,
           "only active, coverage and weights change: %s", err.msg);

    sf_buf_free(&rec);
    sf_buf_free(&next);
    sf_buf_free(&summary);
    sf_arena_destroy(a);
}


int
main(void)
{
    test_statistics();
    test_counting();
    test_operations();
    return tap_done();
}
