
/*
 * storefront: ad slots.  The API other parts of the module use: the page
 * module tells which ad positions its layout has, and asks which ad fills
 * each position when it assembles the page.
 */


#ifndef _NGX_HTTP_STOREFRONT_ADS_H_INCLUDED_
#define _NGX_HTTP_STOREFRONT_ADS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_storefront.h"


#define NGX_HTTP_STOREFRONT_ADS_MAX_POSITIONS  32


/*
 * One ad on the page, copied into r->pool.  "click" is the signed click
 * link (path and query; empty without storefront_ad_click_key); "args"
 * holds the same facts as query arguments for an ad fragment:
 *
 *   ad_slot=banner&ad_campaign=nike-run&ad_creative=cr1&ad_advertiser=nike
 *   &ad_format=banner&ad_skippable=1&ad_click=%2Fad%2Fclick%3Fc%3D...
 *
 * (every value is a name of letters, digits, "-", "_", "." or escaped).
 */

typedef struct {
    ngx_str_t                       slot;
    ngx_str_t                       campaign;
    ngx_str_t                       creative;
    ngx_str_t                       advertiser;
    ngx_str_t                       format;
    ngx_str_t                       click;
    ngx_str_t                       args;
    ngx_uint_t                      position;    /* the ad position filled,
                                                    from 0 */
    unsigned                        skippable:1;
    unsigned                        linked:1;    /* click and args made */
} ngx_http_storefront_ad_t;


/*
 * Called by the page module from its decision (the decision chain runs
 * the page decision before the ads decision): the page type and the slot
 * types of the layout's ad modules, in page order (position 0, 1, ...).
 * They replace storefront_ad_slots of the location for this request.
 * Strings are copied.  NGX_ERROR only when out of memory.
 */
ngx_int_t ngx_http_storefront_ads_set_slots(ngx_http_request_t *r,
    ngx_str_t *page, ngx_str_t *slots, ngx_uint_t n);

/*
 * The ad that fills an ad position (0-based, in the order given to
 * ngx_http_storefront_ads_set_slots or storefront_ad_slots), or NULL when
 * the position stays empty (slot limit, nothing eligible, no decision).
 */
ngx_http_storefront_ad_t *ngx_http_storefront_ads_fill(ngx_http_request_t *r,
    ngx_uint_t position);

/* Every ad of the request in page order, *n of them; NULL when none. */
ngx_http_storefront_ad_t *ngx_http_storefront_ads_all(ngx_http_request_t *r,
    ngx_uint_t *n);


extern ngx_module_t  ngx_http_storefront_ads_module;


#endif /* _NGX_HTTP_STOREFRONT_ADS_H_INCLUDED_ */
