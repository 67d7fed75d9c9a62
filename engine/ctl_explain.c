/*
 * storefrontctl explain and info: every experiment evaluated for one
 * visitor, with the reasons, and what the database holds.  explain --page,
 * --push and --ads are in ctl_pages.c, ctl_push.c and ctl_ads.c.
 */

#include <stdlib.h>
#include <string.h>

#include "ctl.h"


/* ---- explain ------------------------------------------------------------ */

typedef struct {
    int          json;
    int          qa;
    const char  *user;
    const char  *url;
    int          url_attr;     /* --attr url=... given: it wins */
    sf_member   *attrs;
    size_t       nattrs;
    size_t       cap;
} ctl_explain_opts;


static int
ctl_explain_option(void *ctx, int id, const char *value)
{
    ctl_explain_opts  *o = ctx;
    const char        *eq;

    switch (id) {
    case OPT_JSON:
        o->json = 1;
        break;
    case OPT_QA:
        o->qa = 1;
        break;
    case OPT_URL:
        /* the request URL, and the attribute "url" as at the edge */
        o->url = value;
        if (!o->url_attr) {
            return ctl_attr_set(&o->attrs, &o->nattrs, &o->cap, "url", 3,
                                value);
        }
        break;
    case OPT_USER:
        o->user = value;
        return ctl_attr_set(&o->attrs, &o->nattrs, &o->cap, "id", 2, value);
    case OPT_ATTR:
        eq = strchr(value, '=');
        if (eq == NULL || eq == value) {
            return ctl_usage_err("explain: --attr needs NAME=VALUE, "
                                 "got \"%s\"", value);
        }
        if (eq - value == 3 && memcmp(value, "url", 3) == 0) {
            o->url_attr = 1;
        }
        return ctl_attr_set(&o->attrs, &o->nattrs, &o->cap, value,
                            (size_t) (eq - value), eq + 1);
    }
    return CTL_OK;
}


static const ctl_option ctl_explain_options[] = {
    { "json", 0, OPT_JSON },
    { "user", 1, OPT_USER },
    { "attr", 1, OPT_ATTR },
    { "url", 1, OPT_URL },
    { "qa", 0, OPT_QA },
    { NULL, 0, 0 }
};


typedef struct {
    const ctl_explain_opts  *opts;
    const sf_request        *req;
    sf_buf                   out;
    ctl_table                table;
    size_t                   n;
    int                      failed;
    sf_arena                *arena;      /* per experiment */
    sf_buf                   scratch;
} ctl_explain;


/*
 * The experiment's targeting condition and whether it holds for the
 * request's attributes: -1 when the experiment has none.  *cond is the
 * condition (in x->arena) for the JSON output.
 */
static int
ctl_explain_condition(ctl_explain *x, const void *rec, size_t len,
    const sf_value **cond)
{
    sf_value         e;
    sf_error         err;
    const sf_value  *c;

    *cond = NULL;
    sf_arena_reset(x->arena);
    x->scratch.len = 0;

    if (sf_experiment_to_json(rec, len, &x->scratch) != SF_OK
        || sf_json_parse(x->scratch.data, x->scratch.len, x->arena, &e,
                         &err) != SF_OK)
    {
        return -1;
    }

    c = sf_value_member(&e, "condition", 9);
    if (c == NULL || (c->type == SF_OBJECT && c->u.obj.n == 0)) {
        return -1;
    }
    *cond = c;

    x->scratch.len = 0;
    if (sf_condition_compile(c, &x->scratch, &err) != SF_OK) {
        return 0;
    }
    return sf_condition_evaluate(x->scratch.data, x->scratch.len,
                                 x->req->attributes, x->req->saved_groups)
           == 1;
}


static int
ctl_explain_record(void *ctx, const void *rec, size_t len)
{
    ctl_explain      *x = ctx;
    sf_assignment     a;
    sf_buf           *o = &x->out;
    int               matched;
    char              key[512], var[16], vkey[512], hash[32], seed[512],
                      attr[512], value[80];
    const char       *cells[10];
    const sf_value   *cond;

    memset(&a, 0, sizeof(a));
    if (sf_experiment_evaluate(rec, len, x->req, &a) != SF_OK) {
        x->failed = 1;
        return 1;
    }

    matched = ctl_explain_condition(x, rec, len, &cond);

    if (x->opts->json) {
        if (sf_buf_appends(o, x->n ? ",\n{\"key\":" : "\n{\"key\":") != SF_OK
            || sf_buf_append_json_string(o, a.key, a.key_len) != SF_OK
            || sf_buf_printf(o, ",\"in_experiment\":%s,\"variation\":%d"
                             ",\"variation_key\":",
                             a.in_experiment ? "true" : "false",
                             a.variation) != SF_OK
            || sf_buf_append_json_string(o, a.variation_key,
                                         a.variation_key_len) != SF_OK
            || sf_buf_appends(o, ",\"value\":") != SF_OK
            || (a.value && a.value_len
                ? sf_buf_append(o, a.value, a.value_len)
                : sf_buf_appends(o, "null")) != SF_OK
            || sf_buf_appends(o, ",\"hash\":") != SF_OK
            || (a.hash_computed
                ? sf_buf_append_js_number(o, a.hash)
                : sf_buf_appends(o, "null")) != SF_OK
            || sf_buf_printf(o, ",\"hash_used\":%s,\"seed\":",
                             a.hash_used ? "true" : "false") != SF_OK
            || sf_buf_append_json_string(o, a.seed, a.seed_len) != SF_OK
            || sf_buf_appends(o, ",\"hash_attribute\":") != SF_OK
            || sf_buf_append_json_string(o, a.hash_attribute,
                                         a.hash_attribute_len) != SF_OK
            || sf_buf_appends(o, ",\"condition\":") != SF_OK
            || (cond ? sf_json_write(o, cond)
                     : sf_buf_appends(o, "null")) != SF_OK
            || sf_buf_appends(o, matched < 0 ? ",\"condition_matched\":null"
                              : matched ? ",\"condition_matched\":true"
                              : ",\"condition_matched\":false") != SF_OK
            || sf_buf_appends(o, ",\"reason\":") != SF_OK
            || sf_buf_append_json_string(o, sf_reason_name(a.reason),
                                         strlen(sf_reason_name(a.reason)))
               != SF_OK
            || sf_buf_appends(o, "}") != SF_OK)
        {
            x->failed = 2;
            return 1;
        }
        x->n++;
        return 0;
    }

    snprintf(key, sizeof(key), "%.*s", (int) a.key_len, a.key);
    snprintf(var, sizeof(var), "%d", a.variation);
    snprintf(vkey, sizeof(vkey), "%.*s", (int) a.variation_key_len,
             a.variation_key);
    if (a.hash_computed) {
        ctl_number(a.hash, hash, sizeof(hash));
    } else {
        snprintf(hash, sizeof(hash), "-");
    }
    snprintf(seed, sizeof(seed), "%.*s", (int) a.seed_len, a.seed);
    snprintf(attr, sizeof(attr), "%.*s", (int) a.hash_attribute_len,
             a.hash_attribute);
    if (a.value == NULL || a.value_len == 0) {
        snprintf(value, sizeof(value), "-");
    } else if (a.value_len < 60) {
        snprintf(value, sizeof(value), "%.*s", (int) a.value_len, a.value);
    } else {
        snprintf(value, sizeof(value), "%.56s...", a.value);
    }

    cells[0] = key;
    cells[1] = a.in_experiment ? "yes" : "no";
    cells[2] = var;
    cells[3] = vkey;
    cells[4] = hash;
    cells[5] = seed;
    cells[6] = attr[0] ? attr : "-";
    cells[7] = matched < 0 ? "-" : matched ? "yes" : "no";
    cells[8] = sf_reason_name(a.reason);
    cells[9] = value;

    if (ctl_table_row(&x->table, cells) != 0) {
        x->failed = 2;
        return 1;
    }
    x->n++;
    return 0;
}


int
ctl_cmd_explain(ctl_global *g, int argc, char **argv, char **pos)
{
    static const char  *head[] = { "EXPERIMENT", "IN", "VARIATION", "KEY",
                                   "HASH", "SEED", "HASH ATTRIBUTE",
                                   "CONDITION", "REASON", "VALUE" };
    int                rc, npos, ret;
    int64_t            now;
    size_t             i;
    char               vbuf[32];
    const char        *id;
    sf_db             *db;
    sf_snapshot       *snap;
    sf_error           err;
    sf_value           attrs, seen;
    sf_request         req;
    sf_buf             ab;
    sf_arena          *arena;
    sf_profile         p;
    sf_derived         d;
    ctl_explain        x;
    ctl_explain_opts   opts;
    const sf_rules    *rules;

    memset(&opts, 0, sizeof(opts));
    rc = ctl_parse_args("explain", argc, argv, g, ctl_explain_options,
                        ctl_explain_option, &opts, pos, &npos);
    if (rc != CTL_OK) {
        free(opts.attrs);
        return rc;
    }
    if (npos > 0) {
        free(opts.attrs);
        return ctl_usage_err("explain: unexpected argument \"%s\"", pos[0]);
    }
    if ((rc = ctl_need_db("explain", g)) != CTL_OK) {
        free(opts.attrs);
        return rc;
    }

    if (ctl_open_snapshot(g, &db, &snap) != CTL_OK) {
        free(opts.attrs);
        return CTL_ERROR;
    }

    attrs.type = SF_OBJECT;
    attrs.u.obj.members = opts.attrs;
    attrs.u.obj.n = opts.nattrs;

    memset(&x, 0, sizeof(x));
    x.opts = &opts;
    x.req = &req;
    x.table.ncols = 10;
    sf_buf_init(&x.out);
    sf_buf_init(&x.scratch);
    sf_buf_init(&ab);
    ret = CTL_ERROR;

    /* who the visitor is: conditions see the profile and what follows */
    now = ctl_now(g);
    arena = sf_arena_create(0);
    x.arena = sf_arena_create(0);
    if (arena == NULL || x.arena == NULL) {
        ctl_nomem();
        goto done;
    }
    /* the visitor is the "id" attribute: --user, or --attr id=... */
    id = NULL;
    for (i = 0; i < opts.nattrs; i++) {
        if (opts.attrs[i].name_len == 2
            && memcmp(opts.attrs[i].name, "id", 2) == 0)
        {
            id = opts.attrs[i].value.u.str.p;
        }
    }

    if (ctl_lookup(g, snap, id, now, &p, &d, &rules) != CTL_OK) {
        goto done;
    }
    if (sf_profile_attributes(&p, &d, &attrs, ctl_arena_alloc, arena, &seen)
        != SF_OK)
    {
        ctl_nomem();
        goto done;
    }

    memset(&req, 0, sizeof(req));
    req.attributes = &seen;
    req.url = opts.url;
    req.url_len = opts.url ? strlen(opts.url) : 0;
    req.qa_override = opts.qa;
    req.now = now;

    if (opts.json) {
        rc = sf_buf_appends(&x.out, "{\"user\":");
        if (rc == SF_OK) {
            rc = opts.user
                 ? sf_buf_append_json_string(&x.out, opts.user,
                                             strlen(opts.user))
                 : sf_buf_appends(&x.out, "null");
        }
        if (rc == SF_OK) {
            rc = sf_buf_appends(&x.out, ",\"attributes\":");
        }
        if (rc == SF_OK) {
            rc = sf_json_write(&x.out, &attrs);
        }
        if (rc == SF_OK) {
            rc = sf_buf_appends(&x.out, ",\"now\":");
        }
        if (rc == SF_OK) {
            rc = sf_buf_append_time(&x.out, now);
        }
        if (rc == SF_OK) {
            rc = sf_buf_appends(&x.out, ",\"profile\":");
        }
        if (rc == SF_OK) {
            rc = ctl_derived_json(&x.out, &p, &d);
        }
        if (rc == SF_OK) {
            rc = sf_buf_appends(&x.out, ",\"targeting_attributes\":");
        }
        if (rc == SF_OK) {
            rc = sf_json_write(&x.out, &seen);
        }
        if (rc == SF_OK) {
            rc = sf_buf_appends(&x.out, ",\"experiments\":[");
        }
    } else {
        rc = ctl_table_row(&x.table, head) == 0 ? SF_OK : SF_ERR_NOMEM;
    }
    if (rc != SF_OK) {
        ctl_nomem();
        goto done;
    }

    memset(&err, 0, sizeof(err));
    rc = sf_snapshot_each_experiment(snap, ctl_explain_record, &x, &err);
    if (x.failed == 1) {
        ctl_err("%s: cannot evaluate a stored experiment", g->db_path);
        goto done;
    }
    if (x.failed) {
        ctl_nomem();
        goto done;
    }
    if (rc != SF_OK) {
        ctl_err("%s", err.msg);
        goto done;
    }

    if (opts.json) {
        if (sf_buf_appends(&x.out, x.n ? "\n]}\n" : "]}\n") != SF_OK) {
            ctl_nomem();
            goto done;
        }
        ctl_write(stdout, &x.out);

    } else {
        if (sf_json_write(&ab, &attrs) != SF_OK) {
            ctl_nomem();
            goto done;
        }
        if (id && p.found) {
            printf("profile %s\n", id);
        } else {
            printf("%s: no profile: defaults (a new visitor)\n",
                   id ? id : "no --user");
        }
        printf("  at %s\n", ctl_time_text(now, vbuf, sizeof(vbuf)));
        ctl_derived_text(stdout, "  ", &p, &d);
        printf("attributes %.*s", (int) ab.len, ab.data);
        if (opts.url) {
            printf(", url %s%s", opts.url,
                   opts.qa ? "" : " (query-string forcing off: use --qa)");
        }
        printf("\n");
        if (x.n == 0) {
            printf("no experiments\n");
        } else {
            ctl_table_print(&x.table, stdout);
        }
    }
    ret = ctl_finish_stdout(CTL_OK);

done:

    ctl_table_free(&x.table);
    sf_buf_free(&x.out);
    sf_buf_free(&x.scratch);
    sf_buf_free(&ab);
    sf_arena_destroy(arena);
    sf_arena_destroy(x.arena);
    free(opts.attrs);
    ctl_close_snapshot(db, snap);
    return ret;
}


/* ---- info --------------------------------------------------------------- */

int
ctl_cmd_info(ctl_global *g, int argc, char **argv, char **pos)
{
    int          rc, npos, json;
    char         a[32], b[32];
    sf_db       *db;
    sf_error     err;
    sf_db_info   info;
    sf_buf       o;

    json = 0;
    rc = ctl_parse_args("info", argc, argv, g, ctl_json_options,
                        ctl_json_option, &json, pos, &npos);
    if (rc != CTL_OK) {
        return rc;
    }
    if (npos > 0) {
        return ctl_usage_err("info: too many arguments");
    }
    if ((rc = ctl_need_db("info", g)) != CTL_OK) {
        return rc;
    }

    if (ctl_open_db(g, SF_DB_READONLY, &db) != CTL_OK) {
        return CTL_ERROR;
    }

    memset(&err, 0, sizeof(err));
    memset(&info, 0, sizeof(info));
    rc = sf_db_info_get(db, &info, &err);
    sf_db_close(db);
    if (rc != SF_OK) {
        ctl_err("%s", err.msg);
        return CTL_ERROR;
    }

    if (json) {
        sf_buf_init(&o);
        if (sf_buf_appends(&o, "{\"db\":") != SF_OK
            || sf_buf_append_json_string(&o, g->db_path, strlen(g->db_path))
               != SF_OK
            || sf_buf_printf(&o, ",\"map_size\":%zu,\"used_bytes\":%zu"
                             ",\"max_readers\":%u,\"readers_in_use\":%u"
                             ",\"experiments\":%zu,\"profiles\":%zu}\n",
                             info.map_size, info.used_bytes,
                             info.max_readers, info.readers_in_use,
                             info.experiments, info.profiles) != SF_OK)
        {
            sf_buf_free(&o);
            return ctl_nomem();
        }
        ctl_write(stdout, &o);
        sf_buf_free(&o);
        return ctl_finish_stdout(CTL_OK);
    }

    printf("database     %s\n", g->db_path);
    printf("map size     %zu (%s)\n", info.map_size,
           ctl_human_size(info.map_size, a, sizeof(a)));
    printf("used         %zu (%s, %.1f%% of the map)\n", info.used_bytes,
           ctl_human_size(info.used_bytes, b, sizeof(b)),
           info.map_size ? 100.0 * (double) info.used_bytes
                           / (double) info.map_size : 0.0);
    printf("readers      %u in use of %u\n", info.readers_in_use,
           info.max_readers);
    printf("experiments  %zu\n", info.experiments);
    printf("profiles     %zu\n", info.profiles);
    return ctl_finish_stdout(CTL_OK);
}
