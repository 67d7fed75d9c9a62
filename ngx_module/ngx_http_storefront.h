
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

#define NGX_HTTP_STOREFRONT_HDR_USER_ID    0
#define NGX_HTTP_STOREFRONT_HDR_MINTED     1
#define NGX_HTTP_STOREFRONT_HDR_VARIANTS   2
#define NGX_HTTP_STOREFRONT_HDR_STATUS     3
#define NGX_HTTP_STOREFRONT_NHEADERS       4

#define NGX_HTTP_STOREFRONT_SAMESITE_STRICT  1
#define NGX_HTTP_STOREFRONT_SAMESITE_LAX     2
#define NGX_HTTP_STOREFRONT_SAMESITE_NONE    3


typedef struct {
    ngx_str_t                       db_path;     /* null-terminated */
    size_t                          map_size;
    ngx_int_t                       max_experiments;
    ngx_flag_t                      enabled;     /* "storefront on" anywhere */
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
    ngx_str_t                       header_prefix;
    ngx_table_elt_t                *headers;     /* name templates */
} ngx_http_storefront_loc_conf_t;


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

    u_char                          anon_buf[NGX_HTTP_STOREFRONT_ID_LEN];

    unsigned                        busy:1;
    unsigned                        logged_in:1;
    unsigned                        minted:1;
    unsigned                        available:1;
    unsigned                        injected:1;
    unsigned                        cookie_sent:1;
} ngx_http_storefront_ctx_t;


ngx_http_storefront_ctx_t *ngx_http_storefront_get_ctx(ngx_http_request_t *r);
ngx_http_storefront_ctx_t *ngx_http_storefront_decide(ngx_http_request_t *r);
ngx_int_t ngx_http_storefront_init_worker(ngx_cycle_t *cycle);
void ngx_http_storefront_exit_worker(ngx_cycle_t *cycle);

ngx_int_t ngx_http_storefront_identify(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx);
ngx_int_t ngx_http_storefront_id_init(ngx_conf_t *cf);
void ngx_http_storefront_random_reset(void);

ngx_table_elt_t *ngx_http_storefront_init_headers(ngx_conf_t *cf,
    ngx_str_t *prefix);
ngx_int_t ngx_http_storefront_set_headers(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx);

ngx_int_t ngx_http_storefront_add_variables(ngx_conf_t *cf);


extern ngx_module_t  ngx_http_storefront_module;


#endif /* _NGX_HTTP_STOREFRONT_H_INCLUDED_ */
