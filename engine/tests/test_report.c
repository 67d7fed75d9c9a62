/*
 * Experiment reports (sf_experiment_info.c): the set-up read back from a
 * record (variation keys, the split in force, ramp state, re-randomisation)
 * and the report of counted exposures and purchases, as JSON.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storefront.h"
#include "tap.h"


static int
compile(const char *json, sf_buf *rec, sf_arena *a)
{
    sf_error  err;
    sf_value  v;

    rec->len = 0;
    if (sf_json_parse(json, strlen(json), a, &v, &err) != SF_OK) {
        return -1;
    }
    return sf_experiment_compile(&v, rec, &err);
}


static void
test_info(void)
{
    sf_buf              rec, next, summary;
    sf_arena           *a;
    sf_error            err;
    sf_value            changes;
    const char         *json;
    sf_experiment_info  in;

    tap_section("experiment info");

    a = sf_arena_create(0);
    sf_buf_init(&rec);
    sf_buf_init(&next);
    sf_buf_init(&summary);

    compile("{\"key\":\"e\",\"name\":\"Buy button\",\"variations\":[0,1,2],"
            "\"meta\":[{\"key\":\"blue\",\"name\":\"Blue\"},{},"
            "{\"key\":\"red\"}],\"weights\":[0.2,0.3,0.5],"
            "\"coverage\":0.4,\"hashAttribute\":\"account\"}", &rec, a);
    tap_ok(sf_experiment_info_get(rec.data, rec.len, a, &in, &err) == SF_OK
           && strcmp(in.key, "e") == 0 && strcmp(in.name, "Buy button") == 0
           && in.nvariations == 3, "key, name, three variations");
    tap_ok(strcmp(in.variation_keys[0], "blue") == 0
           && strcmp(in.variation_keys[1], "1") == 0
           && strcmp(in.variation_keys[2], "red") == 0
           && strcmp(in.variation_names[0], "Blue") == 0
           && in.variation_names[1][0] == '\0',
           "variation keys from meta, else the index");
    tap_ok(in.weights_given && in.weights[0] == 0.2 && in.weights[2] == 0.5
           && in.coverage == 0.4 && in.active && in.bucket_version == 0
           && strcmp(in.seed, "e") == 0
           && strcmp(in.hash_attribute, "account") == 0,
           "weights, coverage, active, bucket version, seed, hash attribute");

    compile("{\"key\":\"f\",\"variations\":[0,1,2],\"active\":false}", &rec,
            a);
    sf_experiment_info_get(rec.data, rec.len, a, &in, &err);
    tap_ok(!in.weights_given && fabs(in.weights[1] - 1.0 / 3) < 1e-12
           && in.coverage == 1 && !in.active
           && strcmp(in.hash_attribute, "id") == 0,
           "defaults: equal weights, coverage 1, stopped, hash attribute id");

    json = "{\"weights\":[0.5,0.25,0.25],\"coverage\":0.1}";
    sf_json_parse(json, strlen(json), a, &changes, &err);
    sf_experiment_update(rec.data, rec.len, &changes, &next, &summary, &err);
    sf_experiment_info_get(next.data, next.len, a, &in, &err);
    tap_ok(in.bucket_version == 1 && strcmp(in.seed, "f:v1") == 0
           && in.weights_given && in.weights[0] == 0.5
           && in.coverage == 0.1, "after new weights: bucket version 1, "
           "seed %s", in.seed ? in.seed : "(none)");

    tap_ok(sf_experiment_info_get("nope", 4, a, &in, &err) != SF_OK,
           "not a record: an error");

    sf_buf_free(&rec);
    sf_buf_free(&next);
    sf_buf_free(&summary);
    sf_arena_destroy(a);
    tap_section_end();
}


static void
expose(sf_db *db, const char *user, const char *exp, uint32_t var)
{
    int          is_new;
    sf_txn      *t;
    sf_error     err;
    sf_exposure  e;

    e.experiment = exp;
    e.experiment_len = strlen(exp);
    e.variation = var;
    e.user = user;
    e.user_len = strlen(user);
    e.time = 100;

    sf_txn_begin(db, &t, &err);
    sf_txn_record_exposure(t, &e, &is_new, &err);
    sf_txn_commit(t, &err);
}


static void
test_report(void)
{
    int                    i;
    char                   dir[] = "/tmp/sf-report-XXXXXX", cmd[64], u[32];
    size_t                 n;
    sf_db                 *db;
    sf_buf                 rec, json;
    sf_txn                *t;
    sf_arena              *a;
    sf_error               err;
    sf_event               ev;
    sf_value               doc;
    sf_snapshot           *s;
    sf_event_result        res;
    sf_experiment_report  *r;
    const sf_value        *e, *v;

    tap_section("report");

    a = sf_arena_create(0);
    sf_buf_init(&rec);
    sf_buf_init(&json);

    if (mkdtemp(dir) == NULL
        || sf_db_open(&db, dir, 1 << 24, SF_DB_CREATE, &err) != SF_OK)
    {
        tap_ok(0, "temporary database: %s", err.msg);
        return;
    }

    sf_txn_begin(db, &t, &err);
    compile("{\"key\":\"a\",\"variations\":[0,1]}", &rec, a);
    sf_txn_put_experiment(t, rec.data, rec.len, &err);
    compile("{\"key\":\"b\",\"variations\":[0,1],\"weights\":[0.9,0.1]}",
            &rec, a);
    sf_txn_put_experiment(t, rec.data, rec.len, &err);
    sf_txn_commit(t, &err);

    /* 30 users in a's control, 10 in its treatment; 4 and 2 buy */
    for (i = 0; i < 40; i++) {
        snprintf(u, sizeof(u), "u%d", i);
        expose(db, u, "a", i < 30 ? 0 : 1);
        if (i % 7 == 0) {
            memset(&ev, 0, sizeof(ev));
            ev.type = SF_EVENT_PURCHASE;
            ev.user = u;
            ev.user_len = strlen(u);
            ev.order_id = "o";
            ev.order_id_len = 1;
            ev.amount = 10;
            ev.time = 200;
            sf_txn_begin(db, &t, &err);
            sf_txn_apply_event(t, &ev, &res, &err);
            sf_txn_commit(t, &err);
        }
    }

    sf_snapshot_create(db, &s, &err);
    sf_snapshot_renew(s, &err);

    tap_ok(sf_report_collect(s, NULL, 0, a, &r, &n, &err) == SF_OK && n == 2
           && strcmp(r[0].info.key, "a") == 0
           && strcmp(r[1].info.key, "b") == 0, "every experiment, in order");
    tap_ok(r[0].counts[0].users == 30 && r[0].counts[1].users == 10
           && r[0].counts[0].converters == 5 && r[0].counts[1].converters == 1
           && r[0].counts[0].revenue == 50, "counts: users %llu/%llu, "
           "converters %llu/%llu",
           (unsigned long long) r[0].counts[0].users,
           (unsigned long long) r[0].counts[1].users,
           (unsigned long long) r[0].counts[0].converters,
           (unsigned long long) r[0].counts[1].converters);
    tap_ok(fabs(r[0].summary.srm_chi2 - 10) < 1e-9 && r[0].summary.srm_alarm
           == (r[0].summary.srm_p < 0.001)
           && strcmp(r[0].status, "not enough data") == 0,
           "sample ratio chi-square 10 (p %.4f), not enough data",
           r[0].summary.srm_p);
    tap_ok(r[0].rate_ci_low[0] < r[0].arms[0].conversion_rate
           && r[0].rate_ci_high[0] > r[0].arms[0].conversion_rate
           && r[0].rate_ci_low[0] >= 0,
           "the control's rate lies in its CI [%.3f, %.3f]",
           r[0].rate_ci_low[0], r[0].rate_ci_high[0]);
    tap_ok(r[1].summary.users == 0 && r[1].info.weights[0] == 0.9
           && !r[1].summary.srm_alarm, "an experiment without exposures");

    sf_report_json(r, n, 0, &json);
    tap_ok(sf_json_parse(json.data, json.len, a, &doc, &err) == SF_OK,
           "the JSON parses");
    e = sf_value_member(&doc, "experiments", 11);
    e = e && e->u.arr.n == 2 ? &e->u.arr.items[0] : NULL;
    v = sf_value_member(e, "variations", 10);
    v = v && v->u.arr.n == 2 ? &v->u.arr.items[1] : NULL;
    tap_ok(v && sf_value_member(v, "users", 5)->u.number == 10
           && sf_value_member(v, "p_value", 7) != NULL
           && sf_value_member(&v[-1], "p_value", 7) == NULL,
           "JSON: a treatment has users and a p-value, the control none");

    tap_ok(sf_report_collect(s, "b", 1, a, &r, &n, &err) == SF_OK && n == 1
           && strcmp(r[0].info.key, "b") == 0, "one experiment by key");
    tap_ok(sf_report_collect(s, "zz", 2, a, &r, &n, &err) == SF_ERR_NOT_FOUND,
           "an unknown key: not found");

    sf_snapshot_reset(s);
    sf_snapshot_free(s);
    sf_db_close(db);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        tap_ok(0, "remove %s", dir);
    }

    sf_buf_free(&rec);
    sf_buf_free(&json);
    sf_arena_destroy(a);
    tap_section_end();
}


int
main(void)
{
    test_info();
    test_report();
    return tap_done();
}
