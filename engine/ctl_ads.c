/*
 * storefrontctl: ad campaigns.  See ctl_ads.h.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "ctl_ads.h"


#define CTL_ADS_ATTRS   64
#define CTL_ADS_EXPS    4096


/*
 * Not ctl_usage_err: "ads: ", the argument quoted, and the usage of ads
 * instead of the pointer to --help.
 */
static int
ctl_ads_usage(const char *msg, const char *arg)
{
    fprintf(stderr, "storefrontctl: ads: %s%s%s%s\n", msg,
            arg ? " \"" : "", arg ? arg : "", arg ? "\"" : "");
    fputs("usage: storefrontctl ads report [--json]\n"
          "       storefrontctl ads explain --user ID --page TYPE "
          "[--slots A,B] [--max-slots N]\n"
          "           [--attr NAME=VALUE]... [--now TIME] [--seed N] "
          "[--json]\n", stderr);
    return CTL_USAGE;
}


/* ---- import -------------------------------------------------------------- */

/* The document with only the ads members: what export gives back. */
static int
ctl_ads_members(const sf_value *doc, sf_value *out, sf_member *m)
{
    size_t           n;
    const sf_value  *v;

    n = 0;
    if ((v = sf_value_member(doc, "campaigns", 9)) != NULL) {
        m[n].name = "campaigns";
        m[n].name_len = 9;
        m[n].value = *v;
        n++;
    }
    if ((v = sf_value_member(doc, "ad_pages", 8)) != NULL) {
        m[n].name = "ad_pages";
        m[n].name_len = 8;
        m[n].value = *v;
        n++;
    }

    out->type = SF_OBJECT;
    out->u.obj.members = m;
    out->u.obj.n = n;
    return (int) n;
}


int
ctl_ads_import(sf_txn *txn, const sf_value *doc, sf_error *err)
{
    int        rc;
    sf_buf     blob;
    sf_value   ads;
    sf_member  m[2];

    if (doc == NULL || doc->type != SF_OBJECT
        || ctl_ads_members(doc, &ads, m) == 0)
    {
        return SF_OK;
    }

    sf_buf_init(&blob);

    rc = sf_ads_compile(&ads, &blob, err);
    if (rc == SF_OK) {
        rc = sf_txn_put_ads(txn, blob.data, blob.len, err);
    }

    if (rc != SF_OK && err != NULL
        && strncmp(err->msg, "ads: ", 5) != 0)
    {
        char  msg[sizeof(err->msg)];

        /* the caller tells the ads' problems from the others' */
        snprintf(msg, sizeof(msg), "ads: %.500s", err->msg);
        memcpy(err->msg, msg, sizeof(msg));
    }

    sf_buf_free(&blob);
    return rc;
}


struct ctl_ads_doc {
    sf_arena   *arena;
    sf_value   *campaigns;
    size_t      ncampaigns;
    size_t      cap;
    sf_value    pages;
    int         have_campaigns;
    int         have_pages;
    sf_member   members[2];
    sf_value    doc;
};


ctl_ads_doc *
ctl_ads_doc_create(void)
{
    ctl_ads_doc  *d;

    d = calloc(1, sizeof(ctl_ads_doc));
    if (d == NULL) {
        return NULL;
    }
    d->arena = sf_arena_create(64 * 1024);
    if (d->arena == NULL) {
        free(d);
        return NULL;
    }
    return d;
}


void
ctl_ads_doc_free(ctl_ads_doc *d)
{
    if (d) {
        sf_arena_destroy(d->arena);
        free(d->campaigns);
        free(d);
    }
}


/* A deep copy into the arena: the stream's values are short-lived. */
static int
ctl_ads_copy(sf_arena *a, const sf_value *from, sf_value *to)
{
    size_t      i;
    sf_value   *items;
    sf_member  *members;

    *to = *from;

    switch (from->type) {

    case SF_STRING:
        to->u.str.p = sf_arena_strndup(a, from->u.str.p, from->u.str.len);
        return to->u.str.p ? SF_OK : SF_ERR_NOMEM;

    case SF_ARRAY:
        items = sf_arena_alloc(a, (from->u.arr.n ? from->u.arr.n : 1)
                                  * sizeof(sf_value));
        if (items == NULL) {
            return SF_ERR_NOMEM;
        }
        for (i = 0; i < from->u.arr.n; i++) {
            if (ctl_ads_copy(a, &from->u.arr.items[i], &items[i]) != SF_OK) {
                return SF_ERR_NOMEM;
            }
        }
        to->u.arr.items = items;
        return SF_OK;

    case SF_OBJECT:
        members = sf_arena_alloc(a, (from->u.obj.n ? from->u.obj.n : 1)
                                    * sizeof(sf_member));
        if (members == NULL) {
            return SF_ERR_NOMEM;
        }
        for (i = 0; i < from->u.obj.n; i++) {
            members[i].name = sf_arena_strndup(a, from->u.obj.members[i].name,
                                               from->u.obj.members[i].name_len);
            members[i].name_len = from->u.obj.members[i].name_len;
            if (members[i].name == NULL
                || ctl_ads_copy(a, &from->u.obj.members[i].value,
                                &members[i].value) != SF_OK)
            {
                return SF_ERR_NOMEM;
            }
        }
        to->u.obj.members = members;
        return SF_OK;

    default:
        return SF_OK;
    }
}


int
ctl_ads_collect(ctl_ads_doc *d, const char *member, long index,
    const sf_value *el, sf_error *err)
{
    int        rc;
    char       msg[sizeof(err->msg)];
    sf_buf     blob;
    sf_value   one, arr;
    sf_member  m;

    if (strcmp(member, "ad_pages") == 0) {
        if (index >= 0 || el->type != SF_OBJECT) {
            return sf_error_set(err, SF_ERR_INVALID, "member \"ad_pages\" "
                                "must be an object of page types");
        }
        d->have_pages = 1;
        return ctl_ads_copy(d->arena, el, &d->pages) == SF_OK
               ? SF_OK : sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }

    if (strcmp(member, "campaigns") != 0) {
        return sf_error_set(err, SF_ERR_INVALID, "not an ads member: \"%s\"",
                            member);
    }

    d->have_campaigns = 1;

    if (index < 0) {
        if (el->type == SF_ARRAY && el->u.arr.n == 0) {
            return SF_OK;       /* "campaigns": [] removes them all */
        }
        return sf_error_set(err, SF_ERR_INVALID, "member \"campaigns\" "
                            "must be an array");
    }

    /* checked alone now, so that the problem comes with its line */

    arr.type = SF_ARRAY;
    arr.u.arr.items = el;
    arr.u.arr.n = 1;
    m.name = "campaigns";
    m.name_len = 9;
    m.value = arr;
    one.type = SF_OBJECT;
    one.u.obj.members = &m;
    one.u.obj.n = 1;

    sf_buf_init(&blob);
    rc = sf_ads_compile(&one, &blob, err);
    sf_buf_free(&blob);

    if (rc != SF_OK) {
        if (strncmp(err->msg, "campaigns[0]", 12) == 0) {
            snprintf(msg, sizeof(msg), "campaigns[%ld]%s", index,
                     err->msg + 12);
            snprintf(err->msg, sizeof(err->msg), "%s", msg);
        }
        return rc;
    }

    if (d->ncampaigns == d->cap) {
        size_t     cap = d->cap ? d->cap * 2 : 64;
        sf_value  *c = realloc(d->campaigns, cap * sizeof(sf_value));

        if (c == NULL) {
            return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
        }
        d->campaigns = c;
        d->cap = cap;
    }

    if (ctl_ads_copy(d->arena, el, &d->campaigns[d->ncampaigns]) != SF_OK) {
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }
    d->ncampaigns++;

    return SF_OK;
}


const sf_value *
ctl_ads_collected(ctl_ads_doc *d)
{
    size_t  n;

    if (d == NULL || (!d->have_campaigns && !d->have_pages)) {
        return NULL;
    }

    n = 0;
    if (d->have_campaigns) {
        d->members[n].name = "campaigns";
        d->members[n].name_len = 9;
        d->members[n].value.type = SF_ARRAY;
        d->members[n].value.u.arr.items = d->campaigns;
        d->members[n].value.u.arr.n = d->ncampaigns;
        n++;
    }
    if (d->have_pages) {
        d->members[n].name = "ad_pages";
        d->members[n].name_len = 8;
        d->members[n].value = d->pages;
        n++;
    }

    d->doc.type = SF_OBJECT;
    d->doc.u.obj.members = d->members;
    d->doc.u.obj.n = n;
    return &d->doc;
}


int
ctl_ads_export(sf_snapshot *s, sf_buf *out, int *found, sf_error *err)
{
    int          rc;
    size_t       len;
    sf_buf       json;
    const void  *blob;

    *found = 0;

    rc = sf_snapshot_ads(s, &blob, &len, err);
    if (rc != SF_OK || blob == NULL) {
        return rc;
    }

    sf_buf_init(&json);
    rc = sf_ads_to_json(blob, len, &json);

    /* the stored source is an object: its members, without the braces */
    if (rc == SF_OK && json.len >= 2 && json.data[0] == '{') {
        if (json.len > 2) {
            rc = sf_buf_append(out, json.data + 1, json.len - 2);
            *found = 1;
        }
    } else if (rc == SF_OK) {
        rc = sf_error_set(err, SF_ERR_INVALID, "the stored ads are damaged");
    }

    sf_buf_free(&json);
    return rc;
}


/* ---- options ------------------------------------------------------------- */

typedef struct {
    int            json;
    const char    *user;
    const char    *page;
    const char    *slots;
    long           max_slots;
    int64_t        now;
    int            now_set;
    uint64_t       seed;
    int            seed_set;
    const char    *attr_name[CTL_ADS_ATTRS];
    size_t         attr_name_len[CTL_ADS_ATTRS];
    const char    *attr_value[CTL_ADS_ATTRS];
    size_t         nattrs;
} ctl_ads_opts;


static int
ctl_ads_parse_time(const char *s, int64_t *out)
{
    sf_value  v;
    char     *end;

    errno = 0;
    v.type = SF_NUMBER;
    v.u.number = strtod(s, &end);
    if (*s != '\0' && *end == '\0' && errno == 0) {
        return sf_parse_time(&v, out);
    }
    v.type = SF_STRING;
    v.u.str.p = s;
    v.u.str.len = strlen(s);
    return sf_parse_time(&v, out);
}


static int
ctl_ads_options(int argc, char **argv, int verb_explain, ctl_ads_opts *o)
{
    int          i;
    char        *end;
    size_t       len;
    const char  *a, *value, *eq;

    memset(o, 0, sizeof(*o));
    o->max_slots = SF_ADS_DEFAULT_SLOTS;

    for (i = 1; i < argc; i++) {
        a = argv[i];

        if (strncmp(a, "--", 2) != 0) {
            return ctl_ads_usage("unexpected argument", a);
        }

        len = strcspn(a + 2, "=");
        value = NULL;

        if (a[2 + len] == '=') {
            value = a + 3 + len;
        }

#define CTL_ADS_IS(name)  (len == sizeof(name) - 1                           \
                           && strncmp(a + 2, name, len) == 0)

        if (CTL_ADS_IS("json")) {
            o->json = 1;
            continue;
        }
        if (CTL_ADS_IS("ads")) {
            continue;
        }

        if (!verb_explain) {
            return ctl_ads_usage("unknown option", a);
        }

        if (!CTL_ADS_IS("user") && !CTL_ADS_IS("page") && !CTL_ADS_IS("slots")
            && !CTL_ADS_IS("max-slots") && !CTL_ADS_IS("now")
            && !CTL_ADS_IS("seed") && !CTL_ADS_IS("attr"))
        {
            return ctl_ads_usage("unknown option", a);
        }

        if (value == NULL) {
            if (i + 1 >= argc) {
                return ctl_ads_usage("option needs a value:", a);
            }
            value = argv[++i];
        }

        if (CTL_ADS_IS("user")) {
            o->user = value;

        } else if (CTL_ADS_IS("page")) {
            o->page = value;

        } else if (CTL_ADS_IS("slots")) {
            o->slots = value;

        } else if (CTL_ADS_IS("max-slots")) {
            errno = 0;
            o->max_slots = strtol(value, &end, 10);
            if (*value == '\0' || *end != '\0' || errno || o->max_slots < 0
                || o->max_slots > SF_ADS_MAX_SLOTS)
            {
                return ctl_ads_usage("--max-slots must be 0 to 8:", value);
            }

        } else if (CTL_ADS_IS("now")) {
            if (ctl_ads_parse_time(value, &o->now) != SF_OK) {
                return ctl_ads_usage("invalid --now (unix seconds or ISO "
                                     "8601):", value);
            }
            o->now_set = 1;

        } else if (CTL_ADS_IS("seed")) {
            errno = 0;
            o->seed = strtoull(value, &end, 10);
            if (*value == '\0' || *end != '\0' || errno) {
                return ctl_ads_usage("invalid --seed", value);
            }
            o->seed_set = 1;

        } else { /* attr */
            eq = strchr(value, '=');
            if (eq == NULL || eq == value) {
                return ctl_ads_usage("--attr needs NAME=VALUE, not", value);
            }
            if (o->nattrs == CTL_ADS_ATTRS) {
                return ctl_ads_usage("too many --attr", NULL);
            }
            o->attr_name[o->nattrs] = value;
            o->attr_name_len[o->nattrs] = (size_t) (eq - value);
            o->attr_value[o->nattrs] = eq + 1;
            o->nattrs++;
        }

#undef CTL_ADS_IS
    }

    return CTL_OK;
}


/* ---- report -------------------------------------------------------------- */

typedef struct {
    char          kind;          /* 'c', 'r' (creative), 'a' */
    char         *key;
    size_t        key_len;
    sf_ad_counts  c;
} ctl_ads_row;

typedef struct {
    ctl_ads_row  *rows;
    size_t        n;
    size_t        cap;
    int           nomem;
} ctl_ads_rows;


static int
ctl_ads_row_cb(void *ctx, const char *kind, const char *key, size_t key_len,
    const sf_ad_counts *c)
{
    ctl_ads_rows  *t = ctx;
    ctl_ads_row   *r;

    if (t->n == t->cap) {
        size_t  cap = t->cap ? t->cap * 2 : 256;

        r = realloc(t->rows, cap * sizeof(ctl_ads_row));
        if (r == NULL) {
            t->nomem = 1;
            return 1;
        }
        t->rows = r;
        t->cap = cap;
    }

    r = &t->rows[t->n];
    r->kind = kind[0] == 'c' && kind[1] == 'a' ? 'c'
              : kind[0] == 'c' ? 'r' : 'a';
    r->key = malloc(key_len + 1);
    if (r->key == NULL) {
        t->nomem = 1;
        return 1;
    }
    memcpy(r->key, key, key_len);
    r->key[key_len] = '\0';
    r->key_len = key_len;
    r->c = *c;
    t->n++;
    return 0;
}


static int
ctl_ads_row_cmp(const void *a, const void *b)
{
    const ctl_ads_row  *x = a, *y = b;

    if (x->kind != y->kind) {
        return x->kind == 'c' ? -1 : y->kind == 'c' ? 1
               : x->kind == 'r' ? -1 : 1;
    }
    return strcmp(x->key, y->key);
}


/* the advertiser of a campaign id, from the campaigns in force */
static const char *
ctl_ads_advertiser(const sf_value *camps, const char *id, size_t len,
    size_t *alen)
{
    size_t           i;
    const sf_value  *c, *a;

    for (i = 0; camps && camps->type == SF_ARRAY && i < camps->u.arr.n; i++) {
        c = sf_value_member(&camps->u.arr.items[i], "id", 2);
        if (c && c->type == SF_STRING && c->u.str.len == len
            && memcmp(c->u.str.p, id, len) == 0)
        {
            a = sf_value_member(&camps->u.arr.items[i], "advertiser", 10);
            if (a && a->type == SF_STRING) {
                *alen = a->u.str.len;
                return a->u.str.p;
            }
        }
    }
    *alen = 1;
    return "-";
}


static double
ctl_ads_ctr(const sf_ad_counts *c)
{
    return c->impressions ? (double) c->clicks / (double) c->impressions : 0;
}


static void
ctl_ads_json_counts(sf_buf *b, const sf_ad_counts *c)
{
    sf_buf_printf(b, ",\"impressions\":%" PRIu64 ",\"clicks\":%" PRIu64
                  ",\"ctr\":", c->impressions, c->clicks);
    sf_buf_append_js_number(b, ctl_ads_ctr(c));
}


static int
ctl_ads_report(const ctl_global *g, const ctl_ads_opts *o)
{
    int              rc, first;
    char             kind;
    size_t           i, len, alen;
    sf_db           *db;
    sf_buf           b, src;
    sf_error         err;
    sf_value         doc;
    sf_arena        *arena;
    const char      *adv, *slash;
    const void      *blob;
    sf_snapshot     *snap;
    ctl_ads_rows     t;
    sf_ad_counts     total;
    const sf_value  *camps;

    memset(&err, 0, sizeof(err));
    memset(&t, 0, sizeof(t));
    sf_buf_init(&b);
    sf_buf_init(&src);
    arena = sf_arena_create(64 * 1024);
    camps = NULL;
    snap = NULL;

    if (ctl_open_db(g, SF_DB_READONLY, &db) != CTL_OK) {
        sf_arena_destroy(arena);
        return CTL_ERROR;
    }

    /* the advertisers of the campaigns in force */

    if (sf_snapshot_create(db, &snap, &err) == SF_OK
        && sf_snapshot_renew(snap, &err) == SF_OK
        && sf_snapshot_ads(snap, &blob, &len, &err) == SF_OK && blob
        && sf_ads_to_json(blob, len, &src) == SF_OK
        && sf_json_parse(src.data, src.len, arena, &doc, &err) == SF_OK)
    {
        camps = sf_value_member(&doc, "campaigns", 9);
    }

    if (snap) {
        sf_snapshot_reset(snap);
        sf_snapshot_free(snap);
    }

    rc = sf_db_ad_counts(db, ctl_ads_row_cb, &t, &err);
    sf_db_close(db);

    if (t.nomem) {
        rc = sf_error_set(&err, SF_ERR_NOMEM, "out of memory");
    }
    if (rc != SF_OK) {
        ctl_err("ads report: %s", err.msg);
        goto done;
    }

    qsort(t.rows, t.n, sizeof(ctl_ads_row), ctl_ads_row_cmp);

    memset(&total, 0, sizeof(total));
    for (i = 0; i < t.n; i++) {
        if (t.rows[i].kind == 'c') {
            total.impressions += t.rows[i].c.impressions;
            total.clicks += t.rows[i].c.clicks;
        }
    }

    if (o->json) {
        sf_buf_appends(&b, "{");
        for (kind = 'c'; kind; kind = kind == 'c' ? 'r' : kind == 'r' ? 'a'
                                                                    : 0)
        {
            sf_buf_appends(&b, kind == 'c' ? "\"campaigns\":["
                               : kind == 'r' ? "],\"creatives\":["
                               : "],\"advertisers\":[");
            first = 1;
            for (i = 0; i < t.n; i++) {
                ctl_ads_row  *r = &t.rows[i];

                if (r->kind != kind) {
                    continue;
                }
                sf_buf_appends(&b, first ? "{" : ",{");
                first = 0;

                if (kind == 'a') {
                    sf_buf_appends(&b, "\"advertiser\":");
                    sf_buf_append_json_string(&b, r->key, r->key_len);

                } else {
                    slash = kind == 'r' ? memchr(r->key, '/', r->key_len)
                                        : NULL;
                    len = slash ? (size_t) (slash - r->key) : r->key_len;
                    adv = ctl_ads_advertiser(camps, r->key, len, &alen);
                    sf_buf_appends(&b, "\"campaign\":");
                    sf_buf_append_json_string(&b, r->key, len);
                    if (slash) {
                        sf_buf_appends(&b, ",\"creative\":");
                        sf_buf_append_json_string(&b, slash + 1,
                                         r->key_len - len - 1);
                    }
                    sf_buf_appends(&b, ",\"advertiser\":");
                    if (alen == 1 && adv[0] == '-') {
                        sf_buf_appends(&b, "null");
                    } else {
                        sf_buf_append_json_string(&b, adv, alen);
                    }
                }
                ctl_ads_json_counts(&b, &r->c);
                sf_buf_appends(&b, "}");
            }
        }
        sf_buf_appends(&b, "],\"total\":{\"campaigns\":");
        for (i = 0, len = 0; i < t.n; i++) {
            len += t.rows[i].kind == 'c';
        }
        sf_buf_printf(&b, "%zu", len);
        ctl_ads_json_counts(&b, &total);
        sf_buf_appends(&b, "}}\n");

    } else {
        for (kind = 'c'; kind; kind = kind == 'c' ? 'r' : kind == 'r' ? 'a'
                                                                    : 0)
        {
            sf_buf_printf(&b, "%s%-32s %-20s %12s %10s %8s\n",
                          kind == 'c' ? "" : "\n",
                          kind == 'c' ? "CAMPAIGN" : kind == 'r'
                          ? "CAMPAIGN/CREATIVE" : "ADVERTISER",
                          kind == 'a' ? "" : "ADVERTISER", "IMPRESSIONS",
                          "CLICKS", "CTR");
            for (i = 0; i < t.n; i++) {
                ctl_ads_row  *r = &t.rows[i];

                if (r->kind != kind) {
                    continue;
                }
                adv = "";
                alen = 0;
                if (kind != 'a') {
                    slash = kind == 'r' ? memchr(r->key, '/', r->key_len)
                                        : NULL;
                    len = slash ? (size_t) (slash - r->key) : r->key_len;
                    adv = ctl_ads_advertiser(camps, r->key, len, &alen);
                }
                sf_buf_printf(&b, "%-32s %-20.*s %12" PRIu64 " %10" PRIu64
                              " %7.2f%%\n", r->key, (int) alen, adv,
                              r->c.impressions, r->c.clicks,
                              100 * ctl_ads_ctr(&r->c));
            }
        }
        sf_buf_printf(&b, "\ntotal: %" PRIu64 " impressions, %" PRIu64
                      " clicks, CTR %.2f%%\n", total.impressions,
                      total.clicks, 100 * ctl_ads_ctr(&total));
    }

    if (ctl_write(stdout, &b) != 0 || fflush(stdout) != 0) {
        ctl_err("error writing to standard output: %s", strerror(errno));
        rc = SF_ERR_IO;
    }

done:

    for (i = 0; i < t.n; i++) {
        free(t.rows[i].key);
    }
    free(t.rows);
    sf_buf_free(&b);
    sf_buf_free(&src);
    sf_arena_destroy(arena);
    return rc == SF_OK ? CTL_OK : CTL_ERROR;
}


/* ---- explain ------------------------------------------------------------- */

static int
ctl_ads_explain(const ctl_global *g, const ctl_ads_opts *o)
{
    int                rc, ret;
    char               tzbuf[16];
    size_t             i, n, len, state_len, nslots, nexp;
    int32_t            tz;
    int64_t            now, now_ms;
    uint64_t           seed;
    sf_db             *db;
    sf_buf             b;
    sf_error           err;
    sf_value           req, attrs;
    sf_arena          *arena;
    sf_member          m[CTL_ADS_ATTRS + 1];
    sf_profile         p;
    sf_derived         dv;
    sf_request         er;
    sf_ad_fill         asked[SF_PAGE_MAX_MODULES];
    const void        *blob, *state;
    const char        *s, *comma, *from;
    sf_snapshot       *snap;
    sf_assignment     *exps;
    sf_ad_decision     d;
    const sf_rules    *rules;
    sf_page_decision  *pd;

    if (o->user == NULL || o->page == NULL) {
        return ctl_ads_usage("explain needs --user and --page", NULL);
    }

    memset(&err, 0, sizeof(err));
    sf_buf_init(&b);
    db = NULL;
    arena = sf_arena_create(64 * 1024);
    exps = calloc(CTL_ADS_EXPS, sizeof(sf_assignment));
    pd = calloc(1, sizeof(sf_page_decision));
    snap = NULL;
    ret = CTL_ERROR;

    if (arena == NULL || exps == NULL || pd == NULL) {
        ctl_nomem();
        goto free;
    }

    if (ctl_open_snapshot(g, &db, &snap) != CTL_OK) {
        goto free;
    }

    now = o->now_set ? o->now : (int64_t) time(NULL);
    now_ms = now * 1000;

    /* the attributes targeting sees, as the module builds them */

    n = 0;
    m[n].name = "id";
    m[n].name_len = 2;
    m[n].value.type = SF_STRING;
    m[n].value.u.str.p = o->user;
    m[n].value.u.str.len = strlen(o->user);
    n++;
    for (i = 0; i < o->nattrs; i++) {
        m[n].name = o->attr_name[i];
        m[n].name_len = o->attr_name_len[i];
        m[n].value.type = SF_STRING;
        m[n].value.u.str.p = o->attr_value[i];
        m[n].value.u.str.len = strlen(o->attr_value[i]);
        n++;
    }
    req.type = SF_OBJECT;
    req.u.obj.members = m;
    req.u.obj.n = n;

    if (sf_snapshot_get_profile(snap, o->user, strlen(o->user), &p, &err)
           != SF_OK
        || sf_snapshot_rules(snap, &rules, &err) != SF_OK)
    {
        ctl_err("%s", err.msg);
        goto close;
    }
    sf_profile_derive(&p, rules, now, &dv);
    if (sf_profile_attributes(&p, &dv, &req, ctl_arena_alloc, arena,
                              &attrs) != SF_OK)
    {
        ctl_nomem();
        goto close;
    }
    tz = p.found && p.has_tz ? p.tz_offset_min : 0;

    /* the slots: given, or the ad modules of the page's layout */

    nslots = 0;
    from = "--slots";

    if (o->slots) {
        for (s = o->slots; *s && nslots < SF_PAGE_MAX_MODULES; s = comma) {
            comma = strchr(s, ',');
            len = comma ? (size_t) (comma - s) : strlen(s);
            memset(&asked[nslots], 0, sizeof(sf_ad_fill));
            asked[nslots].slot = s;
            asked[nslots].slot_len = len;
            nslots += len > 0;
            comma = comma ? comma + 1 : s + len;
        }

    } else {
        memset(&er, 0, sizeof(er));
        er.attributes = &attrs;
        er.now = now;
        nexp = 0;
        rc = sf_evaluate_all(snap, &er, exps, CTL_ADS_EXPS, &nexp, &err);
        if (rc != SF_OK && rc != SF_ERR_TOO_MANY) {
            ctl_err("%s", err.msg);
            goto close;
        }

        from = "no layouts";
        if (sf_snapshot_pages(snap, &blob, &len, &err) == SF_OK && blob) {
            rc = sf_page_decide(blob, len, o->page, strlen(o->page), &attrs,
                                exps, nexp, now, ctl_arena_alloc, arena, pd);
            if (rc == SF_OK) {
                from = "layout";
                for (i = 0; i < pd->nmodules; i++) {
                    if (pd->modules[i].ad_slot == NULL) {
                        continue;
                    }
                    memset(&asked[nslots], 0, sizeof(sf_ad_fill));
                    asked[nslots].slot = pd->modules[i].ad_slot;
                    asked[nslots].slot_len = pd->modules[i].ad_slot_len;
                    nslots++;
                }
            } else {
                from = "no layout for the page";
            }
        }
    }

    if (sf_snapshot_ads(snap, &blob, &len, &err) != SF_OK) {
        ctl_err("%s", err.msg);
        goto close;
    }
    if (sf_snapshot_ad_state(snap, o->user, strlen(o->user), &state,
                             &state_len, &err) != SF_OK)
    {
        ctl_err("%s", err.msg);
        goto close;
    }

    seed = o->seed_set ? o->seed
                       : sf_fnv1a32_utf16(o->user, strlen(o->user), NULL, 0);

    memset(&d, 0, sizeof(d));
    d.max_slots = (uint32_t) o->max_slots;
    if (blob) {
        sf_ads_decide(blob, len, o->page, strlen(o->page), asked, nslots,
                      (uint32_t) o->max_slots, &attrs, state, state_len,
                      now_ms, tz, seed, &d);
    }

    snprintf(tzbuf, sizeof(tzbuf), "%c%02d:%02d", tz < 0 ? '-' : '+',
             abs(tz) / 60, abs(tz) % 60);

    if (o->json) {
        sf_buf_appends(&b, "{\"user\":");
        sf_buf_append_json_string(&b, o->user, strlen(o->user));
        sf_buf_appends(&b, ",\"page\":");
        sf_buf_append_json_string(&b, o->page, strlen(o->page));
        sf_buf_appends(&b, ",\"time\":");
        sf_buf_append_time(&b, now);
        sf_buf_printf(&b, ",\"profile\":%s,\"tz\":\"%s\",\"campaigns\":%s,"
                      "\"slots\":[", p.found ? "true" : "false", tzbuf,
                      blob ? "true" : "false");
        for (i = 0; i < nslots; i++) {
            if (i) {
                sf_buf_appends(&b, ",");
            }
            sf_buf_append_json_string(&b, asked[i].slot, asked[i].slot_len);
        }
        sf_buf_printf(&b, "],\"max_slots\":%u,\"ads\":[", d.max_slots);
        for (i = 0; i < d.nfills; i++) {
            sf_ad_fill  *f = &d.fills[i];

            sf_buf_appends(&b, i ? ",{\"slot\":" : "{\"slot\":");
            sf_buf_append_json_string(&b, f->slot, f->slot_len);
            sf_buf_appends(&b, ",\"campaign\":");
            sf_buf_append_json_string(&b, f->campaign, f->campaign_len);
            sf_buf_appends(&b, ",\"creative\":");
            sf_buf_append_json_string(&b, f->creative, f->creative_len);
            sf_buf_appends(&b, ",\"advertiser\":");
            sf_buf_append_json_string(&b, f->advertiser, f->advertiser_len);
            sf_buf_appends(&b, ",\"format\":");
            sf_buf_append_json_string(&b, f->format, f->format_len);
            sf_buf_printf(&b, ",\"skippable\":%s,\"url\":",
                          f->skippable ? "true" : "false");
            sf_buf_append_json_string(&b, f->url, f->url_len);
            sf_buf_appends(&b, "}");
        }
        sf_buf_appends(&b, "],\"skipped\":{");
        for (i = 0; i < SF_AD_SKIP__COUNT; i++) {
            sf_buf_printf(&b, "%s\"%s\":%u", i ? "," : "",
                          sf_ad_skip_name((sf_ad_skip) i), d.skipped[i]);
        }
        sf_buf_appends(&b, "}}\n");

    } else {
        sf_buf_printf(&b, "user %s (%s, time zone %s), page %s at ", o->user,
                      p.found ? "profile" : "no profile", tzbuf, o->page);
        len = b.len;
        sf_buf_append_time(&b, now);
        if (b.len >= len + 2 && b.data[len] == '"') {
            /* the time without the quotes of JSON */
            memmove(b.data + len, b.data + len + 1, b.len - len - 2);
            b.len -= 2;
        }
        sf_buf_appends(&b, "\nslots asked (");
        sf_buf_appends(&b, from);
        sf_buf_appends(&b, "):");
        for (i = 0; i < nslots; i++) {
            sf_buf_printf(&b, " %.*s", (int) asked[i].slot_len,
                          asked[i].slot);
        }
        sf_buf_printf(&b, "%s; at most %u ads on this page\n",
                      nslots ? "" : " none", d.max_slots);
        if (blob == NULL) {
            sf_buf_appends(&b, "no campaigns in the database\n");
        }
        sf_buf_printf(&b, "\n%-12s %-24s %-16s %-16s %-10s %-9s %s\n", "SLOT",
                      "CAMPAIGN", "CREATIVE", "ADVERTISER", "FORMAT",
                      "SKIPPABLE", "URL");
        for (i = 0; i < d.nfills; i++) {
            sf_ad_fill  *f = &d.fills[i];

            sf_buf_printf(&b, "%-12.*s %-24.*s %-16.*s %-16.*s %-10.*s %-9s "
                          "%.*s\n", (int) f->slot_len, f->slot,
                          (int) f->campaign_len, f->campaign,
                          (int) f->creative_len, f->creative,
                          (int) f->advertiser_len, f->advertiser,
                          f->format_len ? (int) f->format_len : 1,
                          f->format_len ? f->format : "-",
                          f->skippable ? "yes" : "no", (int) f->url_len,
                          f->url);
        }
        if (d.nfills == 0) {
            sf_buf_appends(&b, "(no ads)\n");
        }
        sf_buf_appends(&b, "\ncampaigns skipped:");
        for (i = 0; i < SF_AD_SKIP__COUNT; i++) {
            sf_buf_printf(&b, " %s %u%s", sf_ad_skip_name((sf_ad_skip) i),
                          d.skipped[i], i + 1 < SF_AD_SKIP__COUNT ? "," : "");
        }
        sf_buf_appends(&b, "\n");
    }

    if (ctl_write(stdout, &b) != 0 || fflush(stdout) != 0) {
        ctl_err("error writing to standard output: %s", strerror(errno));
        goto close;
    }

    ret = CTL_OK;

close:

    ctl_close_snapshot(db, snap);

free:

    sf_buf_free(&b);
    if (arena) {
        sf_arena_destroy(arena);
    }
    free(exps);
    free(pd);
    return ret;
}


int
ctl_ads_is_explain(int argc, char **argv)
{
    int  i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ads") == 0) {
            return 1;
        }
    }
    return 0;
}


int
ctl_ads_command(const char *db, int argc, char **argv)
{
    int           rc, explain;
    ctl_global    g;
    ctl_ads_opts  o;

    if (argc < 1) {
        return ctl_ads_usage("missing a verb (report, explain)", NULL);
    }

    if (strcmp(argv[0], "report") == 0) {
        explain = 0;
    } else if (strcmp(argv[0], "explain") == 0) {
        explain = 1;
    } else {
        return ctl_ads_usage("unknown verb", argv[0]);
    }

    rc = ctl_ads_options(argc, argv, explain, &o);
    if (rc != CTL_OK) {
        return rc;
    }

    /* no pointer to --help, unlike ctl_need_db */
    if (db == NULL || db[0] == '\0') {
        ctl_err("ads: no database: give --db DIR or set STOREFRONT_DB");
        return CTL_USAGE;
    }

    /* the database's own map size: the global --map-size is not passed on */
    memset(&g, 0, sizeof(g));
    g.db_path = db;

    return explain ? ctl_ads_explain(&g, &o) : ctl_ads_report(&g, &o);
}
