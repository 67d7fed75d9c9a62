/*
 * storefrontctl profile, rules and rfm: a stored profile and what follows
 * from it (also shown by explain and event), the rules in force, and the
 * RFM cut-points (rebuilt, shown or set).
 */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"


/* ---- profiles: what is shown of them ------------------------------------ */

void *
ctl_arena_alloc(void *ctx, size_t n)
{
    return sf_arena_alloc(ctx, n);
}


static int
ctl_json_time_or_null(sf_buf *o, int64_t t)
{
    return t ? sf_buf_append_time(o, t) : sf_buf_appends(o, "null");
}


/*
 * The profile object of explain --json and profile show --json: what is
 * computed (scores, segment, lifecycle, tier) and the main aggregates.
 */
int
ctl_derived_json(sf_buf *o, const sf_profile *p, const sf_derived *d)
{
    int  rc;

    rc = sf_buf_printf(o, "{\"found\":%s,\"segment\":", p->found ? "true"
                                                                 : "false");
    if (rc == SF_OK) {
        rc = sf_buf_append_json_string(o, d->segment, strlen(d->segment));
    }
    if (rc == SF_OK) {
        rc = sf_buf_printf(o, ",\"rfm\":\"%s\",\"r\":%d,\"f\":%d,\"m\":%d,"
                           "\"lifecycle\":\"%s\",\"tier\":", d->rfm, d->r,
                           d->f, d->m, d->lifecycle);
    }
    if (rc == SF_OK) {
        rc = sf_buf_append_json_string(o, d->tier, strlen(d->tier));
    }
    if (rc == SF_OK) {
        rc = sf_buf_printf(o, ",\"tier_benefits\":%s,\"points\":",
                           d->tier_benefits[0] ? d->tier_benefits : "{}");
    }
    if (rc == SF_OK) {
        rc = sf_buf_append_js_number(o, p->points);
    }
    if (rc == SF_OK) {
        rc = sf_buf_appends(o, ",\"spend_365\":");
    }
    if (rc == SF_OK) {
        rc = sf_buf_append_js_number(o, d->spend_365);
    }
    if (rc == SF_OK) {
        rc = sf_buf_printf(o, ",\"orders\":%u,\"returns\":%u,\"monetary\":",
                           p->orders, p->returns);
    }
    if (rc == SF_OK) {
        rc = sf_buf_append_js_number(o, p->monetary);
    }
    if (rc == SF_OK) {
        rc = sf_buf_appends(o, ",\"days_since_last_order\":");
    }
    if (rc == SF_OK) {
        rc = d->days_since_last_order < 0
             ? sf_buf_appends(o, "null")
             : sf_buf_append_js_number(o, floor(d->days_since_last_order
                                                * 10) / 10);
    }
    if (rc == SF_OK) {
        rc = sf_buf_appends(o, ",\"first_order\":");
    }
    if (rc == SF_OK) {
        rc = ctl_json_time_or_null(o, p->first_order);
    }
    if (rc == SF_OK) {
        rc = sf_buf_appends(o, ",\"last_order\":");
    }
    if (rc == SF_OK) {
        rc = ctl_json_time_or_null(o, p->last_order);
    }
    if (rc == SF_OK) {
        rc = sf_buf_appends(o, ",\"top_category\":");
    }
    if (rc == SF_OK) {
        rc = p->ncategories
             ? sf_buf_append_json_string(o, p->categories[0].name,
                                         p->categories[0].name_len)
             : sf_buf_appends(o, "null");
    }
    if (rc == SF_OK) {
        rc = sf_buf_appends(o, "}");
    }
    return rc;
}


/* The lines of explain and profile show about who the visitor is. */
void
ctl_derived_text(FILE *f, const char *indent, const sf_profile *p,
    const sf_derived *d)
{
    char  a[32], b[32], c[32];

    fprintf(f, "%srfm %s (R %d, F %d, M %d)  segment %s  lifecycle %s\n",
            indent, d->rfm, d->r, d->f, d->m, d->segment, d->lifecycle);
    fprintf(f, "%stier %s %s\n", indent, d->tier[0] ? d->tier : "-",
            d->tier_benefits[0] ? d->tier_benefits : "{}");
    fprintf(f, "%sorders %u  returns %u  monetary %s  spend_365 %s  "
            "points %s\n", indent, p->orders, p->returns,
            ctl_number(p->monetary, a, sizeof(a)),
            ctl_number(d->spend_365, b, sizeof(b)),
            ctl_number(p->points, c, sizeof(c)));
    if (d->days_since_last_order >= 0) {
        fprintf(f, "%slast order %s (%.1f days ago)  first order %s\n",
                indent, ctl_time_text(p->last_order, a, sizeof(a)),
                d->days_since_last_order,
                ctl_time_text(p->first_order, b, sizeof(b)));
    } else {
        fprintf(f, "%sno order yet\n", indent);
    }
}


/* The visitor's profile and what follows from it, at now. */
int
ctl_lookup(const ctl_global *g, sf_snapshot *snap, const char *id,
    int64_t now, sf_profile *p, sf_derived *d, const sf_rules **rules)
{
    sf_error  err;

    memset(&err, 0, sizeof(err));
    sf_profile_init(p);

    if (sf_snapshot_rules(snap, rules, &err) != SF_OK
        || (id && sf_snapshot_get_profile(snap, id, strlen(id), p, &err)
                  != SF_OK))
    {
        ctl_err("%s: %s", g->db_path, err.msg);
        return CTL_ERROR;
    }

    sf_profile_derive(p, *rules, now, d);
    return CTL_OK;
}


int
ctl_cmd_profile(ctl_global *g, int argc, char **argv, char **pos)
{
    int               rc, npos, json;
    int64_t           now;
    char              a[32], b[32];
    size_t            i;
    sf_db            *db;
    sf_snapshot      *snap;
    sf_profile        p;
    sf_derived        d;
    sf_buf            o;
    sf_arena         *arena;
    sf_value          attrs;
    const sf_rules   *rules;

    json = 0;
    rc = ctl_parse_args("profile", argc, argv, g, ctl_json_options,
                        ctl_json_option, &json, pos, &npos);
    if (rc != CTL_OK) {
        return rc;
    }
    if (npos == 0 || strcmp(pos[0], "show") != 0) {
        return ctl_usage_err("profile: %s", npos ? "unknown subcommand "
                             "(use: profile show ID)" : "missing subcommand "
                             "(use: profile show ID)");
    }
    if (npos != 2) {
        return ctl_usage_err("profile show: %s", npos < 2 ? "missing ID"
                                                          : "too many "
                                                            "arguments");
    }
    if ((rc = ctl_need_db("profile", g)) != CTL_OK) {
        return rc;
    }

    if (ctl_open_snapshot(g, &db, &snap) != CTL_OK) {
        return CTL_ERROR;
    }

    now = ctl_now(g);
    if (ctl_lookup(g, snap, pos[1], now, &p, &d, &rules) != CTL_OK) {
        ctl_close_snapshot(db, snap);
        return CTL_ERROR;
    }

    sf_buf_init(&o);
    rc = CTL_OK;

    if (json) {
        if (sf_buf_appends(&o, "{\"id\":") != SF_OK
            || sf_buf_append_json_string(&o, pos[1], strlen(pos[1]))
               != SF_OK
            || sf_buf_appends(&o, ",\"now\":") != SF_OK
            || sf_buf_append_time(&o, now) != SF_OK
            || sf_buf_appends(&o, ",\"profile\":") != SF_OK
            || (p.found ? sf_profile_to_json(pos[1], strlen(pos[1]), &p, &o)
                        : sf_buf_appends(&o, "null")) != SF_OK
            || sf_buf_appends(&o, ",\"derived\":") != SF_OK
            || ctl_derived_json(&o, &p, &d) != SF_OK
            || sf_buf_appends(&o, "}\n") != SF_OK)
        {
            rc = ctl_nomem();
        } else {
            ctl_write(stdout, &o);
        }

    } else if (!p.found) {
        printf("profile %s: none (a new visitor: defaults)\n", pos[1]);
        printf("at %s\n", ctl_time_text(now, a, sizeof(a)));
        ctl_derived_text(stdout, "  ", &p, &d);

    } else {
        printf("profile %s\n", pos[1]);
        printf("  first seen %s\n", ctl_time_text(p.first_seen, a, sizeof(a)));
        if (p.ncategories) {
            printf("  categories");
            for (i = 0; i < p.ncategories; i++) {
                printf(" %.*s:%u", (int) p.categories[i].name_len,
                       p.categories[i].name, p.categories[i].count);
            }
            printf("\n");
        }
        if (p.has_tz) {
            printf("  tz_offset %+d min", p.tz_offset_min);
            if (p.has_quiet) {
                printf("  quiet hours %02u:%02u-%02u:%02u",
                       p.quiet_start / 60, p.quiet_start % 60,
                       p.quiet_end / 60, p.quiet_end % 60);
            }
            printf("\n");
        } else if (p.has_quiet) {
            printf("  quiet hours %02u:%02u-%02u:%02u\n", p.quiet_start / 60,
                   p.quiet_start % 60, p.quiet_end / 60, p.quiet_end % 60);
        }
        if (p.opt_out_len) {
            printf("  opt-out %.*s\n", (int) p.opt_out_len, p.opt_out);
        }
        if (p.attributes_len) {
            arena = sf_arena_create(0);
            if (arena && sf_value_decode(p.attributes, p.attributes_len,
                                         ctl_arena_alloc, arena, &attrs,
                                         NULL) == SF_OK
                && sf_json_write(&o, &attrs) == SF_OK)
            {
                printf("  attributes %.*s\n", (int) o.len, o.data);
            }
            sf_arena_destroy(arena);
        }
        printf("at %s\n", ctl_time_text(now, b, sizeof(b)));
        ctl_derived_text(stdout, "  ", &p, &d);
    }

    sf_buf_free(&o);
    ctl_close_snapshot(db, snap);
    return ctl_finish_stdout(rc);
}


/* ---- rules -------------------------------------------------------------- */

static void
ctl_cuts_text(FILE *f, const char *name, const double *cuts)
{
    char  a[32], b[32], c[32], d[32];

    fprintf(f, "  %-13s %s %s %s %s\n", name, ctl_number(cuts[0], a, 32),
            ctl_number(cuts[1], b, 32), ctl_number(cuts[2], c, 32),
            ctl_number(cuts[3], d, 32));
}


static void
ctl_rfm_text(FILE *f, const sf_rules *r)
{
    char  a[32];

    if (r->rfm_computed_at) {
        fprintf(f, "RFM cut-points: computed on %.10s from the profiles\n",
                ctl_time_text((int64_t) r->rfm_computed_at * 86400, a,
                              sizeof(a)));
    } else {
        fprintf(f, "RFM cut-points: preset (the defaults or set by hand)\n");
    }
    ctl_cuts_text(f, "recency_days", r->recency_days);
    ctl_cuts_text(f, "frequency", r->frequency);
    ctl_cuts_text(f, "monetary", r->monetary);
    fprintf(f, "  (R is 5 for at most %s days since the last order, 1 "
            "beyond the last cut; F and M are 1 up to the first cut, 5 "
            "above the last)\n", ctl_number(r->recency_days[0], a, 32));
}


int
ctl_cmd_rules(ctl_global *g, int argc, char **argv, char **pos)
{
    static const char  *head[] = { "SEGMENT", "R", "F", "M" };
    static const char  *weekdays[] = { "sun", "mon", "tue", "wed", "thu",
                                       "fri", "sat" };
    int                 rc, npos, json;
    uint32_t            i;
    char                r[8], f[8], m[8], a[32], b[32], c[32];
    const char         *cells[4];
    sf_db              *db;
    sf_snapshot        *snap;
    sf_error            err;
    sf_buf              o;
    ctl_table           t;
    const sf_rules     *rules;

    json = 0;
    rc = ctl_parse_args("rules", argc, argv, g, ctl_json_options,
                        ctl_json_option, &json, pos, &npos);
    if (rc != CTL_OK) {
        return rc;
    }
    if (npos != 1 || strcmp(pos[0], "show") != 0) {
        return ctl_usage_err("rules: %s", npos == 0 ? "missing subcommand "
                             "(use: rules show)" : "unknown subcommand "
                             "(use: rules show; rules are imported as "
                             "{\"rules\": {...}})");
    }
    if ((rc = ctl_need_db("rules", g)) != CTL_OK) {
        return rc;
    }
    if (ctl_open_snapshot(g, &db, &snap) != CTL_OK) {
        return CTL_ERROR;
    }

    memset(&err, 0, sizeof(err));
    if (sf_snapshot_rules(snap, &rules, &err) != SF_OK) {
        ctl_err("%s: %s", g->db_path, err.msg);
        ctl_close_snapshot(db, snap);
        return CTL_ERROR;
    }

    sf_buf_init(&o);
    rc = CTL_OK;

    if (json) {
        if (sf_rules_to_json(rules, &o) != SF_OK
            || sf_buf_appends(&o, "\n") != SF_OK)
        {
            rc = ctl_nomem();
        } else {
            ctl_write(stdout, &o);
        }
        goto done;
    }

    ctl_rfm_text(stdout, rules);

    printf("\nsegments (first match wins, else \"others\"):\n");
    memset(&t, 0, sizeof(t));
    t.ncols = 4;
    if (ctl_table_row(&t, head) != 0) {
        rc = ctl_nomem();
        goto done;
    }
    for (i = 0; i < rules->nsegments; i++) {
        const sf_segment_rule  *s = &rules->segments[i];

        snprintf(r, sizeof(r), "%u-%u", s->r_min, s->r_max);
        snprintf(f, sizeof(f), "%u-%u", s->f_min, s->f_max);
        snprintf(m, sizeof(m), "%u-%u", s->m_min, s->m_max);
        cells[0] = s->name;
        cells[1] = r;
        cells[2] = f;
        cells[3] = m;
        if (ctl_table_row(&t, cells) != 0) {
            ctl_table_free(&t);
            rc = ctl_nomem();
            goto done;
        }
    }
    ctl_table_print(&t, stdout);
    ctl_table_free(&t);

    printf("\nlifecycle: new while the first order is at most %s days old; "
           "at_risk after %s days without an order, lost after %s\n",
           ctl_number(rules->new_days, a, 32),
           ctl_number(rules->at_risk_days, b, 32),
           ctl_number(rules->lost_days, c, sizeof(c)));

    printf("\ntiers (by spend over the last 365 days):\n");
    for (i = 0; i < rules->ntiers; i++) {
        printf("  %-14s from %-10s %s\n", rules->tiers[i].name,
               ctl_number(rules->tiers[i].min_spend, a, 32),
               rules->tiers[i].benefits);
    }

    printf("\npoints: %s per currency unit",
           ctl_number(rules->points_per_unit, a, 32));
    for (i = 0; i < rules->npoint_days; i++) {
        const sf_points_day  *pd = &rules->point_days[i];

        printf("%s", i ? ", " : "; multipliers: ");
        if (pd->day >= 0) {
            printf("%.10s", ctl_time_text((int64_t) pd->day * 86400, b, 32));
        } else {
            printf("%s", weekdays[pd->weekday % 7]);
        }
        printf(" x%s", ctl_number(pd->multiplier, a, 32));
    }
    printf("\n");

done:

    sf_buf_free(&o);
    ctl_close_snapshot(db, snap);
    return ctl_finish_stdout(rc);
}


/* ---- rfm ---------------------------------------------------------------- */

typedef struct {
    int          json;
    const char  *cuts[3];       /* recency, frequency, monetary */
} ctl_rfm_opts;


static int
ctl_rfm_option(void *ctx, int id, const char *value)
{
    ctl_rfm_opts  *o = ctx;

    switch (id) {
    case OPT_JSON:
        o->json = 1;
        break;
    case OPT_RECENCY:
        o->cuts[0] = value;
        break;
    case OPT_FREQUENCY:
        o->cuts[1] = value;
        break;
    case OPT_MONETARY:
        o->cuts[2] = value;
        break;
    }
    return CTL_OK;
}


static const ctl_option ctl_rfm_options[] = {
    { "json", 0, OPT_JSON },
    { "recency", 1, OPT_RECENCY },
    { "frequency", 1, OPT_FREQUENCY },
    { "monetary", 1, OPT_MONETARY },
    { NULL, 0, 0 }
};


/* "D1,D2,D3,D4" into 4 numbers. */
static int
ctl_parse_cuts(const char *s, sf_value *items)
{
    int     i;
    char   *end;

    for (i = 0; i < 4; i++) {
        errno = 0;
        items[i].type = SF_NUMBER;
        items[i].u.number = strtod(s, &end);
        if (errno || end == s || !isfinite(items[i].u.number)) {
            return -1;
        }
        if (i < 3) {
            if (*end != ',') {
                return -1;
            }
            s = end + 1;
        }
    }
    return *end == '\0' ? 0 : -1;
}


/* One write transaction on the rules, growing a full map. */
typedef int (*ctl_rules_edit)(sf_rules *rules, void *ctx, sf_error *err);

static int
ctl_edit_rules(const ctl_global *g, ctl_rules_edit edit, void *ctx,
    sf_rules *out)
{
    int         rc;
    sf_db      *db;
    sf_txn     *txn;
    sf_error    err;
    sf_rules    rules;
    sf_db_info  info;

    if (ctl_open_db(g, SF_DB_CREATE, &db) != CTL_OK) {
        return CTL_ERROR;
    }

    for ( ;; ) {
        memset(&err, 0, sizeof(err));
        rc = sf_txn_begin(db, &txn, &err);
        if (rc != SF_OK) {
            break;
        }
        rc = sf_txn_get_rules(txn, &rules, &err);
        if (rc == SF_OK) {
            rc = edit(&rules, ctx, &err);
        }
        if (rc == SF_OK) {
            rc = sf_txn_put_rules(txn, &rules, &err);
        }
        if (rc == SF_OK) {
            rc = sf_txn_commit(txn, &err);
        } else {
            sf_txn_abort(txn);
        }
        if (rc == SF_OK || err.code != SF_ERR_MAP_FULL
            || sf_db_info_get(db, &info, &err) != SF_OK
            || sf_db_set_map_size(db, info.map_size * 2, &err) != SF_OK)
        {
            break;
        }
    }

    sf_db_close(db);
    if (rc != SF_OK) {
        ctl_err("%s", err.msg);
        return CTL_ERROR;
    }
    *out = rules;
    return CTL_OK;
}


static int
ctl_rfm_set_edit(sf_rules *rules, void *ctx, sf_error *err)
{
    return sf_rules_apply_json(rules, ctx, err);
}


static int
ctl_rfm_json(sf_buf *o, const sf_rules *r)
{
    int  i, rc;

    rc = sf_buf_appends(o, "{\"recency_days\":[");
    for (i = 0; rc == SF_OK && i < 4; i++) {
        rc = sf_buf_appends(o, i ? "," : "");
        if (rc == SF_OK) {
            rc = sf_buf_append_js_number(o, r->recency_days[i]);
        }
    }
    if (rc == SF_OK) {
        rc = sf_buf_appends(o, "],\"frequency\":[");
    }
    for (i = 0; rc == SF_OK && i < 4; i++) {
        rc = sf_buf_appends(o, i ? "," : "");
        if (rc == SF_OK) {
            rc = sf_buf_append_js_number(o, r->frequency[i]);
        }
    }
    if (rc == SF_OK) {
        rc = sf_buf_appends(o, "],\"monetary\":[");
    }
    for (i = 0; rc == SF_OK && i < 4; i++) {
        rc = sf_buf_appends(o, i ? "," : "");
        if (rc == SF_OK) {
            rc = sf_buf_append_js_number(o, r->monetary[i]);
        }
    }
    if (rc == SF_OK) {
        rc = sf_buf_appends(o, "],\"computed_on\":");
    }
    if (rc == SF_OK) {
        if (r->rfm_computed_at) {
            char  t[32];

            ctl_time_text((int64_t) r->rfm_computed_at * 86400, t,
                          sizeof(t));
            rc = sf_buf_printf(o, "\"%.10s\"", t);
        } else {
            rc = sf_buf_appends(o, "null");
        }
    }
    if (rc == SF_OK) {
        rc = sf_buf_appends(o, "}\n");
    }
    return rc;
}


int
ctl_cmd_rfm(ctl_global *g, int argc, char **argv, char **pos)
{
    static const char  *names[] = { "recency_days", "frequency",
                                    "monetary" };
    int                 rc, npos, i, n;
    size_t              profiles;
    sf_db              *db;
    sf_snapshot        *snap;
    sf_error            err;
    sf_rules            rules;
    sf_buf              o;
    sf_value            items[3][4], cut[3], rfm, doc;
    sf_member           cm[3], dm;
    ctl_rfm_opts        opts;
    const sf_rules     *cur;

    memset(&opts, 0, sizeof(opts));
    rc = ctl_parse_args("rfm", argc, argv, g, ctl_rfm_options,
                        ctl_rfm_option, &opts, pos, &npos);
    if (rc != CTL_OK) {
        return rc;
    }
    if (npos != 1 || (strcmp(pos[0], "rebuild") != 0
                      && strcmp(pos[0], "show") != 0
                      && strcmp(pos[0], "set") != 0))
    {
        return ctl_usage_err("rfm: %s (use: rfm rebuild | rfm show | rfm set "
                             "--recency D1,D2,D3,D4 ...)",
                             npos == 0 ? "missing subcommand"
                             : npos > 1 ? "too many arguments"
                             : "unknown subcommand");
    }
    if (strcmp(pos[0], "set") != 0 && (opts.cuts[0] || opts.cuts[1]
                                       || opts.cuts[2]))
    {
        return ctl_usage_err("rfm %s: --recency, --frequency and --monetary "
                             "go with rfm set", pos[0]);
    }
    if ((rc = ctl_need_db("rfm", g)) != CTL_OK) {
        return rc;
    }

    sf_buf_init(&o);
    memset(&err, 0, sizeof(err));

    if (strcmp(pos[0], "show") == 0) {
        if (ctl_open_snapshot(g, &db, &snap) != CTL_OK) {
            return CTL_ERROR;
        }
        rc = sf_snapshot_rules(snap, &cur, &err);
        if (rc == SF_OK) {
            rules = *cur;
        }
        ctl_close_snapshot(db, snap);
        if (rc != SF_OK) {
            ctl_err("%s: %s", g->db_path, err.msg);
            return CTL_ERROR;
        }

    } else if (strcmp(pos[0], "rebuild") == 0) {
        if (ctl_open_db(g, 0, &db) != CTL_OK) {
            return CTL_ERROR;
        }
        rc = sf_rfm_rebuild(db, ctl_now(g), &rules, &profiles, &err);
        sf_db_close(db);
        if (rc != SF_OK) {
            ctl_err("%s: rfm rebuild: %s", g->db_path, err.msg);
            return CTL_ERROR;
        }
        if (!opts.json) {
            printf("computed over %zu profile%s with orders\n", profiles,
                   profiles == 1 ? "" : "s");
        }

    } else {
        n = 0;
        for (i = 0; i < 3; i++) {
            if (opts.cuts[i] == NULL) {
                continue;
            }
            if (ctl_parse_cuts(opts.cuts[i], items[i]) != 0) {
                return ctl_usage_err("rfm set: --%s needs 4 numbers "
                                     "D1,D2,D3,D4, not \"%s\"",
                                     i == 0 ? "recency" : i == 1
                                     ? "frequency" : "monetary",
                                     opts.cuts[i]);
            }
            cut[i].type = SF_ARRAY;
            cut[i].u.arr.items = items[i];
            cut[i].u.arr.n = 4;
            cm[n].name = names[i];
            cm[n].name_len = strlen(names[i]);
            cm[n].value = cut[i];
            n++;
        }
        if (n == 0) {
            return ctl_usage_err("rfm set: give --recency, --frequency or "
                                 "--monetary (4 ascending cut-points each)");
        }
        rfm.type = SF_OBJECT;
        rfm.u.obj.members = cm;
        rfm.u.obj.n = (size_t) n;
        dm.name = "rfm";
        dm.name_len = 3;
        dm.value = rfm;
        doc.type = SF_OBJECT;
        doc.u.obj.members = &dm;
        doc.u.obj.n = 1;

        if (ctl_edit_rules(g, ctl_rfm_set_edit, &doc, &rules) != CTL_OK) {
            return CTL_ERROR;
        }
    }

    if (opts.json) {
        if (ctl_rfm_json(&o, &rules) != SF_OK) {
            sf_buf_free(&o);
            return ctl_nomem();
        }
        ctl_write(stdout, &o);
    } else {
        ctl_rfm_text(stdout, &rules);
    }
    sf_buf_free(&o);
    return ctl_finish_stdout(CTL_OK);
}
