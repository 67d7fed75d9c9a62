
/*
 * storefront: ad slots.
 *
 *     http {
 *         storefront_db /var/lib/storefront;
 *         storefront_ad_zone ads 64m flush=1s;
 *         storefront_ad_click_key <at least 16 characters>;
 *
 *         server {
 *             storefront on;
 *
 *             location /product/ {
 *                 storefront_ad_slots page=product banner infeed;
 *                 storefront_ad_max_slots 2;
 *                 proxy_pass http://app;        # gets X-Storefront-Ads
 *             }
 *
 *             location = /ad/click {
 *                 storefront_ad_click;
 *             }
 *         }
 *     }
 *
 * The ads of a page are decided once per request, in the decision chain
 * (after the page layout decision, which may name the ad positions):
 * sf_ads_decide picks campaigns by priority then weight within the page's
 * slot limit, flight, daypart (in the visitor's time zone), targeting,
 * frequency caps and cool-down, one campaign and one advertiser per page.
 *
 * Caps hold exactly across workers.  Every user's impression state lives
 * in the shared memory zone while the user is active: a request copies
 * the user's state under the zone's lock, decides without the lock, and
 * records the impressions under the lock only if nobody changed the state
 * meanwhile (else it decides again; after three conflicts it decides
 * holding the lock).  So two workers can never both spend a user's last
 * impression.  A user missing from the zone is read from LMDB with a
 * fresh read transaction (never the request's older snapshot), and only
 * users whose state is committed to LMDB are evicted, so the zone and
 * LMDB never disagree.  The changed states are written to LMDB within
 * the "flush" interval (in write transactions a quarter of an interval
 * apart, so that the event loop never stops long; not synced unless
 * "sync"), each worker's impression counters once an interval, and all
 * of it when a worker exits (reload, stop): caps and counters survive
 * reloads and restarts.  A crash of the whole server (not of a worker:
 * the zone survives a worker) loses at most the last interval.
 *
 * The page module names a layout's ad positions with
 * ngx_http_storefront_ads_set_slots() in its decision and fills them with
 * ngx_http_storefront_ads_fill() (ngx_http_storefront_ads.h).
 *
 * Clicks: storefront_ad_click checks the link's HMAC in constant time,
 * looks the landing URL up in the data (never in the link), counts the
 * click in one small write transaction and redirects; a forged, tampered
 * or unknown link gets 400 and counts nothing.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_storefront.h"
#include "ngx_http_storefront_ads.h"


#define NGX_HTTP_STOREFRONT_ADS_ZONE_NAME    "storefront_ads"
#define NGX_HTTP_STOREFRONT_ADS_ZONE_SIZE    (16 * 1024 * 1024)
#define NGX_HTTP_STOREFRONT_ADS_FLUSH        1000
#define NGX_HTTP_STOREFRONT_ADS_NAME_MAX     64
#define NGX_HTTP_STOREFRONT_ADS_SIG_LEN      22
#define NGX_HTTP_STOREFRONT_ADS_TRIES        3      /* optimistic, then
                                                       under the lock */
#define NGX_HTTP_STOREFRONT_ADS_EVICT_SCAN   64
#define NGX_HTTP_STOREFRONT_ADS_FLUSH_MAX    20000  /* users per txn */
#define NGX_HTTP_STOREFRONT_ADS_FLUSH_LEASE  60     /* seconds */
#define NGX_HTTP_STOREFRONT_ADS_STATE_MIN    64
#define NGX_HTTP_STOREFRONT_ADS_TICKS        4      /* writes an interval */

#define NGX_HTTP_STOREFRONT_ADS_FLUSH_DUE    0
#define NGX_HTTP_STOREFRONT_ADS_FLUSH_ALL    1
#define NGX_HTTP_STOREFRONT_ADS_FLUSH_FINAL  2


typedef struct ngx_http_storefront_ads_node_s  ngx_http_storefront_ads_node_t;

struct ngx_http_storefront_ads_node_s {
    ngx_http_storefront_ads_node_t *next;        /* in the hash bucket */
    uint32_t                        hash;        /* crc32 of the id */
    ngx_queue_t                     lru;
    ngx_queue_t                     dirty;       /* in sh->dirty while
                                                    version != flushed */
    u_char                         *state;       /* an sf_ads state record */
    uint32_t                        state_len;
    uint32_t                        state_cap;
    uint64_t                        version;
    uint64_t                        flushed;     /* the version in LMDB */
    ngx_msec_t                      dirty_since;
    u_short                         len;
    u_char                          used;        /* seen since the last
                                                    eviction scan */
    u_char                          id[1];
};


/*
 * Users by a hash table rather than a tree: a lookup among 100,000 users
 * touches one or two cache lines, not seventeen.
 */

typedef struct {
    ngx_http_storefront_ads_node_t **buckets;
    ngx_uint_t                      mask;
    ngx_queue_t                     lru;
    ngx_queue_t                     dirty;
    ngx_uint_t                      nodes;
    ngx_uint_t                      ndirty;
    uint64_t                        evictions;
    ngx_pid_t                       flusher;     /* a flush in progress */
    time_t                          lease;       /* ... until then */
} ngx_http_storefront_ads_sh_t;


typedef struct {
    ngx_http_storefront_ads_sh_t   *sh;
    ngx_slab_pool_t                *shpool;
    ngx_shm_zone_t                 *shm_zone;
    ngx_msec_t                      flush;
    ngx_flag_t                      sync;
} ngx_http_storefront_ads_zone_t;


typedef struct {
    ngx_http_storefront_ads_zone_t *zone;
} ngx_http_storefront_ads_main_conf_t;


typedef struct {
    ngx_array_t                    *slots;       /* of ngx_str_t; empty:
                                                    "off" */
    ngx_http_complex_value_t       *page;
    ngx_uint_t                      max_slots;
    ngx_str_t                       click_key;
    ngx_str_t                       click_path;
    ngx_flag_t                      click;
} ngx_http_storefront_ads_loc_conf_t;


/*
 * The ads of one request, shared like the decision itself by internal
 * redirects and subrequests: it lives in r->pool and is found again
 * through a pool cleanup marker.
 */

typedef struct {
    ngx_str_t                       page;        /* set by the page module */
    ngx_str_t                      *slots;
    ngx_uint_t                      nslots;

    ngx_http_storefront_ad_t       *ads;         /* in page order */
    ngx_uint_t                      nads;
    ngx_int_t                      *position;    /* position -> ad or -1 */
    ngx_uint_t                      npositions;
    ngx_str_t                       header;      /* "slot=c/cr/skippable;" */
    ngx_http_storefront_ads_loc_conf_t  *alcf;   /* where decided: the key */

    unsigned                        slots_set:1;
    unsigned                        decided:1;
    unsigned                        injected:1;
} ngx_http_storefront_ads_ctx_t;


/* impressions counted by this worker since its last flush */

typedef struct {
    uint32_t                        hash;
    u_char                         *key;         /* campaign, creative,
                                                    advertiser */
    size_t                          campaign_len;
    size_t                          creative_len;
    size_t                          advertiser_len;
    uint64_t                        impressions;
} ngx_http_storefront_ads_counter_t;


/* click signatures, by campaign and creative: HMAC once, not per page */

#define NGX_HTTP_STOREFRONT_ADS_SIGS  1024

typedef struct {
    u_char                         *key;         /* the key's address */
    u_char                          campaign[NGX_HTTP_STOREFRONT_ADS_NAME_MAX];
    u_char                          creative[NGX_HTTP_STOREFRONT_ADS_NAME_MAX];
    u_char                          campaign_len;
    u_char                          creative_len;
    char                            sig[NGX_HTTP_STOREFRONT_ADS_SIG_LEN + 1];
} ngx_http_storefront_ads_sig_t;


typedef struct {
    uint64_t                        version;
    size_t                          id;          /* offsets in buf */
    size_t                          id_len;
    size_t                          state;
    size_t                          state_len;
    ngx_http_storefront_ads_node_t *node;
} ngx_http_storefront_ads_flush_item_t;


typedef struct {
    ngx_http_storefront_ads_zone_t *zone;
    ngx_event_t                     flush_event;
    sf_buf                          state;       /* the user's, copied */
    sf_buf                          next;        /* after this page */
    sf_buf                          flush;       /* ids and states */
    ngx_array_t                    *items;       /* of flush_item_t */
    sf_db                          *db;          /* snapshot's environment */
    sf_snapshot                    *snapshot;    /* fresh reads on a miss */
    ngx_http_storefront_ads_counter_t *counters;
    ngx_uint_t                      ncounters;
    ngx_uint_t                      counters_cap;
    ngx_uint_t                      pending;     /* impressions to write */
    ngx_msec_t                      counted;     /* when last written */
    ngx_msec_t                      tick;
    ngx_uint_t                      flush_all;
    ngx_http_storefront_ads_sig_t  *sigs;
    time_t                          full_logged;
    time_t                          flush_logged;
} ngx_http_storefront_ads_worker_t;


static ngx_uint_t ngx_http_storefront_ads_needs_facts(ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_ads_decision(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_facts_t *facts);
static ngx_int_t ngx_http_storefront_ads_decide(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_ads_ctx_t *actx,
    ngx_http_storefront_facts_t *facts);
static ngx_int_t ngx_http_storefront_ads_serve(ngx_http_request_t *r,
    ngx_str_t *user, const void *blob, size_t len, ngx_str_t *page,
    sf_ad_fill *asked, ngx_uint_t n, ngx_uint_t max_slots,
    const sf_value *attrs, int64_t now_ms, int32_t tz, uint64_t seed,
    sf_ad_decision *d);
static ngx_int_t ngx_http_storefront_ads_read(ngx_http_request_t *r,
    ngx_str_t *user);
static ngx_http_storefront_ads_node_t *ngx_http_storefront_ads_lookup(
    ngx_http_storefront_ads_sh_t *sh, uint32_t hash, ngx_str_t *user);
static ngx_http_storefront_ads_node_t *ngx_http_storefront_ads_insert(
    ngx_http_storefront_ads_zone_t *zone, uint32_t hash, ngx_str_t *user,
    sf_buf *state);
static ngx_int_t ngx_http_storefront_ads_store(
    ngx_http_storefront_ads_zone_t *zone,
    ngx_http_storefront_ads_node_t *node, sf_buf *state);
static void *ngx_http_storefront_ads_alloc(
    ngx_http_storefront_ads_zone_t *zone, size_t size,
    ngx_http_storefront_ads_node_t *keep);
static void ngx_http_storefront_ads_unlink(ngx_http_storefront_ads_sh_t *sh,
    ngx_http_storefront_ads_node_t *node);
static ngx_int_t ngx_http_storefront_ads_outputs(ngx_http_request_t *r,
    ngx_http_storefront_ads_ctx_t *actx, sf_ad_fill *asked, ngx_uint_t n,
    sf_ad_decision *d);
static ngx_int_t ngx_http_storefront_ads_links(ngx_http_request_t *r,
    ngx_http_storefront_ads_ctx_t *actx, ngx_http_storefront_ad_t *ad);
static void ngx_http_storefront_ads_signature(ngx_str_t *key,
    ngx_str_t *campaign, ngx_str_t *creative, char *sig);
static ngx_int_t ngx_http_storefront_ads_count(sf_ad_fill *fill);
static void ngx_http_storefront_ads_flush_handler(ngx_event_t *ev);
static void ngx_http_storefront_ads_flush(ngx_log_t *log, sf_db *db,
    ngx_uint_t mode);
static int ngx_libc_cdecl ngx_http_storefront_ads_flush_cmp(const void *one,
    const void *two);
static ngx_uint_t ngx_http_storefront_ads_name(u_char *p, size_t len);

static ngx_http_storefront_ads_ctx_t *ngx_http_storefront_ads_get_ctx(
    ngx_http_request_t *r, ngx_uint_t create);
static void ngx_http_storefront_ads_cleanup(void *data);
static ngx_int_t ngx_http_storefront_ads_header_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_ads_click_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_ads_arg(ngx_http_request_t *r,
    char *name, size_t len, ngx_str_t *value);

static ngx_int_t ngx_http_storefront_ads_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_storefront_ads_n_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_storefront_ads_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);

static char *ngx_http_storefront_ads_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_http_storefront_ads_zone_t *ngx_http_storefront_ads_zone_add(
    ngx_conf_t *cf, ngx_str_t *name, size_t size);
static char *ngx_http_storefront_ads_slots(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_storefront_ads_click_key(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_storefront_ads_click_path(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_storefront_ads_click(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_storefront_ads_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_storefront_ads_init(ngx_conf_t *cf);
static void *ngx_http_storefront_ads_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_storefront_ads_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_storefront_ads_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_storefront_ads_init_process(ngx_cycle_t *cycle);
static void ngx_http_storefront_ads_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_storefront_ads_max_slots_bounds = {
    ngx_conf_check_num_bounds, 0, SF_ADS_MAX_SLOTS
};


static ngx_command_t  ngx_http_storefront_ads_commands[] = {

    { ngx_string("storefront_ad_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_storefront_ads_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_ad_slots"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_storefront_ads_slots,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_ad_max_slots"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_ads_loc_conf_t, max_slots),
      &ngx_http_storefront_ads_max_slots_bounds },

    { ngx_string("storefront_ad_click_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_storefront_ads_click_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_ad_click_path"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_storefront_ads_click_path,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_ad_click"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_storefront_ads_click,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_storefront_ads_module_ctx = {
    ngx_http_storefront_ads_preconfiguration,  /* preconfiguration */
    ngx_http_storefront_ads_init,              /* postconfiguration */

    ngx_http_storefront_ads_create_main_conf,  /* create main configuration */
    NULL,                                      /* init main configuration */

    NULL,                                      /* create server configuration */
    NULL,                                      /* merge server configuration */

    ngx_http_storefront_ads_create_loc_conf,   /* create location conf */
    ngx_http_storefront_ads_merge_loc_conf     /* merge location conf */
};


ngx_module_t  ngx_http_storefront_ads_module = {
    NGX_MODULE_V1,
    &ngx_http_storefront_ads_module_ctx,   /* module context */
    ngx_http_storefront_ads_commands,      /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_storefront_ads_init_process,  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_storefront_ads_exit_process,  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


#define NGX_HTTP_STOREFRONT_ADS_VAR_ADS    0
#define NGX_HTTP_STOREFRONT_ADS_VAR_COUNT  1
#define NGX_HTTP_STOREFRONT_ADS_VAR_AD     2
#define NGX_HTTP_STOREFRONT_ADS_VAR_CLICK  3


/* "storefront_ad_click_" is matched before "storefront_ad_" */

static ngx_http_variable_t  ngx_http_storefront_ads_vars[] = {

    { ngx_string("storefront_ads"), NULL,
      ngx_http_storefront_ads_variable, NGX_HTTP_STOREFRONT_ADS_VAR_ADS,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_ad_count"), NULL,
      ngx_http_storefront_ads_variable, NGX_HTTP_STOREFRONT_ADS_VAR_COUNT,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_ad_click_"), NULL,
      ngx_http_storefront_ads_n_variable, NGX_HTTP_STOREFRONT_ADS_VAR_CLICK,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

    { ngx_string("storefront_ad_"), NULL,
      ngx_http_storefront_ads_n_variable, NGX_HTTP_STOREFRONT_ADS_VAR_AD,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


static ngx_http_storefront_decision_pt  ngx_http_storefront_ads_next_decision;
static ngx_http_storefront_needs_facts_pt
    ngx_http_storefront_ads_next_needs_facts;

static ngx_http_storefront_ads_worker_t  ngx_http_storefront_ads_worker;

static u_char  *ngx_http_storefront_ads_sort_base;


/* ---- the API for the page module ----------------------------------------- */

ngx_int_t
ngx_http_storefront_ads_set_slots(ngx_http_request_t *r, ngx_str_t *page,
    ngx_str_t *slots, ngx_uint_t n)
{
    u_char                         *p;
    ngx_uint_t                      i;
    ngx_http_storefront_ads_ctx_t  *actx;

    actx = ngx_http_storefront_ads_get_ctx(r, 1);
    if (actx == NULL) {
        return NGX_ERROR;
    }

    if (actx->decided) {
        /* too late for this request: its ads are decided */
        return NGX_OK;
    }

    n = ngx_min(n, NGX_HTTP_STOREFRONT_ADS_MAX_POSITIONS);

    actx->slots = ngx_palloc(r->pool, (n ? n : 1) * sizeof(ngx_str_t));
    if (actx->slots == NULL) {
        return NGX_ERROR;
    }

    /* a copy of each name: the positions are told apart by address */

    for (i = 0; i < n; i++) {
        p = ngx_pnalloc(r->pool, slots[i].len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, slots[i].data, slots[i].len);

        actx->slots[i].len = slots[i].len;
        actx->slots[i].data = p;
    }

    actx->nslots = n;

    actx->page.len = page ? page->len : 0;
    actx->page.data = ngx_pnalloc(r->pool, actx->page.len + 1);
    if (actx->page.data == NULL) {
        return NGX_ERROR;
    }

    if (page) {
        ngx_memcpy(actx->page.data, page->data, page->len);
    }

    actx->slots_set = 1;

    return NGX_OK;
}


ngx_http_storefront_ad_t *
ngx_http_storefront_ads_fill(ngx_http_request_t *r, ngx_uint_t position)
{
    ngx_http_storefront_ads_ctx_t  *actx;

    ngx_http_storefront_ad_t       *ad;

    actx = ngx_http_storefront_ads_get_ctx(r, 0);

    if (actx == NULL || position >= actx->npositions
        || actx->position[position] < 0)
    {
        return NULL;
    }

    ad = &actx->ads[actx->position[position]];

    if (ngx_http_storefront_ads_links(r, actx, ad) != NGX_OK) {
        return NULL;
    }

    return ad;
}


ngx_http_storefront_ad_t *
ngx_http_storefront_ads_all(ngx_http_request_t *r, ngx_uint_t *n)
{
    ngx_uint_t                      i;
    ngx_http_storefront_ads_ctx_t  *actx;

    *n = 0;

    actx = ngx_http_storefront_ads_get_ctx(r, 0);

    if (actx == NULL || actx->nads == 0) {
        return NULL;
    }

    for (i = 0; i < actx->nads; i++) {
        if (ngx_http_storefront_ads_links(r, actx, &actx->ads[i]) != NGX_OK) {
            return NULL;
        }
    }

    *n = actx->nads;

    return actx->ads;
}


/* ---- the decision -------------------------------------------------------- */

/* a location with ad slots decides them from the snapshot, a HIT too */

static ngx_uint_t
ngx_http_storefront_ads_needs_facts(ngx_http_request_t *r)
{
    ngx_http_storefront_ads_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_ads_module);

    if (alcf->slots && alcf->slots->nelts) {
        /* caps and targeting are decided on every page view */
        return 1;
    }

    return ngx_http_storefront_ads_next_needs_facts(r);
}


static ngx_int_t
ngx_http_storefront_ads_decision(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_facts_t *facts)
{
    ngx_http_storefront_ads_ctx_t       *actx;
    ngx_http_storefront_ads_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_ads_module);

    actx = ngx_http_storefront_ads_get_ctx(r, 0);

    if (actx == NULL && (alcf->slots == NULL || alcf->slots->nelts == 0)) {
        /* no slots asked by the location or a page layout: no ads */
        return ngx_http_storefront_ads_next_decision(r, ctx, facts);
    }

    if (actx == NULL) {
        actx = ngx_http_storefront_ads_get_ctx(r, 1);
        if (actx == NULL) {
            return NGX_ERROR;
        }
    }

    if (!actx->decided) {
        actx->decided = 1;

        if (ngx_http_storefront_ads_decide(r, ctx, actx, facts) == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    return ngx_http_storefront_ads_next_decision(r, ctx, facts);
}


static ngx_int_t
ngx_http_storefront_ads_decide(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_ads_ctx_t *actx,
    ngx_http_storefront_facts_t *facts)
{
    int                                  rc;
    u_char                              *p;
    size_t                               len;
    int32_t                              tz;
    int64_t                              now_ms;
    uint64_t                             seed;
    sf_error                             err;
    ngx_str_t                            page, *slots;
    ngx_uint_t                           i, n;
    ngx_time_t                          *tp;
    sf_ad_fill                          *asked;
    const void                          *blob;
    sf_ad_decision                       d;
    ngx_http_storefront_ads_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_ads_module);

    if (actx->slots_set) {
        page = actx->page;
        slots = actx->slots;
        n = actx->nslots;

    } else if (alcf->slots && alcf->slots->nelts) {
        slots = alcf->slots->elts;
        n = alcf->slots->nelts;

        ngx_str_null(&page);

        if (alcf->page) {
            if (ngx_http_complex_value(r, alcf->page, &page) != NGX_OK) {
                return NGX_ERROR;
            }

            if (page.len && !ngx_http_storefront_ads_name(page.data, page.len))
            {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "storefront ads: invalid page type \"%V\", "
                              "no ads", &page);
                return NGX_OK;
            }
        }

    } else {
        return NGX_OK;
    }

    actx->npositions = n;
    actx->position = ngx_palloc(r->pool, (n ? n : 1) * sizeof(ngx_int_t));
    if (actx->position == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        actx->position[i] = -1;
    }

    if (n == 0 || ctx->user_id.len == 0 || facts->snapshot == NULL
        || ngx_http_storefront_ads_worker.zone == NULL)
    {
        return NGX_OK;
    }

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_snapshot_ads(facts->snapshot, &blob, &len, &err);

    if (rc != SF_OK || blob == NULL) {
        return NGX_OK;
    }

    /* the slots asked, each name at an address of its own */

    asked = ngx_pcalloc(r->pool, n * sizeof(sf_ad_fill));
    if (asked == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (actx->slots_set) {
            p = slots[i].data;

        } else {
            p = ngx_pnalloc(r->pool, slots[i].len);
            if (p == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(p, slots[i].data, slots[i].len);
        }

        asked[i].slot = (const char *) p;
        asked[i].slot_len = slots[i].len;
    }

    /* dayparts are in the visitor's time zone when the profile has one */

    tz = (ctx->profile && ctx->profile->has_tz) ? ctx->profile->tz_offset_min
                                                : 0;

    tp = ngx_timeofday();
    now_ms = (int64_t) tp->sec * 1000 + tp->msec;

    seed = ((uint64_t) ngx_random() << 32) ^ (uint64_t) ngx_random()
           ^ ((uint64_t) ngx_pid << 48) ^ (uint64_t) now_ms;

    rc = ngx_http_storefront_ads_serve(r, &ctx->user_id, blob, len, &page,
                                       asked, n, alcf->max_slots,
                                       facts->attributes, now_ms, tz, seed,
                                       &d);
    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : rc;
    }

    for (i = 0; i < d.nfills; i++) {
        if (ngx_http_storefront_ads_count(&d.fills[i]) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "storefront ads: out of memory for counters, "
                          "an impression is not counted");
        }
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "storefront ads: \"%V\" page \"%V\" %ui slots, %uz ads",
                   &ctx->user_id, &page, n, d.nfills);

    return ngx_http_storefront_ads_outputs(r, actx, asked, n, &d);
}


/*
 * Decides and records the impressions for one user in the zone.  NGX_OK:
 * d holds the ads, recorded; NGX_DECLINED: no ads for this request (the
 * zone is full of unwritten states, or LMDB cannot be read).
 */

static ngx_int_t
ngx_http_storefront_ads_serve(ngx_http_request_t *r, ngx_str_t *user,
    const void *blob, size_t len, ngx_str_t *page, sf_ad_fill *asked,
    ngx_uint_t n, ngx_uint_t max_slots, const sf_value *attrs, int64_t now_ms,
    int32_t tz, uint64_t seed, sf_ad_decision *d)
{
    int                                rc;
    uint32_t                           hash;
    uint64_t                           version, evictions;
    ngx_uint_t                         tries, locked;
    ngx_http_storefront_ads_sh_t      *sh;
    ngx_http_storefront_ads_node_t    *node;
    ngx_http_storefront_ads_zone_t    *zone;
    ngx_http_storefront_ads_worker_t  *w;

    w = &ngx_http_storefront_ads_worker;
    zone = w->zone;
    sh = zone->sh;

    hash = ngx_crc32_short(user->data, user->len);

    for (tries = 0; /* void */ ; tries++) {

        locked = (tries >= NGX_HTTP_STOREFRONT_ADS_TRIES);

        ngx_shmtx_lock(&zone->shpool->mutex);

        node = ngx_http_storefront_ads_lookup(sh, hash, user);

        if (node == NULL) {

            /*
             * Read the user from LMDB in a transaction begun after the
             * miss: an evicted user's state was committed before it was
             * evicted.  If anybody was evicted while we read, read again
             * (at last holding the lock).
             */

            evictions = sh->evictions;

            if (!locked) {
                ngx_shmtx_unlock(&zone->shpool->mutex);
            }

            rc = ngx_http_storefront_ads_read(r, user);

            if (!locked) {
                ngx_shmtx_lock(&zone->shpool->mutex);
            }

            if (rc != NGX_OK) {
                ngx_shmtx_unlock(&zone->shpool->mutex);
                return rc;
            }

            node = ngx_http_storefront_ads_lookup(sh, hash, user);

            if (node == NULL) {
                if (sh->evictions != evictions) {
                    ngx_shmtx_unlock(&zone->shpool->mutex);
                    continue;
                }

                node = ngx_http_storefront_ads_insert(zone, hash, user,
                                                      &w->state);
                if (node == NULL) {
                    ngx_shmtx_unlock(&zone->shpool->mutex);
                    goto full;
                }
            }
        }

        /* "clock": marked now, moved to the head only by the eviction scan */
        node->used = 1;

        w->state.len = 0;

        if (sf_buf_append(&w->state, node->state, node->state_len) != SF_OK) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return NGX_ERROR;
        }

        version = node->version;
        evictions = sh->evictions;

        if (!locked) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
        }

        rc = sf_ads_decide(blob, len, (const char *) page->data, page->len,
                           asked, n, (uint32_t) max_slots, attrs,
                           w->state.data, w->state.len, now_ms, tz, seed, d);

        if (rc != SF_OK || d->nfills == 0) {
            if (locked) {
                ngx_shmtx_unlock(&zone->shpool->mutex);
            }

            d->nfills = 0;
            return NGX_OK;
        }

        if (sf_ads_state_add(blob, len, w->state.data, w->state.len, d,
                             now_ms, &w->next)
            != SF_OK)
        {
            if (locked) {
                ngx_shmtx_unlock(&zone->shpool->mutex);
            }

            return NGX_ERROR;
        }

        if (!locked) {
            ngx_shmtx_lock(&zone->shpool->mutex);

            /* only an eviction frees a node */

            if (sh->evictions != evictions) {
                node = ngx_http_storefront_ads_lookup(sh, hash, user);
            }

            if (node == NULL || node->version != version) {
                /* another worker served this user meanwhile */
                ngx_shmtx_unlock(&zone->shpool->mutex);
                continue;
            }
        }

        if (ngx_http_storefront_ads_store(zone, node, &w->next) != NGX_OK) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            goto full;
        }

        ngx_shmtx_unlock(&zone->shpool->mutex);

        return NGX_OK;
    }

full:

    /* an ad that cannot be recorded is not served: caps stay exact */

    d->nfills = 0;

    if (w->full_logged != ngx_time()) {
        w->full_logged = ngx_time();
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "storefront_ad_zone \"%V\" is full of unwritten "
                      "states, serving without ads",
                      &zone->shm_zone->shm.name);
    }

    w->flush_all = 1;

    if (!w->flush_event.posted) {
        ngx_post_event(&w->flush_event, &ngx_posted_events);
    }

    return NGX_DECLINED;
}


/* the user's state from LMDB into w->state, in a fresh read transaction */

static ngx_int_t
ngx_http_storefront_ads_read(ngx_http_request_t *r, ngx_str_t *user)
{
    size_t                             len;
    sf_db                             *db;
    sf_error                           err;
    const void                        *state;
    ngx_http_storefront_ads_worker_t  *w;

    w = &ngx_http_storefront_ads_worker;

    err.code = 0;
    err.msg[0] = '\0';

    db = ngx_http_storefront_worker_db(r->connection->log);

    if (db == NULL) {
        return NGX_DECLINED;
    }

    if (db != w->db) {
        /*
         * The environment was reopened: a snapshot of the closed one
         * cannot be freed safely, it is left behind (rare).
         */
        w->snapshot = NULL;
        w->db = db;
    }

    if (w->snapshot == NULL
        && sf_snapshot_create(db, &w->snapshot, &err) != SF_OK)
    {
        w->snapshot = NULL;
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront ads: no read transaction: %s", err.msg);
        return NGX_DECLINED;
    }

    if (sf_snapshot_renew(w->snapshot, &err) != SF_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront ads: no read transaction: %s", err.msg);
        return NGX_DECLINED;
    }

    w->state.len = 0;

    if (sf_snapshot_ad_state(w->snapshot, (const char *) user->data,
                             user->len, &state, &len, &err)
        != SF_OK)
    {
        sf_snapshot_reset(w->snapshot);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront ads: cannot read the state of \"%V\": %s",
                      user, err.msg);
        return NGX_DECLINED;
    }

    if (len && sf_buf_append(&w->state, state, len) != SF_OK) {
        sf_snapshot_reset(w->snapshot);
        return NGX_ERROR;
    }

    sf_snapshot_reset(w->snapshot);

    return NGX_OK;
}


/* ---- the zone ------------------------------------------------------------ */

static ngx_http_storefront_ads_node_t *
ngx_http_storefront_ads_lookup(ngx_http_storefront_ads_sh_t *sh,
    uint32_t hash, ngx_str_t *user)
{
    ngx_http_storefront_ads_node_t  *node;

    for (node = sh->buckets[hash & sh->mask]; node; node = node->next) {
        if (node->hash == hash && node->len == user->len
            && ngx_memcmp(node->id, user->data, user->len) == 0)
        {
            return node;
        }
    }

    return NULL;
}


static void
ngx_http_storefront_ads_unlink(ngx_http_storefront_ads_sh_t *sh,
    ngx_http_storefront_ads_node_t *node)
{
    ngx_http_storefront_ads_node_t  **p;

    for (p = &sh->buckets[node->hash & sh->mask]; *p; p = &(*p)->next) {
        if (*p == node) {
            *p = node->next;
            return;
        }
    }
}


static ngx_http_storefront_ads_node_t *
ngx_http_storefront_ads_insert(ngx_http_storefront_ads_zone_t *zone,
    uint32_t hash, ngx_str_t *user, sf_buf *state)
{
    ngx_http_storefront_ads_sh_t    *sh;
    ngx_http_storefront_ads_node_t  *node;

    sh = zone->sh;

    node = ngx_http_storefront_ads_alloc(zone,
                              offsetof(ngx_http_storefront_ads_node_t, id)
                              + user->len, NULL);
    if (node == NULL) {
        return NULL;
    }

    node->hash = hash;
    node->used = 0;
    node->len = (u_short) user->len;
    ngx_memcpy(node->id, user->data, user->len);

    node->state = NULL;
    node->state_len = 0;
    node->state_cap = 0;
    node->version = 0;
    node->flushed = 0;

    if (state->len) {
        node->state_cap = ngx_max(NGX_HTTP_STOREFRONT_ADS_STATE_MIN,
                                  state->len);
        node->state = ngx_http_storefront_ads_alloc(zone, node->state_cap,
                                                    NULL);
        if (node->state == NULL) {
            ngx_slab_free_locked(zone->shpool, node);
            return NULL;
        }

        ngx_memcpy(node->state, state->data, state->len);
        node->state_len = (uint32_t) state->len;
    }

    node->next = sh->buckets[hash & sh->mask];
    sh->buckets[hash & sh->mask] = node;
    ngx_queue_insert_head(&sh->lru, &node->lru);
    ngx_queue_init(&node->dirty);
    sh->nodes++;

    return node;
}


/* replaces the node's state and marks it unwritten */

static ngx_int_t
ngx_http_storefront_ads_store(ngx_http_storefront_ads_zone_t *zone,
    ngx_http_storefront_ads_node_t *node, sf_buf *state)
{
    u_char  *p;
    size_t   cap;

    if (state->len > node->state_cap) {
        for (cap = NGX_HTTP_STOREFRONT_ADS_STATE_MIN; cap < state->len;
             cap *= 2)
        {
            /* void */
        }

        p = ngx_http_storefront_ads_alloc(zone, cap, node);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (node->state) {
            ngx_slab_free_locked(zone->shpool, node->state);
        }

        node->state = p;
        node->state_cap = (uint32_t) cap;
    }

    ngx_memcpy(node->state, state->data, state->len);
    node->state_len = (uint32_t) state->len;

    if (node->version == node->flushed) {
        ngx_queue_insert_tail(&zone->sh->dirty, &node->dirty);
        node->dirty_since = ngx_current_msec;
        zone->sh->ndirty++;
    }

    node->version++;

    return NGX_OK;
}


/*
 * Allocates in the zone; when it is full, frees users not seen lately
 * (a "clock": users seen since the last scan get a second chance) whose
 * state is in LMDB (never one with unwritten impressions, nor keep) and
 * tries again.
 */

static void *
ngx_http_storefront_ads_alloc(ngx_http_storefront_ads_zone_t *zone,
    size_t size, ngx_http_storefront_ads_node_t *keep)
{
    void                            *p;
    ngx_uint_t                       scanned, freed;
    ngx_queue_t                     *q, *prev;
    ngx_http_storefront_ads_sh_t    *sh;
    ngx_http_storefront_ads_node_t  *node;

    p = ngx_slab_alloc_locked(zone->shpool, size);

    if (p) {
        return p;
    }

    sh = zone->sh;
    freed = 0;
    scanned = 0;

    for (q = ngx_queue_last(&sh->lru);
         q != ngx_queue_sentinel(&sh->lru)
         && scanned < NGX_HTTP_STOREFRONT_ADS_EVICT_SCAN;
         q = prev)
    {
        prev = ngx_queue_prev(q);
        scanned++;

        node = ngx_queue_data(q, ngx_http_storefront_ads_node_t, lru);

        if (node->used) {
            /* seen since the last scan: a second chance */
            node->used = 0;
            ngx_queue_remove(&node->lru);
            ngx_queue_insert_head(&sh->lru, &node->lru);
            continue;
        }

        if (node == keep || node->version != node->flushed) {
            continue;
        }

        ngx_queue_remove(&node->lru);
        ngx_http_storefront_ads_unlink(sh, node);

        if (node->state) {
            ngx_slab_free_locked(zone->shpool, node->state);
        }

        ngx_slab_free_locked(zone->shpool, node);

        sh->nodes--;
        sh->evictions++;

        if (++freed >= 4) {
            p = ngx_slab_alloc_locked(zone->shpool, size);

            if (p) {
                return p;
            }

            freed = 0;
        }
    }

    return ngx_slab_alloc_locked(zone->shpool, size);
}


static ngx_int_t
ngx_http_storefront_ads_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_storefront_ads_zone_t *ozone = data;

    size_t                           len, n;
    ngx_http_storefront_ads_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {
        /* a reload with the same zone: the users and their states stay */
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh = ngx_slab_alloc(zone->shpool,
                              sizeof(ngx_http_storefront_ads_sh_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(zone->sh, sizeof(ngx_http_storefront_ads_sh_t));

    zone->shpool->data = zone->sh;

    /* a bucket for every 1 KB of the zone, about a user each */

    for (n = 1024; n * 1024 < shm_zone->shm.size && n < (1 << 24); n *= 2) {
        /* void */
    }

    zone->sh->buckets = ngx_slab_calloc(zone->shpool,
                              n * sizeof(ngx_http_storefront_ads_node_t *));
    if (zone->sh->buckets == NULL) {
        return NGX_ERROR;
    }

    zone->sh->mask = n - 1;

    ngx_queue_init(&zone->sh->lru);
    ngx_queue_init(&zone->sh->dirty);

    len = sizeof(" in storefront_ad_zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in storefront_ad_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is handled: users are evicted, or a page has no ads */
    zone->shpool->log_nomem = 0;

    return NGX_OK;
}


/* ---- what the decision gives --------------------------------------------- */

static ngx_int_t
ngx_http_storefront_ads_outputs(ngx_http_request_t *r,
    ngx_http_storefront_ads_ctx_t *actx, sf_ad_fill *asked, ngx_uint_t n,
    sf_ad_decision *d)
{
    u_char                    *p;
    size_t                     len, size;
    ngx_uint_t                 i, k;
    sf_ad_fill                *f;
    ngx_http_storefront_ad_t  *ad;

    if (d->nfills == 0) {
        return NGX_OK;
    }

    actx->alcf = ngx_http_get_module_loc_conf(r,
                                              ngx_http_storefront_ads_module);

    actx->ads = ngx_pcalloc(r->pool,
                            d->nfills * sizeof(ngx_http_storefront_ad_t));
    if (actx->ads == NULL) {
        return NGX_ERROR;
    }

    size = 0;

    for (i = 0; i < d->nfills; i++) {
        f = &d->fills[i];
        ad = &actx->ads[i];

        /* the position: the asked slot whose name the fill points to */

        for (k = 0; k < n && asked[k].slot != f->slot; k++) {
            /* void */
        }

        ad->position = k;

        if (k < n) {
            actx->position[k] = i;
        }

        len = f->slot_len + f->campaign_len + f->creative_len
              + f->advertiser_len + f->format_len;

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ad->slot.data = p;
        ad->slot.len = f->slot_len;
        p = ngx_cpymem(p, f->slot, f->slot_len);

        ad->campaign.data = p;
        ad->campaign.len = f->campaign_len;
        p = ngx_cpymem(p, f->campaign, f->campaign_len);

        ad->creative.data = p;
        ad->creative.len = f->creative_len;
        p = ngx_cpymem(p, f->creative, f->creative_len);

        ad->advertiser.data = p;
        ad->advertiser.len = f->advertiser_len;
        p = ngx_cpymem(p, f->advertiser, f->advertiser_len);

        ad->format.data = p;
        ad->format.len = f->format_len;
        ngx_memcpy(p, f->format, f->format_len);

        ad->skippable = f->skippable ? 1 : 0;

        size += ad->slot.len + ad->campaign.len + ad->creative.len
                + sizeof("=//unskippable;") - 1;
    }

    actx->nads = d->nfills;

    /* "banner=nike-run/cr1/skippable;infeed=acme/cr9/unskippable" */

    p = ngx_pnalloc(r->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    actx->header.data = p;

    for (i = 0; i < actx->nads; i++) {
        ad = &actx->ads[i];

        if (i) {
            *p++ = ';';
        }

        p = ngx_cpymem(p, ad->slot.data, ad->slot.len);
        *p++ = '=';
        p = ngx_cpymem(p, ad->campaign.data, ad->campaign.len);
        *p++ = '/';
        p = ngx_cpymem(p, ad->creative.data, ad->creative.len);
        *p++ = '/';

        if (ad->skippable) {
            p = ngx_cpymem(p, "skippable", sizeof("skippable") - 1);

        } else {
            p = ngx_cpymem(p, "unskippable", sizeof("unskippable") - 1);
        }
    }

    actx->header.len = p - actx->header.data;

    return NGX_OK;
}


/*
 * The click link, "<path>?c=<campaign>&cr=<creative>&s=<signature>", and
 * the fragment's query arguments: made when first asked for.
 */

static ngx_int_t
ngx_http_storefront_ads_links(ngx_http_request_t *r,
    ngx_http_storefront_ads_ctx_t *actx, ngx_http_storefront_ad_t *ad)
{
    u_char                              *p;
    char                                 sig[NGX_HTTP_STOREFRONT_ADS_SIG_LEN
                                             + 1];
    size_t                               len;
    uintptr_t                            escape;
    ngx_http_storefront_ads_loc_conf_t  *alcf;

    if (ad->linked) {
        return NGX_OK;
    }

    alcf = actx->alcf;

    ngx_str_null(&ad->click);

    if (alcf && alcf->click_key.len) {
        ngx_http_storefront_ads_signature(&alcf->click_key, &ad->campaign,
                                          &ad->creative, sig);

        p = ngx_pnalloc(r->pool,
                        alcf->click_path.len + sizeof("?c=&cr=&s=") - 1
                        + ad->campaign.len + ad->creative.len
                        + NGX_HTTP_STOREFRONT_ADS_SIG_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ad->click.data = p;

        p = ngx_cpymem(p, alcf->click_path.data, alcf->click_path.len);
        p = ngx_cpymem(p, "?c=", sizeof("?c=") - 1);
        p = ngx_cpymem(p, ad->campaign.data, ad->campaign.len);
        p = ngx_cpymem(p, "&cr=", sizeof("&cr=") - 1);
        p = ngx_cpymem(p, ad->creative.data, ad->creative.len);
        p = ngx_cpymem(p, "&s=", sizeof("&s=") - 1);
        p = ngx_cpymem(p, sig, NGX_HTTP_STOREFRONT_ADS_SIG_LEN);

        ad->click.len = p - ad->click.data;
    }

    escape = 2 * ngx_escape_uri(NULL, ad->click.data, ad->click.len,
                                NGX_ESCAPE_URI_COMPONENT);

    len = sizeof("ad_slot=&ad_campaign=&ad_creative=&ad_advertiser="
                 "&ad_format=&ad_skippable=0&ad_click=") - 1
          + ad->slot.len + ad->campaign.len + ad->creative.len
          + ad->advertiser.len + ad->format.len + ad->click.len + escape;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ad->args.data = p;

    p = ngx_sprintf(p, "ad_slot=%V&ad_campaign=%V&ad_creative=%V"
                    "&ad_advertiser=%V&ad_format=%V&ad_skippable=%c"
                    "&ad_click=", &ad->slot, &ad->campaign, &ad->creative,
                    &ad->advertiser, &ad->format, ad->skippable ? '1' : '0');

    p = (u_char *) ngx_escape_uri(p, ad->click.data, ad->click.len,
                                  NGX_ESCAPE_URI_COMPONENT);

    ad->args.len = p - ad->args.data;
    ad->linked = 1;

    return NGX_OK;
}


/* sf_ad_click_signature() through the worker's cache */

static void
ngx_http_storefront_ads_signature(ngx_str_t *key, ngx_str_t *campaign,
    ngx_str_t *creative, char *sig)
{
    uint32_t                           h;
    ngx_http_storefront_ads_sig_t     *c;
    ngx_http_storefront_ads_worker_t  *w;

    w = &ngx_http_storefront_ads_worker;

    if (w->sigs == NULL
        || campaign->len > NGX_HTTP_STOREFRONT_ADS_NAME_MAX
        || creative->len > NGX_HTTP_STOREFRONT_ADS_NAME_MAX)
    {
        sf_ad_click_signature(key->data, key->len,
                              (const char *) campaign->data, campaign->len,
                              (const char *) creative->data, creative->len,
                              sig);
        return;
    }

    h = ngx_crc32_short(campaign->data, campaign->len)
        ^ (ngx_crc32_short(creative->data, creative->len) * 31);

    c = &w->sigs[h % NGX_HTTP_STOREFRONT_ADS_SIGS];

    if (c->key != key->data
        || c->campaign_len != campaign->len
        || c->creative_len != creative->len
        || ngx_memcmp(c->campaign, campaign->data, campaign->len) != 0
        || ngx_memcmp(c->creative, creative->data, creative->len) != 0)
    {
        sf_ad_click_signature(key->data, key->len,
                              (const char *) campaign->data, campaign->len,
                              (const char *) creative->data, creative->len,
                              c->sig);

        c->key = key->data;
        c->campaign_len = (u_char) campaign->len;
        c->creative_len = (u_char) creative->len;
        ngx_memcpy(c->campaign, campaign->data, campaign->len);
        ngx_memcpy(c->creative, creative->data, creative->len);
    }

    ngx_memcpy(sig, c->sig, NGX_HTTP_STOREFRONT_ADS_SIG_LEN + 1);
}


/* ---- impression counters ------------------------------------------------- */

static ngx_int_t
ngx_http_storefront_ads_count(sf_ad_fill *fill)
{
    u_char                             *p;
    uint32_t                            hash;
    ngx_uint_t                          i, mask, cap;
    ngx_http_storefront_ads_counter_t  *c, *old;
    ngx_http_storefront_ads_worker_t   *w;

    w = &ngx_http_storefront_ads_worker;

    if (w->ncounters * 2 >= w->counters_cap) {
        cap = w->counters_cap ? w->counters_cap * 2 : 256;

        c = ngx_calloc(cap * sizeof(ngx_http_storefront_ads_counter_t),
                       ngx_cycle->log);
        if (c == NULL) {
            return NGX_ERROR;
        }

        old = w->counters;

        for (i = 0; i < w->counters_cap; i++) {
            if (old[i].key == NULL) {
                continue;
            }

            for (mask = cap - 1, hash = old[i].hash & mask;
                 c[hash].key;
                 hash = (hash + 1) & mask)
            {
                /* void */
            }

            c[hash] = old[i];
        }

        ngx_free(old);

        w->counters = c;
        w->counters_cap = cap;
    }

    hash = ngx_crc32_short((u_char *) fill->campaign, fill->campaign_len)
           ^ ngx_crc32_short((u_char *) fill->creative, fill->creative_len);

    mask = w->counters_cap - 1;

    for (i = hash & mask; w->counters[i].key; i = (i + 1) & mask) {
        c = &w->counters[i];

        if (c->hash == hash
            && c->campaign_len == fill->campaign_len
            && c->creative_len == fill->creative_len
            && c->advertiser_len == fill->advertiser_len
            && ngx_memcmp(c->key, fill->campaign, fill->campaign_len) == 0
            && ngx_memcmp(c->key + c->campaign_len, fill->creative,
                          fill->creative_len) == 0
            && ngx_memcmp(c->key + c->campaign_len + c->creative_len,
                          fill->advertiser, fill->advertiser_len) == 0)
        {
            c->impressions++;
            w->pending++;
            return NGX_OK;
        }
    }

    c = &w->counters[i];

    p = ngx_alloc(fill->campaign_len + fill->creative_len
                  + fill->advertiser_len + 1, ngx_cycle->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    c->key = p;
    c->hash = hash;
    c->campaign_len = fill->campaign_len;
    c->creative_len = fill->creative_len;
    c->advertiser_len = fill->advertiser_len;
    c->impressions = 1;

    p = ngx_cpymem(p, fill->campaign, fill->campaign_len);
    p = ngx_cpymem(p, fill->creative, fill->creative_len);
    ngx_memcpy(p, fill->advertiser, fill->advertiser_len);

    w->ncounters++;
    w->pending++;

    return NGX_OK;
}


/* ---- writing to LMDB ----------------------------------------------------- */

static void
ngx_http_storefront_ads_flush_handler(ngx_event_t *ev)
{
    sf_db                             *db;
    ngx_uint_t                         mode;
    ngx_http_storefront_ads_worker_t  *w;

    w = &ngx_http_storefront_ads_worker;

    if (w->zone == NULL) {
        return;
    }

    mode = w->flush_all ? NGX_HTTP_STOREFRONT_ADS_FLUSH_ALL
                        : NGX_HTTP_STOREFRONT_ADS_FLUSH_DUE;
    w->flush_all = 0;

    if (w->pending || w->zone->sh->ndirty) {
        db = ngx_http_storefront_worker_db(ev->log);

        if (db) {
            ngx_http_storefront_ads_flush(ev->log, db, mode);
        }
    }

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        /* the last write is made when the process exits */
        return;
    }

    if (!ev->timer_set) {
        ngx_add_timer(ev, w->tick);
    }
}


/*
 * Writes unwritten user states (one worker at a time: a lease in the
 * zone) and this worker's counters in one write transaction.
 *
 * The write is spread over the interval: a tick comes every quarter of
 * it and writes the states unwritten for (about) the interval, the
 * oldest first, so that the event loop never stops for a whole
 * interval's worth of writes; the counters go once an interval.  "all"
 * writes every unwritten state (the zone is full); "final" (the process
 * exits) also waits for a write in progress elsewhere.  Users are
 * written in the order of their ids: LMDB writes sorted keys faster.
 */

static void
ngx_http_storefront_ads_flush(ngx_log_t *log, sf_db *db, ngx_uint_t mode)
{
    int                                    rc;
    time_t                                 now;
    sf_txn                                *txn;
    sf_error                               err;
    ngx_msec_t                             due;
    ngx_uint_t                             i, leased, waited, counters,
                                           batches;
    sf_ad_fill                             fill;
    ngx_queue_t                           *q;
    ngx_http_storefront_ads_sh_t          *sh;
    ngx_http_storefront_ads_node_t        *node;
    ngx_http_storefront_ads_zone_t        *zone;
    ngx_http_storefront_ads_worker_t      *w;
    ngx_http_storefront_ads_counter_t     *c;
    ngx_http_storefront_ads_flush_item_t  *item;

    w = &ngx_http_storefront_ads_worker;
    zone = w->zone;
    sh = zone->sh;

    /* a state is due when unwritten for the interval less a tick */
    due = zone->flush - w->tick;

    for (waited = 0, batches = 0; batches < 1000; batches++) {

        leased = 0;
        w->items->nelts = 0;
        w->flush.len = 0;

        ngx_shmtx_lock(&zone->shpool->mutex);

        now = ngx_time();

        if (sh->ndirty
            && (sh->flusher == 0 || sh->lease < now || sh->flusher == ngx_pid))
        {
            leased = 1;
            sh->flusher = ngx_pid;
            sh->lease = now + NGX_HTTP_STOREFRONT_ADS_FLUSH_LEASE;

            /* the queue is in the order the states became unwritten */

            for (q = ngx_queue_head(&sh->dirty);
                 q != ngx_queue_sentinel(&sh->dirty)
                 && w->items->nelts < NGX_HTTP_STOREFRONT_ADS_FLUSH_MAX;
                 q = ngx_queue_next(q))
            {
                node = ngx_queue_data(q, ngx_http_storefront_ads_node_t,
                                      dirty);

                if (mode == NGX_HTTP_STOREFRONT_ADS_FLUSH_DUE
                    && (ngx_msec_int_t) (ngx_current_msec - node->dirty_since)
                       < (ngx_msec_int_t) due)
                {
                    break;
                }

                item = ngx_array_push(w->items);
                if (item == NULL) {
                    break;
                }

                item->node = node;
                item->version = node->version;
                item->id = w->flush.len;
                item->id_len = node->len;

                if (sf_buf_append(&w->flush, node->id, node->len) != SF_OK) {
                    w->items->nelts--;
                    break;
                }

                item->state = w->flush.len;
                item->state_len = node->state_len;

                if (sf_buf_append(&w->flush, node->state, node->state_len)
                    != SF_OK)
                {
                    w->items->nelts--;
                    break;
                }
            }

            if (w->items->nelts == 0) {
                leased = 0;
                sh->flusher = 0;
            }

        } else if (sh->ndirty && mode == NGX_HTTP_STOREFRONT_ADS_FLUSH_FINAL
                   && waited < 500)
        {
            /* another worker is writing: wait for it, then write the rest */
            ngx_shmtx_unlock(&zone->shpool->mutex);
            ngx_msleep(10);
            waited++;
            batches--;
            continue;
        }

        ngx_shmtx_unlock(&zone->shpool->mutex);

        counters = w->pending
                   && (mode != NGX_HTTP_STOREFRONT_ADS_FLUSH_DUE
                       || ngx_current_msec - w->counted >= zone->flush);

        if (!leased && !counters) {
            return;
        }

        err.code = 0;
        err.msg[0] = '\0';

        if (!zone->sync) {
            sf_db_set_durable(db, 0, NULL);
        }

        rc = sf_txn_begin(db, &txn, &err);

        if (rc == SF_OK) {
            item = w->items->elts;

            ngx_http_storefront_ads_sort_base = (u_char *) w->flush.data;
            ngx_qsort(item, w->items->nelts,
                      sizeof(ngx_http_storefront_ads_flush_item_t),
                      ngx_http_storefront_ads_flush_cmp);

            for (i = 0; rc == SF_OK && i < w->items->nelts; i++) {
                rc = sf_txn_put_ad_state(txn, w->flush.data + item[i].id,
                                         item[i].id_len,
                                         w->flush.data + item[i].state,
                                         item[i].state_len, &err);
            }

            for (i = 0; rc == SF_OK && counters && i < w->counters_cap; i++) {
                c = &w->counters[i];

                if (c->key == NULL || c->impressions == 0) {
                    continue;
                }

                ngx_memzero(&fill, sizeof(sf_ad_fill));

                fill.campaign = (const char *) c->key;
                fill.campaign_len = c->campaign_len;
                fill.creative = (const char *) c->key + c->campaign_len;
                fill.creative_len = c->creative_len;
                fill.advertiser = (const char *) c->key + c->campaign_len
                                  + c->creative_len;
                fill.advertiser_len = c->advertiser_len;

                rc = sf_txn_count_ad(txn, &fill, c->impressions, 0, &err);
            }

            if (rc == SF_OK) {
                rc = sf_txn_commit(txn, &err);

            } else {
                sf_txn_abort(txn);
            }
        }

        sf_db_set_durable(db, 1, NULL);

        if (rc == SF_OK && counters) {
            for (i = 0; i < w->counters_cap; i++) {
                w->counters[i].impressions = 0;
            }

            w->pending = 0;
            w->counted = ngx_current_msec;
        }

        ngx_shmtx_lock(&zone->shpool->mutex);

        if (leased) {
            if (rc == SF_OK) {
                item = w->items->elts;

                for (i = 0; i < w->items->nelts; i++) {
                    node = item[i].node;

                    if (item[i].version <= node->flushed) {
                        continue;
                    }

                    node->flushed = item[i].version;

                    if (node->flushed == node->version) {
                        ngx_queue_remove(&node->dirty);
                        sh->ndirty--;
                    }
                }
            }

            sh->flusher = 0;
        }

        ngx_shmtx_unlock(&zone->shpool->mutex);

        if (rc != SF_OK) {
            if (mode == NGX_HTTP_STOREFRONT_ADS_FLUSH_FINAL
                || w->flush_logged != ngx_time())
            {
                w->flush_logged = ngx_time();
                ngx_log_error(NGX_LOG_ERR, log, 0,
                              "storefront ads: impressions not written%s: %s",
                              mode == NGX_HTTP_STOREFRONT_ADS_FLUSH_FINAL
                              ? ", lost" : " yet", err.msg);
            }

            return;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                       "storefront ads: %ui states written, %ui unwritten",
                       w->items->nelts, sh->ndirty);

        if (!leased || sh->ndirty == 0
            || (mode == NGX_HTTP_STOREFRONT_ADS_FLUSH_DUE
                && w->items->nelts < NGX_HTTP_STOREFRONT_ADS_FLUSH_MAX))
        {
            return;
        }
    }
}


static int ngx_libc_cdecl
ngx_http_storefront_ads_flush_cmp(const void *one, const void *two)
{
    const ngx_http_storefront_ads_flush_item_t  *a = one, *b = two;

    return (int) ngx_memn2cmp(ngx_http_storefront_ads_sort_base + a->id,
                              ngx_http_storefront_ads_sort_base + b->id,
                              a->id_len, b->id_len);
}


/* a name as the data uses: letters, digits, "-", "_", "." */

static ngx_uint_t
ngx_http_storefront_ads_name(u_char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > NGX_HTTP_STOREFRONT_ADS_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')
              || (p[i] >= '0' && p[i] <= '9') || p[i] == '-' || p[i] == '_'
              || p[i] == '.'))
        {
            return 0;
        }
    }

    return 1;
}


/* ---- the request's ads --------------------------------------------------- */

static void
ngx_http_storefront_ads_cleanup(void *data)
{
    /* a marker: internal redirects and subrequests find the ads again */
}


static ngx_http_storefront_ads_ctx_t *
ngx_http_storefront_ads_get_ctx(ngx_http_request_t *r, ngx_uint_t create)
{
    ngx_pool_cleanup_t             *cln;
    ngx_http_storefront_ads_ctx_t  *actx;

    actx = ngx_http_get_module_ctx(r, ngx_http_storefront_ads_module);

    if (actx) {
        return actx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_storefront_ads_cleanup) {
            actx = cln->data;
            ngx_http_set_ctx(r, actx, ngx_http_storefront_ads_module);
            return actx;
        }
    }

    if (!create) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool,
                               sizeof(ngx_http_storefront_ads_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    actx = cln->data;
    ngx_memzero(actx, sizeof(ngx_http_storefront_ads_ctx_t));

    cln->handler = ngx_http_storefront_ads_cleanup;
    ngx_http_set_ctx(r, actx, ngx_http_storefront_ads_module);

    return actx;
}


/*
 * "<prefix>Ads" to the upstream of the main request (fragments get their
 * ad as query arguments, see ngx_http_storefront_ads_fill()).  It is
 * added in the precontent phase, after the storefront handler has removed
 * the client's headers with the prefix; once: the list stays across
 * internal redirects.
 */

static ngx_int_t
ngx_http_storefront_ads_header_handler(ngx_http_request_t *r)
{
    u_char                          *p;
    size_t                           len;
    ngx_table_elt_t                 *h;
    ngx_http_storefront_ctx_t       *ctx;
    ngx_http_storefront_ads_ctx_t   *actx;
    ngx_http_storefront_loc_conf_t  *slcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_module);

    if (!slcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_storefront_get_ctx(r);

    if (ctx == NULL || ctx->busy) {
        return NGX_DECLINED;
    }

    actx = ngx_http_storefront_ads_get_ctx(r, 0);

    if (actx == NULL || actx->header.len == 0 || actx->injected) {
        return NGX_DECLINED;
    }

    len = slcf->header_prefix.len + sizeof("Ads") - 1;

    p = ngx_pnalloc(r->pool, 2 * len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->key.len = len;
    h->key.data = p;

    p = ngx_cpymem(p, slcf->header_prefix.data, slcf->header_prefix.len);
    p = ngx_cpymem(p, "Ads", sizeof("Ads") - 1);

    h->lowcase_key = p;
    h->hash = ngx_hash_strlow(h->lowcase_key, h->key.data, len);
    h->value = actx->header;

#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    actx->injected = 1;

    return NGX_DECLINED;
}


/* ---- clicks -------------------------------------------------------------- */

static ngx_int_t
ngx_http_storefront_ads_click_handler(ngx_http_request_t *r)
{
    int                                  rc;
    u_char                              *p;
    char                                 sig[NGX_HTTP_STOREFRONT_ADS_SIG_LEN
                                             + 1];
    size_t                               len, i;
    sf_db                               *db;
    sf_txn                              *txn;
    sf_error                             err;
    ngx_int_t                            nrc;
    ngx_str_t                            campaign, creative, s, url;
    ngx_str_t                            advertiser;
    sf_ad_fill                           fill;
    const void                          *blob;
    sf_snapshot                         *snapshot;
    ngx_table_elt_t                     *h;
    volatile ngx_uint_t                  diff;
    ngx_http_storefront_ads_loc_conf_t  *alcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    nrc = ngx_http_discard_request_body(r);
    if (nrc != NGX_OK) {
        return nrc;
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_ads_module);

    if (ngx_http_storefront_ads_arg(r, "c", 1, &campaign) != NGX_OK
        || ngx_http_storefront_ads_arg(r, "cr", 2, &creative) != NGX_OK
        || ngx_http_storefront_ads_arg(r, "s", 1, &s) != NGX_OK
        || !ngx_http_storefront_ads_name(campaign.data, campaign.len)
        || !ngx_http_storefront_ads_name(creative.data, creative.len)
        || s.len != NGX_HTTP_STOREFRONT_ADS_SIG_LEN)
    {
        goto invalid;
    }

    sf_ad_click_signature(alcf->click_key.data, alcf->click_key.len,
                          (const char *) campaign.data, campaign.len,
                          (const char *) creative.data, creative.len, sig);

    /* the same time whatever the link holds */

    diff = 0;

    for (i = 0; i < NGX_HTTP_STOREFRONT_ADS_SIG_LEN; i++) {
        diff |= (u_char) sig[i] ^ s.data[i];
    }

    if (diff) {
        goto invalid;
    }

    /* the landing URL from the data, never from the link */

    snapshot = ngx_http_storefront_snapshot_acquire(r->connection->log);

    if (snapshot == NULL) {
        return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "the ads are unavailable");
    }

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_snapshot_ads(snapshot, &blob, &len, &err);

    if (rc == SF_OK && blob) {
        rc = sf_ads_find_creative(blob, len, (const char *) campaign.data,
                                  campaign.len, (const char *) creative.data,
                                  creative.len, &fill);
    } else if (rc == SF_OK) {
        rc = SF_ERR_NOT_FOUND;
    }

    if (rc != SF_OK) {
        ngx_http_storefront_snapshot_release();

        if (rc == SF_ERR_NOT_FOUND) {
            return ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                       "unknown campaign or creative");
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront ads: cannot read the campaigns: %s",
                      err.msg);

        return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "the ads are unavailable");
    }

    url.len = fill.url_len;
    advertiser.len = fill.advertiser_len;

    p = ngx_pnalloc(r->pool, url.len + advertiser.len);
    if (p == NULL) {
        ngx_http_storefront_snapshot_release();
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    url.data = p;
    p = ngx_cpymem(p, fill.url, fill.url_len);
    advertiser.data = p;
    ngx_memcpy(p, fill.advertiser, fill.advertiser_len);

    ngx_http_storefront_snapshot_release();

    /* one small write transaction: the click counts before the redirect */

    fill.campaign = (const char *) campaign.data;
    fill.creative = (const char *) creative.data;
    fill.advertiser = (const char *) advertiser.data;
    fill.url = NULL;
    fill.url_len = 0;

    db = ngx_http_storefront_worker_db(r->connection->log);

    rc = SF_ERR_DB;

    if (db) {
        if (!ngx_http_storefront_ads_worker.zone
            || !ngx_http_storefront_ads_worker.zone->sync)
        {
            sf_db_set_durable(db, 0, NULL);
        }

        rc = sf_txn_begin(db, &txn, &err);

        if (rc == SF_OK) {
            rc = sf_txn_count_ad(txn, &fill, 0, 1, &err);

            if (rc == SF_OK) {
                rc = sf_txn_commit(txn, &err);

            } else {
                sf_txn_abort(txn);
            }
        }

        sf_db_set_durable(db, 1, NULL);
    }

    if (rc != SF_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront ads: a click on \"%V/%V\" is not counted: "
                      "%s", &campaign, &creative,
                      err.msg[0] ? err.msg : "no database");
    }

    ngx_http_clear_location(r);

    r->headers_out.location = ngx_list_push(&r->headers_out.headers);
    if (r->headers_out.location == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.location->hash = 1;
#if (nginx_version >= 1023000)
    r->headers_out.location->next = NULL;
#endif
    ngx_str_set(&r->headers_out.location->key, "Location");
    r->headers_out.location->value = url;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    return NGX_HTTP_MOVED_TEMPORARILY;

invalid:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "storefront ads: invalid click link \"%V\"", &r->args);

    return ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                          "invalid click link");
}


/* a query argument that must appear once */

static ngx_int_t
ngx_http_storefront_ads_arg(ngx_http_request_t *r, char *name, size_t len,
    ngx_str_t *value)
{
    u_char  *p, *last;

    if (ngx_http_arg(r, (u_char *) name, len, value) != NGX_OK) {
        return NGX_DECLINED;
    }

    /* a second one after it: ambiguous */

    last = r->args.data + r->args.len;

    for (p = value->data + value->len; p + len + 1 < last; p++) {
        if (*p == '&' && ngx_strncasecmp(p + 1, (u_char *) name, len) == 0
            && p[len + 1] == '=')
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* ---- variables ----------------------------------------------------------- */

static ngx_int_t
ngx_http_storefront_ads_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                         *p;
    ngx_http_storefront_ctx_t      *ctx;
    ngx_http_storefront_ads_ctx_t  *actx;

    if (ngx_http_storefront_variable_ctx(r, &ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    actx = ngx_http_storefront_ads_get_ctx(r, 0);

    if (actx == NULL) {
        /* a decision without slots: no ads */
        v->len = (data == NGX_HTTP_STOREFRONT_ADS_VAR_ADS) ? 0 : 1;
        v->data = (u_char *) "0";

    } else if (data == NGX_HTTP_STOREFRONT_ADS_VAR_ADS) {
        v->len = actx->header.len;
        v->data = actx->header.data;

    } else {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->len = ngx_sprintf(p, "%ui", actx->nads) - p;
        v->data = p;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* $storefront_ad_<N>: "campaign/creative"; $storefront_ad_click_<N> */

static ngx_int_t
ngx_http_storefront_ads_n_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *name = (ngx_str_t *) data;

    u_char                         *p;
    size_t                          skip;
    ngx_int_t                       n;
    ngx_http_storefront_ad_t       *ad;
    ngx_http_storefront_ctx_t      *ctx;
    ngx_http_storefront_ads_ctx_t  *actx;

    skip = sizeof("storefront_ad_") - 1;

    if (name->len > sizeof("storefront_ad_click_") - 1
        && ngx_strncmp(name->data, "storefront_ad_click_",
                       sizeof("storefront_ad_click_") - 1) == 0)
    {
        skip = sizeof("storefront_ad_click_") - 1;
    }

    n = ngx_atoi(name->data + skip, name->len - skip);

    if (ngx_http_storefront_variable_ctx(r, &ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    actx = ctx ? ngx_http_storefront_ads_get_ctx(r, 0) : NULL;

    if (actx == NULL || n < 1 || (ngx_uint_t) n > actx->nads) {
        v->not_found = 1;
        return NGX_OK;
    }

    ad = &actx->ads[n - 1];

    if (skip == sizeof("storefront_ad_click_") - 1) {
        if (ngx_http_storefront_ads_links(r, actx, ad) != NGX_OK) {
            return NGX_ERROR;
        }

        v->len = ad->click.len;
        v->data = ad->click.data;

    } else {
        p = ngx_pnalloc(r->pool, ad->campaign.len + 1 + ad->creative.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%V/%V", &ad->campaign, &ad->creative) - p;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* ---- configuration ------------------------------------------------------- */

/* storefront_ad_zone <name> <size> [flush=<time>] [sync]; */

static char *
ngx_http_storefront_ads_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_storefront_ads_main_conf_t *amcf = conf;

    ssize_t                          size;
    ngx_str_t                       *value, s;
    ngx_int_t                        flush;
    ngx_uint_t                       i;
    ngx_http_storefront_ads_zone_t  *zone;

    if (amcf->zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone name \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small", &value[1]);
        return NGX_CONF_ERROR;
    }

    flush = NGX_HTTP_STOREFRONT_ADS_FLUSH;

    zone = ngx_http_storefront_ads_zone_add(cf, &value[1], size);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 3; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "flush=", 6) == 0) {

            s.len = value[i].len - 6;
            s.data = value[i].data + 6;

            flush = ngx_parse_time(&s, 0);

            if (flush == NGX_ERROR || flush < 10 || flush > 3600000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid flush \"%V\" in \"%V\" "
                                   "directive, it must be 10ms to 1h",
                                   &s, &cmd->name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "sync") == 0) {
            zone->sync = 1;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\" directive",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    zone->flush = (ngx_msec_t) flush;

    amcf->zone = zone;

    return NGX_CONF_OK;
}


static ngx_http_storefront_ads_zone_t *
ngx_http_storefront_ads_zone_add(ngx_conf_t *cf, ngx_str_t *name,
    size_t size)
{
    ngx_shm_zone_t                  *shm_zone;
    ngx_http_storefront_ads_zone_t  *zone;

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_storefront_ads_zone_t));
    if (zone == NULL) {
        return NULL;
    }

    shm_zone = ngx_shared_memory_add(cf, name, size,
                                     &ngx_http_storefront_ads_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", name);
        return NULL;
    }

    shm_zone->init = ngx_http_storefront_ads_init_zone;
    shm_zone->data = zone;

    zone->shm_zone = shm_zone;
    zone->flush = NGX_HTTP_STOREFRONT_ADS_FLUSH;

    return zone;
}


/* storefront_ad_slots off | [page=<type>] <slot>...; */

static char *
ngx_http_storefront_ads_slots(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_storefront_ads_loc_conf_t *alcf = conf;

    ngx_str_t                         *value, *slot, page;
    ngx_uint_t                         i;
    ngx_http_compile_complex_value_t   ccv;

    if (alcf->slots) {
        return "is duplicate";
    }

    value = cf->args->elts;

    alcf->slots = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
    if (alcf->slots == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "page=", 5) == 0) {

            if (alcf->page) {
                return "has a duplicate \"page\" parameter";
            }

            page.len = value[i].len - 5;
            page.data = value[i].data + 5;

            if (page.len == 0) {
                goto invalid;
            }

            alcf->page = ngx_palloc(cf->pool,
                                    sizeof(ngx_http_complex_value_t));
            if (alcf->page == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

            ccv.cf = cf;
            ccv.value = &page;
            ccv.complex_value = alcf->page;

            if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            if (alcf->page->lengths == NULL
                && !ngx_http_storefront_ads_name(page.data, page.len))
            {
                goto invalid;
            }

            continue;
        }

        if (!ngx_http_storefront_ads_name(value[i].data, value[i].len)) {
            goto invalid;
        }

        if (alcf->slots->nelts >= NGX_HTTP_STOREFRONT_ADS_MAX_POSITIONS) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "too many slots in \"%V\" directive, "
                               "the maximum is %d", &cmd->name,
                               NGX_HTTP_STOREFRONT_ADS_MAX_POSITIONS);
            return NGX_CONF_ERROR;
        }

        slot = ngx_array_push(alcf->slots);
        if (slot == NULL) {
            return NGX_CONF_ERROR;
        }

        *slot = value[i];
    }

    if (alcf->slots->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no slots in \"%V\" directive", &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\" directive",
                       &value[i], &cmd->name);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_storefront_ads_click_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_storefront_ads_loc_conf_t *alcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (alcf->click_key.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len < NGX_HTTP_STOREFRONT_TOKEN_MIN
        || value[1].len > NGX_HTTP_STOREFRONT_TOKEN_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the key in \"%V\" directive must be %d to %d "
                           "characters", &cmd->name,
                           NGX_HTTP_STOREFRONT_TOKEN_MIN,
                           NGX_HTTP_STOREFRONT_TOKEN_MAX);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] <= ' ' || value[1].data[i] == 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid key in \"%V\" directive",
                               &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    alcf->click_key = value[1];

    return NGX_CONF_OK;
}


static char *
ngx_http_storefront_ads_click_path(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_storefront_ads_loc_conf_t *alcf = conf;

    u_char      c;
    ngx_str_t  *value;
    ngx_uint_t  i;

    if (alcf->click_path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/' || value[1].len > 1024) {
        goto invalid;
    }

    for (i = 0; i < value[1].len; i++) {
        c = value[1].data[i];

        if (c <= ' ' || c >= 0x7f || c == '?' || c == '#' || c == '"'
            || c == '<' || c == '>' || c == '\\')
        {
            goto invalid;
        }
    }

    alcf->click_path = value[1];

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid path \"%V\" in \"%V\" directive",
                       &value[1], &cmd->name);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_storefront_ads_click(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_storefront_ads_loc_conf_t *alcf = conf;

    ngx_http_core_loc_conf_t        *clcf;
    ngx_http_storefront_loc_conf_t  *slcf;

    if (alcf->click) {
        return "is duplicate";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_storefront_ads_click_handler;

    /* a click is not a storefront page: no decision, no cookie */

    slcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_storefront_module);

    if (slcf->enable == NGX_CONF_UNSET) {
        slcf->enable = 0;
    }

    alcf->click = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_storefront_ads_preconfiguration(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_storefront_ads_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_storefront_ads_init(ngx_conf_t *cf)
{
    ngx_str_t                             name;
    ngx_http_handler_pt                  *h;
    ngx_http_core_main_conf_t            *cmcf;
    ngx_http_storefront_main_conf_t      *smcf;
    ngx_http_storefront_ads_main_conf_t  *amcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_storefront_module);
    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_storefront_ads_module);

    if (!smcf->enabled) {
        return NGX_OK;
    }

    if (amcf->zone == NULL) {
        ngx_str_set(&name, NGX_HTTP_STOREFRONT_ADS_ZONE_NAME);

        amcf->zone = ngx_http_storefront_ads_zone_add(cf, &name,
                                          NGX_HTTP_STOREFRONT_ADS_ZONE_SIZE);
        if (amcf->zone == NULL) {
            return NGX_ERROR;
        }
    }

    /* the ads are decided after the page layout: see config */

    ngx_http_storefront_ads_next_decision = ngx_http_storefront_top_decision;
    ngx_http_storefront_top_decision = ngx_http_storefront_ads_decision;

    ngx_http_storefront_ads_next_needs_facts =
                                       ngx_http_storefront_top_needs_facts;
    ngx_http_storefront_top_needs_facts = ngx_http_storefront_ads_needs_facts;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_storefront_ads_header_handler;

    return NGX_OK;
}


static void *
ngx_http_storefront_ads_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_storefront_ads_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_storefront_ads_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     amcf->zone = NULL;
     */

    return amcf;
}


static void *
ngx_http_storefront_ads_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_storefront_ads_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_storefront_ads_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->slots = NULL;
     *     conf->page = NULL;
     *     conf->click_key = { 0, NULL };
     *     conf->click_path = { 0, NULL };
     *     conf->click = 0;
     */

    conf->max_slots = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_storefront_ads_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_storefront_ads_loc_conf_t *prev = parent;
    ngx_http_storefront_ads_loc_conf_t *conf = child;

    ngx_http_storefront_main_conf_t  *smcf;

    if (conf->slots == NULL) {
        conf->slots = prev->slots;
        conf->page = prev->page;
    }

    ngx_conf_merge_uint_value(conf->max_slots, prev->max_slots,
                              SF_ADS_DEFAULT_SLOTS);
    ngx_conf_merge_str_value(conf->click_key, prev->click_key, "");
    ngx_conf_merge_str_value(conf->click_path, prev->click_path,
                             "/ad/click");

    if (conf->click && conf->click_key.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"storefront_ad_click\" requires "
                           "\"storefront_ad_click_key\"");
        return NGX_CONF_ERROR;
    }

    if (conf->slots && conf->slots->nelts && conf->click_key.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"storefront_ad_slots\" requires "
                           "\"storefront_ad_click_key\" to sign the "
                           "click links");
        return NGX_CONF_ERROR;
    }

    if (conf->click) {
        smcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_storefront_module);

        if (smcf->db_path.data == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "no \"storefront_db\" is defined "
                               "for \"storefront_ad_click\"");
            return NGX_CONF_ERROR;
        }

        /* the workers open the database */
        smcf->enabled = 1;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_storefront_ads_init_process(ngx_cycle_t *cycle)
{
    ngx_http_storefront_main_conf_t      *smcf;
    ngx_http_storefront_ads_worker_t     *w;
    ngx_http_storefront_ads_main_conf_t  *amcf;

    w = &ngx_http_storefront_ads_worker;

    ngx_memzero(w, sizeof(ngx_http_storefront_ads_worker_t));

    sf_buf_init(&w->state);
    sf_buf_init(&w->next);
    sf_buf_init(&w->flush);

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_storefront_module);
    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_storefront_ads_module);

    if (smcf == NULL || amcf == NULL || !smcf->enabled || amcf->zone == NULL
        || smcf->db_path.data == NULL)
    {
        return NGX_OK;
    }

    w->items = ngx_array_create(cycle->pool, 256,
                                sizeof(ngx_http_storefront_ads_flush_item_t));
    if (w->items == NULL) {
        return NGX_ERROR;
    }

    w->sigs = ngx_pcalloc(cycle->pool, NGX_HTTP_STOREFRONT_ADS_SIGS
                                       * sizeof(ngx_http_storefront_ads_sig_t));
    if (w->sigs == NULL) {
        return NGX_ERROR;
    }

    w->zone = amcf->zone;

    w->flush_event.handler = ngx_http_storefront_ads_flush_handler;
    w->flush_event.log = cycle->log;
    w->flush_event.data = w;
    w->flush_event.cancelable = 1;

    w->tick = ngx_max(w->zone->flush / NGX_HTTP_STOREFRONT_ADS_TICKS, 10);
    w->counted = ngx_current_msec;

    ngx_add_timer(&w->flush_event, w->tick);

    return NGX_OK;
}


/*
 * The last write.  The storefront module's exit handler runs first and
 * closes the worker's environment: then it is opened here once more.
 */

static void
ngx_http_storefront_ads_exit_process(ngx_cycle_t *cycle)
{
    sf_db                             *db;
    sf_error                           err;
    ngx_uint_t                         own;
    ngx_http_storefront_main_conf_t   *smcf;
    ngx_http_storefront_ads_worker_t  *w;

    w = &ngx_http_storefront_ads_worker;

    if (w->zone && (w->pending || w->zone->sh->ndirty)) {

        own = 0;
        db = ngx_http_storefront_worker_db(cycle->log);

        if (db == NULL) {
            smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                                 ngx_http_storefront_module);

            err.code = 0;
            err.msg[0] = '\0';

            if (sf_db_open(&db, (const char *) smcf->db_path.data,
                           smcf->map_size, 0, &err)
                != SF_OK)
            {
                ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                              "storefront ads: impressions not written, "
                              "lost: %s", err.msg);
                db = NULL;
            }

            own = 1;
        }

        if (db) {
            ngx_http_storefront_ads_flush(cycle->log, db,
                                          NGX_HTTP_STOREFRONT_ADS_FLUSH_FINAL);

            if (own) {
                sf_db_close(db);
            }
        }
    }

    if (w->snapshot && w->db == ngx_http_storefront_worker_db(cycle->log)) {
        sf_snapshot_free(w->snapshot);
    }

    w->snapshot = NULL;
    w->zone = NULL;

    sf_buf_free(&w->state);
    sf_buf_free(&w->next);
    sf_buf_free(&w->flush);
}
