/*
 * storefrontctl: load, inspect and explain the storefront LMDB data.
 *
 *   storefrontctl [--db DIR] [--map-size SIZE] [--now TIME] COMMAND [ARGS]
 *
 * Exit status: 0 success, 1 data or database error, 2 usage error, 3 an
 * import that skipped bad records (--skip-bad).
 * Every diagnostic goes to stderr and starts with "storefrontctl: ".
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "ctl_pages.h"
#include "ctl_ads.h"
#include "ctl_push.h"
#include "ctl_stats.h"


#ifndef SF_VERSION
#define SF_VERSION  "0.1.0"
#endif


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


/* Sets an attribute; a repeated name replaces the earlier value. */
static int
ctl_explain_set_attr(ctl_explain_opts *o, const char *name, size_t name_len,
    const char *value)
{
    size_t      i;
    sf_member  *m;

    for (i = 0; i < o->nattrs; i++) {
        if (o->attrs[i].name_len == name_len
            && memcmp(o->attrs[i].name, name, name_len) == 0)
        {
            break;
        }
    }

    if (i == o->nattrs) {
        if (o->nattrs == o->cap) {
            o->cap = o->cap ? o->cap * 2 : 8;
            m = realloc(o->attrs, o->cap * sizeof(sf_member));
            if (m == NULL) {
                return ctl_nomem();
            }
            o->attrs = m;
        }
        o->nattrs++;
    }

    m = &o->attrs[i];
    m->name = name;
    m->name_len = name_len;
    m->value.type = SF_STRING;
    m->value.u.str.p = value;
    m->value.u.str.len = strlen(value);
    return CTL_OK;
}


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
            return ctl_explain_set_attr(o, "url", 3, value);
        }
        break;
    case OPT_USER:
        o->user = value;
        return ctl_explain_set_attr(o, "id", 2, value);
    case OPT_ATTR:
        eq = strchr(value, '=');
        if (eq == NULL || eq == value) {
            return ctl_usage_err("explain: --attr needs NAME=VALUE, "
                                 "got \"%s\"", value);
        }
        if (eq - value == 3 && memcmp(value, "url", 3) == 0) {
            o->url_attr = 1;
        }
        return ctl_explain_set_attr(o, value, (size_t) (eq - value), eq + 1);
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


static int
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

static int
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


/* ---- main --------------------------------------------------------------- */

static int
ctl_no_handler(void *ctx, int id, const char *value)
{
    (void) ctx;
    (void) id;
    (void) value;
    return CTL_OK;
}


typedef int (*ctl_command_fn)(ctl_global *g, int argc, char **argv,
    char **pos);

typedef struct {
    const char       *name;
    ctl_command_fn    run;
    const char       *usage;
} ctl_command;

/* commands of other files (ctl_*.c), which parse their own options */

static int
ctl_cmd_push(ctl_global *g, int argc, char **argv, char **pos)
{
    (void) pos;
    return ctl_push_command(g->db_path, argc, argv);
}


static int
ctl_cmd_ads(ctl_global *g, int argc, char **argv, char **pos)
{
    (void) pos;
    return ctl_ads_command(g->db_path, argc, argv);
}


static int
ctl_cmd_stats(ctl_global *g, int argc, char **argv, char **pos)
{
    (void) pos;
    return ctl_stats_command(g->db_path, argc, argv);
}


static int
ctl_cmd_experiment(ctl_global *g, int argc, char **argv, char **pos)
{
    (void) pos;
    return ctl_experiment_command(g->db_path, argc, argv);
}


static const ctl_command ctl_commands[] = {
    { "import", ctl_cmd_import,
      "import FILE [--format document|jsonl|array] [--replace] [--skip-bad]\n"
      "        [--batch N] [--resume] [--limit N] [--jobs N] [--tmpdir DIR]\n"
      "      Load FILE (- for standard input).  FILE is a document\n"
      "      {\"experiments\": [GrowthBook experiment, ...],\n"
      "      \"rules\": {...}, \"profiles\": [profile, ...]} (any of the\n"
      "      members), or profiles alone as JSON lines (one object per\n"
      "      line, blank lines allowed) or as a JSON array.  The format is\n"
      "      told from the first bytes ('[': array; '{' whose first member\n"
      "      is a profile's: JSON lines; else a document); --format forces\n"
      "      it.\n"
      "      Experiments and rules are all or nothing, in one transaction.\n"
      "      Without --replace experiments not in FILE are kept; with\n"
      "      --replace they are removed.  Rules are applied over the rules\n"
      "      in force (members absent stay).\n"
      "      Profiles: the whole file is read and checked first (JSON lines\n"
      "      by --jobs threads, default one per CPU up to 8); a bad record\n"
      "      rejects the file (FILE:LINE: problem; reading stops after 10)\n"
      "      and nothing is written.  --skip-bad reports bad records (the\n"
      "      first 20, then a count), loads the others and exits with\n"
      "      status 3.  Then profiles are written in id order, --batch per\n"
      "      transaction (default 50000), each batch with a checkpoint (the\n"
      "      file's path, size and mtime, and the profiles committed).\n"
      "      After an interruption or a failure the message says how many\n"
      "      were committed: the same command with --resume continues after\n"
      "      the last committed batch (a profile is replaced, never added\n"
      "      to, so running again from the start is also safe).  --limit N\n"
      "      writes at most N profiles in this run.  A full map is grown\n"
      "      (doubled) and the batch retried.  A later record with the same\n"
      "      id wins.  The checked profiles are held in memory (about the\n"
      "      size of FILE); --tmpdir DIR holds them in a file in DIR.  On a\n"
      "      terminal, stderr shows progress: percent, profiles/s, ETA.\n" },
    { "export", ctl_cmd_export,
      "export [--profiles | --jsonl] [FILE]\n"
      "      Write the import document to FILE (default standard output):\n"
      "      experiments and rules, and with --profiles every profile (one\n"
      "      per line); --jsonl writes only the profiles, as JSON lines.\n"
      "      Importing it gives the same state.\n" },
    { "list", ctl_cmd_list,
      "list [--json]\n"
      "      One line per experiment: key, status, variations, weights,\n"
      "      coverage, namespace, hash attribute.\n" },
    { "explain", ctl_cmd_explain,
      "explain [--user ID] [--attr NAME=VALUE]... [--url URL] [--qa] "
      "[--json]\n"
      "      Evaluate every experiment for one visitor and say why: the\n"
      "      visitor's profile (or defaults), RFM scores, segment,\n"
      "      lifecycle and tier, and for each experiment whether its\n"
      "      targeting condition holds.  Conditions see the computed values\n"
      "      (segment, rfm, rfm_r/f/m, lifecycle, tier, points, orders,\n"
      "      spend_365, categories, ...), the --attr attributes and the\n"
      "      profile's attributes.  --user sets the attribute \"id\"; --attr\n"
      "      sets string attributes (a repeated NAME: the last wins); --url\n"
      "      is the request URL, and the attribute \"url\" unless --attr\n"
      "      sets it; --qa honours ?KEY=INDEX forcing in it.\n" },
    { "profile", ctl_cmd_profile,
      "profile show ID [--json]\n"
      "      The stored profile and what follows from it now: RFM scores\n"
      "      and code, segment, lifecycle, tier and its benefits,\n"
      "      trailing-365-day spend, points.\n" },
    { "event", ctl_cmd_event,
      "event purchase --user U --order ID --amount X [--category C]...\n"
      "        [--time T] [--json]\n"
      "  event return --user U --order ID [--amount X] [--time T] [--json]\n"
      "  event points --user U --id ID --amount N [--time T] [--json]\n"
      "  event --file FILE [--batch N] [--skip-bad]\n"
      "      Apply purchases, returns (of an applied purchase; without\n"
      "      --amount the whole order) and points adjustments (negative:\n"
      "      a redemption).  The order or adjustment id makes an event\n"
      "      idempotent: a repeat is reported as a duplicate and changes\n"
      "      nothing.  --file reads events as JSON lines or a JSON array\n"
      "      ({\"type\": \"purchase\", \"user\": ..., \"order_id\": ...,\n"
      "      \"amount\": ..., \"categories\": [...], \"time\": ...}), checks\n"
      "      them all first, then applies them in transactions of --batch\n"
      "      (default 1000), each all or nothing.\n" },
    { "rfm", ctl_cmd_rfm,
      "rfm rebuild | rfm show | rfm set [--recency D1,D2,D3,D4]\n"
      "        [--frequency F1,F2,F3,F4] [--monetary M1,M2,M3,M4]  [--json]\n"
      "      rebuild computes the quintile cut-points over every profile\n"
      "      with orders and stores them; show prints the cut-points in\n"
      "      force and whether they were computed or preset; set stores\n"
      "      explicit ones (4 ascending numbers each).\n" },
    { "rules", ctl_cmd_rules,
      "rules show [--json]\n"
      "      The rules in force: RFM cut-points, segment table, lifecycle\n"
      "      days, tiers and benefits, points.  --json prints them as the\n"
      "      \"rules\" member of an import document.\n" },
    { "info", ctl_cmd_info,
      "info [--json]\n"
      "      Map size, bytes used, readers, number of experiments and\n"
      "      profiles.\n" },
    { "push", ctl_cmd_push,
      "push counters|log|policy|verify ...\n"
      "      Push decisions: counters by reason, the decision log, the\n"
      "      policy in force, and a replay of the log against the caps.\n" },
    { "ads", ctl_cmd_ads,
      "ads report [--json] | ads explain --user ID --page TYPE ...\n"
      "      Impressions, clicks and CTR per campaign, creative and\n"
      "      advertiser; the ads one page view would get now, and why.\n" },
    { "stats", ctl_cmd_stats,
      "stats [KEY] [--json]\n"
      "      Experiment results: users, conversions, rates, lift, p-value,\n"
      "      confidence interval, sample ratio mismatch.\n" },
    { "experiment", ctl_cmd_experiment,
      "experiment start|stop KEY | ramp KEY COVERAGE | weights KEY W1,W2..\n"
      "      Operate a running experiment (new weights re-randomise).\n" },
    { NULL, NULL, NULL }
};


static void
ctl_help(FILE *f)
{
    const ctl_command  *c;

    fputs("Usage: " CTL_NAME " [--db DIR] [--map-size SIZE] [--now TIME] "
          "COMMAND [ARGS]\n"
          "\n"
          "Manage the storefront LMDB database.\n"
          "\n"
          "Options:\n"
          "  --db DIR         the database directory (default: "
          "$STOREFRONT_DB)\n"
          "  --map-size SIZE  LMDB map size, e.g. 1G or 512M (default: the\n"
          "                   database's current size, or 1G)\n"
          "  --now TIME       evaluate at TIME (unix seconds or ISO 8601):\n"
          "                   recency, lifecycle and spend age with it; the\n"
          "                   default time of events\n"
          "  --help           show this help\n"
          "  --version        show the version\n"
          "\n"
          "Commands:\n", f);

    for (c = ctl_commands; c->name != NULL; c++) {
        fprintf(f, "  %s", c->usage);
    }

    fputs("\nExit status: 0 success, 1 data or database error, "
          "2 usage error,\n3 an import or event file that skipped bad "
          "records (--skip-bad).\n", f);
}


int
main(int argc, char **argv)
{
    int                 i, rc;
    char              **pos;
    ctl_global          g;
    const ctl_command  *c;

    memset(&g, 0, sizeof(g));
    g.db_path = getenv("STOREFRONT_DB");

    /* global options before the command */
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char  *a = argv[i];
        size_t       len;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            ctl_help(stdout);
            return ctl_finish_stdout(CTL_OK);
        }
        if (strcmp(a, "--version") == 0) {
            printf(CTL_NAME " " SF_VERSION "\n");
            return ctl_finish_stdout(CTL_OK);
        }

        len = strncmp(a, "--", 2) == 0 ? strcspn(a + 2, "=") : 0;
        if (len != 0
            && ((len == 2 && strncmp(a + 2, "db", 2) == 0)
                || (len == 3 && strncmp(a + 2, "now", 3) == 0)
                || (len == 8 && strncmp(a + 2, "map-size", 8) == 0)))
        {
            /* the command parser handles exactly these */
            char  *one[2];
            int    n = (a[2 + len] == '=' || i + 1 >= argc) ? 1 : 2;
            int    np;

            one[0] = argv[i];
            one[1] = n == 2 ? argv[i + 1] : NULL;
            rc = ctl_parse_args("", n, one, &g, NULL, ctl_no_handler,
                                NULL, one, &np);
            if (rc != CTL_OK) {
                return rc == -1 ? CTL_USAGE : rc;
            }
            i += n - 1;
            continue;
        }

        return ctl_usage_err("unknown option '%s'", a);
    }

    if (i >= argc) {
        return ctl_usage_err("missing COMMAND (import, export, list, "
                             "explain, profile, event, rfm, rules, info)");
    }

    if (strcmp(argv[i], "help") == 0) {
        ctl_help(stdout);
        return ctl_finish_stdout(CTL_OK);
    }

    /* explain --ads: the ads one page view would get */
    if (strcmp(argv[i], "explain") == 0
        && ctl_ads_is_explain(argc - i, argv + i))
    {
        return ctl_ads_command(g.db_path, argc - i, argv + i);
    }

    /* explain --page is the page layout decision's explanation */
    if (strcmp(argv[i], "explain") == 0
        && ctl_pages_is_explain(argc - i, argv + i))
    {
        return ctl_pages_command(g.db_path, argc - i, argv + i);
    }

    /* explain --push is the push decision's explanation */
    if (strcmp(argv[i], "explain") == 0
        && ctl_push_is_explain(argc - i, argv + i))
    {
        return ctl_push_command(g.db_path, argc - i, argv + i);
    }

    for (c = ctl_commands; c->name != NULL; c++) {
        if (strcmp(c->name, argv[i]) == 0) {
            break;
        }
    }
    if (c->name == NULL) {
        return ctl_usage_err("unknown command \"%s\"", argv[i]);
    }

    pos = calloc((size_t) argc + 1, sizeof(char *));
    if (pos == NULL) {
        return ctl_nomem();
    }

    rc = c->run(&g, argc - i - 1, argv + i + 1, pos);
    if (rc == -1) {
        printf("Usage: " CTL_NAME " [--db DIR] [--map-size SIZE] "
               "[--now TIME] %s", c->usage);
        rc = ctl_finish_stdout(CTL_OK);
    }

    free(pos);
    return rc;
}

