
/*
 * storefront: page layouts at the edge.
 *
 *     location / {
 *         storefront on;
 *         storefront_page home;            # or a complex value
 *         proxy_pass http://app;           # X-Storefront-Layout, -Modules
 *     }
 *
 *     location = /home {
 *         storefront on;
 *         storefront_page home;
 *         storefront_assemble /shell/home; # the page, from fragments
 *         storefront_fragment_timeout 500ms;
 *     }
 *
 * The layout is decided once per request, in the decision chain of
 * ngx_http_storefront_module while its snapshot is held, for the page type
 * of the location where the decision is made.  When that location names
 * no page type, the facts (attributes and experiment assignments) are
 * copied into the request pool, and a later location with
 * storefront_page (after try_files or error_page) decides from them.
 * The decision is shared by the request's internal redirects and
 * subrequests (a pool cleanup marks it, as the core's context).
 *
 * Edge assembly: the content handler fetches the shell and one fragment
 * per module as in-memory background subrequests, all started at once.
 * In-memory, so that a failed or late fragment can be replaced by its
 * fallback; background, so that a fragment still running when the page
 * timer fires does not hold the page back (a background subrequest is
 * not in the postponed list that orders output).  When every part is in,
 * or when storefront_fragment_timeout fires, the page is the shell with
 * the placeholder replaced by the fragments in layout order, sent from
 * buffers that point into the subrequests' output (no copy).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_storefront.h"
#include "ngx_http_storefront_ads.h"


#define NGX_HTTP_STOREFRONT_PAGE_NAME_MAX     64
#define NGX_HTTP_STOREFRONT_PAGE_MODULES_MAX  4096   /* Modules header */
#define NGX_HTTP_STOREFRONT_PAGE_DEPTH_MAX    8      /* attribute copies */

#define NGX_HTTP_STOREFRONT_PAGE_VAR_PAGE     0
#define NGX_HTTP_STOREFRONT_PAGE_VAR_LAYOUT   1
#define NGX_HTTP_STOREFRONT_PAGE_VAR_RULE     2
#define NGX_HTTP_STOREFRONT_PAGE_VAR_MODULES  3
#define NGX_HTTP_STOREFRONT_PAGE_VAR_COUNT    4

#define NGX_HTTP_STOREFRONT_PAGE_HDR_LAYOUT   0
#define NGX_HTTP_STOREFRONT_PAGE_HDR_MODULES  1
#define NGX_HTTP_STOREFRONT_PAGE_NHEADERS     2


typedef struct {
    ngx_flag_t                       used;    /* storefront_page somewhere */
} ngx_http_storefront_page_main_conf_t;


typedef struct {
    ngx_http_complex_value_t        *page;    /* NULL: none, or "off" */
    ngx_http_complex_value_t        *shell;   /* storefront_assemble */
    ngx_str_t                        placeholder;
    ngx_msec_t                       timeout;
    ngx_str_t                        fallback;
    ngx_str_t                        cache_control;   /* len 0: "off" */
    ngx_str_t                        vary;
    ngx_table_elt_t                 *headers;         /* Layout, Modules */
} ngx_http_storefront_page_loc_conf_t;


typedef struct {
    ngx_str_t                        name;
    ngx_str_t                        params;
    ngx_str_t                        fragment;
    ngx_str_t                        fallback;
    ngx_uint_t                       vary;
    ngx_str_t                        ad_slot;     /* an ad position */
    ngx_uint_t                       ad_position; /* its number, from 0 */
} ngx_http_storefront_page_module_t;


typedef struct {
    ngx_str_t                        layout;
    ngx_str_t                        rule;
    ngx_str_t                        modules;  /* "m1?p=1;m2", bounded */
    ngx_str_t                        count;
    ngx_uint_t                       nmodules;
    ngx_http_storefront_page_module_t  *module;
} ngx_http_storefront_page_decision_t;


typedef struct ngx_http_storefront_page_asm_s  ngx_http_storefront_page_asm_t;


/*
 * The page state of a request, in r->pool, shared by its internal
 * redirects and subrequests.
 */

typedef struct {
    ngx_str_t                        page;       /* the type decided for,
                                                    data NULL: not yet */
    ngx_http_storefront_page_decision_t  *decision;  /* NULL: none */

    /* the facts, kept for a later location that names the page type */
    sf_value                         attributes;
    sf_assignment                   *assignments;
    size_t                           nassignments;
    int64_t                          now;

    ngx_http_storefront_page_asm_t  *assembly;

    unsigned                         facts:1;
    unsigned                         injected:1;
} ngx_http_storefront_page_ctx_t;


/* one subrequest of an assembly: [0] the shell, then the modules */

typedef struct {
    ngx_http_storefront_page_asm_t  *assembly;
    ngx_http_request_t              *sr;
    ngx_str_t                        uri;
    ngx_str_t                        args;
    ngx_str_t                        body;
    ngx_str_t                        fallback;
    ngx_uint_t                       status;
    unsigned                         started:1;
    unsigned                         done:1;
    unsigned                         ok:1;
} ngx_http_storefront_page_part_t;


struct ngx_http_storefront_page_asm_s {
    ngx_http_request_t              *request;
    ngx_http_storefront_page_loc_conf_t  *plcf;
    ngx_http_storefront_page_part_t *parts;
    ngx_uint_t                       nparts;
    ngx_uint_t                       pending;
    ngx_event_t                      timer;
    unsigned                         finished:1;
};


static ngx_int_t ngx_http_storefront_page_decision(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_facts_t *facts);
static ngx_uint_t ngx_http_storefront_page_needs_facts(ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_page_decide(ngx_http_request_t *r,
    ngx_http_storefront_page_ctx_t *pctx, ngx_str_t *page, sf_snapshot *s,
    const sf_value *attributes, const sf_assignment *assignments,
    size_t nassignments, int64_t now);
static ngx_int_t ngx_http_storefront_page_copy(ngx_http_request_t *r,
    ngx_http_storefront_page_ctx_t *pctx, sf_page_decision *d);
static ngx_int_t ngx_http_storefront_page_keep_facts(ngx_http_request_t *r,
    ngx_http_storefront_page_ctx_t *pctx, ngx_http_storefront_facts_t *facts);
static ngx_int_t ngx_http_storefront_page_copy_value(ngx_pool_t *pool,
    const sf_value *from, sf_value *to, ngx_uint_t depth);
static ngx_http_storefront_page_ctx_t *ngx_http_storefront_page_get_ctx(
    ngx_http_request_t *r, ngx_uint_t create);
static void ngx_http_storefront_page_cleanup(void *data);
static ngx_int_t ngx_http_storefront_page_current(ngx_http_request_t *r,
    ngx_http_storefront_page_ctx_t **pctxp);
static ngx_int_t ngx_http_storefront_page_type(ngx_http_request_t *r,
    ngx_http_storefront_page_loc_conf_t *plcf, ngx_str_t *page);
static ngx_uint_t ngx_http_storefront_page_name_ok(u_char *p, size_t len);

static ngx_int_t ngx_http_storefront_page_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_page_set_headers(ngx_http_request_t *r,
    ngx_http_storefront_page_loc_conf_t *plcf,
    ngx_http_storefront_page_ctx_t *pctx);
static ngx_int_t ngx_http_storefront_page_own_headers(ngx_http_request_t *r,
    ngx_uint_t n);

static ngx_int_t ngx_http_storefront_page_assemble_handler(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_page_shell(ngx_http_request_t *r,
    ngx_http_storefront_page_loc_conf_t *plcf,
    ngx_http_storefront_page_part_t *part);
static ngx_int_t ngx_http_storefront_page_fragment(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_page_module_t *m,
    ngx_http_storefront_page_part_t *part);
static u_char *ngx_http_storefront_page_arg(u_char *p, char *name,
    ngx_str_t *value);
static size_t ngx_http_storefront_page_escape(u_char *dst, u_char *src,
    size_t len);
static ngx_int_t ngx_http_storefront_page_start(ngx_http_request_t *r,
    ngx_http_storefront_page_asm_t *a, ngx_http_storefront_page_part_t *part);
static ngx_int_t ngx_http_storefront_page_clean(ngx_http_request_t *sr);
static ngx_int_t ngx_http_storefront_page_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static ngx_int_t ngx_http_storefront_page_body(ngx_http_request_t *sr,
    ngx_str_t *body);
static void ngx_http_storefront_page_wake(ngx_http_request_t *r);
static void ngx_http_storefront_page_timeout(ngx_event_t *ev);
static void ngx_http_storefront_page_timer_cleanup(void *data);
static void ngx_http_storefront_page_finish(
    ngx_http_storefront_page_asm_t *a);
static ngx_int_t ngx_http_storefront_page_send(
    ngx_http_storefront_page_asm_t *a);
static ngx_int_t ngx_http_storefront_page_add_header(ngx_http_request_t *r,
    char *name, ngx_str_t *value);

static ngx_int_t ngx_http_storefront_page_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_storefront_page_module_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);

static char *ngx_http_storefront_page(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_storefront_page_assemble(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_storefront_page_header_value(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_storefront_page_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_storefront_page_init(ngx_conf_t *cf);
static void *ngx_http_storefront_page_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_storefront_page_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_storefront_page_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_command_t  ngx_http_storefront_page_commands[] = {

    { ngx_string("storefront_page"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_storefront_page,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_assemble"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_storefront_page_assemble,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("storefront_fragment_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_page_loc_conf_t, timeout),
      NULL },

    { ngx_string("storefront_fragment_fallback"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_page_loc_conf_t, fallback),
      NULL },

    { ngx_string("storefront_page_cache_control"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_storefront_page_header_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_page_loc_conf_t, cache_control),
      NULL },

    { ngx_string("storefront_page_vary"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_storefront_page_header_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_storefront_page_loc_conf_t, vary),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_storefront_page_module_ctx = {
    ngx_http_storefront_page_preconfiguration,  /* preconfiguration */
    ngx_http_storefront_page_init,              /* postconfiguration */

    ngx_http_storefront_page_create_main_conf,  /* create main conf */
    NULL,                                       /* init main conf */

    NULL,                                       /* create server conf */
    NULL,                                       /* merge server conf */

    ngx_http_storefront_page_create_loc_conf,   /* create location conf */
    ngx_http_storefront_page_merge_loc_conf     /* merge location conf */
};


ngx_module_t  ngx_http_storefront_page_module = {
    NGX_MODULE_V1,
    &ngx_http_storefront_page_module_ctx,  /* module context */
    ngx_http_storefront_page_commands,     /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_storefront_page_vars[] = {

    { ngx_string("storefront_page"), NULL,
      ngx_http_storefront_page_variable, NGX_HTTP_STOREFRONT_PAGE_VAR_PAGE,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_layout"), NULL,
      ngx_http_storefront_page_variable, NGX_HTTP_STOREFRONT_PAGE_VAR_LAYOUT,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_layout_rule"), NULL,
      ngx_http_storefront_page_variable, NGX_HTTP_STOREFRONT_PAGE_VAR_RULE,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_modules"), NULL,
      ngx_http_storefront_page_variable, NGX_HTTP_STOREFRONT_PAGE_VAR_MODULES,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_module_count"), NULL,
      ngx_http_storefront_page_variable, NGX_HTTP_STOREFRONT_PAGE_VAR_COUNT,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_module_"), NULL,
      ngx_http_storefront_page_module_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_storefront_page_header_names[] = {
    ngx_string("Layout"),
    ngx_string("Modules")
};


/* request headers a fragment, shared by every visitor, does not see */

static ngx_str_t  ngx_http_storefront_page_private[] = {
    ngx_string("cookie"),
    ngx_string("authorization"),
    ngx_string("proxy-authorization"),
    ngx_string("accept-encoding"),
    ngx_string("range"),
    ngx_string("if-range"),
    ngx_string("if-match"),
    ngx_string("if-none-match"),
    ngx_string("if-modified-since"),
    ngx_string("if-unmodified-since"),
    ngx_null_string
};


static ngx_http_storefront_decision_pt  ngx_http_storefront_page_next_decision;

/* the engine's decision: large, filled and copied at once */
static sf_page_decision  ngx_http_storefront_page_scratch;

static ngx_uint_t  ngx_http_storefront_page_failed;


/* ---- the decision ------------------------------------------------------- */

static ngx_int_t
ngx_http_storefront_page_decision(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_facts_t *facts)
{
    ngx_str_t                             page;
    ngx_http_storefront_page_ctx_t       *pctx;
    ngx_http_storefront_page_loc_conf_t  *plcf;

    pctx = ngx_http_storefront_page_get_ctx(r, 1);
    if (pctx == NULL) {
        return NGX_ERROR;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_page_module);

    /* no snapshot: a cached decision while the database cannot be read */

    if (plcf->page && pctx->page.data == NULL && facts->snapshot) {

        if (ngx_http_storefront_page_type(r, plcf, &page) != NGX_OK) {
            return NGX_ERROR;
        }

        if (page.len
            && ngx_http_storefront_page_decide(r, pctx, &page,
                                               facts->snapshot,
                                               facts->attributes,
                                               facts->assignments,
                                               facts->nassignments,
                                               facts->now)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (pctx->page.data == NULL) {
        /* a location further on may name the page type */

        if (ngx_http_storefront_page_keep_facts(r, pctx, facts) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_storefront_page_next_decision(r, ctx, facts);
}


/*
 * Any location may name the page type after an internal redirect, and the
 * page is decided from the visitor's attributes: with storefront_page in
 * the configuration, every decision from the cache comes with the
 * snapshot and the attributes as of now.
 */

static ngx_uint_t
ngx_http_storefront_page_needs_facts(ngx_http_request_t *r)
{
    return 1;
}


static ngx_int_t
ngx_http_storefront_page_decide(ngx_http_request_t *r,
    ngx_http_storefront_page_ctx_t *pctx, ngx_str_t *page, sf_snapshot *s,
    const sf_value *attributes, const sf_assignment *assignments,
    size_t nassignments, int64_t now)
{
    int                rc;
    size_t             len;
    sf_error           err;
    const void        *blob;
    sf_page_decision  *d;

    pctx->page.data = ngx_pnalloc(r->pool, page->len);
    if (pctx->page.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(pctx->page.data, page->data, page->len);
    pctx->page.len = page->len;

    err.code = 0;
    err.msg[0] = '\0';

    blob = NULL;
    len = 0;

    rc = sf_snapshot_pages(s, &blob, &len, &err);

    if (rc != SF_OK && rc != SF_ERR_NOT_FOUND) {
        if (!ngx_http_storefront_page_failed) {
            ngx_http_storefront_page_failed = 1;
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "storefront: page layouts cannot be read: %s",
                          err.msg);
        }

        return NGX_OK;
    }

    ngx_http_storefront_page_failed = 0;

    if (blob == NULL) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "storefront: no page layouts");
        return NGX_OK;
    }

    d = &ngx_http_storefront_page_scratch;

    rc = sf_page_decide(blob, len, (const char *) page->data, page->len,
                        attributes, assignments, nassignments, now,
                        ngx_http_storefront_palloc, r->pool, d);

    if (rc == SF_ERR_NOT_FOUND) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "storefront: no layouts for page \"%V\"", page);
        return NGX_OK;
    }

    if (rc != SF_OK) {
        return NGX_ERROR;
    }

    /* the decision points into the snapshot: copy it before the reset */

    return ngx_http_storefront_page_copy(r, pctx, d);
}


static ngx_int_t
ngx_http_storefront_page_copy(ngx_http_request_t *r,
    ngx_http_storefront_page_ctx_t *pctx, sf_page_decision *d)
{
    u_char                               *p, *last;
    size_t                                len, size;
    ngx_str_t                            *slots;
    ngx_uint_t                            i, n;
    sf_page_module                       *sm;
    ngx_http_storefront_page_module_t    *m;
    ngx_http_storefront_page_decision_t  *pd;

    len = sizeof(ngx_http_storefront_page_decision_t)
          + d->nmodules * sizeof(ngx_http_storefront_page_module_t)
          + d->layout_len + d->rule_len + NGX_INT_T_LEN + sizeof(void *);

    for (i = 0; i < d->nmodules; i++) {
        sm = &d->modules[i];
        len += 2 * (sm->module_len + 1 + sm->params_len + 1)
               + sm->fragment_len + sm->fallback_len + sm->ad_slot_len
               + sizeof(ngx_str_t);
    }

    p = ngx_palloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    pd = (ngx_http_storefront_page_decision_t *) p;
    p += sizeof(ngx_http_storefront_page_decision_t);

    m = (ngx_http_storefront_page_module_t *) p;
    p += d->nmodules * sizeof(ngx_http_storefront_page_module_t);

    pd->module = m;
    pd->nmodules = d->nmodules;

    pd->layout.data = p;
    pd->layout.len = d->layout_len;
    p = ngx_cpymem(p, d->layout, d->layout_len);

    /* rule names are free text: no control characters in a variable */

    pd->rule.data = p;
    pd->rule.len = d->rule_len;

    for (i = 0; i < d->rule_len; i++) {
        *p++ = ((u_char) d->rule[i] < ' ' || d->rule[i] == 0x7f)
               ? '?' : (u_char) d->rule[i];
    }

    pd->count.data = p;
    p = ngx_sprintf(p, "%ui", pd->nmodules);
    pd->count.len = p - pd->count.data;

    for (i = 0; i < d->nmodules; i++) {
        sm = &d->modules[i];

        m[i].name.data = p;
        m[i].name.len = sm->module_len;
        p = ngx_cpymem(p, sm->module, sm->module_len);

        m[i].params.data = p;
        m[i].params.len = sm->params_len;
        p = ngx_cpymem(p, sm->params, sm->params_len);

        m[i].fragment.data = p;
        m[i].fragment.len = sm->fragment_len;
        p = ngx_cpymem(p, sm->fragment, sm->fragment_len);

        m[i].fallback.data = p;
        m[i].fallback.len = sm->fallback_len;
        p = ngx_cpymem(p, sm->fallback, sm->fallback_len);

        m[i].vary = sm->vary;

        m[i].ad_slot.data = p;
        m[i].ad_slot.len = sm->ad_slot ? sm->ad_slot_len : 0;

        if (m[i].ad_slot.len) {
            p = ngx_cpymem(p, sm->ad_slot, m[i].ad_slot.len);
        }
    }

    /*
     * "m1?params;m2": module names are letters, digits, "_-.", and the
     * parameters are URL-encoded, so the text is safe in a header; it
     * ends at a module boundary within the bound.
     */

    pd->modules.data = p;
    last = p + NGX_HTTP_STOREFRONT_PAGE_MODULES_MAX;

    for (i = 0; i < pd->nmodules; i++) {
        size = (i ? 1 : 0) + m[i].name.len
               + (m[i].params.len ? 1 + m[i].params.len : 0);

        if ((size_t) (last - p) < size) {
            break;
        }

        if (i) {
            *p++ = ';';
        }

        p = ngx_cpymem(p, m[i].name.data, m[i].name.len);

        if (m[i].params.len) {
            *p++ = '?';
            p = ngx_cpymem(p, m[i].params.data, m[i].params.len);
        }
    }

    pd->modules.len = p - pd->modules.data;

    pctx->decision = pd;

    /* the layout's ad positions, in page order, for the ads decision */

    slots = (ngx_str_t *) ngx_align_ptr(p, sizeof(void *));

    for (i = 0, n = 0; i < pd->nmodules; i++) {
        if (m[i].ad_slot.len) {
            m[i].ad_position = n;
            slots[n++] = m[i].ad_slot;
        }
    }

    if (n && ngx_http_storefront_ads_set_slots(r, &pctx->page, slots, n)
             != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "storefront: layout \"%V\" rule \"%V\" modules \"%V\"",
                   &pd->layout, &pd->rule, &pd->modules);

    return NGX_OK;
}


/*
 * The facts point into the snapshot and into the worker's memory: the
 * attributes and the assignments of the experiments the visitor is in
 * (the only ones a page rule looks at) are copied.
 */

static ngx_int_t
ngx_http_storefront_page_keep_facts(ngx_http_request_t *r,
    ngx_http_storefront_page_ctx_t *pctx, ngx_http_storefront_facts_t *facts)
{
    u_char         *p;
    size_t          i, n, len;
    sf_assignment  *a;

    if (facts->attributes) {
        if (ngx_http_storefront_page_copy_value(r->pool, facts->attributes,
                                                &pctx->attributes, 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else {
        pctx->attributes.type = SF_NULL;
    }

    n = 0;
    len = 0;

    for (i = 0; i < facts->nassignments; i++) {
        if (facts->assignments[i].in_experiment) {
            n++;
            len += facts->assignments[i].key_len
                   + facts->assignments[i].variation_key_len
                   + facts->assignments[i].layout_len;
        }
    }

    pctx->nassignments = n;
    pctx->now = facts->now;
    pctx->facts = 1;

    if (n == 0) {
        return NGX_OK;
    }

    a = ngx_pcalloc(r->pool, n * sizeof(sf_assignment));
    p = ngx_pnalloc(r->pool, len);

    if (a == NULL || p == NULL) {
        return NGX_ERROR;
    }

    pctx->assignments = a;

    for (i = 0; i < facts->nassignments; i++) {
        if (!facts->assignments[i].in_experiment) {
            continue;
        }

        a->in_experiment = 1;
        a->variation = facts->assignments[i].variation;
        a->reason = facts->assignments[i].reason;

        a->key = (const char *) p;
        a->key_len = facts->assignments[i].key_len;
        p = ngx_cpymem(p, facts->assignments[i].key, a->key_len);

        a->variation_key = (const char *) p;
        a->variation_key_len = facts->assignments[i].variation_key_len;
        p = ngx_cpymem(p, facts->assignments[i].variation_key,
                       a->variation_key_len);

        if (facts->assignments[i].layout) {
            a->layout = (const char *) p;
            a->layout_len = facts->assignments[i].layout_len;
            p = ngx_cpymem(p, facts->assignments[i].layout, a->layout_len);
        }

        a++;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_storefront_page_copy_value(ngx_pool_t *pool, const sf_value *from,
    sf_value *to, ngx_uint_t depth)
{
    u_char     *p;
    size_t      i;
    sf_value   *items;
    sf_member  *members;

    *to = *from;

    switch (from->type) {

    case SF_STRING:
        p = ngx_pnalloc(pool, from->u.str.len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, from->u.str.p, from->u.str.len);
        p[from->u.str.len] = '\0';
        to->u.str.p = (const char *) p;
        return NGX_OK;

    case SF_ARRAY:

        if (depth == NGX_HTTP_STOREFRONT_PAGE_DEPTH_MAX
            || from->u.arr.n == 0)
        {
            to->u.arr.n = 0;
            to->u.arr.items = NULL;
            return NGX_OK;
        }

        items = ngx_palloc(pool, from->u.arr.n * sizeof(sf_value));
        if (items == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < from->u.arr.n; i++) {
            if (ngx_http_storefront_page_copy_value(pool,
                                                    &from->u.arr.items[i],
                                                    &items[i], depth + 1)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        to->u.arr.items = items;
        return NGX_OK;

    case SF_OBJECT:

        if (depth == NGX_HTTP_STOREFRONT_PAGE_DEPTH_MAX
            || from->u.obj.n == 0)
        {
            to->u.obj.n = 0;
            to->u.obj.members = NULL;
            return NGX_OK;
        }

        members = ngx_palloc(pool, from->u.obj.n * sizeof(sf_member));
        if (members == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < from->u.obj.n; i++) {
            p = ngx_pnalloc(pool, from->u.obj.members[i].name_len + 1);
            if (p == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(p, from->u.obj.members[i].name,
                       from->u.obj.members[i].name_len);
            p[from->u.obj.members[i].name_len] = '\0';

            members[i].name = (const char *) p;
            members[i].name_len = from->u.obj.members[i].name_len;

            if (ngx_http_storefront_page_copy_value(pool,
                                            &from->u.obj.members[i].value,
                                            &members[i].value, depth + 1)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        to->u.obj.members = members;
        return NGX_OK;

    default:
        return NGX_OK;
    }
}


static ngx_http_storefront_page_ctx_t *
ngx_http_storefront_page_get_ctx(ngx_http_request_t *r, ngx_uint_t create)
{
    ngx_pool_cleanup_t              *cln;
    ngx_http_storefront_page_ctx_t  *pctx;

    pctx = ngx_http_get_module_ctx(r, ngx_http_storefront_page_module);

    if (pctx) {
        return pctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_storefront_page_cleanup) {
            pctx = cln->data;
            ngx_http_set_ctx(r, pctx, ngx_http_storefront_page_module);
            return pctx;
        }
    }

    if (!create) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool,
                               sizeof(ngx_http_storefront_page_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    pctx = cln->data;
    ngx_memzero(pctx, sizeof(ngx_http_storefront_page_ctx_t));

    cln->handler = ngx_http_storefront_page_cleanup;
    ngx_http_set_ctx(r, pctx, ngx_http_storefront_page_module);

    return pctx;
}


static void
ngx_http_storefront_page_cleanup(void *data)
{
    /* a marker: the context lives in the pool, as the core's */
}


/*
 * The page decision of the request, made now when needed: in a location
 * with "storefront on" and storefront_page, by the core's decision (which
 * runs the chain) or from the facts kept by an earlier location.
 * *pctxp is NULL when there is no page state.
 */

static ngx_int_t
ngx_http_storefront_page_current(ngx_http_request_t *r,
    ngx_http_storefront_page_ctx_t **pctxp)
{
    ngx_str_t                             page;
    sf_snapshot                          *s;
    ngx_http_storefront_ctx_t            *ctx;
    ngx_http_storefront_page_ctx_t       *pctx;
    ngx_http_storefront_loc_conf_t       *slcf;
    ngx_http_storefront_page_loc_conf_t  *plcf;

    *pctxp = NULL;

    pctx = ngx_http_storefront_page_get_ctx(r, 0);

    if (pctx && pctx->page.data) {
        *pctxp = pctx;
        return NGX_OK;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_page_module);
    slcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_module);

    if (plcf->page == NULL || !slcf->enable) {
        *pctxp = pctx;
        return NGX_OK;
    }

    if (pctx == NULL) {
        ctx = ngx_http_storefront_decide(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        /* the chain decided, or kept the facts, unless unavailable */

        pctx = ngx_http_storefront_page_get_ctx(r, 0);

        if (pctx == NULL || pctx->page.data) {
            *pctxp = pctx;
            return NGX_OK;
        }
    }

    *pctxp = pctx;

    if (!pctx->facts) {
        return NGX_OK;
    }

    if (ngx_http_storefront_page_type(r, plcf, &page) != NGX_OK) {
        return NGX_ERROR;
    }

    if (page.len == 0) {
        return NGX_OK;
    }

    s = ngx_http_storefront_snapshot_acquire(r->connection->log);

    if (s == NULL) {
        return NGX_OK;
    }

    if (ngx_http_storefront_page_decide(r, pctx, &page, s,
                                        &pctx->attributes, pctx->assignments,
                                        pctx->nassignments, pctx->now)
        != NGX_OK)
    {
        ngx_http_storefront_snapshot_release();
        return NGX_ERROR;
    }

    ngx_http_storefront_snapshot_release();

    return NGX_OK;
}


/* the page type of the location; len 0 when empty or invalid */

static ngx_int_t
ngx_http_storefront_page_type(ngx_http_request_t *r,
    ngx_http_storefront_page_loc_conf_t *plcf, ngx_str_t *page)
{
    if (ngx_http_complex_value(r, plcf->page, page) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!ngx_http_storefront_page_name_ok(page->data, page->len)) {
        if (page->len) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "storefront: invalid page type \"%V\"", page);
        }

        page->len = 0;
    }

    return NGX_OK;
}


/* the engine's names: letters, digits, "_", "-", "." */

static ngx_uint_t
ngx_http_storefront_page_name_ok(u_char *p, size_t len)
{
    u_char  c;
    size_t  i;

    if (len == 0 || len > NGX_HTTP_STOREFRONT_PAGE_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
        {
            return 0;
        }
    }

    return 1;
}


/* ---- the headers for the upstream --------------------------------------- */

static ngx_int_t
ngx_http_storefront_page_handler(ngx_http_request_t *r)
{
    ngx_http_storefront_page_ctx_t       *pctx;
    ngx_http_storefront_loc_conf_t       *slcf;
    ngx_http_storefront_page_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_page_module);

    if (plcf->page == NULL) {
        return NGX_DECLINED;
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_module);

    if (!slcf->enable) {
        return NGX_DECLINED;
    }

    if (ngx_http_storefront_page_current(r, &pctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (pctx == NULL || pctx->decision == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_storefront_page_set_headers(r, plcf, pctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


/*
 * The core has removed the client's headers with the prefix before this
 * phase.  The main request gets the headers once (they stay across
 * internal redirects, as the core's); a subrequest gets them in a list of
 * its own.
 */

static ngx_int_t
ngx_http_storefront_page_set_headers(ngx_http_request_t *r,
    ngx_http_storefront_page_loc_conf_t *plcf,
    ngx_http_storefront_page_ctx_t *pctx)
{
    ngx_str_t         values[NGX_HTTP_STOREFRONT_PAGE_NHEADERS];
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    if (r == r->main) {
        if (pctx->injected) {
            return NGX_OK;
        }

    } else if (ngx_http_storefront_page_own_headers(r, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    values[NGX_HTTP_STOREFRONT_PAGE_HDR_LAYOUT] = pctx->decision->layout;
    values[NGX_HTTP_STOREFRONT_PAGE_HDR_MODULES] = pctx->decision->modules;

    for (i = 0; i < NGX_HTTP_STOREFRONT_PAGE_NHEADERS; i++) {
        h = ngx_list_push(&r->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = plcf->headers[i];
        h->value = values[i];

#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
    }

    if (r == r->main) {
        pctx->injected = 1;
    }

    return NGX_OK;
}


/*
 * A subrequest starts with a shallow copy of its parent's header list:
 * pushing to it would write into the parent's.  The list is copied, with
 * the headers of the private list left out when "private" is set.
 */

static ngx_int_t
ngx_http_storefront_page_own_headers(ngx_http_request_t *r,
    ngx_uint_t private)
{
    ngx_str_t                       *name;
    ngx_uint_t                       i, n;
    ngx_list_t                       old;
    ngx_list_part_t                 *part;
    ngx_table_elt_t                 *header, *h;
    ngx_http_storefront_loc_conf_t  *slcf;

    if (!private
        && r->headers_in.headers.part.elts
           != r->parent->headers_in.headers.part.elts)
    {
        return NGX_OK;
    }

    slcf = ngx_http_get_module_loc_conf(r->main, ngx_http_storefront_module);

    n = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        n += part->nelts;
    }

    old = r->headers_in.headers;

    if (ngx_list_init(&r->headers_in.headers, r->pool,
                      n + NGX_HTTP_STOREFRONT_PAGE_NHEADERS,
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

        if (private) {
            for (name = ngx_http_storefront_page_private; name->len; name++) {
                if (header[i].key.len == name->len
                    && ngx_strncasecmp(header[i].key.data, name->data,
                                       name->len)
                       == 0)
                {
                    break;
                }
            }

            if (name->len) {
                continue;
            }

            /* the decisions are the visitor's: never a fragment's */

            if (header[i].key.len >= slcf->header_prefix.len
                && ngx_strncasecmp(header[i].key.data,
                                   slcf->header_prefix.data,
                                   slcf->header_prefix.len)
                   == 0)
            {
                continue;
            }
        }

        h = ngx_list_push(&r->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = header[i];
    }

    return NGX_OK;
}


/* ---- edge assembly ------------------------------------------------------ */

static ngx_int_t
ngx_http_storefront_page_assemble_handler(ngx_http_request_t *r)
{
    ngx_int_t                             rc;
    ngx_uint_t                            i, n;
    ngx_pool_cleanup_t                   *cln;
    ngx_http_storefront_ctx_t            *ctx;
    ngx_http_storefront_page_ctx_t       *pctx;
    ngx_http_storefront_page_asm_t       *a;
    ngx_http_storefront_page_part_t      *part;
    ngx_http_storefront_page_loc_conf_t  *plcf;

    if (r != r->main) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront_assemble: the page \"%V\" cannot be "
                      "included in a page", &r->uri);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_page_module);

    if (ngx_http_storefront_page_current(r, &pctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (pctx == NULL) {
        /* no decision (the database is unavailable): the shell alone */

        pctx = ngx_http_storefront_page_get_ctx(r, 1);
        if (pctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (pctx->assembly) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront_assemble: the page \"%V\" is assembled "
                      "already", &r->uri);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_http_storefront_get_ctx(r);

    n = 1 + (pctx->decision ? pctx->decision->nmodules : 0);

    a = ngx_pcalloc(r->pool, sizeof(ngx_http_storefront_page_asm_t)
                             + n * sizeof(ngx_http_storefront_page_part_t));
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a->request = r;
    a->plcf = plcf;
    a->parts = (ngx_http_storefront_page_part_t *) &a[1];
    a->nparts = n;

    pctx->assembly = a;

    /* the shell first: without it there is no page */

    part = &a->parts[0];
    part->assembly = a;

    rc = ngx_http_storefront_page_shell(r, plcf, part);

    if (rc == NGX_OK) {
        rc = ngx_http_storefront_page_start(r, a, part);
    }

    if (rc != NGX_OK) {
        a->finished = 1;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 1; i < n; i++) {
        part = &a->parts[i];
        part->assembly = a;

        rc = ngx_http_storefront_page_fragment(r, ctx,
                                               &pctx->decision->module[i - 1],
                                               part);

        if (rc == NGX_OK) {
            rc = ngx_http_storefront_page_start(r, a, part);
        }

        if (rc == NGX_ERROR) {
            /* the subrequests started end on their own, unused */
            a->finished = 1;
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_DECLINED) {
            /* refused: the fallback */
            part->done = 1;
        }
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_storefront_page_timer_cleanup;
    cln->data = a;

    a->timer.handler = ngx_http_storefront_page_timeout;
    a->timer.data = a;
    a->timer.log = r->connection->log;

    ngx_add_timer(&a->timer, plcf->timeout);

    /* the subrequests run once this handler returns; the page waits */

    r->main->count++;
    r->write_event_handler = ngx_http_storefront_page_wake;
    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
}


static ngx_int_t
ngx_http_storefront_page_shell(ngx_http_request_t *r,
    ngx_http_storefront_page_loc_conf_t *plcf,
    ngx_http_storefront_page_part_t *part)
{
    ngx_str_t   uri;
    ngx_uint_t  flags;

    if (ngx_http_complex_value(r, plcf->shell, &uri) != NGX_OK) {
        return NGX_ERROR;
    }

    flags = NGX_HTTP_LOG_UNSAFE;

    if (uri.len == 0 || uri.data[0] != '/'
        || ngx_http_parse_unsafe_uri(r, &uri, &part->args, &flags) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront_assemble: invalid shell URI \"%V\"", &uri);
        return NGX_DECLINED;
    }

    if (uri.len == r->uri.len
        && ngx_strncmp(uri.data, r->uri.data, uri.len) == 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront_assemble: the shell \"%V\" is the page "
                      "itself", &uri);
        return NGX_DECLINED;
    }

    part->uri = uri;

    return NGX_OK;
}


/*
 * A module's fragment: its URI with the parameters and the low-cardinality
 * keys it varies by as the query string, never the visitor's id, so that
 * the fragment caches by $uri$args.
 */

static ngx_int_t
ngx_http_storefront_page_fragment(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, ngx_http_storefront_page_module_t *m,
    ngx_http_storefront_page_part_t *part)
{
    u_char                         *p;
    size_t                          len, i;
    ngx_str_t                       uri, args, vary[4];
    ngx_uint_t                      flags;
    ngx_http_storefront_ad_t       *ad;
    ngx_http_storefront_profile_t  *pr;

    part->fallback = m->fallback.len ? m->fallback
                                     : part->assembly->plcf->fallback;

    uri = m->fragment;

    for (i = 0; i < uri.len; i++) {
        if (uri.data[i] <= ' ' || uri.data[i] == 0x7f) {
            goto invalid;
        }
    }

    flags = NGX_HTTP_LOG_UNSAFE;
    ngx_str_null(&args);

    if (uri.len == 0 || uri.data[0] != '/'
        || ngx_http_parse_unsafe_uri(r, &uri, &args, &flags) != NGX_OK
        || args.len)
    {
        goto invalid;
    }

    if (uri.len == r->uri.len
        && ngx_strncmp(uri.data, r->uri.data, uri.len) == 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront_assemble: module \"%V\" would include the "
                      "page \"%V\" itself, fallback served", &m->name,
                      &r->uri);
        return NGX_DECLINED;
    }

    part->uri = uri;

    ngx_memzero(vary, sizeof(vary));

    pr = ctx ? ctx->profile : NULL;

    if (pr) {
        if (m->vary & SF_VARY_SEGMENT) {
            vary[0] = pr->segment;
        }

        if (m->vary & SF_VARY_TIER) {
            vary[1] = pr->tier;
        }

        if (m->vary & SF_VARY_LIFECYCLE) {
            vary[2] = pr->lifecycle;
        }
    }

    if (ctx && (m->vary & SF_VARY_VARIANTS)) {
        vary[3] = ctx->variants;
    }

    /*
     * An ad position: the ad that fills it, as query arguments (campaign,
     * creative, format, skippable, the signed click link); an empty
     * position is the fallback.
     */

    ad = NULL;

    if (m->ad_slot.len) {
        ad = ngx_http_storefront_ads_fill(r, m->ad_position);

        if (ad == NULL) {
            return NGX_DECLINED;
        }
    }

    len = m->params.len + (ad ? 1 + ad->args.len : 0);

    for (i = 0; i < 4; i++) {
        len += sizeof("&lifecycle=") - 1 + 3 * vary[i].len;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    part->args.data = p;

    p = ngx_cpymem(p, m->params.data, m->params.len);

    p = ngx_http_storefront_page_arg(p, "segment", &vary[0]);
    p = ngx_http_storefront_page_arg(p, "tier", &vary[1]);
    p = ngx_http_storefront_page_arg(p, "lifecycle", &vary[2]);
    p = ngx_http_storefront_page_arg(p, "variants", &vary[3]);

    if (ad) {
        *p++ = '&';
        p = ngx_cpymem(p, ad->args.data, ad->args.len);
    }

    part->args.len = p - part->args.data;

    if (part->args.len && part->args.data[0] == '&') {
        part->args.data++;
        part->args.len--;
    }

    return NGX_OK;

invalid:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "storefront_assemble: module \"%V\" has an invalid "
                  "fragment URI \"%V\", fallback served", &m->name,
                  &m->fragment);

    return NGX_DECLINED;
}


static u_char *
ngx_http_storefront_page_arg(u_char *p, char *name, ngx_str_t *value)
{
    if (value->len == 0) {
        return p;
    }

    *p++ = '&';
    p = ngx_cpymem(p, name, ngx_strlen(name));
    *p++ = '=';

    return p + ngx_http_storefront_page_escape(p, value->data, value->len);
}


/* RFC 3986 unreserved characters stay, as the engine encodes parameters */

static size_t
ngx_http_storefront_page_escape(u_char *dst, u_char *src, size_t len)
{
    u_char         c, *p;
    size_t         i;
    static u_char  hex[] = "0123456789ABCDEF";

    p = dst;

    for (i = 0; i < len; i++) {
        c = src[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
            || c == '~')
        {
            *p++ = c;
            continue;
        }

        *p++ = '%';
        *p++ = hex[c >> 4];
        *p++ = hex[c & 0xf];
    }

    return p - dst;
}


static ngx_int_t
ngx_http_storefront_page_start(ngx_http_request_t *r,
    ngx_http_storefront_page_asm_t *a, ngx_http_storefront_page_part_t *part)
{
    ngx_http_request_t          *sr;
    ngx_http_post_subrequest_t  *ps;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_storefront_page_done;
    ps->data = part;

    if (ngx_http_subrequest(r, &part->uri, part->args.len ? &part->args : NULL,
                            &sr, ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY
                            |NGX_HTTP_SUBREQUEST_BACKGROUND)
        != NGX_OK)
    {
        /* e.g. too many subrequests: the fallback */
        part->done = 1;
        return NGX_DECLINED;
    }

    part->sr = sr;
    part->started = 1;
    a->pending++;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "storefront: fragment \"%V?%V\"", &part->uri, &part->args);

    return ngx_http_storefront_page_clean(sr);
}


/*
 * A fragment is shared by every visitor: it gets the client's request
 * headers without the cookies, credentials, conditions and ranges, the
 * encodings (its body is spliced as it is) and the decision headers.
 */

static ngx_int_t
ngx_http_storefront_page_clean(ngx_http_request_t *sr)
{
    if (ngx_http_storefront_page_own_headers(sr, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    sr->headers_in.if_modified_since = NULL;
    sr->headers_in.if_unmodified_since = NULL;
    sr->headers_in.if_match = NULL;
    sr->headers_in.if_none_match = NULL;
    sr->headers_in.range = NULL;
    sr->headers_in.if_range = NULL;
    sr->headers_in.authorization = NULL;

#if (NGX_HTTP_GZIP || NGX_HTTP_HEADERS)
    sr->headers_in.accept_encoding = NULL;
#endif

#if (nginx_version >= 1023000)
    sr->headers_in.cookie = NULL;
#else
    ngx_memzero(&sr->headers_in.cookies, sizeof(ngx_array_t));
#endif

    ngx_str_null(&sr->headers_in.user);
    ngx_str_null(&sr->headers_in.passwd);

    return NGX_OK;
}


/*
 * Called when a part's subrequest is finalized (possibly more than once:
 * an error status is finalized again after its error page).  An error
 * inside a fragment (NGX_ERROR, e.g. a response too big for
 * subrequest_output_buffer_size) must not terminate the page: it is
 * turned into the end of that subrequest, and the connection error flag
 * that ngx_http_output_filter() set for it is cleared, as long as the
 * page has not been sent (nothing was written to the client, which a
 * fragment's in-memory output never touches).
 */

static ngx_int_t
ngx_http_storefront_page_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_http_storefront_page_part_t *part = data;

    ngx_http_storefront_page_asm_t  *a;

    a = part->assembly;

    if (rc == NGX_ERROR && !a->finished) {
        sr->connection->error = 0;
    }

    if (part->done) {
        return (rc == NGX_ERROR && !a->finished) ? NGX_OK : rc;
    }

    part->done = 1;
    a->pending--;

    part->status = sr->headers_out.status;

    if (rc == NGX_OK
        && part->status >= NGX_HTTP_OK
        && part->status < NGX_HTTP_SPECIAL_RESPONSE
        && (sr->headers_out.content_encoding == NULL
            || sr->headers_out.content_encoding->value.len == 0)
        && ngx_http_storefront_page_body(sr, &part->body) == NGX_OK)
    {
        part->ok = 1;

    } else if (rc != NGX_OK && rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        part->status = rc;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "storefront: fragment \"%V\" done: rc:%i status:%ui "
                   "ok:%ui", &part->uri, rc, part->status,
                   (ngx_uint_t) part->ok);

    if (a->pending == 0 && !a->finished) {
        if (ngx_http_post_request(a->request, NULL) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return (rc == NGX_ERROR && !a->finished) ? NGX_OK : rc;
}


/* the in-memory output of a subrequest */

static ngx_int_t
ngx_http_storefront_page_body(ngx_http_request_t *sr, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (sr->out == NULL) {
        return NGX_OK;
    }

    if (sr->out->next == NULL) {
        b = sr->out->buf;

        if (b->in_file && !ngx_buf_in_memory(b)) {
            return NGX_ERROR;
        }

        body->data = b->pos;
        body->len = b->last - b->pos;

        return NGX_OK;
    }

    len = 0;

    for (cl = sr->out; cl; cl = cl->next) {
        if (cl->buf->in_file && !ngx_buf_in_memory(cl->buf)) {
            return NGX_ERROR;
        }

        len += cl->buf->last - cl->buf->pos;
    }

    p = ngx_pnalloc(sr->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = sr->out; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    return NGX_OK;
}


/* the page request is posted when its last part is in */

static void
ngx_http_storefront_page_wake(ngx_http_request_t *r)
{
    ngx_http_storefront_page_ctx_t  *pctx;

    pctx = ngx_http_storefront_page_get_ctx(r, 0);

    if (pctx == NULL || pctx->assembly == NULL
        || pctx->assembly->finished || pctx->assembly->pending)
    {
        return;
    }

    ngx_http_storefront_page_finish(pctx->assembly);
}


static void
ngx_http_storefront_page_timeout(ngx_event_t *ev)
{
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_storefront_page_asm_t  *a;

    a = ev->data;
    r = a->request;
    c = r->connection;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "storefront: page timer, %ui parts pending", a->pending);

    ngx_http_storefront_page_finish(a);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_storefront_page_timer_cleanup(void *data)
{
    ngx_http_storefront_page_asm_t *a = data;

    if (a->timer.timer_set) {
        ngx_del_timer(&a->timer);
    }
}


static void
ngx_http_storefront_page_finish(ngx_http_storefront_page_asm_t *a)
{
    ngx_int_t                         rc;
    ngx_uint_t                        i;
    ngx_http_request_t               *r;
    ngx_http_storefront_page_part_t  *part;

    r = a->request;

    a->finished = 1;

    if (a->timer.timer_set) {
        ngx_del_timer(&a->timer);
    }

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    /*
     * A part still waiting for its upstream is given up as a client that
     * goes away gives it up: the upstream's cleanup closes the peer
     * connection and releases the subrequest, so that it holds neither
     * the client connection (keepalive) nor the upstream.
     */

    for (i = 0; i < a->nparts; i++) {
        part = &a->parts[i];

        if (part->started && !part->done && part->sr->upstream
            && part->sr->upstream->cleanup && *part->sr->upstream->cleanup)
        {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "storefront: fragment \"%V\" given up",
                           &part->uri);

            (*part->sr->upstream->cleanup)(part->sr);
        }
    }

    part = &a->parts[0];

    if (!part->ok) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront_assemble: shell \"%V\" %s",
                      &part->uri, part->done ? "failed" : "timed out");

        ngx_http_finalize_request(r, part->done ? NGX_HTTP_BAD_GATEWAY
                                                : NGX_HTTP_GATEWAY_TIME_OUT);
        return;
    }

    for (i = 1; i < a->nparts; i++) {
        part = &a->parts[i];

        if (part->ok) {
            continue;
        }

        if (!part->done) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "storefront_assemble: fragment \"%V?%V\" timed "
                          "out, fallback served", &part->uri, &part->args);

        } else if (part->started) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "storefront_assemble: fragment \"%V?%V\" failed "
                          "(%ui), fallback served", &part->uri, &part->args,
                          part->status);
        }
    }

    rc = ngx_http_storefront_page_send(a);

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_storefront_page_send(ngx_http_storefront_page_asm_t *a)
{
    u_char                           *p, *last, *mark;
    size_t                            total;
    ngx_int_t                         rc;
    ngx_str_t                        *s, head, tail, *ph;
    ngx_buf_t                        *b;
    ngx_uint_t                        i;
    ngx_chain_t                      *out, **ll, *cl;
    ngx_http_request_t               *r, *shell;
    ngx_http_storefront_page_part_t  *part;

    r = a->request;
    shell = a->parts[0].sr;
    ph = &a->plcf->placeholder;

    /* the shell is cut at its first placeholder */

    head = a->parts[0].body;
    ngx_str_null(&tail);

    p = head.data;
    last = head.data + head.len;
    mark = NULL;

    while (p && (size_t) (last - p) >= ph->len) {
        p = ngx_strlchr(p, last - ph->len + 1, ph->data[0]);

        if (p == NULL) {
            break;
        }

        if (ngx_strncmp(p, ph->data, ph->len) == 0) {
            mark = p;
            break;
        }

        p++;
    }

    if (mark) {
        tail.data = mark + ph->len;
        tail.len = last - tail.data;
        head.len = mark - head.data;

    } else if (a->nparts > 1) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "storefront_assemble: no \"%V\" in the shell \"%V\", "
                      "the modules follow it", ph, &a->parts[0].uri);
    }

    /* head, the fragments in layout order, tail */

    out = NULL;
    ll = &out;
    cl = NULL;
    total = 0;

    for (i = 0; i <= a->nparts; i++) {

        if (i == 0) {
            s = &head;

        } else if (i == a->nparts) {
            s = &tail;

        } else {
            part = &a->parts[i];
            s = part->ok ? &part->body : &part->fallback;
        }

        if (s->len == 0) {
            continue;
        }

        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_ERROR;
        }

        b->pos = s->data;
        b->last = s->data + s->len;
        b->memory = 1;

        cl = ngx_alloc_chain_link(r->pool);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        cl->buf = b;
        cl->next = NULL;

        *ll = cl;
        ll = &cl->next;

        total += s->len;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = total;

    if (shell->headers_out.content_type.len) {
        r->headers_out.content_type = shell->headers_out.content_type;
        r->headers_out.content_type_len = shell->headers_out.content_type_len;
        r->headers_out.charset = shell->headers_out.charset;
        r->headers_out.content_type_lowcase = NULL;

        /* the type without its parameters, for gzip_types, ssi_types */

        p = ngx_strlchr(r->headers_out.content_type.data,
                        r->headers_out.content_type.data
                        + r->headers_out.content_type_len, ';');

        if (p) {
            while (p > r->headers_out.content_type.data && p[-1] == ' ') {
                p--;
            }

            r->headers_out.content_type_len =
                                       p - r->headers_out.content_type.data;
        }

    } else if (ngx_http_set_content_type(r) != NGX_OK) {
        return NGX_ERROR;
    }

    if (a->plcf->vary.len
        && ngx_http_storefront_page_add_header(r, "Vary", &a->plcf->vary)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (a->plcf->cache_control.len
        && ngx_http_storefront_page_add_header(r, "Cache-Control",
                                               &a->plcf->cache_control)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (total == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    cl->buf->last_buf = 1;
    cl->buf->last_in_chain = 1;

    return ngx_http_output_filter(r, out);
}


static ngx_int_t
ngx_http_storefront_page_add_header(ngx_http_request_t *r, char *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;

#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/* ---- variables ---------------------------------------------------------- */

static ngx_int_t
ngx_http_storefront_page_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                        s;
    ngx_http_storefront_page_ctx_t  *pctx;

    if (ngx_http_storefront_page_current(r, &pctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (pctx == NULL || pctx->decision == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_HTTP_STOREFRONT_PAGE_VAR_PAGE:
        s = pctx->page;
        break;

    case NGX_HTTP_STOREFRONT_PAGE_VAR_LAYOUT:
        s = pctx->decision->layout;
        break;

    case NGX_HTTP_STOREFRONT_PAGE_VAR_RULE:
        s = pctx->decision->rule;
        break;

    case NGX_HTTP_STOREFRONT_PAGE_VAR_MODULES:
        s = pctx->decision->modules;
        break;

    default: /* NGX_HTTP_STOREFRONT_PAGE_VAR_COUNT */
        s = pctx->decision->count;
        break;
    }

    v->len = s.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s.data;

    return NGX_OK;
}


/* $storefront_module_<N>: "module?params" at position N, from 1 */

static ngx_int_t
ngx_http_storefront_page_module_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *name = (ngx_str_t *) data;

    u_char                             *p;
    size_t                              len;
    ngx_int_t                           n;
    ngx_http_storefront_page_ctx_t     *pctx;
    ngx_http_storefront_page_module_t  *m;

    len = name->len - (sizeof("storefront_module_") - 1);
    p = name->data + sizeof("storefront_module_") - 1;

    n = (len && len < 4) ? ngx_atoi(p, len) : NGX_ERROR;

    if (n < 1) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (ngx_http_storefront_page_current(r, &pctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (pctx == NULL || pctx->decision == NULL
        || (ngx_uint_t) n > pctx->decision->nmodules)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    m = &pctx->decision->module[n - 1];

    /* the name and the parameters are adjacent in the copy */

    v->len = m->name.len + (m->params.len ? 1 + m->params.len : 0);

    if (m->params.len) {
        p = ngx_pnalloc(r->pool, v->len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        p = ngx_cpymem(p, m->name.data, m->name.len);
        *p++ = '?';
        ngx_memcpy(p, m->params.data, m->params.len);

    } else {
        v->data = m->name.data;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* ---- configuration ------------------------------------------------------ */

static char *
ngx_http_storefront_page(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_storefront_page_loc_conf_t *plcf = conf;

    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (plcf->page != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        plcf->page = NULL;
        return NGX_CONF_OK;
    }

    if (ngx_http_script_variables_count(&value[1]) == 0
        && !ngx_http_storefront_page_name_ok(value[1].data, value[1].len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid page type \"%V\" in \"%V\" directive",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    plcf->page = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (plcf->page == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = plcf->page;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* storefront_assemble <shell-uri> [placeholder=<text>] */

static char *
ngx_http_storefront_page_assemble(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_storefront_page_loc_conf_t *plcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_compile_complex_value_t   ccv;

    if (plcf->shell) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0
        || (value[1].data[0] != '/' && value[1].data[0] != '$'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid shell URI \"%V\" in \"%V\" directive",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    plcf->shell = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (plcf->shell == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = plcf->shell;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "placeholder=", 12) == 0
            && value[i].len > 12)
        {
            plcf->placeholder.len = value[i].len - 12;
            plcf->placeholder.data = value[i].data + 12;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\" directive",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (plcf->placeholder.data == NULL) {
        ngx_str_set(&plcf->placeholder, "<!--storefront:modules-->");
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_storefront_page_assemble_handler;

    return NGX_CONF_OK;
}


/* a response header value, or "off" */

static char *
ngx_http_storefront_page_header_value(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    ngx_str_t  *field, *value;
    ngx_uint_t  i;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] < ' ' || value[1].data[i] == 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\" directive",
                               &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_strcmp(value[1].data, "off") == 0 || value[1].len == 0) {
        ngx_str_set(field, "");
        return NGX_CONF_OK;
    }

    *field = value[1];

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_storefront_page_preconfiguration(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_storefront_page_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_storefront_page_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt                   *h;
    ngx_http_core_main_conf_t             *cmcf;
    ngx_http_storefront_page_main_conf_t  *pmcf;

    pmcf = ngx_http_conf_get_module_main_conf(cf,
                                             ngx_http_storefront_page_module);

    if (!pmcf->used) {
        return NGX_OK;
    }

    ngx_http_storefront_page_next_decision = ngx_http_storefront_top_decision;
    ngx_http_storefront_top_decision = ngx_http_storefront_page_decision;

    /* the chain ends here: nothing further is asked */
    ngx_http_storefront_top_needs_facts = ngx_http_storefront_page_needs_facts;

    /* after the core's headers (preaccess) and access checks */

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_storefront_page_handler;

    return NGX_OK;
}


static void *
ngx_http_storefront_page_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_storefront_page_main_conf_t  *pmcf;

    pmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_storefront_page_main_conf_t));
    if (pmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     pmcf->used = 0;
     */

    return pmcf;
}


static void *
ngx_http_storefront_page_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_storefront_page_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_storefront_page_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->shell = NULL;
     *     conf->placeholder = { 0, NULL };
     *     conf->fallback = { 0, NULL };
     *     conf->cache_control = { 0, NULL };
     *     conf->vary = { 0, NULL };
     *     conf->headers = NULL;
     */

    conf->page = NGX_CONF_UNSET_PTR;
    conf->timeout = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_storefront_page_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_storefront_page_loc_conf_t *prev = parent;
    ngx_http_storefront_page_loc_conf_t *conf = child;

    ngx_uint_t                             i;
    ngx_http_storefront_loc_conf_t        *slcf;
    ngx_http_storefront_page_main_conf_t  *pmcf;

    ngx_conf_merge_ptr_value(conf->page, prev->page, NULL);
    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 1000);
    ngx_conf_merge_str_value(conf->fallback, prev->fallback, "");
    ngx_conf_merge_str_value(conf->cache_control, prev->cache_control,
                             "private, no-store");
    ngx_conf_merge_str_value(conf->vary, prev->vary, "Cookie");

    /* the core's configuration of this location is merged already */

    slcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_storefront_module);

    if (conf->shell) {
        if (conf->page == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"storefront_assemble\" requires "
                               "\"storefront_page\"");
            return NGX_CONF_ERROR;
        }

        if (!slcf->enable) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"storefront_assemble\" requires "
                               "\"storefront on\"");
            return NGX_CONF_ERROR;
        }
    }

    if (conf->page == NULL || !slcf->enable) {
        return NGX_CONF_OK;
    }

    pmcf = ngx_http_conf_get_module_main_conf(cf,
                                             ngx_http_storefront_page_module);
    pmcf->used = 1;

    /* the header names follow the prefix of the location */

    conf->headers = ngx_pcalloc(cf->pool, NGX_HTTP_STOREFRONT_PAGE_NHEADERS
                                          * sizeof(ngx_table_elt_t));
    if (conf->headers == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < NGX_HTTP_STOREFRONT_PAGE_NHEADERS; i++) {
        if (ngx_http_storefront_header_name(cf, &slcf->header_prefix,
                                      &ngx_http_storefront_page_header_names[i],
                                      &conf->headers[i])
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}
