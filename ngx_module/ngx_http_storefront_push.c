
/*
 * storefront: push decisions, "may this message go to this user now?".
 *
 *     location /push/ {
 *         allow 10.0.0.0/8;                 # nginx's own address list,
 *         deny  all;                        # checked before the token
 *         client_max_body_size 16m;         # batches; nginx answers 413
 *         storefront_push;
 *         storefront_push_token <at least 16 characters>;
 *         storefront_push_cap promo 1/1d 2/7d;
 *         storefront_push_quiet_hours 22:00-08:00;
 *         storefront_push_default_tz +08:00;
 *     }
 *
 * Routes, by the last segment of the URI:
 *
 *     GET/POST .../             one decision: query arguments (user,
 *                               category, channel, campaign, dry_run) or
 *                               a JSON object
 *     POST     .../batch        a JSON array or JSON lines of requests;
 *                               a JSON array or JSON lines body to any
 *                               route but the ones below is a batch too
 *     GET      .../counters     decisions counted by reason
 *     GET      .../policy       the policy in force and where it is from
 *
 * The engine decides (sf_txn_push_decide): an allowed decision records
 * the send in the same write transaction, and the transaction is
 * committed before the answer is sent.  Single decisions that arrive in
 * the same event loop iteration of a worker are decided in one write
 * transaction and one commit (group commit); a batch is one transaction
 * of its own: any invalid element rejects all of it, nothing recorded.
 * The time of a decision is read after the write lock is taken, so the
 * recorded times follow the commit order across workers.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_storefront.h"


#define NGX_HTTP_STOREFRONT_PUSH_DURABLE  1
#define NGX_HTTP_STOREFRONT_PUSH_RELAXED  2

#define NGX_HTTP_STOREFRONT_PUSH_SINGLE   0
#define NGX_HTTP_STOREFRONT_PUSH_ARRAY    1
#define NGX_HTTP_STOREFRONT_PUSH_LINES    2

#define NGX_HTTP_STOREFRONT_PUSH_QUIET_OFF  -1

/* an answer without its strings */
#define NGX_HTTP_STOREFRONT_PUSH_ANSWER_LEN  512


typedef struct {
    ngx_str_t                       name;
    ngx_uint_t                      ncaps;      /* 0: "off" */
    sf_push_cap                     caps[SF_PUSH_MAX_CAPS];
} ngx_http_storefront_push_cap_t;


typedef struct {
    ngx_flag_t                      enable;
    ngx_str_t                       token;
    ngx_array_t                    *caps;       /* of push_cap_t */
    ngx_array_t                    *exempt;     /* of ngx_str_t */
    ngx_array_t                    *urgent;     /* of ngx_str_t */
    ngx_int_t                       quiet;      /* start * 1440 + end */
    ngx_int_t                       tz;         /* minutes east of UTC */
    ngx_int_t                       rate;       /* r/s * 1000, 0: off */
    ngx_int_t                       burst;
    ngx_uint_t                      durability;
    ngx_int_t                       max_batch;
    time_t                          log_keep;   /* seconds, 0: all */
    sf_push_policy                 *policy;     /* built when merged */
} ngx_http_storefront_push_loc_conf_t;


typedef struct {
    ngx_http_request_t                   *request;
    ngx_http_storefront_push_loc_conf_t  *plcf;
    ngx_queue_t                           queue;     /* waiting to commit */
    sf_arena                             *arena;     /* the parsed body */

    sf_push_request                      *reqs;      /* a batch */
    sf_push_decision                     *decisions;
    ngx_uint_t                           *lines;     /* of JSON lines */
    ngx_uint_t                            n;
    ngx_uint_t                            format;    /* SINGLE, ARRAY, LINES */

    ngx_uint_t                            status;    /* 200 when decided */
    ngx_str_t                             error;
    ngx_uint_t                            counts[SF_PUSH__COUNT];

    sf_push_request                       req;       /* a single decision */
    sf_push_decision                      decision;

    unsigned                              dry_run:1; /* ?dry_run=1 */
    unsigned                              batch_route:1;
    unsigned                              queued:1;
    unsigned                              decided:1;
} ngx_http_storefront_push_ctx_t;


static ngx_int_t ngx_http_storefront_push_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_push_args(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx);
static ngx_int_t ngx_http_storefront_push_arg(ngx_http_request_t *r,
    char *name, sf_member *m, ngx_uint_t *n);
static void ngx_http_storefront_push_body(ngx_http_request_t *r);
static void ngx_http_storefront_push_arena_cleanup(void *data);
static ngx_int_t ngx_http_storefront_push_parse(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx, ngx_str_t *body);
static ngx_int_t ngx_http_storefront_push_lines(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx, ngx_str_t *body);
static ngx_int_t ngx_http_storefront_push_too_many(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx, ngx_uint_t n);
static ngx_int_t ngx_http_storefront_push_batch(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx, sf_value *items);
static ngx_int_t ngx_http_storefront_push_item_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_http_storefront_push_ctx_t *ctx, ngx_uint_t i,
    const char *msg);
static ngx_int_t ngx_http_storefront_push_enqueue(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx);
static void ngx_http_storefront_push_dequeue(void *data);
static void ngx_http_storefront_push_flush(ngx_event_t *ev);
static ngx_int_t ngx_http_storefront_push_begin(ngx_http_request_t *r,
    ngx_uint_t durable, sf_db **dbp, sf_txn **txn, int64_t *now_ms,
    ngx_uint_t *status);
static ngx_uint_t ngx_http_storefront_push_failed(ngx_http_request_t *r,
    sf_error *err, const char *what);
static ngx_int_t ngx_http_storefront_push_respond(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx);
static ngx_int_t ngx_http_storefront_push_answer(sf_buf *b,
    const sf_push_request *req, const sf_push_decision *d);
static u_char *ngx_http_storefront_push_time(u_char *p, int64_t t);
static ngx_int_t ngx_http_storefront_push_headers(ngx_http_request_t *r,
    const sf_push_request *req, const sf_push_decision *d);
static ngx_int_t ngx_http_storefront_push_header(ngx_http_request_t *r,
    char *name, int64_t value);
static ngx_int_t ngx_http_storefront_push_send(ngx_http_request_t *r,
    ngx_uint_t status, sf_buf *b, ngx_uint_t lines);
static ngx_int_t ngx_http_storefront_push_counters(ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_push_policy(ngx_http_request_t *r,
    ngx_http_storefront_push_loc_conf_t *plcf);
static int64_t ngx_http_storefront_push_seconds(int64_t ms);

static ngx_int_t ngx_http_storefront_push_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static char *ngx_http_storefront_push(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_storefront_push_token(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_storefront_push_cap(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_storefront_push_list(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_storefront_push_quiet(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_storefront_push_tz(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_storefront_push_throttle(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_storefront_push_log_keep(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_storefront_push_hhmm(u_char *p);
static ngx_int_t ngx_http_storefront_push_build(ngx_conf_t *cf,
    ngx_http_storefront_push_loc_conf_t *conf);
static sf_push_category *ngx_http_storefront_push_category(
    sf_push_policy *p, ngx_str_t *name);

static ngx_int_t ngx_http_storefront_push_add_variables(ngx_conf_t *cf);
static void *ngx_http_storefront_push_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_storefront_push_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_storefront_push_init_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_storefront_push_durability[] = {
    { ngx_string("durable"), NGX_HTTP_STOREFRONT_PUSH_DURABLE },
    { ngx_string("relaxed"), NGX_HTTP_STOREFRONT_PUSH_RELAXED },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_storefront_push_max_batch_bounds = {
    ngx_conf_check_num_bounds, 1, 1000000
};


static ngx_command_t  ngx_http_storefront_push_commands[] = {

    { ngx_string("storefront_push"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_storefront_push,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_push_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_storefront_push_token,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_push_cap"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_storefront_push_cap,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_push_exempt"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_storefront_push_list,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_push_loc_conf_t, exempt),
      NULL },

    { ngx_string("storefront_push_urgent"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_storefront_push_list,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_push_loc_conf_t, urgent),
      NULL },

    { ngx_string("storefront_push_quiet_hours"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_storefront_push_quiet,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_push_default_tz"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_storefront_push_tz,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_push_throttle"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_storefront_push_throttle,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_push_durability"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_push_loc_conf_t, durability),
      &ngx_http_storefront_push_durability },

    { ngx_string("storefront_push_log_keep"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_storefront_push_log_keep,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_push_loc_conf_t, log_keep),
      NULL },

    { ngx_string("storefront_push_max_batch"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_push_loc_conf_t, max_batch),
      &ngx_http_storefront_push_max_batch_bounds },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_storefront_push_module_ctx = {
    ngx_http_storefront_push_add_variables,   /* preconfiguration */
    NULL,                                     /* postconfiguration */

    NULL,                                     /* create main configuration */
    NULL,                                     /* init main configuration */

    NULL,                                     /* create server configuration */
    NULL,                                     /* merge server configuration */

    ngx_http_storefront_push_create_loc_conf, /* create location conf */
    ngx_http_storefront_push_merge_loc_conf   /* merge location conf */
};


ngx_module_t  ngx_http_storefront_push_module = {
    NGX_MODULE_V1,
    &ngx_http_storefront_push_module_ctx,  /* module context */
    ngx_http_storefront_push_commands,     /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_storefront_push_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


#define NGX_HTTP_STOREFRONT_PUSH_VAR_DECISION  0
#define NGX_HTTP_STOREFRONT_PUSH_VAR_REASON    1
#define NGX_HTTP_STOREFRONT_PUSH_VAR_USER      2
#define NGX_HTTP_STOREFRONT_PUSH_VAR_CATEGORY  3


static ngx_http_variable_t  ngx_http_storefront_push_vars[] = {

    { ngx_string("storefront_push_decision"), NULL,
      ngx_http_storefront_push_variable,
      NGX_HTTP_STOREFRONT_PUSH_VAR_DECISION, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_push_reason"), NULL,
      ngx_http_storefront_push_variable,
      NGX_HTTP_STOREFRONT_PUSH_VAR_REASON, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_push_user"), NULL,
      ngx_http_storefront_push_variable,
      NGX_HTTP_STOREFRONT_PUSH_VAR_USER, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_push_category"), NULL,
      ngx_http_storefront_push_variable,
      NGX_HTTP_STOREFRONT_PUSH_VAR_CATEGORY, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* single decisions waiting for the group commit of this worker */

static ngx_queue_t  ngx_http_storefront_push_pending;
static ngx_event_t  ngx_http_storefront_push_event;


/* ---- the handler --------------------------------------------------------- */

static ngx_int_t
ngx_http_storefront_push_handler(ngx_http_request_t *r)
{
    ngx_int_t                             rc;
    ngx_str_t                             route;
    ngx_http_storefront_push_ctx_t       *ctx;
    ngx_http_storefront_push_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_push_module);

    rc = ngx_http_storefront_bearer(r, &plcf->token);

    if (rc != NGX_OK) {
        return ngx_http_storefront_send_unauthorized(r, rc, "push");
    }

    ngx_http_storefront_route(r, &route);

    if ((route.len == sizeof("counters") - 1
         && ngx_strncmp(route.data, "counters", route.len) == 0)
        || (route.len == sizeof("policy") - 1
            && ngx_strncmp(route.data, "policy", route.len) == 0))
    {
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_storefront_send_not_allowed(r, "GET, HEAD");
        }

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        if (route.data[0] == 'c') {
            return ngx_http_storefront_push_counters(r);
        }

        return ngx_http_storefront_push_policy(r, plcf);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_storefront_push_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->plcf = plcf;

    ngx_http_set_ctx(r, ctx, ngx_http_storefront_push_module);

    if (route.len == sizeof("batch") - 1
        && ngx_strncmp(route.data, "batch", route.len) == 0)
    {
        if (r->method != NGX_HTTP_POST) {
            return ngx_http_storefront_send_not_allowed(r, "POST");
        }

        ctx->batch_route = 1;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_POST))) {
        return ngx_http_storefront_send_not_allowed(r, "GET, POST");
    }

    if (r->method == NGX_HTTP_GET) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        rc = ngx_http_storefront_push_args(r, ctx);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        r->main->count++;

        rc = ngx_http_storefront_push_enqueue(r, ctx);
        if (rc != NGX_DONE) {
            r->main->count--;
        }

        return rc;
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_storefront_push_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        /* 413 beyond client_max_body_size, from nginx */
        return rc;
    }

    return NGX_DONE;
}




/*
 * One decision from the query arguments: they become a JSON-like object
 * that the engine validates as it validates a JSON body.  Returns
 * NGX_DECLINED when the request is ready, else what the handler returns
 * (an error response was sent).
 */

static ngx_int_t
ngx_http_storefront_push_args(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx)
{
    int         rc;
    sf_error    err;
    sf_value    obj;
    ngx_str_t   arg;
    sf_member  *m;
    ngx_uint_t  n;

    if (ctx->batch_route) {
        return ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                   "empty body: send a JSON array or JSON "
                                   "lines of decision requests");
    }

    m = ngx_palloc(r->pool, 5 * sizeof(sf_member));
    if (m == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = 0;

    if (ngx_http_storefront_push_arg(r, "user", m, &n) != NGX_OK
        || ngx_http_storefront_push_arg(r, "category", m, &n) != NGX_OK
        || ngx_http_storefront_push_arg(r, "channel", m, &n) != NGX_OK
        || ngx_http_storefront_push_arg(r, "campaign", m, &n) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    obj.type = SF_OBJECT;
    obj.u.obj.members = m;
    obj.u.obj.n = n;

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_push_request_from_json(&obj, 0, &ctx->req, &err);

    if (rc != SF_OK) {
        return ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST, "%s",
                                              err.msg);
    }

    if (ngx_http_arg(r, (u_char *) "dry_run", sizeof("dry_run") - 1, &arg)
        == NGX_OK)
    {
        if (arg.len == 1 && arg.data[0] == '1') {
            ctx->dry_run = 1;

        } else if (!(arg.len == 1 && arg.data[0] == '0')) {
            return ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                       "\"dry_run\" must be 1 or 0");
        }
    }

    return NGX_DECLINED;
}


/* a query argument, unescaped into r->pool, as a string member */

static ngx_int_t
ngx_http_storefront_push_arg(ngx_http_request_t *r, char *name, sf_member *m,
    ngx_uint_t *n)
{
    u_char     *dst, *src;
    ngx_str_t   arg;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &arg) != NGX_OK) {
        return NGX_OK;
    }

    dst = ngx_pnalloc(r->pool, arg.len + 1);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    m[*n].name = name;
    m[*n].name_len = ngx_strlen(name);
    m[*n].value.type = SF_STRING;
    m[*n].value.u.str.p = (const char *) dst;

    src = arg.data;
    ngx_unescape_uri(&dst, &src, arg.len, 0);

    m[*n].value.u.str.len = dst - (u_char *) m[*n].value.u.str.p;

    (*n)++;

    return NGX_OK;
}


static void
ngx_http_storefront_push_body(ngx_http_request_t *r)
{
    u_char                          *p, *last;
    ngx_int_t                        rc;
    ngx_str_t                        body, arg;
    ngx_pool_cleanup_t              *cln;
    ngx_http_storefront_push_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_storefront_push_module);

    if (ngx_http_arg(r, (u_char *) "dry_run", sizeof("dry_run") - 1, &arg)
        == NGX_OK)
    {
        if (arg.len == 1 && arg.data[0] == '1') {
            ctx->dry_run = 1;

        } else if (!(arg.len == 1 && arg.data[0] == '0')) {
            ngx_http_finalize_request(r,
                ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                       "\"dry_run\" must be 1 or 0"));
            return;
        }
    }

    if (ngx_http_storefront_request_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = body.data;
    last = p + body.len;

    while (p < last && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
    {
        p++;
    }

    if (p == last) {
        /* POST with the query arguments */

        rc = ngx_http_storefront_push_args(r, ctx);

        if (rc == NGX_DECLINED) {
            rc = ngx_http_storefront_push_enqueue(r, ctx);

            if (rc == NGX_DONE) {
                /* the request is finalized after the group commit */
                return;
            }
        }

        ngx_http_finalize_request(r, rc);
        return;
    }

    /* the parsed values live as long as the request: decisions wait */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->arena = sf_arena_create(body.len < 16384 ? 16384 : 65536);
    if (ctx->arena == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_http_storefront_push_arena_cleanup;
    cln->data = ctx->arena;

    rc = ngx_http_storefront_push_parse(r, ctx, &body);

    if (rc == NGX_DONE) {
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static void
ngx_http_storefront_push_arena_cleanup(void *data)
{
    sf_arena_destroy(data);
}


/*
 * The body is one JSON document (a request object, or an array of them)
 * or JSON lines (an object per line, blank lines skipped): a document
 * that does not parse as a whole is read as JSON lines when its first
 * line is a complete object.  Returns NGX_DONE when a single decision
 * waits for the group commit, else what ngx_http_finalize_request()
 * takes.
 */

static ngx_int_t
ngx_http_storefront_push_parse(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx, ngx_str_t *body)
{
    int        rc;
    u_char    *p, *last, *eol;
    sf_error   err;
    sf_value   doc, first, *items;

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_json_parse((const char *) body->data, body->len, ctx->arena, &doc,
                       &err);

    if (rc == SF_OK) {

        if (doc.type == SF_ARRAY) {
            ctx->format = NGX_HTTP_STOREFRONT_PUSH_ARRAY;
            ctx->n = doc.u.arr.n;

            if (ctx->n > (ngx_uint_t) ctx->plcf->max_batch) {
                return ngx_http_storefront_push_too_many(r, ctx, ctx->n);
            }

            return ngx_http_storefront_push_batch(r, ctx,
                                                (sf_value *) doc.u.arr.items);
        }

        if (doc.type != SF_OBJECT) {
            return ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                   "send a JSON object, an array of them or "
                                   "JSON lines");
        }

        if (ctx->batch_route) {
            /* a batch of one */
            ctx->format = NGX_HTTP_STOREFRONT_PUSH_ARRAY;
            ctx->n = 1;

            items = ngx_palloc(r->pool, sizeof(sf_value));
            if (items == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            items[0] = doc;

            return ngx_http_storefront_push_batch(r, ctx, items);
        }

        rc = sf_push_request_from_json(&doc, 0, &ctx->req, &err);

        if (rc != SF_OK) {
            return ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                                  "%s", err.msg);
        }

        return ngx_http_storefront_push_enqueue(r, ctx);
    }

    if (rc == SF_ERR_NOMEM) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = body->data;
    last = p + body->len;

    while (p < last && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
    {
        p++;
    }

    if (p < last && *p == '{') {
        eol = ngx_strlchr(p, last, '\n');

        if (eol != NULL
            && sf_json_parse((const char *) p, eol - p, ctx->arena, &first,
                             NULL)
               == SF_OK)
        {
            return ngx_http_storefront_push_lines(r, ctx, body);
        }
    }

    return ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                          "malformed JSON: %s", err.msg);
}


static ngx_int_t
ngx_http_storefront_push_lines(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx, ngx_str_t *body)
{
    int          rc;
    u_char      *p, *q, *last, *eol;
    sf_error     err;
    sf_value    *items;
    ngx_uint_t   n, line, blank;

    last = body->data + body->len;

    /* count first: the limit before any work */

    n = 0;

    for (p = body->data; p < last; p = eol + 1) {
        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        for (q = p; q < eol; q++) {
            if (*q != ' ' && *q != '\t' && *q != '\r') {
                n++;
                break;
            }
        }
    }

    ctx->format = NGX_HTTP_STOREFRONT_PUSH_LINES;

    if (n > (ngx_uint_t) ctx->plcf->max_batch) {
        return ngx_http_storefront_push_too_many(r, ctx, n);
    }

    items = ngx_palloc(r->pool, n * sizeof(sf_value));
    ctx->lines = ngx_palloc(r->pool, n * sizeof(ngx_uint_t));

    if (items == NULL || ctx->lines == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = 0;
    line = 0;

    for (p = body->data; p < last; p = eol + 1) {
        line++;

        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        blank = 1;

        for (q = p; q < eol; q++) {
            if (*q != ' ' && *q != '\t' && *q != '\r') {
                blank = 0;
                break;
            }
        }

        if (blank) {
            continue;
        }

        err.code = 0;
        err.msg[0] = '\0';

        rc = sf_json_parse((const char *) p, eol - p, ctx->arena, &items[n],
                           &err);

        if (rc == SF_ERR_NOMEM) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc != SF_OK) {
            ctx->lines[n] = line;
            return ngx_http_storefront_push_item_error(r,
                                   NGX_HTTP_BAD_REQUEST, ctx, n,
                                   "malformed JSON");
        }

        ctx->lines[n++] = line;
    }

    ctx->n = n;

    return ngx_http_storefront_push_batch(r, ctx, items);
}


static ngx_int_t
ngx_http_storefront_push_too_many(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx, ngx_uint_t n)
{
    return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "%ui decision requests in one batch, at "
                                   "most %i are allowed "
                                   "(storefront_push_max_batch)",
                                   n, ctx->plcf->max_batch);
}


/*
 * Every element is checked first, then all are decided in order in one
 * write transaction: an element the engine rejects (an unknown category)
 * aborts it, nothing is recorded.
 */

static ngx_int_t
ngx_http_storefront_push_batch(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx, sf_value *items)
{
    int                                   rc;
    sf_db                                *db;
    sf_txn                               *txn;
    int64_t                               now;
    sf_error                              err;
    ngx_uint_t                            i, status;
    ngx_http_storefront_push_loc_conf_t  *plcf;

    plcf = ctx->plcf;

    ctx->reqs = ngx_palloc(r->pool, (ctx->n + 1) * sizeof(sf_push_request));
    ctx->decisions = ngx_palloc(r->pool,
                                (ctx->n + 1) * sizeof(sf_push_decision));

    if (ctx->reqs == NULL || ctx->decisions == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < ctx->n; i++) {
        err.code = 0;
        err.msg[0] = '\0';

        if (sf_push_request_from_json(&items[i], 0, &ctx->reqs[i], &err)
            != SF_OK)
        {
            return ngx_http_storefront_push_item_error(r,
                                   NGX_HTTP_BAD_REQUEST, ctx, i, err.msg);
        }

        if (ctx->dry_run) {
            ctx->reqs[i].dry_run = 1;
        }
    }

    if (ctx->n == 0) {
        ctx->decided = 1;
        ctx->status = NGX_HTTP_OK;
        return ngx_http_storefront_push_respond(r, ctx);
    }

    if (ngx_http_storefront_push_begin(r, plcf->durability
                                          == NGX_HTTP_STOREFRONT_PUSH_DURABLE,
                                       &db, &txn, &now, &status)
        != NGX_OK)
    {
        return ngx_http_storefront_send_error(r, status,
                                              "the database is unavailable");
    }

    for (i = 0; i < ctx->n; i++) {
        ctx->reqs[i].now_ms = now;
        ctx->reqs[i].log_keep_ms = (int64_t) plcf->log_keep * 1000;

        err.code = 0;
        err.msg[0] = '\0';

        rc = sf_txn_push_decide(txn, plcf->policy, &ctx->reqs[i],
                                &ctx->decisions[i], &err);

        if (rc == SF_OK) {
            continue;
        }

        sf_txn_abort(txn);
        sf_db_set_durable(db, 1, NULL);

        if (rc == SF_ERR_INVALID) {
            return ngx_http_storefront_push_item_error(r,
                                   NGX_HTTP_BAD_REQUEST, ctx, i, err.msg);
        }

        status = ngx_http_storefront_push_failed(r, &err, "not decided");

        return ngx_http_storefront_push_item_error(r, status, ctx, i,
                                                   err.msg);
    }

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_txn_commit(txn, &err);

    sf_db_set_durable(db, 1, NULL);

    if (rc != SF_OK) {
        status = ngx_http_storefront_push_failed(r, &err, "not recorded");

        return ngx_http_storefront_send_error(r, status,
                                              "decisions not recorded: %s",
                                              err.msg);
    }

    for (i = 0; i < ctx->n; i++) {
        ctx->counts[ctx->decisions[i].reason]++;
    }

    ctx->decided = 1;
    ctx->status = NGX_HTTP_OK;

    return ngx_http_storefront_push_respond(r, ctx);
}


/* {"error":"decision 3: ...","index":3} or {"error":"line 4: ...","line":4} */

static ngx_int_t
ngx_http_storefront_push_item_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_http_storefront_push_ctx_t *ctx, ngx_uint_t i, const char *msg)
{
    u_char   text[NGX_MAX_ERROR_STR], *p;
    sf_buf  *b;

    if (ctx->format == NGX_HTTP_STOREFRONT_PUSH_LINES) {
        p = ngx_snprintf(text, sizeof(text), "line %ui: %s", ctx->lines[i],
                         msg);

    } else {
        p = ngx_snprintf(text, sizeof(text), "decision %ui: %s", i, msg);
    }

    b = ngx_http_storefront_scratch();

    sf_buf_appends(b, "{\"error\":");
    sf_buf_append_json_string(b, (const char *) text, p - text);

    if (ctx->format == NGX_HTTP_STOREFRONT_PUSH_LINES) {
        sf_buf_printf(b, ",\"line\":%lu", (unsigned long) ctx->lines[i]);

    } else {
        sf_buf_printf(b, ",\"index\":%lu", (unsigned long) i);
    }

    if (sf_buf_appends(b, "}") != SF_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_storefront_send_buf(r, status, b);
}


/* ---- single decisions: the group commit ---------------------------------- */

static ngx_int_t
ngx_http_storefront_push_enqueue(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx)
{
    ngx_pool_cleanup_t  *cln;

    if (ctx->dry_run) {
        ctx->req.dry_run = 1;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_storefront_push_dequeue;
    cln->data = ctx;

    ngx_queue_insert_tail(&ngx_http_storefront_push_pending, &ctx->queue);
    ctx->queued = 1;

    if (!ngx_http_storefront_push_event.posted) {
        ngx_post_event(&ngx_http_storefront_push_event, &ngx_posted_events);
    }

    return NGX_DONE;
}


/* a request that goes away while it waits (it should not) leaves the queue */

static void
ngx_http_storefront_push_dequeue(void *data)
{
    ngx_http_storefront_push_ctx_t  *ctx = data;

    if (ctx->queued) {
        ngx_queue_remove(&ctx->queue);
        ctx->queued = 0;
    }
}


/*
 * Runs once per event loop iteration in which single decisions arrived:
 * they are decided in one write transaction, in arrival order, and
 * answered after its commit.  An element the engine rejects as invalid
 * is answered 400 and changes nothing (the engine checks before it
 * writes); any other failure rolls all of them back.
 */

static void
ngx_http_storefront_push_flush(ngx_event_t *ev)
{
    int                              rc;
    sf_db                           *db;
    sf_txn                          *txn;
    int64_t                          now;
    sf_error                         err;
    ngx_str_t                        msg;
    ngx_uint_t                       durable, status;
    ngx_queue_t                      group, *q;
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_storefront_push_ctx_t  *ctx;

    if (ngx_queue_empty(&ngx_http_storefront_push_pending)) {
        return;
    }

    /* decisions that arrive while these are answered wait for the next */

    group = ngx_http_storefront_push_pending;
    group.next->prev = &group;
    group.prev->next = &group;

    ngx_queue_init(&ngx_http_storefront_push_pending);

    durable = 0;

    for (q = ngx_queue_head(&group);
         q != ngx_queue_sentinel(&group);
         q = ngx_queue_next(q))
    {
        ctx = ngx_queue_data(q, ngx_http_storefront_push_ctx_t, queue);

        if (ctx->plcf->durability == NGX_HTTP_STOREFRONT_PUSH_DURABLE) {
            durable = 1;
        }
    }

    ctx = ngx_queue_data(ngx_queue_head(&group),
                         ngx_http_storefront_push_ctx_t, queue);
    r = ctx->request;

    status = NGX_HTTP_OK;

    if (ngx_http_storefront_push_begin(r, durable, &db, &txn, &now, &status)
        != NGX_OK)
    {
        goto answer;
    }

    for (q = ngx_queue_head(&group);
         q != ngx_queue_sentinel(&group);
         q = ngx_queue_next(q))
    {
        ctx = ngx_queue_data(q, ngx_http_storefront_push_ctx_t, queue);

        ctx->req.now_ms = now;
        ctx->req.log_keep_ms = (int64_t) ctx->plcf->log_keep * 1000;

        err.code = 0;
        err.msg[0] = '\0';

        rc = sf_txn_push_decide(txn, ctx->plcf->policy, &ctx->req,
                                &ctx->decision, &err);

        if (rc == SF_OK) {
            ctx->status = NGX_HTTP_OK;
            continue;
        }

        if (rc == SF_ERR_INVALID) {
            /* the engine checks before it writes: the others go on */

            msg.data = (u_char *) err.msg;
            msg.len = ngx_strlen(err.msg);

            ctx->status = NGX_HTTP_BAD_REQUEST;
            ctx->error.data = ngx_pstrdup(ctx->request->pool, &msg);
            ctx->error.len = ctx->error.data ? msg.len : 0;
            continue;
        }

        sf_txn_abort(txn);
        sf_db_set_durable(db, 1, NULL);

        status = ngx_http_storefront_push_failed(ctx->request, &err,
                                                 "not decided");
        goto answer;
    }

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_txn_commit(txn, &err);

    sf_db_set_durable(db, 1, NULL);

    if (rc != SF_OK) {
        status = ngx_http_storefront_push_failed(r, &err, "not recorded");
    }

answer:

    /*
     * Each is taken off the list before it is finalized: finalizing one
     * request may free another (of the same connection), whose pool
     * cleanup then takes it off the list.
     */

    while (!ngx_queue_empty(&group)) {
        q = ngx_queue_head(&group);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_http_storefront_push_ctx_t, queue);
        ctx->queued = 0;

        r = ctx->request;
        c = r->connection;

        if (status != NGX_HTTP_OK) {
            rc = ngx_http_storefront_send_error(r, status,
                                   status == NGX_HTTP_SERVICE_UNAVAILABLE
                                   ? "the database is unavailable"
                                   : "the decision was not recorded");

        } else if (ctx->status == NGX_HTTP_BAD_REQUEST) {
            rc = ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                                "%V", &ctx->error);

        } else {
            ctx->decided = 1;
            ctx->n = 1;
            ctx->counts[ctx->decision.reason]++;

            rc = ngx_http_storefront_push_respond(r, ctx);
        }

        ngx_http_finalize_request(r, rc);
        ngx_http_run_posted_requests(c);
    }
}


/*
 * Takes the write lock, then the time: decisions are recorded in the
 * order of their times across workers.  Relaxed commits are not synced.
 */

static ngx_int_t
ngx_http_storefront_push_begin(ngx_http_request_t *r, ngx_uint_t durable,
    sf_db **dbp, sf_txn **txn, int64_t *now_ms, ngx_uint_t *status)
{
    sf_db       *db;
    sf_error     err;
    ngx_time_t  *tp;

    db = ngx_http_storefront_worker_db(r->connection->log);

    if (db == NULL) {
        *status = NGX_HTTP_SERVICE_UNAVAILABLE;
        return NGX_ERROR;
    }

    err.code = 0;
    err.msg[0] = '\0';

    if (!durable) {
        sf_db_set_durable(db, 0, NULL);
    }

    if (sf_txn_begin(db, txn, &err) != SF_OK) {
        sf_db_set_durable(db, 1, NULL);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront push: no write transaction: %s", err.msg);

        *status = NGX_HTTP_SERVICE_UNAVAILABLE;
        return NGX_ERROR;
    }

    ngx_time_update();

    tp = ngx_timeofday();

    *now_ms = (int64_t) tp->sec * 1000 + tp->msec;
    *dbp = db;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_storefront_push_failed(ngx_http_request_t *r, sf_error *err,
    const char *what)
{
    if (err->code == SF_ERR_MAP_FULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront push: decisions %s: %s (\"map_size\" of "
                      "\"storefront_db\")", what, err->msg);

        return NGX_HTTP_INSUFFICIENT_STORAGE;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "storefront push: decisions %s: %s", what, err->msg);

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/* ---- answers ------------------------------------------------------------- */

static ngx_int_t
ngx_http_storefront_push_respond(ngx_http_request_t *r,
    ngx_http_storefront_push_ctx_t *ctx)
{
    sf_buf      *b;
    ngx_uint_t   i;

    b = ngx_http_storefront_scratch();

    if (ctx->format == NGX_HTTP_STOREFRONT_PUSH_SINGLE) {

        if (ngx_http_storefront_push_answer(b, &ctx->req, &ctx->decision)
            != NGX_OK
            || ngx_http_storefront_push_headers(r, &ctx->req, &ctx->decision)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_storefront_push_send(r, NGX_HTTP_OK, b, 0);
    }

    if (ctx->format == NGX_HTTP_STOREFRONT_PUSH_ARRAY) {
        sf_buf_append(b, "[", 1);
    }

    for (i = 0; i < ctx->n; i++) {
        if (i && ctx->format == NGX_HTTP_STOREFRONT_PUSH_ARRAY) {
            sf_buf_append(b, ",", 1);
        }

        if (ngx_http_storefront_push_answer(b, &ctx->reqs[i],
                                            &ctx->decisions[i])
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ctx->format == NGX_HTTP_STOREFRONT_PUSH_LINES
            && i + 1 < ctx->n)
        {
            sf_buf_append(b, "\n", 1);
        }
    }

    if (ctx->format == NGX_HTTP_STOREFRONT_PUSH_ARRAY) {
        sf_buf_append(b, "]", 1);
    }

    return ngx_http_storefront_push_send(r, NGX_HTTP_OK, b,
                              ctx->format == NGX_HTTP_STOREFRONT_PUSH_LINES);
}


/*
 * {"user":"u1","category":"promo","channel":"push","campaign":"c1",
 *  "decision":"deny","reason":"cap","retry_after":3600,
 *  "next_allowed":"...Z","limit":2,"remaining":0,"reset":"...Z",
 *  "reset_after":3600,"quiet":false,"local_time":"21:30",
 *  "time":"...Z","dry_run":false}
 */

static ngx_int_t
ngx_http_storefront_push_answer(sf_buf *b, const sf_push_request *req,
    const sf_push_decision *d)
{
    u_char   *p, text[NGX_HTTP_STOREFRONT_PUSH_ANSWER_LEN];
    int64_t   wait;

    /* the strings are escaped by the engine; the rest without printf(3) */

    if (sf_buf_appends(b, "{\"user\":") != SF_OK
        || sf_buf_append_json_string(b, req->user, req->user_len) != SF_OK
        || sf_buf_appends(b, ",\"category\":") != SF_OK
        || sf_buf_append_json_string(b, req->category, req->category_len)
           != SF_OK
        || sf_buf_appends(b, ",\"channel\":") != SF_OK
        || sf_buf_append_json_string(b, req->channel, req->channel_len)
           != SF_OK)
    {
        return NGX_ERROR;
    }

    if (req->campaign_len
        && (sf_buf_appends(b, ",\"campaign\":") != SF_OK
            || sf_buf_append_json_string(b, req->campaign, req->campaign_len)
               != SF_OK))
    {
        return NGX_ERROR;
    }

    p = ngx_sprintf(text, ",\"decision\":\"%s\",\"reason\":\"%s\"",
                    d->allow ? "allow" : "deny",
                    sf_push_reason_name(d->reason));

    if (!d->allow && d->retry_at_ms > 0) {
        wait = ngx_http_storefront_push_seconds(d->retry_at_ms - req->now_ms);

        p = ngx_sprintf(p, ",\"retry_after\":%L,\"next_allowed\":", wait);
        p = ngx_http_storefront_push_time(p, ngx_http_storefront_push_seconds(
                                                         d->retry_at_ms));

    } else {
        p = ngx_cpymem(p, ",\"retry_after\":null,\"next_allowed\":null",
                       sizeof(",\"retry_after\":null,\"next_allowed\":null")
                       - 1);
    }

    if (d->limit) {
        p = ngx_sprintf(p, ",\"limit\":%uD,\"remaining\":%uD,\"reset\":",
                        d->limit, d->remaining);
        p = ngx_http_storefront_push_time(p,
                          ngx_http_storefront_push_seconds(d->reset_ms));
        p = ngx_sprintf(p, ",\"reset_after\":%L",
                        ngx_http_storefront_push_seconds(d->reset_ms
                                                         - req->now_ms));

    } else {
        p = ngx_cpymem(p, ",\"limit\":null,\"remaining\":null,"
                          "\"reset\":null,\"reset_after\":null",
                       sizeof(",\"limit\":null,\"remaining\":null,"
                              "\"reset\":null,\"reset_after\":null") - 1);
    }

    p = ngx_sprintf(p, ",\"quiet\":%s", d->quiet ? "true" : "false");

    /* opt-out and duplicates are decided before the local time is known */

    if (d->reason == SF_PUSH_OPTED_OUT || d->reason == SF_PUSH_DUPLICATE) {
        p = ngx_cpymem(p, ",\"local_time\":null",
                       sizeof(",\"local_time\":null") - 1);

    } else {
        p = ngx_sprintf(p, ",\"local_time\":\"%02d:%02d\"",
                        d->local_minute / 60, d->local_minute % 60);
    }

    p = ngx_cpymem(p, ",\"time\":", sizeof(",\"time\":") - 1);
    p = ngx_http_storefront_push_time(p, req->now_ms / 1000);
    p = ngx_sprintf(p, ",\"dry_run\":%s}", req->dry_run ? "true" : "false");

    return sf_buf_append(b, text, p - text) == SF_OK ? NGX_OK : NGX_ERROR;
}


/* "YYYY-MM-DDTHH:MM:SSZ", quoted */

static u_char *
ngx_http_storefront_push_time(u_char *p, int64_t t)
{
    ngx_tm_t  tm;

    ngx_gmtime((time_t) t, &tm);

    return ngx_sprintf(p, "\"%04d-%02d-%02dT%02d:%02d:%02dZ\"",
                       tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                       tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);
}


/* Retry-After when denied with a time; X-RateLimit-* when a cap applies */

static ngx_int_t
ngx_http_storefront_push_headers(ngx_http_request_t *r,
    const sf_push_request *req, const sf_push_decision *d)
{
    if (!d->allow && d->retry_at_ms > 0) {
        if (ngx_http_storefront_push_header(r, "Retry-After",
                    ngx_http_storefront_push_seconds(d->retry_at_ms
                                                     - req->now_ms))
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (d->limit == 0) {
        return NGX_OK;
    }

    if (ngx_http_storefront_push_header(r, "X-RateLimit-Limit", d->limit)
        != NGX_OK
        || ngx_http_storefront_push_header(r, "X-RateLimit-Remaining",
                                           d->remaining)
           != NGX_OK
        || ngx_http_storefront_push_header(r, "X-RateLimit-Reset",
                    ngx_http_storefront_push_seconds(d->reset_ms
                                                     - req->now_ms))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_storefront_push_header(ngx_http_request_t *r, char *name,
    int64_t value)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%L", value) - p;

#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/* JSON, or JSON lines (application/x-ndjson) */

static ngx_int_t
ngx_http_storefront_push_send(ngx_http_request_t *r, ngx_uint_t status,
    sf_buf *b, ngx_uint_t lines)
{
    u_char           *p;
    ngx_int_t         rc;
    ngx_buf_t        *out;
    ngx_chain_t       cl;
    ngx_table_elt_t  *h;

    if (!lines) {
        return ngx_http_storefront_send_buf(r, status, b);
    }

    p = ngx_pnalloc(r->pool, b->len + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, b->data, b->len);
    p[b->len] = '\n';

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->len + 1;

    ngx_str_set(&r->headers_out.content_type, "application/x-ndjson");
    r->headers_out.content_type_len = sizeof("application/x-ndjson") - 1;
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

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out = ngx_calloc_buf(r->pool);
    if (out == NULL) {
        return NGX_ERROR;
    }

    out->pos = p;
    out->last = p + b->len + 1;
    out->memory = 1;
    out->last_buf = (r == r->main) ? 1 : 0;
    out->last_in_chain = 1;

    cl.buf = out;
    cl.next = NULL;

    return ngx_http_output_filter(r, &cl);
}


/* {"allow":3,"cap":1,...,"decisions":7,"denied":4} */

static ngx_int_t
ngx_http_storefront_push_counters(ngx_http_request_t *r)
{
    int        i;
    sf_db     *db;
    sf_buf    *b;
    uint64_t   counts[SF_PUSH__COUNT], total;
    sf_error   err;

    db = ngx_http_storefront_worker_db(r->connection->log);

    if (db == NULL) {
        return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "the database is unavailable");
    }

    err.code = 0;
    err.msg[0] = '\0';

    if (sf_db_push_counters(db, counts, &err) != SF_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront push: counters: %s", err.msg);

        return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "the counters cannot be read");
    }

    b = ngx_http_storefront_scratch();

    total = 0;

    for (i = 0; i < SF_PUSH__COUNT; i++) {
        sf_buf_printf(b, "%s\"%s\":%llu", i ? "," : "{",
                      sf_push_reason_name((sf_push_reason) i),
                      (unsigned long long) counts[i]);
        total += counts[i];
    }

    if (sf_buf_printf(b, ",\"decisions\":%llu,\"denied\":%llu}",
                      (unsigned long long) total,
                      (unsigned long long) (total - counts[SF_PUSH_ALLOW]))
        != SF_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_storefront_send_buf(r, NGX_HTTP_OK, b);
}


/*
 * {"source":"database"|"nginx","policy":{...}}: a policy stored in the
 * database replaces the directives.  Reading it takes a write
 * transaction (the engine reads the policy where it decides), aborted.
 */

static ngx_int_t
ngx_http_storefront_push_policy(ngx_http_request_t *r,
    ngx_http_storefront_push_loc_conf_t *plcf)
{
    int              rc, found;
    sf_db           *db;
    sf_buf          *b;
    sf_txn          *txn;
    sf_error         err;
    sf_push_policy   stored;

    db = ngx_http_storefront_worker_db(r->connection->log);

    if (db == NULL) {
        return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "the database is unavailable");
    }

    err.code = 0;
    err.msg[0] = '\0';

    found = 0;

    rc = sf_txn_begin(db, &txn, &err);

    if (rc == SF_OK) {
        rc = sf_txn_get_push_policy(txn, &stored, &found, &err);
        sf_txn_abort(txn);
    }

    if (rc != SF_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront push: policy: %s", err.msg);

        return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "the policy cannot be read");
    }

    b = ngx_http_storefront_scratch();

    sf_buf_appends(b, found ? "{\"source\":\"database\",\"policy\":"
                            : "{\"source\":\"nginx\",\"policy\":");

    if (sf_push_policy_to_json(found ? &stored : plcf->policy, b) != SF_OK
        || sf_buf_appends(b, "}") != SF_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_storefront_send_buf(r, NGX_HTTP_OK, b);
}


/* milliseconds to whole seconds, rounded up */

static int64_t
ngx_http_storefront_push_seconds(int64_t ms)
{
    if (ms <= 0) {
        return ms / 1000;
    }

    return (ms + 999) / 1000;
}


/* ---- variables ----------------------------------------------------------- */

/*
 * $storefront_push_decision   allow | deny; a batch: "allow=3,deny=1"
 * $storefront_push_reason     allow | cap | ...; a batch: the reasons
 *                             counted, "allow=3,cap=1"
 * $storefront_push_user       the user of a single decision
 * $storefront_push_category   its category
 */

static ngx_int_t
ngx_http_storefront_push_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                          *p, *start;
    size_t                           len;
    ngx_uint_t                       i, allowed;
    const char                      *s;
    ngx_http_storefront_push_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_storefront_push_module);

    if (ctx == NULL || !ctx->decided) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    if (ctx->format == NGX_HTTP_STOREFRONT_PUSH_SINGLE) {

        switch (data) {

        case NGX_HTTP_STOREFRONT_PUSH_VAR_DECISION:
            s = ctx->decision.allow ? "allow" : "deny";
            v->data = (u_char *) s;
            v->len = ngx_strlen(s);
            return NGX_OK;

        case NGX_HTTP_STOREFRONT_PUSH_VAR_REASON:
            s = sf_push_reason_name(ctx->decision.reason);
            v->data = (u_char *) s;
            v->len = ngx_strlen(s);
            return NGX_OK;

        case NGX_HTTP_STOREFRONT_PUSH_VAR_USER:
            v->data = (u_char *) ctx->req.user;
            v->len = ctx->req.user_len;
            return NGX_OK;

        default: /* NGX_HTTP_STOREFRONT_PUSH_VAR_CATEGORY */
            v->data = (u_char *) ctx->req.category;
            v->len = ctx->req.category_len;
            return NGX_OK;
        }
    }

    if (data == NGX_HTTP_STOREFRONT_PUSH_VAR_USER
        || data == NGX_HTTP_STOREFRONT_PUSH_VAR_CATEGORY)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    len = SF_PUSH__COUNT * (sizeof("quiet_hours=,") - 1 + NGX_INT_T_LEN);

    start = ngx_pnalloc(r->pool, len);
    if (start == NULL) {
        return NGX_ERROR;
    }

    p = start;

    if (data == NGX_HTTP_STOREFRONT_PUSH_VAR_DECISION) {
        allowed = ctx->counts[SF_PUSH_ALLOW];
        p = ngx_sprintf(p, "allow=%ui,deny=%ui", allowed, ctx->n - allowed);

    } else {
        for (i = 0; i < SF_PUSH__COUNT; i++) {
            if (ctx->counts[i] == 0) {
                continue;
            }

            p = ngx_sprintf(p, "%s%s=%ui", p == start ? "" : ",",
                            sf_push_reason_name((sf_push_reason) i),
                            ctx->counts[i]);
        }
    }

    v->data = start;
    v->len = p - start;

    return NGX_OK;
}


static ngx_int_t
ngx_http_storefront_push_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_storefront_push_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* ---- directives ---------------------------------------------------------- */

static char *
ngx_http_storefront_push(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_storefront_push_loc_conf_t *plcf = conf;

    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_storefront_loc_conf_t   *slcf;
    ngx_http_storefront_main_conf_t  *smcf;

    if (plcf->enable) {
        return "is duplicate";
    }

    plcf->enable = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_storefront_push_handler;

    /* the worker opens the database; "storefront_db" is checked in merge */

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_storefront_module);
    smcf->enabled = 1;

    /* the endpoint is not a storefront page: no decision, no cookie */

    slcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_storefront_module);

    if (slcf->enable == NGX_CONF_UNSET) {
        slcf->enable = 0;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_storefront_push_token(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_storefront_push_loc_conf_t *plcf = conf;

    return ngx_http_storefront_conf_token(cf, cmd, &plcf->token);
}


/* storefront_push_cap <category> <cap> [<cap>...] | off; */

static char *
ngx_http_storefront_push_cap(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_storefront_push_loc_conf_t *plcf = conf;

    sf_error                         err;
    ngx_str_t                       *value;
    ngx_uint_t                       i;
    sf_push_policy                   check;
    ngx_http_storefront_push_cap_t  *cap;

    value = cf->args->elts;

    if (plcf->caps == NULL) {
        plcf->caps = ngx_array_create(cf->pool, 4,
                                    sizeof(ngx_http_storefront_push_cap_t));
        if (plcf->caps == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    cap = plcf->caps->elts;

    for (i = 0; i < plcf->caps->nelts; i++) {
        if (cap[i].name.len == value[1].len
            && ngx_strncmp(cap[i].name.data, value[1].data, value[1].len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate category \"%V\" in \"%V\" "
                               "directive", &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    ngx_memzero(&check, sizeof(sf_push_policy));

    err.code = 0;
    err.msg[0] = '\0';

    if (sf_push_policy_set(&check, (const char *) value[1].data, value[1].len,
                           NULL, 0, -1, -1, &err)
        != SF_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in \"%V\" directive",
                           err.msg, &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts - 2 > SF_PUSH_MAX_CAPS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many caps in \"%V\" directive, at most %d "
                           "per category", &cmd->name, SF_PUSH_MAX_CAPS);
        return NGX_CONF_ERROR;
    }

    cap = ngx_array_push(plcf->caps);
    if (cap == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(cap, sizeof(ngx_http_storefront_push_cap_t));

    cap->name = value[1];

    if (cf->args->nelts == 3 && ngx_strcmp(value[2].data, "off") == 0) {
        return NGX_CONF_OK;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        if (sf_push_parse_cap((const char *) value[i].data, value[i].len,
                              &cap->caps[cap->ncaps])
            != SF_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid cap \"%V\" in \"%V\" directive: use "
                               "<max>/<period>, e.g. \"2/7d\", at most %d "
                               "per period of s, m, h, d or w",
                               &value[i], &cmd->name, SF_PUSH_MAX_RING);
            return NGX_CONF_ERROR;
        }

        cap->ncaps++;
    }

    return NGX_CONF_OK;
}


/* storefront_push_exempt|urgent <category>... | none; */

static char *
ngx_http_storefront_push_list(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    sf_error         err;
    ngx_str_t       *value, *name;
    ngx_uint_t       i;
    ngx_array_t    **a;
    sf_push_policy   check;

    a = (ngx_array_t **) (p + cmd->offset);

    if (*a != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    *a = ngx_array_create(cf->pool, cf->args->nelts, sizeof(ngx_str_t));
    if (*a == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "none") == 0) {
        return NGX_CONF_OK;
    }

    ngx_memzero(&check, sizeof(sf_push_policy));

    for (i = 1; i < cf->args->nelts; i++) {
        err.code = 0;
        err.msg[0] = '\0';

        if (sf_push_policy_set(&check, (const char *) value[i].data,
                               value[i].len, NULL, 0, -1, -1, &err)
            != SF_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in \"%V\" directive",
                               err.msg, &cmd->name);
            return NGX_CONF_ERROR;
        }

        name = ngx_array_push(*a);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = value[i];
    }

    return NGX_CONF_OK;
}


/* storefront_push_quiet_hours 22:00-08:00 | off; */

static char *
ngx_http_storefront_push_quiet(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_storefront_push_loc_conf_t *plcf = conf;

    ngx_int_t   start, end;
    ngx_str_t  *value;

    if (plcf->quiet != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        plcf->quiet = NGX_HTTP_STOREFRONT_PUSH_QUIET_OFF;
        return NGX_CONF_OK;
    }

    if (value[1].len != 11 || value[1].data[5] != '-') {
        goto invalid;
    }

    start = ngx_http_storefront_push_hhmm(value[1].data);
    end = ngx_http_storefront_push_hhmm(value[1].data + 6);

    if (start == NGX_ERROR || end == NGX_ERROR || start == end) {
        goto invalid;
    }

    plcf->quiet = start * 1440 + end;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid quiet hours \"%V\" in \"%V\" directive: use "
                       "\"HH:MM-HH:MM\" (may wrap midnight) or \"off\"",
                       &value[1], &cmd->name);
    return NGX_CONF_ERROR;
}


/* "HH:MM" as minutes after midnight */

static ngx_int_t
ngx_http_storefront_push_hhmm(u_char *p)
{
    ngx_int_t  h, m;

    if (p[2] != ':') {
        return NGX_ERROR;
    }

    h = ngx_atoi(p, 2);
    m = ngx_atoi(p + 3, 2);

    if (h == NGX_ERROR || m == NGX_ERROR || h > 23 || m > 59) {
        return NGX_ERROR;
    }

    return h * 60 + m;
}


/* storefront_push_default_tz +08:00 | -05:30 | UTC; */

static char *
ngx_http_storefront_push_tz(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_storefront_push_loc_conf_t *plcf = conf;

    ngx_int_t   h, m;
    ngx_str_t  *value;

    if (plcf->tz != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "UTC") == 0
        || ngx_strcmp(value[1].data, "Z") == 0)
    {
        plcf->tz = 0;
        return NGX_CONF_OK;
    }

    if (value[1].len != 6
        || (value[1].data[0] != '+' && value[1].data[0] != '-')
        || value[1].data[3] != ':')
    {
        goto invalid;
    }

    h = ngx_atoi(value[1].data + 1, 2);
    m = ngx_atoi(value[1].data + 4, 2);

    if (h == NGX_ERROR || m == NGX_ERROR || m > 59 || h * 60 + m > 14 * 60) {
        goto invalid;
    }

    plcf->tz = (value[1].data[0] == '-' ? -1 : 1) * (h * 60 + m);

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid time zone offset \"%V\" in \"%V\" "
                       "directive: use \"+HH:MM\", \"-HH:MM\" or \"UTC\"",
                       &value[1], &cmd->name);
    return NGX_CONF_ERROR;
}


/* storefront_push_throttle <rate>r/s|r/m [burst=<n>] | off; */

/* storefront_push_log_keep time | off: how long the decision log keeps */

static char *
ngx_http_storefront_push_log_keep(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    time_t     *keep, t;
    ngx_str_t  *value;

    keep = (time_t *) (p + cmd->offset);

    if (*keep != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        *keep = 0;
        return NGX_CONF_OK;
    }

    t = ngx_parse_time(&value[1], 1);

    if (t == (time_t) NGX_ERROR || t < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\": a time of at least 1s, "
                           "or \"off\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    *keep = t;

    return NGX_CONF_OK;
}


static char *
ngx_http_storefront_push_throttle(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_storefront_push_loc_conf_t *plcf = conf;

    u_char     *p;
    size_t      len;
    ngx_int_t   rate, scale, burst;
    ngx_str_t  *value;

    if (plcf->rate != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\" directive",
                               &value[2], &cmd->name);
            return NGX_CONF_ERROR;
        }

        plcf->rate = 0;
        plcf->burst = 0;
        return NGX_CONF_OK;
    }

    len = value[1].len;
    p = value[1].data + len - 3;
    scale = 1;

    if (len > 3 && ngx_strncmp(p, "r/s", 3) == 0) {
        len -= 3;

    } else if (len > 3 && ngx_strncmp(p, "r/m", 3) == 0) {
        scale = 60;
        len -= 3;

    } else {
        len = 0;
    }

    rate = len ? ngx_atoi(value[1].data, len) : NGX_ERROR;

    if (rate <= 0 || rate > 10000000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rate \"%V\" in \"%V\" directive: use "
                           "\"<n>r/s\", \"<n>r/m\" or \"off\"",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    burst = 0;

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "burst=", 6) != 0
            || (burst = ngx_atoi(value[2].data + 6, value[2].len - 6))
               == NGX_ERROR
            || burst > 10000000)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\" directive",
                               &value[2], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    plcf->rate = rate * 1000 / scale;
    plcf->burst = burst;

    if (plcf->rate == 0) {
        plcf->rate = 1;
    }

    return NGX_CONF_OK;
}


/* ---- configuration ------------------------------------------------------- */

static void *
ngx_http_storefront_push_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_storefront_push_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_storefront_push_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->enable = 0;
     *     conf->token = { 0, NULL };
     *     conf->caps = NULL;
     *     conf->exempt = NULL;
     *     conf->urgent = NULL;
     *     conf->policy = NULL;
     */

    conf->quiet = NGX_CONF_UNSET;
    conf->tz = NGX_CONF_UNSET;
    conf->rate = NGX_CONF_UNSET;
    conf->burst = NGX_CONF_UNSET;
    conf->durability = NGX_CONF_UNSET_UINT;
    conf->max_batch = NGX_CONF_UNSET;
    conf->log_keep = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_storefront_push_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_storefront_push_loc_conf_t *prev = parent;
    ngx_http_storefront_push_loc_conf_t *conf = child;

    ngx_http_storefront_main_conf_t  *smcf;

    ngx_conf_merge_str_value(conf->token, prev->token, "");

    /* a level with any of these lists replaces the lists above it */

    if (conf->caps == NULL) {
        conf->caps = prev->caps;
    }

    if (conf->exempt == NULL) {
        conf->exempt = prev->exempt;
    }

    if (conf->urgent == NULL) {
        conf->urgent = prev->urgent;
    }

    ngx_conf_merge_value(conf->quiet, prev->quiet, NGX_CONF_UNSET);
    ngx_conf_merge_value(conf->tz, prev->tz, NGX_CONF_UNSET);

    if (conf->rate == NGX_CONF_UNSET) {
        conf->rate = prev->rate;
        conf->burst = prev->burst;
    }

    ngx_conf_merge_uint_value(conf->durability, prev->durability,
                              NGX_HTTP_STOREFRONT_PUSH_DURABLE);
    ngx_conf_merge_value(conf->max_batch, prev->max_batch, 10000);
    ngx_conf_merge_sec_value(conf->log_keep, prev->log_keep,
                             30 * 24 * 60 * 60);

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    if (conf->token.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"storefront_push\" requires "
                           "\"storefront_push_token\"");
        return NGX_CONF_ERROR;
    }

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_storefront_module);

    if (smcf->db_path.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"storefront_db\" is defined "
                           "for \"storefront_push\"");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_storefront_push_build(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the engine's defaults with the directives over them */

static ngx_int_t
ngx_http_storefront_push_build(ngx_conf_t *cf,
    ngx_http_storefront_push_loc_conf_t *conf)
{
    sf_error                         err;
    ngx_str_t                       *name;
    ngx_uint_t                       i, j;
    sf_push_policy                  *p;
    ngx_http_storefront_push_cap_t  *cap;

    p = ngx_palloc(cf->pool, sizeof(sf_push_policy));
    if (p == NULL) {
        return NGX_ERROR;
    }

    sf_push_policy_default(p);

    err.code = 0;
    err.msg[0] = '\0';

    if (conf->caps) {
        cap = conf->caps->elts;

        for (i = 0; i < conf->caps->nelts; i++) {
            if (sf_push_policy_set(p, (const char *) cap[i].name.data,
                                   cap[i].name.len, cap[i].caps,
                                   (uint32_t) cap[i].ncaps, -1, -1, &err)
                != SF_OK)
            {
                goto failed;
            }

            if (cap[i].ncaps == 0) {
                ngx_http_storefront_push_category(p, &cap[i].name)->ncaps = 0;
            }
        }
    }

    if (conf->exempt) {
        for (j = 0; j < p->ncategories; j++) {
            p->categories[j].exempt = 0;
        }

        name = conf->exempt->elts;

        for (i = 0; i < conf->exempt->nelts; i++) {
            if (sf_push_policy_set(p, (const char *) name[i].data,
                                   name[i].len, NULL, 0, 1, -1, &err)
                != SF_OK)
            {
                goto failed;
            }
        }
    }

    if (conf->urgent) {
        for (j = 0; j < p->ncategories; j++) {
            p->categories[j].urgent = 0;
        }

        name = conf->urgent->elts;

        for (i = 0; i < conf->urgent->nelts; i++) {
            if (sf_push_policy_set(p, (const char *) name[i].data,
                                   name[i].len, NULL, 0, -1, 1, &err)
                != SF_OK)
            {
                goto failed;
            }
        }
    }

    if (conf->quiet == NGX_HTTP_STOREFRONT_PUSH_QUIET_OFF) {
        p->has_quiet = 0;

    } else if (conf->quiet != NGX_CONF_UNSET) {
        p->has_quiet = 1;
        p->quiet_start = (uint16_t) (conf->quiet / 1440);
        p->quiet_end = (uint16_t) (conf->quiet % 1440);
    }

    if (conf->tz != NGX_CONF_UNSET) {
        p->default_tz_min = (int32_t) conf->tz;
    }

    if (conf->rate != NGX_CONF_UNSET) {
        p->throttle_rate = (double) conf->rate / 1000;
        p->throttle_burst = (double) conf->burst;
    }

    conf->policy = p;

    return NGX_OK;

failed:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "storefront_push: %s", err.msg);
    return NGX_ERROR;
}


static sf_push_category *
ngx_http_storefront_push_category(sf_push_policy *p, ngx_str_t *name)
{
    uint32_t  i;

    for (i = 0; i < p->ncategories; i++) {
        if (ngx_strlen(p->categories[i].name) == name->len
            && ngx_strncmp(p->categories[i].name, name->data, name->len) == 0)
        {
            return &p->categories[i];
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_storefront_push_init_process(ngx_cycle_t *cycle)
{
    ngx_queue_init(&ngx_http_storefront_push_pending);

    ngx_memzero(&ngx_http_storefront_push_event, sizeof(ngx_event_t));

    ngx_http_storefront_push_event.handler = ngx_http_storefront_push_flush;
    ngx_http_storefront_push_event.log = cycle->log;
    ngx_http_storefront_push_event.data = &ngx_http_storefront_push_pending;

    return NGX_OK;
}
