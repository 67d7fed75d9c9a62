/*
 * storefrontctl event: purchases, returns and points adjustments, one from
 * the command line or many from a file (event --file), each idempotent by
 * its order or adjustment id.
 */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl.h"


/* ---- events -------------------------------------------------------------- */

typedef struct {
    int           json;
    int           skip_bad;
    size_t        batch;
    const char   *file;
    const char   *user;
    const char   *order;
    const char   *id;
    const char   *amount;
    const char   *time;
    const char   *categories[64];
    size_t        ncategories;
} ctl_event_opts;


static int
ctl_event_option(void *ctx, int id, const char *value)
{
    ctl_event_opts  *o = ctx;
    char            *end;
    unsigned long    n;

    switch (id) {
    case OPT_JSON:
        o->json = 1;
        break;
    case OPT_SKIP_BAD:
        o->skip_bad = 1;
        break;
    case OPT_FILE:
        o->file = value;
        break;
    case OPT_USER:
        o->user = value;
        break;
    case OPT_ORDER:
        o->order = value;
        break;
    case OPT_ID:
        o->id = value;
        break;
    case OPT_AMOUNT:
        o->amount = value;
        break;
    case OPT_TIME:
        o->time = value;
        break;
    case OPT_CATEGORY:
        if (o->ncategories == 64) {
            return ctl_usage_err("event: at most 64 --category");
        }
        o->categories[o->ncategories++] = value;
        break;
    case OPT_BATCH:
        errno = 0;
        n = strtoul(value, &end, 10);
        if (errno || *end || value[0] < '0' || value[0] > '9' || n == 0
            || n > 1000000)
        {
            return ctl_usage_err("event: --batch must be a whole number from "
                                 "1 to 1000000, not \"%s\"", value);
        }
        o->batch = n;
        break;
    }
    return CTL_OK;
}


static const ctl_option ctl_event_options[] = {
    { "json", 0, OPT_JSON },
    { "file", 1, OPT_FILE },
    { "batch", 1, OPT_BATCH },
    { "skip-bad", 0, OPT_SKIP_BAD },
    { "user", 1, OPT_USER },
    { "order", 1, OPT_ORDER },
    { "id", 1, OPT_ID },
    { "amount", 1, OPT_AMOUNT },
    { "time", 1, OPT_TIME },
    { "category", 1, OPT_CATEGORY },
    { NULL, 0, 0 }
};


static void
ctl_member(sf_member *m, const char *name, const char *s)
{
    m->name = name;
    m->name_len = strlen(name);
    m->value.type = SF_STRING;
    m->value.u.str.p = s;
    m->value.u.str.len = strlen(s);
}


/* Applies one event in its own transaction, growing a full map. */
static int
ctl_apply_one(sf_db *db, const sf_event *ev, sf_event_result *res,
    sf_profile *p, sf_buf *rec, sf_rules *rules, sf_error *err)
{
    int         rc;
    sf_txn     *txn;
    sf_db_info  info;

    for ( ;; ) {
        memset(err, 0, sizeof(*err));
        rc = sf_txn_begin(db, &txn, err);
        if (rc != SF_OK) {
            return rc;
        }
        rc = sf_txn_apply_event(txn, ev, res, err);
        if (rc == SF_OK) {
            rc = sf_txn_get_profile(txn, ev->user, ev->user_len, p, err);
        }
        if (rc == SF_OK) {
            /* the record outlives the transaction: copy it */
            rc = sf_profile_encode(p, rec);
        }
        if (rc == SF_OK) {
            rc = sf_txn_get_rules(txn, rules, err);
        }
        if (rc == SF_OK) {
            rc = sf_txn_commit(txn, err);
        } else {
            sf_txn_abort(txn);
        }
        if (rc == SF_OK) {
            return sf_profile_decode(rec->data, rec->len, p);
        }
        if (err->code != SF_ERR_MAP_FULL
            || sf_db_info_get(db, &info, err) != SF_OK
            || sf_db_set_map_size(db, info.map_size * 2, err) != SF_OK)
        {
            return rc;
        }
    }
}


static int
ctl_event_single(ctl_global *g, const char *type, ctl_event_opts *o)
{
    int               rc, points;
    int64_t           now;
    char              a[32], b[32], c[32];
    size_t            n, i;
    char             *end;
    sf_db            *db;
    sf_buf           rec, out;
    sf_error          err;
    sf_event          ev;
    sf_event_result   res;
    sf_profile        p;
    sf_derived        d;
    sf_rules          rules;
    sf_member         m[6];
    sf_value          obj, cats[64];

    points = strcmp(type, "points") == 0;

    if (o->user == NULL) {
        return ctl_usage_err("event %s: missing --user", type);
    }
    if (points ? o->id == NULL : o->order == NULL) {
        return ctl_usage_err("event %s: missing %s", type,
                             points ? "--id (the adjustment's id: a repeat "
                                      "changes nothing)"
                                    : "--order (the order id: a repeat "
                                      "changes nothing)");
    }
    if (points ? o->order != NULL : o->id != NULL) {
        return ctl_usage_err("event %s: %s", type, points
                             ? "a points event takes --id, not --order"
                             : "--id goes with points events: use --order");
    }
    if (o->amount == NULL && strcmp(type, "return") != 0) {
        return ctl_usage_err("event %s: missing --amount", type);
    }
    if (o->ncategories && strcmp(type, "purchase") != 0) {
        return ctl_usage_err("event %s: --category goes with purchases",
                             type);
    }

    now = ctl_now(g);
    n = 0;
    ctl_member(&m[n++], "type", type);
    ctl_member(&m[n++], "user", o->user);
    ctl_member(&m[n++], "order_id", points ? o->id : o->order);

    if (o->amount) {
        m[n].name = "amount";
        m[n].name_len = 6;
        m[n].value.type = SF_NUMBER;
        errno = 0;
        m[n].value.u.number = strtod(o->amount, &end);
        if (errno || end == o->amount || *end
            || !isfinite(m[n].value.u.number))
        {
            return ctl_usage_err("event %s: --amount must be a number, not "
                                 "\"%s\"", type, o->amount);
        }
        n++;
    }

    if (o->time) {
        int64_t  t;

        if (ctl_parse_time(o->time, &t) != 0) {
            return ctl_usage_err("event %s: invalid --time \"%s\" (use unix "
                                 "seconds or ISO 8601)", type, o->time);
        }
        m[n].name = "time";
        m[n].name_len = 4;
        m[n].value.type = SF_NUMBER;
        m[n].value.u.number = (double) t;
        n++;
    }

    if (o->ncategories) {
        for (i = 0; i < o->ncategories; i++) {
            cats[i].type = SF_STRING;
            cats[i].u.str.p = o->categories[i];
            cats[i].u.str.len = strlen(o->categories[i]);
        }
        m[n].name = "categories";
        m[n].name_len = 10;
        m[n].value.type = SF_ARRAY;
        m[n].value.u.arr.items = cats;
        m[n].value.u.arr.n = o->ncategories;
        n++;
    }

    obj.type = SF_OBJECT;
    obj.u.obj.members = m;
    obj.u.obj.n = n;

    memset(&err, 0, sizeof(err));
    if (sf_event_from_json(&obj, now, &ev, &err) != SF_OK) {
        return ctl_usage_err("event %s: %s", type, err.msg);
    }

    if ((rc = ctl_need_db("event", g)) != CTL_OK) {
        return rc;
    }
    if (ctl_open_db(g, SF_DB_CREATE, &db) != CTL_OK) {
        return CTL_ERROR;
    }

    sf_buf_init(&rec);
    sf_buf_init(&out);
    sf_profile_init(&p);
    rc = ctl_apply_one(db, &ev, &res, &p, &rec, &rules, &err);
    sf_db_close(db);

    if (rc != SF_OK) {
        ctl_err("event %s %s of %s: %s; nothing changed", type,
                points ? o->id : o->order, o->user, err.msg);
        sf_buf_free(&rec);
        return CTL_ERROR;
    }

    sf_profile_derive(&p, &rules, now, &d);

    if (o->json) {
        rc = sf_buf_printf(&out, "{\"type\":\"%s\",\"user\":", type);
        if (rc == SF_OK) {
            rc = sf_buf_append_json_string(&out, o->user, strlen(o->user));
        }
        if (rc == SF_OK) {
            rc = sf_buf_appends(&out, ",\"order_id\":");
        }
        if (rc == SF_OK) {
            rc = sf_buf_append_json_string(&out, ev.order_id,
                                           ev.order_id_len);
        }
        if (rc == SF_OK) {
            rc = sf_buf_printf(&out, ",\"applied\":%s,\"duplicate\":%s,"
                               "\"points\":", res.duplicate ? "false"
                                                            : "true",
                               res.duplicate ? "true" : "false");
        }
        if (rc == SF_OK) {
            rc = sf_buf_append_js_number(&out, res.points_earned);
        }
        if (rc == SF_OK) {
            rc = sf_buf_appends(&out, ",\"profile\":");
        }
        if (rc == SF_OK) {
            rc = ctl_derived_json(&out, &p, &d);
        }
        if (rc == SF_OK) {
            rc = sf_buf_appends(&out, "}\n");
        }
        if (rc != SF_OK) {
            rc = ctl_nomem();
        } else {
            ctl_write(stdout, &out);
        }

    } else {
        if (res.duplicate) {
            printf("%s %s of %s: duplicate (already applied): nothing "
                   "changed\n", type, points ? o->id : o->order, o->user);
        } else if (ev.type == SF_EVENT_PURCHASE) {
            printf("%s %s of %s: applied, %s points earned\n", type,
                   o->order, o->user,
                   ctl_number(res.points_earned, a, sizeof(a)));
        } else if (ev.type == SF_EVENT_RETURN) {
            printf("%s %s of %s: applied, %s points taken back\n", type,
                   o->order, o->user,
                   ctl_number(-res.points_earned, a, sizeof(a)));
        } else {
            printf("%s %s of %s: applied, %s%s points\n", type, o->id,
                   o->user, res.points_earned > 0 ? "+" : "",
                   ctl_number(res.points_earned, a, sizeof(a)));
        }
        printf("%s: %u order%s, %u return%s, monetary %s, points %s, "
               "segment %s, lifecycle %s, tier %s\n", o->user, p.orders,
               p.orders == 1 ? "" : "s", p.returns,
               p.returns == 1 ? "" : "s",
               ctl_number(p.monetary, b, sizeof(b)),
               ctl_number(p.points, c, sizeof(c)), d.segment, d.lifecycle,
               d.tier);
    }

    sf_buf_free(&rec);
    sf_buf_free(&out);
    return ctl_finish_stdout(rc);
}


/* ---- event --file ---- */

typedef struct {
    const char      *fname;
    int64_t          now;
    int              skip_bad;
    sf_buf           text;        /* the events, compact JSON, one by one */
    size_t          *offs;        /* start of each in text; n + 1 */
    unsigned long   *lines;
    size_t           n;
    size_t           cap;
    uint64_t         bad;
    int              failed;
} ctl_events;


static int
ctl_events_bad(ctl_events *e, unsigned long line, const char *msg)
{
    e->bad++;
    if (e->bad <= CTL_BAD_SHOWN) {
        if (strncmp(msg, e->fname, strlen(e->fname)) == 0) {
            ctl_err("%s", msg);
        } else {
            ctl_err("%s:%lu: %s", e->fname, line, msg);
        }
    }
    if (!e->skip_bad && e->bad >= CTL_BAD_STOP) {
        return SF_ERR_INVALID;
    }
    return SF_OK;
}


static int
ctl_events_read(void *ctx, const char *member, long index,
    const sf_value *el, unsigned long line, sf_error *err)
{
    ctl_events  *e = ctx;
    sf_event     ev;
    sf_error     e2;

    (void) member;
    (void) index;

    if (el == NULL) {
        return ctl_events_bad(e, line, err->msg);
    }

    memset(&e2, 0, sizeof(e2));
    if (sf_event_from_json(el, e->now, &ev, &e2) != SF_OK) {
        return ctl_events_bad(e, line, e2.msg);
    }

    if (e->n + 1 >= e->cap) {
        size_t          cap = e->cap ? e->cap * 2 : 1024;
        size_t         *o = realloc(e->offs, cap * sizeof(size_t));
        unsigned long  *l = o ? realloc(e->lines, cap * sizeof(long)) : NULL;

        if (o) {
            e->offs = o;
        }
        if (l == NULL) {
            e->failed = 1;
            return SF_ERR_NOMEM;
        }
        e->lines = l;
        e->cap = cap;
    }

    e->offs[e->n] = e->text.len;
    e->lines[e->n] = line;
    if (sf_json_write(&e->text, el) != SF_OK) {
        e->failed = 1;
        return SF_ERR_NOMEM;
    }
    e->n++;
    e->offs[e->n] = e->text.len;
    return SF_OK;
}


static int
ctl_event_file(ctl_global *g, ctl_event_opts *o)
{
    int                  rc, format, ret;
    size_t               i, j, to, applied, dups, batch;
    uint64_t             committed;
    double               points;
    char                 a[32];
    FILE                *f;
    struct stat          st;
    sf_db               *db;
    sf_txn              *txn;
    sf_arena            *arena;
    sf_error             err;
    sf_value             v;
    sf_event             ev;
    sf_event_result      res;
    sf_db_info           info;
    ctl_events           e;
    sf_json_stream_opts  so;

    if (o->user || o->order || o->id || o->amount || o->time
        || o->ncategories)
    {
        return ctl_usage_err("event --file: the events come from the file: "
                             "no --user, --order, --amount ...");
    }
    if ((rc = ctl_need_db("event", g)) != CTL_OK) {
        return rc;
    }

    format = CTL_FMT_AUTO;
    if (ctl_import_open(o->file, &format, &f, &st) != CTL_OK) {
        return CTL_ERROR;
    }

    memset(&e, 0, sizeof(e));
    sf_buf_init(&e.text);
    e.fname = strcmp(o->file, "-") == 0 ? "<stdin>" : o->file;
    e.now = ctl_now(g);
    e.skip_bad = o->skip_bad;
    ret = CTL_ERROR;
    db = NULL;
    arena = NULL;

    /* read and check every event first: a bad file changes nothing */
    memset(&so, 0, sizeof(so));
    so.format = format == CTL_FMT_ARRAY ? SF_JSON_ARRAY : SF_JSON_LINES;
    memset(&err, 0, sizeof(err));
    rc = sf_json_stream_values(f, e.fname, &so, ctl_events_read, &e, &err);
    fclose(f);

    if (e.failed) {
        ctl_nomem();
        goto done;
    }
    if (rc != SF_OK && e.bad == 0) {
        ctl_err("%s", err.msg[0] ? err.msg : "cannot read the events");
        ctl_err("%s: no event was applied", e.fname);
        goto done;
    }
    if (e.bad > CTL_BAD_SHOWN) {
        ctl_err("%s: ... and %" PRIu64 " more bad events", e.fname,
                e.bad - CTL_BAD_SHOWN);
    }
    if (e.bad && !o->skip_bad) {
        ctl_err("%s: rejected: %" PRIu64 " bad event%s: no event was "
                "applied (--skip-bad applies the others)", e.fname, e.bad,
                e.bad == 1 ? "" : "s");
        goto done;
    }

    if (ctl_open_db(g, SF_DB_CREATE, &db) != CTL_OK) {
        goto done;
    }
    arena = sf_arena_create(0);
    if (arena == NULL) {
        ctl_nomem();
        goto done;
    }

    batch = o->batch ? o->batch : 1000;
    applied = dups = 0;
    committed = 0;
    points = 0;

    /* each batch in one transaction: all of it or none */
    for (i = 0; i < e.n; i = to) {
        size_t  b_applied, b_dups, b_skipped;
        double  b_points;

        to = i + batch < e.n ? i + batch : e.n;

    again:

        b_applied = b_dups = b_skipped = 0;
        b_points = 0;
        memset(&err, 0, sizeof(err));
        rc = sf_txn_begin(db, &txn, &err);
        if (rc != SF_OK) {
            break;
        }

        for (j = i; j < to; j++) {
            sf_arena_reset(arena);
            rc = sf_json_parse(e.text.data + e.offs[j],
                               e.offs[j + 1] - e.offs[j], arena, &v, &err);
            if (rc == SF_OK) {
                rc = sf_event_from_json(&v, e.now, &ev, &err);
            }
            if (rc == SF_OK) {
                rc = sf_txn_apply_event(txn, &ev, &res, &err);
            }
            if (rc == SF_OK) {
                if (res.duplicate) {
                    b_dups++;
                } else {
                    b_applied++;
                    b_points += res.points_earned;
                }
                continue;
            }
            if ((rc == SF_ERR_INVALID || rc == SF_ERR_NOT_FOUND)
                && o->skip_bad)
            {
                /* refused before anything was written: skip it */
                ctl_events_bad(&e, e.lines[j], err.msg);
                b_skipped++;
                rc = SF_OK;
                continue;
            }
            break;
        }

        if (rc == SF_OK) {
            rc = sf_txn_commit(txn, &err);
        } else {
            sf_txn_abort(txn);
        }

        if (rc != SF_OK && err.code == SF_ERR_MAP_FULL
            && sf_db_info_get(db, &info, &err) == SF_OK
            && sf_db_set_map_size(db, info.map_size * 2, &err) == SF_OK)
        {
            e.bad -= b_skipped;
            goto again;
        }

        if (rc != SF_OK) {
            if (j < to && (rc == SF_ERR_INVALID || rc == SF_ERR_NOT_FOUND)) {
                ctl_err("%s:%lu: %s", e.fname, e.lines[j], err.msg);
            } else {
                ctl_err("%s: %s", g->db_path, err.msg);
            }
            ctl_err("%s: the batch of lines %lu-%lu was rolled back; %"
                    PRIu64 " event%s in earlier batches were committed "
                    "(%zu applied, %zu duplicates): events are idempotent, "
                    "so the file can be applied again once fixed", e.fname,
                    e.lines[i], e.lines[to - 1], committed,
                    committed == 1 ? "" : "s", applied, dups);
            goto done;
        }

        applied += b_applied;
        dups += b_dups;
        points += b_points;
        committed += to - i;
    }

    if (rc != SF_OK) {
        ctl_err("%s: %s", g->db_path, err.msg);
        goto done;
    }

    printf("applied %zu event%s from %s, %zu duplicate%s (already applied), "
           "%s points earned in all\n", applied, applied == 1 ? "" : "s",
           e.fname, dups, dups == 1 ? "" : "s",
           ctl_number(points, a, sizeof(a)));
    if (e.bad) {
        printf("skipped %" PRIu64 " bad event%s (--skip-bad)\n", e.bad,
               e.bad == 1 ? "" : "s");
    }
    ret = ctl_finish_stdout(e.bad ? CTL_SKIPPED : CTL_OK);

done:

    sf_arena_destroy(arena);
    if (db) {
        sf_db_close(db);
    }
    sf_buf_free(&e.text);
    free(e.offs);
    free(e.lines);
    return ret;
}


int
ctl_cmd_event(ctl_global *g, int argc, char **argv, char **pos)
{
    int              rc, npos;
    ctl_event_opts   opts;

    memset(&opts, 0, sizeof(opts));
    rc = ctl_parse_args("event", argc, argv, g, ctl_event_options,
                        ctl_event_option, &opts, pos, &npos);
    if (rc != CTL_OK) {
        return rc;
    }

    if (opts.file) {
        if (npos) {
            return ctl_usage_err("event --file: unexpected argument \"%s\"",
                                 pos[0]);
        }
        return ctl_event_file(g, &opts);
    }

    if (npos != 1 || (strcmp(pos[0], "purchase") != 0
                      && strcmp(pos[0], "return") != 0
                      && strcmp(pos[0], "points") != 0))
    {
        return ctl_usage_err("event: %s (use: event purchase|return|points "
                             "... or event --file FILE)",
                             npos == 0 ? "missing event type"
                             : npos > 1 ? "too many arguments"
                             : "unknown event type");
    }
    if (opts.batch || opts.skip_bad) {
        return ctl_usage_err("event %s: --batch and --skip-bad go with "
                             "--file", pos[0]);
    }

    return ctl_event_single(g, pos[0], &opts);
}
