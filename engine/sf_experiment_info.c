/*
 * Experiment reports: an experiment's set-up read back from its record,
 * with the counts of its arms and their statistics, for the stats
 * endpoint, the status page, the metrics and "storefrontctl stats".
 *
 * The set-up is read through the record's JSON form, so this file does
 * not depend on the record layout; reports are not on a request's path.
 */

#include <math.h>
#include <string.h>

#include "storefront.h"


#define SF_REPORT_Z95  1.959963984540054


static const char *
sf_info_str(sf_arena *a, const sf_value *v, const char *def)
{
    if (v == NULL || v->type != SF_STRING) {
        return def;
    }
    return sf_arena_strndup(a, v->u.str.p, v->u.str.len);
}


int
sf_experiment_info_get(const void *rec, size_t len, sf_arena *a,
    sf_experiment_info *info, sf_error *err)
{
    int              rc;
    char             num[24];
    size_t           i, n;
    double           total;
    sf_buf           json;
    sf_value         exp;
    const sf_value  *v, *vars, *meta, *m, *w;

    memset(info, 0, sizeof(*info));

    sf_buf_init(&json);
    rc = sf_experiment_to_json(rec, len, &json);
    if (rc == SF_OK) {
        rc = sf_json_parse(json.data, json.len, a, &exp, err);
    }
    sf_buf_free(&json);

    if (rc != SF_OK || exp.type != SF_OBJECT) {
        return sf_error_set(err, rc == SF_ERR_NOMEM ? SF_ERR_NOMEM : SF_ERR_DB,
                            "corrupt experiment record");
    }

    info->key = sf_info_str(a, sf_value_member(&exp, "key", 3), "");
    info->name = sf_info_str(a, sf_value_member(&exp, "name", 4), "");
    info->hash_attribute = sf_info_str(a,
                              sf_value_member(&exp, "hashAttribute", 13),
                              "id");
    info->seed = sf_info_str(a, sf_value_member(&exp, "seed", 4), info->key);

    v = sf_value_member(&exp, "active", 6);
    info->active = (v == NULL || v->type != SF_BOOL) ? 1 : v->u.boolean;

    v = sf_value_member(&exp, "coverage", 8);
    info->coverage = (v && v->type == SF_NUMBER) ? v->u.number : 1;

    v = sf_value_member(&exp, "bucketVersion", 13);
    info->bucket_version = (v && v->type == SF_NUMBER && v->u.number > 0)
                           ? (unsigned) v->u.number : 0;

    vars = sf_value_member(&exp, "variations", 10);
    n = (vars && vars->type == SF_ARRAY) ? vars->u.arr.n : 0;
    info->nvariations = n;

    meta = sf_value_member(&exp, "meta", 4);
    if (meta && meta->type != SF_ARRAY) {
        meta = NULL;
    }

    info->variation_keys = sf_arena_alloc(a, (n + 1) * sizeof(char *));
    info->variation_names = sf_arena_alloc(a, (n + 1) * sizeof(char *));
    info->weights = sf_arena_alloc(a, (n + 1) * sizeof(double));

    if (info->key == NULL || info->name == NULL || info->seed == NULL
        || info->hash_attribute == NULL || info->variation_keys == NULL
        || info->variation_names == NULL || info->weights == NULL)
    {
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }

    for (i = 0; i < n; i++) {
        m = (meta && i < meta->u.arr.n) ? &meta->u.arr.items[i] : NULL;

        v = sf_value_member(m, "key", 3);
        if (v && v->type == SF_STRING && v->u.str.len) {
            info->variation_keys[i] = sf_info_str(a, v, "");
        } else {
            snprintf(num, sizeof(num), "%zu", i);
            info->variation_keys[i] = sf_arena_strndup(a, num, strlen(num));
        }
        info->variation_names[i] = sf_info_str(a,
                                       sf_value_member(m, "name", 4), "");

        if (info->variation_keys[i] == NULL
            || info->variation_names[i] == NULL)
        {
            return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
        }
    }

    /* GrowthBook's getBucketRanges: equal weights unless valid ones */

    w = sf_value_member(&exp, "weights", 7);
    total = 0;
    if (w && w->type == SF_ARRAY && w->u.arr.n == n) {
        for (i = 0; i < n; i++) {
            if (w->u.arr.items[i].type != SF_NUMBER) {
                break;
            }
            info->weights[i] = w->u.arr.items[i].u.number;
            total += info->weights[i];
        }
        info->weights_given = (i == n && total >= 0.99 && total <= 1.01);
    }
    if (!info->weights_given && n > 0) {
        sf_equal_weights((int) n, info->weights);
    }

    return SF_OK;
}


typedef struct {
    sf_arena               *arena;
    sf_snapshot            *snapshot;
    sf_experiment_report   *items;
    size_t                  n;
    size_t                  cap;
    const char             *key;
    size_t                  key_len;
    sf_error               *err;
} sf_report_walk;


static int
sf_report_one(sf_report_walk *w, const void *rec, size_t len)
{
    int                    rc;
    size_t                 i, n, got;
    double                 p, half, users;
    sf_experiment_report  *r, *items;

    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        items = sf_arena_alloc(w->arena, w->cap * sizeof(*items));
        if (items == NULL) {
            return sf_error_set(w->err, SF_ERR_NOMEM, "out of memory");
        }
        if (w->n) {
            memcpy(items, w->items, w->n * sizeof(*items));
        }
        w->items = items;
    }

    r = &w->items[w->n];
    memset(r, 0, sizeof(*r));

    rc = sf_experiment_info_get(rec, len, w->arena, &r->info, w->err);
    if (rc != SF_OK) {
        return rc;
    }

    n = r->info.nvariations;
    r->counts = sf_arena_alloc(w->arena, (n + 1) * sizeof(sf_arm_counts));
    r->arms = sf_arena_alloc(w->arena, (n + 1) * sizeof(sf_arm_stats));
    r->rate_ci_low = sf_arena_alloc(w->arena, (n + 1) * sizeof(double));
    r->rate_ci_high = sf_arena_alloc(w->arena, (n + 1) * sizeof(double));

    if (r->counts == NULL || r->arms == NULL || r->rate_ci_low == NULL
        || r->rate_ci_high == NULL)
    {
        return sf_error_set(w->err, SF_ERR_NOMEM, "out of memory");
    }

    memset(r->counts, 0, (n + 1) * sizeof(sf_arm_counts));

    got = 0;
    rc = sf_snapshot_arm_counts(w->snapshot, r->info.key,
                                strlen(r->info.key), r->counts, n, &got,
                                w->err);
    if (rc != SF_OK) {
        return rc;
    }

    sf_stats_compute(r->counts, n, r->info.weights, r->arms, &r->summary);

    for (i = 0; i < n; i++) {
        users = (double) r->counts[i].users;
        p = r->arms[i].conversion_rate;
        half = users > 0 ? SF_REPORT_Z95 * sqrt(p * (1 - p) / users) : 0;
        r->rate_ci_low[i] = users > 0 ? fmax(0, p - half) : 0;
        r->rate_ci_high[i] = users > 0 ? fmin(1, p + half) : 0;
    }

    if (r->summary.srm_alarm) {
        r->status = "sample ratio mismatch";

    } else if (!r->summary.enough_data) {
        r->status = "not enough data";

    } else {
        r->status = "not significant";
        for (i = 1; i < n; i++) {
            if (r->arms[i].significant) {
                r->status = "significant";
            }
        }
    }

    w->n++;
    return SF_OK;
}


static int
sf_report_each(void *ctx, const void *rec, size_t len)
{
    return sf_report_one(ctx, rec, len);
}


int
sf_report_collect(sf_snapshot *s, const char *key, size_t key_len,
    sf_arena *a, sf_experiment_report **out, size_t *n, sf_error *err)
{
    int              rc;
    size_t           len;
    const void      *rec;
    sf_report_walk   w;

    memset(&w, 0, sizeof(w));
    w.arena = a;
    w.snapshot = s;
    w.key = key;
    w.key_len = key_len;
    w.err = err;

    *out = NULL;
    *n = 0;

    if (key_len > 0) {
        rc = sf_snapshot_get_experiment(s, key, key_len, &rec, &len, err);
        if (rc == SF_OK) {
            rc = sf_report_one(&w, rec, len);
        }

    } else {
        rc = sf_snapshot_each_experiment(s, sf_report_each, &w, err);
    }

    if (rc != SF_OK) {
        return rc;
    }

    *out = w.items;
    *n = w.n;
    return SF_OK;
}


/* JSON has no NaN or infinity */
static void
sf_report_number(sf_buf *b, const char *name, double x)
{
    sf_buf_printf(b, ",\"%s\":", name);
    if (isfinite(x)) {
        sf_buf_append_js_number(b, x);
    } else {
        sf_buf_appends(b, "null");
    }
}


static void
sf_report_string(sf_buf *b, const char *name, const char *s)
{
    sf_buf_printf(b, ",\"%s\":", name);
    sf_buf_append_json_string(b, s, strlen(s));
}


/*
 * {"generated_at":"...","min_users_per_arm":1000,"srm_alarm_p":0.001,
 *  "experiments":[{"key":..,"name":..,"active":..,"coverage":..,
 *    "weights":[..],"bucket_version":..,"hash_attribute":..,"users":..,
 *    "enough_data":..,"status":..,"srm":{"chi2":..,"p":..,"alarm":..},
 *    "variations":[{"index":0,"key":..,"name":..,"weight":..,
 *      "control":true,"users":..,"converters":..,"conversion_rate":..,
 *      "conversion_rate_ci":[..,..],"orders":..,"revenue":..,
 *      "average_order_value":..,"revenue_per_user":..,"returns":..,
 *      "returned":..,"return_rate":..}, {... "lift":..,"z":..,
 *      "p_value":..,"ci_low":..,"ci_high":..,"significant":..}]}]}
 */
int
sf_report_json(const sf_experiment_report *r, size_t n, int64_t now,
    sf_buf *b)
{
    size_t                       i, j;
    const sf_arm_stats          *st;
    const sf_experiment_report  *e;

    sf_buf_appends(b, "{\"generated_at\":");
    sf_buf_append_time(b, now);
    sf_buf_printf(b, ",\"min_users_per_arm\":%d", SF_STATS_MIN_USERS);
    sf_report_number(b, "srm_alarm_p", SF_SRM_ALARM_P);
    sf_buf_appends(b, ",\"experiments\":[");

    for (i = 0; i < n; i++) {
        e = &r[i];

        sf_buf_appends(b, i ? ",{\"key\":" : "{\"key\":");
        sf_buf_append_json_string(b, e->info.key, strlen(e->info.key));
        sf_report_string(b, "name", e->info.name);
        sf_buf_printf(b, ",\"active\":%s",
                      e->info.active ? "true" : "false");
        sf_report_number(b, "coverage", e->info.coverage);
        sf_buf_appends(b, ",\"weights\":[");
        for (j = 0; j < e->info.nvariations; j++) {
            if (j) {
                sf_buf_appends(b, ",");
            }
            sf_buf_append_js_number(b, e->info.weights[j]);
        }
        sf_buf_printf(b, "],\"bucket_version\":%u", e->info.bucket_version);
        sf_report_string(b, "seed", e->info.seed);
        sf_report_string(b, "hash_attribute", e->info.hash_attribute);
        sf_buf_printf(b, ",\"users\":%llu,\"enough_data\":%s",
                      (unsigned long long) e->summary.users,
                      e->summary.enough_data ? "true" : "false");
        sf_report_string(b, "status", e->status);
        sf_buf_appends(b, ",\"srm\":{\"chi2\":");
        sf_buf_append_js_number(b, e->summary.srm_chi2);
        sf_report_number(b, "p", e->summary.srm_p);
        sf_buf_printf(b, ",\"alarm\":%s},\"variations\":[",
                      e->summary.srm_alarm ? "true" : "false");

        for (j = 0; j < e->info.nvariations; j++) {
            st = &e->arms[j];

            sf_buf_printf(b, "%s{\"index\":%zu", j ? "," : "", j);
            sf_report_string(b, "key", e->info.variation_keys[j]);
            sf_report_string(b, "name", e->info.variation_names[j]);
            sf_report_number(b, "weight", e->info.weights[j]);
            sf_buf_printf(b, ",\"control\":%s,\"users\":%llu"
                          ",\"converters\":%llu",
                          j == 0 ? "true" : "false",
                          (unsigned long long) st->c.users,
                          (unsigned long long) st->c.converters);
            sf_report_number(b, "conversion_rate", st->conversion_rate);
            sf_buf_appends(b, ",\"conversion_rate_ci\":[");
            sf_buf_append_js_number(b, e->rate_ci_low[j]);
            sf_buf_appends(b, ",");
            sf_buf_append_js_number(b, e->rate_ci_high[j]);
            sf_buf_printf(b, "],\"orders\":%llu",
                          (unsigned long long) st->c.orders);
            sf_report_number(b, "revenue", st->c.revenue);
            sf_report_number(b, "average_order_value",
                             st->average_order_value);
            sf_report_number(b, "revenue_per_user", st->revenue_per_user);
            sf_buf_printf(b, ",\"returns\":%llu",
                          (unsigned long long) st->c.returns);
            sf_report_number(b, "returned", st->c.returned);
            sf_report_number(b, "return_rate", st->return_rate);

            if (j > 0) {
                sf_report_number(b, "lift", st->lift);
                sf_report_number(b, "z", st->z);
                sf_report_number(b, "p_value", st->p_value);
                sf_report_number(b, "ci_low", st->ci_low);
                sf_report_number(b, "ci_high", st->ci_high);
                sf_buf_printf(b, ",\"significant\":%s",
                              st->significant ? "true" : "false");
            }

            sf_buf_appends(b, "}");
        }

        sf_buf_appends(b, "]}");
    }

    return sf_buf_appends(b, "]}");
}
