/*
 * storefrontctl: page layouts.
 *
 *   import    the "pages" member of an import document, compiled by the
 *             engine (unknown modules, empty layouts, loops are errors)
 *             and checked against the experiments whose variations name
 *             a layout
 *   export    the stored layouts as they were imported
 *   explain   explain --page TYPE: the visitor's profile and experiments
 *             evaluated as the nginx module does, then the layout decision
 *             with each rule's outcome and the fragment URIs requested
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "ctl_pages.h"


#define CTL_PAGES_MAX_EXPERIMENTS  4096


/* ---- import ------------------------------------------------------------- */

/* Every variation naming a layout names one of blob's. */
static int
ctl_pages_check_value(const void *blob, size_t len, const sf_value *exp,
    size_t index, sf_error *err)
{
    size_t           i;
    const sf_value  *key, *vars, *layout;

    if (exp == NULL || exp->type != SF_OBJECT) {
        return sf_error_set(err, SF_ERR_INVALID, "experiments[%zu] is not "
                            "an object", index);
    }

    key = sf_value_member(exp, "key", 3);
    vars = sf_value_member(exp, "variations", 10);

    if (vars == NULL || vars->type != SF_ARRAY) {
        return SF_OK;
    }

    for (i = 0; i < vars->u.arr.n; i++) {
        layout = sf_value_member(&vars->u.arr.items[i], "layout", 6);

        if (layout == NULL) {
            continue;
        }

        if (layout->type != SF_STRING
            || !sf_pages_has_layout(blob, len, layout->u.str.p,
                                    layout->u.str.len))
        {
            char  name[128];

            if (layout->type == SF_STRING) {
                snprintf(name, sizeof(name), "\"%.*s\"",
                         (int) (layout->u.str.len > 100 ? 100
                                                        : layout->u.str.len),
                         layout->u.str.p);
            } else {
                snprintf(name, sizeof(name), "(not a string)");
            }

            return sf_error_set(err, SF_ERR_INVALID, "experiment \"%.*s\": "
                                "variation %zu names layout %s, which the "
                                "page layouts do not define",
                                key && key->type == SF_STRING
                                ? (int) (key->u.str.len > 100
                                         ? 100 : key->u.str.len) : 1,
                                key && key->type == SF_STRING
                                ? key->u.str.p : "?", i, name);
        }
    }

    return SF_OK;
}


int
ctl_pages_import(sf_txn *txn, const sf_value *pages,
    const sf_value *experiments_or_null, sf_error *err)
{
    int              rc;
    size_t           i;
    sf_buf           blob;
    sf_error         e;
    const sf_value  *x;

    if (pages == NULL || pages->type != SF_OBJECT) {
        return sf_error_set(err, SF_ERR_INVALID, "pages: must be an object "
                            "{\"modules\", \"layouts\", \"pages\", "
                            "\"cross_sell\"}");
    }

    sf_buf_init(&blob);
    memset(&e, 0, sizeof(e));

    rc = sf_pages_compile(pages, &blob, &e);
    if (rc != SF_OK) {
        sf_buf_free(&blob);
        return sf_error_set(err, rc, "pages: %.480s",
                            e.msg[0] ? e.msg : "invalid page layouts");
    }

    if (experiments_or_null != NULL) {
        x = experiments_or_null;

        if (x->type != SF_ARRAY) {
            sf_buf_free(&blob);
            return sf_error_set(err, SF_ERR_INVALID, "pages: the "
                                "experiments to check must be an array");
        }

        for (i = 0; i < x->u.arr.n; i++) {
            rc = ctl_pages_check_value(blob.data, blob.len,
                                       &x->u.arr.items[i], i, &e);
            if (rc != SF_OK) {
                sf_buf_free(&blob);
                return sf_error_set(err, rc, "pages: %.480s", e.msg);
            }
        }
    }

    rc = sf_txn_put_pages(txn, blob.data, blob.len, err);
    sf_buf_free(&blob);
    return rc;
}


typedef struct {
    sf_arena    *arena;
    sf_value    *items;
    size_t       n;
    size_t       cap;
    size_t       first;          /* the records' items come first */
    sf_buf       json;
    sf_error    *err;
    int          rc;
} ctl_pages_collect;


static int
ctl_pages_add_record(ctl_pages_collect *c, const void *rec, size_t len,
    int stored)
{
    size_t        i, klen;
    sf_value      v, *items;
    const char   *key;

    if (stored && sf_experiment_key(rec, len, &key, &klen) == SF_OK) {
        /* the import's own record of the key replaces the stored one */

        for (i = 0; i < c->first; i++) {
            const sf_value  *k = sf_value_member(&c->items[i], "key", 3);

            if (k && k->type == SF_STRING && k->u.str.len == klen
                && memcmp(k->u.str.p, key, klen) == 0)
            {
                return SF_OK;
            }
        }
    }

    c->json.len = 0;
    if (sf_experiment_to_json(rec, len, &c->json) != SF_OK) {
        c->rc = sf_error_set(c->err, SF_ERR_INVALID, "an experiment record "
                             "cannot be read");
        return c->rc;
    }

    if (sf_json_parse(c->json.data, c->json.len, c->arena, &v, c->err)
        != SF_OK)
    {
        c->rc = SF_ERR_INVALID;
        return c->rc;
    }

    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        items = realloc(c->items, c->cap * sizeof(sf_value));
        if (items == NULL) {
            c->rc = sf_error_set(c->err, SF_ERR_NOMEM, "out of memory");
            return c->rc;
        }
        c->items = items;
    }

    c->items[c->n++] = v;
    return SF_OK;
}


static int
ctl_pages_stored(void *ctx, const void *rec, size_t len)
{
    return ctl_pages_add_record(ctx, rec, len, 1) == SF_OK ? 0 : 1;
}


int
ctl_pages_experiments(sf_db *db, const void *const *recs, const size_t *lens,
    size_t n, sf_arena *a, sf_value *out, sf_error *err)
{
    int                 rc;
    size_t              i;
    sf_value           *items;
    sf_snapshot        *s;
    ctl_pages_collect   c;

    memset(&c, 0, sizeof(c));
    c.arena = a;
    c.err = err;
    sf_buf_init(&c.json);

    rc = SF_OK;

    for (i = 0; rc == SF_OK && i < n; i++) {
        rc = ctl_pages_add_record(&c, recs[i], lens[i], 0);
    }
    c.first = c.n;

    if (rc == SF_OK && db != NULL) {
        s = NULL;
        rc = sf_snapshot_create(db, &s, err);
        if (rc == SF_OK) {
            rc = sf_snapshot_renew(s, err);
        }
        if (rc == SF_OK) {
            rc = sf_snapshot_each_experiment(s, ctl_pages_stored, &c, err);
            if (c.rc != SF_OK) {
                rc = c.rc;
            }
            sf_snapshot_reset(s);
        }
        if (s != NULL) {
            sf_snapshot_free(s);
        }
    }

    if (rc == SF_OK) {
        items = sf_arena_alloc(a, (c.n ? c.n : 1) * sizeof(sf_value));
        if (items == NULL) {
            rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
        } else {
            if (c.n) {
                memcpy(items, c.items, c.n * sizeof(sf_value));
            }
            out->type = SF_ARRAY;
            out->u.arr.items = items;
            out->u.arr.n = c.n;
        }
    }

    free(c.items);
    sf_buf_free(&c.json);
    return rc;
}


/*
 * The import's own experiments, for ctl_pages_put (the import writes them
 * in the same transaction before its "pages"): set by
 * ctl_pages_import_experiments, for one write transaction.
 */
static const void *const  *ctl_pages_recs;
static const size_t       *ctl_pages_lens;
static size_t              ctl_pages_nrecs;
static int                 ctl_pages_replace;


int
ctl_pages_import_experiments(sf_db *db, const void *const *recs,
    const size_t *lens, size_t n, int replace, int with_pages, sf_error *err)
{
    int           rc;
    size_t        i, len;
    sf_value      v;
    sf_buf        json;
    sf_arena     *a;
    sf_snapshot  *s;
    const void   *blob;

    ctl_pages_recs = recs;
    ctl_pages_lens = lens;
    ctl_pages_nrecs = recs ? n : 0;
    ctl_pages_replace = replace;

    if (with_pages || db == NULL || recs == NULL || n == 0) {
        return SF_OK;
    }

    /* no "pages" in the import: its experiments over the stored layouts */

    a = sf_arena_create(0);
    if (a == NULL) {
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }

    s = NULL;
    sf_buf_init(&json);
    rc = sf_snapshot_create(db, &s, err);
    if (rc == SF_OK) {
        rc = sf_snapshot_renew(s, err);
    }
    if (rc == SF_OK) {
        rc = sf_snapshot_pages(s, &blob, &len, err);
        for (i = 0; rc == SF_OK && blob != NULL && i < n; i++) {
            json.len = 0;
            rc = sf_experiment_to_json(recs[i], lens[i], &json);
            if (rc == SF_OK) {
                rc = sf_json_parse(json.data, json.len, a, &v, err);
            }
            if (rc == SF_OK) {
                rc = ctl_pages_check_value(blob, len, &v, i, err);
                if (rc != SF_OK) {
                    char  msg[sizeof(err->msg)];

                    memcpy(msg, err->msg, sizeof(msg));
                    rc = sf_error_set(err, rc, "pages: %.400s (the stored "
                                      "page layouts)", msg);
                }
            }
        }
        sf_snapshot_reset(s);
    }
    if (s != NULL) {
        sf_snapshot_free(s);
    }

    sf_buf_free(&json);
    sf_arena_destroy(a);
    return rc;
}


int
ctl_pages_check(const sf_value *v, sf_error *err)
{
    int     rc;
    sf_buf  blob;

    sf_buf_init(&blob);
    rc = sf_pages_compile(v, &blob, err);
    sf_buf_free(&blob);
    return rc;
}


int
ctl_pages_put(sf_txn *txn, sf_db *db, const sf_value *v, sf_error *err)
{
    int        rc;
    sf_value   exps;
    sf_arena  *a;

    a = sf_arena_create(0);
    if (a == NULL) {
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }

    /* the import's experiments, and the stored ones it keeps */
    rc = ctl_pages_experiments(ctl_pages_replace ? NULL : db, ctl_pages_recs,
                               ctl_pages_lens, ctl_pages_nrecs, a, &exps,
                               err);
    if (rc == SF_OK) {
        rc = ctl_pages_import(txn, v, &exps, err);
    }

    sf_arena_destroy(a);
    return rc;
}


/* ---- export ------------------------------------------------------------- */

int
ctl_pages_export(sf_snapshot *s, sf_buf *out)
{
    int          rc;
    size_t       len;
    sf_error     err;
    const void  *blob;

    memset(&err, 0, sizeof(err));
    rc = sf_snapshot_pages(s, &blob, &len, &err);
    if (rc != SF_OK) {
        return rc;
    }
    if (blob == NULL) {
        return SF_ERR_NOT_FOUND;
    }
    return sf_pages_to_json(blob, len, out);
}


/* ---- explain --page ----------------------------------------------------- */

typedef struct {
    const char  *db;
    const char  *page;
    const char  *user;
    const char  *url;
    int          qa;
    int          json;
    int64_t      now;
    int          now_set;
    sf_member   *attrs;
    size_t       nattrs;
    size_t       cap;
} ctl_pages_opts;


static int
ctl_pages_parse(ctl_pages_opts *o, int argc, char **argv)
{
    int          i, rc;
    char        *a, *value, *eq;
    size_t       len;

    i = 0;
    if (argc > 0 && strcmp(argv[0], "explain") == 0) {
        i = 1;
    }

    for ( /* void */ ; i < argc; i++) {
        a = argv[i];

        if (strncmp(a, "--", 2) != 0) {
            return ctl_usage_err("explain: unexpected argument \"%s\"", a);
        }

        len = strcspn(a + 2, "=");
        value = NULL;

#define CTL_PAGES_IS(name)                                                    \
        (len == sizeof(name) - 1 && strncmp(a + 2, name, len) == 0)

        if (CTL_PAGES_IS("json") || CTL_PAGES_IS("qa")) {
            if (a[2 + len] == '=') {
                return ctl_usage_err("explain: option '--%.*s' takes no "
                                     "value", (int) len, a + 2);
            }
            if (CTL_PAGES_IS("json")) {
                o->json = 1;
            } else {
                o->qa = 1;
            }
            continue;
        }

        if (!(CTL_PAGES_IS("page") || CTL_PAGES_IS("user")
              || CTL_PAGES_IS("attr") || CTL_PAGES_IS("url")
              || CTL_PAGES_IS("now") || CTL_PAGES_IS("db")))
        {
            return ctl_usage_err("explain: unknown option '%s'", a);
        }

        if (a[2 + len] == '=') {
            value = a + 2 + len + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return ctl_usage_err("explain: option '--%.*s' needs a value",
                                 (int) len, a + 2);
        }

        if (CTL_PAGES_IS("page")) {
            o->page = value;

        } else if (CTL_PAGES_IS("user")) {
            o->user = value;
            rc = ctl_attr_set(&o->attrs, &o->nattrs, &o->cap, "id", 2, value);
            if (rc != CTL_OK) {
                return rc;
            }

        } else if (CTL_PAGES_IS("attr")) {
            eq = strchr(value, '=');
            if (eq == NULL || eq == value) {
                return ctl_usage_err("explain: --attr needs NAME=VALUE, "
                                     "got \"%s\"", value);
            }
            rc = ctl_attr_set(&o->attrs, &o->nattrs, &o->cap, value,
                              (size_t) (eq - value), eq + 1);
            if (rc != CTL_OK) {
                return rc;
            }

        } else if (CTL_PAGES_IS("url")) {
            o->url = value;

        } else if (CTL_PAGES_IS("db")) {
            o->db = value;

        } else {
            if (ctl_parse_time(value, &o->now) != 0) {
                return ctl_usage_err("explain: invalid time \"%s\" (unix "
                                     "seconds or ISO 8601)", value);
            }
            o->now_set = 1;
        }

#undef CTL_PAGES_IS
    }

    if (o->page == NULL) {
        return ctl_usage_err("explain: --page TYPE is required");
    }

    return CTL_OK;
}


/* the module's rules for what goes into a header: no separators */
static int
ctl_pages_safe(const char *s, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (len == 0) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];
        if (c <= ' ' || c == 0x7f || c == ';' || c == '=' || c == ',') {
            return 0;
        }
    }
    return 1;
}


static int
ctl_pages_escape(sf_buf *b, const char *s, size_t len)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
            || c == '~')
        {
            if (sf_buf_append(b, &s[i], 1) != SF_OK) {
                return SF_ERR_NOMEM;
            }
        } else if (sf_buf_printf(b, "%%%02X", c) != SF_OK) {
            return SF_ERR_NOMEM;
        }
    }
    return SF_OK;
}


/* The query string the module gives a fragment (never the user id). */
static int
ctl_pages_fragment_args(sf_buf *b, const sf_page_module *m,
    const sf_derived *d, const sf_buf *variants)
{
    const char  *names[4] = { "segment", "tier", "lifecycle", "variants" };
    const char  *values[4];
    size_t       lens[4], i;
    int          rc;

    values[0] = (m->vary & SF_VARY_SEGMENT) ? d->segment : NULL;
    values[1] = (m->vary & SF_VARY_TIER) ? d->tier : NULL;
    values[2] = (m->vary & SF_VARY_LIFECYCLE) ? d->lifecycle : NULL;
    values[3] = (m->vary & SF_VARY_VARIANTS) && variants->len
                ? variants->data : NULL;
    for (i = 0; i < 3; i++) {
        lens[i] = values[i] ? strlen(values[i]) : 0;
    }
    lens[3] = values[3] ? variants->len : 0;

    rc = sf_buf_append(b, m->params, m->params_len);

    for (i = 0; rc == SF_OK && i < 4; i++) {
        if (lens[i] == 0) {
            continue;
        }
        if (b->len) {
            rc = sf_buf_append(b, "&", 1);
        }
        if (rc == SF_OK) {
            rc = sf_buf_printf(b, "%s=", names[i]);
        }
        if (rc == SF_OK) {
            rc = ctl_pages_escape(b, values[i], lens[i]);
        }
    }
    return rc;
}


static void
ctl_pages_time(int64_t t, char *buf, size_t size)
{
    time_t     tt;
    struct tm  tm;

    tt = (time_t) t;
    if (gmtime_r(&tt, &tm) == NULL
        || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    {
        snprintf(buf, size, "%lld", (long long) t);
    }
}


static int
ctl_pages_print(const ctl_pages_opts *o, const sf_profile *p,
    const sf_derived *d, const sf_assignment *as, size_t nas,
    const sf_buf *variants, const sf_page_decision *pd)
{
    size_t       i;
    char         when[32];
    sf_buf       args;
    int          rc;

    ctl_pages_time(o->now, when, sizeof(when));
    sf_buf_init(&args);

    printf("page %s for %s at %s\n", o->page,
           o->user ? o->user : "a visitor without --user", when);
    printf("  %s: segment %s, tier %s, lifecycle %s\n",
           p->found ? "profile" : "no profile (defaults)", d->segment,
           d->tier, d->lifecycle);
    printf("  experiments: %s\n", variants->len ? variants->data : "none");
    for (i = 0; i < nas; i++) {
        if (as[i].in_experiment && as[i].layout) {
            printf("    %.*s=%.*s names layout %.*s\n", (int) as[i].key_len,
                   as[i].key, (int) as[i].variation_key_len,
                   as[i].variation_key, (int) as[i].layout_len,
                   as[i].layout);
        }
    }

    printf("layout %.*s (rule %.*s)\n", (int) pd->layout_len, pd->layout,
           (int) pd->rule_len, pd->rule);

    printf("rules:\n");
    if (pd->ntrace == 0) {
        printf("  none: the page's default\n");
    }
    for (i = 0; i < pd->ntrace; i++) {
        printf("  %2zu  %-24.*s %s\n", i + 1, (int) pd->trace[i].name_len,
               pd->trace[i].name, sf_page_outcome_name(pd->trace[i].outcome));
    }

    printf("modules:\n");
    rc = SF_OK;
    for (i = 0; i < pd->nmodules; i++) {
        const sf_page_module  *m = &pd->modules[i];

        args.len = 0;
        rc = ctl_pages_fragment_args(&args, m, d, variants);
        if (rc != SF_OK) {
            break;
        }
        printf("  %2zu  %-16.*s %-32.*s %.*s%s%.*s\n", i + 1,
               (int) m->module_len, m->module,
               (int) (m->params_len ? m->params_len : 1),
               m->params_len ? m->params : "-",
               (int) m->fragment_len, m->fragment, args.len ? "?" : "",
               (int) args.len, args.data ? args.data : "");
    }

    sf_buf_free(&args);
    return rc == SF_OK ? CTL_OK : CTL_ERROR;
}


static int
ctl_pages_json(sf_buf *o, const ctl_pages_opts *opts, const sf_profile *p,
    const sf_derived *d, const sf_assignment *as, size_t nas,
    const sf_buf *variants, const sf_page_decision *pd)
{
    size_t   i, k, n;
    sf_buf   args;
    int      rc;
    static const char  *vary[] = { "segment", "tier", "lifecycle",
                                   "variants" };

    sf_buf_init(&args);

#define CTL_PAGES_JS(s)  sf_buf_append_json_string(o, s, strlen(s))

    rc = sf_buf_appends(o, "{\"page\":");
    if (rc == SF_OK) rc = CTL_PAGES_JS(opts->page);
    if (rc == SF_OK) rc = sf_buf_appends(o, ",\"user\":");
    if (rc == SF_OK) rc = opts->user ? CTL_PAGES_JS(opts->user)
                                     : sf_buf_appends(o, "null");
    if (rc == SF_OK) rc = sf_buf_appends(o, ",\"now\":");
    if (rc == SF_OK) rc = sf_buf_append_time(o, opts->now);
    if (rc == SF_OK) rc = sf_buf_printf(o, ",\"profile\":{\"found\":%s,"
                                        "\"segment\":",
                                        p->found ? "true" : "false");
    if (rc == SF_OK) rc = CTL_PAGES_JS(d->segment);
    if (rc == SF_OK) rc = sf_buf_appends(o, ",\"tier\":");
    if (rc == SF_OK) rc = CTL_PAGES_JS(d->tier);
    if (rc == SF_OK) rc = sf_buf_appends(o, ",\"lifecycle\":");
    if (rc == SF_OK) rc = CTL_PAGES_JS(d->lifecycle);
    if (rc == SF_OK) rc = sf_buf_appends(o, ",\"rfm\":");
    if (rc == SF_OK) rc = CTL_PAGES_JS(d->rfm);
    if (rc == SF_OK) rc = sf_buf_appends(o, "},\"experiments\":{");

    for (i = 0, n = 0; rc == SF_OK && i < nas; i++) {
        if (!as[i].in_experiment) {
            continue;
        }
        rc = sf_buf_appends(o, n++ ? "," : "");
        if (rc == SF_OK) rc = sf_buf_append_json_string(o, as[i].key,
                                                        as[i].key_len);
        if (rc == SF_OK) rc = sf_buf_appends(o, ":{\"variation\":");
        if (rc == SF_OK) rc = sf_buf_append_json_string(o,
                                  as[i].variation_key,
                                  as[i].variation_key_len);
        if (rc == SF_OK) rc = sf_buf_appends(o, ",\"layout\":");
        if (rc == SF_OK) rc = as[i].layout
                              ? sf_buf_append_json_string(o, as[i].layout,
                                                          as[i].layout_len)
                              : sf_buf_appends(o, "null");
        if (rc == SF_OK) rc = sf_buf_appends(o, "}");
    }

    if (rc == SF_OK) rc = sf_buf_appends(o, "},\"variants\":");
    if (rc == SF_OK) rc = sf_buf_append_json_string(o,
                              variants->data ? variants->data : "",
                              variants->len);
    if (rc == SF_OK) rc = sf_buf_appends(o, ",\"layout\":");
    if (rc == SF_OK) rc = sf_buf_append_json_string(o, pd->layout,
                                                    pd->layout_len);
    if (rc == SF_OK) rc = sf_buf_appends(o, ",\"rule\":");
    if (rc == SF_OK) rc = sf_buf_append_json_string(o, pd->rule,
                                                    pd->rule_len);
    if (rc == SF_OK) rc = sf_buf_appends(o, ",\"rules\":[");

    for (i = 0; rc == SF_OK && i < pd->ntrace; i++) {
        rc = sf_buf_appends(o, i ? ",{\"name\":" : "{\"name\":");
        if (rc == SF_OK) rc = sf_buf_append_json_string(o,
                                  pd->trace[i].name, pd->trace[i].name_len);
        if (rc == SF_OK) rc = sf_buf_appends(o, ",\"outcome\":");
        if (rc == SF_OK) rc = CTL_PAGES_JS(
                                  sf_page_outcome_name(pd->trace[i].outcome));
        if (rc == SF_OK) rc = sf_buf_appends(o, "}");
    }

    if (rc == SF_OK) rc = sf_buf_appends(o, "],\"modules\":[");

    for (i = 0; rc == SF_OK && i < pd->nmodules; i++) {
        const sf_page_module  *m = &pd->modules[i];

        args.len = 0;
        rc = ctl_pages_fragment_args(&args, m, d, variants);
        if (rc == SF_OK) rc = sf_buf_printf(o, "%s{\"position\":%zu,"
                                            "\"module\":", i ? "," : "",
                                            i + 1);
        if (rc == SF_OK) rc = sf_buf_append_json_string(o, m->module,
                                                        m->module_len);
        if (rc == SF_OK) rc = sf_buf_appends(o, ",\"params\":");
        if (rc == SF_OK) rc = sf_buf_append_json_string(o, m->params,
                                                        m->params_len);
        if (rc == SF_OK) rc = sf_buf_appends(o, ",\"fragment\":");
        if (rc == SF_OK) rc = sf_buf_append_json_string(o, m->fragment,
                                                        m->fragment_len);
        if (rc == SF_OK) rc = sf_buf_appends(o, ",\"args\":");
        if (rc == SF_OK) rc = sf_buf_append_json_string(o,
                                  args.data ? args.data : "", args.len);
        if (rc == SF_OK) rc = sf_buf_appends(o, ",\"fallback\":");
        if (rc == SF_OK) rc = sf_buf_append_json_string(o, m->fallback,
                                                        m->fallback_len);
        if (rc == SF_OK) rc = sf_buf_appends(o, ",\"vary\":[");
        for (k = 0, n = 0; rc == SF_OK && k < 4; k++) {
            if (m->vary & (1u << k)) {
                rc = sf_buf_appends(o, n++ ? "," : "");
                if (rc == SF_OK) rc = CTL_PAGES_JS(vary[k]);
            }
        }
        if (rc == SF_OK) rc = sf_buf_appends(o, "]}");
    }

    if (rc == SF_OK) rc = sf_buf_appends(o, "]}\n");

#undef CTL_PAGES_JS

    sf_buf_free(&args);
    return rc;
}


int
ctl_pages_is_explain(int argc, char **argv)
{
    int  i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (strcmp(argv[i], "--page") == 0
            || strncmp(argv[i], "--page=", 7) == 0)
        {
            return 1;
        }
    }
    return 0;
}


int
ctl_pages_command(const char *db_path, int argc, char **argv)
{
    int                ret, rc, url_attr;
    size_t             i, n, len;
    sf_db             *db;
    sf_buf             out, variants;
    sf_arena          *arena;
    sf_error           err;
    sf_value           attrs, seen;
    sf_member         *m;
    sf_request         req;
    sf_profile         p;
    sf_derived         d;
    ctl_global         g;
    sf_snapshot       *snap;
    sf_assignment     *as;
    ctl_pages_opts     o;
    const void        *blob;
    const sf_rules    *rules;
    sf_page_decision  *pd;

    memset(&o, 0, sizeof(o));
    o.db = db_path;

    rc = ctl_pages_parse(&o, argc, argv);
    /* not ctl_need_db: "use", not "give" */
    if (rc == CTL_OK && (o.db == NULL || o.db[0] == '\0')) {
        rc = ctl_usage_err("explain: no database: use --db DIR or set "
                           "STOREFRONT_DB");
    }
    if (rc != CTL_OK) {
        free(o.attrs);
        return rc;
    }
    if (!o.now_set) {
        o.now = (int64_t) time(NULL);
    }

    db = NULL;
    snap = NULL;
    as = NULL;
    pd = NULL;
    ret = CTL_ERROR;
    sf_buf_init(&out);
    sf_buf_init(&variants);
    memset(&err, 0, sizeof(err));

    arena = sf_arena_create(0);
    as = calloc(CTL_PAGES_MAX_EXPERIMENTS, sizeof(sf_assignment));
    pd = calloc(1, sizeof(sf_page_decision));
    if (arena == NULL || as == NULL || pd == NULL) {
        ctl_nomem();
        goto done;
    }

    /* the database's own map size: the global --map-size is not passed on */
    memset(&g, 0, sizeof(g));
    g.db_path = o.db;

    if (ctl_open_snapshot(&g, &db, &snap) != CTL_OK) {
        goto done;
    }

    /* the attributes as the module builds them: id, logged_in, then
     * the request's own, and "url" (--url) unless --attr gives one; the
     * profile's computed values come first */

    m = sf_arena_alloc(arena, (o.nattrs + 2) * sizeof(sf_member));
    if (m == NULL) {
        ctl_nomem();
        goto done;
    }
    n = 0;
    url_attr = 0;
    for (i = 0; i < o.nattrs; i++) {
        m[n++] = o.attrs[i];
        if (o.attrs[i].name_len == 3
            && memcmp(o.attrs[i].name, "url", 3) == 0)
        {
            url_attr = 1;
        }
    }
    m[n].name = "logged_in";
    m[n].name_len = 9;
    m[n].value.type = SF_BOOL;
    m[n].value.u.boolean = o.user != NULL;
    n++;
    if (o.url && !url_attr) {
        m[n].name = "url";
        m[n].name_len = 3;
        m[n].value.type = SF_STRING;
        m[n].value.u.str.p = o.url;
        m[n].value.u.str.len = strlen(o.url);
        n++;
    }
    attrs.type = SF_OBJECT;
    attrs.u.obj.members = m;
    attrs.u.obj.n = n;

    if (ctl_lookup(&g, snap, o.user, o.now, &p, &d, &rules) != CTL_OK) {
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
    req.url = o.url;
    req.url_len = o.url ? strlen(o.url) : 0;
    req.qa_override = o.qa;
    req.now = o.now;

    n = 0;
    rc = sf_evaluate_all(snap, &req, as, CTL_PAGES_MAX_EXPERIMENTS, &n, &err);
    if (rc != SF_OK && rc != SF_ERR_TOO_MANY) {
        ctl_err("%s: %s", o.db, err.msg);
        goto done;
    }

    /* the Variants text: experiments with header-safe keys, as the module */
    for (i = 0; i < n; i++) {
        if (!as[i].in_experiment) {
            continue;
        }
        if (!ctl_pages_safe(as[i].key, as[i].key_len)
            || !ctl_pages_safe(as[i].variation_key, as[i].variation_key_len))
        {
            as[i].in_experiment = 0;
            continue;
        }
        if ((variants.len && sf_buf_append(&variants, ";", 1) != SF_OK)
            || sf_buf_append(&variants, as[i].key, as[i].key_len) != SF_OK
            || sf_buf_append(&variants, "=", 1) != SF_OK
            || sf_buf_append(&variants, as[i].variation_key,
                             as[i].variation_key_len) != SF_OK)
        {
            ctl_nomem();
            goto done;
        }
    }
    if (sf_buf_append(&variants, "", 1) != SF_OK) {
        ctl_nomem();
        goto done;
    }
    variants.len--;

    blob = NULL;
    len = 0;
    if (sf_snapshot_pages(snap, &blob, &len, &err) != SF_OK) {
        ctl_err("%s: %s", o.db, err.msg);
        goto done;
    }
    if (blob == NULL) {
        ctl_err("%s: no page layouts (import a \"pages\" member)", o.db);
        goto done;
    }

    rc = sf_page_decide(blob, len, o.page, strlen(o.page), &seen, as, n,
                        o.now, ctl_arena_alloc, arena, pd);
    if (rc == SF_ERR_NOT_FOUND) {
        ctl_err("no layouts for page type \"%s\"", o.page);
        goto done;
    }
    if (rc != SF_OK) {
        ctl_nomem();
        goto done;
    }

    if (o.json) {
        if (ctl_pages_json(&out, &o, &p, &d, as, n, &variants, pd) != SF_OK) {
            ctl_nomem();
            goto done;
        }
        if (ctl_write(stdout, &out) != 0) {
            ctl_err("error writing to standard output: %s", strerror(errno));
            goto done;
        }
    } else if (ctl_pages_print(&o, &p, &d, as, n, &variants, pd) != CTL_OK) {
        ctl_nomem();
        goto done;
    }

    ret = ctl_finish_stdout(CTL_OK);

done:

    ctl_close_snapshot(db, snap);
    sf_buf_free(&out);
    sf_buf_free(&variants);
    sf_arena_destroy(arena);
    free(o.attrs);
    free(as);
    free(pd);
    return ret;
}
