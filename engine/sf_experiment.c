/*
 * Experiments: GrowthBook experiment objects compiled into one binary
 * record each, and evaluated from the record without parsing anything.
 *
 * Record layout (all offsets from the record's start; LMDB gives no
 * alignment guarantee, so every field is read with memcpy):
 *
 *   sf_exp_header
 *   double ranges[nvariations][2]        effective bucket ranges
 *   double weights[nweights]             as imported (for export)
 *   double given_ranges[nranges][2]      as imported (for export)
 *   sf_exp_variation variations[nvariations]
 *   sf_exp_filter filters[nfilters]
 *   double filter ranges...
 *   condition bytecode (sf_condition_compile)
 *   string pool
 */

#include <math.h>
#include <string.h>

#include "storefront.h"
#include "sf_internal.h"


#define SF_EXP_MAGIC           0x31455853u     /* "SXE1" */
#define SF_EXP_MAX_VARIATIONS  100
#define SF_EXP_MAX_KEY         128

#define SF_EXP_ACTIVE          0x0001
#define SF_EXP_HAS_FORCE       0x0002
#define SF_EXP_HAS_COVERAGE    0x0004
#define SF_EXP_HAS_NAMESPACE   0x0008
#define SF_EXP_HAS_CONDITION   0x0010
#define SF_EXP_HAS_VERSION     0x0020
#define SF_EXP_HAS_ACTIVE      0x0040

typedef struct {
    uint32_t  off;
    uint32_t  len;
} sf_exp_str;

typedef struct {
    uint32_t    magic;
    uint32_t    size;
    uint32_t    flags;
    int32_t     force;
    uint32_t    nvariations;
    int32_t     hash_version;
    uint32_t    nweights;
    uint32_t    nranges;
    uint32_t    nfilters;
    uint32_t    nmeta;
    double      coverage;
    double      ns_start;
    double      ns_end;
    sf_exp_str  key;
    sf_exp_str  seed;
    sf_exp_str  hash_attribute;
    sf_exp_str  fallback_attribute;
    sf_exp_str  ns_id;
    sf_exp_str  name;
    sf_exp_str  condition_json;
    sf_exp_str  condition;          /* compiled */
    sf_exp_str  extra_json;         /* members kept only for export */
    uint32_t    seed_state;         /* FNV state after the seed (v2) */
    uint32_t    pad2;
    uint32_t    ranges_off;
    uint32_t    weights_off;
    uint32_t    given_ranges_off;
    uint32_t    variations_off;
    uint32_t    filters_off;
    uint32_t    pad;
} sf_exp_header;

typedef struct {
    sf_exp_str  value_json;
    sf_exp_str  key;                /* meta[i].key, len 0 when absent */
    sf_exp_str  name;
    sf_exp_str  layout;             /* value's "layout" (page layouts) */
    uint32_t    has_meta;
    uint32_t    pad;
} sf_exp_variation;

typedef struct {
    sf_exp_str  seed;
    sf_exp_str  attribute;
    int32_t     hash_version;
    uint32_t    nranges;
    uint32_t    ranges_off;
    uint32_t    has_attribute;
} sf_exp_filter;


static const char  *sf_reason_names[SF_REASON__COUNT] = {
    "assigned",
    "query_override",
    "forced",
    "single_variation",
    "inactive",
    "no_id",
    "namespace",
    "filtered",
    "condition",
    "coverage",
    "hash_version",
    "disabled",
    "qa_mode",
    "context_forced"
};


const char *
sf_reason_name(sf_reason r)
{
    return (unsigned) r < SF_REASON__COUNT ? sf_reason_names[r] : "unknown";
}


/* ---- compiling ---------------------------------------------------------- */

typedef struct {
    sf_buf    body;      /* everything after the header, strings excluded */
    sf_buf    pool;      /* strings */
    sf_error *err;
    const char *key;     /* for messages */
} sf_exp_builder;


static int
sf_exp_fail(sf_exp_builder *eb, const char *fmt, const char *what)
{
    char  msg[256];

    snprintf(msg, sizeof(msg), fmt, what);
    if (eb->key) {
        return sf_error_set(eb->err, SF_ERR_INVALID, "experiment \"%.128s\": %s",
                            eb->key, msg);
    }
    return sf_error_set(eb->err, SF_ERR_INVALID, "experiment: %s", msg);
}


static sf_exp_str
sf_exp_string(sf_exp_builder *eb, const char *s, size_t len)
{
    sf_exp_str  r;

    r.off = (uint32_t) eb->pool.len;    /* relocated when assembled */
    r.len = (uint32_t) len;
    if (sf_buf_append(&eb->pool, s, len) != SF_OK) {
        r.len = UINT32_MAX;
    }
    return r;
}


/* Pads the body to 8 bytes and returns the offset of what comes next. */
static uint32_t
sf_exp_align(sf_exp_builder *eb)
{
    static const char  zeros[8];

    sf_buf_append(&eb->body, zeros, (8 - eb->body.len % 8) % 8);
    return (uint32_t) (sizeof(sf_exp_header) + eb->body.len);
}


/* Identifiers end up in headers and variables: keep them plain. */
static int
sf_exp_valid_ident(const char *s, size_t len)
{
    size_t  i;
    char    c;

    if (len == 0 || len > SF_EXP_MAX_KEY) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
              || c == ':' || c == '/'))
        {
            return 0;
        }
    }

    return 1;
}


static int
sf_exp_number(const sf_value *v, double *out)
{
    if (v == NULL || v->type != SF_NUMBER) {
        return 0;
    }
    *out = v->u.number;
    return 1;
}


/* [[a, b], ...] with 0 <= a <= b <= 1 */
static int
sf_exp_ranges(sf_exp_builder *eb, const sf_value *v, const char *what,
    uint32_t *off, uint32_t *n)
{
    size_t          i;
    double          r[2];
    const sf_value  *pair;

    if (v->type != SF_ARRAY) {
        return sf_exp_fail(eb, "\"%s\" must be an array of [start, end]",
                           what);
    }

    *off = sf_exp_align(eb);
    *n = (uint32_t) v->u.arr.n;

    for (i = 0; i < v->u.arr.n; i++) {
        pair = &v->u.arr.items[i];
        if (pair->type != SF_ARRAY || pair->u.arr.n != 2
            || !sf_exp_number(&pair->u.arr.items[0], &r[0])
            || !sf_exp_number(&pair->u.arr.items[1], &r[1])
            || r[0] < 0 || r[1] > 1 || r[0] > r[1])
        {
            return sf_exp_fail(eb, "\"%s\" must hold [start, end] pairs "
                               "with 0 <= start <= end <= 1", what);
        }
        sf_buf_append(&eb->body, r, sizeof(r));
    }

    return SF_OK;
}


static int
sf_exp_optional_string(sf_exp_builder *eb, const sf_value *exp,
    const char *name, sf_exp_str *out)
{
    const sf_value  *v;

    out->off = 0;
    out->len = 0;

    v = sf_value_member(exp, name, strlen(name));
    if (v == NULL || v->type == SF_NULL) {
        return SF_OK;
    }

    if (v->type != SF_STRING) {
        return sf_exp_fail(eb, "\"%s\" must be a string", name);
    }

    *out = sf_exp_string(eb, v->u.str.p, v->u.str.len);
    return SF_OK;
}


static int
sf_exp_hash_version(sf_exp_builder *eb, const sf_value *v, int32_t *out)
{
    double  d;

    if (!sf_exp_number(v, &d) || (d != 1 && d != 2)) {
        return sf_exp_fail(eb, "\"%s\" must be 1 or 2", "hashVersion");
    }
    *out = (int32_t) d;
    return SF_OK;
}


static int
sf_exp_filters(sf_exp_builder *eb, const sf_value *v, sf_exp_header *h)
{
    size_t           i;
    uint32_t         table;
    sf_exp_filter    f, *fp;
    const sf_value  *filter, *m;

    if (v->type != SF_ARRAY) {
        return sf_exp_fail(eb, "\"%s\" must be an array", "filters");
    }

    table = sf_exp_align(eb);
    h->filters_off = table;
    h->nfilters = (uint32_t) v->u.arr.n;

    memset(&f, 0, sizeof(f));
    for (i = 0; i < v->u.arr.n; i++) {
        sf_buf_append(&eb->body, &f, sizeof(f));
    }

    for (i = 0; i < v->u.arr.n; i++) {
        filter = &v->u.arr.items[i];
        memset(&f, 0, sizeof(f));
        f.hash_version = 2;

        if (filter->type != SF_OBJECT) {
            return sf_exp_fail(eb, "each of \"%s\" must be an object",
                               "filters");
        }

        m = sf_value_member(filter, "seed", 4);
        if (m == NULL || m->type != SF_STRING) {
            return sf_exp_fail(eb, "each of \"%s\" needs a string \"seed\"",
                               "filters");
        }
        f.seed = sf_exp_string(eb, m->u.str.p, m->u.str.len);

        m = sf_value_member(filter, "attribute", 9);
        if (m != NULL && m->type != SF_NULL) {
            if (m->type != SF_STRING) {
                return sf_exp_fail(eb, "a filter's \"%s\" must be a string",
                                   "attribute");
            }
            f.attribute = sf_exp_string(eb, m->u.str.p, m->u.str.len);
            f.has_attribute = 1;
        }

        m = sf_value_member(filter, "hashVersion", 11);
        if (m != NULL && sf_exp_hash_version(eb, m, &f.hash_version)) {
            return SF_ERR_INVALID;
        }

        m = sf_value_member(filter, "ranges", 6);
        if (m == NULL) {
            return sf_exp_fail(eb, "each of \"%s\" needs \"ranges\"",
                               "filters");
        }
        if (sf_exp_ranges(eb, m, "filters.ranges", &f.ranges_off,
                          &f.nranges))
        {
            return SF_ERR_INVALID;
        }

        fp = (sf_exp_filter *) (eb->body.data + table - sizeof(sf_exp_header))
             + i;
        memcpy(fp, &f, sizeof(f));
    }

    return SF_OK;
}


static const char  *sf_exp_known[] = {
    "key", "variations", "weights", "coverage", "namespace", "hashAttribute",
    "fallbackAttribute", "hashVersion", "seed", "meta", "active", "force",
    "condition", "filters", "ranges", "name", NULL
};


static int
sf_exp_is_known(const sf_member *m)
{
    const char  **k;

    for (k = sf_exp_known; *k; k++) {
        if (strlen(*k) == m->name_len && memcmp(*k, m->name, m->name_len) == 0)
        {
            return 1;
        }
    }
    return 0;
}


static void
sf_exp_relocate(sf_exp_str *s, uint32_t pool_off)
{
    s->off += pool_off;
}


int
sf_experiment_compile(const sf_value *exp, sf_buf *out, sf_error *err)
{
    int               rc;
    char              keybuf[SF_EXP_MAX_KEY + 1];
    size_t            i, n, extra;
    double            d, weights[SF_EXP_MAX_VARIATIONS], total;
    double            ranges[SF_EXP_MAX_VARIATIONS][2];
    sf_buf            json;
    uint32_t          pool_off, nranges;
    sf_exp_header     h;
    sf_exp_builder    eb;
    sf_exp_variation  var, *vars;
    sf_exp_filter     f;
    const sf_value    *v, *vs, *meta, *m;

    memset(&h, 0, sizeof(h));
    memset(&eb, 0, sizeof(eb));
    sf_buf_init(&eb.body);
    sf_buf_init(&eb.pool);
    sf_buf_init(&json);
    eb.err = err;

    h.magic = SF_EXP_MAGIC;
    h.flags = SF_EXP_ACTIVE;
    h.hash_version = 1;

    if (exp == NULL || exp->type != SF_OBJECT) {
        rc = sf_exp_fail(&eb, "%s", "an experiment must be a JSON object");
        goto done;
    }

    /* key */

    v = sf_value_member(exp, "key", 3);
    if (v == NULL || v->type != SF_STRING) {
        rc = sf_exp_fail(&eb, "%s", "missing string \"key\"");
        goto done;
    }
    if (!sf_exp_valid_ident(v->u.str.p, v->u.str.len)) {
        rc = sf_exp_fail(&eb, "\"key\" must be 1 to 128 characters of "
                         "%s", "letters, digits and - _ . : /");
        goto done;
    }
    memcpy(keybuf, v->u.str.p, v->u.str.len);
    keybuf[v->u.str.len] = '\0';
    eb.key = keybuf;
    h.key = sf_exp_string(&eb, v->u.str.p, v->u.str.len);

    /* variations */

    vs = sf_value_member(exp, "variations", 10);
    if (vs == NULL || vs->type != SF_ARRAY || vs->u.arr.n == 0) {
        rc = sf_exp_fail(&eb, "%s", "\"variations\" must be a non-empty array");
        goto done;
    }
    n = vs->u.arr.n;
    if (n > SF_EXP_MAX_VARIATIONS) {
        rc = sf_exp_fail(&eb, "%s", "more than 100 variations");
        goto done;
    }
    h.nvariations = (uint32_t) n;

    /* scalar options */

    rc = SF_ERR_INVALID;

    v = sf_value_member(exp, "active", 6);
    if (v != NULL && v->type != SF_NULL) {
        if (v->type != SF_BOOL) {
            sf_exp_fail(&eb, "\"%s\" must be true or false", "active");
            goto done;
        }
        h.flags |= SF_EXP_HAS_ACTIVE;
        if (!v->u.boolean) {
            h.flags &= ~SF_EXP_ACTIVE;
        }
    }

    v = sf_value_member(exp, "force", 5);
    if (v != NULL && v->type != SF_NULL) {
        if (!sf_exp_number(v, &d) || d != floor(d) || fabs(d) > 1e6) {
            sf_exp_fail(&eb, "\"%s\" must be an integer", "force");
            goto done;
        }
        h.flags |= SF_EXP_HAS_FORCE;
        h.force = (int32_t) d;
    }

    v = sf_value_member(exp, "coverage", 8);
    if (v != NULL && v->type != SF_NULL) {
        if (!sf_exp_number(v, &h.coverage) || h.coverage < 0
            || h.coverage > 1)
        {
            sf_exp_fail(&eb, "\"%s\" must be a number from 0 to 1",
                        "coverage");
            goto done;
        }
        h.flags |= SF_EXP_HAS_COVERAGE;
    }

    v = sf_value_member(exp, "hashVersion", 11);
    if (v != NULL && v->type != SF_NULL) {
        if (sf_exp_hash_version(&eb, v, &h.hash_version)) {
            goto done;
        }
        h.flags |= SF_EXP_HAS_VERSION;
    }

    if (sf_exp_optional_string(&eb, exp, "seed", &h.seed)
        || sf_exp_optional_string(&eb, exp, "hashAttribute",
                                  &h.hash_attribute)
        || sf_exp_optional_string(&eb, exp, "fallbackAttribute",
                                  &h.fallback_attribute)
        || sf_exp_optional_string(&eb, exp, "name", &h.name))
    {
        goto done;
    }

    v = sf_value_member(exp, "namespace", 9);
    if (v != NULL && v->type != SF_NULL) {
        if (v->type != SF_ARRAY || v->u.arr.n != 3
            || v->u.arr.items[0].type != SF_STRING
            || !sf_exp_number(&v->u.arr.items[1], &h.ns_start)
            || !sf_exp_number(&v->u.arr.items[2], &h.ns_end)
            || h.ns_start < 0 || h.ns_end > 1 || h.ns_start > h.ns_end)
        {
            sf_exp_fail(&eb, "\"%s\" must be [id, start, end] with "
                        "0 <= start <= end <= 1", "namespace");
            goto done;
        }
        h.flags |= SF_EXP_HAS_NAMESPACE;
        h.ns_id = sf_exp_string(&eb, v->u.arr.items[0].u.str.p,
                                v->u.arr.items[0].u.str.len);
    }

    /* weights, kept as given, and the effective bucket ranges */

    v = sf_value_member(exp, "weights", 7);
    if (v != NULL && v->type != SF_NULL) {
        if (v->type != SF_ARRAY || v->u.arr.n != n) {
            sf_exp_fail(&eb, "\"%s\" must have one number per variation",
                        "weights");
            goto done;
        }
        total = 0;
        for (i = 0; i < n; i++) {
            if (!sf_exp_number(&v->u.arr.items[i], &weights[i])
                || weights[i] < 0)
            {
                sf_exp_fail(&eb, "\"%s\" must be non-negative numbers",
                            "weights");
                goto done;
            }
            total += weights[i];
        }
        if (total < 0.99 || total > 1.01) {
            sf_exp_fail(&eb, "\"%s\" must add up to 1", "weights");
            goto done;
        }
        h.nweights = (uint32_t) n;
    }

    v = sf_value_member(exp, "ranges", 6);
    if (v != NULL && v->type != SF_NULL) {
        if (v->type != SF_ARRAY || v->u.arr.n != n) {
            sf_exp_fail(&eb, "\"%s\" must have one range per variation",
                        "ranges");
            goto done;
        }
        if (sf_exp_ranges(&eb, v, "ranges", &h.given_ranges_off, &nranges)) {
            goto done;
        }
        h.nranges = nranges;
        memcpy(ranges, eb.body.data + h.given_ranges_off - sizeof(h),
               n * sizeof(ranges[0]));

    } else {
        sf_bucket_ranges((int) n,
                         (h.flags & SF_EXP_HAS_COVERAGE) ? h.coverage : 1,
                         h.nweights ? weights : NULL, (int) h.nweights,
                         ranges);
    }

    h.ranges_off = sf_exp_align(&eb);
    sf_buf_append(&eb.body, ranges, n * sizeof(ranges[0]));

    if (h.nweights) {
        h.weights_off = sf_exp_align(&eb);
        sf_buf_append(&eb.body, weights, n * sizeof(double));
    }

    /* variations and their meta */

    meta = sf_value_member(exp, "meta", 4);
    if (meta != NULL && meta->type != SF_NULL && meta->type != SF_ARRAY) {
        sf_exp_fail(&eb, "\"%s\" must be an array", "meta");
        goto done;
    }
    if (meta != NULL && meta->type == SF_ARRAY) {
        h.nmeta = (uint32_t) meta->u.arr.n;
        if (meta->u.arr.n > n) {
            sf_exp_fail(&eb, "\"%s\" has more entries than variations",
                        "meta");
            goto done;
        }
    }

    h.variations_off = sf_exp_align(&eb);
    memset(&var, 0, sizeof(var));
    for (i = 0; i < n; i++) {
        sf_buf_append(&eb.body, &var, sizeof(var));
    }

    for (i = 0; i < n; i++) {
        memset(&var, 0, sizeof(var));

        json.len = 0;
        if (sf_json_write(&json, &vs->u.arr.items[i]) != SF_OK) {
            rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
            goto done;
        }
        var.value_json = sf_exp_string(&eb, json.data, json.len);

        /* a variation may name a page layout: kept apart, read per request */
        v = sf_value_member(&vs->u.arr.items[i], "layout", 6);
        if (v != NULL && v->type == SF_STRING) {
            var.layout = sf_exp_string(&eb, v->u.str.p, v->u.str.len);
        }

        if (i < h.nmeta) {
            m = &meta->u.arr.items[i];
            if (m->type != SF_OBJECT) {
                sf_exp_fail(&eb, "each of \"%s\" must be an object", "meta");
                goto done;
            }
            var.has_meta = 1;

            v = sf_value_member(m, "key", 3);
            if (v != NULL && v->type != SF_NULL) {
                if (v->type != SF_STRING
                    || !sf_exp_valid_ident(v->u.str.p, v->u.str.len))
                {
                    sf_exp_fail(&eb, "\"%s\" must be 1 to 128 characters "
                                "of letters, digits and - _ . : /",
                                "meta[].key");
                    goto done;
                }
                var.key = sf_exp_string(&eb, v->u.str.p, v->u.str.len);
            }

            v = sf_value_member(m, "name", 4);
            if (v != NULL && v->type != SF_NULL) {
                if (v->type != SF_STRING) {
                    sf_exp_fail(&eb, "\"%s\" must be a string", "meta[].name");
                    goto done;
                }
                var.name = sf_exp_string(&eb, v->u.str.p, v->u.str.len);
            }
        }

        vars = (sf_exp_variation *)
                   (eb.body.data + h.variations_off - sizeof(h)) + i;
        memcpy(vars, &var, sizeof(var));
    }

    /* filters */

    v = sf_value_member(exp, "filters", 7);
    if (v != NULL && v->type != SF_NULL && sf_exp_filters(&eb, v, &h)) {
        goto done;
    }

    /* condition: compiled now, evaluated per request */

    v = sf_value_member(exp, "condition", 9);
    if (v != NULL && v->type != SF_NULL) {
        if (v->type != SF_OBJECT) {
            sf_exp_fail(&eb, "\"%s\" must be an object", "condition");
            goto done;
        }

        json.len = 0;
        if (sf_condition_compile(v, &json, err) != SF_OK) {
            char  msg[sizeof(err->msg)];

            memcpy(msg, err->msg, sizeof(msg));
            sf_error_set(err, SF_ERR_INVALID,
                         "experiment \"%s\": condition: %.400s", keybuf, msg);
            goto done;
        }
        h.flags |= SF_EXP_HAS_CONDITION;
        h.condition = sf_exp_string(&eb, json.data, json.len);

        json.len = 0;
        sf_json_write(&json, v);
        h.condition_json = sf_exp_string(&eb, json.data, json.len);
    }

    /* members the engine does not use, kept so that export gives them back */

    json.len = 0;
    extra = 0;
    for (i = 0; i < exp->u.obj.n; i++) {
        if (sf_exp_is_known(&exp->u.obj.members[i])) {
            continue;
        }
        sf_buf_append(&json, extra++ ? "," : "{", 1);
        sf_buf_append_json_string(&json, exp->u.obj.members[i].name,
                                  exp->u.obj.members[i].name_len);
        sf_buf_append(&json, ":", 1);
        sf_json_write(&json, &exp->u.obj.members[i].value);
    }
    if (extra) {
        sf_buf_append(&json, "}", 1);
        h.extra_json = sf_exp_string(&eb, json.data, json.len);
    }

    /* assemble: header, body, pool; string offsets move past the body */

    pool_off = sf_exp_align(&eb);

    if (eb.body.data == NULL && sf_buf_reserve(&eb.body, 1) != SF_OK) {
        rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
        goto done;
    }

    sf_exp_relocate(&h.key, pool_off);
    sf_exp_relocate(&h.seed, pool_off);
    sf_exp_relocate(&h.hash_attribute, pool_off);
    sf_exp_relocate(&h.fallback_attribute, pool_off);
    sf_exp_relocate(&h.ns_id, pool_off);
    sf_exp_relocate(&h.name, pool_off);
    sf_exp_relocate(&h.condition_json, pool_off);
    sf_exp_relocate(&h.condition, pool_off);
    sf_exp_relocate(&h.extra_json, pool_off);

    for (i = 0; i < n; i++) {
        vars = (sf_exp_variation *)
                   (eb.body.data + h.variations_off - sizeof(h)) + i;
        memcpy(&var, vars, sizeof(var));
        sf_exp_relocate(&var.value_json, pool_off);
        sf_exp_relocate(&var.key, pool_off);
        sf_exp_relocate(&var.name, pool_off);
        sf_exp_relocate(&var.layout, pool_off);
        memcpy(vars, &var, sizeof(var));
    }

    for (i = 0; i < h.nfilters; i++) {
        char  *fp = eb.body.data + h.filters_off - sizeof(h)
                    + i * sizeof(sf_exp_filter);

        memcpy(&f, fp, sizeof(f));
        sf_exp_relocate(&f.seed, pool_off);
        sf_exp_relocate(&f.attribute, pool_off);
        memcpy(fp, &f, sizeof(f));
    }

    h.seed_state = h.seed.len
                   ? sf_fnv1a32_feed(SF_FNV_OFFSET, eb.pool.data + h.seed.off
                                                    - pool_off, h.seed.len)
                   : sf_fnv1a32_feed(SF_FNV_OFFSET, eb.pool.data + h.key.off
                                                    - pool_off, h.key.len);
    h.size = (uint32_t) (pool_off + eb.pool.len);

    out->len = 0;
    if (sf_buf_append(out, &h, sizeof(h)) != SF_OK
        || sf_buf_append(out, eb.body.data, eb.body.len) != SF_OK
        || sf_buf_append(out, eb.pool.data, eb.pool.len) != SF_OK)
    {
        rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
        goto done;
    }

    rc = SF_OK;

done:

    sf_buf_free(&eb.body);
    sf_buf_free(&eb.pool);
    sf_buf_free(&json);
    return rc;
}


/* ---- reading records ---------------------------------------------------- */

static int
sf_exp_header_read(const void *rec, size_t len, sf_exp_header *h)
{
    if (len < sizeof(*h)) {
        return SF_ERR_INVALID;
    }

    memcpy(h, rec, sizeof(*h));

    if (h->magic != SF_EXP_MAGIC || h->size != len) {
        return SF_ERR_INVALID;
    }

    return SF_OK;
}


#define sf_exp_ptr(rec, s)  ((const char *) (rec) + (s).off)


static void
sf_exp_variation_read(const void *rec, const sf_exp_header *h, uint32_t i,
    sf_exp_variation *v)
{
    memcpy(v, (const char *) rec + h->variations_off
              + i * sizeof(sf_exp_variation), sizeof(*v));
}


static void
sf_exp_doubles(const void *rec, uint32_t off, uint32_t i, double *out,
    size_t n)
{
    memcpy(out, (const char *) rec + off + i * n * sizeof(double),
           n * sizeof(double));
}


int
sf_experiment_key(const void *rec, size_t len, const char **key,
    size_t *key_len)
{
    sf_exp_header  h;

    if (sf_exp_header_read(rec, len, &h) != SF_OK) {
        return SF_ERR_INVALID;
    }

    *key = sf_exp_ptr(rec, h.key);
    *key_len = h.key.len;
    return SF_OK;
}


/* an attribute path naming the attribute itself or one of its members */

static int
sf_exp_names(const char *path, size_t path_len, const char *name,
    size_t name_len)
{
    return path_len >= name_len && memcmp(path, name, name_len) == 0
           && (path_len == name_len || path[name_len] == '.');
}


int
sf_experiment_reads(const void *rec, size_t len, const char *name,
    size_t name_len)
{
    uint32_t       i;
    const char    *p, *end;
    sf_exp_filter  f;
    sf_exp_header  h;

    if (sf_exp_header_read(rec, len, &h) != SF_OK) {
        return 1;
    }

    if (h.hash_attribute.len
        ? sf_exp_names(sf_exp_ptr(rec, h.hash_attribute), h.hash_attribute.len,
                       name, name_len)
        : sf_exp_names("id", 2, name, name_len))
    {
        return 1;
    }

    if (h.fallback_attribute.len
        && sf_exp_names(sf_exp_ptr(rec, h.fallback_attribute),
                        h.fallback_attribute.len, name, name_len))
    {
        return 1;
    }

    for (i = 0; i < h.nfilters; i++) {
        memcpy(&f, (const char *) rec + h.filters_off
                   + i * sizeof(sf_exp_filter), sizeof(f));

        if (f.has_attribute
            ? sf_exp_names(sf_exp_ptr(rec, f.attribute), f.attribute.len,
                           name, name_len)
            : sf_exp_names("id", 2, name, name_len))
        {
            return 1;
        }
    }

    if (!(h.flags & SF_EXP_HAS_CONDITION)) {
        return 0;
    }

    /* the condition's text holds every name it reads: any mention counts */

    p = sf_exp_ptr(rec, h.condition_json);
    end = p + h.condition_json.len;

    for ( /* void */ ; (size_t) (end - p) >= name_len; p++) {
        if (memcmp(p, name, name_len) == 0) {
            return 1;
        }
    }

    return 0;
}


/* ---- evaluation ---------------------------------------------------------- */

/* GrowthBook's _getHashAttribute: a falsy value counts as no value. */
static int
sf_exp_attribute(const sf_value *attrs, const char *name, size_t name_len,
    char *buf, const char **s, size_t *len)
{
    const sf_value  *v;

    v = sf_value_member(attrs, name, name_len);
    if (v == NULL
        || (v->type == SF_BOOL && !v->u.boolean)
        || (v->type == SF_NUMBER && v->u.number == 0))
    {
        return 0;
    }

    if (sf_value_as_string(v, buf, s, len) != SF_OK || *len == 0) {
        return 0;
    }

    return 1;
}


static void
sf_exp_result(const void *rec, const sf_exp_header *h, int variation,
    int in_experiment, sf_assignment *out)
{
    int               n;
    sf_exp_variation  var;

    if (variation < 0 || variation >= (int) h->nvariations) {
        variation = 0;
        in_experiment = 0;
    }

    out->in_experiment = in_experiment;
    out->variation = variation;

    sf_exp_variation_read(rec, h, (uint32_t) variation, &var);

    out->value = sf_exp_ptr(rec, var.value_json);
    out->value_len = var.value_json.len;
    out->layout = var.layout.len ? sf_exp_ptr(rec, var.layout) : NULL;
    out->layout_len = var.layout.len;

    if (var.key.len) {
        out->variation_key = sf_exp_ptr(rec, var.key);
        out->variation_key_len = var.key.len;

    } else {
        /* the index as text, without snprintf: this is per request */
        char      tmp[12];
        unsigned  u = (unsigned) variation;
        int       k = 0;

        do {
            tmp[k++] = (char) ('0' + u % 10);
            u /= 10;
        } while (u);
        for (n = 0; n < k; n++) {
            out->index_text[n] = tmp[k - 1 - n];
        }
        out->variation_key = out->index_text;
        out->variation_key_len = (size_t) n;
    }
}


static int
sf_exp_filtered_out(const void *rec, const sf_exp_header *h,
    const sf_value *attrs)
{
    int            in;
    char           buf[32];
    size_t         vlen;
    double         n, r[2];
    uint32_t       i, j;
    const char    *value;
    sf_exp_filter  f;

    for (i = 0; i < h->nfilters; i++) {
        memcpy(&f, (const char *) rec + h->filters_off
                   + i * sizeof(sf_exp_filter), sizeof(f));

        if (!sf_exp_attribute(attrs,
                              f.has_attribute ? sf_exp_ptr(rec, f.attribute)
                                              : "id",
                              f.has_attribute ? f.attribute.len : 2,
                              buf, &value, &vlen))
        {
            return 1;
        }

        if (sf_hash(sf_exp_ptr(rec, f.seed), f.seed.len, value, vlen,
                    f.hash_version, &n) != SF_OK)
        {
            return 1;
        }

        in = 0;
        for (j = 0; j < f.nranges && !in; j++) {
            sf_exp_doubles(rec, f.ranges_off, j, r, 2);
            in = (n >= r[0] && n < r[1]);
        }

        if (!in) {
            return 1;
        }
    }

    return 0;
}


/* The FNV state after the hashed value, from the request's cache. */
static uint32_t
sf_exp_value_state(const sf_request *req, const char *value, size_t len)
{
    sf_hash_cache  *c = req->hash_cache;

    if (c && c->value && c->len == len
        && (c->value == value || memcmp(c->value, value, len) == 0))
    {
        return c->state;
    }

    if (c == NULL) {
        return sf_fnv1a32_feed(SF_FNV_OFFSET, value, len);
    }

    c->value = value;
    c->len = len;
    c->state = sf_fnv1a32_feed(SF_FNV_OFFSET, value, len);
    return c->state;
}


static int
sf_exp_context_forced(const sf_value *forced, const char *key,
    size_t key_len, int *variation)
{
    const sf_value  *v;

    v = sf_value_member(forced, key, key_len);
    if (v == NULL || v->type != SF_NUMBER) {
        return 0;
    }

    *variation = (int) v->u.number;
    return 1;
}


/*
 * GrowthBook's run(), in its order: variation count, enabled, query string,
 * forced variations, active, hash attribute, filters or namespace,
 * condition, bucket ranges, force, QA mode.
 */
int
sf_experiment_evaluate(const void *rec, size_t len, const sf_request *req,
    sf_assignment *out)
{
    int             variation;
    char            buf[32];
    size_t          vlen, attr_len, seed_len;
    double          ranges[2];
    uint32_t        i;
    const char     *value, *attr, *seed;
    sf_exp_header   h;

    if (sf_exp_header_read(rec, len, &h) != SF_OK) {
        return SF_ERR_INVALID;
    }

    memset(out, 0, sizeof(*out));
    out->key = sf_exp_ptr(rec, h.key);
    out->key_len = h.key.len;
    out->hash = -1;

    seed = h.seed.len ? sf_exp_ptr(rec, h.seed) : out->key;
    seed_len = h.seed.len ? h.seed.len : h.key.len;
    out->seed = seed;
    out->seed_len = seed_len;

    attr = h.hash_attribute.len ? sf_exp_ptr(rec, h.hash_attribute) : "id";
    attr_len = h.hash_attribute.len ? h.hash_attribute.len : 2;
    out->hash_attribute = attr;
    out->hash_attribute_len = attr_len;

    if (h.nvariations < 2) {
        out->reason = SF_REASON_SINGLE_VARIATION;
        goto not_in;
    }

    if (req->disabled) {
        out->reason = SF_REASON_DISABLED;
        goto not_in;
    }

    if (req->qa_override) {
        variation = sf_query_string_override(out->key, out->key_len, req->url,
                                             req->url_len,
                                             (int) h.nvariations);
        if (variation >= 0) {
            out->reason = SF_REASON_QUERY_OVERRIDE;
            sf_exp_result(rec, &h, variation, 1, out);
            return SF_OK;
        }
    }

    if (req->forced_variations
        && sf_exp_context_forced(req->forced_variations, out->key,
                                 out->key_len, &variation))
    {
        out->reason = SF_REASON_CONTEXT_FORCED;
        sf_exp_result(rec, &h, variation, 1, out);
        return SF_OK;
    }

    if (!(h.flags & SF_EXP_ACTIVE)) {
        out->reason = SF_REASON_INACTIVE;
        goto not_in;
    }

    if (!sf_exp_attribute(req->attributes, attr, attr_len, buf, &value,
                          &vlen))
    {
        if (h.fallback_attribute.len
            && sf_exp_attribute(req->attributes,
                                sf_exp_ptr(rec, h.fallback_attribute),
                                h.fallback_attribute.len, buf, &value, &vlen))
        {
            out->hash_attribute = sf_exp_ptr(rec, h.fallback_attribute);
            out->hash_attribute_len = h.fallback_attribute.len;

        } else {
            out->reason = SF_REASON_NO_ID;
            goto not_in;
        }
    }

    if (h.nfilters) {
        if (sf_exp_filtered_out(rec, &h, req->attributes)) {
            out->reason = SF_REASON_FILTERED;
            goto not_in;
        }

    } else if ((h.flags & SF_EXP_HAS_NAMESPACE)
               && !sf_in_namespace_after_id(sf_exp_value_state(req, value,
                                                               vlen),
                                            sf_exp_ptr(rec, h.ns_id),
                                            h.ns_id.len, h.ns_start,
                                            h.ns_end))
    {
        out->reason = SF_REASON_NAMESPACE;
        goto not_in;
    }

    if ((h.flags & SF_EXP_HAS_CONDITION)
        && !sf_condition_evaluate(sf_exp_ptr(rec, h.condition),
                                  h.condition.len, req->attributes,
                                  req->saved_groups))
    {
        out->reason = SF_REASON_CONDITION;
        goto not_in;
    }

    /* hashVersion is 1 or 2: the compiler refuses others */
    if (h.hash_version == 2) {
        out->hash = sf_hash_v2_after_seed(h.seed_state, value, vlen);
    } else {
        out->hash = sf_hash_v1_after_value(sf_exp_value_state(req, value,
                                                              vlen),
                                           seed, seed_len);
    }
    out->hash_computed = 1;

    variation = -1;
    for (i = 0; i < h.nvariations; i++) {
        sf_exp_doubles(rec, h.ranges_off, i, ranges, 2);
        if (out->hash >= ranges[0] && out->hash < ranges[1]) {
            variation = (int) i;
            break;
        }
    }

    if (variation < 0) {
        out->reason = SF_REASON_COVERAGE;
        goto not_in;
    }

    if (h.flags & SF_EXP_HAS_FORCE) {
        out->reason = SF_REASON_FORCED;
        sf_exp_result(rec, &h, h.force, 1, out);
        return SF_OK;
    }

    if (req->qa_mode) {
        out->reason = SF_REASON_QA_MODE;
        goto not_in;
    }

    out->reason = SF_REASON_ASSIGNED;
    out->hash_used = 1;
    sf_exp_result(rec, &h, variation, 1, out);
    return SF_OK;

not_in:

    sf_exp_result(rec, &h, 0, 0, out);
    return SF_OK;
}


/* ---- export -------------------------------------------------------------- */

static void
sf_exp_json_member(sf_buf *b, const char *name)
{
    sf_buf_append(b, ",", 1);
    sf_buf_append_json_string(b, name, strlen(name));
    sf_buf_append(b, ":", 1);
}


static void
sf_exp_json_str(sf_buf *b, const void *rec, const char *name, sf_exp_str s)
{
    sf_exp_json_member(b, name);
    sf_buf_append_json_string(b, sf_exp_ptr(rec, s), s.len);
}


static void
sf_exp_json_ranges(sf_buf *b, const void *rec, uint32_t off, uint32_t n)
{
    uint32_t  i;
    double    r[2];

    sf_buf_append(b, "[", 1);
    for (i = 0; i < n; i++) {
        sf_exp_doubles(rec, off, i, r, 2);
        sf_buf_appends(b, i ? ",[" : "[");
        sf_buf_append_js_number(b, r[0]);
        sf_buf_append(b, ",", 1);
        sf_buf_append_js_number(b, r[1]);
        sf_buf_append(b, "]", 1);
    }
    sf_buf_append(b, "]", 1);
}


int
sf_experiment_to_json(const void *rec, size_t len, sf_buf *b)
{
    int               any;
    double            w;
    uint32_t          i;
    sf_exp_header     h;
    sf_exp_filter     f;
    sf_exp_variation  var;

    if (sf_exp_header_read(rec, len, &h) != SF_OK) {
        return SF_ERR_INVALID;
    }

    sf_buf_appends(b, "{\"key\":");
    sf_buf_append_json_string(b, sf_exp_ptr(rec, h.key), h.key.len);

    if (h.name.len) {
        sf_exp_json_str(b, rec, "name", h.name);
    }

    sf_exp_json_member(b, "variations");
    for (i = 0; i < h.nvariations; i++) {
        sf_exp_variation_read(rec, &h, i, &var);
        sf_buf_append(b, i ? "," : "[", 1);
        sf_buf_append(b, sf_exp_ptr(rec, var.value_json), var.value_json.len);
    }
    sf_buf_append(b, "]", 1);

    if (h.nmeta) {
        sf_exp_json_member(b, "meta");
        for (i = 0; i < h.nmeta; i++) {
            sf_exp_variation_read(rec, &h, i, &var);
            sf_buf_append(b, i ? ",{" : "[{", 2);
            any = 0;
            if (var.key.len) {
                sf_buf_appends(b, "\"key\":");
                sf_buf_append_json_string(b, sf_exp_ptr(rec, var.key),
                                          var.key.len);
                any = 1;
            }
            if (var.name.len) {
                sf_buf_appends(b, any ? ",\"name\":" : "\"name\":");
                sf_buf_append_json_string(b, sf_exp_ptr(rec, var.name),
                                          var.name.len);
            }
            sf_buf_append(b, "}", 1);
        }
        sf_buf_append(b, "]", 1);
    }

    if (h.nweights) {
        sf_exp_json_member(b, "weights");
        for (i = 0; i < h.nweights; i++) {
            sf_exp_doubles(rec, h.weights_off, i, &w, 1);
            sf_buf_append(b, i ? "," : "[", 1);
            sf_buf_append_js_number(b, w);
        }
        sf_buf_append(b, "]", 1);
    }

    if (h.flags & SF_EXP_HAS_COVERAGE) {
        sf_exp_json_member(b, "coverage");
        sf_buf_append_js_number(b, h.coverage);
    }

    if (h.nranges) {
        sf_exp_json_member(b, "ranges");
        sf_exp_json_ranges(b, rec, h.given_ranges_off, h.nranges);
    }

    if (h.flags & SF_EXP_HAS_NAMESPACE) {
        sf_exp_json_member(b, "namespace");
        sf_buf_append(b, "[", 1);
        sf_buf_append_json_string(b, sf_exp_ptr(rec, h.ns_id), h.ns_id.len);
        sf_buf_append(b, ",", 1);
        sf_buf_append_js_number(b, h.ns_start);
        sf_buf_append(b, ",", 1);
        sf_buf_append_js_number(b, h.ns_end);
        sf_buf_append(b, "]", 1);
    }

    if (h.hash_attribute.len) {
        sf_exp_json_str(b, rec, "hashAttribute", h.hash_attribute);
    }
    if (h.fallback_attribute.len) {
        sf_exp_json_str(b, rec, "fallbackAttribute", h.fallback_attribute);
    }
    if (h.flags & SF_EXP_HAS_VERSION) {
        sf_exp_json_member(b, "hashVersion");
        sf_buf_printf(b, "%d", h.hash_version);
    }
    if (h.seed.len) {
        sf_exp_json_str(b, rec, "seed", h.seed);
    }
    if (h.flags & SF_EXP_HAS_ACTIVE) {
        sf_exp_json_member(b, "active");
        sf_buf_appends(b, (h.flags & SF_EXP_ACTIVE) ? "true" : "false");
    }
    if (h.flags & SF_EXP_HAS_FORCE) {
        sf_exp_json_member(b, "force");
        sf_buf_printf(b, "%d", h.force);
    }

    if (h.nfilters) {
        sf_exp_json_member(b, "filters");
        for (i = 0; i < h.nfilters; i++) {
            memcpy(&f, (const char *) rec + h.filters_off
                       + i * sizeof(sf_exp_filter), sizeof(f));
            sf_buf_appends(b, i ? ",{\"seed\":" : "[{\"seed\":");
            sf_buf_append_json_string(b, sf_exp_ptr(rec, f.seed), f.seed.len);
            if (f.has_attribute) {
                sf_exp_json_str(b, rec, "attribute", f.attribute);
            }
            sf_buf_printf(b, ",\"hashVersion\":%d,\"ranges\":",
                          f.hash_version);
            sf_exp_json_ranges(b, rec, f.ranges_off, f.nranges);
            sf_buf_append(b, "}", 1);
        }
        sf_buf_append(b, "]", 1);
    }

    if (h.flags & SF_EXP_HAS_CONDITION) {
        sf_exp_json_member(b, "condition");
        sf_buf_append(b, sf_exp_ptr(rec, h.condition_json),
                      h.condition_json.len);
    }

    if (h.extra_json.len > 2) {
        /* the extra members, without their object's braces */
        sf_buf_append(b, ",", 1);
        sf_buf_append(b, sf_exp_ptr(rec, h.extra_json) + 1,
                      h.extra_json.len - 2);
    }

    return sf_buf_append(b, "}", 1);
}
