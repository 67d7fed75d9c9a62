
/*
 * storefront: the request headers for the upstream.
 *
 * The upstream trusts every header with the prefix, so any such header
 * sent by the client is removed first.  In the comparison '-' and '_'
 * are the same character: CGI-like upstreams map both to '_'.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_storefront.h"


static ngx_int_t ngx_http_storefront_strip(ngx_http_request_t *r,
    ngx_str_t *prefix, ngx_uint_t rebuild);
static ngx_uint_t ngx_http_storefront_has_prefix(ngx_str_t *name,
    ngx_str_t *prefix);


/* in the order of NGX_HTTP_STOREFRONT_HDR_* */

static ngx_str_t  ngx_http_storefront_header_names[] = {
    ngx_string("User-Id"),
    ngx_string("Id-Minted"),
    ngx_string("Variants"),
    ngx_string("Status")
};


ngx_table_elt_t *
ngx_http_storefront_init_headers(ngx_conf_t *cf, ngx_str_t *prefix)
{
    ngx_str_t        *name;
    ngx_uint_t        i;
    ngx_table_elt_t  *headers;

    headers = ngx_pcalloc(cf->pool,
                          NGX_HTTP_STOREFRONT_NHEADERS
                          * sizeof(ngx_table_elt_t));
    if (headers == NULL) {
        return NULL;
    }

    for (i = 0; i < NGX_HTTP_STOREFRONT_NHEADERS; i++) {
        name = &ngx_http_storefront_header_names[i];

        if (ngx_http_storefront_header_name(cf, prefix, name, &headers[i])
            != NGX_OK)
        {
            return NULL;
        }
    }

    return headers;
}


/* a header template: prefix + name, its lowercase form and hash */

ngx_int_t
ngx_http_storefront_header_name(ngx_conf_t *cf, ngx_str_t *prefix,
    ngx_str_t *name, ngx_table_elt_t *h)
{
    size_t   len;
    u_char  *p;

    len = prefix->len + name->len;

    p = ngx_pnalloc(cf->pool, 2 * len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h->key.len = len;
    h->key.data = p;

    p = ngx_cpymem(p, prefix->data, prefix->len);
    p = ngx_cpymem(p, name->data, name->len);

    h->lowcase_key = p;
    h->hash = ngx_hash_strlow(h->lowcase_key, h->key.data, len);

    return NGX_OK;
}


ngx_int_t
ngx_http_storefront_set_headers(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx)
{
    ngx_str_t         values[NGX_HTTP_STOREFRONT_NHEADERS];
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    if (r == r->main && ctx->injected) {
        return NGX_OK;
    }

    /*
     * A subrequest's header list is a shallow copy of its parent's:
     * pushing to it would write into the parent's list, so a subrequest
     * always gets a list of its own.
     */

    if (ngx_http_storefront_strip(r, &slcf->header_prefix, r != r->main)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    values[NGX_HTTP_STOREFRONT_HDR_USER_ID] = ctx->user_id;

    if (ctx->minted) {
        ngx_str_set(&values[NGX_HTTP_STOREFRONT_HDR_MINTED], "1");

    } else {
        ngx_str_set(&values[NGX_HTTP_STOREFRONT_HDR_MINTED], "0");
    }

    values[NGX_HTTP_STOREFRONT_HDR_VARIANTS] = ctx->variants;

    if (ctx->available) {
        ngx_str_set(&values[NGX_HTTP_STOREFRONT_HDR_STATUS], "ok");

    } else {
        ngx_str_set(&values[NGX_HTTP_STOREFRONT_HDR_STATUS], "unavailable");
    }

    for (i = 0; i < NGX_HTTP_STOREFRONT_NHEADERS; i++) {
        h = ngx_list_push(&r->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = slcf->headers[i];
        h->value = values[i];

#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
    }

    if (ngx_http_storefront_profile_headers(r, slcf, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (r == r->main) {
        ctx->injected = 1;
    }

    return NGX_OK;
}


/*
 * Removes the headers with the prefix.  The list is rebuilt, only when
 * one is found or when asked to: the old elements stay in place, so the
 * pointers to them in r->headers_in remain valid.
 */

static ngx_int_t
ngx_http_storefront_strip(ngx_http_request_t *r, ngx_str_t *prefix,
    ngx_uint_t rebuild)
{
    ngx_uint_t        i, n, found;
    ngx_list_t        old;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *header, *h;

    n = 0;
    found = 0;

    part = &r->headers_in.headers.part;
    header = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            header = part->elts;
            i = 0;
        }

        n++;

        if (ngx_http_storefront_has_prefix(&header[i].key, prefix)) {
            found++;
        }
    }

    if (found == 0 && !rebuild) {
        return NGX_OK;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "storefront: %ui inbound headers removed", found);

    /* the list is initialized in place: its "last" points into itself */

    old = r->headers_in.headers;

    if (ngx_list_init(&r->headers_in.headers, r->pool,
                      n - found + NGX_HTTP_STOREFRONT_NHEADERS,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &old.part;
    header = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            header = part->elts;
            i = 0;
        }

        if (ngx_http_storefront_has_prefix(&header[i].key, prefix)) {
            continue;
        }

        h = ngx_list_push(&r->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = header[i];
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_storefront_has_prefix(ngx_str_t *name, ngx_str_t *prefix)
{
    u_char      a, b;
    ngx_uint_t  i;

    if (name->len < prefix->len) {
        return 0;
    }

    for (i = 0; i < prefix->len; i++) {
        a = ngx_tolower(name->data[i]);
        b = ngx_tolower(prefix->data[i]);

        if (a == '_') {
            a = '-';
        }

        if (a != b) {
            return 0;
        }
    }

    return 1;
}
