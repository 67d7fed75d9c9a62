
/*
 * storefront: variables.
 *
 * The variables make the decision when it was not made yet, in a location
 * with "storefront on"; elsewhere, without a decision, they are not found.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_storefront.h"


#define NGX_HTTP_STOREFRONT_VAR_USER_ID    0
#define NGX_HTTP_STOREFRONT_VAR_VARIANTS   1
#define NGX_HTTP_STOREFRONT_VAR_CACHE_KEY  2
#define NGX_HTTP_STOREFRONT_VAR_STATUS     3
#define NGX_HTTP_STOREFRONT_VAR_MINTED     4
#define NGX_HTTP_STOREFRONT_VAR_CACHE      5


static ngx_int_t ngx_http_storefront_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_storefront_variant_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_uint_t ngx_http_storefront_key_match(ngx_str_t *key, u_char *name,
    size_t len, ngx_uint_t loose);


static ngx_http_variable_t  ngx_http_storefront_vars[] = {

    { ngx_string("storefront_user_id"), NULL,
      ngx_http_storefront_variable, NGX_HTTP_STOREFRONT_VAR_USER_ID,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_variants"), NULL,
      ngx_http_storefront_variable, NGX_HTTP_STOREFRONT_VAR_VARIANTS,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_cache_key"), NULL,
      ngx_http_storefront_variable, NGX_HTTP_STOREFRONT_VAR_CACHE_KEY,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_status"), NULL,
      ngx_http_storefront_variable, NGX_HTTP_STOREFRONT_VAR_STATUS,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_decision_cache"), NULL,
      ngx_http_storefront_variable, NGX_HTTP_STOREFRONT_VAR_CACHE,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_id_minted"), NULL,
      ngx_http_storefront_variable, NGX_HTTP_STOREFRONT_VAR_MINTED,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_variant_"), NULL,
      ngx_http_storefront_variant_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_storefront_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_storefront_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/*
 * The decision of the request for a variable: made now in a location with
 * "storefront on" when it was not made yet; NULL without one.
 */

ngx_int_t
ngx_http_storefront_variable_ctx(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t **ctxp)
{
    ngx_http_storefront_ctx_t       *ctx;
    ngx_http_storefront_loc_conf_t  *slcf;

    *ctxp = NULL;

    ctx = ngx_http_storefront_get_ctx(r);

    if (ctx == NULL) {
        slcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_module);

        if (!slcf->enable) {
            return NGX_OK;
        }

        ctx = ngx_http_storefront_decide(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }
    }

    if (!ctx->busy) {
        *ctxp = ctx;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_storefront_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                   s;
    ngx_http_storefront_ctx_t  *ctx;

    if (ngx_http_storefront_variable_ctx(r, &ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_HTTP_STOREFRONT_VAR_USER_ID:
        s = ctx->user_id;
        break;

    case NGX_HTTP_STOREFRONT_VAR_VARIANTS:
        s = ctx->variants;
        break;

    case NGX_HTTP_STOREFRONT_VAR_CACHE_KEY:

        /* the variations only, never the id: few distinct values */

        if (ctx->variants.len) {
            s = ctx->variants;

        } else {
            ngx_str_set(&s, "-");
        }

        break;

    case NGX_HTTP_STOREFRONT_VAR_STATUS:

        if (ctx->available) {
            ngx_str_set(&s, "ok");

        } else {
            ngx_str_set(&s, "unavailable");
        }

        break;

    case NGX_HTTP_STOREFRONT_VAR_CACHE:

        switch (ctx->cache) {

        case NGX_HTTP_STOREFRONT_CACHE_HIT:
            ngx_str_set(&s, "HIT");
            break;

        case NGX_HTTP_STOREFRONT_CACHE_MISS:
            ngx_str_set(&s, "MISS");
            break;

        default: /* off */
            v->not_found = 1;
            return NGX_OK;
        }

        break;

    default: /* NGX_HTTP_STOREFRONT_VAR_MINTED */

        if (ctx->minted) {
            ngx_str_set(&s, "1");

        } else {
            ngx_str_set(&s, "0");
        }

        break;
    }

    v->len = s.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s.data;

    return NGX_OK;
}


/*
 * $storefront_variant_<key>: the variation key of the experiment when the
 * visitor is in it, else not found.  Variable names are lowercase and
 * hold only letters, digits and '_': the key is compared ignoring case,
 * and when no key matches exactly, '_' in the name also matches '-' and
 * '.' in the key ($storefront_variant_button_color for "button-color").
 */

static ngx_int_t
ngx_http_storefront_variant_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *name = (ngx_str_t *) data;

    u_char                     *p;
    size_t                      len;
    ngx_uint_t                  i, loose;
    ngx_http_storefront_ctx_t  *ctx;

    if (ngx_http_storefront_variable_ctx(r, &ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    len = name->len - (sizeof("storefront_variant_") - 1);
    p = name->data + sizeof("storefront_variant_") - 1;

    for (loose = 0; loose < 2; loose++) {
        for (i = 0; i < ctx->nassigned; i++) {
            if (ngx_http_storefront_key_match(&ctx->assigned[i].key, p, len,
                                              loose))
            {
                v->len = ctx->assigned[i].value.len;
                v->valid = 1;
                v->no_cacheable = 0;
                v->not_found = 0;
                v->data = ctx->assigned[i].value.data;

                return NGX_OK;
            }
        }
    }

    v->not_found = 1;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_storefront_key_match(ngx_str_t *key, u_char *name, size_t len,
    ngx_uint_t loose)
{
    u_char  a, b;
    size_t  i;

    if (key->len != len) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        a = ngx_tolower(key->data[i]);
        b = ngx_tolower(name[i]);

        if (a == b) {
            continue;
        }

        if (loose && b == '_' && (a == '-' || a == '.')) {
            continue;
        }

        return 0;
    }

    return 1;
}
