/*
 * Profiles: who the visitor is.  One binary record per user id holding
 * the purchase aggregates, preferences, top categories and free-form
 * attributes; segment, lifecycle, tier and RFM scores are computed from it
 * at request time, so they age with the clock without rewriting records.
 *
 * Record layout (read with memcpy: LMDB does not align values):
 *   sf_profile_header
 *   sf_profile_category[ncategories]
 *   opt-out text, category names, binary attributes
 */

#include <math.h>
#include <string.h>

#include "storefront.h"


#define SF_PROFILE_MAGIC  0x31505853u   /* "SXP1" */

typedef struct {
    uint32_t  magic;
    uint32_t  size;
    int64_t   first_seen;
    int64_t   first_order;
    int64_t   last_order;
    uint32_t  orders;
    uint32_t  returns;
    double    monetary;
    double    points;
    double    spend[SF_SPEND_BUCKETS];
    int32_t   spend_epoch;
    int32_t   tz_offset_min;
    uint16_t  quiet_start;
    uint16_t  quiet_end;
    uint8_t   has_tz;
    uint8_t   has_quiet;
    uint8_t   ncategories;
    uint8_t   pad;
    uint32_t  opt_out_len;
    uint32_t  attributes_len;
} sf_profile_header;

typedef struct {
    uint32_t  count;
    uint32_t  name_len;
} sf_profile_category;


void
sf_profile_init(sf_profile *p)
{
    memset(p, 0, sizeof(*p));
}


/* ---- the record ------------------------------------------------------------ */

int
sf_profile_decode(const void *rec, size_t len, sf_profile *p)
{
    size_t               i, off, need;
    sf_profile_header    h;
    sf_profile_category  c[SF_MAX_CATEGORIES];
    const char          *base;

    if (len < sizeof(h)) {
        return SF_ERR_INVALID;
    }
    memcpy(&h, rec, sizeof(h));

    if (h.magic != SF_PROFILE_MAGIC || h.size != len
        || h.ncategories > SF_MAX_CATEGORIES)
    {
        return SF_ERR_INVALID;
    }

    base = rec;
    off = sizeof(h);
    need = off + h.ncategories * sizeof(c[0]) + h.opt_out_len
           + h.attributes_len;
    if (need > len) {
        return SF_ERR_INVALID;
    }

    p->found = 1;
    p->first_seen = h.first_seen;
    p->first_order = h.first_order;
    p->last_order = h.last_order;
    p->orders = h.orders;
    p->returns = h.returns;
    p->monetary = h.monetary;
    p->points = h.points;
    p->spend_epoch = h.spend_epoch;
    memcpy(p->spend, h.spend, sizeof(p->spend));
    p->has_tz = h.has_tz;
    p->tz_offset_min = h.tz_offset_min;
    p->has_quiet = h.has_quiet;
    p->quiet_start = h.quiet_start;
    p->quiet_end = h.quiet_end;

    memcpy(c, base + off, h.ncategories * sizeof(c[0]));
    off += h.ncategories * sizeof(c[0]);

    p->opt_out = base + off;
    p->opt_out_len = h.opt_out_len;
    off += h.opt_out_len;

    p->ncategories = h.ncategories;
    for (i = 0; i < h.ncategories; i++) {
        if (off + c[i].name_len > len - h.attributes_len) {
            return SF_ERR_INVALID;
        }
        p->categories[i].name = base + off;
        p->categories[i].name_len = c[i].name_len;
        p->categories[i].count = c[i].count;
        off += c[i].name_len;
    }

    p->attributes = base + off;
    p->attributes_len = h.attributes_len;

    return off + h.attributes_len == len ? SF_OK : SF_ERR_INVALID;
}


int
sf_profile_encode(const sf_profile *p, sf_buf *out)
{
    size_t               i;
    sf_profile_header    h;
    sf_profile_category  c;

    memset(&h, 0, sizeof(h));
    h.magic = SF_PROFILE_MAGIC;
    h.first_seen = p->first_seen;
    h.first_order = p->first_order;
    h.last_order = p->last_order;
    h.orders = p->orders;
    h.returns = p->returns;
    h.monetary = p->monetary;
    h.points = p->points;
    h.spend_epoch = p->spend_epoch;
    memcpy(h.spend, p->spend, sizeof(h.spend));
    h.tz_offset_min = p->tz_offset_min;
    h.has_tz = (uint8_t) p->has_tz;
    h.has_quiet = (uint8_t) p->has_quiet;
    h.quiet_start = p->quiet_start;
    h.quiet_end = p->quiet_end;
    h.ncategories = (uint8_t) p->ncategories;
    h.opt_out_len = (uint32_t) p->opt_out_len;
    h.attributes_len = (uint32_t) p->attributes_len;

    h.size = (uint32_t) (sizeof(h) + p->ncategories * sizeof(c)
                         + p->opt_out_len + p->attributes_len);
    for (i = 0; i < p->ncategories; i++) {
        h.size += (uint32_t) p->categories[i].name_len;
    }

    out->len = 0;
    if (sf_buf_reserve(out, h.size) != SF_OK) {
        return SF_ERR_NOMEM;
    }

    sf_buf_append(out, &h, sizeof(h));
    for (i = 0; i < p->ncategories; i++) {
        c.count = p->categories[i].count;
        c.name_len = (uint32_t) p->categories[i].name_len;
        sf_buf_append(out, &c, sizeof(c));
    }
    sf_buf_append(out, p->opt_out, p->opt_out_len);
    for (i = 0; i < p->ncategories; i++) {
        sf_buf_append(out, p->categories[i].name, p->categories[i].name_len);
    }
    sf_buf_append(out, p->attributes, p->attributes_len);

    return SF_OK;
}


/* ---- spend by 30-day bucket ------------------------------------------------ */

static int32_t
sf_profile_bucket(int64_t t)
{
    return (int32_t) ((t >= 0 ? t : 0) / 86400 / SF_SPEND_BUCKET_DAYS);
}


static void
sf_profile_add_spend(sf_profile *p, int64_t t, double amount)
{
    int32_t  b, k;

    b = sf_profile_bucket(t);

    if (b > p->spend_epoch) {
        /* move the ring forward, clearing the buckets it passes */
        for (k = p->spend_epoch + 1; k <= b && k <= p->spend_epoch
                                                  + SF_SPEND_BUCKETS; k++)
        {
            p->spend[k % SF_SPEND_BUCKETS] = 0;
        }
        if (b - p->spend_epoch >= SF_SPEND_BUCKETS) {
            memset(p->spend, 0, sizeof(p->spend));
        }
        p->spend_epoch = b;
    }

    if (b <= p->spend_epoch - SF_SPEND_BUCKETS) {
        return;                 /* older than the ring */
    }

    p->spend[b % SF_SPEND_BUCKETS] += amount;
    if (p->spend[b % SF_SPEND_BUCKETS] < 0) {
        p->spend[b % SF_SPEND_BUCKETS] = 0;
    }
}


/*
 * Spend in the buckets that overlap the last 365 days: a purchase leaves
 * the sum between 365 and 395 days after it was made.
 */
double
sf_profile_spend_365(const sf_profile *p, int64_t now)
{
    int32_t  first, k;
    double   sum;

    first = sf_profile_bucket(now - 365 * 86400);

    sum = 0;
    for (k = p->spend_epoch; k > p->spend_epoch - SF_SPEND_BUCKETS && k >= 0;
         k--)
    {
        if (k >= first && k <= sf_profile_bucket(now)) {
            sum += p->spend[k % SF_SPEND_BUCKETS];
        }
    }

    return sum;
}


/* ---- aggregates from events ------------------------------------------------- */

static void
sf_profile_sort_categories(sf_profile *p)
{
    size_t       i, j;
    sf_category  c;

    for (i = 1; i < p->ncategories; i++) {
        c = p->categories[i];
        for (j = i; j > 0 && p->categories[j - 1].count < c.count; j--) {
            p->categories[j] = p->categories[j - 1];
        }
        p->categories[j] = c;
    }
}


/*
 * Counts a category; when the table is full a new category takes the
 * place of the least bought one (the "space saving" top-k estimate).
 * name must outlive p: callers re-encode p before freeing names.
 */
static void
sf_profile_count_category(sf_profile *p, const char *name, size_t len,
    uint32_t n)
{
    size_t  i;

    for (i = 0; i < p->ncategories; i++) {
        if (p->categories[i].name_len == len
            && memcmp(p->categories[i].name, name, len) == 0)
        {
            p->categories[i].count += n;
            sf_profile_sort_categories(p);
            return;
        }
    }

    if (p->ncategories < SF_MAX_CATEGORIES) {
        i = p->ncategories++;
        p->categories[i].count = n;
    } else {
        i = SF_MAX_CATEGORIES - 1;
        p->categories[i].count += n;
    }

    p->categories[i].name = name;
    p->categories[i].name_len = len;
    sf_profile_sort_categories(p);
}


void
sf_profile_add_purchase(sf_profile *p, double amount, int64_t t,
    const sf_value *categories, double points)
{
    size_t  i;

    if (!p->found) {
        p->found = 1;
        p->first_seen = t;
    }
    if (p->first_seen == 0 || t < p->first_seen) {
        p->first_seen = t;
    }
    if (p->first_order == 0 || t < p->first_order) {
        p->first_order = t;
    }
    if (t > p->last_order) {
        p->last_order = t;
    }

    p->orders++;
    p->monetary += amount;
    p->points += points;
    sf_profile_add_spend(p, t, amount);

    if (categories && categories->type == SF_ARRAY) {
        for (i = 0; i < categories->u.arr.n; i++) {
            if (categories->u.arr.items[i].type == SF_STRING) {
                sf_profile_count_category(p,
                                          categories->u.arr.items[i].u.str.p,
                                          categories->u.arr.items[i].u.str.len,
                                          1);
            }
        }
    }
}


void
sf_profile_add_return(sf_profile *p, double amount, int64_t order_time,
    double points)
{
    p->returns++;
    p->monetary = fmax(0, p->monetary - amount);
    p->points -= points;
    sf_profile_add_spend(p, order_time, -amount);
}


/* ---- import ------------------------------------------------------------------ */

static int
sf_profile_minutes(const char *s, size_t len, uint16_t *out)
{
    int  h, m;

    if (len != 5 || s[2] != ':' || s[0] < '0' || s[0] > '2' || s[1] < '0'
        || s[1] > '9' || s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9')
    {
        return 0;
    }

    h = (s[0] - '0') * 10 + (s[1] - '0');
    m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23) {
        return 0;
    }

    *out = (uint16_t) (h * 60 + m);
    return 1;
}


static int
sf_profile_fail(sf_error *err, const char *id, size_t id_len, const char *msg)
{
    if (id) {
        return sf_error_set(err, SF_ERR_INVALID, "profile \"%.*s\": %s",
                            (int) (id_len > 128 ? 128 : id_len), id, msg);
    }
    return sf_error_set(err, SF_ERR_INVALID, "profile: %s", msg);
}


static int
sf_profile_count(const sf_value *obj, const char *name, uint32_t *out)
{
    const sf_value  *v;

    v = sf_value_member(obj, name, strlen(name));
    if (v == NULL) {
        return 1;
    }
    if (v->type != SF_NUMBER || v->u.number < 0 || v->u.number > 4e9
        || v->u.number != floor(v->u.number))
    {
        return 0;
    }
    *out = (uint32_t) v->u.number;
    return 1;
}


static int
sf_profile_amount(const sf_value *obj, const char *name, double *out)
{
    const sf_value  *v;

    v = sf_value_member(obj, name, strlen(name));
    if (v == NULL) {
        return 1;
    }
    if (v->type != SF_NUMBER || !isfinite(v->u.number)) {
        return 0;
    }
    *out = v->u.number;
    return 1;
}


static int
sf_profile_time(const sf_value *obj, const char *name, int64_t *out)
{
    const sf_value  *v;

    v = sf_value_member(obj, name, strlen(name));
    if (v == NULL || v->type == SF_NULL) {
        return 1;
    }
    return sf_parse_time(v, out) == SF_OK;
}


const char *const  sf_profile_members[] = {
    "id", "attributes", "first_seen", "first_order", "last_order",
    "orders", "returns", "monetary", "spend_365", "points",
    "categories", "tz_offset", "quiet_hours", "opt_out", NULL
};


int
sf_profile_compile(const sf_value *obj, int64_t now, sf_buf *out,
    const char **idp, size_t *id_len, sf_error *err)
{
    int              rc;
    char             msg[160];
    size_t           i, n;
    double           spend_365, tz;
    sf_buf           attrs, opt;
    uint16_t         qs, qe;
    sf_profile       p;
    const char      *id, *unknown;
    const sf_value  *v, *m;

    (void) now;

    if (obj == NULL || obj->type != SF_OBJECT) {
        return sf_profile_fail(err, NULL, 0, "a profile must be a JSON object");
    }

    v = sf_value_member(obj, "id", 2);
    if (v == NULL || v->type != SF_STRING || v->u.str.len == 0
        || v->u.str.len > 256)
    {
        return sf_profile_fail(err, NULL, 0, "\"id\" must be a string of 1 to "
                               "256 bytes");
    }
    id = v->u.str.p;
    *idp = id;
    *id_len = v->u.str.len;

    for (i = 0; i < v->u.str.len; i++) {
        if ((unsigned char) id[i] < 0x20 || id[i] == 0x7f) {
            return sf_profile_fail(err, id, v->u.str.len, "\"id\" holds a "
                                   "control character");
        }
    }

    sf_profile_init(&p);
    p.found = 1;
    spend_365 = 0;

    if (!sf_profile_time(obj, "first_seen", &p.first_seen)
        || !sf_profile_time(obj, "first_order", &p.first_order)
        || !sf_profile_time(obj, "last_order", &p.last_order))
    {
        return sf_profile_fail(err, id, *id_len, "times must be unix seconds "
                               "or ISO 8601 text");
    }
    if (!sf_profile_count(obj, "orders", &p.orders)
        || !sf_profile_count(obj, "returns", &p.returns))
    {
        return sf_profile_fail(err, id, *id_len, "\"orders\" and \"returns\" "
                               "must be whole numbers >= 0");
    }
    if (!sf_profile_amount(obj, "monetary", &p.monetary)
        || !sf_profile_amount(obj, "spend_365", &spend_365)
        || !sf_profile_amount(obj, "points", &p.points)
        || p.monetary < 0 || spend_365 < 0)
    {
        return sf_profile_fail(err, id, *id_len, "\"monetary\", \"spend_365\" "
                               "and \"points\" must be numbers (amounts >= 0)");
    }
    if (p.orders && p.last_order == 0) {
        return sf_profile_fail(err, id, *id_len, "\"last_order\" is needed "
                               "when \"orders\" > 0");
    }
    if (p.first_order == 0) {
        p.first_order = p.last_order;
    }
    if (p.first_seen == 0) {
        p.first_seen = p.first_order;
    }

    /* the trailing spend sits in the bucket of the last order */
    if (spend_365 > 0) {
        p.spend_epoch = sf_profile_bucket(p.last_order ? p.last_order : now);
        p.spend[p.spend_epoch % SF_SPEND_BUCKETS] = spend_365;
    }

    v = sf_value_member(obj, "tz_offset", 9);
    if (v != NULL && v->type != SF_NULL) {
        if (v->type == SF_NUMBER) {
            tz = v->u.number;
        } else if (v->type == SF_STRING && v->u.str.len == 6
                   && (v->u.str.p[0] == '+' || v->u.str.p[0] == '-')
                   && sf_profile_minutes(v->u.str.p + 1, 5, &qs))
        {
            tz = (v->u.str.p[0] == '-' ? -1 : 1) * qs;
        } else {
            tz = 1e9;
        }
        if (tz < -14 * 60 || tz > 14 * 60 || tz != floor(tz)) {
            return sf_profile_fail(err, id, *id_len, "\"tz_offset\" must be "
                                   "minutes east of UTC or \"+08:00\"");
        }
        p.has_tz = 1;
        p.tz_offset_min = (int32_t) tz;
    }

    v = sf_value_member(obj, "quiet_hours", 11);
    if (v != NULL && v->type != SF_NULL) {
        if (v->type != SF_STRING || v->u.str.len != 11
            || v->u.str.p[5] != '-'
            || !sf_profile_minutes(v->u.str.p, 5, &qs)
            || !sf_profile_minutes(v->u.str.p + 6, 5, &qe))
        {
            return sf_profile_fail(err, id, *id_len, "\"quiet_hours\" must be "
                                   "\"HH:MM-HH:MM\"");
        }
        p.has_quiet = 1;
        p.quiet_start = qs;
        p.quiet_end = qe;
    }

    sf_buf_init(&opt);
    sf_buf_init(&attrs);
    rc = SF_OK;

    v = sf_value_member(obj, "opt_out", 7);
    if (v != NULL && v->type != SF_NULL) {
        if (v->type != SF_ARRAY) {
            rc = sf_profile_fail(err, id, *id_len, "\"opt_out\" must be an "
                                 "array of strings");
            goto done;
        }
        for (i = 0; i < v->u.arr.n; i++) {
            m = &v->u.arr.items[i];
            if (m->type != SF_STRING || m->u.str.len == 0
                || memchr(m->u.str.p, ',', m->u.str.len))
            {
                rc = sf_profile_fail(err, id, *id_len, "\"opt_out\" entries "
                                     "must be names without commas");
                goto done;
            }
            if (i) {
                sf_buf_append(&opt, ",", 1);
            }
            sf_buf_append(&opt, m->u.str.p, m->u.str.len);
        }
    }
    p.opt_out = opt.data;
    p.opt_out_len = opt.len;

    v = sf_value_member(obj, "categories", 10);
    if (v != NULL && v->type != SF_NULL) {
        if (v->type != SF_OBJECT) {
            rc = sf_profile_fail(err, id, *id_len, "\"categories\" must be an "
                                 "object of purchase counts");
            goto done;
        }
        n = 0;
        for (i = 0; i < v->u.obj.n; i++) {
            m = &v->u.obj.members[i].value;
            if (m->type != SF_NUMBER || m->u.number < 0
                || m->u.number != floor(m->u.number) || m->u.number > 4e9)
            {
                snprintf(msg, sizeof(msg), "category \"%.64s\": the count "
                         "must be a whole number >= 0",
                         v->u.obj.members[i].name);
                rc = sf_profile_fail(err, id, *id_len, msg);
                goto done;
            }
            sf_profile_count_category(&p, v->u.obj.members[i].name,
                                      v->u.obj.members[i].name_len,
                                      (uint32_t) m->u.number);
            n++;
        }
    }

    v = sf_value_member(obj, "attributes", 10);
    if (v != NULL && v->type != SF_NULL) {
        if (v->type != SF_OBJECT) {
            rc = sf_profile_fail(err, id, *id_len, "\"attributes\" must be an "
                                 "object");
            goto done;
        }
        sf_value_encode(&attrs, v);
    }
    p.attributes = attrs.data;
    p.attributes_len = attrs.len;

    /* unknown members are refused: a typo must not load silently */
    unknown = sf_value_unknown_member(obj, sf_profile_members);
    if (unknown != NULL) {
        snprintf(msg, sizeof(msg), "unknown member \"%.64s\"", unknown);
        rc = sf_profile_fail(err, id, *id_len, msg);
        goto done;
    }

    rc = sf_profile_encode(&p, out);

done:

    sf_buf_free(&opt);
    sf_buf_free(&attrs);
    return rc;
}


static int
sf_profile_json_time(sf_buf *b, const char *name, int64_t t)
{
    if (t == 0) {
        return SF_OK;
    }
    sf_buf_printf(b, ",\"%s\":", name);
    return sf_buf_append_time(b, t);
}


int
sf_profile_to_json(const char *id, size_t id_len, const sf_profile *p,
    sf_buf *b)
{
    size_t    i;
    sf_arena *a;
    sf_value  attrs;

    sf_buf_appends(b, "{\"id\":");
    sf_buf_append_json_string(b, id, id_len);

    sf_profile_json_time(b, "first_seen", p->first_seen);
    sf_profile_json_time(b, "first_order", p->first_order);
    sf_profile_json_time(b, "last_order", p->last_order);
    sf_buf_printf(b, ",\"orders\":%u,\"returns\":%u,\"monetary\":", p->orders,
                  p->returns);
    sf_buf_append_js_number(b, p->monetary);
    sf_buf_appends(b, ",\"spend_365\":");
    /* as of the last order: that is where an import puts it back */
    sf_buf_append_js_number(b, sf_profile_spend_365(p, p->last_order));
    sf_buf_appends(b, ",\"points\":");
    sf_buf_append_js_number(b, p->points);

    if (p->ncategories) {
        sf_buf_appends(b, ",\"categories\":{");
        for (i = 0; i < p->ncategories; i++) {
            if (i) {
                sf_buf_append(b, ",", 1);
            }
            sf_buf_append_json_string(b, p->categories[i].name,
                                      p->categories[i].name_len);
            sf_buf_printf(b, ":%u", p->categories[i].count);
        }
        sf_buf_append(b, "}", 1);
    }

    if (p->has_tz) {
        sf_buf_printf(b, ",\"tz_offset\":%d", p->tz_offset_min);
    }
    if (p->has_quiet) {
        sf_buf_printf(b, ",\"quiet_hours\":\"%02u:%02u-%02u:%02u\"",
                      p->quiet_start / 60, p->quiet_start % 60,
                      p->quiet_end / 60, p->quiet_end % 60);
    }

    if (p->opt_out_len) {
        const char  *s, *end, *comma;

        sf_buf_appends(b, ",\"opt_out\":[");
        s = p->opt_out;
        end = s + p->opt_out_len;
        while (s < end) {
            comma = memchr(s, ',', (size_t) (end - s));
            if (comma == NULL) {
                comma = end;
            }
            if (s != p->opt_out) {
                sf_buf_append(b, ",", 1);
            }
            sf_buf_append_json_string(b, s, (size_t) (comma - s));
            s = comma + 1;
        }
        sf_buf_append(b, "]", 1);
    }

    if (p->attributes_len) {
        a = sf_arena_create(4096);
        if (a && sf_value_decode(p->attributes, p->attributes_len,
                                 (sf_alloc_fn) sf_arena_alloc, a, &attrs,
                                 NULL) == SF_OK)
        {
            sf_buf_appends(b, ",\"attributes\":");
            sf_json_write(b, &attrs);
        }
        sf_arena_destroy(a);
    }

    return sf_buf_append(b, "}", 1);
}


/* ---- what is computed at request time --------------------------------------- */

static int
sf_profile_score(double x, const double *cuts, int ascending)
{
    int  i;

    /* ascending: more is better (F, M); else fewer days is better (R) */
    for (i = 0; i < 4; i++) {
        if (x <= cuts[i]) {
            return ascending ? i + 1 : 5 - i;
        }
    }
    return ascending ? 5 : 1;
}


void
sf_profile_derive(const sf_profile *p, const sf_rules *rules, int64_t now,
    sf_derived *d)
{
    uint32_t  i;
    double    since_first;
    const sf_segment_rule  *s;

    memset(d, 0, sizeof(*d));

    d->spend_365 = p->found ? sf_profile_spend_365(p, now) : 0;
    d->days_since_last_order = -1;

    if (p->found && p->orders > 0 && p->last_order > 0) {
        d->days_since_last_order = fmax(0, (double) (now - p->last_order)
                                           / 86400);
        d->r = sf_profile_score(d->days_since_last_order, rules->recency_days,
                                0);
        d->f = sf_profile_score(p->orders, rules->frequency, 1);
        d->m = sf_profile_score(p->monetary, rules->monetary, 1);
    }

    d->rfm[0] = (char) ('0' + d->r);
    d->rfm[1] = (char) ('0' + d->f);
    d->rfm[2] = (char) ('0' + d->m);
    d->rfm[3] = '\0';

    d->segment = "others";
    if (d->r) {
        for (i = 0; i < rules->nsegments; i++) {
            s = &rules->segments[i];
            if (d->r >= s->r_min && d->r <= s->r_max
                && d->f >= s->f_min && d->f <= s->f_max
                && d->m >= s->m_min && d->m <= s->m_max)
            {
                d->segment = s->name;
                break;
            }
        }
    }

    if (d->days_since_last_order < 0) {
        d->lifecycle = "new";

    } else {
        since_first = (double) (now - p->first_order) / 86400;
        if (since_first <= rules->new_days) {
            d->lifecycle = "new";
        } else if (d->days_since_last_order >= rules->lost_days) {
            d->lifecycle = "lost";
        } else if (d->days_since_last_order >= rules->at_risk_days) {
            d->lifecycle = "at_risk";
        } else {
            d->lifecycle = "active";
        }
    }

    d->tier = rules->ntiers ? rules->tiers[0].name : "";
    d->tier_benefits = rules->ntiers ? rules->tiers[0].benefits : "{}";
    for (i = 1; i < rules->ntiers; i++) {
        if (d->spend_365 >= rules->tiers[i].min_spend) {
            d->tier = rules->tiers[i].name;
            d->tier_benefits = rules->tiers[i].benefits;
        }
    }
}


/* ---- attributes for targeting -------------------------------------------------- */

static void
sf_attr_string(sf_member *m, const char *name, const char *s)
{
    m->name = name;
    m->name_len = strlen(name);
    m->value.type = SF_STRING;
    m->value.u.str.p = s;
    m->value.u.str.len = strlen(s);
}


static void
sf_attr_number(sf_member *m, const char *name, double x)
{
    m->name = name;
    m->name_len = strlen(name);
    m->value.type = SF_NUMBER;
    m->value.u.number = x;
}


#define SF_COMPUTED_ATTRIBUTES  15

int
sf_profile_attributes(const sf_profile *p, const sf_derived *d,
    const sf_value *request_attributes, sf_alloc_fn alloc, void *alloc_ctx,
    sf_value *out)
{
    char       *rfm;
    size_t      i, n, max, nreq, nprof;
    sf_value    prof, *cats;
    sf_member  *m, *cm;

    nreq = (request_attributes && request_attributes->type == SF_OBJECT)
           ? request_attributes->u.obj.n : 0;

    prof.type = SF_NULL;
    nprof = 0;
    if (p->found && p->attributes_len
        && sf_value_decode(p->attributes, p->attributes_len, alloc, alloc_ctx,
                           &prof, NULL) == SF_OK
        && prof.type == SF_OBJECT)
    {
        nprof = prof.u.obj.n;
    }

    max = SF_COMPUTED_ATTRIBUTES + nreq + nprof;
    m = alloc(alloc_ctx, max * sizeof(sf_member));
    cm = alloc(alloc_ctx, (p->ncategories ? p->ncategories : 1)
                          * sizeof(sf_member));
    /* the code lives in *d, which the caller may not keep */
    rfm = alloc(alloc_ctx, sizeof(d->rfm));
    if (m == NULL || cm == NULL || rfm == NULL) {
        return SF_ERR_NOMEM;
    }
    memcpy(rfm, d->rfm, sizeof(d->rfm));

    n = 0;
    sf_attr_string(&m[n++], "segment", d->segment);
    sf_attr_string(&m[n++], "rfm", rfm);
    sf_attr_number(&m[n++], "rfm_r", d->r);
    sf_attr_number(&m[n++], "rfm_f", d->f);
    sf_attr_number(&m[n++], "rfm_m", d->m);
    sf_attr_string(&m[n++], "lifecycle", d->lifecycle);
    sf_attr_string(&m[n++], "tier", d->tier);
    sf_attr_number(&m[n++], "points", p->points);
    sf_attr_number(&m[n++], "orders", p->orders);
    sf_attr_number(&m[n++], "returns", p->returns);
    sf_attr_number(&m[n++], "monetary", p->monetary);
    sf_attr_number(&m[n++], "spend_365", d->spend_365);
    sf_attr_number(&m[n++], "days_since_last_order",
                   d->days_since_last_order);

    /* categories: {"baby": 7, ...} and the most bought one */
    for (i = 0; i < p->ncategories; i++) {
        cm[i].name = p->categories[i].name;
        cm[i].name_len = p->categories[i].name_len;
        cm[i].value.type = SF_NUMBER;
        cm[i].value.u.number = p->categories[i].count;
    }
    cats = &m[n].value;
    m[n].name = "categories";
    m[n].name_len = 10;
    cats->type = SF_OBJECT;
    cats->u.obj.members = cm;
    cats->u.obj.n = p->ncategories;
    n++;

    m[n].name = "top_category";
    m[n].name_len = 12;
    if (p->ncategories) {
        m[n].value.type = SF_STRING;
        m[n].value.u.str.p = p->categories[0].name;
        m[n].value.u.str.len = p->categories[0].name_len;
    } else {
        m[n].value.type = SF_NULL;
    }
    n++;

    /* the request's attributes, then the profile's: computed names win */
    for (i = 0; i < nreq; i++) {
        const sf_member  *r = &request_attributes->u.obj.members[i];
        sf_value          obj;

        obj.type = SF_OBJECT;
        obj.u.obj.members = m;
        obj.u.obj.n = n;
        if (sf_value_member(&obj, r->name, r->name_len) == NULL) {
            m[n++] = *r;
        }
    }

    for (i = 0; i < nprof; i++) {
        const sf_member  *r = &prof.u.obj.members[i];
        sf_value          obj;

        obj.type = SF_OBJECT;
        obj.u.obj.members = m;
        obj.u.obj.n = n;
        if (sf_value_member(&obj, r->name, r->name_len) == NULL) {
            m[n++] = *r;
        }
    }

    out->type = SF_OBJECT;
    out->u.obj.members = m;
    out->u.obj.n = n;
    return SF_OK;
}
