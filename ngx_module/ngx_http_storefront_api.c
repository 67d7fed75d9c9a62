
/*
 * storefront: helpers for the module's HTTP endpoints (the admin API
 * now, push and statistics endpoints later): the request body in one
 * buffer, JSON responses and errors, the bearer token check.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_storefront.h"


#define NGX_HTTP_STOREFRONT_ERROR_MAX  1024


static size_t ngx_http_storefront_utf8_clean(u_char *p, size_t len);


ngx_int_t
ngx_http_storefront_request_body(ngx_http_request_t *r, ngx_str_t *body)
{
    off_t         size;
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    len = 0;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            b = cl->buf;

            if (b->in_file) {
                size = b->file_last - b->file_pos;

            } else {
                size = b->last - b->pos;
            }

            if (size < 0 || (size_t) size > NGX_MAX_SIZE_T_VALUE / 2 - len) {
                return NGX_ERROR;
            }

            len += (size_t) size;
        }
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            b = cl->buf;

            if (!b->in_file) {
                if (b->last > b->pos) {     /* an empty body has no buffer */
                    p = ngx_cpymem(p, b->pos, b->last - b->pos);
                }
                continue;
            }

            /* a body larger than client_body_buffer_size */

            size = b->file_last - b->file_pos;

            n = ngx_read_file(b->file, p, (size_t) size, b->file_pos);

            if (n == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (n != size) {
                ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                              ngx_read_file_n " read only %z of %O from "
                              "\"%V\"", n, size, &b->file->name);
                return NGX_ERROR;
            }

            p += n;
        }
    }

    *p = '\0';
    body->len = p - body->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_storefront_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (status == NGX_HTTP_STOREFRONT_UNPROCESSABLE) {
        /* not in nginx's table of status lines */
        ngx_str_set(&r->headers_out.status_line,
                    "422 Unprocessable Entity");
    }

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = sizeof("application/json") - 1;
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

    if (len == 0) {
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

    b->pos = data;
    b->last = data + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* sends the engine's output (b, e.g. the worker scratch buffer) */

ngx_int_t
ngx_http_storefront_send_buf(ngx_http_request_t *r, ngx_uint_t status,
    sf_buf *b)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool, b->len + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, b->data, b->len);
    p[b->len] = '\n';

    return ngx_http_storefront_send_json(r, status, p, b->len + 1);
}


ngx_int_t
ngx_http_storefront_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *fmt, ...)
{
    u_char   *p, msg[NGX_HTTP_STOREFRONT_ERROR_MAX];
    size_t    len;
    sf_buf   *b;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    /* messages may quote client input cut anywhere: keep JSON valid */

    len = ngx_http_storefront_utf8_clean(msg, p - msg);

    b = ngx_http_storefront_scratch();

    if (sf_buf_appends(b, "{\"error\":") != SF_OK
        || sf_buf_append_json_string(b, (const char *) msg, len) != SF_OK
        || sf_buf_appends(b, "}") != SF_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_storefront_send_buf(r, status, b);
}


/* replaces bytes that are not valid UTF-8 with '?' */

static size_t
ngx_http_storefront_utf8_clean(u_char *p, size_t len)
{
    u_char    *s, *last;
    uint32_t   c;

    s = p;
    last = p + len;

    while (s < last) {

        if (*s < 0x80) {
            s++;
            continue;
        }

        p = s;
        c = ngx_utf8_decode(&s, last - p);

        if (c > 0x10ffff) {
            *p = '?';
            s = p + 1;
        }
    }

    return len;
}


/*
 * "Authorization: Bearer <token>" (RFC 6750), the scheme in any case.
 * The comparison takes the same time whatever the presented token holds.
 */

ngx_int_t
ngx_http_storefront_bearer(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char                *p, *last;
    size_t                 i, len;
    ngx_table_elt_t       *h;
    volatile ngx_uint_t    diff;

    if (token->len == 0) {
        /* refused: "nginx -t" requires a token where one is checked */
        return NGX_ABORT;
    }

    h = r->headers_in.authorization;

    if (h == NULL) {
        return NGX_DECLINED;
    }

    p = h->value.data;
    last = p + h->value.len;

    if (h->value.len < sizeof("Bearer ") - 1
        || ngx_strncasecmp(p, (u_char *) "Bearer ", sizeof("Bearer ") - 1)
           != 0)
    {
        return NGX_ERROR;
    }

    p += sizeof("Bearer ") - 1;

    while (p < last && *p == ' ') {
        p++;
    }

    while (last > p && last[-1] == ' ') {
        last--;
    }

    len = last - p;

    diff = (len != token->len);

    for (i = 0; i < token->len; i++) {
        diff |= (i < len ? p[i] : 0) ^ token->data[i];
    }

    return diff ? NGX_ERROR : NGX_OK;
}


ngx_int_t
ngx_http_storefront_send_unauthorized(ngx_http_request_t *r, ngx_int_t rc,
    const char *endpoint)
{
    ngx_int_t         drc;
    ngx_table_elt_t  *h;

    drc = ngx_http_discard_request_body(r);
    if (drc != NGX_OK) {
        return drc;
    }

    if (rc == NGX_ABORT) {
        return ngx_http_storefront_send_error(r, NGX_HTTP_FORBIDDEN,
                                   "the %s endpoint has no token configured",
                                   endpoint);
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "WWW-Authenticate");

#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    r->headers_out.www_authenticate = h;

    if (rc == NGX_DECLINED) {
        ngx_str_set(&h->value, "Bearer realm=\"storefront\"");

        return ngx_http_storefront_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                              "a bearer token is required");
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "storefront %s: invalid bearer token", endpoint);

    ngx_str_set(&h->value,
                "Bearer realm=\"storefront\", error=\"invalid_token\"");

    return ngx_http_storefront_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                          "invalid bearer token");
}


ngx_int_t
ngx_http_storefront_send_not_allowed(ngx_http_request_t *r, char *allow)
{
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = (u_char *) allow;
    h->value.len = ngx_strlen(allow);

#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return ngx_http_storefront_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                          "method not allowed, use %s",
                                          allow);
}


/* RFC 6750 b64token: the characters a bearer token may hold */

char *
ngx_http_storefront_conf_token(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *token)
{
    u_char      c;
    ngx_str_t  *value;
    ngx_uint_t  i, pad;

    if (token->data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len < NGX_HTTP_STOREFRONT_TOKEN_MIN
        || value[1].len > NGX_HTTP_STOREFRONT_TOKEN_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the token in \"%V\" directive must be %d to %d "
                           "characters long", &cmd->name,
                           NGX_HTTP_STOREFRONT_TOKEN_MIN,
                           NGX_HTTP_STOREFRONT_TOKEN_MAX);
        return NGX_CONF_ERROR;
    }

    pad = 0;

    for (i = 0; i < value[1].len; i++) {
        c = value[1].data[i];

        if (c == '=' && i > 0) {
            pad = 1;
            continue;
        }

        if (pad
            || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                 || (c >= '0' && c <= '9') || c == '-' || c == '.'
                 || c == '_' || c == '~' || c == '+' || c == '/'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid token in \"%V\" directive: letters, "
                               "digits and \"-._~+/\" are allowed, "
                               "\"=\" at the end", &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    *token = value[1];

    return NGX_CONF_OK;
}


/* the endpoint's route: the last segment of the URI */

void
ngx_http_storefront_route(ngx_http_request_t *r, ngx_str_t *route)
{
    u_char  *p, *last;

    last = r->uri.data + r->uri.len;

    for (p = last; p > r->uri.data && p[-1] != '/'; p--) {
        /* void */
    }

    route->data = p;
    route->len = last - p;
}


/* ---- hashing for the module's tables (not for bucketing) ---------------- */

/* 8 bytes at a time, then murmur3's finaliser */

uint64_t
ngx_http_storefront_hash(uint64_t seed, const u_char *p, size_t len)
{
    uint64_t  h, k;

    h = seed ^ (len * NGX_HTTP_STOREFRONT_K2);

    for ( /* void */ ; len >= 8; p += 8, len -= 8) {
        ngx_memcpy(&k, p, 8);
        h ^= k * NGX_HTTP_STOREFRONT_K1;
        h = ((h << 31) | (h >> 33)) * NGX_HTTP_STOREFRONT_K2;
    }

    k = 0;
    ngx_memcpy(&k, p, len);
    h ^= k * NGX_HTTP_STOREFRONT_K1;
    h = ((h << 31) | (h >> 33)) * NGX_HTTP_STOREFRONT_K2;

    return ngx_http_storefront_mix(h);
}


uint64_t
ngx_http_storefront_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;

    return h;
}
