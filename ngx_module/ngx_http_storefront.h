
/*
 * storefront: decisions at the edge from an LMDB environment.
 * Declarations shared by the files of ngx_http_storefront_module.
 */


#ifndef _NGX_HTTP_STOREFRONT_H_INCLUDED_
#define _NGX_HTTP_STOREFRONT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "storefront.h"


#define NGX_HTTP_STOREFRONT_ID_LEN         32     /* 128 bits in hex */
#define NGX_HTTP_STOREFRONT_USER_ID_MAX    256
#define NGX_HTTP_STOREFRONT_VARIANTS_MAX   4096
#define NGX_HTTP_STOREFRONT_PREFIX_MAX     64
#define NGX_HTTP_STOREFRONT_ATTR_NAME_MAX  64
#define NGX_HTTP_STOREFRONT_ATTR_VALUE_MAX 1024   /* Attr-* header values */
#define NGX_HTTP_STOREFRONT_ATTRS_MAX      32     /* profile attributes out */
#define NGX_HTTP_STOREFRONT_TOKEN_MIN      16
#define NGX_HTTP_STOREFRONT_TOKEN_MAX      512
#define NGX_HTTP_STOREFRONT_EVENTS_MAX     10000  /* events per admin POST */
#define NGX_HTTP_STOREFRONT_UNPROCESSABLE  422

#define NGX_HTTP_STOREFRONT_HDR_USER_ID    0
#define NGX_HTTP_STOREFRONT_HDR_MINTED     1
#define NGX_HTTP_STOREFRONT_HDR_VARIANTS   2
#define NGX_HTTP_STOREFRONT_HDR_STATUS     3
#define NGX_HTTP_STOREFRONT_NHEADERS       4

#define NGX_HTTP_STOREFRONT_SAMESITE_STRICT  1
#define NGX_HTTP_STOREFRONT_SAMESITE_LAX     2
#define NGX_HTTP_STOREFRONT_SAMESITE_NONE    3

#define NGX_HTTP_STOREFRONT_CACHE_OFF     0
#define NGX_HTTP_STOREFRONT_CACHE_MISS    1
#define NGX_HTTP_STOREFRONT_CACHE_HIT     2


typedef struct {
    ngx_str_t                       db_path;     /* null-terminated */
    size_t                          map_size;
    ngx_int_t                       max_experiments;
    ngx_uint_t                      cache_max;   /* 0: no decision cache */
    time_t                          cache_valid;
    ngx_flag_t                      enabled;     /* the database is used:
                                                    "storefront on" or
                                                    "storefront_admin"
                                                    anywhere */
} ngx_http_storefront_main_conf_t;


typedef struct {
    ngx_str_t                       name;
    ngx_str_t                       attrs;       /* "; Max-Age=...; ..." */
} ngx_http_storefront_cookie_t;


typedef struct {
    ngx_str_t                       name;
    ngx_http_complex_value_t        value;
} ngx_http_storefront_attr_t;


typedef struct {
    ngx_flag_t                      enable;
    ngx_flag_t                      qa_override;
    ngx_http_complex_value_t       *user_id;
    ngx_http_storefront_cookie_t   *cookie;
    ngx_array_t                    *attributes;  /* of attr_t */
    ngx_uint_t                      url_attribute; /* "url" built in */
    ngx_str_t                       header_prefix;
    ngx_table_elt_t                *headers;     /* name templates */
    ngx_table_elt_t                *profile_headers;
    ngx_array_t                    *profile_attributes;  /* of ngx_str_t,
                                                            empty: "off" */
    ngx_table_elt_t                *attr_headers;  /* one per attribute */
    ngx_flag_t                      admin;
    ngx_str_t                       admin_token;
} ngx_http_storefront_loc_conf_t;


/*
 * Who the visitor is, copied into r->pool from the snapshot: segment,
 * RFM code, lifecycle, tier, tier benefits (compact JSON), points, and the
 * values of the attributes named by storefront_profile_attributes (as
 * header-safe text; a value that is absent, null, too long or holds
 * control characters has value.data == NULL).
 */

typedef struct {
    ngx_str_t                       segment;
    ngx_str_t                       rfm;
    ngx_str_t                       lifecycle;
    ngx_str_t                       tier;
    ngx_str_t                       tier_benefits;
    ngx_str_t                       points;
    ngx_keyval_t                   *attrs;
    ngx_uint_t                      nattrs;
    int32_t                         tz_offset_min;  /* with has_tz */
    unsigned                        found:1;     /* the visitor has one */
    unsigned                        has_tz:1;
} ngx_http_storefront_profile_t;


/*
 * The decision of one request.  It is made once and shared by the
 * request's internal redirects and subrequests: it lives in r->pool and
 * is found again through a pool cleanup marker when r->ctx was cleared.
 */

typedef struct {
    ngx_str_t                       user_id;     /* logged-in or anonymous */
    ngx_str_t                       anon_id;
    ngx_str_t                       variants;    /* "key=variation;..." */
    ngx_keyval_t                   *assigned;    /* in-experiment results */
    ngx_uint_t                      nassigned;
    ngx_http_storefront_cookie_t   *cookie;      /* cookie to set if minted */
    ngx_http_storefront_profile_t  *profile;     /* NULL: unavailable */

    u_char                          anon_buf[NGX_HTTP_STOREFRONT_ID_LEN];

    unsigned                        busy:1;
    unsigned                        logged_in:1;
    unsigned                        minted:1;
    unsigned                        available:1;
    unsigned                        injected:1;
    unsigned                        cookie_sent:1;
    unsigned                        cache:2;     /* NGX_HTTP_STOREFRONT_CACHE_* */
} ngx_http_storefront_ctx_t;


/*
 * The decision chain.  Features built on the decision (page layouts, ads,
 * exposure counting) chain themselves in postconfiguration, as nginx's
 * filters do:
 *
 *     next_decision = ngx_http_storefront_top_decision;
 *     ngx_http_storefront_top_decision = my_decision;
 *
 * and call next_decision when done.  They run once per request, after the
 * experiments, while the snapshot is held: facts point into it and into
 * the worker's memory, so anything kept must be copied into r->pool.
 */

typedef struct {
    sf_snapshot                    *snapshot;
    const sf_value                 *attributes;  /* profile, computed
                                                    values, request's own */
    const sf_assignment            *assignments;
    size_t                          nassignments;
    uint32_t                       *counters;    /* see below */
    int64_t                         now;
} ngx_http_storefront_facts_t;

/*
 * counters[i] is kept with a cached decision for assignment i: exposure
 * counting stores there the index of the (experiment, variation) counter,
 * so that a cached decision is counted without a lookup.  A fresh
 * decision to be cached starts with NGX_HTTP_STOREFRONT_NO_COUNTER
 * everywhere; counters is NULL when the decision is not kept.
 */
#define NGX_HTTP_STOREFRONT_NO_COUNTER  ((uint32_t) -1)

typedef ngx_int_t (*ngx_http_storefront_decision_pt)(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_facts_t *facts);

extern ngx_http_storefront_decision_pt  ngx_http_storefront_top_decision;

ngx_int_t ngx_http_storefront_last_decision(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_facts_t *facts);

/*
 * The decision cache (ngx_http_storefront_cache.c).  On a hit the
 * decision chain runs with the assignments the visitor is in and
 * facts->snapshot and facts->attributes NULL, unless a feature that
 * decides from the data itself on every request (ad slots, page layouts)
 * says so in the needs-facts chain, chained as the decision chain:
 *
 *     next_needs_facts = ngx_http_storefront_top_needs_facts;
 *     ngx_http_storefront_top_needs_facts = my_needs_facts;
 *
 * returning 1, or else what next_needs_facts returns.  Such a hit holds
 * a snapshot and the attributes as of now: the profile looked up again,
 * the request's URL.
 */

typedef ngx_uint_t (*ngx_http_storefront_needs_facts_pt)(
    ngx_http_request_t *r);

extern ngx_http_storefront_needs_facts_pt
    ngx_http_storefront_top_needs_facts;

ngx_uint_t ngx_http_storefront_last_needs_facts(ngx_http_request_t *r);
ngx_int_t ngx_http_storefront_cache_init(ngx_cycle_t *cycle,
    ngx_http_storefront_main_conf_t *smcf);
void ngx_http_storefront_cache_free(void);
void ngx_http_storefront_cache_reset(void);
ngx_int_t ngx_http_storefront_cache_fetch(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx,
    const sf_value *attrs, ngx_http_storefront_facts_t *facts);
void ngx_http_storefront_cache_store(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_facts_t *facts,
    uint64_t generation);
char *ngx_http_storefront_cache_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


ngx_http_storefront_ctx_t *ngx_http_storefront_get_ctx(ngx_http_request_t *r);
ngx_http_storefront_ctx_t *ngx_http_storefront_decide(ngx_http_request_t *r);
ngx_int_t ngx_http_storefront_init_worker(ngx_cycle_t *cycle);
void ngx_http_storefront_exit_worker(ngx_cycle_t *cycle);

/*
 * The worker's engine state, for handlers and timers that need the
 * database (failures go to the log given).
 *
 * ngx_http_storefront_worker_db() returns the worker's environment, opened
 * when needed (at most one attempt a second), or NULL when it is
 * unavailable (logged once).  ngx_http_storefront_snapshot_acquire()
 * returns the worker's read snapshot renewed, or NULL; the caller copies
 * what it needs into r->pool and calls ngx_http_storefront_snapshot_release()
 * before returning to the event loop: a reader is never held across a
 * yield.  ngx_http_storefront_scratch() is a worker buffer for engine
 * output (emptied on each call, valid until the next call).
 */
sf_db *ngx_http_storefront_worker_db(ngx_log_t *log);
sf_snapshot *ngx_http_storefront_snapshot_acquire(ngx_log_t *log);
void ngx_http_storefront_snapshot_release(void);
sf_buf *ngx_http_storefront_scratch(void);
void *ngx_http_storefront_palloc(void *pool, size_t size);

ngx_int_t ngx_http_storefront_identify(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx);
ngx_int_t ngx_http_storefront_id_init(ngx_conf_t *cf);
void ngx_http_storefront_random_reset(void);

ngx_table_elt_t *ngx_http_storefront_init_headers(ngx_conf_t *cf,
    ngx_str_t *prefix);
ngx_int_t ngx_http_storefront_header_name(ngx_conf_t *cf, ngx_str_t *prefix,
    ngx_str_t *name, ngx_table_elt_t *h);
ngx_int_t ngx_http_storefront_set_headers(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx);

ngx_int_t ngx_http_storefront_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_storefront_variable_ctx(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t **ctxp);

/* profiles: ngx_http_storefront_profile.c */
char *ngx_http_storefront_profile_attributes(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_storefront_profile_merge(ngx_conf_t *cf,
    ngx_http_storefront_loc_conf_t *prev,
    ngx_http_storefront_loc_conf_t *conf, ngx_uint_t prefix_inherited);
ngx_int_t ngx_http_storefront_profile_lookup(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx,
    sf_snapshot *snapshot, const sf_value *request_attributes,
    sf_value *attributes);
ngx_int_t ngx_http_storefront_profile_targeting(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, sf_snapshot *snapshot,
    const sf_value *request_attributes, sf_value *attributes);
ngx_int_t ngx_http_storefront_profile_headers(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx);
ngx_int_t ngx_http_storefront_add_profile_variables(ngx_conf_t *cf);
ngx_uint_t ngx_http_storefront_header_safe(u_char *p, size_t len);

/* the admin endpoint: ngx_http_storefront_admin.c */
char *ngx_http_storefront_admin(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_storefront_admin_token(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/*
 * Helpers for the module's HTTP endpoints: ngx_http_storefront_api.c.
 *
 * ngx_http_storefront_request_body() gives the request body read by
 * ngx_http_read_client_request_body() as one contiguous buffer, from
 * memory buffers or the temporary file (NUL-terminated, not counted).
 * ngx_http_storefront_send_json() sends a complete response with
 * Content-Type application/json and Cache-Control no-store; the data must
 * live until the request ends (r->pool).  ngx_http_storefront_send_error()
 * sends {"error":"<message>"} (nginx's ngx_sprintf formats).
 * ngx_http_storefront_bearer() checks "Authorization: Bearer <token>" in
 * constant time and returns NGX_OK, NGX_DECLINED (no such header),
 * NGX_ERROR (wrong token) or NGX_ABORT (no token configured).
 * ngx_http_storefront_send_unauthorized() answers such a result: 401 with
 * WWW-Authenticate (a wrong token is logged, naming the endpoint), 403
 * without a token; ngx_http_storefront_send_not_allowed() 405 with Allow;
 * both discard the request body.  ngx_http_storefront_route() is the
 * last segment of the URI, the route of an endpoint's location.  Handlers return what the
 * send functions return, or pass it to ngx_http_finalize_request().
 */
ngx_int_t ngx_http_storefront_request_body(ngx_http_request_t *r,
    ngx_str_t *body);
ngx_int_t ngx_http_storefront_send_json(ngx_http_request_t *r,
    ngx_uint_t status, u_char *data, size_t len);
ngx_int_t ngx_http_storefront_send_buf(ngx_http_request_t *r,
    ngx_uint_t status, sf_buf *b);
ngx_int_t ngx_http_storefront_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *fmt, ...);
ngx_int_t ngx_http_storefront_bearer(ngx_http_request_t *r,
    ngx_str_t *token);
ngx_int_t ngx_http_storefront_send_unauthorized(ngx_http_request_t *r,
    ngx_int_t rc, const char *endpoint);
ngx_int_t ngx_http_storefront_send_not_allowed(ngx_http_request_t *r,
    char *allow);
void ngx_http_storefront_route(ngx_http_request_t *r, ngx_str_t *route);
/*
 * 64-bit hashes for the module's own tables (seen exposures, counters,
 * the decision cache), never for bucketing: ngx_http_storefront_api.c.
 */
#define NGX_HTTP_STOREFRONT_K1  0x9e3779b97f4a7c15ULL
#define NGX_HTTP_STOREFRONT_K2  0xc2b2ae3d27d4eb4fULL

uint64_t ngx_http_storefront_hash(uint64_t seed, const u_char *p, size_t len);
uint64_t ngx_http_storefront_mix(uint64_t h);

/* A bearer token directive's value: 16..512 RFC 6750 b64token characters. */
char *ngx_http_storefront_conf_token(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *token);


extern ngx_module_t  ngx_http_storefront_module;


#endif /* _NGX_HTTP_STOREFRONT_H_INCLUDED_ */
