
/*
 * storefront: who the visitor is.
 *
 * The logged-in id comes from storefront_user_id.  It is passed to the
 * engine as it is (any bytes, UTF-8 included), but an id longer than
 * NGX_HTTP_STOREFRONT_USER_ID_MAX bytes or holding control characters is
 * rejected as a whole (truncating an identity would merge users), and the
 * anonymous id is used instead.  The anonymous id is read from the cookie
 * only when it has exactly the form minted here, 32 lowercase hex digits;
 * anything else is ignored.  A visitor with neither gets 128 random bits,
 * and the main request's response carries the cookie, once.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_storefront.h"

#if (NGX_HAVE_GETRANDOM)
#include <sys/random.h>
#endif


#define NGX_HTTP_STOREFRONT_RANDOM_SIZE  4096


static ngx_uint_t ngx_http_storefront_valid_user_id(ngx_str_t *id);
static ngx_uint_t ngx_http_storefront_valid_anon_id(ngx_str_t *id);
static ngx_int_t ngx_http_storefront_mint(ngx_http_request_t *r, u_char *id);
static ngx_int_t ngx_http_storefront_random(u_char *buf, size_t len,
    ngx_log_t *log);
static ngx_int_t ngx_http_storefront_random_fill(ngx_log_t *log);
static ngx_int_t ngx_http_storefront_header_filter(ngx_http_request_t *r);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;

/* per worker: random bytes are read in blocks, refilled when used up */
static u_char  ngx_http_storefront_random_buf[NGX_HTTP_STOREFRONT_RANDOM_SIZE];
static size_t  ngx_http_storefront_random_pos =
                                             NGX_HTTP_STOREFRONT_RANDOM_SIZE;


ngx_int_t
ngx_http_storefront_identify(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx)
{
    ngx_str_t                      uid, value;
    ngx_http_storefront_cookie_t  *cookie;

    if (slcf->user_id) {
        if (ngx_http_complex_value(r, slcf->user_id, &uid) != NGX_OK) {
            return NGX_ERROR;
        }

        if (uid.len) {
            if (ngx_http_storefront_valid_user_id(&uid)) {
                ctx->user_id = uid;
                ctx->logged_in = 1;

            } else {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "storefront: invalid user id of length %uz "
                              "ignored", uid.len);
            }
        }
    }

    cookie = slcf->cookie;

#if (nginx_version >= 1023000)

    if (ngx_http_parse_multi_header_lines(r, r->headers_in.cookie,
                                          &cookie->name, &value)
        != NULL
        && ngx_http_storefront_valid_anon_id(&value))

#else

    if (ngx_http_parse_multi_header_lines(&r->headers_in.cookies,
                                          &cookie->name, &value)
        != NGX_DECLINED
        && ngx_http_storefront_valid_anon_id(&value))

#endif
    {
        ngx_memcpy(ctx->anon_buf, value.data, NGX_HTTP_STOREFRONT_ID_LEN);
        ctx->anon_id.len = NGX_HTTP_STOREFRONT_ID_LEN;
        ctx->anon_id.data = ctx->anon_buf;

    } else if (!ctx->logged_in) {

        if (ngx_http_storefront_mint(r, ctx->anon_buf) == NGX_OK) {
            ctx->anon_id.len = NGX_HTTP_STOREFRONT_ID_LEN;
            ctx->anon_id.data = ctx->anon_buf;
            ctx->minted = 1;
            ctx->cookie = cookie;
        }
    }

    if (!ctx->logged_in) {
        ctx->user_id = ctx->anon_id;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_storefront_valid_user_id(ngx_str_t *id)
{
    size_t  i;

    if (id->len > NGX_HTTP_STOREFRONT_USER_ID_MAX) {
        return 0;
    }

    for (i = 0; i < id->len; i++) {
        if (id->data[i] < ' ' || id->data[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


static ngx_uint_t
ngx_http_storefront_valid_anon_id(ngx_str_t *id)
{
    size_t  i;

    if (id->len != NGX_HTTP_STOREFRONT_ID_LEN) {
        return 0;
    }

    for (i = 0; i < id->len; i++) {
        if (!((id->data[i] >= '0' && id->data[i] <= '9')
              || (id->data[i] >= 'a' && id->data[i] <= 'f')))
        {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_storefront_mint(ngx_http_request_t *r, u_char *id)
{
    u_char  bytes[NGX_HTTP_STOREFRONT_ID_LEN / 2];

    if (ngx_http_storefront_random(bytes, sizeof(bytes), r->connection->log)
        != NGX_OK)
    {
        /* no id: experiments see no hash attribute, nothing is stored */
        return NGX_ERROR;
    }

    ngx_hex_dump(id, bytes, sizeof(bytes));

    return NGX_OK;
}


void
ngx_http_storefront_random_reset(void)
{
    /* called after fork: a worker never reuses the parent's bytes */

    ngx_explicit_memzero(ngx_http_storefront_random_buf,
                         NGX_HTTP_STOREFRONT_RANDOM_SIZE);
    ngx_http_storefront_random_pos = NGX_HTTP_STOREFRONT_RANDOM_SIZE;
}


static ngx_int_t
ngx_http_storefront_random(u_char *buf, size_t len, ngx_log_t *log)
{
    u_char  *p;

    if (ngx_http_storefront_random_pos + len
        > NGX_HTTP_STOREFRONT_RANDOM_SIZE)
    {
        if (ngx_http_storefront_random_fill(log) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_http_storefront_random_pos = 0;
    }

    p = ngx_http_storefront_random_buf + ngx_http_storefront_random_pos;

    ngx_memcpy(buf, p, len);
    ngx_explicit_memzero(p, len);

    ngx_http_storefront_random_pos += len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_storefront_random_fill(ngx_log_t *log)
{
    u_char    *p;
    size_t     size;
    ssize_t    n;
#if !(NGX_HAVE_GETRANDOM)
    ngx_fd_t   fd;
#endif

#if (NGX_HAVE_GETRANDOM)

    p = ngx_http_storefront_random_buf;
    size = NGX_HTTP_STOREFRONT_RANDOM_SIZE;

    while (size) {

        /* GRND_NONBLOCK: never block the event loop early at boot */

        n = getrandom(p, size, GRND_NONBLOCK);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                continue;
            }

            ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                          "storefront: getrandom() failed");
            return NGX_ERROR;
        }

        p += n;
        size -= n;
    }

    return NGX_OK;

#else

    fd = ngx_open_file("/dev/urandom", NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      ngx_open_file_n " \"/dev/urandom\" failed");
        return NGX_ERROR;
    }

    p = ngx_http_storefront_random_buf;
    size = NGX_HTTP_STOREFRONT_RANDOM_SIZE;

    while (size) {
        n = read(fd, p, size);

        if (n == -1 && ngx_errno == NGX_EINTR) {
            continue;
        }

        if (n <= 0) {
            ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                          "storefront: read(\"/dev/urandom\") failed");
            (void) ngx_close_file(fd);
            return NGX_ERROR;
        }

        p += n;
        size -= n;
    }

    (void) ngx_close_file(fd);

    return NGX_OK;

#endif
}


ngx_int_t
ngx_http_storefront_id_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_storefront_header_filter;

    return NGX_OK;
}


/*
 * Adds the minted id's cookie to the main request's response, whatever
 * produced it (an upstream, a static file, an error page), once.
 */

static ngx_int_t
ngx_http_storefront_header_filter(ngx_http_request_t *r)
{
    u_char                          *p;
    size_t                           len;
    ngx_table_elt_t                 *set_cookie;
    ngx_http_storefront_ctx_t       *ctx;
    ngx_http_storefront_cookie_t    *cookie;
    ngx_http_storefront_loc_conf_t  *slcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_storefront_get_ctx(r);

    if (ctx == NULL) {

        /*
         * a response made before the preaccess phase ("return"): decide
         * now, so that a subrequest run after the header was sent (SSI)
         * does not mint an id whose cookie could no longer be set
         */

        slcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_module);

        if (!slcf->enable) {
            return ngx_http_next_header_filter(r);
        }

        ctx = ngx_http_storefront_decide(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }
    }

    if (!ctx->minted || ctx->cookie_sent) {
        return ngx_http_next_header_filter(r);
    }

    cookie = ctx->cookie;

    len = cookie->name.len + 1 + ctx->anon_id.len + cookie->attrs.len;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    set_cookie = ngx_list_push(&r->headers_out.headers);
    if (set_cookie == NULL) {
        return NGX_ERROR;
    }

    set_cookie->hash = 1;
    ngx_str_set(&set_cookie->key, "Set-Cookie");
    set_cookie->value.data = p;

    p = ngx_cpymem(p, cookie->name.data, cookie->name.len);
    *p++ = '=';
    p = ngx_cpymem(p, ctx->anon_id.data, ctx->anon_id.len);
    p = ngx_cpymem(p, cookie->attrs.data, cookie->attrs.len);

    set_cookie->value.len = p - set_cookie->value.data;

#if (nginx_version >= 1023000)
    set_cookie->next = NULL;
#endif

    ctx->cookie_sent = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "storefront cookie: \"%V\"", &set_cookie->value);

    return ngx_http_next_header_filter(r);
}
