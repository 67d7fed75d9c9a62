
/*
 * storefront: the per-worker engine state and the decision of a request.
 *
 * Each worker opens the environment once, keeps one read snapshot,
 * renews it for a decision and resets it before returning, so no reader
 * is held across an event loop iteration.  The decision reads the
 * visitor's profile (ngx_http_storefront_profile.c) and evaluates every
 * experiment with the attributes built from it.  When the environment
 * cannot be opened or read, requests are served without decisions
 * (status "unavailable"), one error is logged per worker, and opening is
 * retried at most once a second, so a database created later is picked
 * up without a reload.  Other handlers (the admin endpoint) use the same
 * environment and snapshot through the accessors below.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_storefront.h"


#define NGX_HTTP_STOREFRONT_SCRATCH_KEEP  (256 * 1024)


typedef struct {
    ngx_http_storefront_main_conf_t  *smcf;
    sf_db                            *db;
    sf_snapshot                      *snapshot;
    sf_assignment                    *out;
    uint32_t                         *counters;   /* facts.counters */
    size_t                            max;
    sf_buf                            scratch;
    time_t                            next_open;
    unsigned                          failing:1;
    unsigned                          too_many:1;
} ngx_http_storefront_worker_t;


static void ngx_http_storefront_cleanup(void *data);
static void ngx_http_storefront_open(ngx_log_t *log);
static void ngx_http_storefront_close(void);
static void ngx_http_storefront_fail(ngx_log_t *log, const char *what,
    sf_error *err);
static ngx_int_t ngx_http_storefront_evaluate(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx);
static ngx_int_t ngx_http_storefront_cached_facts(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, const sf_value *attrs,
    ngx_http_storefront_facts_t *facts);
static ngx_int_t ngx_http_storefront_attributes(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx,
    sf_value *attrs);
static ngx_int_t ngx_http_storefront_collect(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, sf_assignment *out, size_t n);
static ngx_int_t ngx_http_storefront_add_url(ngx_http_request_t *r,
    sf_value *attrs);
static ngx_uint_t ngx_http_storefront_safe(const char *s, size_t len);


static ngx_http_storefront_worker_t  ngx_http_storefront_worker;

ngx_http_storefront_decision_pt  ngx_http_storefront_top_decision =
    ngx_http_storefront_last_decision;


ngx_int_t
ngx_http_storefront_init_worker(ngx_cycle_t *cycle)
{
    ngx_http_storefront_worker_t     *w;
    ngx_http_storefront_main_conf_t  *smcf;

    w = &ngx_http_storefront_worker;

    ngx_memzero(w, sizeof(ngx_http_storefront_worker_t));

    sf_buf_init(&w->scratch);

    ngx_http_storefront_random_reset();

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_storefront_module);

    if (smcf == NULL || !smcf->enabled || smcf->db_path.data == NULL) {
        return NGX_OK;
    }

    w->out = ngx_alloc(smcf->max_experiments * sizeof(sf_assignment),
                       cycle->log);
    if (w->out == NULL) {
        return NGX_ERROR;
    }

    w->counters = ngx_alloc(smcf->max_experiments * sizeof(uint32_t),
                            cycle->log);
    if (w->counters == NULL) {
        return NGX_ERROR;
    }

    w->smcf = smcf;
    w->max = smcf->max_experiments;

    if (ngx_http_storefront_cache_init(cycle, smcf) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_storefront_open(cycle->log);

    return NGX_OK;
}


void
ngx_http_storefront_exit_worker(ngx_cycle_t *cycle)
{
    ngx_http_storefront_worker_t  *w;

    w = &ngx_http_storefront_worker;

    ngx_http_storefront_close();

    ngx_http_storefront_cache_free();

    sf_buf_free(&w->scratch);

    if (w->out) {
        ngx_free(w->out);
        w->out = NULL;
    }

    if (w->counters) {
        ngx_free(w->counters);
        w->counters = NULL;
    }

    w->smcf = NULL;
}


static void
ngx_http_storefront_open(ngx_log_t *log)
{
    int                            rc, cleared;
    sf_db                         *db;
    sf_error                       err;
    sf_snapshot                   *snapshot;
    ngx_http_storefront_worker_t  *w;

    w = &ngx_http_storefront_worker;

    w->next_open = ngx_time() + 1;

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_db_open(&db, (const char *) w->smcf->db_path.data,
                    w->smcf->map_size, 0, &err);

    if (rc != SF_OK) {
        ngx_http_storefront_fail(log, "cannot be opened", &err);
        return;
    }

    cleared = 0;

    if (sf_db_reader_check(db, &cleared) == SF_OK && cleared > 0) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "storefront_db \"%V\": cleared %d stale readers",
                      &w->smcf->db_path, cleared);
    }

    rc = sf_snapshot_create(db, &snapshot, &err);

    if (rc != SF_OK) {
        sf_db_close(db);
        ngx_http_storefront_fail(log, "cannot be read", &err);
        return;
    }

    w->db = db;
    w->snapshot = snapshot;

    ngx_http_storefront_cache_reset();

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                   "storefront_db \"%V\" opened", &w->smcf->db_path);
}


static void
ngx_http_storefront_close(void)
{
    ngx_http_storefront_worker_t  *w;

    w = &ngx_http_storefront_worker;

    if (w->snapshot) {
        sf_snapshot_free(w->snapshot);
        w->snapshot = NULL;
    }

    if (w->db) {
        sf_db_close(w->db);
        w->db = NULL;
    }
}


/* logs the first failure of a run of failures: one line per worker */

static void
ngx_http_storefront_fail(ngx_log_t *log, const char *what, sf_error *err)
{
    ngx_http_storefront_worker_t  *w;

    w = &ngx_http_storefront_worker;

    if (w->failing) {
        return;
    }

    w->failing = 1;

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "storefront_db \"%V\" %s: %s, serving without decisions",
                  &w->smcf->db_path, what,
                  err->msg[0] ? err->msg : "unknown error");
}


static void
ngx_http_storefront_cleanup(void *data)
{
    /*
     * Nothing to free: the context lives in the pool.  The cleanup marks
     * the context so that internal redirects, which clear r->ctx, and
     * subrequests, which share the pool, find the decision again.
     */
}


ngx_http_storefront_ctx_t *
ngx_http_storefront_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_storefront_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_storefront_module);

    if (ctx) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_storefront_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_storefront_module);
            return ctx;
        }
    }

    return NULL;
}


/*
 * Makes the decision of the request once.  A context still "busy" is
 * returned while the decision is being made (a storefront variable used
 * in storefront_user_id or storefront_attribute) and after an allocation
 * failure; callers treat it as no decision.
 */

ngx_http_storefront_ctx_t *
ngx_http_storefront_decide(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t              *cln;
    ngx_http_storefront_ctx_t       *ctx;
    ngx_http_storefront_loc_conf_t  *slcf;

    ctx = ngx_http_storefront_get_ctx(r);

    if (ctx) {
        return ctx;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_storefront_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_storefront_ctx_t));

    cln->handler = ngx_http_storefront_cleanup;
    ngx_http_set_ctx(r, ctx, ngx_http_storefront_module);

    ctx->busy = 1;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_module);

    if (ngx_http_storefront_identify(r, slcf, ctx) != NGX_OK) {
        return NULL;
    }

    if (ngx_http_storefront_evaluate(r, slcf, ctx) != NGX_OK) {
        return NULL;
    }

    ctx->busy = 0;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "storefront: id \"%V\" minted:%ui status:%ui \"%V\"",
                   &ctx->user_id, (ngx_uint_t) ctx->minted,
                   (ngx_uint_t) ctx->available, &ctx->variants);

    return ctx;
}


/*
 * A decision from the cache for features that decide from the data on
 * every request (ad slots, page layouts): they get a snapshot and the
 * visitor's attributes as of now.  Should the database have become
 * unreadable since the cache checked it, they run without either.
 */

static ngx_int_t
ngx_http_storefront_cached_facts(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, const sf_value *attrs,
    ngx_http_storefront_facts_t *facts)
{
    ngx_int_t     rc;
    sf_value      all;
    sf_snapshot  *snapshot;

    facts->now = (int64_t) ngx_time();

    snapshot = ngx_http_storefront_snapshot_acquire(r->connection->log);

    if (snapshot == NULL) {
        rc = ngx_http_storefront_top_decision(r, ctx, facts);

    } else {
        rc = ngx_http_storefront_profile_targeting(r, ctx, snapshot, attrs,
                                                   &all);
        if (rc == NGX_OK) {
            facts->snapshot = snapshot;
            facts->attributes = &all;

            rc = ngx_http_storefront_top_decision(r, ctx, facts);
        }

        ngx_http_storefront_snapshot_release();
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->available = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_storefront_evaluate(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx)
{
    int                            rc;
    size_t                         n, i;
    uint64_t                       generation;
    sf_value                       attrs, all;
    sf_error                       err;
    ngx_int_t                      cached;
    sf_request                     req;
    sf_snapshot                   *snapshot;
    ngx_http_storefront_facts_t    facts;
    ngx_http_storefront_worker_t  *w;

    w = &ngx_http_storefront_worker;

    if (w->out == NULL) {
        /* not a worker of a configuration with storefront_db */
        return NGX_OK;
    }

    if (ngx_http_storefront_attributes(r, slcf, ctx, &attrs) != NGX_OK) {
        return NGX_ERROR;
    }

    cached = ngx_http_storefront_cache_fetch(r, slcf, ctx, &attrs, &facts);

    if (cached == NGX_ERROR) {
        return NGX_ERROR;
    }

    /* conditions to be evaluated see the request's URL */

    if (cached != NGX_OK && slcf->url_attribute
        && ngx_http_storefront_add_url(r, &attrs) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (cached == NGX_OK) {
        /* the features see the assignments only: no snapshot is held */

        facts.now = (int64_t) ngx_time();

        if (ngx_http_storefront_top_decision(r, ctx, &facts) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->available = 1;

        return NGX_OK;
    }

    if (cached == NGX_AGAIN) {
        return ngx_http_storefront_cached_facts(r, ctx, &attrs, &facts);
    }

    snapshot = ngx_http_storefront_snapshot_acquire(r->connection->log);

    if (snapshot == NULL) {
        return NGX_OK;
    }

    /* the conditions see the visitor's profile and the request's facts */

    if (ngx_http_storefront_profile_lookup(r, slcf, ctx, snapshot, &attrs,
                                           &all)
        != NGX_OK)
    {
        ngx_http_storefront_snapshot_release();
        return NGX_ERROR;
    }

    err.code = 0;
    err.msg[0] = '\0';

    ngx_memzero(&req, sizeof(sf_request));

    req.attributes = &all;
    req.url = (const char *) r->unparsed_uri.data;
    req.url_len = r->unparsed_uri.len;
    req.qa_override = slcf->qa_override ? 1 : 0;
    req.disabled = 0;
    req.now = (int64_t) ngx_time();

    n = 0;

    rc = sf_evaluate_all(snapshot, &req, w->out, w->max, &n, &err);

    if (rc == SF_ERR_TOO_MANY) {
        if (!w->too_many) {
            w->too_many = 1;
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "storefront_db \"%V\" holds more than %uz "
                          "experiments, the rest are ignored; "
                          "raise \"storefront_max_experiments\"",
                          &w->smcf->db_path, w->max);
        }

        rc = SF_OK;
    }

    if (rc != SF_OK) {
        ngx_http_storefront_snapshot_release();
        ctx->profile = NULL;
        ngx_http_storefront_fail(r->connection->log, "evaluation failed",
                                 &err);
        return NGX_OK;
    }

    /* the results point into the snapshot: copy them before the reset */

    if (ngx_http_storefront_collect(r, ctx, w->out, n) != NGX_OK) {
        ngx_http_storefront_snapshot_release();
        return NGX_ERROR;
    }

    /* the features built on the decision, while the snapshot is held */

    facts.snapshot = snapshot;
    facts.attributes = &all;
    facts.assignments = w->out;
    facts.nassignments = n;
    facts.counters = NULL;
    facts.now = req.now;

    if (ctx->cache == NGX_HTTP_STOREFRONT_CACHE_MISS) {
        /* kept with the decision in the cache */

        for (i = 0; i < n; i++) {
            w->counters[i] = NGX_HTTP_STOREFRONT_NO_COUNTER;
        }

        facts.counters = w->counters;
    }

    if (ngx_http_storefront_top_decision(r, ctx, &facts) != NGX_OK) {
        ngx_http_storefront_snapshot_release();
        return NGX_ERROR;
    }

    if (ctx->cache == NGX_HTTP_STOREFRONT_CACHE_MISS
        && sf_snapshot_generation(snapshot, &generation, &err) == SF_OK)
    {
        ngx_http_storefront_cache_store(r, ctx, &facts, generation);
    }

    ngx_http_storefront_snapshot_release();

    if (w->failing) {
        w->failing = 0;
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "storefront_db \"%V\" is available",
                      &w->smcf->db_path);
    }

    ctx->available = 1;

    return NGX_OK;
}


/* the end of the decision chain */

ngx_int_t
ngx_http_storefront_last_decision(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_facts_t *facts)
{
    return NGX_OK;
}


sf_db *
ngx_http_storefront_worker_db(ngx_log_t *log)
{
    ngx_http_storefront_worker_t  *w;

    w = &ngx_http_storefront_worker;

    if (w->smcf == NULL) {
        /* not a worker of a configuration that uses the database */
        return NULL;
    }

    if (w->db == NULL) {
        if (ngx_time() < w->next_open) {
            return NULL;
        }

        ngx_http_storefront_open(log);
    }

    return w->db;
}


sf_snapshot *
ngx_http_storefront_snapshot_acquire(ngx_log_t *log)
{
    int                            rc;
    sf_error                       err;
    ngx_http_storefront_worker_t  *w;

    w = &ngx_http_storefront_worker;

    if (ngx_http_storefront_worker_db(log) == NULL || w->snapshot == NULL) {
        return NULL;
    }

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_snapshot_renew(w->snapshot, &err);

    if (rc != SF_OK) {
        /* the environment may have been replaced: reopen it later */
        ngx_http_storefront_close();
        ngx_http_storefront_fail(log, "cannot be read", &err);
        return NULL;
    }

    return w->snapshot;
}


void
ngx_http_storefront_snapshot_release(void)
{
    ngx_http_storefront_worker_t  *w;

    w = &ngx_http_storefront_worker;

    if (w->snapshot) {
        sf_snapshot_reset(w->snapshot);
    }
}


sf_buf *
ngx_http_storefront_scratch(void)
{
    ngx_http_storefront_worker_t  *w;

    w = &ngx_http_storefront_worker;

    if (w->scratch.cap > NGX_HTTP_STOREFRONT_SCRATCH_KEEP) {
        /* a large admin response is not kept for the worker's life */
        sf_buf_free(&w->scratch);
        sf_buf_init(&w->scratch);
    }

    w->scratch.len = 0;

    return &w->scratch;
}


/* an sf_alloc_fn over a pool: engine values built for one request */

void *
ngx_http_storefront_palloc(void *pool, size_t size)
{
    return ngx_palloc(pool, size);
}


/*
 * The attributes object: "id" (hashAttribute's default) is the logged-in
 * id or else the anonymous id, "anonymous_id" the anonymous id (for
 * fallbackAttribute), "logged_in" a boolean, then every
 * storefront_attribute with a non-empty value, as a string.  There is
 * room for "url", added by ngx_http_storefront_add_url().
 */

static ngx_int_t
ngx_http_storefront_attributes(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx,
    sf_value *attrs)
{
    ngx_str_t                    value;
    ngx_uint_t                   i, n;
    sf_member                   *m;
    ngx_http_storefront_attr_t  *attr;

    n = 4;

    if (slcf->attributes) {
        n += slcf->attributes->nelts;
    }

    m = ngx_palloc(r->pool, n * sizeof(sf_member));
    if (m == NULL) {
        return NGX_ERROR;
    }

    n = 0;

    if (ctx->user_id.len) {
        m[n].name = "id";
        m[n].name_len = sizeof("id") - 1;
        m[n].value.type = SF_STRING;
        m[n].value.u.str.p = (const char *) ctx->user_id.data;
        m[n].value.u.str.len = ctx->user_id.len;
        n++;
    }

    if (ctx->anon_id.len) {
        m[n].name = "anonymous_id";
        m[n].name_len = sizeof("anonymous_id") - 1;
        m[n].value.type = SF_STRING;
        m[n].value.u.str.p = (const char *) ctx->anon_id.data;
        m[n].value.u.str.len = ctx->anon_id.len;
        n++;
    }

    m[n].name = "logged_in";
    m[n].name_len = sizeof("logged_in") - 1;
    m[n].value.type = SF_BOOL;
    m[n].value.u.boolean = ctx->logged_in ? 1 : 0;
    n++;

    if (slcf->attributes) {
        attr = slcf->attributes->elts;

        for (i = 0; i < slcf->attributes->nelts; i++) {

            if (ngx_http_complex_value(r, &attr[i].value, &value) != NGX_OK) {
                return NGX_ERROR;
            }

            if (value.len == 0) {
                continue;
            }

            m[n].name = (const char *) attr[i].name.data;
            m[n].name_len = attr[i].name.len;
            m[n].value.type = SF_STRING;
            m[n].value.u.str.p = (const char *) value.data;
            m[n].value.u.str.len = value.len;
            n++;
        }
    }

    attrs->type = SF_OBJECT;
    attrs->u.obj.members = m;
    attrs->u.obj.n = n;

    return NGX_OK;
}


/*
 * The attribute "url": "$scheme://$host$request_uri", as a browser SDK's
 * location.href, unless a storefront_attribute names "url".
 */

static ngx_int_t
ngx_http_storefront_add_url(ngx_http_request_t *r, sf_value *attrs)
{
    u_char                    *p;
    sf_member                 *m;
    ngx_str_t                  host, scheme;
    ngx_http_core_srv_conf_t  *cscf;

#if (NGX_HTTP_SSL)
    if (r->connection->ssl) {
        ngx_str_set(&scheme, "https://");

    } else
#endif
    {
        ngx_str_set(&scheme, "http://");
    }

    host = r->headers_in.server;

    if (host.len == 0) {
        cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);
        host = cscf->server_name;
    }

    /* the room left by ngx_http_storefront_attributes(), in r->pool */
    m = (sf_member *) &attrs->u.obj.members[attrs->u.obj.n];

    m->name = "url";
    m->name_len = sizeof("url") - 1;
    m->value.type = SF_STRING;
    m->value.u.str.len = scheme.len + host.len + r->unparsed_uri.len;

    p = ngx_pnalloc(r->pool, m->value.u.str.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    m->value.u.str.p = (const char *) p;

    p = ngx_cpymem(p, scheme.data, scheme.len);
    p = ngx_cpymem(p, host.data, host.len);
    ngx_memcpy(p, r->unparsed_uri.data, r->unparsed_uri.len);

    attrs->u.obj.n++;

    return NGX_OK;
}


/*
 * Copies the assignments of the experiments the visitor is in, and builds
 * "key=variation;key2=variation2" bounded to
 * NGX_HTTP_STOREFRONT_VARIANTS_MAX bytes.  Keys that cannot be written
 * safely in a header value are left out.
 */

static ngx_int_t
ngx_http_storefront_collect(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, sf_assignment *out, size_t n)
{
    u_char        *p;
    size_t         i, len, count, size;
    ngx_keyval_t  *kv;

    count = 0;
    size = 0;

    for (i = 0; i < n; i++) {
        if (!out[i].in_experiment
            || !ngx_http_storefront_safe(out[i].key, out[i].key_len)
            || !ngx_http_storefront_safe(out[i].variation_key,
                                         out[i].variation_key_len))
        {
            if (out[i].in_experiment) {
                ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                               "storefront: unsafe experiment key skipped");
            }

            out[i].in_experiment = 0;
            continue;
        }

        count++;
        size += out[i].key_len + out[i].variation_key_len;
    }

    ctx->nassigned = count;

    if (count == 0) {
        ngx_str_null(&ctx->variants);
        return NGX_OK;
    }

    kv = ngx_palloc(r->pool, count * sizeof(ngx_keyval_t));
    if (kv == NULL) {
        return NGX_ERROR;
    }

    /* the pairs and the variants text in one allocation */

    len = ngx_min(size + 2 * count, NGX_HTTP_STOREFRONT_VARIANTS_MAX);

    p = ngx_pnalloc(r->pool, size + len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->assigned = kv;

    for (i = 0; i < n; i++) {
        if (!out[i].in_experiment) {
            continue;
        }

        kv->key.len = out[i].key_len;
        kv->key.data = p;
        p = ngx_cpymem(p, out[i].key, out[i].key_len);

        kv->value.len = out[i].variation_key_len;
        kv->value.data = p;
        p = ngx_cpymem(p, out[i].variation_key, out[i].variation_key_len);

        kv++;
    }

    ctx->variants.data = p;
    kv = ctx->assigned;

    for (i = 0; i < count; i++) {
        size = kv[i].key.len + 1 + kv[i].value.len + (i ? 1 : 0);

        if ((size_t) (p - ctx->variants.data) + size > len) {
            break;
        }

        if (i) {
            *p++ = ';';
        }

        p = ngx_cpymem(p, kv[i].key.data, kv[i].key.len);
        *p++ = '=';
        p = ngx_cpymem(p, kv[i].value.data, kv[i].value.len);
    }

    ctx->variants.len = p - ctx->variants.data;

    return NGX_OK;
}


/* printable, no spaces, no list separators: safe in a header value */

static ngx_uint_t
ngx_http_storefront_safe(const char *s, size_t len)
{
    u_char  c;
    size_t  i;

    if (len == 0) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = (u_char) s[i];

        if (c <= ' ' || c == 0x7f || c == ';' || c == '=' || c == ',') {
            return 0;
        }
    }

    return 1;
}
