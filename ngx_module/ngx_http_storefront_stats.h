
/*
 * storefront: experiment results, exposure counting, conversions, metrics
 * and the status page (ngx_http_storefront_stats_module).
 */


#ifndef _NGX_HTTP_STOREFRONT_STATS_H_INCLUDED_
#define _NGX_HTTP_STOREFRONT_STATS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "storefront.h"


/*
 * Counts the visitor's exposures: the assignments made by hashing
 * (GrowthBook's tracked results) are appended to the worker's buffer,
 * written by the flush timer in one write transaction; a pair (user,
 * experiment) seen recently costs a hash lookup.  Every in-experiment
 * assignment also counts as a decision in shared memory.  Strings are
 * copied: the assignments may point into the snapshot.  counters (may be
 * NULL) get each counted decision's counter index; with counted set (a
 * decision from the decision cache, its exposures buffered when it was
 * made) only the decisions are counted, by those indexes when known.
 */
void ngx_http_storefront_stats_expose(ngx_http_request_t *r,
    const char *user, size_t user_len, const sf_assignment *a, size_t n,
    uint32_t *counters, ngx_uint_t counted);

/*
 * The admin endpoint's experiment routes, called after the token check:
 *
 *     GET  .../experiments            every experiment's results
 *     GET  .../experiments/<key>      one experiment's results
 *     POST .../experiments/<key>      {"active": bool} | {"coverage": x} |
 *                                     {"weights": [...]}
 *
 * Returns NGX_DECLINED when the URI is not one of them.
 */
ngx_int_t ngx_http_storefront_stats_admin(ngx_http_request_t *r);


extern ngx_module_t  ngx_http_storefront_stats_module;


#endif /* _NGX_HTTP_STOREFRONT_STATS_H_INCLUDED_ */
