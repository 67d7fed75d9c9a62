
/*
 * storefront: the worker's cache of recent decisions.
 *
 *     storefront_decision_cache max=10000 valid=10s;
 *
 * A returning visitor's next request usually asks the same question: same
 * id, same storefront_attribute values, same data.  The answer (the
 * variants, the assignments and the profile's headers) is kept per worker
 * under a key made of everything the decision reads from the request:
 * the location's configuration, the ids, every attribute (the URL only
 * while an experiment reads the attribute "url"), and the URL when
 * storefront_qa_override lets the query string force variations.  An
 * entry is used only while the database's data generation is the one it
 * was made from (any import, event, rule or experiment change ends it at
 * once) and for at most valid= seconds, which bounds how long values that
 * age with the clock (recency, lifecycle) may be stale.  The slots are
 * direct-mapped; a new decision replaces the one in its slot.
 *
 * The features built on the decision still run on a hit; those that
 * decide from the data on every request (ad slots: caps and targeting;
 * page layouts) say through the needs-facts chain that they need the
 * snapshot and the visitor's attributes then.  Exposure counting keeps
 * its counter indexes with the entry (facts->counters).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_storefront.h"


#define NGX_HTTP_STOREFRONT_CACHE_KEY_MAX   2048
#define NGX_HTTP_STOREFRONT_CACHE_DATA_MAX  (16 * 1024)



/* an assignment as kept: what the features read of a cached decision */

typedef struct {
    const char                      *key;
    const char                      *variation_key;
    const char                      *layout;        /* NULL: none */
    uint32_t                         key_len;
    uint32_t                         variation_key_len;
    uint32_t                         layout_len;
    int32_t                          variation;
    uint32_t                         reason;
} ngx_http_storefront_kept_t;


/* the decision as kept: pointers into the entry, moved on copy */

typedef struct {
    ngx_str_t                        variants;
    ngx_keyval_t                    *assigned;
    ngx_uint_t                       nassigned;
    ngx_http_storefront_profile_t   *profile;
    ngx_http_storefront_kept_t      *assignments;   /* in-experiment ones */
    uint32_t                        *counters;      /* one per assignment */
    size_t                           nassignments;
} ngx_http_storefront_cached_t;


typedef struct {
    uint64_t                         hash;          /* 0: free */
    uint64_t                         generation;
    ngx_uint_t                       epoch;
    time_t                           expires;
    size_t                           key_len;
    size_t                           size;          /* of the decision */
    size_t                           copy;          /* copied on a hit */
    u_char                          *data;          /* decision, then key */
} ngx_http_storefront_cache_entry_t;


typedef struct {
    ngx_http_storefront_cache_entry_t  *entries;
    ngx_uint_t                          mask;
    time_t                              valid;

    ngx_uint_t                          epoch;      /* of the environment */
    sf_db                              *db;         /* of the generation */
    uint64_t                            last_txn;
    uint64_t                            commits;
    ngx_msec_t                          checked;
    uint64_t                            generation;
    ngx_uint_t                          url_read;   /* by an experiment */

    sf_assignment                      *out;        /* a hit's assignments */
    size_t                              max;

    u_char                              key[NGX_HTTP_STOREFRONT_CACHE_KEY_MAX];
    size_t                              key_len;    /* 0: not cacheable */
    uint64_t                            hash;
} ngx_http_storefront_cache_t;


static ngx_int_t ngx_http_storefront_cache_key(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, const sf_value *attrs);
static u_char *ngx_http_storefront_cache_put(u_char *p, u_char *end,
    const void *data, size_t len);
static ngx_int_t ngx_http_storefront_cache_current(ngx_http_request_t *r,
    uint64_t *generation);
static size_t ngx_http_storefront_cache_size(ngx_http_storefront_ctx_t *ctx,
    const sf_assignment *a, size_t n);
static void ngx_http_storefront_cache_move(ngx_http_storefront_cached_t *c,
    u_char *from, u_char *to);
static u_char *ngx_http_storefront_cache_str(u_char *p, ngx_str_t *s);


static ngx_http_storefront_cache_t  ngx_http_storefront_cache;

ngx_http_storefront_needs_facts_pt  ngx_http_storefront_top_needs_facts =
    ngx_http_storefront_last_needs_facts;


ngx_int_t
ngx_http_storefront_cache_init(ngx_cycle_t *cycle,
    ngx_http_storefront_main_conf_t *smcf)
{
    ngx_uint_t                    n;
    ngx_http_storefront_cache_t  *c;

    c = &ngx_http_storefront_cache;

    ngx_memzero(c, offsetof(ngx_http_storefront_cache_t, key));

    if (smcf->cache_max == 0) {
        return NGX_OK;
    }

    for (n = 1; n < (ngx_uint_t) smcf->cache_max; n <<= 1) {
        /* void */
    }

    c->entries = ngx_calloc(n * sizeof(ngx_http_storefront_cache_entry_t),
                            cycle->log);
    if (c->entries == NULL) {
        return NGX_ERROR;
    }

    c->max = smcf->max_experiments;
    /* zeroed once: a hit writes the same few members of each */
    c->out = ngx_calloc(c->max * sizeof(sf_assignment), cycle->log);
    if (c->out == NULL) {
        return NGX_ERROR;
    }

    c->mask = n - 1;
    c->valid = smcf->cache_valid;

    return NGX_OK;
}


void
ngx_http_storefront_cache_free(void)
{
    ngx_uint_t                    i;
    ngx_http_storefront_cache_t  *c;

    c = &ngx_http_storefront_cache;

    if (c->entries == NULL) {
        return;
    }

    for (i = 0; i <= c->mask; i++) {
        if (c->entries[i].data) {
            ngx_free(c->entries[i].data);
        }
    }

    ngx_free(c->entries);
    c->entries = NULL;

    ngx_free(c->out);
    c->out = NULL;
}


/*
 * The worker opened the environment (again): the generations of another
 * environment, such as a restored copy, say nothing of this one.
 */

void
ngx_http_storefront_cache_reset(void)
{
    ngx_http_storefront_cache_t  *c;

    c = &ngx_http_storefront_cache;

    c->epoch++;
    c->db = NULL;
}


/* storefront_decision_cache off | max=N [valid=time] */

char *
ngx_http_storefront_cache_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_storefront_main_conf_t *smcf = conf;

    time_t       valid;
    ngx_int_t    max;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (smcf->cache_max != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts != 2) {
            return "takes no parameter after \"off\"";
        }

        smcf->cache_max = 0;
        return NGX_CONF_OK;
    }

    max = 0;
    valid = 10;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max=", 4) == 0) {
            max = ngx_atoi(value[i].data + 4, value[i].len - 4);

            if (max == NGX_ERROR || max < 1 || max > 16 * 1024 * 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": max= takes 1 to "
                                   "16777216 entries", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "valid=", 6) == 0) {
            s.len = value[i].len - 6;
            s.data = value[i].data + 6;

            valid = ngx_parse_time(&s, 1);

            if (valid == (time_t) NGX_ERROR || valid < 1) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": valid= takes a time "
                                   "of at least 1s", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (max == 0) {
        return "needs max=";
    }

    smcf->cache_max = max;
    smcf->cache_valid = valid;

    return NGX_CONF_OK;
}


/* the end of the needs-facts chain: the core's headers need none */

ngx_uint_t
ngx_http_storefront_last_needs_facts(ngx_http_request_t *r)
{
    return 0;
}


/*
 * Looks the request's decision up.  NGX_OK: found; the context holds it
 * (in r->pool), the facts the assignments and counters for the decision
 * chain (in the worker's memory, valid until the next call).  NGX_AGAIN:
 * found as well, and the decision chain needs facts->snapshot and
 * facts->attributes, for the caller to set.  NGX_DECLINED: not found;
 * the key is kept for ngx_http_storefront_cache_store() when it may be
 * cached.
 */

ngx_int_t
ngx_http_storefront_cache_fetch(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx,
    const sf_value *attrs, ngx_http_storefront_facts_t *facts)
{
    u_char                             *copy;
    size_t                              i;
    uint64_t                            generation;
    ngx_http_storefront_kept_t         *kept;
    ngx_http_storefront_cached_t       *cached;
    ngx_http_storefront_cache_t        *c;
    ngx_http_storefront_cache_entry_t  *e;

    c = &ngx_http_storefront_cache;
    c->key_len = 0;

    if (c->entries == NULL) {
        return NGX_DECLINED;
    }

    ctx->cache = NGX_HTTP_STOREFRONT_CACHE_MISS;

    if (ngx_http_storefront_cache_current(r, &generation) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (ngx_http_storefront_cache_key(r, slcf, attrs) != NGX_OK) {
        return NGX_DECLINED;
    }

    e = &c->entries[c->hash & c->mask];

    if (e->hash != c->hash
        || e->epoch != c->epoch
        || e->key_len != c->key_len
        || e->expires <= ngx_time()
        || e->generation != generation
        || ngx_memcmp(e->data + e->size, c->key, c->key_len) != 0)
    {
        return NGX_DECLINED;
    }

    /*
     * The request's own copy of what it keeps: the entry may be replaced
     * before the request ends.  The assignments are read in place by the
     * decision chain, now.
     */

    copy = ngx_palloc(r->pool, e->copy);
    if (copy == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(copy, e->data, e->copy);

    cached = (ngx_http_storefront_cached_t *) copy;
    ngx_http_storefront_cache_move(cached, e->data, copy);

    ctx->variants = cached->variants;
    ctx->assigned = cached->assigned;
    ctx->nassigned = cached->nassigned;
    ctx->profile = cached->profile;
    ctx->cache = NGX_HTTP_STOREFRONT_CACHE_HIT;

    facts->snapshot = NULL;
    facts->attributes = NULL;

    for (i = 0; i < cached->nassignments; i++) {
        kept = &cached->assignments[i];     /* in the entry */

        c->out[i].key = kept->key;
        c->out[i].key_len = kept->key_len;
        c->out[i].in_experiment = 1;
        c->out[i].variation = kept->variation;
        c->out[i].variation_key = kept->variation_key;
        c->out[i].variation_key_len = kept->variation_key_len;
        c->out[i].layout = kept->layout;
        c->out[i].layout_len = kept->layout_len;
        c->out[i].reason = (sf_reason) kept->reason;
    }

    facts->assignments = c->out;
    facts->nassignments = cached->nassignments;
    facts->counters = cached->counters;         /* in the entry */

    c->key_len = 0;

    return ngx_http_storefront_top_needs_facts(r) ? NGX_AGAIN : NGX_OK;
}


/*
 * Keeps the decision just made from a snapshot of the given generation,
 * under the key of the last ngx_http_storefront_cache_fetch(), after the
 * decision chain has run.  Only the assignments the visitor is in are
 * kept, with their counters: the features see those.
 */

void
ngx_http_storefront_cache_store(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_facts_t *facts,
    uint64_t generation)
{
    u_char                             *data, *p;
    size_t                              size, copy, i, k, n;
    const sf_assignment                *a;
    ngx_http_storefront_kept_t         *kept;
    ngx_str_t                           s;
    ngx_http_storefront_cached_t       *cached;
    ngx_http_storefront_cache_t        *c;
    ngx_http_storefront_cache_entry_t  *e;
    ngx_http_storefront_profile_t      *pr;

    c = &ngx_http_storefront_cache;

    if (c->key_len == 0) {
        return;
    }

    a = facts->assignments;
    n = facts->nassignments;

    size = ngx_http_storefront_cache_size(ctx, a, n);

    if (size > NGX_HTTP_STOREFRONT_CACHE_DATA_MAX) {
        c->key_len = 0;
        return;
    }

    data = ngx_alloc(size + c->key_len, r->connection->log);
    if (data == NULL) {
        c->key_len = 0;
        return;
    }

    p = data;

    /*
     * First what a hit copies into its request: the structures, aligned,
     * then their strings.  Then what the decision chain reads in place:
     * the assignments, their counters and strings.  Then the key.
     */

    cached = (ngx_http_storefront_cached_t *) p;
    p += ngx_align(sizeof(ngx_http_storefront_cached_t), sizeof(void *));

    cached->assigned = (ngx_keyval_t *) p;
    cached->nassigned = ctx->nassigned;
    p += ctx->nassigned * sizeof(ngx_keyval_t);

    cached->profile = NULL;

    if (ctx->profile) {
        pr = (ngx_http_storefront_profile_t *) p;
        *pr = *ctx->profile;
        p += sizeof(ngx_http_storefront_profile_t);

        pr->attrs = (ngx_keyval_t *) p;
        p += pr->nattrs * sizeof(ngx_keyval_t);

        cached->profile = pr;

        p = ngx_http_storefront_cache_str(p, &pr->segment);
        p = ngx_http_storefront_cache_str(p, &pr->rfm);
        p = ngx_http_storefront_cache_str(p, &pr->lifecycle);
        p = ngx_http_storefront_cache_str(p, &pr->tier);
        p = ngx_http_storefront_cache_str(p, &pr->tier_benefits);
        p = ngx_http_storefront_cache_str(p, &pr->points);

        for (k = 0; k < pr->nattrs; k++) {
            /* the names live in the configuration */
            pr->attrs[k] = ctx->profile->attrs[k];
            p = ngx_http_storefront_cache_str(p, &pr->attrs[k].value);
        }
    }

    for (k = 0; k < ctx->nassigned; k++) {
        cached->assigned[k] = ctx->assigned[k];
        p = ngx_http_storefront_cache_str(p, &cached->assigned[k].key);
        p = ngx_http_storefront_cache_str(p, &cached->assigned[k].value);
    }

    cached->variants = ctx->variants;
    p = ngx_http_storefront_cache_str(p, &cached->variants);

    p = ngx_align_ptr(p, sizeof(void *));
    copy = p - data;

    cached->assignments = (ngx_http_storefront_kept_t *) p;
    cached->nassignments = 0;

    for (i = 0; i < n; i++) {
        if (!a[i].in_experiment) {
            continue;
        }

        kept = &cached->assignments[cached->nassignments++];

        kept->key = a[i].key;
        kept->key_len = (uint32_t) a[i].key_len;
        kept->variation = a[i].variation;
        kept->variation_key = a[i].variation_key;
        kept->variation_key_len = (uint32_t) a[i].variation_key_len;
        kept->layout = a[i].layout;
        kept->layout_len = (uint32_t) a[i].layout_len;
        kept->reason = a[i].reason;
    }

    p += cached->nassignments * sizeof(ngx_http_storefront_kept_t);

    cached->counters = (uint32_t *) p;

    for (i = 0, k = 0; i < n; i++) {
        if (a[i].in_experiment) {
            cached->counters[k++] = facts->counters
                                    ? facts->counters[i]
                                    : NGX_HTTP_STOREFRONT_NO_COUNTER;
        }
    }

    p += k * sizeof(uint32_t);

    /* the strings: the snapshot's are valid only until its reset */

    for (k = 0; k < cached->nassignments; k++) {
        kept = &cached->assignments[k];

        s.len = kept->key_len;
        s.data = (u_char *) kept->key;
        p = ngx_http_storefront_cache_str(p, &s);
        kept->key = (const char *) s.data;

        s.len = kept->variation_key_len;
        s.data = (u_char *) kept->variation_key;
        p = ngx_http_storefront_cache_str(p, &s);
        kept->variation_key = (const char *) s.data;

        if (kept->layout) {
            s.len = kept->layout_len;
            s.data = (u_char *) kept->layout;
            p = ngx_http_storefront_cache_str(p, &s);
            kept->layout = (const char *) s.data;
        }
    }

    size = p - data;
    ngx_memcpy(p, c->key, c->key_len);

    e = &c->entries[c->hash & c->mask];

    if (e->data) {
        ngx_free(e->data);
    }

    e->hash = c->hash;
    e->generation = generation;
    e->epoch = c->epoch;
    e->expires = ngx_time() + c->valid;
    e->key_len = c->key_len;
    e->size = size;
    e->copy = copy;
    e->data = data;

    c->key_len = 0;
}


/*
 * The key: the location's configuration (headers, attributes and the QA
 * override are configured per location), every member of the request's
 * attributes object but "url" when no experiment reads it, and the URL
 * when it can force a variation.
 */

static ngx_int_t
ngx_http_storefront_cache_key(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, const sf_value *attrs)
{
    u_char                       *p, *end, ssl;
    ngx_uint_t                    i;
    const sf_member              *m;
    ngx_http_storefront_cache_t  *c;

    c = &ngx_http_storefront_cache;

    p = c->key;
    end = c->key + NGX_HTTP_STOREFRONT_CACHE_KEY_MAX;

    p = ngx_http_storefront_cache_put(p, end, &slcf, sizeof(slcf));

    for (i = 0; p && i < attrs->u.obj.n; i++) {
        m = &attrs->u.obj.members[i];

        if (!c->url_read && m->name_len == 3 && m->name[0] == 'u'
            && m->name[1] == 'r' && m->name[2] == 'l')
        {
            /* a storefront_attribute "url" that no experiment reads */
            continue;
        }

        p = ngx_http_storefront_cache_put(p, end, m->name, m->name_len);

        if (p == NULL) {
            break;
        }

        switch (m->value.type) {

        case SF_STRING:
            p = ngx_http_storefront_cache_put(p, end, m->value.u.str.p,
                                              m->value.u.str.len);
            break;

        case SF_BOOL:
            p = ngx_http_storefront_cache_put(p, end, &m->value.u.boolean,
                                              sizeof(m->value.u.boolean));
            break;

        default:
            /* the module builds strings and booleans only */
            return NGX_DECLINED;
        }
    }

    /* the request's URL, as the attribute "url" is made of it */

    if (p && (slcf->qa_override || (c->url_read && slcf->url_attribute))) {
        ssl = 0;
#if (NGX_HTTP_SSL)
        ssl = (r->connection->ssl != NULL);
#endif
        p = ngx_http_storefront_cache_put(p, end, &ssl, sizeof(ssl));
        p = ngx_http_storefront_cache_put(p, end, r->headers_in.server.data,
                                          r->headers_in.server.len);
        p = ngx_http_storefront_cache_put(p, end, r->unparsed_uri.data,
                                          r->unparsed_uri.len);
    }

    if (p == NULL) {
        return NGX_DECLINED;
    }

    c->key_len = p - c->key;
    c->hash = ngx_http_storefront_hash(0, c->key, c->key_len) | 1;

    return NGX_OK;
}


/* a length, then the bytes: no two keys of different parts are equal */

static u_char *
ngx_http_storefront_cache_put(u_char *p, u_char *end, const void *data,
    size_t len)
{
    uint32_t  n;

    if (p == NULL || (size_t) (end - p) < sizeof(n) + len) {
        return NULL;
    }

    n = (uint32_t) len;
    p = ngx_cpymem(p, &n, sizeof(n));

    return ngx_cpymem(p, data, len);
}


/*
 * The database's data generation now.  Other processes' commits are
 * looked for at most once a millisecond (the environment's last commit,
 * read without a transaction), the worker's own at once; only when the
 * last commit moved is the generation read again from a snapshot, with
 * whether an experiment reads the URL.
 */

static ngx_int_t
ngx_http_storefront_cache_current(ngx_http_request_t *r,
    uint64_t *generation)
{
    int                           reads;
    sf_db                        *db;
    uint64_t                      last;
    sf_error                      err;
    sf_snapshot                  *snapshot;
    ngx_http_storefront_cache_t  *c;

    c = &ngx_http_storefront_cache;

    db = ngx_http_storefront_worker_db(r->connection->log);

    if (db == NULL) {
        return NGX_DECLINED;
    }

    if (db == c->db && c->checked == ngx_current_msec
        && c->commits == sf_db_commits(db))
    {
        *generation = c->generation;
        return NGX_OK;
    }

    last = sf_db_last_txn(db);

    c->checked = ngx_current_msec;
    c->commits = sf_db_commits(db);

    if (db != c->db || last != c->last_txn) {

        snapshot = ngx_http_storefront_snapshot_acquire(r->connection->log);

        if (snapshot == NULL) {
            return NGX_DECLINED;
        }

        err.code = 0;
        err.msg[0] = '\0';

        if (sf_snapshot_generation(snapshot, &c->generation, &err) != SF_OK
            || sf_snapshot_reads(snapshot, "url", 3, &reads, &err) != SF_OK)
        {
            ngx_http_storefront_snapshot_release();
            c->db = NULL;
            return NGX_DECLINED;
        }

        c->url_read = reads;

        ngx_http_storefront_snapshot_release();

        c->db = db;
        c->last_txn = last;
    }

    *generation = c->generation;

    return NGX_OK;
}


static size_t
ngx_http_storefront_cache_size(ngx_http_storefront_ctx_t *ctx,
    const sf_assignment *a, size_t n)
{
    size_t                          size, i;
    ngx_http_storefront_profile_t  *pr;

    size = ngx_align(sizeof(ngx_http_storefront_cached_t), sizeof(void *))
           + ctx->nassigned * sizeof(ngx_keyval_t)
           + ctx->variants.len;

    for (i = 0; i < n; i++) {
        if (a[i].in_experiment) {
            size += sizeof(ngx_http_storefront_kept_t) + sizeof(uint32_t)
                    + a[i].key_len + a[i].variation_key_len
                    + (a[i].layout ? a[i].layout_len : 0);
        }
    }

    size += sizeof(void *);     /* the assignments' alignment */

    for (i = 0; i < ctx->nassigned; i++) {
        size += ctx->assigned[i].key.len + ctx->assigned[i].value.len;
    }

    pr = ctx->profile;

    if (pr) {
        size += sizeof(ngx_http_storefront_profile_t)
                + pr->nattrs * sizeof(ngx_keyval_t)
                + pr->segment.len + pr->rfm.len + pr->lifecycle.len
                + pr->tier.len + pr->tier_benefits.len + pr->points.len;

        for (i = 0; i < pr->nattrs; i++) {
            size += pr->attrs[i].value.len;
        }
    }

    return size;
}


/* copies a string into the entry; a NULL one stays NULL */

static u_char *
ngx_http_storefront_cache_str(u_char *p, ngx_str_t *s)
{
    u_char  *data;

    if (s->data == NULL) {
        return p;
    }

    data = p;
    p = ngx_cpymem(p, s->data, s->len);
    s->data = data;

    return p;
}


/* points the copy of a decision's request part at itself */

#define ngx_http_storefront_cache_moved(ptr, from, to)                        \
    if (ptr) {                                                                 \
        ptr = (void *) ((u_char *) (to) + ((u_char *) (ptr) - (from)));       \
    }

static void
ngx_http_storefront_cache_move(ngx_http_storefront_cached_t *c, u_char *from,
    u_char *to)
{
    ngx_uint_t                      i;
    ngx_http_storefront_profile_t  *pr;

    ngx_http_storefront_cache_moved(c->variants.data, from, to);
    ngx_http_storefront_cache_moved(c->assigned, from, to);
    ngx_http_storefront_cache_moved(c->profile, from, to);

    for (i = 0; i < c->nassigned; i++) {
        ngx_http_storefront_cache_moved(c->assigned[i].key.data, from, to);
        ngx_http_storefront_cache_moved(c->assigned[i].value.data, from, to);
    }

    pr = c->profile;

    if (pr == NULL) {
        return;
    }

    ngx_http_storefront_cache_moved(pr->attrs, from, to);
    ngx_http_storefront_cache_moved(pr->segment.data, from, to);
    ngx_http_storefront_cache_moved(pr->rfm.data, from, to);
    ngx_http_storefront_cache_moved(pr->lifecycle.data, from, to);
    ngx_http_storefront_cache_moved(pr->tier.data, from, to);
    ngx_http_storefront_cache_moved(pr->tier_benefits.data, from, to);
    ngx_http_storefront_cache_moved(pr->points.data, from, to);

    for (i = 0; i < pr->nattrs; i++) {
        ngx_http_storefront_cache_moved(pr->attrs[i].value.data, from, to);
    }
}
