/*
 * Page layouts: which modules a page shows, in which order, for this
 * visitor.  The imported object (see storefront.h) is compiled into one
 * record: layout includes expanded, conditions compiled, parameters
 * turned into URL query strings, references and loops checked.
 *
 * Record layout (offsets from the record's start, read with memcpy):
 *   sf_pg_header, then tables of sf_pg_module, sf_pg_layout, sf_pg_entry,
 *   sf_pg_page, sf_pg_rule, sf_pg_cross, then compiled conditions and
 *   strings.
 */

#include <stdlib.h>
#include <string.h>

#include "storefront.h"


#define SF_PG_MAGIC        0x31475853u     /* "SXG1" */
#define SF_PG_MAX_ITEMS    1024
#define SF_PG_MAX_DEPTH    16

#define SF_PG_ENTRY_MODULE  0
#define SF_PG_ENTRY_DERIVE  1

#define SF_PG_RULE_WHEN        0
#define SF_PG_RULE_EXPERIMENT  1

typedef struct {
    uint32_t  off;
    uint32_t  len;
} sf_pg_str;

typedef struct {
    uint32_t   magic;
    uint32_t   size;
    uint32_t   nmodules, nlayouts, nentries, npages, nrules, ncross;
    uint32_t   modules, layouts, entries, pages, rules, cross;
    sf_pg_str  source;
} sf_pg_header;

typedef struct {
    sf_pg_str  name, fragment, fallback, ad_slot;
    uint32_t   vary;
    uint32_t   pad;
} sf_pg_module;

typedef struct {
    sf_pg_str  name;
    uint32_t   first, n;
} sf_pg_layout;

typedef struct {
    uint32_t   kind;
    uint32_t   module;
    sf_pg_str  params;
    uint32_t   max;
    uint32_t   pad;
} sf_pg_entry;

typedef struct {
    sf_pg_str  name;
    uint32_t   default_layout;
    uint32_t   first_rule, nrules;
    uint32_t   pad;
} sf_pg_page;

typedef struct {
    sf_pg_str  name;
    uint32_t   kind;
    uint32_t   layout;
    sf_pg_str  condition;
    sf_pg_str  experiment;
    int64_t    from, to;          /* 0: open */
} sf_pg_rule;

typedef struct {
    sf_pg_str  bought, recommend;
} sf_pg_cross;


static const char  *sf_pg_outcomes[] = {
    "matched", "condition", "window", "not_in_experiment", "no_layout",
    "skipped"
};


const char *
sf_page_outcome_name(sf_page_rule_outcome o)
{
    return (unsigned) o <= SF_PAGE_RULE_SKIPPED ? sf_pg_outcomes[o]
                                                : "unknown";
}


/* ---- compiling ------------------------------------------------------------------ */

typedef struct {
    sf_buf          modules, layouts, entries, pages, rules, cross, pool;
    sf_error       *err;
    const sf_value *mods;          /* "modules" */
    const sf_value *lays;          /* "layouts" */
    int             state[SF_PG_MAX_ITEMS];   /* layout: 0 new, 1 busy, 2 done */
    uint32_t        first[SF_PG_MAX_ITEMS];
    uint32_t        count[SF_PG_MAX_ITEMS];
    const char     *path[SF_PG_MAX_DEPTH];
    int             depth;
} sf_pg_builder;


static sf_pg_str
sf_pg_string(sf_pg_builder *b, const char *s, size_t len)
{
    sf_pg_str  r;

    r.off = (uint32_t) b->pool.len;
    r.len = (uint32_t) len;
    sf_buf_append(&b->pool, s, len);
    return r;
}


static int
sf_pg_name_ok(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || len > 64) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'
              || s[i] == '.'))
        {
            return 0;
        }
    }
    return 1;
}


static long
sf_pg_index(const sf_value *obj, const char *name, size_t len)
{
    size_t  i;

    for (i = 0; obj && obj->type == SF_OBJECT && i < obj->u.obj.n; i++) {
        if (obj->u.obj.members[i].name_len == len
            && memcmp(obj->u.obj.members[i].name, name, len) == 0)
        {
            return (long) i;
        }
    }
    return -1;
}


static void
sf_pg_urlencode(sf_buf *b, const char *s, size_t len)
{
    size_t          i;
    unsigned char   c;

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
            || c == '~')
        {
            sf_buf_append(b, &s[i], 1);
        } else {
            sf_buf_printf(b, "%%%02X", c);
        }
    }
}


/* {"a": 1, "b": "x"} -> "a=1&b=x" */
static int
sf_pg_params(sf_pg_builder *b, const sf_value *params, const char *layout,
    sf_pg_str *out)
{
    size_t           i;
    sf_buf           q;
    const sf_member *m;

    out->off = 0;
    out->len = 0;

    if (params == NULL) {
        return SF_OK;
    }
    if (params->type != SF_OBJECT) {
        return sf_error_set(b->err, SF_ERR_INVALID, "layout \"%s\": "
                            "\"params\" must be an object", layout);
    }

    sf_buf_init(&q);
    for (i = 0; i < params->u.obj.n; i++) {
        m = &params->u.obj.members[i];
        if (i) {
            sf_buf_append(&q, "&", 1);
        }
        sf_pg_urlencode(&q, m->name, m->name_len);
        sf_buf_append(&q, "=", 1);

        switch (m->value.type) {
        case SF_STRING:
            sf_pg_urlencode(&q, m->value.u.str.p, m->value.u.str.len);
            break;
        case SF_NUMBER:
            sf_buf_append_js_number(&q, m->value.u.number);
            break;
        case SF_BOOL:
            sf_buf_appends(&q, m->value.u.boolean ? "true" : "false");
            break;
        default:
            sf_buf_free(&q);
            return sf_error_set(b->err, SF_ERR_INVALID, "layout \"%s\": "
                                "parameter \"%.*s\" must be a string, number "
                                "or boolean", layout, (int) m->name_len,
                                m->name);
        }
    }

    *out = sf_pg_string(b, q.data ? q.data : "", q.len);
    sf_buf_free(&q);
    return SF_OK;
}


static int sf_pg_expand_layout(sf_pg_builder *b, long idx);


static int
sf_pg_entry_add(sf_pg_builder *b, sf_buf *run, const char *layout,
    const sf_value *e)
{
    long             mod, inc;
    double           max;
    sf_pg_entry      entry;
    const sf_value  *v, *d;

    if (e->type != SF_OBJECT) {
        return sf_error_set(b->err, SF_ERR_INVALID, "layout \"%s\": each "
                            "entry must be an object", layout);
    }

    memset(&entry, 0, sizeof(entry));

    v = sf_value_member(e, "layout", 6);
    if (v != NULL) {
        /* an included layout: its entries, expanded in place */
        if (v->type != SF_STRING) {
            return sf_error_set(b->err, SF_ERR_INVALID, "layout \"%s\": "
                                "\"layout\" must name a layout", layout);
        }
        inc = sf_pg_index(b->lays, v->u.str.p, v->u.str.len);
        if (inc < 0) {
            return sf_error_set(b->err, SF_ERR_INVALID, "layout \"%s\" "
                                "includes unknown layout \"%.*s\"", layout,
                                (int) v->u.str.len, v->u.str.p);
        }
        if (sf_pg_expand_layout(b, inc) != SF_OK) {
            return SF_ERR_INVALID;
        }
        return sf_buf_append(run, b->entries.data
                             + b->first[inc] * sizeof(sf_pg_entry),
                             b->count[inc] * sizeof(sf_pg_entry));
    }

    v = sf_value_member(e, "module", 6);
    if (v == NULL || v->type != SF_STRING) {
        return sf_error_set(b->err, SF_ERR_INVALID, "layout \"%s\": an entry "
                            "needs \"module\" (or \"layout\")", layout);
    }
    mod = sf_pg_index(b->mods, v->u.str.p, v->u.str.len);
    if (mod < 0) {
        return sf_error_set(b->err, SF_ERR_INVALID, "layout \"%s\" uses "
                            "unknown module \"%.*s\"", layout,
                            (int) v->u.str.len, v->u.str.p);
    }
    entry.module = (uint32_t) mod;

    d = sf_value_member(e, "derive", 6);
    if (d != NULL) {
        if (d->type != SF_STRING || d->u.str.len != 10
            || memcmp(d->u.str.p, "cross_sell", 10) != 0)
        {
            return sf_error_set(b->err, SF_ERR_INVALID, "layout \"%s\": "
                                "\"derive\" must be \"cross_sell\"", layout);
        }
        entry.kind = SF_PG_ENTRY_DERIVE;
        entry.max = 1;
        v = sf_value_member(e, "max", 3);
        if (v != NULL) {
            max = v->type == SF_NUMBER ? v->u.number : 0;
            if (max < 1 || max > 8) {
                return sf_error_set(b->err, SF_ERR_INVALID, "layout \"%s\": "
                                    "\"max\" must be 1 to 8", layout);
            }
            entry.max = (uint32_t) max;
        }
    }

    if (sf_pg_params(b, sf_value_member(e, "params", 6), layout,
                     &entry.params))
    {
        return SF_ERR_INVALID;
    }

    return sf_buf_append(run, &entry, sizeof(entry));
}


/* Expands layout idx into the entries table once; finds loops. */
static int
sf_pg_expand_layout(sf_pg_builder *b, long idx)
{
    int              i, rc;
    char             loop[512];
    size_t           k;
    sf_buf           run;
    const sf_member *m;

    m = &b->lays->u.obj.members[idx];

    if (b->state[idx] == 2) {
        return SF_OK;
    }

    if (b->state[idx] == 1 || b->depth == SF_PG_MAX_DEPTH) {
        loop[0] = '\0';
        for (i = 0; i < b->depth; i++) {
            snprintf(loop + strlen(loop), sizeof(loop) - strlen(loop),
                     "%s -> ", b->path[i]);
        }
        return sf_error_set(b->err, SF_ERR_INVALID, "layouts include each "
                            "other in a loop: %s%.*s", loop,
                            (int) m->name_len, m->name);
    }

    if (m->value.type != SF_ARRAY) {
        return sf_error_set(b->err, SF_ERR_INVALID, "layout \"%.*s\" must be "
                            "an array of modules", (int) m->name_len,
                            m->name);
    }

    b->state[idx] = 1;
    b->path[b->depth++] = m->name;

    /* this layout's run is built apart: includes expand into it */
    sf_buf_init(&run);
    for (k = 0; k < m->value.u.arr.n; k++) {
        if (sf_pg_entry_add(b, &run, m->name, &m->value.u.arr.items[k])
            != SF_OK)
        {
            sf_buf_free(&run);
            return SF_ERR_INVALID;
        }
    }

    b->first[idx] = (uint32_t) (b->entries.len / sizeof(sf_pg_entry));
    b->count[idx] = (uint32_t) (run.len / sizeof(sf_pg_entry));
    rc = sf_buf_append(&b->entries, run.data, run.len);
    sf_buf_free(&run);
    if (rc != SF_OK) {
        return sf_error_set(b->err, SF_ERR_NOMEM, "out of memory");
    }

    b->depth--;
    b->state[idx] = 2;

    if (b->count[idx] == 0) {
        return sf_error_set(b->err, SF_ERR_INVALID, "layout \"%.*s\" is empty",
                            (int) m->name_len, m->name);
    }
    if (b->count[idx] > SF_PAGE_MAX_MODULES) {
        return sf_error_set(b->err, SF_ERR_INVALID, "layout \"%.*s\" has more "
                            "than %d modules", (int) m->name_len, m->name,
                            SF_PAGE_MAX_MODULES);
    }
    return SF_OK;
}


static int
sf_pg_modules(sf_pg_builder *b)
{
    size_t           i, j;
    sf_pg_module     mod;
    const sf_member *m;
    const sf_value  *v, *f;

    if (b->mods == NULL || b->mods->type != SF_OBJECT
        || b->mods->u.obj.n == 0 || b->mods->u.obj.n > SF_PG_MAX_ITEMS)
    {
        return sf_error_set(b->err, SF_ERR_INVALID, "\"modules\" must be an "
                            "object of 1 to %d modules", SF_PG_MAX_ITEMS);
    }

    for (i = 0; i < b->mods->u.obj.n; i++) {
        m = &b->mods->u.obj.members[i];
        memset(&mod, 0, sizeof(mod));

        if (!sf_pg_name_ok(m->name, m->name_len) || m->value.type != SF_OBJECT)
        {
            return sf_error_set(b->err, SF_ERR_INVALID, "module \"%.*s\": "
                                "names are letters, digits, _ - . and a "
                                "module is an object",
                                (int) (m->name_len > 64 ? 64 : m->name_len),
                                m->name);
        }
        mod.name = sf_pg_string(b, m->name, m->name_len);

        f = sf_value_member(&m->value, "fragment", 8);
        if (f == NULL || f->type != SF_STRING || f->u.str.len == 0
            || f->u.str.p[0] != '/' || memchr(f->u.str.p, '?', f->u.str.len)
            || memchr(f->u.str.p, ' ', f->u.str.len))
        {
            return sf_error_set(b->err, SF_ERR_INVALID, "module \"%.*s\": "
                                "\"fragment\" must be a URI path starting "
                                "with / (no query)", (int) m->name_len,
                                m->name);
        }
        mod.fragment = sf_pg_string(b, f->u.str.p, f->u.str.len);

        f = sf_value_member(&m->value, "fallback", 8);
        if (f != NULL) {
            if (f->type != SF_STRING) {
                return sf_error_set(b->err, SF_ERR_INVALID, "module \"%.*s\": "
                                    "\"fallback\" must be a string",
                                    (int) m->name_len, m->name);
            }
            mod.fallback = sf_pg_string(b, f->u.str.p, f->u.str.len);
        }

        f = sf_value_member(&m->value, "ad_slot", 7);
        if (f != NULL) {
            if (f->type != SF_STRING || !sf_pg_name_ok(f->u.str.p,
                                                       f->u.str.len))
            {
                return sf_error_set(b->err, SF_ERR_INVALID, "module \"%.*s\": "
                                    "\"ad_slot\" must name a slot type",
                                    (int) m->name_len, m->name);
            }
            mod.ad_slot = sf_pg_string(b, f->u.str.p, f->u.str.len);
        }

        v = sf_value_member(&m->value, "vary", 4);
        for (j = 0; v != NULL && j < (v->type == SF_ARRAY ? v->u.arr.n : 1);
             j++)
        {
            const sf_value  *x = v->type == SF_ARRAY ? &v->u.arr.items[j] : v;

            if (x->type == SF_STRING && x->u.str.len == 7
                && !memcmp(x->u.str.p, "segment", 7))
            {
                mod.vary |= SF_VARY_SEGMENT;
            } else if (x->type == SF_STRING && x->u.str.len == 4
                       && !memcmp(x->u.str.p, "tier", 4))
            {
                mod.vary |= SF_VARY_TIER;
            } else if (x->type == SF_STRING && x->u.str.len == 9
                       && !memcmp(x->u.str.p, "lifecycle", 9))
            {
                mod.vary |= SF_VARY_LIFECYCLE;
            } else if (x->type == SF_STRING && x->u.str.len == 8
                       && !memcmp(x->u.str.p, "variants", 8))
            {
                mod.vary |= SF_VARY_VARIANTS;
            } else {
                return sf_error_set(b->err, SF_ERR_INVALID, "module \"%.*s\": "
                                    "\"vary\" may list segment, tier, "
                                    "lifecycle and variants (never the "
                                    "user)", (int) m->name_len, m->name);
            }
        }

        sf_buf_append(&b->modules, &mod, sizeof(mod));
    }

    return SF_OK;
}


static int
sf_pg_compile_rule(sf_pg_builder *b, const char *page, size_t i, const sf_value *r)
{
    long             layout;
    sf_buf           cond;
    sf_pg_rule       rule;
    const sf_value  *v;

    memset(&rule, 0, sizeof(rule));

    if (r->type != SF_OBJECT) {
        return sf_error_set(b->err, SF_ERR_INVALID, "page \"%s\": rule %zu "
                            "must be an object", page, i);
    }

    v = sf_value_member(r, "name", 4);
    if (v != NULL && (v->type != SF_STRING || v->u.str.len == 0)) {
        return sf_error_set(b->err, SF_ERR_INVALID, "page \"%s\": rule %zu: "
                            "\"name\" must be a string", page, i);
    }
    if (v != NULL) {
        rule.name = sf_pg_string(b, v->u.str.p, v->u.str.len);
    } else {
        char  name[32];

        snprintf(name, sizeof(name), "rule-%zu", i + 1);
        rule.name = sf_pg_string(b, name, strlen(name));
    }

    v = sf_value_member(r, "experiment", 10);
    if (v != NULL) {
        if (v->type != SF_STRING || v->u.str.len == 0) {
            return sf_error_set(b->err, SF_ERR_INVALID, "page \"%s\": rule "
                                "%zu: \"experiment\" must be a key", page, i);
        }
        rule.kind = SF_PG_RULE_EXPERIMENT;
        rule.experiment = sf_pg_string(b, v->u.str.p, v->u.str.len);

    } else {
        v = sf_value_member(r, "layout", 6);
        layout = v && v->type == SF_STRING
                 ? sf_pg_index(b->lays, v->u.str.p, v->u.str.len) : -1;
        if (layout < 0) {
            return sf_error_set(b->err, SF_ERR_INVALID, "page \"%s\": rule "
                                "%zu needs a known \"layout\" (or an "
                                "\"experiment\")", page, i);
        }
        rule.layout = (uint32_t) layout;
    }

    v = sf_value_member(r, "when", 4);
    if (v != NULL) {
        sf_buf_init(&cond);
        if (sf_condition_compile(v, &cond, b->err) != SF_OK) {
            char  msg[sizeof(b->err->msg)];

            memcpy(msg, b->err->msg, sizeof(msg));
            sf_buf_free(&cond);
            return sf_error_set(b->err, SF_ERR_INVALID, "page \"%s\": rule "
                                "%zu: \"when\": %.300s", page, i, msg);
        }
        rule.condition = sf_pg_string(b, cond.data, cond.len);
        sf_buf_free(&cond);
    }

    v = sf_value_member(r, "from", 4);
    if (v != NULL && sf_parse_time(v, &rule.from) != SF_OK) {
        return sf_error_set(b->err, SF_ERR_INVALID, "page \"%s\": rule %zu: "
                            "\"from\" must be a time", page, i);
    }
    v = sf_value_member(r, "to", 2);
    if (v != NULL && sf_parse_time(v, &rule.to) != SF_OK) {
        return sf_error_set(b->err, SF_ERR_INVALID, "page \"%s\": rule %zu: "
                            "\"to\" must be a time", page, i);
    }
    if (rule.from && rule.to && rule.to <= rule.from) {
        return sf_error_set(b->err, SF_ERR_INVALID, "page \"%s\": rule %zu: "
                            "\"to\" must come after \"from\"", page, i);
    }

    return sf_buf_append(&b->rules, &rule, sizeof(rule));
}


static int
sf_pg_pages(sf_pg_builder *b, const sf_value *pages)
{
    long             def;
    char             name[80];
    size_t           i, k;
    sf_pg_page       page;
    const sf_member *m;
    const sf_value  *v;

    if (pages == NULL || pages->type != SF_OBJECT || pages->u.obj.n == 0) {
        return sf_error_set(b->err, SF_ERR_INVALID, "\"pages\" must be an "
                            "object of page types");
    }

    for (i = 0; i < pages->u.obj.n; i++) {
        m = &pages->u.obj.members[i];
        memset(&page, 0, sizeof(page));

        if (!sf_pg_name_ok(m->name, m->name_len)
            || m->value.type != SF_OBJECT)
        {
            return sf_error_set(b->err, SF_ERR_INVALID, "page \"%.*s\": names "
                                "are letters, digits, _ - . and a page is an "
                                "object", (int) (m->name_len > 64 ? 64
                                                               : m->name_len),
                                m->name);
        }
        snprintf(name, sizeof(name), "%.*s", (int) m->name_len, m->name);
        page.name = sf_pg_string(b, m->name, m->name_len);

        v = sf_value_member(&m->value, "default", 7);
        def = v && v->type == SF_STRING
              ? sf_pg_index(b->lays, v->u.str.p, v->u.str.len) : -1;
        if (def < 0) {
            return sf_error_set(b->err, SF_ERR_INVALID, "page \"%s\" needs a "
                                "\"default\" naming a known layout", name);
        }
        page.default_layout = (uint32_t) def;

        page.first_rule = (uint32_t) (b->rules.len / sizeof(sf_pg_rule));
        v = sf_value_member(&m->value, "rules", 5);
        if (v != NULL) {
            if (v->type != SF_ARRAY) {
                return sf_error_set(b->err, SF_ERR_INVALID, "page \"%s\": "
                                    "\"rules\" must be an array", name);
            }
            for (k = 0; k < v->u.arr.n; k++) {
                if (sf_pg_compile_rule(b, name, k, &v->u.arr.items[k]) != SF_OK) {
                    return SF_ERR_INVALID;
                }
            }
            page.nrules = (uint32_t) v->u.arr.n;
        }

        sf_buf_append(&b->pages, &page, sizeof(page));
    }

    return SF_OK;
}


static int
sf_pg_cross_sell(sf_pg_builder *b, const sf_value *cs)
{
    size_t           i, j;
    sf_pg_cross      row;
    const sf_value  *r, *bought, *rec;

    if (cs == NULL) {
        return SF_OK;
    }
    if (cs->type != SF_ARRAY) {
        return sf_error_set(b->err, SF_ERR_INVALID, "\"cross_sell\" must be "
                            "an array of {\"bought\", \"recommend\"}");
    }

    for (i = 0; i < cs->u.arr.n; i++) {
        r = &cs->u.arr.items[i];
        bought = sf_value_member(r, "bought", 6);
        rec = sf_value_member(r, "recommend", 9);
        if (bought == NULL || bought->type != SF_STRING || rec == NULL
            || (rec->type != SF_ARRAY && rec->type != SF_STRING))
        {
            return sf_error_set(b->err, SF_ERR_INVALID, "cross_sell[%zu] "
                                "needs \"bought\" and \"recommend\"", i);
        }

        for (j = 0; j < (rec->type == SF_ARRAY ? rec->u.arr.n : 1); j++) {
            const sf_value  *x = rec->type == SF_ARRAY ? &rec->u.arr.items[j]
                                                       : rec;

            if (x->type != SF_STRING || x->u.str.len == 0) {
                return sf_error_set(b->err, SF_ERR_INVALID, "cross_sell[%zu]: "
                                    "\"recommend\" holds category names", i);
            }
            row.bought = sf_pg_string(b, bought->u.str.p, bought->u.str.len);
            row.recommend = sf_pg_string(b, x->u.str.p, x->u.str.len);
            sf_buf_append(&b->cross, &row, sizeof(row));
        }
    }

    return SF_OK;
}


static void
sf_pg_reloc(sf_pg_str *s, uint32_t base)
{
    s->off += base;
}


int
sf_pages_compile(const sf_value *doc, sf_buf *out, sf_error *err)
{
    int            rc;
    size_t         i, n;
    sf_buf         src;
    uint32_t       base, off;
    sf_pg_header   h;
    sf_pg_builder *b;

    if (doc == NULL || doc->type != SF_OBJECT) {
        return sf_error_set(err, SF_ERR_INVALID, "page layouts must be an "
                            "object");
    }

    b = calloc(1, sizeof(sf_pg_builder));
    if (b == NULL) {
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }
    b->err = err;
    b->mods = sf_value_member(doc, "modules", 7);
    b->lays = sf_value_member(doc, "layouts", 7);

    sf_buf_init(&src);
    rc = sf_pg_modules(b);

    if (rc == SF_OK && (b->lays == NULL || b->lays->type != SF_OBJECT
                        || b->lays->u.obj.n == 0
                        || b->lays->u.obj.n > SF_PG_MAX_ITEMS))
    {
        rc = sf_error_set(err, SF_ERR_INVALID, "\"layouts\" must be an object "
                          "of 1 to %d layouts", SF_PG_MAX_ITEMS);
    }

    for (i = 0; rc == SF_OK && i < b->lays->u.obj.n; i++) {
        if (!sf_pg_name_ok(b->lays->u.obj.members[i].name,
                           b->lays->u.obj.members[i].name_len))
        {
            rc = sf_error_set(err, SF_ERR_INVALID, "layout names are "
                              "letters, digits, _ - .");
            break;
        }
        rc = sf_pg_expand_layout(b, (long) i);
    }

    if (rc == SF_OK) {
        /* the layouts table, in "layouts" order */
        for (i = 0; i < b->lays->u.obj.n; i++) {
            sf_pg_layout  l;

            l.name = sf_pg_string(b, b->lays->u.obj.members[i].name,
                                  b->lays->u.obj.members[i].name_len);
            l.first = b->first[i];
            l.n = b->count[i];
            sf_buf_append(&b->layouts, &l, sizeof(l));
        }
        rc = sf_pg_pages(b, sf_value_member(doc, "pages", 5));
    }

    if (rc == SF_OK) {
        rc = sf_pg_cross_sell(b, sf_value_member(doc, "cross_sell", 10));
    }

    for (i = 0; rc == SF_OK && i < doc->u.obj.n; i++) {
        const sf_member  *m = &doc->u.obj.members[i];

        if (sf_pg_index(doc, m->name, m->name_len) >= 0
            && !((m->name_len == 7 && !memcmp(m->name, "modules", 7))
                 || (m->name_len == 7 && !memcmp(m->name, "layouts", 7))
                 || (m->name_len == 5 && !memcmp(m->name, "pages", 5))
                 || (m->name_len == 10 && !memcmp(m->name, "cross_sell", 10))))
        {
            rc = sf_error_set(err, SF_ERR_INVALID, "unknown member \"%.*s\" "
                              "in page layouts", (int) m->name_len, m->name);
        }
    }

    if (rc == SF_OK) {
        sf_json_write(&src, doc);

        memset(&h, 0, sizeof(h));
        h.magic = SF_PG_MAGIC;
        h.nmodules = (uint32_t) (b->modules.len / sizeof(sf_pg_module));
        h.nlayouts = (uint32_t) (b->layouts.len / sizeof(sf_pg_layout));
        h.nentries = (uint32_t) (b->entries.len / sizeof(sf_pg_entry));
        h.npages = (uint32_t) (b->pages.len / sizeof(sf_pg_page));
        h.nrules = (uint32_t) (b->rules.len / sizeof(sf_pg_rule));
        h.ncross = (uint32_t) (b->cross.len / sizeof(sf_pg_cross));

        off = sizeof(h);
        h.modules = off;
        off += (uint32_t) b->modules.len;
        h.layouts = off;
        off += (uint32_t) b->layouts.len;
        h.entries = off;
        off += (uint32_t) b->entries.len;
        h.pages = off;
        off += (uint32_t) b->pages.len;
        h.rules = off;
        off += (uint32_t) b->rules.len;
        h.cross = off;
        off += (uint32_t) b->cross.len;
        base = off;

        h.source = sf_pg_string(b, src.data, src.len);
        sf_pg_reloc(&h.source, base);
        h.size = base + (uint32_t) b->pool.len;

        /* string offsets move past the tables */
        for (n = 0; n < h.nmodules; n++) {
            sf_pg_module  *m = (sf_pg_module *) b->modules.data + n;

            sf_pg_reloc(&m->name, base);
            sf_pg_reloc(&m->fragment, base);
            sf_pg_reloc(&m->fallback, base);
            sf_pg_reloc(&m->ad_slot, base);
        }
        for (n = 0; n < h.nlayouts; n++) {
            sf_pg_reloc(&((sf_pg_layout *) b->layouts.data)[n].name, base);
        }
        for (n = 0; n < h.nentries; n++) {
            sf_pg_reloc(&((sf_pg_entry *) b->entries.data)[n].params, base);
        }
        for (n = 0; n < h.npages; n++) {
            sf_pg_reloc(&((sf_pg_page *) b->pages.data)[n].name, base);
        }
        for (n = 0; n < h.nrules; n++) {
            sf_pg_rule  *r = (sf_pg_rule *) b->rules.data + n;

            sf_pg_reloc(&r->name, base);
            sf_pg_reloc(&r->condition, base);
            sf_pg_reloc(&r->experiment, base);
        }
        for (n = 0; n < h.ncross; n++) {
            sf_pg_cross  *c = (sf_pg_cross *) b->cross.data + n;

            sf_pg_reloc(&c->bought, base);
            sf_pg_reloc(&c->recommend, base);
        }

        out->len = 0;
        if (sf_buf_append(out, &h, sizeof(h)) != SF_OK
            || sf_buf_append(out, b->modules.data, b->modules.len) != SF_OK
            || sf_buf_append(out, b->layouts.data, b->layouts.len) != SF_OK
            || sf_buf_append(out, b->entries.data, b->entries.len) != SF_OK
            || sf_buf_append(out, b->pages.data, b->pages.len) != SF_OK
            || sf_buf_append(out, b->rules.data, b->rules.len) != SF_OK
            || sf_buf_append(out, b->cross.data, b->cross.len) != SF_OK
            || sf_buf_append(out, b->pool.data, b->pool.len) != SF_OK)
        {
            rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
        }
    }

    sf_buf_free(&src);
    sf_buf_free(&b->modules);
    sf_buf_free(&b->layouts);
    sf_buf_free(&b->entries);
    sf_buf_free(&b->pages);
    sf_buf_free(&b->rules);
    sf_buf_free(&b->cross);
    sf_buf_free(&b->pool);
    free(b);
    return rc;
}


/* ---- reading ------------------------------------------------------------------------ */

#define sf_pg_ptr(blob, s)  ((const char *) (blob) + (s).off)


static int
sf_pg_header_read(const void *blob, size_t len, sf_pg_header *h)
{
    if (blob == NULL || len < sizeof(*h)) {
        return SF_ERR_INVALID;
    }
    memcpy(h, blob, sizeof(*h));
    return (h->magic == SF_PG_MAGIC && h->size == len) ? SF_OK
                                                        : SF_ERR_INVALID;
}


#define sf_pg_get(blob, h, table, type, i, out)                              \
    memcpy(out, (const char *) (blob) + (h)->table + (i) * sizeof(type),     \
           sizeof(type))


int
sf_pages_to_json(const void *blob, size_t len, sf_buf *out)
{
    sf_pg_header  h;

    if (sf_pg_header_read(blob, len, &h) != SF_OK) {
        return SF_ERR_INVALID;
    }
    return sf_buf_append(out, sf_pg_ptr(blob, h.source), h.source.len);
}


static long
sf_pg_find_layout(const void *blob, const sf_pg_header *h, const char *name,
    size_t len)
{
    uint32_t      i;
    sf_pg_layout  l;

    for (i = 0; i < h->nlayouts; i++) {
        sf_pg_get(blob, h, layouts, sf_pg_layout, i, &l);
        if (l.name.len == len && memcmp(sf_pg_ptr(blob, l.name), name, len)
                                 == 0)
        {
            return (long) i;
        }
    }
    return -1;
}


int
sf_pages_has_layout(const void *blob, size_t len, const char *name,
    size_t name_len)
{
    sf_pg_header  h;

    if (sf_pg_header_read(blob, len, &h) != SF_OK) {
        return 0;
    }
    return sf_pg_find_layout(blob, &h, name, name_len) >= 0;
}


/* The attributes plus "experiments": {key: variation key, ...}. */
static int
sf_pg_attributes(const sf_value *attrs, const sf_assignment *a, size_t na,
    sf_alloc_fn alloc, void *ctx, sf_value *out)
{
    size_t      i, n, nattr;
    sf_member  *m, *e;

    nattr = (attrs && attrs->type == SF_OBJECT) ? attrs->u.obj.n : 0;
    m = alloc(ctx, (nattr + 1) * sizeof(sf_member));
    e = alloc(ctx, (na ? na : 1) * sizeof(sf_member));
    if (m == NULL || e == NULL) {
        return SF_ERR_NOMEM;
    }

    if (nattr) {
        memcpy(m, attrs->u.obj.members, nattr * sizeof(sf_member));
    }

    n = 0;
    for (i = 0; i < na; i++) {
        if (a[i].in_experiment) {
            e[n].name = a[i].key;
            e[n].name_len = a[i].key_len;
            e[n].value.type = SF_STRING;
            e[n].value.u.str.p = a[i].variation_key;
            e[n].value.u.str.len = a[i].variation_key_len;
            n++;
        }
    }

    m[nattr].name = "experiments";
    m[nattr].name_len = 11;
    m[nattr].value.type = SF_OBJECT;
    m[nattr].value.u.obj.members = e;
    m[nattr].value.u.obj.n = n;

    out->type = SF_OBJECT;
    out->u.obj.members = m;
    out->u.obj.n = nattr + 1;
    return SF_OK;
}


static void
sf_pg_module_out(const void *blob, const sf_pg_header *h, uint32_t idx,
    sf_page_module *out)
{
    sf_pg_module  mod;

    sf_pg_get(blob, h, modules, sf_pg_module, idx, &mod);
    out->module = sf_pg_ptr(blob, mod.name);
    out->module_len = mod.name.len;
    out->fragment = sf_pg_ptr(blob, mod.fragment);
    out->fragment_len = mod.fragment.len;
    out->fallback = sf_pg_ptr(blob, mod.fallback);
    out->fallback_len = mod.fallback.len;
    out->vary = mod.vary;
    out->ad_slot = mod.ad_slot.len ? sf_pg_ptr(blob, mod.ad_slot) : NULL;
    out->ad_slot_len = mod.ad_slot.len;
}


/* Cross-sell: recommendations for the categories bought, most first. */
static void
sf_pg_derive(const void *blob, const sf_pg_header *h, const sf_pg_entry *e,
    const sf_value *attrs, sf_alloc_fn alloc, void *ctx, sf_page_decision *d)
{
    size_t           i, k, added;
    uint32_t         c;
    sf_buf           q;
    sf_pg_cross      row;
    const sf_value  *cats;
    const sf_member *bought;
    char            *p;

    cats = sf_value_member(attrs, "categories", 10);
    if (cats == NULL || cats->type != SF_OBJECT) {
        return;
    }

    added = 0;
    for (i = 0; i < cats->u.obj.n && added < e->max; i++) {
        bought = &cats->u.obj.members[i];

        for (c = 0; c < h->ncross && added < e->max
                    && d->nmodules < SF_PAGE_MAX_MODULES; c++)
        {
            sf_pg_get(blob, h, cross, sf_pg_cross, c, &row);
            if (row.bought.len != bought->name_len
                || memcmp(sf_pg_ptr(blob, row.bought), bought->name,
                          bought->name_len) != 0)
            {
                continue;
            }

            /* a category already recommended, or already bought, is
             * not recommended again */
            if (sf_value_member(cats, sf_pg_ptr(blob, row.recommend),
                                row.recommend.len))
            {
                continue;
            }
            for (k = d->nmodules - added; k < d->nmodules; k++) {
                if (d->modules[k].params_len >= 9 + row.recommend.len
                    && memcmp(d->modules[k].params + 9,
                              sf_pg_ptr(blob, row.recommend),
                              row.recommend.len) == 0)
                {
                    break;
                }
            }
            if (k < d->nmodules) {
                continue;
            }

            sf_buf_init(&q);
            sf_buf_appends(&q, "category=");
            sf_pg_urlencode(&q, sf_pg_ptr(blob, row.recommend),
                            row.recommend.len);
            if (e->params.len) {
                sf_buf_append(&q, "&", 1);
                sf_buf_append(&q, sf_pg_ptr(blob, e->params), e->params.len);
            }
            p = alloc(ctx, q.len + 1);
            if (p == NULL) {
                sf_buf_free(&q);
                return;
            }
            memcpy(p, q.data, q.len + 1);

            sf_pg_module_out(blob, h, e->module, &d->modules[d->nmodules]);
            d->modules[d->nmodules].params = p;
            d->modules[d->nmodules].params_len = q.len;
            d->nmodules++;
            added++;
            sf_buf_free(&q);
        }
    }
}


static void
sf_pg_expand(const void *blob, const sf_pg_header *h, uint32_t layout,
    const sf_value *attrs, sf_alloc_fn alloc, void *ctx, sf_page_decision *d)
{
    uint32_t      i;
    sf_pg_entry   e;
    sf_pg_layout  l;

    sf_pg_get(blob, h, layouts, sf_pg_layout, layout, &l);
    d->layout = sf_pg_ptr(blob, l.name);
    d->layout_len = l.name.len;

    for (i = 0; i < l.n && d->nmodules < SF_PAGE_MAX_MODULES; i++) {
        sf_pg_get(blob, h, entries, sf_pg_entry, l.first + i, &e);

        if (e.kind == SF_PG_ENTRY_DERIVE) {
            sf_pg_derive(blob, h, &e, attrs, alloc, ctx, d);
            continue;
        }

        sf_pg_module_out(blob, h, e.module, &d->modules[d->nmodules]);
        d->modules[d->nmodules].params = sf_pg_ptr(blob, e.params);
        d->modules[d->nmodules].params_len = e.params.len;
        d->nmodules++;
    }
}


int
sf_page_decide(const void *blob, size_t len, const char *page,
    size_t page_len, const sf_value *attributes,
    const sf_assignment *assignments, size_t nassignments, int64_t now,
    sf_alloc_fn alloc, void *alloc_ctx, sf_page_decision *d)
{
    long           layout;
    size_t         k;
    uint32_t       p, r;
    sf_value       attrs;
    sf_pg_page     pg;
    sf_pg_rule     rule;
    sf_pg_header   h;
    sf_page_rule_outcome  outcome;

    memset(d, 0, sizeof(*d));

    if (sf_pg_header_read(blob, len, &h) != SF_OK) {
        return SF_ERR_NOT_FOUND;
    }

    for (p = 0; p < h.npages; p++) {
        sf_pg_get(blob, &h, pages, sf_pg_page, p, &pg);
        if (pg.name.len == page_len
            && memcmp(sf_pg_ptr(blob, pg.name), page, page_len) == 0)
        {
            break;
        }
    }
    if (p == h.npages) {
        return SF_ERR_NOT_FOUND;
    }

    if (sf_pg_attributes(attributes, assignments, nassignments, alloc,
                         alloc_ctx, &attrs) != SF_OK)
    {
        return SF_ERR_NOMEM;
    }

    layout = -1;
    for (r = 0; r < pg.nrules; r++) {
        sf_pg_get(blob, &h, rules, sf_pg_rule, pg.first_rule + r, &rule);

        if (layout >= 0) {
            outcome = SF_PAGE_RULE_SKIPPED;

        } else if ((rule.from && now < rule.from)
                   || (rule.to && now >= rule.to))
        {
            outcome = SF_PAGE_RULE_WINDOW;

        } else if (rule.condition.len
                   && !sf_condition_evaluate(sf_pg_ptr(blob, rule.condition),
                                             rule.condition.len, &attrs,
                                             NULL))
        {
            outcome = SF_PAGE_RULE_CONDITION;

        } else if (rule.kind == SF_PG_RULE_EXPERIMENT) {
            outcome = SF_PAGE_RULE_NOT_IN;
            for (k = 0; k < nassignments; k++) {
                if (assignments[k].key_len == rule.experiment.len
                    && memcmp(assignments[k].key,
                              sf_pg_ptr(blob, rule.experiment),
                              rule.experiment.len) == 0
                    && assignments[k].in_experiment)
                {
                    outcome = SF_PAGE_RULE_NO_LAYOUT;
                    if (assignments[k].layout) {
                        layout = sf_pg_find_layout(blob, &h,
                                                   assignments[k].layout,
                                                   assignments[k].layout_len);
                    }
                    if (layout >= 0) {
                        outcome = SF_PAGE_RULE_MATCHED;
                    }
                    break;
                }
            }

        } else {
            outcome = SF_PAGE_RULE_MATCHED;
            layout = rule.layout;
        }

        if (outcome == SF_PAGE_RULE_MATCHED) {
            d->rule = sf_pg_ptr(blob, rule.name);
            d->rule_len = rule.name.len;
        }

        if (d->ntrace < SF_PAGE_MAX_MODULES) {
            d->trace[d->ntrace].name = sf_pg_ptr(blob, rule.name);
            d->trace[d->ntrace].name_len = rule.name.len;
            d->trace[d->ntrace].outcome = outcome;
            d->ntrace++;
        }
    }

    if (layout < 0) {
        layout = pg.default_layout;
        d->rule = "default";
        d->rule_len = 7;
    }

    /* modules point into the record, derived parameters into alloc */
    sf_pg_expand(blob, &h, (uint32_t) layout, &attrs, alloc, alloc_ctx, d);
    return SF_OK;
}
