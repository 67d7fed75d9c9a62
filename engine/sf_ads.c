/*
 * Ads: which campaigns fill a page's slots, within the page's slot limit,
 * every campaign's frequency caps, cool-down, flight and daypart, and
 * per-page exclusivity (a campaign once, an advertiser once unless the
 * campaign allows it).
 *
 * Campaign record (offsets from the start, read with memcpy):
 *   sf_ad_header, sf_ad_campaign[], sf_ad_creative[], sf_ad_page[], then
 *   compiled conditions and strings.
 * A user's state record: sf_ad_state_header, then per campaign seen an
 *   sf_ad_state_entry followed by its ring of impression times (ms).
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storefront.h"
#include "sf_internal.h"


#define SF_AD_MAGIC        0x31415853u     /* "SXA1" */
#define SF_AD_STATE_MAGIC  0x31535853u     /* "SXS1" */
#define SF_AD_MAX_ITEMS    4096

typedef struct {
    uint32_t  off;
    uint32_t  len;
} sf_ad_str;

typedef struct {
    uint32_t   magic;
    uint32_t   size;
    uint32_t   ncampaigns, ncreatives, npages, nindex, nrefs;
    uint32_t   campaigns, creatives, pages, index, refs;
    sf_ad_str  source;
} sf_ad_header;

/*
 * The campaigns a page may show, highest priority first; within a
 * priority, cumulative weights for a weighted draw by binary search.
 * Page "*" lists the campaigns that name no pages.
 */
typedef struct {
    sf_ad_str  page;
    uint32_t   first, n;
} sf_ad_index;

typedef struct {
    uint32_t  campaign;
    int32_t   priority;
    uint32_t  group_first;     /* index of the group's first ref */
    uint32_t  group_n;
    uint64_t  cum;             /* weights up to and including this one */
} sf_ad_ref;

typedef struct {
    uint32_t  max;
    uint32_t  pad;
    int64_t   window_ms;       /* 0: lifetime */
} sf_ad_cap;

typedef struct {
    sf_ad_str  id, advertiser, pages, slots, condition;
    int32_t    priority;
    uint32_t   weight;
    uint32_t   first_creative, ncreatives;
    uint32_t   hash;           /* of the id, keys the user's state */
    uint32_t   allow_same_advertiser;
    int64_t    start_ms, end_ms;     /* 0: open */
    uint32_t   days;           /* daypart: bit per weekday, 0 = all */
    uint32_t   hours;          /* daypart: bit per local hour, 0 = all */
    uint32_t   ncaps;
    uint32_t   pad;
    sf_ad_cap  caps[SF_ADS_MAX_CAPS];
    int64_t    cooldown_ms;
} sf_ad_campaign;

typedef struct {
    sf_ad_str  id, url, format;
    uint32_t   skippable;
    uint32_t   pad;
} sf_ad_creative;

typedef struct {
    sf_ad_str  name;
    uint32_t   max_slots;
    uint32_t   pad;
} sf_ad_page;

typedef struct {
    uint32_t  magic;
    uint32_t  n;
} sf_ad_state_header;

typedef struct {
    uint32_t  hash;
    uint32_t  lifetime;
    int64_t   last_ms;
    uint32_t  nring;
    uint32_t  pad;
} sf_ad_state_entry;


static const char  *sf_ad_skips[SF_AD_SKIP__COUNT] = {
    "page", "flight", "daypart", "targeting", "cap", "cooldown", "on_page"
};


const char *
sf_ad_skip_name(sf_ad_skip s)
{
    return (unsigned) s < SF_AD_SKIP__COUNT ? sf_ad_skips[s] : "unknown";
}


/* ---- compiling --------------------------------------------------------------- */

typedef struct {
    sf_buf     campaigns, creatives, pages, index, refs, pool;
    sf_error  *err;
} sf_ad_builder;


static sf_ad_str
sf_ad_string(sf_ad_builder *b, const char *s, size_t len)
{
    sf_ad_str  r;

    r.off = (uint32_t) b->pool.len;
    r.len = (uint32_t) len;
    sf_buf_append(&b->pool, s, len);
    return r;
}


static int
sf_ad_ident(const sf_value *v, size_t max)
{
    size_t  i;
    char    c;

    if (v == NULL || v->type != SF_STRING || v->u.str.len == 0
        || v->u.str.len > max)
    {
        return 0;
    }
    for (i = 0; i < v->u.str.len; i++) {
        c = v->u.str.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
        {
            return 0;
        }
    }
    return 1;
}


/* A list of names as "a,b,c" (empty: any). */
static int
sf_ad_names(sf_ad_builder *b, const sf_value *v, sf_ad_str *out)
{
    size_t  i;
    sf_buf  list;

    out->off = 0;
    out->len = 0;
    if (v == NULL) {
        return 1;
    }
    if (v->type != SF_ARRAY || v->u.arr.n == 0) {
        return 0;
    }

    sf_buf_init(&list);
    for (i = 0; i < v->u.arr.n; i++) {
        if (!sf_ad_ident(&v->u.arr.items[i], 64)) {
            sf_buf_free(&list);
            return 0;
        }
        if (i) {
            sf_buf_append(&list, ",", 1);
        }
        sf_buf_append(&list, v->u.arr.items[i].u.str.p,
                      v->u.arr.items[i].u.str.len);
    }
    *out = sf_ad_string(b, list.data, list.len);
    sf_buf_free(&list);
    return 1;
}


/* "3/1d", "10/2week", "20/lifetime"; units minute, hour, day, week,
 * month (30 days), lifetime. */
static int
sf_ad_parse_cap(const sf_value *v, sf_ad_cap *cap)
{
    size_t       i, len, ulen;
    int64_t      max, n, unit;
    const char  *s, *u;

    if (v->type != SF_STRING) {
        return 0;
    }
    s = v->u.str.p;
    len = v->u.str.len;

    max = 0;
    for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        max = max * 10 + (s[i] - '0');
        if (max > 1000000) {
            return 0;
        }
    }
    if (i == 0 || max == 0 || i == len || s[i] != '/') {
        return 0;
    }
    i++;

    n = 0;
    for ( /* void */ ; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        n = n * 10 + (s[i] - '0');
        if (n > 10000) {
            return 0;
        }
    }
    if (n == 0) {
        n = 1;
    }

    u = s + i;
    ulen = len - i;

#define SF_UNIT(a, b)  ((ulen == strlen(a) && !memcmp(u, a, ulen))            \
                        || (ulen == strlen(b) && !memcmp(u, b, ulen)))

    if (SF_UNIT("m", "minute")) {
        unit = 60;
    } else if (SF_UNIT("h", "hour")) {
        unit = 3600;
    } else if (SF_UNIT("d", "day")) {
        unit = 86400;
    } else if (SF_UNIT("w", "week")) {
        unit = 7 * 86400;
    } else if (SF_UNIT("mo", "month")) {
        unit = 30 * 86400;
    } else if (SF_UNIT("lifetime", "life")) {
        unit = 0;
    } else {
        return 0;
    }

#undef SF_UNIT

    if (unit && max > SF_ADS_MAX_RING) {
        return 0;           /* rolling windows keep every impression time */
    }

    cap->max = (uint32_t) max;
    cap->window_ms = n * unit * 1000;
    return 1;
}


static int
sf_ad_daypart(sf_ad_builder *b, const char *id, const sf_value *v,
    sf_ad_campaign *c)
{
    static const char  *days[] = { "sun", "mon", "tue", "wed", "thu", "fri",
                                   "sat" };
    size_t              i;
    int                 d, h, from, to;
    const sf_value     *m;

    if (v == NULL) {
        return SF_OK;
    }
    if (v->type != SF_OBJECT) {
        goto invalid;
    }

    m = sf_value_member(v, "days", 4);
    for (i = 0; m != NULL && i < (m->type == SF_ARRAY ? m->u.arr.n : 0); i++) {
        for (d = 0; d < 7; d++) {
            if (m->u.arr.items[i].type == SF_STRING
                && m->u.arr.items[i].u.str.len >= 3
                && strncasecmp(m->u.arr.items[i].u.str.p, days[d], 3) == 0)
            {
                c->days |= 1u << d;
                break;
            }
        }
        if (d == 7) {
            goto invalid;
        }
    }
    if (m != NULL && (m->type != SF_ARRAY || c->days == 0)) {
        goto invalid;
    }

    m = sf_value_member(v, "hours", 5);
    if (m != NULL) {
        if (m->type != SF_ARRAY || m->u.arr.n != 2
            || m->u.arr.items[0].type != SF_NUMBER
            || m->u.arr.items[1].type != SF_NUMBER)
        {
            goto invalid;
        }
        from = (int) m->u.arr.items[0].u.number;
        to = (int) m->u.arr.items[1].u.number;
        if (from < 0 || from > 23 || to < 0 || to > 24 || from == to) {
            goto invalid;
        }
        /* [from, to), wrapping midnight when to < from */
        for (h = from; h != to; h = (h + 1) % 24) {
            c->hours |= 1u << h;
            if (to == 24 && h == 23) {
                break;
            }
        }
    }

    return SF_OK;

invalid:

    return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                        "\"daypart\" must be {\"days\": [\"mon\", ...], "
                        "\"hours\": [from, to]} with hours 0..24", id);
}


static int
sf_ad_campaign_compile(sf_ad_builder *b, const sf_value *v, size_t index)
{
    char             id[80];
    size_t           i, j;
    sf_buf           cond;
    int64_t          t;
    sf_ad_campaign   c;
    sf_ad_creative   cr;
    const sf_value  *m, *x;

    memset(&c, 0, sizeof(c));

    m = sf_value_member(v, "id", 2);
    if (v->type != SF_OBJECT || !sf_ad_ident(m, 64)) {
        return sf_error_set(b->err, SF_ERR_INVALID, "campaigns[%zu]: \"id\" "
                            "must be 1 to 64 letters, digits, - _ .", index);
    }
    snprintf(id, sizeof(id), "%.*s", (int) m->u.str.len, m->u.str.p);
    c.id = sf_ad_string(b, m->u.str.p, m->u.str.len);
    c.hash = sf_fnv1a32_utf16(m->u.str.p, m->u.str.len, NULL, 0);

    m = sf_value_member(v, "advertiser", 10);
    if (!sf_ad_ident(m, 64)) {
        return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                            "\"advertiser\" must be a name", id);
    }
    c.advertiser = sf_ad_string(b, m->u.str.p, m->u.str.len);

    m = sf_value_member(v, "priority", 8);
    if (m != NULL && (m->type != SF_NUMBER || fabs(m->u.number) > 1e6)) {
        return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                            "\"priority\" must be a number", id);
    }
    c.priority = m ? (int32_t) m->u.number : 0;

    m = sf_value_member(v, "weight", 6);
    if (m != NULL && (m->type != SF_NUMBER || m->u.number < 1
                      || m->u.number > 1e6))
    {
        return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                            "\"weight\" must be a number >= 1", id);
    }
    c.weight = m ? (uint32_t) m->u.number : 1;

    if (!sf_ad_names(b, sf_value_member(v, "pages", 5), &c.pages)
        || !sf_ad_names(b, sf_value_member(v, "slots", 5), &c.slots))
    {
        return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                            "\"pages\" and \"slots\" must be non-empty lists "
                            "of names", id);
    }

    m = sf_value_member(v, "condition", 9);
    if (m != NULL) {
        sf_buf_init(&cond);
        if (sf_condition_compile(m, &cond, b->err) != SF_OK) {
            char  msg[sizeof(b->err->msg)];

            memcpy(msg, b->err->msg, sizeof(msg));
            sf_buf_free(&cond);
            return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                                "condition: %.300s", id, msg);
        }
        c.condition = sf_ad_string(b, cond.data, cond.len);
        sf_buf_free(&cond);
    }

    m = sf_value_member(v, "start", 5);
    if (m != NULL) {
        if (sf_parse_time(m, &t) != SF_OK) {
            return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                                "\"start\" must be a time", id);
        }
        c.start_ms = t * 1000;
    }
    m = sf_value_member(v, "end", 3);
    if (m != NULL) {
        if (sf_parse_time(m, &t) != SF_OK || t * 1000 <= c.start_ms) {
            return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                                "\"end\" must be a time after \"start\"", id);
        }
        c.end_ms = t * 1000;
    }

    if (sf_ad_daypart(b, id, sf_value_member(v, "daypart", 7), &c)) {
        return SF_ERR_INVALID;
    }

    m = sf_value_member(v, "caps", 4);
    if (m != NULL) {
        if (m->type != SF_ARRAY || m->u.arr.n > SF_ADS_MAX_CAPS) {
            return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                                "\"caps\" must be at most %d caps", id,
                                SF_ADS_MAX_CAPS);
        }
        for (i = 0; i < m->u.arr.n; i++) {
            if (!sf_ad_parse_cap(&m->u.arr.items[i], &c.caps[i])) {
                return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                                    "invalid cap (use \"3/1d\": max per N "
                                    "minute, hour, day, week, month or "
                                    "\"20/lifetime\"; rolling caps up to "
                                    "%d)", id, SF_ADS_MAX_RING);
            }
        }
        c.ncaps = (uint32_t) m->u.arr.n;
    }

    m = sf_value_member(v, "cooldown", 8);
    if (m != NULL) {
        sf_ad_cap  cd;
        char       text[40];
        sf_value   tv;

        /* "10m" reads as a cap of 1 per 10 minutes */
        if (m->type != SF_STRING || m->u.str.len > 30) {
            return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                                "\"cooldown\" must be like \"10m\"", id);
        }
        snprintf(text, sizeof(text), "1/%.*s", (int) m->u.str.len,
                 m->u.str.p);
        tv.type = SF_STRING;
        tv.u.str.p = text;
        tv.u.str.len = strlen(text);
        if (!sf_ad_parse_cap(&tv, &cd) || cd.window_ms == 0) {
            return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                                "\"cooldown\" must be like \"10m\", \"1h\"",
                                id);
        }
        c.cooldown_ms = cd.window_ms;
    }

    m = sf_value_member(v, "allow_same_advertiser", 21);
    if (m != NULL && m->type != SF_BOOL) {
        return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                            "\"allow_same_advertiser\" must be true or false",
                            id);
    }
    c.allow_same_advertiser = m ? (uint32_t) m->u.boolean : 0;

    m = sf_value_member(v, "creatives", 9);
    if (m == NULL || m->type != SF_ARRAY || m->u.arr.n == 0
        || m->u.arr.n > 64)
    {
        return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                            "\"creatives\" must be 1 to 64 creatives", id);
    }
    c.first_creative = (uint32_t) (b->creatives.len / sizeof(cr));
    c.ncreatives = (uint32_t) m->u.arr.n;

    for (i = 0; i < m->u.arr.n; i++) {
        memset(&cr, 0, sizeof(cr));
        x = sf_value_member(&m->u.arr.items[i], "id", 2);
        if (!sf_ad_ident(x, 64)) {
            return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                                "creative %zu needs an \"id\"", id, i);
        }
        cr.id = sf_ad_string(b, x->u.str.p, x->u.str.len);

        x = sf_value_member(&m->u.arr.items[i], "url", 3);
        if (x == NULL || x->type != SF_STRING || x->u.str.len > 2048
            || !(( x->u.str.len > 8 && !memcmp(x->u.str.p, "https://", 8))
                 || (x->u.str.len > 7 && !memcmp(x->u.str.p, "http://", 7))
                 || (x->u.str.len > 1 && x->u.str.p[0] == '/'
                     && x->u.str.p[1] != '/')))
        {
            return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                                "creative %zu: \"url\" must be an http(s) URL "
                                "or a local path", id, i);
        }
        for (j = 0; j < x->u.str.len; j++) {
            unsigned char  ch = (unsigned char) x->u.str.p[j];

            if (ch <= 0x20 || ch == 0x7f || ch == '"' || ch == '<'
                || ch == '>')
            {
                return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                                    "creative %zu: \"url\" holds a space, "
                                    "quote or control character", id, i);
            }
        }
        cr.url = sf_ad_string(b, x->u.str.p, x->u.str.len);

        x = sf_value_member(&m->u.arr.items[i], "format", 6);
        if (x != NULL && !sf_ad_ident(x, 32)) {
            return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                                "creative %zu: \"format\" must be a name", id,
                                i);
        }
        if (x != NULL) {
            cr.format = sf_ad_string(b, x->u.str.p, x->u.str.len);
        }

        x = sf_value_member(&m->u.arr.items[i], "skippable", 9);
        if (x != NULL && x->type != SF_BOOL) {
            return sf_error_set(b->err, SF_ERR_INVALID, "campaign \"%s\": "
                                "creative %zu: \"skippable\" must be true or "
                                "false", id, i);
        }
        cr.skippable = x ? (uint32_t) x->u.boolean : 1;

        sf_buf_append(&b->creatives, &cr, sizeof(cr));
    }

    return sf_buf_append(&b->campaigns, &c, sizeof(c));
}




static int sf_ad_listed(const char *list, size_t len, const char *name,
    size_t nlen);

static sf_ad_builder  *sf_ad_sorting;


static int
sf_ad_by_priority(const void *a, const void *b)
{
    const sf_ad_campaign  *c = (const sf_ad_campaign *) sf_ad_sorting
                               ->campaigns.data;
    uint32_t               x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    if (c[x].priority != c[y].priority) {
        return c[x].priority > c[y].priority ? -1 : 1;
    }
    return x < y ? -1 : (x > y);
}


/* One index entry: the campaigns for page (NULL: those naming none). */
static int
sf_ad_index_page(sf_ad_builder *b, const char *page, size_t len)
{
    size_t           i, n, g;
    uint32_t        *ids;
    uint64_t         cum;
    sf_ad_ref        ref;
    sf_ad_index      ix;
    sf_ad_campaign  *c;
    size_t           nc;

    c = (sf_ad_campaign *) b->campaigns.data;
    nc = b->campaigns.len / sizeof(sf_ad_campaign);

    ids = malloc((nc ? nc : 1) * sizeof(uint32_t));
    if (ids == NULL) {
        return sf_error_set(b->err, SF_ERR_NOMEM, "out of memory");
    }

    n = 0;
    for (i = 0; i < nc; i++) {
        if (c[i].pages.len == 0
            || (page && sf_ad_listed(b->pool.data + c[i].pages.off,
                                     c[i].pages.len, page, len)))
        {
            ids[n++] = (uint32_t) i;
        }
    }

    sf_ad_sorting = b;
    qsort(ids, n, sizeof(uint32_t), sf_ad_by_priority);

    ix.page = sf_ad_string(b, page ? page : "*", page ? len : 1);
    ix.first = (uint32_t) (b->refs.len / sizeof(sf_ad_ref));
    ix.n = (uint32_t) n;

    for (i = 0; i < n; i = g) {
        cum = 0;
        for (g = i; g < n && c[ids[g]].priority == c[ids[i]].priority; g++) {
            /* the group's extent */
        }
        for (size_t k = i; k < g; k++) {
            cum += c[ids[k]].weight;
            ref.campaign = ids[k];
            ref.priority = c[ids[k]].priority;
            ref.group_first = ix.first + (uint32_t) i;
            ref.group_n = (uint32_t) (g - i);
            ref.cum = cum;
            sf_buf_append(&b->refs, &ref, sizeof(ref));
        }
    }

    free(ids);
    return sf_buf_append(&b->index, &ix, sizeof(ix));
}


static int
sf_ad_build_index(sf_ad_builder *b)
{
    int           seen;
    char          name[65];
    size_t        i, j, nc, off, end, cut, nlen;
    sf_ad_index  *ix;

    nc = b->campaigns.len / sizeof(sf_ad_campaign);

    /* one entry per page named by any campaign, by offsets: the pool
     * grows while the index is built */
    for (i = 0; i < nc; i++) {
        off = ((sf_ad_campaign *) b->campaigns.data)[i].pages.off;
        end = off + ((sf_ad_campaign *) b->campaigns.data)[i].pages.len;

        while (off < end) {
            for (cut = off; cut < end && b->pool.data[cut] != ','; cut++) {
                /* the name's end */
            }
            nlen = cut - off;
            memcpy(name, b->pool.data + off, nlen);
            name[nlen] = '\0';

            seen = 0;
            for (j = 0; j < b->index.len / sizeof(sf_ad_index); j++) {
                ix = (sf_ad_index *) b->index.data + j;
                if (ix->page.len == nlen
                    && memcmp(b->pool.data + ix->page.off, name, nlen) == 0)
                {
                    seen = 1;
                    break;
                }
            }

            if (!seen && sf_ad_index_page(b, name, nlen) != SF_OK) {
                return SF_ERR_NOMEM;
            }
            off = cut + 1;
        }
    }

    return sf_ad_index_page(b, NULL, 0);
}


#define sf_ad_ptr(blob, s)  ((const char *) (blob) + (s).off)

#define sf_ad_get(blob, h, table, type, i, out)                              \
    memcpy(out, (const char *) (blob) + (h)->table + (i) * sizeof(type),     \
           sizeof(type))


int
sf_ads_compile(const sf_value *doc, sf_buf *out, sf_error *err)
{
    int            rc;
    size_t         i, j;
    sf_buf         src;
    uint32_t       base;
    sf_ad_page     page;
    sf_ad_header   h;
    sf_ad_builder  b;
    const sf_value *camps, *pages, *m;

    memset(&b, 0, sizeof(b));
    b.err = err;
    sf_buf_init(&src);

    camps = sf_value_member(doc, "campaigns", 9);
    pages = sf_value_member(doc, "ad_pages", 8);

    rc = SF_OK;
    if (camps != NULL && (camps->type != SF_ARRAY
                          || camps->u.arr.n > SF_AD_MAX_ITEMS))
    {
        rc = sf_error_set(err, SF_ERR_INVALID, "\"campaigns\" must be an "
                          "array");
    }

    for (i = 0; rc == SF_OK && camps && i < camps->u.arr.n; i++) {
        rc = sf_ad_campaign_compile(&b, &camps->u.arr.items[i], i);
    }

    /* ids are unique */
    for (i = 0; rc == SF_OK && camps && i < camps->u.arr.n; i++) {
        for (j = 0; j < i; j++) {
            const sf_value  *a = sf_value_member(&camps->u.arr.items[i],
                                                 "id", 2);
            const sf_value  *c = sf_value_member(&camps->u.arr.items[j],
                                                 "id", 2);

            if (a->u.str.len == c->u.str.len
                && memcmp(a->u.str.p, c->u.str.p, a->u.str.len) == 0)
            {
                rc = sf_error_set(err, SF_ERR_INVALID, "campaign \"%.*s\" "
                                  "appears twice", (int) a->u.str.len,
                                  a->u.str.p);
            }
        }
    }

    if (rc == SF_OK && pages != NULL && pages->type != SF_OBJECT) {
        rc = sf_error_set(err, SF_ERR_INVALID, "\"ad_pages\" must be an "
                          "object of page types");
    }
    for (i = 0; rc == SF_OK && pages && i < pages->u.obj.n; i++) {
        m = sf_value_member(&pages->u.obj.members[i].value, "max_slots", 9);
        if (m == NULL || m->type != SF_NUMBER || m->u.number < 0
            || m->u.number > SF_ADS_MAX_SLOTS
            || m->u.number != floor(m->u.number))
        {
            rc = sf_error_set(err, SF_ERR_INVALID, "ad page \"%.*s\": "
                              "\"max_slots\" must be 0 to %d",
                              (int) pages->u.obj.members[i].name_len,
                              pages->u.obj.members[i].name, SF_ADS_MAX_SLOTS);
            break;
        }
        page.name = sf_ad_string(&b, pages->u.obj.members[i].name,
                                 pages->u.obj.members[i].name_len);
        page.max_slots = (uint32_t) m->u.number;
        page.pad = 0;
        sf_buf_append(&b.pages, &page, sizeof(page));
    }

    if (rc == SF_OK) {
        rc = sf_ad_build_index(&b);
    }

    if (rc == SF_OK) {
        sf_json_write(&src, doc);

        memset(&h, 0, sizeof(h));
        h.magic = SF_AD_MAGIC;
        h.ncampaigns = (uint32_t) (b.campaigns.len / sizeof(sf_ad_campaign));
        h.ncreatives = (uint32_t) (b.creatives.len / sizeof(sf_ad_creative));
        h.npages = (uint32_t) (b.pages.len / sizeof(sf_ad_page));
        h.nindex = (uint32_t) (b.index.len / sizeof(sf_ad_index));
        h.nrefs = (uint32_t) (b.refs.len / sizeof(sf_ad_ref));
        h.campaigns = sizeof(h);
        h.creatives = h.campaigns + (uint32_t) b.campaigns.len;
        h.pages = h.creatives + (uint32_t) b.creatives.len;
        h.index = h.pages + (uint32_t) b.pages.len;
        h.refs = h.index + (uint32_t) b.index.len;
        base = h.refs + (uint32_t) b.refs.len;

        h.source = sf_ad_string(&b, src.data, src.len);
        h.source.off += base;
        h.size = base + (uint32_t) b.pool.len;

        for (i = 0; i < h.ncampaigns; i++) {
            sf_ad_campaign  *c = (sf_ad_campaign *) b.campaigns.data + i;

            c->id.off += base;
            c->advertiser.off += base;
            c->pages.off += base;
            c->slots.off += base;
            c->condition.off += base;
        }
        for (i = 0; i < h.ncreatives; i++) {
            sf_ad_creative  *c = (sf_ad_creative *) b.creatives.data + i;

            c->id.off += base;
            c->url.off += base;
            c->format.off += base;
        }
        for (i = 0; i < h.npages; i++) {
            ((sf_ad_page *) b.pages.data)[i].name.off += base;
        }
        for (i = 0; i < h.nindex; i++) {
            ((sf_ad_index *) b.index.data)[i].page.off += base;
        }

        out->len = 0;
        if (sf_buf_append(out, &h, sizeof(h)) != SF_OK
            || sf_buf_append(out, b.campaigns.data, b.campaigns.len) != SF_OK
            || sf_buf_append(out, b.creatives.data, b.creatives.len) != SF_OK
            || sf_buf_append(out, b.pages.data, b.pages.len) != SF_OK
            || sf_buf_append(out, b.index.data, b.index.len) != SF_OK
            || sf_buf_append(out, b.refs.data, b.refs.len) != SF_OK
            || sf_buf_append(out, b.pool.data, b.pool.len) != SF_OK)
        {
            rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
        }
    }

    sf_buf_free(&src);
    sf_buf_free(&b.campaigns);
    sf_buf_free(&b.creatives);
    sf_buf_free(&b.pages);
    sf_buf_free(&b.index);
    sf_buf_free(&b.refs);
    sf_buf_free(&b.pool);
    return rc;
}


static int
sf_ad_header_read(const void *blob, size_t len, sf_ad_header *h)
{
    if (blob == NULL || len < sizeof(*h)) {
        return SF_ERR_INVALID;
    }
    memcpy(h, blob, sizeof(*h));
    return (h->magic == SF_AD_MAGIC && h->size == len) ? SF_OK
                                                        : SF_ERR_INVALID;
}


int
sf_ads_to_json(const void *blob, size_t len, sf_buf *out)
{
    sf_ad_header  h;

    if (sf_ad_header_read(blob, len, &h) != SF_OK) {
        return SF_ERR_INVALID;
    }
    return sf_buf_append(out, sf_ad_ptr(blob, h.source), h.source.len);
}


/* ---- user state ------------------------------------------------------------------ */

typedef struct {
    sf_ad_state_entry  e;
    const char        *ring;      /* e.nring int64 times, unaligned */
} sf_ad_state_view;


static int
sf_ad_state_find(const void *state, size_t len, uint32_t hash,
    sf_ad_state_view *v)
{
    size_t              off;
    uint32_t            i;
    sf_ad_state_header  sh;

    if (state == NULL || len < sizeof(sh)) {
        return 0;
    }
    memcpy(&sh, state, sizeof(sh));
    if (sh.magic != SF_AD_STATE_MAGIC) {
        return 0;
    }

    off = sizeof(sh);
    for (i = 0; i < sh.n && off + sizeof(v->e) <= len; i++) {
        memcpy(&v->e, (const char *) state + off, sizeof(v->e));
        off += sizeof(v->e);
        if (off + v->e.nring * sizeof(int64_t) > len) {
            return 0;
        }
        v->ring = (const char *) state + off;
        off += v->e.nring * sizeof(int64_t);
        if (v->e.hash == hash) {
            return 1;
        }
    }
    return 0;
}


/* Whether a cap or the cool-down holds the campaign back for this user. */
static int
sf_ad_capped(const sf_ad_campaign *c, const void *state, size_t len,
    int64_t now, sf_ad_skip *why)
{
    size_t            k, in;
    int64_t           t;
    uint32_t          i;
    sf_ad_state_view  v;

    if (!sf_ad_state_find(state, len, c->hash, &v)) {
        return 0;
    }

    if (c->cooldown_ms && now < v.e.last_ms + c->cooldown_ms) {
        *why = SF_AD_SKIP_COOLDOWN;
        return 1;
    }

    for (i = 0; i < c->ncaps; i++) {
        if (c->caps[i].window_ms == 0) {
            if (v.e.lifetime >= c->caps[i].max) {
                *why = SF_AD_SKIP_CAP;
                return 1;
            }
            continue;
        }

        in = 0;
        for (k = 0; k < v.e.nring; k++) {
            memcpy(&t, v.ring + k * sizeof(t), sizeof(t));
            in += (t > now - c->caps[i].window_ms);
        }
        if (in >= c->caps[i].max) {
            *why = SF_AD_SKIP_CAP;
            return 1;
        }
    }

    return 0;
}


/* ---- deciding ---------------------------------------------------------------------- */

static int
sf_ad_listed(const char *list, size_t len, const char *name, size_t nlen)
{
    const char  *p, *end, *comma;

    if (len == 0) {
        return 1;               /* no list: any */
    }
    p = list;
    end = list + len;
    while (p < end) {
        comma = memchr(p, ',', (size_t) (end - p));
        if (comma == NULL) {
            comma = end;
        }
        if ((size_t) (comma - p) == nlen && memcmp(p, name, nlen) == 0) {
            return 1;
        }
        p = comma + 1;
    }
    return 0;
}


static uint64_t
sf_ad_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}


/* Eligibility of a campaign for the page, cached per request. */
enum {
    SF_AD_UNKNOWN = 0,
    SF_AD_YES,
    SF_AD_NO
};

typedef struct {
    const void        *blob;
    const sf_ad_header *h;
    const sf_value    *attributes;
    const void        *state;
    size_t             state_len;
    int64_t            now_ms;
    uint32_t           weekday;
    uint32_t           hour;
    uint8_t            known[SF_AD_MAX_ITEMS];
    sf_ad_decision    *d;
} sf_ad_ctx;


static int
sf_ad_eligible(sf_ad_ctx *x, uint32_t i, sf_ad_campaign *c)
{
    sf_ad_skip  why;

    sf_ad_get(x->blob, x->h, campaigns, sf_ad_campaign, i, c);

    if (x->known[i] != SF_AD_UNKNOWN) {
        return x->known[i] == SF_AD_YES;
    }

    x->known[i] = SF_AD_NO;

    if ((c->start_ms && x->now_ms < c->start_ms)
        || (c->end_ms && x->now_ms >= c->end_ms))
    {
        x->d->skipped[SF_AD_SKIP_FLIGHT]++;
    } else if ((c->days && !(c->days & (1u << x->weekday)))
               || (c->hours && !(c->hours & (1u << x->hour))))
    {
        x->d->skipped[SF_AD_SKIP_DAYPART]++;
    } else if (c->condition.len
               && !sf_condition_evaluate(sf_ad_ptr(x->blob, c->condition),
                                         c->condition.len, x->attributes,
                                         NULL))
    {
        x->d->skipped[SF_AD_SKIP_TARGETING]++;
    } else if (sf_ad_capped(c, x->state, x->state_len, x->now_ms, &why)) {
        x->d->skipped[why]++;
    } else {
        x->known[i] = SF_AD_YES;
    }

    return x->known[i] == SF_AD_YES;
}


/* Fit for this slot of this page: slot type and page exclusivity. */
static int
sf_ad_fits(sf_ad_ctx *x, uint32_t i, const sf_ad_campaign *c,
    const sf_ad_fill *slot)
{
    size_t  k;

    if (!sf_ad_listed(sf_ad_ptr(x->blob, c->slots), c->slots.len, slot->slot,
                      slot->slot_len))
    {
        return 0;
    }

    for (k = 0; k < x->d->nfills; k++) {
        if (x->d->fills[k].campaign_index == i) {
            return 0;
        }
        if (!c->allow_same_advertiser
            && x->d->fills[k].advertiser_len == c->advertiser.len
            && memcmp(x->d->fills[k].advertiser,
                      sf_ad_ptr(x->blob, c->advertiser), c->advertiser.len)
               == 0)
        {
            return 0;
        }
    }
    return 1;
}


/*
 * A weighted draw within a priority group: draws by binary search over
 * the cumulative weights and checks the campaign drawn; after a few
 * misses, a scan of the group draws among the fit ones only.  Either way
 * each fit campaign is chosen with probability proportional to its weight.
 */
static long
sf_ad_draw(sf_ad_ctx *x, uint32_t first, uint32_t n, const sf_ad_fill *slot,
    uint64_t seed)
{
    int             tries;
    uint32_t        lo, hi, mid, k;
    uint64_t        total, r, acc, fit_total;
    sf_ad_ref       ref;
    sf_ad_campaign  c;

    sf_ad_get(x->blob, x->h, refs, sf_ad_ref, first + n - 1, &ref);
    total = ref.cum;

    for (tries = 0; tries < 8; tries++) {
        seed = sf_ad_mix(seed + 0x9e3779b97f4a7c15ULL);
        r = seed % total;

        lo = 0;
        hi = n - 1;
        while (lo < hi) {
            mid = (lo + hi) / 2;
            sf_ad_get(x->blob, x->h, refs, sf_ad_ref, first + mid, &ref);
            if (ref.cum > r) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }

        sf_ad_get(x->blob, x->h, refs, sf_ad_ref, first + lo, &ref);
        if (sf_ad_eligible(x, ref.campaign, &c)
            && sf_ad_fits(x, ref.campaign, &c, slot))
        {
            return (long) ref.campaign;
        }
    }

    /* many misses: scan the group */
    fit_total = 0;
    for (k = 0; k < n; k++) {
        sf_ad_get(x->blob, x->h, refs, sf_ad_ref, first + k, &ref);
        if (sf_ad_eligible(x, ref.campaign, &c)
            && sf_ad_fits(x, ref.campaign, &c, slot))
        {
            fit_total += c.weight;
        }
    }
    if (fit_total == 0) {
        return -1;
    }

    r = sf_ad_mix(seed + 1) % fit_total;
    acc = 0;
    for (k = 0; k < n; k++) {
        sf_ad_get(x->blob, x->h, refs, sf_ad_ref, first + k, &ref);
        if (sf_ad_eligible(x, ref.campaign, &c)
            && sf_ad_fits(x, ref.campaign, &c, slot))
        {
            acc += c.weight;
            if (r < acc) {
                return (long) ref.campaign;
            }
        }
    }
    return -1;
}


int
sf_ads_decide(const void *blob, size_t len, const char *page,
    size_t page_len, const sf_ad_fill *asked, size_t nslots,
    uint32_t default_max_slots, const sf_value *attributes,
    const void *state, size_t state_len, int64_t now_ms, int32_t tz_min,
    uint64_t seed, sf_ad_decision *d)
{
    long            chosen;
    size_t          s;
    int64_t         local;
    uint32_t        i, pos;
    sf_ad_ctx      *x;
    sf_ad_ref       ref;
    sf_ad_page      pg;
    sf_ad_index     ix, wild;
    sf_ad_header    h;
    sf_ad_campaign  c;
    sf_ad_creative  cr;
    sf_ad_fill     *f;

    memset(d, 0, sizeof(*d));
    d->max_slots = default_max_slots;

    if (sf_ad_header_read(blob, len, &h) != SF_OK) {
        return SF_ERR_NOT_FOUND;
    }

    /* the data may lower the page's limit, never raise it */
    for (i = 0; i < h.npages; i++) {
        sf_ad_get(blob, &h, pages, sf_ad_page, i, &pg);
        if (pg.name.len == page_len
            && memcmp(sf_ad_ptr(blob, pg.name), page, page_len) == 0
            && pg.max_slots < d->max_slots)
        {
            d->max_slots = pg.max_slots;
        }
    }
    if (d->max_slots > SF_ADS_MAX_SLOTS) {
        d->max_slots = SF_ADS_MAX_SLOTS;
    }
    if (d->max_slots == 0 || nslots == 0 || h.nindex == 0) {
        return SF_OK;
    }

    /* the page's campaigns; the last entry ("*") serves other pages */
    sf_ad_get(blob, &h, index, sf_ad_index, h.nindex - 1, &wild);
    ix = wild;
    for (i = 0; i + 1 < h.nindex; i++) {
        sf_ad_get(blob, &h, index, sf_ad_index, i, &ix);
        if (ix.page.len == page_len
            && memcmp(sf_ad_ptr(blob, ix.page), page, page_len) == 0)
        {
            break;
        }
    }
    if (i + 1 >= h.nindex) {
        ix = wild;
    }
    d->skipped[SF_AD_SKIP_PAGE] = h.ncampaigns - ix.n;

    x = malloc(sizeof(sf_ad_ctx));
    if (x == NULL) {
        return SF_ERR_NOMEM;
    }
    x->blob = blob;
    x->h = &h;
    x->attributes = attributes;
    x->state = state;
    x->state_len = state_len;
    x->now_ms = now_ms;
    x->d = d;
    memset(x->known, SF_AD_UNKNOWN, h.ncampaigns);

    local = now_ms / 1000 + (int64_t) tz_min * 60;
    x->weekday = (uint32_t) ((((local / 86400) + 4) % 7 + 7) % 7);
    x->hour = (uint32_t) ((local % 86400 + 86400) % 86400 / 3600);

    for (s = 0; s < nslots && d->nfills < d->max_slots; s++) {
        chosen = -1;

        /* priority groups, highest first: the first with a fit wins */
        for (pos = 0; pos < ix.n && chosen < 0; pos += ref.group_n) {
            sf_ad_get(blob, &h, refs, sf_ad_ref, ix.first + pos, &ref);
            chosen = sf_ad_draw(x, ix.first + pos, ref.group_n, &asked[s],
                                seed + s);
        }

        if (chosen < 0) {
            continue;           /* nothing fits this slot */
        }

        sf_ad_get(blob, &h, campaigns, sf_ad_campaign, (uint32_t) chosen, &c);
        sf_ad_get(blob, &h, creatives, sf_ad_creative,
                  c.first_creative
                  + (uint32_t) (sf_ad_mix(seed ^ c.hash) % c.ncreatives), &cr);

        f = &d->fills[d->nfills++];
        f->slot = asked[s].slot;
        f->slot_len = asked[s].slot_len;
        f->campaign = sf_ad_ptr(blob, c.id);
        f->campaign_len = c.id.len;
        f->advertiser = sf_ad_ptr(blob, c.advertiser);
        f->advertiser_len = c.advertiser.len;
        f->creative = sf_ad_ptr(blob, cr.id);
        f->creative_len = cr.id.len;
        f->url = sf_ad_ptr(blob, cr.url);
        f->url_len = cr.url.len;
        f->format = sf_ad_ptr(blob, cr.format);
        f->format_len = cr.format.len;
        f->skippable = (int) cr.skippable;
        f->campaign_index = (uint32_t) chosen;
    }

    free(x);
    return SF_OK;
}


int
sf_ads_find_creative(const void *blob, size_t len, const char *campaign,
    size_t campaign_len, const char *creative, size_t creative_len,
    sf_ad_fill *out)
{
    uint32_t        i, j;
    sf_ad_header    h;
    sf_ad_campaign  c;
    sf_ad_creative  cr;

    if (sf_ad_header_read(blob, len, &h) != SF_OK) {
        return SF_ERR_NOT_FOUND;
    }

    for (i = 0; i < h.ncampaigns; i++) {
        sf_ad_get(blob, &h, campaigns, sf_ad_campaign, i, &c);
        if (c.id.len != campaign_len
            || memcmp(sf_ad_ptr(blob, c.id), campaign, campaign_len) != 0)
        {
            continue;
        }
        for (j = 0; j < c.ncreatives; j++) {
            sf_ad_get(blob, &h, creatives, sf_ad_creative,
                      c.first_creative + j, &cr);
            if (cr.id.len == creative_len
                && memcmp(sf_ad_ptr(blob, cr.id), creative, creative_len)
                   == 0)
            {
                memset(out, 0, sizeof(*out));
                out->campaign = sf_ad_ptr(blob, c.id);
                out->campaign_len = c.id.len;
                out->advertiser = sf_ad_ptr(blob, c.advertiser);
                out->advertiser_len = c.advertiser.len;
                out->creative = sf_ad_ptr(blob, cr.id);
                out->creative_len = cr.id.len;
                out->url = sf_ad_ptr(blob, cr.url);
                out->url_len = cr.url.len;
                out->format = sf_ad_ptr(blob, cr.format);
                out->format_len = cr.format.len;
                out->skippable = (int) cr.skippable;
                out->campaign_index = i;
                return SF_OK;
            }
        }
    }

    return SF_ERR_NOT_FOUND;
}


/*
 * The new state: for every campaign still running, the impressions its
 * caps still need to see, plus this page's impressions.
 */
int
sf_ads_state_record(const void *blob, size_t len, const void *state,
    size_t state_len, const sf_ad_decision *d, int64_t now_ms, sf_buf *out)
{
    size_t              k, keep_n, nring;
    int64_t             horizon, ring[SF_ADS_MAX_RING + 1];
    uint32_t            i, j, shown;
    sf_ad_header        h;
    sf_ad_campaign      c;
    sf_ad_state_view    v;
    sf_ad_state_entry   e;
    sf_ad_state_header  sh;

    if (sf_ad_header_read(blob, len, &h) != SF_OK) {
        return SF_ERR_INVALID;
    }

    out->len = 0;
    sh.magic = SF_AD_STATE_MAGIC;
    sh.n = 0;
    sf_buf_append(out, &sh, sizeof(sh));

    for (i = 0; i < h.ncampaigns; i++) {
        sf_ad_get(blob, &h, campaigns, sf_ad_campaign, i, &c);

        shown = 0;
        for (k = 0; d && k < d->nfills; k++) {
            shown += (d->fills[k].campaign_index == i);
        }

        memset(&e, 0, sizeof(e));
        nring = 0;
        if (sf_ad_state_find(state, state_len, c.hash, &v)) {
            e = v.e;
            for (k = 0; k < v.e.nring && nring < SF_ADS_MAX_RING; k++) {
                memcpy(&ring[nring++], v.ring + k * sizeof(int64_t),
                       sizeof(int64_t));
            }
        } else if (!shown) {
            continue;
        }
        e.hash = c.hash;

        if (shown) {
            e.lifetime += shown;
            e.last_ms = now_ms;
            for (j = 0; j < shown && nring <= SF_ADS_MAX_RING; j++) {
                ring[nring++] = now_ms;
            }
        }

        /* keep what the rolling caps can still count */
        horizon = now_ms;
        keep_n = 0;
        for (j = 0; j < c.ncaps; j++) {
            if (c.caps[j].window_ms) {
                if (now_ms - c.caps[j].window_ms < horizon) {
                    horizon = now_ms - c.caps[j].window_ms;
                }
                if (c.caps[j].max > keep_n) {
                    keep_n = c.caps[j].max;
                }
            }
        }
        k = 0;
        while (k < nring && (ring[k] <= horizon || nring - k > keep_n)) {
            k++;
        }
        nring -= k;
        memmove(ring, ring + k, nring * sizeof(int64_t));

        /* an entry with nothing left to remember is dropped */
        if (nring == 0 && e.lifetime == 0) {
            continue;
        }
        e.nring = (uint32_t) nring;
        sf_buf_append(out, &e, sizeof(e));
        sf_buf_append(out, ring, nring * sizeof(int64_t));
        sh.n++;
    }

    memcpy(out->data, &sh, sizeof(sh));
    return SF_OK;
}


/*
 * -- added with the nginx module's ad decisions (per-request path) --
 *
 * The state after the impressions of d, in time proportional to the
 * state's size rather than to the number of campaigns: the entries of the
 * campaigns shown are updated exactly as sf_ads_state_record updates
 * them; every other entry is copied as it is.  (sf_ads_state_record also
 * forgets ring times no cap can count any more and the entries of
 * campaigns no longer in the data; neither changes a decision.)  d must
 * come from sf_ads_decide on the same blob.
 */
int
sf_ads_state_add(const void *blob, size_t len, const void *state,
    size_t state_len, const sf_ad_decision *d, int64_t now_ms, sf_buf *out)
{
    size_t              k, m, off, keep_n, nring;
    int64_t             horizon, ring[SF_ADS_MAX_RING + 1];
    uint32_t            i, j, shown, hashes[SF_ADS_MAX_SLOTS];
    sf_ad_header        h;
    sf_ad_campaign      c;
    sf_ad_state_view    v;
    sf_ad_state_entry   e;
    sf_ad_state_header  sh, in;

    if (sf_ad_header_read(blob, len, &h) != SF_OK) {
        return SF_ERR_INVALID;
    }

    if (d && d->nfills > SF_ADS_MAX_SLOTS) {
        return SF_ERR_INVALID;
    }

    for (k = 0; d && k < d->nfills; k++) {
        if (d->fills[k].campaign_index >= h.ncampaigns) {
            return SF_ERR_INVALID;
        }
        sf_ad_get(blob, &h, campaigns, sf_ad_campaign,
                  d->fills[k].campaign_index, &c);
        hashes[k] = c.hash;
    }

    out->len = 0;
    sh.magic = SF_AD_STATE_MAGIC;
    sh.n = 0;
    if (sf_buf_append(out, &sh, sizeof(sh)) != SF_OK) {
        return SF_ERR_NOMEM;
    }

    /* the entries of campaigns not shown now, as they are */

    in.n = 0;
    if (state != NULL && state_len >= sizeof(in)) {
        memcpy(&in, state, sizeof(in));
        if (in.magic != SF_AD_STATE_MAGIC) {
            in.n = 0;
        }
    }

    off = sizeof(in);
    for (i = 0; i < in.n && off + sizeof(e) <= state_len; i++) {
        memcpy(&e, (const char *) state + off, sizeof(e));
        m = sizeof(e) + e.nring * sizeof(int64_t);
        if (e.nring > SF_ADS_MAX_RING || off + m > state_len) {
            break;              /* a damaged tail is dropped */
        }
        for (k = 0; d && k < d->nfills && hashes[k] != e.hash; k++) {
            /* void */
        }
        if (d == NULL || k == d->nfills) {
            if (sf_buf_append(out, (const char *) state + off, m) != SF_OK) {
                return SF_ERR_NOMEM;
            }
            sh.n++;
        }
        off += m;
    }

    /* the campaigns shown, once each, as sf_ads_state_record does */

    for (k = 0; d && k < d->nfills; k++) {
        for (m = 0; m < k && d->fills[m].campaign_index
                             != d->fills[k].campaign_index; m++)
        {
            /* void */
        }
        if (m < k) {
            continue;           /* done with its first fill */
        }

        sf_ad_get(blob, &h, campaigns, sf_ad_campaign,
                  d->fills[k].campaign_index, &c);

        shown = 0;
        for (m = k; m < d->nfills; m++) {
            shown += (d->fills[m].campaign_index
                      == d->fills[k].campaign_index);
        }

        memset(&e, 0, sizeof(e));
        nring = 0;
        if (sf_ad_state_find(state, state_len, c.hash, &v)) {
            e = v.e;
            for (m = 0; m < v.e.nring && nring < SF_ADS_MAX_RING; m++) {
                memcpy(&ring[nring++], v.ring + m * sizeof(int64_t),
                       sizeof(int64_t));
            }
        }
        e.hash = c.hash;
        e.lifetime += shown;
        e.last_ms = now_ms;
        for (j = 0; j < shown && nring <= SF_ADS_MAX_RING; j++) {
            ring[nring++] = now_ms;
        }

        horizon = now_ms;
        keep_n = 0;
        for (j = 0; j < c.ncaps; j++) {
            if (c.caps[j].window_ms) {
                if (now_ms - c.caps[j].window_ms < horizon) {
                    horizon = now_ms - c.caps[j].window_ms;
                }
                if (c.caps[j].max > keep_n) {
                    keep_n = c.caps[j].max;
                }
            }
        }
        m = 0;
        while (m < nring && (ring[m] <= horizon || nring - m > keep_n)) {
            m++;
        }
        nring -= m;
        memmove(ring, ring + m, nring * sizeof(int64_t));

        e.nring = (uint32_t) nring;
        if (sf_buf_append(out, &e, sizeof(e)) != SF_OK
            || sf_buf_append(out, ring, nring * sizeof(int64_t)) != SF_OK)
        {
            return SF_ERR_NOMEM;
        }
        sh.n++;
    }

    memcpy(out->data, &sh, sizeof(sh));
    return SF_OK;
}


/* ---- storage --------------------------------------------------------------------- */

int
sf_txn_put_ads(sf_txn *t, const void *blob, size_t len, sf_error *err)
{
    return sf_txn_kv_put(t, SF_STORE_ADS, "campaigns", 9, blob, len, 0, err);
}


int
sf_snapshot_ads(sf_snapshot *s, const void **blob, size_t *len,
    sf_error *err)
{
    int  rc;

    rc = sf_snapshot_kv_get(s, SF_STORE_ADS, "campaigns", 9, blob, len, err);
    if (rc == SF_ERR_NOT_FOUND) {
        *blob = NULL;
        *len = 0;
        return SF_OK;
    }
    return rc;
}


int
sf_txn_ad_state(sf_txn *t, const char *user, size_t user_len,
    const void **state, size_t *len, sf_error *err)
{
    int  rc;

    rc = sf_txn_kv_get(t, SF_STORE_AD_STATE, user, user_len, state, len, err);
    if (rc == SF_ERR_NOT_FOUND) {
        *state = NULL;
        *len = 0;
        return SF_OK;
    }
    return rc;
}


int
sf_snapshot_ad_state(sf_snapshot *s, const char *user, size_t user_len,
    const void **state, size_t *len, sf_error *err)
{
    int  rc;

    rc = sf_snapshot_kv_get(s, SF_STORE_AD_STATE, user, user_len, state, len,
                            err);
    if (rc == SF_ERR_NOT_FOUND) {
        *state = NULL;
        *len = 0;
        return SF_OK;
    }
    return rc;
}


int
sf_txn_put_ad_state(sf_txn *t, const char *user, size_t user_len,
    const void *state, size_t len, sf_error *err)
{
    return sf_txn_kv_put(t, SF_STORE_AD_STATE, user, user_len, state, len, 0,
                         err);
}


static int
sf_ad_count_key(sf_txn *t, const char *key, size_t klen, uint64_t impressions,
    uint64_t clicks, sf_error *err)
{
    int           rc;
    size_t        vlen;
    const void   *val;
    sf_ad_counts  c;

    memset(&c, 0, sizeof(c));
    rc = sf_txn_kv_get(t, SF_STORE_AD_COUNTS, key, klen, &val, &vlen, err);
    if (rc == SF_OK && vlen == sizeof(c)) {
        memcpy(&c, val, sizeof(c));
    } else if (rc != SF_OK && rc != SF_ERR_NOT_FOUND) {
        return rc;
    }

    c.impressions += impressions;
    c.clicks += clicks;
    return sf_txn_kv_put(t, SF_STORE_AD_COUNTS, key, klen, &c, sizeof(c), 0,
                         err);
}


int
sf_txn_count_ad(sf_txn *t, const sf_ad_fill *f, uint64_t impressions,
    uint64_t clicks, sf_error *err)
{
    int     rc;
    sf_buf  key;

    sf_buf_init(&key);

    sf_buf_appends(&key, "c:");
    sf_buf_append(&key, f->campaign, f->campaign_len);
    rc = sf_ad_count_key(t, key.data, key.len, impressions, clicks, err);

    if (rc == SF_OK) {
        key.len = 0;
        sf_buf_appends(&key, "cr:");
        sf_buf_append(&key, f->campaign, f->campaign_len);
        sf_buf_append(&key, "/", 1);
        sf_buf_append(&key, f->creative, f->creative_len);
        rc = sf_ad_count_key(t, key.data, key.len, impressions, clicks, err);
    }

    if (rc == SF_OK) {
        key.len = 0;
        sf_buf_appends(&key, "p:");
        sf_buf_append(&key, f->advertiser, f->advertiser_len);
        rc = sf_ad_count_key(t, key.data, key.len, impressions, clicks, err);
    }

    sf_buf_free(&key);
    return rc;
}


typedef struct {
    sf_ad_counts_cb   cb;
    void             *ctx;
} sf_ad_counts_walk;


static int
sf_ad_counts_entry(void *ctx, const void *key, size_t klen, const void *val,
    size_t vlen)
{
    const char         *k = key, *colon;
    sf_ad_counts        c;
    sf_ad_counts_walk  *w = ctx;

    colon = memchr(k, ':', klen);
    if (colon == NULL || vlen != sizeof(c)) {
        return 0;
    }
    memcpy(&c, val, sizeof(c));

    return w->cb(w->ctx, colon - k == 1 && k[0] == 'c' ? "campaign"
                         : colon - k == 1 && k[0] == 'p' ? "advertiser"
                         : "creative",
                 colon + 1, klen - (size_t) (colon - k) - 1, &c);
}


int
sf_db_ad_counts(sf_db *db, sf_ad_counts_cb cb, void *ctx, sf_error *err)
{
    sf_ad_counts_walk  w;

    w.cb = cb;
    w.ctx = ctx;
    return sf_db_kv_each(db, SF_STORE_AD_COUNTS, NULL, 0, sf_ad_counts_entry,
                         &w, err);
}
