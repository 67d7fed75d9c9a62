
/*
 * storefront: experiment results (ngx_http_storefront_stats_module).
 *
 *     http {
 *         storefront_db /var/lib/storefront;
 *         storefront_stats on;                  # default: on (http,
 *                                               # server, location)
 *         storefront_stats_flush 1s;            # default: 1s
 *
 *         server {
 *             storefront on;
 *
 *             location = /sf/convert   { storefront_convert; }
 *
 *             location /sf-ops/ {
 *                 allow 10.0.0.0/8;
 *                 deny all;
 *                 location = /sf-ops/stats   { storefront_stats_api; }
 *                 location = /sf-ops/metrics { storefront_metrics; }
 *                 location = /sf-ops/status  { storefront_status_page; }
 *             }
 *         }
 *     }
 *
 * Exposures.  The assignments made by hashing (not the forced ones) are
 * appended to a per-worker buffer, at most 65536 exposures; a 2-way set
 * of 262144 recently buffered (user, experiment) pairs (2 MB) makes a
 * visitor's repeated requests free.  A per-worker timer writes the buffer every
 * storefront_stats_flush in one write transaction; the engine counts a
 * user once per experiment across workers and restarts.  A buffer three
 * quarters full is written at once; a full one drops exposures (counted
 * in storefront_exposures_dropped_total).  The delay of an exposure is at
 * most one interval; a crashed worker loses at most its last interval; a
 * reload, QUIT or TERM loses nothing (the buffer is written when the
 * worker exits, which the timer does not delay).  A conversion beacon
 * first writes its worker's buffer, in its own transaction, so that a
 * purchase right after the first page view is attributed.
 *
 * Counters shared by the workers (requests decided and served fail-open,
 * decisions per experiment and variation, flushes, beacons) live in the
 * shared memory zone "storefront_stats" and survive reloads.  A request
 * adds to its worker's own counters, published to the zone by the timer
 * (every storefront_stats_flush) and at exit: no atomic operation on the
 * request's path.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <math.h>

#include "ngx_http_storefront.h"
#include "ngx_http_storefront_stats.h"


#define NGX_HTTP_STOREFRONT_STATS_BUFFER    65536
#define NGX_HTTP_STOREFRONT_STATS_STRINGS   (8 * 1024 * 1024)
#define NGX_HTTP_STOREFRONT_STATS_SEEN      262144     /* a power of 2 */
#define NGX_HTTP_STOREFRONT_STATS_SLOTS     4096       /* a power of 2 */
#define NGX_HTTP_STOREFRONT_STATS_PROBES    64
#define NGX_HTTP_STOREFRONT_STATS_KEY_MAX   128
#define NGX_HTTP_STOREFRONT_STATS_ZONE      (1024 * 1024)

#define NGX_HTTP_STOREFRONT_CONVERT_MAX     4096       /* beacon body */
#define NGX_HTTP_STOREFRONT_ORDER_ID_MAX    128
#define NGX_HTTP_STOREFRONT_CATEGORIES_MAX  32
#define NGX_HTTP_STOREFRONT_CATEGORY_MAX    64
#define NGX_HTTP_STOREFRONT_AMOUNT_MAX      1e9

#define NGX_HTTP_STOREFRONT_EP_CONVERT      1
#define NGX_HTTP_STOREFRONT_EP_API          2
#define NGX_HTTP_STOREFRONT_EP_METRICS      3
#define NGX_HTTP_STOREFRONT_EP_STATUS       4

#define NGX_HTTP_STOREFRONT_BEACON_APPLIED    0
#define NGX_HTTP_STOREFRONT_BEACON_DUPLICATE  1
#define NGX_HTTP_STOREFRONT_BEACON_REJECTED   2


typedef struct {
    ngx_uint_t                          used;      /* a location counts */
    ngx_msec_t                          flush;
    ngx_shm_zone_t                     *shm_zone;
} ngx_http_storefront_stats_main_conf_t;


typedef struct {
    ngx_flag_t                          stats;
    ngx_uint_t                          endpoint;
    ngx_uint_t                          token;
} ngx_http_storefront_stats_loc_conf_t;


/* decisions of one (experiment, variation); hash is published last */

typedef struct {
    ngx_atomic_t                        hash;      /* 0: free */
    ngx_atomic_t                        count;
    uint32_t                            variation;
    uint32_t                            key_len;
    u_char                              key[NGX_HTTP_STOREFRONT_STATS_KEY_MAX];
} ngx_http_storefront_stats_slot_t;


typedef struct {
    ngx_atomic_t                        decided;
    ngx_atomic_t                        fail_open;
    ngx_atomic_t                        decisions_lost;
    ngx_atomic_t                        buffered;
    ngx_atomic_t                        recorded;
    ngx_atomic_t                        dropped;
    ngx_atomic_t                        flushes;
    ngx_atomic_t                        flush_errors;
    ngx_atomic_t                        flush_usec;
    ngx_atomic_t                        beacons[3];
    ngx_atomic_t                        changes;
    ngx_http_storefront_stats_slot_t    slots[NGX_HTTP_STOREFRONT_STATS_SLOTS];
    ngx_atomic_t                        cache[2];  /* hit, miss */
} ngx_http_storefront_stats_shm_t;


typedef struct {
    int64_t                             time;
    uint32_t                            off;       /* user, then key */
    uint32_t                            variation;
    uint16_t                            user_len;
    uint16_t                            key_len;
} ngx_http_storefront_stats_entry_t;


typedef struct {
    ngx_http_storefront_stats_shm_t    *sh;
    ngx_slab_pool_t                    *shpool;
    ngx_http_storefront_main_conf_t    *core;
    ngx_msec_t                          interval;

    ngx_http_storefront_stats_entry_t  *entries;
    ngx_uint_t                          nentries;
    u_char                             *strings;
    size_t                              used;
    uint64_t                           *seen;

    ngx_event_t                         timer;
    ngx_event_t                         soon;      /* early flush */

    ngx_atomic_uint_t                  *decisions; /* by slot, unpublished */
    ngx_atomic_uint_t                   decided;
    ngx_atomic_uint_t                   fail_open;
    ngx_atomic_uint_t                   buffered;
    ngx_atomic_uint_t                   cache[2];  /* hit, miss */

    unsigned                            counting:1;
    unsigned                            failing:1;
} ngx_http_storefront_stats_worker_t;


typedef struct {
    const char                         *kind;
    ngx_str_t                           id;
    uint64_t                            impressions;
    uint64_t                            clicks;
} ngx_http_storefront_stats_ad_t;


/* what the metrics and the status page show, gathered in one place */

typedef struct {
    sf_experiment_report               *reports;
    size_t                              nreports;
    ngx_uint_t                          db_up;
    sf_db_info                          info;
    uint64_t                            push[SF_PUSH__COUNT];
    ngx_array_t                        *ads;
} ngx_http_storefront_stats_view_t;


static ngx_int_t ngx_http_storefront_stats_decision(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_facts_t *facts);
static ngx_int_t ngx_http_storefront_stats_log_handler(
    ngx_http_request_t *r);
static ngx_http_storefront_stats_slot_t *ngx_http_storefront_stats_slot(
    uint64_t h, const char *key, size_t key_len, uint32_t variation);
static void ngx_http_storefront_stats_publish(void);
static void ngx_http_storefront_stats_timer(ngx_event_t *ev);
static void ngx_http_storefront_stats_flush(ngx_log_t *log,
    ngx_uint_t exiting);
static int ngx_http_storefront_stats_write(sf_txn *txn, ngx_uint_t *added,
    sf_error *err);
static void ngx_http_storefront_stats_written(ngx_uint_t added);
static void ngx_http_storefront_stats_drop(void);

static ngx_int_t ngx_http_storefront_stats_convert_handler(
    ngx_http_request_t *r);
static void ngx_http_storefront_stats_convert_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_stats_convert(ngx_http_request_t *r,
    ngx_str_t *body, sf_arena *a);
static ngx_int_t ngx_http_storefront_stats_beacon(ngx_http_request_t *r,
    ngx_uint_t result, ngx_uint_t status, const char *msg);
static ngx_int_t ngx_http_storefront_stats_api_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_stats_metrics_handler(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_stats_status_handler(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_stats_check(ngx_http_request_t *r,
    ngx_uint_t token);
static ngx_int_t ngx_http_storefront_stats_view(ngx_http_request_t *r,
    sf_arena *a, ngx_http_storefront_stats_view_t *v);
static int ngx_http_storefront_stats_ad(void *data, const char *kind,
    const char *key, size_t key_len, const sf_ad_counts *c);
static void ngx_http_storefront_stats_prometheus(sf_buf *b,
    ngx_http_storefront_stats_view_t *v);
static void ngx_http_storefront_stats_page(sf_buf *b,
    ngx_http_storefront_stats_view_t *v);
static ngx_int_t ngx_http_storefront_stats_send(ngx_http_request_t *r,
    const char *type, sf_buf *b);
static void ngx_http_storefront_stats_admin_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_stats_admin_route(ngx_http_request_t *r,
    ngx_str_t *key);
static ngx_int_t ngx_http_storefront_stats_admin_report(ngx_http_request_t *r,
    ngx_str_t *key);

static char *ngx_http_storefront_stats_endpoint(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_storefront_stats_flush_check(ngx_conf_t *cf,
    void *post, void *data);
static ngx_int_t ngx_http_storefront_stats_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_storefront_stats_init(ngx_conf_t *cf);
static void *ngx_http_storefront_stats_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_storefront_stats_init_main_conf(ngx_conf_t *cf,
    void *conf);
static void *ngx_http_storefront_stats_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_storefront_stats_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_storefront_stats_init_process(ngx_cycle_t *cycle);
static void ngx_http_storefront_stats_exit_process(ngx_cycle_t *cycle);


static ngx_conf_post_t  ngx_http_storefront_stats_flush_post = {
    ngx_http_storefront_stats_flush_check
};


static ngx_command_t  ngx_http_storefront_stats_commands[] = {

    { ngx_string("storefront_stats"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_stats_loc_conf_t, stats),
      NULL },

    { ngx_string("storefront_stats_flush"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_storefront_stats_main_conf_t, flush),
      &ngx_http_storefront_stats_flush_post },

    { ngx_string("storefront_convert"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_storefront_stats_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_STOREFRONT_EP_CONVERT,
      NULL },

    { ngx_string("storefront_stats_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_storefront_stats_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_STOREFRONT_EP_API,
      NULL },

    { ngx_string("storefront_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_storefront_stats_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_STOREFRONT_EP_METRICS,
      NULL },

    { ngx_string("storefront_status_page"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_storefront_stats_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_STOREFRONT_EP_STATUS,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_storefront_stats_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_storefront_stats_init,        /* postconfiguration */

    ngx_http_storefront_stats_create_main_conf, /* create main configuration */
    ngx_http_storefront_stats_init_main_conf,   /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_storefront_stats_create_loc_conf, /* create location
                                                  configuration */
    ngx_http_storefront_stats_merge_loc_conf   /* merge location
                                                  configuration */
};


ngx_module_t  ngx_http_storefront_stats_module = {
    NGX_MODULE_V1,
    &ngx_http_storefront_stats_module_ctx, /* module context */
    ngx_http_storefront_stats_commands,    /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_storefront_stats_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_storefront_stats_exit_process, /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_storefront_stats_worker_t  ngx_http_storefront_stats_worker;

static ngx_http_storefront_decision_pt  ngx_http_storefront_next_decision;

/* the decision cache's results, as counted in the zone's cache[] */
static ngx_str_t  ngx_http_storefront_stats_cache_results[] = {
    ngx_string("hit"),
    ngx_string("miss")
};

static const char  *ngx_http_storefront_stats_beacon_names[] = {
    "applied", "duplicate", "rejected"
};


/* ---- exposures ----------------------------------------------------------- */

static ngx_int_t
ngx_http_storefront_stats_decision(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_facts_t *facts)
{
    /*
     * a decision from the decision cache was counted as exposures when it
     * was made, in this worker: only the decisions are counted again
     */

    ngx_http_storefront_stats_expose(r, (const char *) ctx->user_id.data,
                                     ctx->user_id.len, facts->assignments,
                                     facts->nassignments, facts->counters,
                                     ctx->cache
                                     == NGX_HTTP_STOREFRONT_CACHE_HIT);

    return ngx_http_storefront_next_decision(r, ctx, facts);
}


void
ngx_http_storefront_stats_expose(ngx_http_request_t *r, const char *user,
    size_t user_len, const sf_assignment *a, size_t n, uint32_t *counters,
    ngx_uint_t counted)
{
    u_char                                *p;
    size_t                                 i, need;
    uint64_t                               hu, hk, h, *seen;
    ngx_http_storefront_stats_slot_t      *slot;
    ngx_http_storefront_stats_entry_t     *e;
    ngx_http_storefront_stats_worker_t    *w;
    ngx_http_storefront_stats_loc_conf_t  *lcf;

    w = &ngx_http_storefront_stats_worker;

    if (!w->counting) {
        return;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_stats_module);

    if (!lcf->stats) {
        return;
    }

    hu = counted ? 0
                 : ngx_http_storefront_hash(0, (u_char *) user, user_len);

    for (i = 0; i < n; i++) {

        if (!a[i].in_experiment
            || a[i].key_len > NGX_HTTP_STOREFRONT_STATS_KEY_MAX)
        {
            continue;
        }

        if (counted && counters
            && counters[i] != NGX_HTTP_STOREFRONT_NO_COUNTER)
        {
            /* a cached decision: its counter is known */
            w->decisions[counters[i]]++;
            continue;
        }

        hk = ngx_http_storefront_hash(1, (u_char *) a[i].key, a[i].key_len);

        slot = ngx_http_storefront_stats_slot(
                   ngx_http_storefront_mix(hk + a[i].variation + 1),
                   a[i].key, a[i].key_len, (uint32_t) a[i].variation);

        if (slot) {
            w->decisions[slot - w->sh->slots]++;

            if (counters) {
                counters[i] = (uint32_t) (slot - w->sh->slots);
            }

        } else {
            (void) ngx_atomic_fetch_add(&w->sh->decisions_lost, 1);
        }

        /* GrowthBook tracks the results of hashing only */

        if (counted || a[i].reason != SF_REASON_ASSIGNED || user_len == 0
            || user_len > NGX_HTTP_STOREFRONT_USER_ID_MAX)
        {
            continue;
        }

        h = ngx_http_storefront_mix(hu ^ (hk * NGX_HTTP_STOREFRONT_K2))
            | 1;

        /* 2-way: the pair's slot or its neighbour */

        seen = &w->seen[h & (NGX_HTTP_STOREFRONT_STATS_SEEN - 2)];

        if (seen[0] == h || seen[1] == h) {
            continue;
        }

        need = user_len + a[i].key_len;

        if (w->nentries == NGX_HTTP_STOREFRONT_STATS_BUFFER
            || w->used + need > NGX_HTTP_STOREFRONT_STATS_STRINGS)
        {
            (void) ngx_atomic_fetch_add(&w->sh->dropped, 1);
            continue;
        }

        seen[seen[0] == 0 ? 0 : seen[1] == 0 ? 1 : (h >> 40) & 1] = h;

        e = &w->entries[w->nentries++];
        e->time = (int64_t) ngx_time();
        e->off = (uint32_t) w->used;
        e->variation = (uint32_t) a[i].variation;
        e->user_len = (uint16_t) user_len;
        e->key_len = (uint16_t) a[i].key_len;

        p = ngx_cpymem(w->strings + w->used, user, user_len);
        ngx_memcpy(p, a[i].key, a[i].key_len);
        w->used += need;

        w->buffered++;

        if ((w->nentries >= NGX_HTTP_STOREFRONT_STATS_BUFFER / 4 * 3
             || w->used >= NGX_HTTP_STOREFRONT_STATS_STRINGS / 4 * 3)
            && !w->soon.posted)
        {
            ngx_post_event(&w->soon, &ngx_posted_events);
        }
    }
}


static ngx_int_t
ngx_http_storefront_stats_log_handler(ngx_http_request_t *r)
{
    ngx_http_storefront_ctx_t             *ctx;
    ngx_http_storefront_stats_worker_t    *w;
    ngx_http_storefront_stats_loc_conf_t  *lcf;

    w = &ngx_http_storefront_stats_worker;

    if (!w->counting) {
        return NGX_OK;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_stats_module);

    if (!lcf->stats) {
        return NGX_OK;
    }

    ctx = ngx_http_storefront_get_ctx(r);

    if (ctx == NULL || ctx->busy) {
        return NGX_OK;
    }

    if (ctx->available) {
        w->decided++;

    } else {
        w->fail_open++;
    }

    switch (ctx->cache) {

    case NGX_HTTP_STOREFRONT_CACHE_HIT:
        w->cache[0]++;
        break;

    case NGX_HTTP_STOREFRONT_CACHE_MISS:
        w->cache[1]++;
        break;

    default: /* no decision cache */
        break;
    }

    return NGX_OK;
}


/*
 * The shared slot of (key, variation), added when missing.  Lookups take
 * no lock: a slot's key is written before its hash is published.
 */

static ngx_http_storefront_stats_slot_t *
ngx_http_storefront_stats_slot(uint64_t h, const char *key, size_t key_len,
    uint32_t variation)
{
    ngx_uint_t                           i, locked;
    ngx_atomic_uint_t                    hv, want;
    ngx_http_storefront_stats_slot_t    *s;
    ngx_http_storefront_stats_worker_t  *w;

    w = &ngx_http_storefront_stats_worker;

    want = (ngx_atomic_uint_t) h | 1;
    locked = 0;

again:

    for (i = 0; i < NGX_HTTP_STOREFRONT_STATS_PROBES; i++) {
        s = &w->sh->slots[(h + i) & (NGX_HTTP_STOREFRONT_STATS_SLOTS - 1)];

        hv = s->hash;

        if (hv == want && s->variation == variation
            && s->key_len == key_len
            && ngx_memcmp(s->key, key, key_len) == 0)
        {
            if (locked) {
                ngx_shmtx_unlock(&w->shpool->mutex);
            }

            return s;
        }

        if (hv != 0) {
            continue;
        }

        if (!locked) {
            ngx_shmtx_lock(&w->shpool->mutex);
            locked = 1;
            goto again;
        }

        ngx_memcpy(s->key, key, key_len);
        s->key_len = (uint32_t) key_len;
        s->variation = variation;

        ngx_memory_barrier();

        s->hash = want;

        ngx_shmtx_unlock(&w->shpool->mutex);

        return s;
    }

    if (locked) {
        ngx_shmtx_unlock(&w->shpool->mutex);
    }

    return NULL;
}


/* the worker's counters into the zone */

static void
ngx_http_storefront_stats_publish(void)
{
    ngx_uint_t                           i;
    ngx_http_storefront_stats_shm_t     *sh;
    ngx_http_storefront_stats_worker_t  *w;

    w = &ngx_http_storefront_stats_worker;
    sh = w->sh;

    for (i = 0; i < NGX_HTTP_STOREFRONT_STATS_SLOTS; i++) {
        if (w->decisions[i]) {
            (void) ngx_atomic_fetch_add(&sh->slots[i].count,
                                        w->decisions[i]);
            w->decisions[i] = 0;
        }
    }

    if (w->decided) {
        (void) ngx_atomic_fetch_add(&sh->decided, w->decided);
        w->decided = 0;
    }

    if (w->fail_open) {
        (void) ngx_atomic_fetch_add(&sh->fail_open, w->fail_open);
        w->fail_open = 0;
    }

    if (w->buffered) {
        (void) ngx_atomic_fetch_add(&sh->buffered, w->buffered);
        w->buffered = 0;
    }

    for (i = 0; i < 2; i++) {
        if (w->cache[i]) {
            (void) ngx_atomic_fetch_add(&sh->cache[i], w->cache[i]);
            w->cache[i] = 0;
        }
    }
}


static void
ngx_http_storefront_stats_timer(ngx_event_t *ev)
{
    ngx_http_storefront_stats_worker_t  *w;

    w = &ngx_http_storefront_stats_worker;

    ngx_http_storefront_stats_publish();
    ngx_http_storefront_stats_flush(ev->log, 0);

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        /* the last flush is in exit_process */
        return;
    }

    if (!w->timer.timer_set) {
        ngx_add_timer(&w->timer, w->interval);
    }
}


static void
ngx_http_storefront_stats_flush(ngx_log_t *log, ngx_uint_t exiting)
{
    int                                  rc;
    sf_db                               *db;
    sf_txn                              *txn;
    sf_error                             err;
    uint64_t                             start;
    ngx_uint_t                           added, opened;
    struct timeval                       tv;
    ngx_http_storefront_stats_worker_t  *w;

    w = &ngx_http_storefront_stats_worker;

    if (w->nentries == 0) {
        return;
    }

    opened = 0;

    db = ngx_http_storefront_worker_db(log);

    if (db == NULL && exiting && w->core) {
        /* the main module closed its handle first: open one for this */

        err.code = 0;
        err.msg[0] = '\0';

        if (sf_db_open(&db, (const char *) w->core->db_path.data,
                       w->core->map_size, 0, &err)
            != SF_OK)
        {
            db = NULL;
        }

        opened = (db != NULL);
    }

    if (db == NULL) {
        /* unavailable: kept for the next interval (the buffer is bounded) */

        if (exiting) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "storefront_stats: %ui exposures lost at exit: "
                          "the database is unavailable", w->nentries);
            ngx_http_storefront_stats_drop();
        }

        return;
    }

    ngx_gettimeofday(&tv);
    start = (uint64_t) tv.tv_sec * 1000000 + tv.tv_usec;

    err.code = 0;
    err.msg[0] = '\0';
    added = 0;

    rc = sf_txn_begin(db, &txn, &err);

    if (rc == SF_OK) {
        rc = ngx_http_storefront_stats_write(txn, &added, &err);

        if (rc == SF_OK) {
            rc = sf_txn_commit(txn, &err);

        } else {
            sf_txn_abort(txn);
        }
    }

    ngx_gettimeofday(&tv);
    (void) ngx_atomic_fetch_add(&w->sh->flush_usec,
                   (ngx_atomic_int_t) ((uint64_t) tv.tv_sec * 1000000
                                       + tv.tv_usec - start));

    if (opened) {
        sf_db_close(db);
    }

    if (rc == SF_OK) {
        if (w->failing) {
            w->failing = 0;
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "storefront_stats: exposures are written again");
        }

        ngx_http_storefront_stats_written(added);
        return;
    }

    (void) ngx_atomic_fetch_add(&w->sh->flush_errors, 1);

    if (!w->failing) {
        w->failing = 1;
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "storefront_stats: %ui exposures not written: %s%s",
                      w->nentries, err.msg,
                      rc == SF_ERR_MAP_FULL
                      ? " (\"map_size\" of \"storefront_db\")" : "");
    }

    ngx_http_storefront_stats_drop();
}


/* the buffered exposures, in the caller's write transaction */

static int
ngx_http_storefront_stats_write(sf_txn *txn, ngx_uint_t *added,
    sf_error *err)
{
    int                                  rc, is_new;
    u_char                              *p;
    ngx_uint_t                           i;
    sf_exposure                          x;
    ngx_http_storefront_stats_entry_t   *e;
    ngx_http_storefront_stats_worker_t  *w;

    w = &ngx_http_storefront_stats_worker;

    *added = 0;

    for (i = 0; i < w->nentries; i++) {
        e = &w->entries[i];
        p = w->strings + e->off;

        x.user = (const char *) p;
        x.user_len = e->user_len;
        x.experiment = (const char *) p + e->user_len;
        x.experiment_len = e->key_len;
        x.variation = e->variation;
        x.time = e->time;

        rc = sf_txn_record_exposure(txn, &x, &is_new, err);
        if (rc != SF_OK) {
            return rc;
        }

        *added += is_new;
    }

    return SF_OK;
}


static void
ngx_http_storefront_stats_written(ngx_uint_t added)
{
    ngx_http_storefront_stats_worker_t  *w;

    w = &ngx_http_storefront_stats_worker;

    if (w->nentries == 0) {
        return;
    }

    (void) ngx_atomic_fetch_add(&w->sh->flushes, 1);
    (void) ngx_atomic_fetch_add(&w->sh->recorded, added);

    w->nentries = 0;
    w->used = 0;
}


/* the pairs dropped may be seen again: forget them all */

static void
ngx_http_storefront_stats_drop(void)
{
    ngx_http_storefront_stats_worker_t  *w;

    w = &ngx_http_storefront_stats_worker;

    (void) ngx_atomic_fetch_add(&w->sh->dropped, w->nentries);

    w->nentries = 0;
    w->used = 0;

    ngx_memzero(w->seen, NGX_HTTP_STOREFRONT_STATS_SEEN * sizeof(uint64_t));
}


/* ---- the conversion beacon ---------------------------------------------- */

static ngx_int_t
ngx_http_storefront_stats_convert_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_storefront_send_not_allowed(r, "POST");
    }

    if (r->headers_in.content_length_n > NGX_HTTP_STOREFRONT_CONVERT_MAX) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_storefront_stats_beacon(r,
                                   NGX_HTTP_STOREFRONT_BEACON_REJECTED,
                                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "the body is too large");
    }

    rc = ngx_http_read_client_request_body(r,
                                      ngx_http_storefront_stats_convert_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_storefront_stats_convert_body(ngx_http_request_t *r)
{
    ngx_int_t   rc;
    ngx_str_t   body;
    sf_arena   *a;

    if (ngx_http_storefront_request_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    a = sf_arena_create(4096);
    if (a == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_storefront_stats_convert(r, &body, a);

    sf_arena_destroy(a);

    ngx_http_finalize_request(r, rc);
}


/*
 * A purchase of the visitor (the request's own identity, as the pages'
 * decisions): {"order_id": "...", "amount": 12.5, "categories": [...]}
 * in the body, or order_id and amount in the query string.  The time is
 * the server's.  Idempotent by order id.
 */

static ngx_int_t
ngx_http_storefront_stats_convert(ngx_http_request_t *r, ngx_str_t *body,
    sf_arena *a)
{
    int                                  rc;
    u_char                              *dst, *src, num[64];
    sf_db                               *db;
    sf_txn                              *txn;
    sf_buf                              *b;
    sf_error                             err;
    sf_event                             ev;
    sf_value                             doc;
    ngx_str_t                            arg, order;
    ngx_uint_t                           i, added;
    sf_event_result                      res;
    const sf_value                      *v;
    ngx_http_storefront_ctx_t           *ctx;
    ngx_http_storefront_stats_worker_t  *w;

    w = &ngx_http_storefront_stats_worker;

    if (body->len > NGX_HTTP_STOREFRONT_CONVERT_MAX) {
        return ngx_http_storefront_stats_beacon(r,
                                   NGX_HTTP_STOREFRONT_BEACON_REJECTED,
                                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "the body is too large");
    }

    ctx = ngx_http_storefront_decide(r);

    if (ctx == NULL || ctx->busy) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->user_id.len == 0 || (ctx->minted && !ctx->logged_in)) {
        return ngx_http_storefront_stats_beacon(r,
                                   NGX_HTTP_STOREFRONT_BEACON_REJECTED,
                                   NGX_HTTP_BAD_REQUEST,
                                   "the visitor has no id yet");
    }

    ngx_memzero(&ev, sizeof(sf_event));

    ev.type = SF_EVENT_PURCHASE;
    ev.user = (const char *) ctx->user_id.data;
    ev.user_len = ctx->user_id.len;
    ev.time = (int64_t) ngx_time();

    err.code = 0;
    err.msg[0] = '\0';

    for (i = 0; i < body->len; i++) {
        if (body->data[i] != ' ' && body->data[i] != '\t'
            && body->data[i] != '\r' && body->data[i] != '\n')
        {
            break;
        }
    }

    if (i < body->len) {

        if (sf_json_parse((const char *) body->data, body->len, a, &doc,
                          &err)
            != SF_OK
            || doc.type != SF_OBJECT)
        {
            return ngx_http_storefront_stats_beacon(r,
                                   NGX_HTTP_STOREFRONT_BEACON_REJECTED,
                                   NGX_HTTP_BAD_REQUEST,
                                   "the body must be a JSON object");
        }

        v = sf_value_member(&doc, "type", 4);
        if (v && (v->type != SF_STRING || v->u.str.len != 8
                  || ngx_strncmp(v->u.str.p, "purchase", 8) != 0))
        {
            return ngx_http_storefront_stats_beacon(r,
                                   NGX_HTTP_STOREFRONT_BEACON_REJECTED,
                                   NGX_HTTP_BAD_REQUEST,
                                   "a beacon reports purchases only");
        }

        v = sf_value_member(&doc, "user", 4);
        if (v && (v->type != SF_STRING || v->u.str.len != ev.user_len
                  || ngx_memcmp(v->u.str.p, ev.user, ev.user_len) != 0))
        {
            return ngx_http_storefront_stats_beacon(r,
                                   NGX_HTTP_STOREFRONT_BEACON_REJECTED,
                                   NGX_HTTP_FORBIDDEN,
                                   "a beacon acts for the visitor only");
        }

        v = sf_value_member(&doc, "order_id", 8);
        if (v == NULL || v->type != SF_STRING) {
            goto bad_order;
        }

        order.data = (u_char *) v->u.str.p;
        order.len = v->u.str.len;

        v = sf_value_member(&doc, "amount", 6);
        if (v == NULL || v->type != SF_NUMBER) {
            goto bad_amount;
        }

        ev.amount = v->u.number;

        v = sf_value_member(&doc, "categories", 10);
        if (v && v->type != SF_NULL) {
            if (v->type != SF_ARRAY
                || v->u.arr.n > NGX_HTTP_STOREFRONT_CATEGORIES_MAX)
            {
                goto bad_categories;
            }

            for (i = 0; i < v->u.arr.n; i++) {
                if (v->u.arr.items[i].type != SF_STRING
                    || v->u.arr.items[i].u.str.len == 0
                    || v->u.arr.items[i].u.str.len
                       > NGX_HTTP_STOREFRONT_CATEGORY_MAX)
                {
                    goto bad_categories;
                }
            }

            ev.categories = v;
        }

    } else {

        if (ngx_http_arg(r, (u_char *) "order_id", 8, &arg) != NGX_OK
            || arg.len > NGX_HTTP_STOREFRONT_ORDER_ID_MAX * 3)
        {
            goto bad_order;
        }

        dst = ngx_pnalloc(r->pool, arg.len);
        if (dst == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        order.data = dst;
        src = arg.data;
        ngx_unescape_uri(&dst, &src, arg.len, 0);
        order.len = dst - order.data;

        if (ngx_http_arg(r, (u_char *) "amount", 6, &arg) != NGX_OK
            || arg.len == 0 || arg.len >= sizeof(num))
        {
            goto bad_amount;
        }

        ngx_memcpy(num, arg.data, arg.len);
        num[arg.len] = '\0';

        ev.amount = strtod((char *) num, (char **) &dst);

        if (dst != num + arg.len) {
            goto bad_amount;
        }

    }

    if (order.len == 0 || order.len > NGX_HTTP_STOREFRONT_ORDER_ID_MAX) {
        goto bad_order;
    }

    for (i = 0; i < order.len; i++) {
        if (order.data[i] < ' ' || order.data[i] == 0x7f) {
            goto bad_order;
        }
    }

    if (!isfinite(ev.amount) || ev.amount < 0
        || ev.amount > NGX_HTTP_STOREFRONT_AMOUNT_MAX)
    {
        goto bad_amount;
    }

    ev.order_id = (const char *) order.data;
    ev.order_id_len = order.len;

    db = ngx_http_storefront_worker_db(r->connection->log);

    if (db == NULL) {
        return ngx_http_storefront_stats_beacon(r,
                                   NGX_HTTP_STOREFRONT_BEACON_REJECTED,
                                   NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "the database is unavailable");
    }

    /* the visitor's own exposures first: a purchase right after the
     * page view is attributed to it */

    added = 0;

    rc = sf_txn_begin(db, &txn, &err);

    if (rc == SF_OK) {
        rc = w->counting ? ngx_http_storefront_stats_write(txn, &added, &err)
                         : SF_OK;

        if (rc == SF_OK) {
            rc = sf_txn_apply_event(txn, &ev, &res, &err);
        }

        if (rc == SF_OK) {
            rc = sf_txn_commit(txn, &err);

        } else {
            sf_txn_abort(txn);
        }
    }

    if (rc != SF_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront_convert: not applied: %s%s", err.msg,
                      rc == SF_ERR_MAP_FULL
                      ? " (\"map_size\" of \"storefront_db\")" : "");

        return ngx_http_storefront_stats_beacon(r,
                                   NGX_HTTP_STOREFRONT_BEACON_REJECTED,
                                   rc == SF_ERR_MAP_FULL
                                   ? NGX_HTTP_INSUFFICIENT_STORAGE
                                   : NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "the conversion was not recorded");
    }

    if (w->counting) {
        ngx_http_storefront_stats_written(added);
    }

    if (w->sh) {
        (void) ngx_atomic_fetch_add(&w->sh->beacons[res.duplicate
                                    ? NGX_HTTP_STOREFRONT_BEACON_DUPLICATE
                                    : NGX_HTTP_STOREFRONT_BEACON_APPLIED], 1);
    }

    b = ngx_http_storefront_scratch();

    if (sf_buf_printf(b, "{\"applied\":%s,\"duplicate\":%s}",
                      res.duplicate ? "false" : "true",
                      res.duplicate ? "true" : "false")
        != SF_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_storefront_send_buf(r, NGX_HTTP_OK, b);

bad_order:

    return ngx_http_storefront_stats_beacon(r,
                                   NGX_HTTP_STOREFRONT_BEACON_REJECTED,
                                   NGX_HTTP_BAD_REQUEST,
                                   "\"order_id\" must be 1 to 128 bytes "
                                   "without control characters");

bad_amount:

    return ngx_http_storefront_stats_beacon(r,
                                   NGX_HTTP_STOREFRONT_BEACON_REJECTED,
                                   NGX_HTTP_BAD_REQUEST,
                                   "\"amount\" must be a number from 0 to "
                                   "1e9");

bad_categories:

    return ngx_http_storefront_stats_beacon(r,
                                   NGX_HTTP_STOREFRONT_BEACON_REJECTED,
                                   NGX_HTTP_BAD_REQUEST,
                                   "\"categories\" must be at most 32 "
                                   "strings of 1 to 64 bytes");
}


static ngx_int_t
ngx_http_storefront_stats_beacon(ngx_http_request_t *r, ngx_uint_t result,
    ngx_uint_t status, const char *msg)
{
    ngx_http_storefront_stats_worker_t  *w;

    w = &ngx_http_storefront_stats_worker;

    if (w->sh) {
        (void) ngx_atomic_fetch_add(&w->sh->beacons[result], 1);
    }

    return ngx_http_storefront_send_error(r, status, "%s", msg);
}


/* ---- the stats API, the metrics, the status page ------------------------ */

static ngx_int_t
ngx_http_storefront_stats_api_handler(ngx_http_request_t *r)
{
    int                    rc;
    u_char                *dst, *src;
    size_t                 n;
    sf_buf                *b;
    sf_arena              *a;
    sf_error               err;
    ngx_int_t              nrc;
    ngx_str_t              arg, key;
    sf_snapshot           *snapshot;
    sf_experiment_report  *rep;

    nrc = ngx_http_storefront_stats_check(r, 1);
    if (nrc != NGX_DECLINED) {
        return nrc;
    }

    ngx_str_null(&key);

    if (ngx_http_arg(r, (u_char *) "experiment", 10, &arg) == NGX_OK
        && arg.len)
    {
        dst = ngx_pnalloc(r->pool, arg.len);
        if (dst == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        key.data = dst;
        src = arg.data;
        ngx_unescape_uri(&dst, &src, arg.len, 0);
        key.len = dst - key.data;
    }

    snapshot = ngx_http_storefront_snapshot_acquire(r->connection->log);

    if (snapshot == NULL) {
        return ngx_http_storefront_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                              "the database is unavailable");
    }

    a = sf_arena_create(64 * 1024);
    if (a == NULL) {
        ngx_http_storefront_snapshot_release();
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_report_collect(snapshot, (const char *) key.data, key.len, a,
                           &rep, &n, &err);

    ngx_http_storefront_snapshot_release();

    if (rc == SF_OK) {
        b = ngx_http_storefront_scratch();
        rc = sf_report_json(rep, n, (int64_t) ngx_time(), b);
    }

    sf_arena_destroy(a);

    if (rc == SF_ERR_NOT_FOUND) {
        return ngx_http_storefront_send_error(r, NGX_HTTP_NOT_FOUND,
                                              "no experiment \"%V\"", &key);
    }

    if (rc != SF_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront_stats_api: %s", err.msg);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_storefront_send_buf(r, NGX_HTTP_OK, b);
}


static ngx_int_t
ngx_http_storefront_stats_metrics_handler(ngx_http_request_t *r)
{
    sf_buf                            *b;
    sf_arena                          *a;
    ngx_int_t                          rc;
    ngx_http_storefront_stats_view_t   v;

    rc = ngx_http_storefront_stats_check(r, 1);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    a = sf_arena_create(64 * 1024);
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_storefront_stats_view(r, a, &v) != NGX_OK) {
        sf_arena_destroy(a);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_http_storefront_scratch();

    ngx_http_storefront_stats_prometheus(b, &v);

    sf_arena_destroy(a);

    return ngx_http_storefront_stats_send(r,
                               "text/plain; version=0.0.4; charset=utf-8", b);
}


static ngx_int_t
ngx_http_storefront_stats_status_handler(ngx_http_request_t *r)
{
    sf_buf                            *b;
    sf_arena                          *a;
    ngx_int_t                          rc;
    ngx_table_elt_t                   *h;
    ngx_http_storefront_stats_view_t   v;

    rc = ngx_http_storefront_stats_check(r, 0);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    a = sf_arena_create(64 * 1024);
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_storefront_stats_view(r, a, &v) != NGX_OK) {
        sf_arena_destroy(a);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_http_storefront_scratch();

    ngx_http_storefront_stats_page(b, &v);

    sf_arena_destroy(a);

    /* nothing but the page itself: inline styles, inline SVG */

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Content-Security-Policy");
    ngx_str_set(&h->value, "default-src 'none'; style-src 'unsafe-inline'; "
                           "frame-ancestors 'none'; base-uri 'none'; "
                           "form-action 'none'");
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Content-Type-Options");
    ngx_str_set(&h->value, "nosniff");
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return ngx_http_storefront_stats_send(r, "text/html; charset=utf-8", b);
}


/*
 * GET or HEAD, and the admin token when the endpoint asks for it:
 * NGX_DECLINED to go on, else the refusal was sent (or failed).
 */

static ngx_int_t
ngx_http_storefront_stats_check(ngx_http_request_t *r, ngx_uint_t token)
{
    ngx_int_t                              rc;
    ngx_http_storefront_loc_conf_t        *slcf;
    ngx_http_storefront_stats_loc_conf_t  *lcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_storefront_send_not_allowed(r, "GET, HEAD");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_stats_module);

    if (!token || !lcf->token) {
        return NGX_DECLINED;
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_module);

    rc = ngx_http_storefront_bearer(r, &slcf->admin_token);

    if (rc != NGX_OK) {
        return ngx_http_storefront_send_unauthorized(r, rc, "stats");
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_storefront_stats_view(ngx_http_request_t *r, sf_arena *a,
    ngx_http_storefront_stats_view_t *v)
{
    int           rc;
    sf_db        *db;
    sf_error      err;
    sf_snapshot  *snapshot;

    ngx_memzero(v, sizeof(ngx_http_storefront_stats_view_t));

    /* this worker's own counts, at once; the others' within an interval */

    if (ngx_http_storefront_stats_worker.counting) {
        ngx_http_storefront_stats_publish();
    }

    v->ads = ngx_array_create(r->pool, 16,
                              sizeof(ngx_http_storefront_stats_ad_t));
    if (v->ads == NULL) {
        return NGX_ERROR;
    }

    snapshot = ngx_http_storefront_snapshot_acquire(r->connection->log);

    if (snapshot == NULL) {
        return NGX_OK;
    }

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_report_collect(snapshot, NULL, 0, a, &v->reports, &v->nreports,
                           &err);

    ngx_http_storefront_snapshot_release();

    db = ngx_http_storefront_worker_db(r->connection->log);

    if (rc == SF_OK && db) {
        rc = sf_db_info_get(db, &v->info, &err);
    }

    if (rc == SF_OK && db) {
        rc = sf_db_push_counters(db, v->push, &err);
    }

    if (rc == SF_OK && db) {
        rc = sf_db_ad_counts(db, ngx_http_storefront_stats_ad, v, &err);
    }

    if (rc == SF_ERR_NOMEM) {
        return NGX_ERROR;
    }

    if (rc != SF_OK || db == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront_stats: the database cannot be read: %s",
                      err.msg);
        v->reports = NULL;
        v->nreports = 0;
        v->ads->nelts = 0;
        return NGX_OK;
    }

    v->db_up = 1;

    return NGX_OK;
}


static int
ngx_http_storefront_stats_ad(void *data, const char *kind, const char *key,
    size_t key_len, const sf_ad_counts *c)
{
    ngx_http_storefront_stats_view_t *v = data;

    ngx_http_storefront_stats_ad_t  *ad;

    ad = ngx_array_push(v->ads);
    if (ad == NULL) {
        return SF_ERR_NOMEM;
    }

    ad->id.data = ngx_pnalloc(v->ads->pool, key_len);
    if (ad->id.data == NULL) {
        return SF_ERR_NOMEM;
    }

    ngx_memcpy(ad->id.data, key, key_len);
    ad->id.len = key_len;
    ad->kind = kind;
    ad->impressions = c->impressions;
    ad->clicks = c->clicks;

    return 0;
}


/* ---- Prometheus text format 0.0.4 ---------------------------------------- */

static void
ngx_http_storefront_stats_family(sf_buf *b, const char *name,
    const char *type, const char *help)
{
    sf_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}


/* a label value: backslash, double quote and newline escaped */

static void
ngx_http_storefront_stats_label(sf_buf *b, const char *name, const char *s,
    size_t len)
{
    size_t  i, start;

    sf_buf_printf(b, "%s=\"", name);

    for (i = 0, start = 0; i < len; i++) {
        if (s[i] != '\\' && s[i] != '"' && s[i] != '\n') {
            continue;
        }

        sf_buf_append(b, s + start, i - start);
        sf_buf_appends(b, s[i] == '\\' ? "\\\\" : s[i] == '"' ? "\\\""
                                                              : "\\n");
        start = i + 1;
    }

    sf_buf_append(b, s + start, len - start);
    sf_buf_appends(b, "\"");
}


static void
ngx_http_storefront_stats_sample(sf_buf *b, const char *name, double x)
{
    if (isnan(x)) {
        sf_buf_printf(b, "%s NaN\n", name);

    } else if (x == floor(x) && fabs(x) < 1e15) {
        sf_buf_printf(b, "%s %.0f\n", name, x);

    } else {
        sf_buf_printf(b, "%s %.15g\n", name, x);
    }
}


static void
ngx_http_storefront_stats_value(sf_buf *b, double x)
{
    if (isnan(x)) {
        sf_buf_appends(b, "} NaN\n");

    } else if (x == floor(x) && fabs(x) < 1e15) {
        sf_buf_printf(b, "} %.0f\n", x);

    } else {
        sf_buf_printf(b, "} %.15g\n", x);
    }
}


/* the arm metrics: one family at a time, every experiment and variation */

static void
ngx_http_storefront_stats_arms(sf_buf *b, ngx_http_storefront_stats_view_t *v,
    const char *name, const char *help, ngx_uint_t what)
{
    double                 x;
    size_t                 i, j;
    sf_arm_counts         *c;
    sf_experiment_report  *e;

    ngx_http_storefront_stats_family(b, name, "counter", help);

    for (i = 0; i < v->nreports; i++) {
        e = &v->reports[i];

        for (j = 0; j < e->info.nvariations; j++) {
            c = &e->counts[j];

            switch (what) {
            case 0:  x = (double) c->users; break;
            case 1:  x = (double) c->converters; break;
            case 2:  x = (double) c->orders; break;
            case 3:  x = c->revenue; break;
            case 4:  x = (double) c->returns; break;
            default: x = c->returned; break;
            }

            sf_buf_printf(b, "%s{", name);
            ngx_http_storefront_stats_label(b, "experiment", e->info.key,
                                            ngx_strlen(e->info.key));
            sf_buf_appends(b, ",");
            ngx_http_storefront_stats_label(b, "variation",
                                     e->info.variation_keys[j],
                                     ngx_strlen(e->info.variation_keys[j]));
            ngx_http_storefront_stats_value(b, x);
        }
    }
}


/* a gauge read from the database: no sample when it is unavailable */

static void
ngx_http_storefront_stats_gauge(sf_buf *b, ngx_http_storefront_stats_view_t *v,
    const char *name, const char *help, double x)
{
    ngx_http_storefront_stats_family(b, name, "gauge", help);

    if (v->db_up) {
        ngx_http_storefront_stats_sample(b, name, x);
    }
}


/* the variation key of an index, as the Variants header says it */

static void
ngx_http_storefront_stats_variation(ngx_http_storefront_stats_view_t *v,
    ngx_http_storefront_stats_slot_t *s, const char **key, size_t *len,
    char *buf, size_t size)
{
    size_t                 i;
    sf_experiment_report  *e;

    for (i = 0; i < v->nreports; i++) {
        e = &v->reports[i];

        if (ngx_strlen(e->info.key) == s->key_len
            && ngx_memcmp(e->info.key, s->key, s->key_len) == 0
            && s->variation < e->info.nvariations)
        {
            *key = e->info.variation_keys[s->variation];
            *len = ngx_strlen(*key);
            return;
        }
    }

    *len = ngx_snprintf((u_char *) buf, size, "%uD", s->variation)
           - (u_char *) buf;
    *key = buf;
}


static void
ngx_http_storefront_stats_prometheus(sf_buf *b,
    ngx_http_storefront_stats_view_t *v)
{
    char                                 num[16];
    size_t                               i, len;
    ngx_str_t                           *result;
    const char                          *var;
    ngx_http_storefront_stats_ad_t      *ad;
    ngx_http_storefront_stats_shm_t     *sh;
    ngx_http_storefront_stats_slot_t    *s;
    ngx_http_storefront_stats_worker_t  *w;
    sf_experiment_report                *e;

    w = &ngx_http_storefront_stats_worker;
    sh = w->sh;

    if (sh) {
        ngx_http_storefront_stats_family(b,
            "storefront_requests_decided_total", "counter",
            "Requests with storefront on that got their decisions.");
        ngx_http_storefront_stats_sample(b,
            "storefront_requests_decided_total", (double) sh->decided);

        ngx_http_storefront_stats_family(b,
            "storefront_requests_fail_open_total", "counter",
            "Requests served without decisions: the database was "
            "unavailable.");
        ngx_http_storefront_stats_sample(b,
            "storefront_requests_fail_open_total", (double) sh->fail_open);

        ngx_http_storefront_stats_family(b, "storefront_decisions_total",
            "counter", "Requests in an experiment, by experiment and "
            "variation (since the shared memory zone was created).");

        for (i = 0; i < NGX_HTTP_STOREFRONT_STATS_SLOTS; i++) {
            s = &sh->slots[i];

            if (s->hash == 0) {
                continue;
            }

            ngx_http_storefront_stats_variation(v, s, &var, &len, num,
                                                sizeof(num));

            sf_buf_appends(b, "storefront_decisions_total{");
            ngx_http_storefront_stats_label(b, "experiment",
                                            (const char *) s->key,
                                            s->key_len);
            sf_buf_appends(b, ",");
            ngx_http_storefront_stats_label(b, "variation", var, len);
            ngx_http_storefront_stats_value(b, (double) s->count);
        }

        ngx_http_storefront_stats_family(b,
            "storefront_decision_cache_total", "counter",
            "Requests decided by result in the decision cache: hit (the "
            "answer kept), miss (decided and kept).");

        for (i = 0; i < 2; i++) {
            result = &ngx_http_storefront_stats_cache_results[i];

            sf_buf_appends(b, "storefront_decision_cache_total{");
            ngx_http_storefront_stats_label(b, "result",
                                            (const char *) result->data,
                                            result->len);
            ngx_http_storefront_stats_value(b, (double) sh->cache[i]);
        }

        ngx_http_storefront_stats_family(b,
            "storefront_decisions_uncounted_total", "counter",
            "Decisions not counted per variation: the table was full.");
        ngx_http_storefront_stats_sample(b,
            "storefront_decisions_uncounted_total",
            (double) sh->decisions_lost);

        ngx_http_storefront_stats_family(b,
            "storefront_exposures_buffered_total", "counter",
            "Exposures buffered by the workers to be written.");
        ngx_http_storefront_stats_sample(b,
            "storefront_exposures_buffered_total", (double) sh->buffered);

        ngx_http_storefront_stats_family(b,
            "storefront_exposures_recorded_total", "counter",
            "Exposures written that counted a new user.");
        ngx_http_storefront_stats_sample(b,
            "storefront_exposures_recorded_total", (double) sh->recorded);

        ngx_http_storefront_stats_family(b,
            "storefront_exposures_dropped_total", "counter",
            "Exposures lost: a full buffer or a failed write.");
        ngx_http_storefront_stats_sample(b,
            "storefront_exposures_dropped_total", (double) sh->dropped);

        ngx_http_storefront_stats_family(b,
            "storefront_exposure_flushes_total", "counter",
            "Write transactions of buffered exposures.");
        ngx_http_storefront_stats_sample(b,
            "storefront_exposure_flushes_total", (double) sh->flushes);

        ngx_http_storefront_stats_family(b,
            "storefront_exposure_flush_errors_total", "counter",
            "Write transactions of exposures that failed.");
        ngx_http_storefront_stats_sample(b,
            "storefront_exposure_flush_errors_total",
            (double) sh->flush_errors);

        ngx_http_storefront_stats_family(b,
            "storefront_exposure_flush_seconds_total", "counter",
            "Time spent writing exposures.");
        ngx_http_storefront_stats_sample(b,
            "storefront_exposure_flush_seconds_total",
            (double) sh->flush_usec / 1e6);

        ngx_http_storefront_stats_family(b,
            "storefront_conversion_beacons_total", "counter",
            "Conversion beacons by result.");

        for (i = 0; i < 3; i++) {
            sf_buf_appends(b, "storefront_conversion_beacons_total{");
            ngx_http_storefront_stats_label(b, "result",
                ngx_http_storefront_stats_beacon_names[i],
                ngx_strlen(ngx_http_storefront_stats_beacon_names[i]));
            ngx_http_storefront_stats_value(b, (double) sh->beacons[i]);
        }

        ngx_http_storefront_stats_family(b,
            "storefront_experiment_changes_total", "counter",
            "Experiments started, stopped, ramped or re-randomised through "
            "the admin endpoint.");
        ngx_http_storefront_stats_sample(b,
            "storefront_experiment_changes_total", (double) sh->changes);
    }

    ngx_http_storefront_stats_arms(b, v, "storefront_exposures_total",
        "Unique users exposed, by experiment and variation.", 0);
    ngx_http_storefront_stats_arms(b, v, "storefront_conversions_total",
        "Exposed users who bought afterwards, by experiment and "
        "variation.", 1);
    ngx_http_storefront_stats_arms(b, v, "storefront_orders_total",
        "Orders attributed, by experiment and variation.", 2);
    ngx_http_storefront_stats_arms(b, v, "storefront_revenue_total",
        "Revenue attributed, by experiment and variation.", 3);
    ngx_http_storefront_stats_arms(b, v, "storefront_returns_total",
        "Returned orders attributed, by experiment and variation.", 4);

    ngx_http_storefront_stats_family(b, "storefront_experiment_active",
        "gauge", "1 when the experiment runs.");
    for (i = 0; i < v->nreports; i++) {
        e = &v->reports[i];
        sf_buf_appends(b, "storefront_experiment_active{");
        ngx_http_storefront_stats_label(b, "experiment", e->info.key,
                                        ngx_strlen(e->info.key));
        ngx_http_storefront_stats_value(b, e->info.active ? 1 : 0);
    }

    ngx_http_storefront_stats_family(b, "storefront_experiment_coverage",
        "gauge", "The share of users in the experiment (ramp).");
    for (i = 0; i < v->nreports; i++) {
        e = &v->reports[i];
        sf_buf_appends(b, "storefront_experiment_coverage{");
        ngx_http_storefront_stats_label(b, "experiment", e->info.key,
                                        ngx_strlen(e->info.key));
        ngx_http_storefront_stats_value(b, e->info.coverage);
    }

    ngx_http_storefront_stats_family(b, "storefront_experiment_srm_p_value",
        "gauge", "p-value of the sample ratio mismatch check.");
    for (i = 0; i < v->nreports; i++) {
        e = &v->reports[i];
        sf_buf_appends(b, "storefront_experiment_srm_p_value{");
        ngx_http_storefront_stats_label(b, "experiment", e->info.key,
                                        ngx_strlen(e->info.key));
        ngx_http_storefront_stats_value(b, e->summary.srm_p);
    }

    ngx_http_storefront_stats_family(b, "storefront_experiment_srm_alarm",
        "gauge", "1 when the split differs from the weights (p < 0.001).");
    for (i = 0; i < v->nreports; i++) {
        e = &v->reports[i];
        sf_buf_appends(b, "storefront_experiment_srm_alarm{");
        ngx_http_storefront_stats_label(b, "experiment", e->info.key,
                                        ngx_strlen(e->info.key));
        ngx_http_storefront_stats_value(b, e->summary.srm_alarm ? 1 : 0);
    }

    ngx_http_storefront_stats_family(b, "storefront_ad_impressions_total",
        "counter", "Ad impressions by campaign, creative and advertiser.");
    ad = v->ads->elts;
    for (i = 0; i < v->ads->nelts; i++) {
        sf_buf_appends(b, "storefront_ad_impressions_total{");
        ngx_http_storefront_stats_label(b, "kind", ad[i].kind,
                                        ngx_strlen(ad[i].kind));
        sf_buf_appends(b, ",");
        ngx_http_storefront_stats_label(b, "id", (const char *) ad[i].id.data,
                                        ad[i].id.len);
        ngx_http_storefront_stats_value(b, (double) ad[i].impressions);
    }

    ngx_http_storefront_stats_family(b, "storefront_ad_clicks_total",
        "counter", "Ad clicks by campaign, creative and advertiser.");
    for (i = 0; i < v->ads->nelts; i++) {
        sf_buf_appends(b, "storefront_ad_clicks_total{");
        ngx_http_storefront_stats_label(b, "kind", ad[i].kind,
                                        ngx_strlen(ad[i].kind));
        sf_buf_appends(b, ",");
        ngx_http_storefront_stats_label(b, "id", (const char *) ad[i].id.data,
                                        ad[i].id.len);
        ngx_http_storefront_stats_value(b, (double) ad[i].clicks);
    }

    ngx_http_storefront_stats_family(b, "storefront_push_decisions_total",
        "counter", "Push decisions by reason (\"allow\" when sent).");
    if (v->db_up) {
        for (i = 0; i < SF_PUSH__COUNT; i++) {
            var = sf_push_reason_name((sf_push_reason) i);
            sf_buf_appends(b, "storefront_push_decisions_total{");
            ngx_http_storefront_stats_label(b, "reason", var,
                                            ngx_strlen(var));
            ngx_http_storefront_stats_value(b, (double) v->push[i]);
        }
    }

    ngx_http_storefront_stats_family(b, "storefront_db_up", "gauge",
        "1 when the database could be read.");
    ngx_http_storefront_stats_sample(b, "storefront_db_up", v->db_up);

    ngx_http_storefront_stats_gauge(b, v, "storefront_db_map_size_bytes",
        "Size of the LMDB map.", (double) v->info.map_size);
    ngx_http_storefront_stats_gauge(b, v, "storefront_db_used_bytes",
        "Bytes of the map in use.", (double) v->info.used_bytes);
    ngx_http_storefront_stats_gauge(b, v, "storefront_db_readers",
        "LMDB reader slots in use.", (double) v->info.readers_in_use);
    ngx_http_storefront_stats_gauge(b, v, "storefront_db_max_readers",
        "LMDB reader slots.", (double) v->info.max_readers);
    ngx_http_storefront_stats_gauge(b, v, "storefront_db_experiments",
        "Experiments in the database.", (double) v->info.experiments);
    ngx_http_storefront_stats_gauge(b, v, "storefront_db_profiles",
        "Profiles in the database.", (double) v->info.profiles);
}


/* ---- the status page ----------------------------------------------------- */

/* text or an attribute value: every character that means something */

static void
ngx_http_storefront_stats_html(sf_buf *b, const char *s, size_t len)
{
    size_t       i, start;
    const char  *esc;

    for (i = 0, start = 0; i < len; i++) {
        switch (s[i]) {
        case '&':  esc = "&amp;"; break;
        case '<':  esc = "&lt;"; break;
        case '>':  esc = "&gt;"; break;
        case '"':  esc = "&quot;"; break;
        case '\'': esc = "&#39;"; break;
        default:
            if ((u_char) s[i] < ' ' && s[i] != '\t' && s[i] != '\n') {
                esc = "\xef\xbf\xbd";
                break;
            }
            continue;
        }

        sf_buf_append(b, s + start, i - start);
        sf_buf_appends(b, esc);
        start = i + 1;
    }

    sf_buf_append(b, s + start, len - start);
}


static void
ngx_http_storefront_stats_htmls(sf_buf *b, const char *s)
{
    ngx_http_storefront_stats_html(b, s, ngx_strlen(s));
}


static void
ngx_http_storefront_stats_pct(sf_buf *b, double x, ngx_uint_t sign)
{
    if (!isfinite(x)) {
        sf_buf_appends(b, "&ndash;");
        return;
    }

    sf_buf_printf(b, sign ? "%+.2f%%" : "%.2f%%", 100 * x);
}


/* a bar from lo to hi with a mark at x, on [min, max] (120 px wide) */

static void
ngx_http_storefront_stats_bar(sf_buf *b, const char *cls, double lo,
    double hi, double x, double min, double max, ngx_uint_t zero,
    const char *label)
{
    double  k;

    k = max > min ? 120 / (max - min) : 0;

    lo = fmax(min, fmin(max, lo));
    hi = fmax(min, fmin(max, hi));
    x = fmax(min, fmin(max, x));

    sf_buf_printf(b, "<svg class=\"ci %s\" width=\"130\" height=\"16\" "
                  "viewBox=\"0 0 130 16\" role=\"img\" aria-label=\"", cls);
    ngx_http_storefront_stats_htmls(b, label);
    sf_buf_appends(b, "\"><line class=\"axis\" x1=\"5\" y1=\"8\" x2=\"125\" "
                   "y2=\"8\"/>");

    if (zero) {
        sf_buf_printf(b, "<line class=\"zero\" x1=\"%.1f\" y1=\"1\" "
                      "x2=\"%.1f\" y2=\"15\"/>", 5 + (0 - min) * k,
                      5 + (0 - min) * k);
    }

    sf_buf_printf(b, "<rect class=\"ci-range\" x=\"%.1f\" y=\"4\" "
                  "width=\"%.1f\" height=\"8\"/>"
                  "<line class=\"ci-point\" x1=\"%.1f\" y1=\"2\" "
                  "x2=\"%.1f\" y2=\"14\"/></svg>",
                  5 + (lo - min) * k, fmax(1, (hi - lo) * k),
                  5 + (x - min) * k, 5 + (x - min) * k);
}


static void
ngx_http_storefront_stats_experiment(sf_buf *b, sf_experiment_report *e,
    size_t index)
{
    char                 label[160];
    size_t               j;
    double               rmax, dmax;
    sf_arm_stats        *st;
    sf_experiment_info  *in;

    in = &e->info;

    sf_buf_printf(b, "<article class=\"experiment\" id=\"exp-%zu\" "
                  "data-key=\"", index);
    ngx_http_storefront_stats_htmls(b, in->key);
    sf_buf_appends(b, "\" data-status=\"");
    ngx_http_storefront_stats_htmls(b, e->status);
    sf_buf_appends(b, "\"><h3><code class=\"key\">");
    ngx_http_storefront_stats_htmls(b, in->key);
    sf_buf_appends(b, "</code> ");
    if (in->name[0]) {
        sf_buf_appends(b, "<span class=\"name\">");
        ngx_http_storefront_stats_htmls(b, in->name);
        sf_buf_appends(b, "</span> ");
    }
    sf_buf_printf(b, "<span class=\"badge %s\">%s</span> "
                  "<span class=\"status\">", in->active ? "on" : "off",
                  in->active ? "running" : "stopped");
    ngx_http_storefront_stats_htmls(b, e->status);
    sf_buf_appends(b, "</span></h3>");

    sf_buf_appends(b, "<dl class=\"ramp\"><dt>coverage</dt>"
                   "<dd class=\"coverage\">");
    ngx_http_storefront_stats_pct(b, in->coverage, 0);
    sf_buf_appends(b, "</dd><dt>weights</dt><dd class=\"weights\">");
    for (j = 0; j < in->nvariations; j++) {
        if (j) {
            sf_buf_appends(b, " / ");
        }
        ngx_http_storefront_stats_pct(b, in->weights[j], 0);
    }
    sf_buf_printf(b, "</dd><dt>bucket version</dt>"
                  "<dd class=\"bucket-version\">%u</dd>"
                  "<dt>hash attribute</dt><dd>", in->bucket_version);
    ngx_http_storefront_stats_htmls(b, in->hash_attribute);
    sf_buf_printf(b, "</dd><dt>users</dt><dd class=\"users\">%llu</dd></dl>",
                  (unsigned long long) e->summary.users);

    if (e->summary.srm_alarm) {
        sf_buf_printf(b, "<div class=\"srm-alarm\" role=\"alert\">"
                      "<strong>Sample ratio mismatch.</strong> The users "
                      "per variation differ from the weights: chi-square "
                      "%.1f, p = %.3g &lt; 0.001.  Find the cause before "
                      "reading the results.</div>",
                      e->summary.srm_chi2, e->summary.srm_p);
    }

    if (!e->summary.enough_data) {
        sf_buf_printf(b, "<p class=\"not-enough-data\">Not enough data: "
                      "every variation needs %d users.</p>",
                      SF_STATS_MIN_USERS);
    }

    /* shared scales: the rates from 0, the differences around 0 */

    rmax = 0.01;
    dmax = 0.01;

    for (j = 0; j < in->nvariations; j++) {
        rmax = fmax(rmax, e->rate_ci_high[j]);
        if (j > 0 && e->counts[j].users && e->counts[0].users) {
            dmax = fmax(dmax, fmax(fabs(e->arms[j].ci_low),
                                   fabs(e->arms[j].ci_high)));
        }
    }

    rmax *= 1.1;
    dmax *= 1.1;

    sf_buf_appends(b, "<table class=\"arms\"><thead><tr><th>variation</th>"
                   "<th>weight</th><th>users</th><th>conversions</th>"
                   "<th>conversion rate</th><th>95% CI</th>"
                   "<th>AOV</th><th>rev/user</th><th>return rate</th>"
                   "<th>lift</th><th>difference vs control, 95% CI</th>"
                   "</tr></thead><tbody>");

    for (j = 0; j < in->nvariations; j++) {
        st = &e->arms[j];

        sf_buf_printf(b, "<tr class=\"arm%s%s\" data-variation=\"",
                      j == 0 ? " control" : "",
                      st->significant ? " significant" : "");
        ngx_http_storefront_stats_htmls(b, in->variation_keys[j]);
        sf_buf_appends(b, "\"><td><code>");
        ngx_http_storefront_stats_htmls(b, in->variation_keys[j]);
        sf_buf_appends(b, "</code>");
        if (in->variation_names[j][0]) {
            sf_buf_appends(b, " ");
            ngx_http_storefront_stats_htmls(b, in->variation_names[j]);
        }
        if (j == 0) {
            sf_buf_appends(b, " <small>control</small>");
        }
        sf_buf_appends(b, "</td><td>");
        ngx_http_storefront_stats_pct(b, in->weights[j], 0);
        sf_buf_printf(b, "</td><td class=\"users\">%llu</td>"
                      "<td class=\"conversions\">%llu</td>"
                      "<td class=\"rate\">",
                      (unsigned long long) st->c.users,
                      (unsigned long long) st->c.converters);
        ngx_http_storefront_stats_pct(b, st->conversion_rate, 0);
        sf_buf_appends(b, "</td><td class=\"bar\">");

        snprintf(label, sizeof(label), "conversion rate %.2f%%, 95%% CI "
                 "%.2f%% to %.2f%%", 100 * st->conversion_rate,
                 100 * e->rate_ci_low[j], 100 * e->rate_ci_high[j]);
        ngx_http_storefront_stats_bar(b, "ci-rate", e->rate_ci_low[j],
                                      e->rate_ci_high[j],
                                      st->conversion_rate, 0, rmax, 0,
                                      label);
        sf_buf_appends(b, "<br><small>");
        ngx_http_storefront_stats_pct(b, e->rate_ci_low[j], 0);
        sf_buf_appends(b, " &ndash; ");
        ngx_http_storefront_stats_pct(b, e->rate_ci_high[j], 0);

        sf_buf_printf(b, "</small></td><td>%.2f</td><td>%.2f</td><td>",
                      st->average_order_value, st->revenue_per_user);
        ngx_http_storefront_stats_pct(b, st->return_rate, 0);

        if (j == 0 || st->c.users == 0 || e->counts[0].users == 0) {
            sf_buf_appends(b, "</td><td></td><td></td></tr>");
            continue;
        }

        /* no relative lift over a control that converts nobody */

        sf_buf_appends(b, "</td><td class=\"lift\">");
        ngx_http_storefront_stats_pct(b, e->arms[0].conversion_rate > 0
                                         ? st->lift : NAN, 1);
        sf_buf_printf(b, "<br><small class=\"p\">p %.4f</small></td>"
                      "<td class=\"bar%s\">", st->p_value,
                      !st->significant ? "" : st->ci_low > 0 ? " better"
                                                             : " worse");

        snprintf(label, sizeof(label), "difference %+.2f%%, 95%% CI %+.2f%% "
                 "to %+.2f%%", 100 * (st->conversion_rate
                                      - e->arms[0].conversion_rate),
                 100 * st->ci_low, 100 * st->ci_high);
        ngx_http_storefront_stats_bar(b, "ci-diff", st->ci_low, st->ci_high,
                                      st->conversion_rate
                                      - e->arms[0].conversion_rate,
                                      -dmax, dmax, 1, label);
        sf_buf_appends(b, "<br><small>");
        ngx_http_storefront_stats_pct(b, st->ci_low, 1);
        sf_buf_appends(b, " &ndash; ");
        ngx_http_storefront_stats_pct(b, st->ci_high, 1);
        sf_buf_appends(b, "</small></td></tr>");
    }

    sf_buf_appends(b, "</tbody></table></article>");
}


static void
ngx_http_storefront_stats_counter(sf_buf *b, const char *id,
    const char *name, double x)
{
    sf_buf_printf(b, "<tr><th>%s</th><td id=\"%s\">", name, id);

    if (x == floor(x) && fabs(x) < 1e15) {
        sf_buf_printf(b, "%.0f", x);

    } else {
        sf_buf_printf(b, "%.3f", x);
    }

    sf_buf_appends(b, "</td></tr>");
}


static void
ngx_http_storefront_stats_page(sf_buf *b, ngx_http_storefront_stats_view_t *v)
{
    char                                 when[64];
    size_t                               i;
    ngx_uint_t                           alarms;
    ngx_http_storefront_stats_ad_t      *ad;
    ngx_http_storefront_stats_shm_t     *sh;
    ngx_http_storefront_stats_worker_t  *w;

    w = &ngx_http_storefront_stats_worker;
    sh = w->sh;

    alarms = 0;
    for (i = 0; i < v->nreports; i++) {
        alarms += v->reports[i].summary.srm_alarm;
    }

    (void) ngx_http_time((u_char *) when, ngx_time());
    when[sizeof("Mon, 28 Sep 1970 06:00:00 GMT") - 1] = '\0';

    sf_buf_appends(b,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width\">"
        "<meta http-equiv=\"refresh\" content=\"10\">"
        "<title>storefront status</title><style>"
        "body{font:14px/1.4 system-ui,sans-serif;margin:0 24px 24px;"
        "color:#1d232a;background:#f6f7f9}"
        "header{display:flex;align-items:baseline;gap:16px;"
        "border-bottom:1px solid #d5d9de}"
        "h1{font-size:20px}h2{font-size:16px;margin:24px 0 8px}"
        "h3{font-size:15px;margin:0 0 8px}"
        ".meta{color:#5b6570}"
        "article,section.box{background:#fff;border:1px solid #d5d9de;"
        "border-radius:6px;padding:12px 16px;margin:0 0 12px;"
        "overflow-x:auto}"
        "table{border-collapse:collapse}table.arms{font-size:13px}"
        "th,td{padding:3px 6px;text-align:right;white-space:nowrap}"
        "th:first-child,td:first-child{text-align:left;"
        "white-space:normal}"
        "thead th{border-bottom:1px solid #d5d9de;font-weight:600}"
        "tbody tr:nth-child(even){background:#f3f5f7}"
        "dl.ramp{display:flex;flex-wrap:wrap;gap:4px 8px;margin:0 0 8px}"
        "dl.ramp dt{color:#5b6570}dl.ramp dd{margin:0 16px 0 0}"
        ".badge{font-size:12px;padding:1px 6px;border-radius:8px}"
        ".badge.on{background:#d8f3e3;color:#16623a}"
        ".badge.off{background:#e6e8eb;color:#4a525a}"
        ".status{font-weight:400;color:#5b6570}"
        ".srm-alarm{background:#fde8e8;border:1px solid #e0a0a0;"
        "color:#8a1c1c;padding:8px 12px;border-radius:4px;margin:8px 0}"
        ".not-enough-data{color:#7a5b00;margin:4px 0 8px}"
        "svg.ci .axis{stroke:#c8ced4}svg.ci .zero{stroke:#5b6570}"
        "svg.ci .ci-range{fill:#8fb3d9}"
        "svg.ci .ci-point{stroke:#1d3f66;stroke-width:2}"
        "td.better svg.ci .ci-range{fill:#4caf7a}td.bar{text-align:center}"
        "td.worse svg.ci .ci-range{fill:#d9534f}"
        "tr.significant td:first-child{font-weight:600}"
        "</style></head><body><header><h1>storefront</h1>"
        "<span class=\"meta\">");
    sf_buf_appends(b, when);
    sf_buf_appends(b, " &middot; nginx/" NGINX_VERSION " &middot; ");

    if (v->db_up) {
        sf_buf_printf(b, "database %.1f of %.1f MiB used (%.1f%%), "
                      "readers %u of %u",
                      (double) v->info.used_bytes / 1048576,
                      (double) v->info.map_size / 1048576,
                      v->info.map_size ? 100.0 * v->info.used_bytes
                                         / v->info.map_size : 0.0,
                      v->info.readers_in_use, v->info.max_readers);

    } else {
        sf_buf_appends(b, "<strong id=\"db-down\">database unavailable"
                       "</strong>");
    }

    sf_buf_printf(b, "</span></header><h2>Experiments <small class=\"meta\">"
                  "%zu, %lu with a sample ratio mismatch</small></h2>",
                  v->nreports, (unsigned long) alarms);

    for (i = 0; i < v->nreports; i++) {
        ngx_http_storefront_stats_experiment(b, &v->reports[i], i);
    }

    if (v->nreports == 0) {
        sf_buf_appends(b, "<p class=\"meta\">No experiments.</p>");
    }

    sf_buf_appends(b, "<h2>Counters</h2><section class=\"box\">"
                   "<table class=\"counters\"><tbody>");

    if (sh) {
        ngx_http_storefront_stats_counter(b, "requests-decided",
                                          "requests decided",
                                          (double) sh->decided);
        ngx_http_storefront_stats_counter(b, "requests-fail-open",
                                          "served without decisions "
                                          "(fail-open)",
                                          (double) sh->fail_open);
        ngx_http_storefront_stats_counter(b, "decision-cache-hit",
                                          "decision cache hits",
                                          (double) sh->cache[0]);
        ngx_http_storefront_stats_counter(b, "decision-cache-miss",
                                          "decision cache misses",
                                          (double) sh->cache[1]);
        ngx_http_storefront_stats_counter(b, "exposures-buffered",
                                          "exposures buffered",
                                          (double) sh->buffered);
        ngx_http_storefront_stats_counter(b, "exposures-recorded",
                                          "new exposures written",
                                          (double) sh->recorded);
        ngx_http_storefront_stats_counter(b, "exposures-dropped",
                                          "exposures dropped",
                                          (double) sh->dropped);
        ngx_http_storefront_stats_counter(b, "exposure-flushes",
                                          "exposure writes",
                                          (double) sh->flushes);
        ngx_http_storefront_stats_counter(b, "conversions-applied",
                                          "conversion beacons applied",
                                          (double) sh->beacons[0]);
        ngx_http_storefront_stats_counter(b, "conversions-duplicate",
                                          "conversion beacons repeated",
                                          (double) sh->beacons[1]);
        ngx_http_storefront_stats_counter(b, "conversions-rejected",
                                          "conversion beacons refused",
                                          (double) sh->beacons[2]);
        ngx_http_storefront_stats_counter(b, "experiment-changes",
                                          "experiment changes (admin)",
                                          (double) sh->changes);
    }

    if (v->db_up) {
        for (i = 0; i < SF_PUSH__COUNT; i++) {
            snprintf(when, sizeof(when), "push-%s",
                     sf_push_reason_name((sf_push_reason) i));
            sf_buf_printf(b, "<tr><th>push decisions: %s</th>"
                          "<td id=\"%s\">%llu</td></tr>",
                          sf_push_reason_name((sf_push_reason) i), when,
                          (unsigned long long) v->push[i]);
        }
    }

    sf_buf_appends(b, "</tbody></table></section>");

    sf_buf_appends(b, "<h2>Ads</h2><section class=\"box\">"
                   "<table class=\"ads\"><thead><tr><th>campaign</th>"
                   "<th>impressions</th><th>clicks</th><th>CTR</th></tr>"
                   "</thead><tbody>");

    ad = v->ads->elts;
    for (i = 0; i < v->ads->nelts; i++) {
        if (ngx_strcmp(ad[i].kind, "campaign") != 0) {
            continue;
        }

        sf_buf_appends(b, "<tr><td>");
        ngx_http_storefront_stats_html(b, (const char *) ad[i].id.data,
                                       ad[i].id.len);
        sf_buf_printf(b, "</td><td>%llu</td><td>%llu</td><td>",
                      (unsigned long long) ad[i].impressions,
                      (unsigned long long) ad[i].clicks);
        ngx_http_storefront_stats_pct(b, ad[i].impressions
                                      ? (double) ad[i].clicks
                                        / ad[i].impressions
                                      : NAN, 0);
        sf_buf_appends(b, "</td></tr>");
    }

    sf_buf_appends(b, "</tbody></table></section></body></html>\n");
}


/* ---- responses ---------------------------------------------------------- */

static ngx_int_t
ngx_http_storefront_stats_send(ngx_http_request_t *r, const char *type,
    sf_buf *sb)
{
    u_char           *p;
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    p = ngx_pnalloc(r->pool, sb->len);
    if (p == NULL && sb->len) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, sb->data, sb->len);

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = sb->len;

    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    if (sb->len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = p;
    b->last = p + sb->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}




/* ---- admin: experiment operations --------------------------------------- */

/*
 * .../experiments -> NGX_OK with key empty; .../experiments/<key> ->
 * NGX_OK with the key as nginx decoded the URI (keys may hold "/");
 * else NGX_DECLINED.
 */

static ngx_int_t
ngx_http_storefront_stats_admin_route(ngx_http_request_t *r, ngx_str_t *key)
{
    u_char  *p, *last;

    last = r->uri.data + r->uri.len;

    if (r->uri.len >= sizeof("/experiments") - 1
        && ngx_strncmp(last - (sizeof("/experiments") - 1), "/experiments",
                       sizeof("/experiments") - 1)
           == 0)
    {
        ngx_str_null(key);
        return NGX_OK;
    }

    p = ngx_strlcasestrn(r->uri.data, last, (u_char *) "/experiments/",
                         sizeof("/experiments/") - 1 - 1);

    if (p == NULL) {
        return NGX_DECLINED;
    }

    key->data = p + sizeof("/experiments/") - 1;
    key->len = last - key->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_storefront_stats_admin(ngx_http_request_t *r)
{
    ngx_int_t  rc;
    ngx_str_t  key;

    if (ngx_http_storefront_stats_admin_route(r, &key) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_storefront_stats_admin_report(r, &key);
    }

    if (r->method != NGX_HTTP_POST || key.len == 0) {
        return ngx_http_storefront_send_not_allowed(r, key.len
                                                     ? "GET, HEAD, POST"
                                                     : "GET, HEAD");
    }

    rc = ngx_http_read_client_request_body(r,
                                        ngx_http_storefront_stats_admin_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static ngx_int_t
ngx_http_storefront_stats_admin_report(ngx_http_request_t *r, ngx_str_t *key)
{
    int                    rc;
    size_t                 n;
    sf_buf                *b;
    sf_arena              *a;
    sf_error               err;
    sf_snapshot           *snapshot;
    sf_experiment_report  *rep;

    snapshot = ngx_http_storefront_snapshot_acquire(r->connection->log);

    if (snapshot == NULL) {
        return ngx_http_storefront_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                              "the database is unavailable");
    }

    a = sf_arena_create(64 * 1024);
    if (a == NULL) {
        ngx_http_storefront_snapshot_release();
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_report_collect(snapshot, (const char *) key->data, key->len, a,
                           &rep, &n, &err);

    ngx_http_storefront_snapshot_release();

    if (rc == SF_OK) {
        b = ngx_http_storefront_scratch();
        rc = sf_report_json(rep, n, (int64_t) ngx_time(), b);
    }

    sf_arena_destroy(a);

    if (rc == SF_ERR_NOT_FOUND) {
        return ngx_http_storefront_send_error(r, NGX_HTTP_NOT_FOUND,
                                              "no experiment \"%V\"", key);
    }

    if (rc != SF_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront admin: %s", err.msg);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_storefront_send_buf(r, NGX_HTTP_OK, b);
}


/*
 * {"active": bool} | {"coverage": 0..1} | {"weights": [...]} (any of
 * them together), validated by the engine as an import is, applied in
 * one write transaction, logged at notice level with what changed.
 */

static void
ngx_http_storefront_stats_admin_body(ngx_http_request_t *r)
{
    int                                  rc;
    sf_db                               *db;
    sf_txn                              *txn;
    sf_buf                               summary, *b;
    sf_arena                            *a;
    sf_error                             err;
    sf_value                             changes;
    ngx_int_t                            status;
    ngx_str_t                            body, key;
    ngx_http_storefront_stats_worker_t  *w;

    w = &ngx_http_storefront_stats_worker;

    if (ngx_http_storefront_stats_admin_route(r, &key) != NGX_OK
        || ngx_http_storefront_request_body(r, &body) != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    a = sf_arena_create(4096);
    if (a == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    sf_buf_init(&summary);

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_json_parse((const char *) body.data, body.len, a, &changes, &err);

    if (rc != SF_OK || changes.type != SF_OBJECT) {
        status = ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                               "send {\"active\": true|false}, "
                               "{\"coverage\": 0..1} or {\"weights\": [...]}"
                               "%s%s", rc != SF_OK ? ": " : "",
                               rc != SF_OK ? err.msg : "");
        goto done;
    }

    db = ngx_http_storefront_worker_db(r->connection->log);

    if (db == NULL) {
        status = ngx_http_storefront_send_error(r,
                                                NGX_HTTP_SERVICE_UNAVAILABLE,
                                                "the database is unavailable");
        goto done;
    }

    rc = sf_txn_begin(db, &txn, &err);

    if (rc == SF_OK) {
        rc = sf_txn_update_experiment(txn, (const char *) key.data, key.len,
                                      &changes, &summary, &err);
        if (rc == SF_OK) {
            rc = sf_txn_commit(txn, &err);

        } else {
            sf_txn_abort(txn);
        }
    }

    switch (rc) {

    case SF_OK:
        break;

    case SF_ERR_INVALID:
        status = ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                                "%s", err.msg);
        goto done;

    case SF_ERR_NOT_FOUND:
        status = ngx_http_storefront_send_error(r, NGX_HTTP_NOT_FOUND,
                                                "%s", err.msg);
        goto done;

    default:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront admin: experiment \"%V\" not changed: %s",
                      &key, err.msg);

        status = ngx_http_storefront_send_error(r, rc == SF_ERR_MAP_FULL
                                       ? NGX_HTTP_INSUFFICIENT_STORAGE
                                       : NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       "experiment not changed: %s",
                                       err.msg);
        goto done;
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "storefront admin: experiment \"%V\": %*s", &key,
                  summary.len, summary.data);

    if (w->sh) {
        (void) ngx_atomic_fetch_add(&w->sh->changes, 1);
    }

    b = ngx_http_storefront_scratch();

    sf_buf_appends(b, "{\"experiment\":");
    sf_buf_append_json_string(b, (const char *) key.data, key.len);
    sf_buf_appends(b, ",\"changed\":");
    sf_buf_append_json_string(b, summary.data, summary.len);

    if (sf_buf_appends(b, "}") != SF_OK) {
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    status = ngx_http_storefront_send_buf(r, NGX_HTTP_OK, b);

done:

    sf_buf_free(&summary);
    sf_arena_destroy(a);

    ngx_http_finalize_request(r, status);
}


/* ---- configuration ------------------------------------------------------- */

static char *
ngx_http_storefront_stats_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_storefront_stats_loc_conf_t *lcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->endpoint) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2) {
        if (ngx_strcmp(value[1].data, "token") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\" directive",
                               &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }

        lcf->token = 1;
    }

    lcf->endpoint = cmd->offset;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    switch (cmd->offset) {

    case NGX_HTTP_STOREFRONT_EP_CONVERT:
        clcf->handler = ngx_http_storefront_stats_convert_handler;
        break;

    case NGX_HTTP_STOREFRONT_EP_API:
        clcf->handler = ngx_http_storefront_stats_api_handler;
        break;

    case NGX_HTTP_STOREFRONT_EP_METRICS:
        clcf->handler = ngx_http_storefront_stats_metrics_handler;
        break;

    default: /* NGX_HTTP_STOREFRONT_EP_STATUS */
        clcf->handler = ngx_http_storefront_stats_status_handler;
        break;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_storefront_stats_flush_check(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *ms = data;

    if (*ms < 10 || *ms > 60000) {
        return "must be from 10ms to 60s";
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_storefront_stats_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t                  *shpool;
    ngx_http_storefront_stats_shm_t  *sh;

    if (data) {
        /* a reload: the counters go on */
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_storefront_stats_shm_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    shm_zone->data = sh;

    return NGX_OK;
}


static ngx_int_t
ngx_http_storefront_stats_init(ngx_conf_t *cf)
{
    ngx_str_t                               name;
    ngx_http_handler_pt                    *h;
    ngx_http_core_main_conf_t              *cmcf;
    ngx_http_storefront_main_conf_t        *core;
    ngx_http_storefront_stats_main_conf_t  *smcf;

    core = ngx_http_conf_get_module_main_conf(cf, ngx_http_storefront_module);
    smcf = ngx_http_conf_get_module_main_conf(cf,
                                            ngx_http_storefront_stats_module);

    if (!core->enabled) {
        return NGX_OK;
    }

    ngx_str_set(&name, "storefront_stats");

    smcf->shm_zone = ngx_shared_memory_add(cf, &name,
                                           NGX_HTTP_STOREFRONT_STATS_ZONE,
                                           &ngx_http_storefront_stats_module);
    if (smcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    smcf->shm_zone->init = ngx_http_storefront_stats_init_zone;

    if (!smcf->used) {
        return NGX_OK;
    }

    ngx_http_storefront_next_decision = ngx_http_storefront_top_decision;
    ngx_http_storefront_top_decision = ngx_http_storefront_stats_decision;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_storefront_stats_log_handler;

    return NGX_OK;
}


static void *
ngx_http_storefront_stats_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_storefront_stats_main_conf_t  *smcf;

    smcf = ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_storefront_stats_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     smcf->used = 0;
     *     smcf->shm_zone = NULL;
     */

    smcf->flush = NGX_CONF_UNSET_MSEC;

    return smcf;
}


static char *
ngx_http_storefront_stats_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_storefront_stats_main_conf_t *smcf = conf;

    ngx_conf_init_msec_value(smcf->flush, 1000);

    return NGX_CONF_OK;
}


static void *
ngx_http_storefront_stats_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_storefront_stats_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_storefront_stats_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->endpoint = 0;
     *     conf->token = 0;
     */

    conf->stats = NGX_CONF_UNSET;

    return conf;
}


/* the endpoints are not inherited: each belongs to its location */

static char *
ngx_http_storefront_stats_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_storefront_stats_loc_conf_t *prev = parent;
    ngx_http_storefront_stats_loc_conf_t *conf = child;

    ngx_http_storefront_loc_conf_t         *slcf;
    ngx_http_storefront_main_conf_t        *core;
    ngx_http_storefront_stats_main_conf_t  *smcf;

    static const char  *names[] = { "", "storefront_convert",
                                    "storefront_stats_api",
                                    "storefront_metrics",
                                    "storefront_status_page" };

    ngx_conf_merge_value(conf->stats, prev->stats, 1);

    if (conf->stats) {
        smcf = ngx_http_conf_get_module_main_conf(cf,
                                            ngx_http_storefront_stats_module);
        smcf->used = 1;
    }

    if (conf->endpoint == 0) {
        return NGX_CONF_OK;
    }

    core = ngx_http_conf_get_module_main_conf(cf, ngx_http_storefront_module);

    if (core->db_path.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"storefront_db\" is defined for \"%s\"",
                           names[conf->endpoint]);
        return NGX_CONF_ERROR;
    }

    core->enabled = 1;

    /* the main module's location configuration is merged already */

    slcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_storefront_module);

    if (conf->endpoint == NGX_HTTP_STOREFRONT_EP_CONVERT && !slcf->enable) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"storefront_convert\" requires \"storefront on\" "
                           "in its location: the visitor is who the "
                           "decisions say");
        return NGX_CONF_ERROR;
    }

    if (conf->token && slcf->admin_token.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s token\" requires \"storefront_admin_token\"",
                           names[conf->endpoint]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* ---- worker lifecycle --------------------------------------------------- */

static ngx_int_t
ngx_http_storefront_stats_init_process(ngx_cycle_t *cycle)
{
    ngx_http_storefront_main_conf_t        *core;
    ngx_http_storefront_stats_worker_t     *w;
    ngx_http_storefront_stats_main_conf_t  *smcf;

    w = &ngx_http_storefront_stats_worker;

    ngx_memzero(w, sizeof(ngx_http_storefront_stats_worker_t));

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                            ngx_http_storefront_stats_module);

    if (smcf == NULL || smcf->shm_zone == NULL) {
        return NGX_OK;
    }

    w->sh = smcf->shm_zone->data;
    w->shpool = (ngx_slab_pool_t *) smcf->shm_zone->shm.addr;

    if (!smcf->used) {
        return NGX_OK;
    }

    core = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_storefront_module);

    w->core = core;
    w->interval = smcf->flush;

    w->entries = ngx_alloc(NGX_HTTP_STOREFRONT_STATS_BUFFER
                           * sizeof(ngx_http_storefront_stats_entry_t),
                           cycle->log);
    w->strings = ngx_alloc(NGX_HTTP_STOREFRONT_STATS_STRINGS, cycle->log);
    w->seen = ngx_calloc(NGX_HTTP_STOREFRONT_STATS_SEEN * sizeof(uint64_t),
                         cycle->log);
    w->decisions = ngx_calloc(NGX_HTTP_STOREFRONT_STATS_SLOTS
                              * sizeof(ngx_atomic_uint_t), cycle->log);

    if (w->entries == NULL || w->strings == NULL || w->seen == NULL
        || w->decisions == NULL)
    {
        return NGX_ERROR;
    }

    w->timer.handler = ngx_http_storefront_stats_timer;
    w->timer.log = cycle->log;
    w->timer.data = w;

    /* a graceful exit does not wait for it: exit_process writes */
    w->timer.cancelable = 1;

    w->soon.handler = ngx_http_storefront_stats_timer;
    w->soon.log = cycle->log;
    w->soon.data = w;

    ngx_add_timer(&w->timer, w->interval);

    w->counting = 1;

    return NGX_OK;
}


static void
ngx_http_storefront_stats_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_storefront_stats_worker_t  *w;

    w = &ngx_http_storefront_stats_worker;

    if (w->counting) {
        ngx_http_storefront_stats_publish();
        ngx_http_storefront_stats_flush(cycle->log, 1);
    }

    if (w->entries) {
        ngx_free(w->entries);
    }

    if (w->strings) {
        ngx_free(w->strings);
    }

    if (w->seen) {
        ngx_free(w->seen);
    }

    if (w->decisions) {
        ngx_free(w->decisions);
    }

    ngx_memzero(w, sizeof(ngx_http_storefront_stats_worker_t));
}
