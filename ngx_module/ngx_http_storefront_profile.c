
/*
 * storefront: who the visitor is.
 *
 * For each decision the visitor's profile is read from the snapshot (by
 * the id used for hashing: the logged-in id, else the anonymous id), and
 * the segment, RFM code, lifecycle, tier and points are computed from it,
 * the rules in force and the cached time.  A visitor without a profile
 * gets the defaults (segment "others", lifecycle "new", the first tier).
 * The targeting conditions of experiments see these values, the profile's
 * own attributes and the request's attributes.
 *
 * The values go to the upstream as <prefix>Segment, <prefix>RFM,
 * <prefix>Lifecycle, <prefix>Tier, <prefix>Tier-Benefits, <prefix>Points
 * headers and to nginx as $storefront_segment ... $storefront_points.
 * Profile attributes stay private unless storefront_profile_attributes
 * names them: each then goes out as <prefix>Attr-<Name> and as
 * $storefront_profile_<name>.  A value is sent only when it is short
 * (NGX_HTTP_STOREFRONT_ATTR_VALUE_MAX) and holds no control characters:
 * strings as they are, numbers and booleans as JSON text, arrays and
 * objects as compact JSON.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <math.h>

#include "ngx_http_storefront.h"


#define NGX_HTTP_STOREFRONT_PHDR_SEGMENT   0
#define NGX_HTTP_STOREFRONT_PHDR_RFM       1
#define NGX_HTTP_STOREFRONT_PHDR_LIFECYCLE 2
#define NGX_HTTP_STOREFRONT_PHDR_TIER      3
#define NGX_HTTP_STOREFRONT_PHDR_BENEFITS  4
#define NGX_HTTP_STOREFRONT_PHDR_POINTS    5
#define NGX_HTTP_STOREFRONT_NPHEADERS      6

#define NGX_HTTP_STOREFRONT_NUMBER_LEN     32


static ngx_int_t ngx_http_storefront_attr_headers(ngx_conf_t *cf,
    ngx_http_storefront_loc_conf_t *conf);
static ngx_int_t ngx_http_storefront_profile_build(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, sf_snapshot *snapshot,
    const sf_value *request_attributes, sf_profile *profile, sf_derived *d,
    sf_value *attributes);
static ngx_int_t ngx_http_storefront_profile_collect(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx,
    sf_profile *profile, sf_derived *d, sf_value *attributes);
static ngx_int_t ngx_http_storefront_copy(ngx_http_request_t *r,
    const char *s, size_t len, ngx_str_t *out);
static ngx_int_t ngx_http_storefront_number(ngx_http_request_t *r, double x,
    ngx_str_t *out);
static ngx_int_t ngx_http_storefront_attr_text(ngx_http_request_t *r,
    ngx_str_t *name, const sf_value *v, ngx_str_t *out);
static ngx_int_t ngx_http_storefront_profile_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_storefront_profile_attr_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_uint_t ngx_http_storefront_attr_match(ngx_str_t *attr,
    u_char *name, size_t len);


/* in the order of NGX_HTTP_STOREFRONT_PHDR_* */

static ngx_str_t  ngx_http_storefront_profile_header_names[] = {
    ngx_string("Segment"),
    ngx_string("RFM"),
    ngx_string("Lifecycle"),
    ngx_string("Tier"),
    ngx_string("Tier-Benefits"),
    ngx_string("Points")
};


static ngx_http_variable_t  ngx_http_storefront_profile_vars[] = {

    { ngx_string("storefront_segment"), NULL,
      ngx_http_storefront_profile_variable,
      offsetof(ngx_http_storefront_profile_t, segment),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_rfm"), NULL,
      ngx_http_storefront_profile_variable,
      offsetof(ngx_http_storefront_profile_t, rfm),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_lifecycle"), NULL,
      ngx_http_storefront_profile_variable,
      offsetof(ngx_http_storefront_profile_t, lifecycle),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_tier"), NULL,
      ngx_http_storefront_profile_variable,
      offsetof(ngx_http_storefront_profile_t, tier),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_tier_benefits"), NULL,
      ngx_http_storefront_profile_variable,
      offsetof(ngx_http_storefront_profile_t, tier_benefits),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_points"), NULL,
      ngx_http_storefront_profile_variable,
      offsetof(ngx_http_storefront_profile_t, points),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("storefront_profile_"), NULL,
      ngx_http_storefront_profile_attr_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


/* per worker: the defaults when the stored rules cannot be read */

static sf_rules    ngx_http_storefront_default_rules;
static ngx_uint_t  ngx_http_storefront_rules_failed;


/*
 * storefront_profile_attributes <name> ... | off;
 *
 * Names are those of the profile's "attributes" object or computed ones
 * (top_category, orders, monetary, spend_365, ...): letters, digits, '_'
 * and '-'.  The header is <prefix>Attr-<Name>, '_' written as '-' and
 * each word capitalised (age_band: Attr-Age-Band).
 */

char *
ngx_http_storefront_profile_attributes(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_storefront_loc_conf_t *slcf = conf;

    u_char      a, b, c;
    ngx_str_t  *value, *name, *names;
    ngx_uint_t  i, j, k;

    if (slcf->profile_attributes) {
        return "is duplicate";
    }

    value = cf->args->elts;

    slcf->profile_attributes = ngx_array_create(cf->pool,
                                                cf->args->nelts - 1,
                                                sizeof(ngx_str_t));
    if (slcf->profile_attributes == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        /* none, overriding a list inherited from an outer level */
        return NGX_CONF_OK;
    }

    if (cf->args->nelts - 1 > NGX_HTTP_STOREFRONT_ATTRS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many attributes in \"%V\" directive, "
                           "at most %d are allowed",
                           &cmd->name, NGX_HTTP_STOREFRONT_ATTRS_MAX);
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 0
            || value[i].len > NGX_HTTP_STOREFRONT_ATTR_NAME_MAX)
        {
            goto invalid;
        }

        for (j = 0; j < value[i].len; j++) {
            c = value[i].data[j];

            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            {
                goto invalid;
            }
        }

        /* names that give the same header or variable are duplicates */

        names = slcf->profile_attributes->elts;

        for (j = 0; j < slcf->profile_attributes->nelts; j++) {

            if (names[j].len != value[i].len) {
                continue;
            }

            for (k = 0; k < value[i].len; k++) {
                a = ngx_tolower(names[j].data[k]);
                b = ngx_tolower(value[i].data[k]);

                if (a == '_') {
                    a = '-';
                }

                if (b == '_') {
                    b = '-';
                }

                if (a != b) {
                    break;
                }
            }

            if (k == value[i].len) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "duplicate attribute \"%V\" in \"%V\" "
                                   "directive", &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }
        }

        name = ngx_array_push(slcf->profile_attributes);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = value[i];
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid attribute name \"%V\" in \"%V\" directive",
                       &value[i], &cmd->name);
    return NGX_CONF_ERROR;
}


/*
 * Header templates with the location's prefix; prev's are kept when both
 * the prefix and the attribute list are inherited.
 */

ngx_int_t
ngx_http_storefront_profile_merge(ngx_conf_t *cf,
    ngx_http_storefront_loc_conf_t *prev,
    ngx_http_storefront_loc_conf_t *conf, ngx_uint_t prefix_inherited)
{
    ngx_str_t        *name;
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    if (conf->profile_attributes == NULL) {
        conf->profile_attributes = prev->profile_attributes;

        if (prefix_inherited) {
            conf->attr_headers = prev->attr_headers;
        }
    }

    if (prefix_inherited) {
        conf->profile_headers = prev->profile_headers;
    }

    if (conf->profile_headers == NULL) {
        h = ngx_pcalloc(cf->pool,
                        NGX_HTTP_STOREFRONT_NPHEADERS
                        * sizeof(ngx_table_elt_t));
        if (h == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < NGX_HTTP_STOREFRONT_NPHEADERS; i++) {
            name = &ngx_http_storefront_profile_header_names[i];

            if (ngx_http_storefront_header_name(cf, &conf->header_prefix,
                                                name, &h[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        conf->profile_headers = h;
    }

    if (conf->attr_headers == NULL
        && conf->profile_attributes
        && conf->profile_attributes->nelts)
    {
        return ngx_http_storefront_attr_headers(cf, conf);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_storefront_attr_headers(ngx_conf_t *cf,
    ngx_http_storefront_loc_conf_t *conf)
{
    u_char           *p;
    ngx_str_t        *names, name;
    ngx_uint_t        i, j, word;
    ngx_table_elt_t  *h;

    names = conf->profile_attributes->elts;

    h = ngx_pcalloc(cf->pool,
                    conf->profile_attributes->nelts * sizeof(ngx_table_elt_t));
    if (h == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < conf->profile_attributes->nelts; i++) {

        name.len = sizeof("Attr-") - 1 + names[i].len;
        name.data = ngx_pnalloc(cf->pool, name.len);
        if (name.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(name.data, "Attr-", sizeof("Attr-") - 1);

        /* age_band: Age-Band (underscores are dropped by many proxies) */

        word = 1;

        for (j = 0; j < names[i].len; j++) {
            if (names[i].data[j] == '_' || names[i].data[j] == '-') {
                *p++ = '-';
                word = 1;
                continue;
            }

            *p++ = word ? ngx_toupper(names[i].data[j])
                        : ngx_tolower(names[i].data[j]);
            word = 0;
        }

        if (ngx_http_storefront_header_name(cf, &conf->header_prefix, &name,
                                            &h[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    conf->attr_headers = h;

    return NGX_OK;
}


/*
 * Looks the visitor up in the snapshot and builds the attributes object
 * the targeting conditions see.  The object points into the snapshot and
 * r->pool; what the headers and variables need is copied into r->pool.
 * Database errors are logged and give a visitor without a profile.
 */

ngx_int_t
ngx_http_storefront_profile_lookup(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx,
    sf_snapshot *snapshot, const sf_value *request_attributes,
    sf_value *attributes)
{
    sf_derived   d;
    sf_profile   profile;

    if (ngx_http_storefront_profile_build(r, ctx, snapshot,
                                          request_attributes, &profile, &d,
                                          attributes)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_storefront_profile_collect(r, slcf, ctx, &profile, &d,
                                               attributes);
}


/*
 * The attributes object only, for a decision taken from the cache whose
 * features decide from the data on every request: the profile's values
 * as of now (recency ages), the request's own as given.
 */

ngx_int_t
ngx_http_storefront_profile_targeting(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, sf_snapshot *snapshot,
    const sf_value *request_attributes, sf_value *attributes)
{
    sf_derived   d;
    sf_profile   profile;

    return ngx_http_storefront_profile_build(r, ctx, snapshot,
                                             request_attributes, &profile,
                                             &d, attributes);
}


static ngx_int_t
ngx_http_storefront_profile_build(ngx_http_request_t *r,
    ngx_http_storefront_ctx_t *ctx, sf_snapshot *snapshot,
    const sf_value *request_attributes, sf_profile *profile, sf_derived *d,
    sf_value *attributes)
{
    int              rc;
    sf_error         err;
    const sf_rules  *rules;

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_snapshot_rules(snapshot, &rules, &err);

    if (rc != SF_OK) {
        if (!ngx_http_storefront_rules_failed) {
            ngx_http_storefront_rules_failed = 1;
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "storefront: profile rules cannot be read: %s, "
                          "using the default rules", err.msg);
        }

        if (ngx_http_storefront_default_rules.magic == 0) {
            sf_rules_default(&ngx_http_storefront_default_rules);
        }

        rules = &ngx_http_storefront_default_rules;

    } else {
        ngx_http_storefront_rules_failed = 0;
    }

    sf_profile_init(profile);

    if (ctx->user_id.len) {
        rc = sf_snapshot_get_profile(snapshot,
                                     (const char *) ctx->user_id.data,
                                     ctx->user_id.len, profile, &err);
        if (rc != SF_OK) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "storefront: profile of \"%V\" ignored: %s",
                          &ctx->user_id, err.msg);
            sf_profile_init(profile);
        }
    }

    sf_profile_derive(profile, rules, (int64_t) ngx_time(), d);

    if (sf_profile_attributes(profile, d, request_attributes,
                              ngx_http_storefront_palloc, r->pool,
                              attributes)
        != SF_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_storefront_profile_collect(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx,
    sf_profile *profile, sf_derived *d, sf_value *attributes)
{
    u_char                         *p;
    size_t                          len;
    ngx_str_t                      *names, *fields[5];
    ngx_uint_t                      i, n;
    const char                     *values[5];
    const sf_value                 *v;
    ngx_http_storefront_profile_t  *pr;

    /* the names, the code and the benefits in one allocation */

    values[0] = d->segment;
    values[1] = d->rfm;
    values[2] = d->lifecycle;
    values[3] = d->tier;
    values[4] = d->tier_benefits;

    len = sizeof(ngx_http_storefront_profile_t);

    for (i = 0; i < 5; i++) {
        len += ngx_strlen(values[i]);
    }

    p = ngx_palloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    pr = (ngx_http_storefront_profile_t *) p;
    p += sizeof(ngx_http_storefront_profile_t);

    ngx_memzero(pr, sizeof(ngx_http_storefront_profile_t));

    pr->found = profile->found ? 1 : 0;
    pr->has_tz = profile->has_tz ? 1 : 0;
    pr->tz_offset_min = profile->tz_offset_min;

    fields[0] = &pr->segment;
    fields[1] = &pr->rfm;
    fields[2] = &pr->lifecycle;
    fields[3] = &pr->tier;
    fields[4] = &pr->tier_benefits;

    for (i = 0; i < 5; i++) {
        len = ngx_strlen(values[i]);

        /* names are restricted by the rules' syntax; checked all the same */

        if (len > NGX_HTTP_STOREFRONT_ATTR_VALUE_MAX
            || !ngx_http_storefront_header_safe((u_char *) values[i], len))
        {
            continue;
        }

        fields[i]->data = p;
        fields[i]->len = len;
        p = ngx_cpymem(p, values[i], len);
    }

    if (ngx_http_storefront_number(r, profile->points, &pr->points)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    n = slcf->profile_attributes ? slcf->profile_attributes->nelts : 0;

    if (n) {
        pr->attrs = ngx_palloc(r->pool, n * sizeof(ngx_keyval_t));
        if (pr->attrs == NULL) {
            return NGX_ERROR;
        }

        names = slcf->profile_attributes->elts;

        for (i = 0; i < n; i++) {
            v = sf_value_member(attributes, (const char *) names[i].data,
                                names[i].len);

            pr->attrs[i].key = names[i];

            if (ngx_http_storefront_attr_text(r, &names[i], v,
                                              &pr->attrs[i].value)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        pr->nattrs = n;
    }

    ctx->profile = pr;

    return NGX_OK;
}


/* a copy in r->pool when the value is header-safe, else a null string */

static ngx_int_t
ngx_http_storefront_copy(ngx_http_request_t *r, const char *s, size_t len,
    ngx_str_t *out)
{
    ngx_str_null(out);

    if (len > NGX_HTTP_STOREFRONT_ATTR_VALUE_MAX
        || !ngx_http_storefront_header_safe((u_char *) s, len))
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "storefront: unsafe profile value skipped");
        return NGX_OK;
    }

    out->data = ngx_pnalloc(r->pool, len ? len : 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, s, len);
    out->len = len;

    return NGX_OK;
}


/* a number as JavaScript's String(x) writes it; integers without engine */

static ngx_int_t
ngx_http_storefront_number(ngx_http_request_t *r, double x, ngx_str_t *out)
{
    u_char  *p;
    sf_buf  *b;

    if (x == floor(x) && fabs(x) < 9007199254740992.0) {
        p = ngx_pnalloc(r->pool, NGX_HTTP_STOREFRONT_NUMBER_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        out->data = p;
        out->len = ngx_sprintf(p, "%L", (int64_t) x) - p;

        return NGX_OK;
    }

    b = ngx_http_storefront_scratch();

    if (sf_buf_append_js_number(b, x) != SF_OK) {
        return NGX_ERROR;
    }

    return ngx_http_storefront_copy(r, b->data, b->len, out);
}


static ngx_int_t
ngx_http_storefront_attr_text(ngx_http_request_t *r, ngx_str_t *name,
    const sf_value *v, ngx_str_t *out)
{
    sf_buf  *b;

    ngx_str_null(out);

    if (v == NULL) {
        return NGX_OK;
    }

    switch (v->type) {

    case SF_NULL:
        return NGX_OK;

    case SF_STRING:
        if (v->u.str.len > NGX_HTTP_STOREFRONT_ATTR_VALUE_MAX
            || !ngx_http_storefront_header_safe((u_char *) v->u.str.p,
                                                v->u.str.len))
        {
            break;
        }

        return ngx_http_storefront_copy(r, v->u.str.p, v->u.str.len, out);

    case SF_BOOL:
        if (v->u.boolean) {
            ngx_str_set(out, "true");

        } else {
            ngx_str_set(out, "false");
        }

        return NGX_OK;

    case SF_NUMBER:
        return ngx_http_storefront_number(r, v->u.number, out);

    default: /* SF_ARRAY, SF_OBJECT */

        b = ngx_http_storefront_scratch();

        if (sf_json_write(b, v) != SF_OK) {
            return NGX_ERROR;
        }

        if (b->len > NGX_HTTP_STOREFRONT_ATTR_VALUE_MAX
            || !ngx_http_storefront_header_safe((u_char *) b->data, b->len))
        {
            break;
        }

        return ngx_http_storefront_copy(r, b->data, b->len, out);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "storefront: profile attribute \"%V\" too long or unsafe, "
                   "not sent", name);

    return NGX_OK;
}


/* no control characters: CR and LF above all; UTF-8 passes */

ngx_uint_t
ngx_http_storefront_header_safe(u_char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] < ' ' || p[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


ngx_int_t
ngx_http_storefront_profile_headers(ngx_http_request_t *r,
    ngx_http_storefront_loc_conf_t *slcf, ngx_http_storefront_ctx_t *ctx)
{
    ngx_str_t                       values[NGX_HTTP_STOREFRONT_NPHEADERS];
    ngx_str_t                      *names, *value;
    ngx_uint_t                      i, j;
    ngx_table_elt_t                *h;
    ngx_http_storefront_profile_t  *pr;

    pr = ctx->profile;

    if (pr == NULL) {
        /* no decision: the upstream sees Status "unavailable" */
        return NGX_OK;
    }

    values[NGX_HTTP_STOREFRONT_PHDR_SEGMENT] = pr->segment;
    values[NGX_HTTP_STOREFRONT_PHDR_RFM] = pr->rfm;
    values[NGX_HTTP_STOREFRONT_PHDR_LIFECYCLE] = pr->lifecycle;
    values[NGX_HTTP_STOREFRONT_PHDR_TIER] = pr->tier;
    values[NGX_HTTP_STOREFRONT_PHDR_BENEFITS] = pr->tier_benefits;
    values[NGX_HTTP_STOREFRONT_PHDR_POINTS] = pr->points;

    for (i = 0; i < NGX_HTTP_STOREFRONT_NPHEADERS; i++) {

        if (values[i].data == NULL) {
            continue;
        }

        h = ngx_list_push(&r->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = slcf->profile_headers[i];
        h->value = values[i];

#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
    }

    if (slcf->attr_headers == NULL) {
        return NGX_OK;
    }

    /* the location's list; values were taken for the deciding location's */

    names = slcf->profile_attributes->elts;

    for (i = 0; i < slcf->profile_attributes->nelts; i++) {

        value = NULL;

        for (j = 0; j < pr->nattrs; j++) {
            if (pr->attrs[j].key.len == names[i].len
                && ngx_strncmp(pr->attrs[j].key.data, names[i].data,
                               names[i].len)
                   == 0)
            {
                value = &pr->attrs[j].value;
                break;
            }
        }

        if (value == NULL || value->data == NULL) {
            continue;
        }

        h = ngx_list_push(&r->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = slcf->attr_headers[i];
        h->value = *value;

#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_storefront_add_profile_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_storefront_profile_vars; v->name.len; v++) {
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
ngx_http_storefront_profile_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                  *s;
    ngx_http_storefront_ctx_t  *ctx;

    if (ngx_http_storefront_variable_ctx(r, &ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx == NULL || ctx->profile == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((u_char *) ctx->profile + data);

    if (s->data == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}


/*
 * $storefront_profile_<name>: the attribute when the location's
 * storefront_profile_attributes lists it, else not found.  Variable names
 * are lowercase: the listed name is compared ignoring case, '_' in the
 * variable name also matching '-'.
 */

static ngx_int_t
ngx_http_storefront_profile_attr_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *name = (ngx_str_t *) data;

    u_char                          *p;
    size_t                           len;
    ngx_str_t                       *names, *listed;
    ngx_uint_t                       i;
    ngx_http_storefront_ctx_t       *ctx;
    ngx_http_storefront_profile_t   *pr;
    ngx_http_storefront_loc_conf_t  *slcf;

    v->not_found = 1;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_module);

    if (slcf->profile_attributes == NULL) {
        return NGX_OK;
    }

    len = name->len - (sizeof("storefront_profile_") - 1);
    p = name->data + sizeof("storefront_profile_") - 1;

    names = slcf->profile_attributes->elts;
    listed = NULL;

    for (i = 0; i < slcf->profile_attributes->nelts; i++) {
        if (ngx_http_storefront_attr_match(&names[i], p, len)) {
            listed = &names[i];
            break;
        }
    }

    if (listed == NULL) {
        return NGX_OK;
    }

    if (ngx_http_storefront_variable_ctx(r, &ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx == NULL || ctx->profile == NULL) {
        return NGX_OK;
    }

    pr = ctx->profile;

    for (i = 0; i < pr->nattrs; i++) {
        if (pr->attrs[i].key.len == listed->len
            && ngx_strncmp(pr->attrs[i].key.data, listed->data, listed->len)
               == 0)
        {
            if (pr->attrs[i].value.data == NULL) {
                return NGX_OK;
            }

            v->len = pr->attrs[i].value.len;
            v->valid = 1;
            v->no_cacheable = 0;
            v->not_found = 0;
            v->data = pr->attrs[i].value.data;

            return NGX_OK;
        }
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_storefront_attr_match(ngx_str_t *attr, u_char *name, size_t len)
{
    u_char  a, b;
    size_t  i;

    if (attr->len != len) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        a = ngx_tolower(attr->data[i]);
        b = ngx_tolower(name[i]);

        if (a == b || (a == '-' && b == '_')) {
            continue;
        }

        return 0;
    }

    return 1;
}
