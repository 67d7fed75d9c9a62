
/*
 * storefront: directives, configuration, worker lifecycle and the
 * request phase handler.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_storefront.h"


static ngx_int_t ngx_http_storefront_handler(ngx_http_request_t *r);
static char *ngx_http_storefront_db(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_storefront_cookie(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_http_storefront_cookie_t *ngx_http_storefront_cookie_create(
    ngx_conf_t *cf, ngx_str_t *name, time_t max_age, ngx_str_t *domain,
    ngx_str_t *path, ngx_uint_t secure, ngx_uint_t httponly,
    ngx_uint_t samesite);
static char *ngx_http_storefront_attribute(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_storefront_header_prefix(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ssize_t ngx_http_storefront_parse_size(ngx_str_t *s);
static ngx_int_t ngx_http_storefront_is_token(ngx_str_t *s);
static ngx_int_t ngx_http_storefront_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_storefront_init(ngx_conf_t *cf);
static void *ngx_http_storefront_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_storefront_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_storefront_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_storefront_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_storefront_init_process(ngx_cycle_t *cycle);
static void ngx_http_storefront_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_storefront_max_experiments_bounds = {
    ngx_conf_check_num_bounds, 1, 4096
};


static ngx_command_t  ngx_http_storefront_commands[] = {

    { ngx_string("storefront_db"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_storefront_db,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_max_experiments"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_storefront_main_conf_t, max_experiments),
      &ngx_http_storefront_max_experiments_bounds },

    { ngx_string("storefront_decision_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_storefront_cache_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_loc_conf_t, enable),
      NULL },

    { ngx_string("storefront_user_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_loc_conf_t, user_id),
      NULL },

    { ngx_string("storefront_cookie"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_storefront_cookie,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_attribute"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_storefront_attribute,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_qa_override"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_loc_conf_t, qa_override),
      NULL },

    { ngx_string("storefront_header_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_storefront_header_prefix,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_profile_attributes"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_storefront_profile_attributes,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_storefront_admin,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_admin_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_storefront_admin_token,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_storefront_module_ctx = {
    ngx_http_storefront_preconfiguration,  /* preconfiguration */
    ngx_http_storefront_init,              /* postconfiguration */

    ngx_http_storefront_create_main_conf,  /* create main configuration */
    ngx_http_storefront_init_main_conf,    /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_storefront_create_loc_conf,   /* create location configuration */
    ngx_http_storefront_merge_loc_conf     /* merge location configuration */
};


ngx_module_t  ngx_http_storefront_module = {
    NGX_MODULE_V1,
    &ngx_http_storefront_module_ctx,       /* module context */
    ngx_http_storefront_commands,          /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_storefront_init_process,      /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_storefront_exit_process,      /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* set by the module, and computed from the profile (these win) */

static ngx_str_t  ngx_http_storefront_reserved[] = {
    ngx_string("id"),
    ngx_string("anonymous_id"),
    ngx_string("logged_in"),
    ngx_string("segment"),
    ngx_string("rfm"),
    ngx_string("rfm_r"),
    ngx_string("rfm_f"),
    ngx_string("rfm_m"),
    ngx_string("lifecycle"),
    ngx_string("tier"),
    ngx_string("points"),
    ngx_string("orders"),
    ngx_string("returns"),
    ngx_string("monetary"),
    ngx_string("spend_365"),
    ngx_string("days_since_last_order"),
    ngx_string("categories"),
    ngx_string("top_category"),
    ngx_null_string
};


static ngx_int_t
ngx_http_storefront_handler(ngx_http_request_t *r)
{
    ngx_http_storefront_ctx_t       *ctx;
    ngx_http_storefront_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_module);

    if (!slcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_storefront_decide(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->busy) {
        /* an earlier attempt ran out of memory */
        return NGX_DECLINED;
    }

    if (ngx_http_storefront_set_headers(r, slcf, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


static char *
ngx_http_storefront_db(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_storefront_main_conf_t *smcf = conf;

    ssize_t     size;
    ngx_str_t  *value, s;
    ngx_uint_t  i;

    if (smcf->db_path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid database path \"%V\" in \"%V\" "
                           "directive", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    smcf->db_path = value[1];

    if (ngx_conf_full_name(cf->cycle, &smcf->db_path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "map_size=", 9) == 0) {

            s.len = value[i].len - 9;
            s.data = value[i].data + 9;

            size = ngx_http_storefront_parse_size(&s);

            if (size == NGX_ERROR || size == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid map_size \"%V\" in \"%V\" "
                                   "directive", &s, &cmd->name);
                return NGX_CONF_ERROR;
            }

            smcf->map_size = size;

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\" directive",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * storefront_cookie <name> [max_age=<time>] [domain=<domain>]
 *     [path=<path>] [secure] [httponly] [samesite=strict|lax|none];
 *
 * Attributes not given take these defaults: max_age=1y, path=/,
 * samesite=lax; "secure" and "httponly" are set only when listed.
 * max_age=0 makes a session cookie.  Without the directive the cookie is
 * "sf_anon max_age=1y path=/ httponly samesite=lax": the anonymous id is
 * not a credential, but scripts have no need to read it, the upstream
 * receives it in a header; list the directive without "httponly" for a
 * client-side SDK that must read it.
 */

static char *
ngx_http_storefront_cookie(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_storefront_loc_conf_t *slcf = conf;

    time_t       max_age;
    ngx_str_t   *value, s, domain, path;
    ngx_int_t    t;
    ngx_uint_t   i, j, secure, httponly, samesite;

    if (slcf->cookie) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_storefront_is_token(&value[1]) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid cookie name \"%V\" in \"%V\" directive",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    max_age = 365 * 24 * 60 * 60;
    ngx_str_null(&domain);
    ngx_str_set(&path, "/");
    secure = 0;
    httponly = 0;
    samesite = NGX_HTTP_STOREFRONT_SAMESITE_LAX;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max_age=", 8) == 0) {

            s.len = value[i].len - 8;
            s.data = value[i].data + 8;

            t = ngx_parse_time(&s, 1);
            if (t == NGX_ERROR) {
                goto invalid;
            }

            max_age = (time_t) t;

            continue;
        }

        if (ngx_strncmp(value[i].data, "domain=", 7) == 0) {

            domain.len = value[i].len - 7;
            domain.data = value[i].data + 7;

            if (domain.len == 0) {
                goto invalid;
            }

            for (j = 0; j < domain.len; j++) {
                if (!((domain.data[j] >= 'a' && domain.data[j] <= 'z')
                      || (domain.data[j] >= 'A' && domain.data[j] <= 'Z')
                      || (domain.data[j] >= '0' && domain.data[j] <= '9')
                      || domain.data[j] == '-' || domain.data[j] == '.'))
                {
                    goto invalid;
                }
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "path=", 5) == 0) {

            path.len = value[i].len - 5;
            path.data = value[i].data + 5;

            if (path.len == 0 || path.data[0] != '/') {
                goto invalid;
            }

            /* RFC 6265: any CHAR except CTLs or ";" */

            for (j = 0; j < path.len; j++) {
                if (path.data[j] <= ' ' || path.data[j] >= 0x7f
                    || path.data[j] == ';')
                {
                    goto invalid;
                }
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "secure") == 0) {
            secure = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "httponly") == 0) {
            httponly = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "samesite=", 9) == 0) {

            if (ngx_strcmp(&value[i].data[9], "strict") == 0) {
                samesite = NGX_HTTP_STOREFRONT_SAMESITE_STRICT;

            } else if (ngx_strcmp(&value[i].data[9], "lax") == 0) {
                samesite = NGX_HTTP_STOREFRONT_SAMESITE_LAX;

            } else if (ngx_strcmp(&value[i].data[9], "none") == 0) {
                samesite = NGX_HTTP_STOREFRONT_SAMESITE_NONE;

            } else {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    if (samesite == NGX_HTTP_STOREFRONT_SAMESITE_NONE && !secure) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"samesite=none\" requires \"secure\" in "
                           "\"%V\" directive", &cmd->name);
        return NGX_CONF_ERROR;
    }

    slcf->cookie = ngx_http_storefront_cookie_create(cf, &value[1], max_age,
                                                     &domain, &path, secure,
                                                     httponly, samesite);
    if (slcf->cookie == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\" directive",
                       &value[i], &cmd->name);
    return NGX_CONF_ERROR;
}


static ngx_http_storefront_cookie_t *
ngx_http_storefront_cookie_create(ngx_conf_t *cf, ngx_str_t *name,
    time_t max_age, ngx_str_t *domain, ngx_str_t *path, ngx_uint_t secure,
    ngx_uint_t httponly, ngx_uint_t samesite)
{
    size_t                         len;
    u_char                        *p;
    ngx_http_storefront_cookie_t  *cookie;

    cookie = ngx_pcalloc(cf->pool, sizeof(ngx_http_storefront_cookie_t));
    if (cookie == NULL) {
        return NULL;
    }

    cookie->name = *name;

    len = sizeof("; Max-Age=") - 1 + NGX_TIME_T_LEN
          + sizeof("; Domain=") - 1 + domain->len
          + sizeof("; Path=") - 1 + path->len
          + sizeof("; Secure") - 1
          + sizeof("; HttpOnly") - 1
          + sizeof("; SameSite=Strict") - 1;

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NULL;
    }

    cookie->attrs.data = p;

    if (max_age) {
        p = ngx_sprintf(p, "; Max-Age=%T", max_age);
    }

    if (domain->len) {
        p = ngx_sprintf(p, "; Domain=%V", domain);
    }

    p = ngx_sprintf(p, "; Path=%V", path);

    if (secure) {
        p = ngx_cpymem(p, "; Secure", sizeof("; Secure") - 1);
    }

    if (httponly) {
        p = ngx_cpymem(p, "; HttpOnly", sizeof("; HttpOnly") - 1);
    }

    switch (samesite) {

    case NGX_HTTP_STOREFRONT_SAMESITE_STRICT:
        p = ngx_cpymem(p, "; SameSite=Strict",
                       sizeof("; SameSite=Strict") - 1);
        break;

    case NGX_HTTP_STOREFRONT_SAMESITE_NONE:
        p = ngx_cpymem(p, "; SameSite=None", sizeof("; SameSite=None") - 1);
        break;

    default: /* NGX_HTTP_STOREFRONT_SAMESITE_LAX */
        p = ngx_cpymem(p, "; SameSite=Lax", sizeof("; SameSite=Lax") - 1);
        break;
    }

    cookie->attrs.len = p - cookie->attrs.data;

    return cookie;
}


static char *
ngx_http_storefront_attribute(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_storefront_loc_conf_t *slcf = conf;

    u_char                            c;
    ngx_str_t                        *value, *reserved;
    ngx_uint_t                        i;
    ngx_http_storefront_attr_t       *attr;
    ngx_http_compile_complex_value_t  ccv;

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len > 64) {
        goto invalid;
    }

    for (i = 0; i < value[1].len; i++) {
        c = value[1].data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '-'))
        {
            goto invalid;
        }
    }

    for (reserved = ngx_http_storefront_reserved; reserved->len; reserved++) {
        if (reserved->len == value[1].len
            && ngx_strncmp(reserved->data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "attribute name \"%V\" is reserved in "
                               "\"%V\" directive", &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    if (slcf->attributes == NULL) {
        slcf->attributes = ngx_array_create(cf->pool, 4,
                                            sizeof(ngx_http_storefront_attr_t));
        if (slcf->attributes == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    attr = slcf->attributes->elts;

    for (i = 0; i < slcf->attributes->nelts; i++) {
        if (attr[i].name.len == value[1].len
            && ngx_strncmp(attr[i].name.data, value[1].data, value[1].len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate attribute \"%V\" in \"%V\" "
                               "directive", &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    attr = ngx_array_push(slcf->attributes);
    if (attr == NULL) {
        return NGX_CONF_ERROR;
    }

    attr->name = value[1];

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &attr->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid attribute name \"%V\" in \"%V\" directive",
                       &value[1], &cmd->name);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_storefront_header_prefix(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_storefront_loc_conf_t *slcf = conf;

    u_char      c;
    ngx_str_t  *value;
    ngx_uint_t  i;

    if (slcf->header_prefix.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len > NGX_HTTP_STOREFRONT_PREFIX_MAX) {
        goto invalid;
    }

    for (i = 0; i < value[1].len; i++) {
        c = value[1].data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-'))
        {
            goto invalid;
        }
    }

    slcf->header_prefix = value[1];

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid header prefix \"%V\" in \"%V\" directive",
                       &value[1], &cmd->name);
    return NGX_CONF_ERROR;
}


/* ngx_parse_size() with "g" for gigabytes, which nginx 1.22 lacks */

static ssize_t
ngx_http_storefront_parse_size(ngx_str_t *s)
{
    ssize_t    size;
    ngx_str_t  n;

    if (s->len < 2
        || (s->data[s->len - 1] != 'g' && s->data[s->len - 1] != 'G'))
    {
        return ngx_parse_size(s);
    }

    n.len = s->len - 1;
    n.data = s->data;

    size = ngx_atosz(n.data, n.len);

    if (size == NGX_ERROR
        || (size_t) size > NGX_MAX_SIZE_T_VALUE / (1024 * 1024 * 1024))
    {
        return NGX_ERROR;
    }

    return size * 1024 * 1024 * 1024;
}


/* an RFC 7230 token: the characters allowed in a cookie name */

static ngx_int_t
ngx_http_storefront_is_token(ngx_str_t *s)
{
    u_char      c;
    ngx_uint_t  i;

    if (s->len == 0) {
        return NGX_ERROR;
    }

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c <= ' ' || c >= 0x7f) {
            return NGX_ERROR;
        }

        switch (c) {
        case '(': case ')': case '<': case '>': case '@':
        case ',': case ';': case ':': case '\\': case '"':
        case '/': case '[': case ']': case '?': case '=':
        case '{': case '}':
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_storefront_preconfiguration(ngx_conf_t *cf)
{
    /*
     * each configuration (a reload) builds the decision chain anew: this
     * module is listed first, so its preconfiguration runs before any
     * feature chains itself in postconfiguration
     */
    ngx_http_storefront_top_decision = ngx_http_storefront_last_decision;
    ngx_http_storefront_top_needs_facts = ngx_http_storefront_last_needs_facts;

    if (ngx_http_storefront_add_variables(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_storefront_add_profile_variables(cf);
}


static ngx_int_t
ngx_http_storefront_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt              *h;
    ngx_http_core_main_conf_t        *cmcf;
    ngx_http_storefront_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_storefront_module);

    if (!smcf->enabled) {
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_storefront_handler;

    return ngx_http_storefront_id_init(cf);
}


static void *
ngx_http_storefront_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_storefront_main_conf_t  *smcf;

    smcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_storefront_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     smcf->db_path = { 0, NULL };
     *     smcf->enabled = 0;
     */

    smcf->map_size = NGX_CONF_UNSET_SIZE;
    smcf->max_experiments = NGX_CONF_UNSET;
    smcf->cache_max = NGX_CONF_UNSET_UINT;
    smcf->cache_valid = NGX_CONF_UNSET;

    return smcf;
}


static char *
ngx_http_storefront_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_storefront_main_conf_t *smcf = conf;

    /* 0: the size the environment already has, or the engine's default */

    ngx_conf_init_size_value(smcf->map_size, 0);
    ngx_conf_init_value(smcf->max_experiments, 64);
    ngx_conf_init_uint_value(smcf->cache_max, 0);
    ngx_conf_init_value(smcf->cache_valid, 10);

    return NGX_CONF_OK;
}


static void *
ngx_http_storefront_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_storefront_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_storefront_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->user_id = NULL;
     *     conf->cookie = NULL;
     *     conf->attributes = NULL;
     *     conf->header_prefix = { 0, NULL };
     *     conf->headers = NULL;
     *     conf->profile_headers = NULL;
     *     conf->profile_attributes = NULL;
     *     conf->attr_headers = NULL;
     *     conf->admin = 0;
     *     conf->admin_token = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->qa_override = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_storefront_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_storefront_loc_conf_t *prev = parent;
    ngx_http_storefront_loc_conf_t *conf = child;

    ngx_str_t                         name, domain, path;
    ngx_uint_t                        i, prefix_inherited;
    ngx_http_storefront_attr_t       *attr;
    ngx_http_storefront_main_conf_t  *smcf;

    ngx_conf_merge_str_value(conf->admin_token, prev->admin_token, "");

    if (conf->admin) {
        if (conf->admin_token.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"storefront_admin\" requires "
                               "\"storefront_admin_token\"");
            return NGX_CONF_ERROR;
        }

        /* the admin API is not a storefront page: no decision, no cookie */
        conf->enable = 0;
    }

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->qa_override, prev->qa_override, 0);

    if (conf->user_id == NULL) {
        conf->user_id = prev->user_id;
    }

    if (conf->attributes == NULL) {
        conf->attributes = prev->attributes;
    }

    /* the request's URL is the attribute "url" unless one is configured */

    conf->url_attribute = 1;

    if (conf->attributes) {
        attr = conf->attributes->elts;

        for (i = 0; i < conf->attributes->nelts; i++) {
            if (attr[i].name.len == 3
                && ngx_strncmp(attr[i].name.data, "url", 3) == 0)
            {
                conf->url_attribute = 0;
            }
        }
    }

    if (conf->cookie == NULL) {
        conf->cookie = prev->cookie;
    }

    if (conf->cookie == NULL) {
        ngx_str_set(&name, "sf_anon");
        ngx_str_set(&path, "/");

        ngx_str_null(&domain);

        conf->cookie = ngx_http_storefront_cookie_create(cf, &name,
                                          365 * 24 * 60 * 60, &domain, &path,
                                          0, 1,
                                          NGX_HTTP_STOREFRONT_SAMESITE_LAX);
        if (conf->cookie == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    prefix_inherited = 0;

    if (conf->header_prefix.data == NULL) {
        conf->header_prefix = prev->header_prefix;
        conf->headers = prev->headers;
        prefix_inherited = 1;
    }

    if (conf->header_prefix.data == NULL) {
        ngx_str_set(&conf->header_prefix, "X-Storefront-");
    }

    if (conf->headers == NULL) {
        conf->headers = ngx_http_storefront_init_headers(cf,
                                                         &conf->header_prefix);
        if (conf->headers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_storefront_profile_merge(cf, prev, conf, prefix_inherited)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->admin) {
        smcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_storefront_module);

        if (smcf->db_path.data == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "no \"storefront_db\" is defined "
                               "for \"storefront_admin\"");
            return NGX_CONF_ERROR;
        }

        smcf->enabled = 1;
    }

    if (conf->enable) {
        smcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_storefront_module);

        if (smcf->db_path.data == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "no \"storefront_db\" is defined "
                               "for \"storefront\"");
            return NGX_CONF_ERROR;
        }

        smcf->enabled = 1;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_storefront_init_process(ngx_cycle_t *cycle)
{
    return ngx_http_storefront_init_worker(cycle);
}


static void
ngx_http_storefront_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_storefront_exit_worker(cycle);
}
