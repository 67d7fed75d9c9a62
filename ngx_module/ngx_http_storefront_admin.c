
/*
 * storefront: the admin endpoint.
 *
 *     location /storefront-admin/ {
 *         allow 10.0.0.0/8;                # nginx's own address list,
 *         deny  all;                       # checked before the token
 *         client_max_body_size 8m;         # nginx answers 413 beyond
 *         storefront_admin;
 *         storefront_admin_token <at least 16 characters>;
 *     }
 *
 * Every request needs "Authorization: Bearer <token>": without it or with
 * another token the answer is 401 and nothing changes.  The routes are
 * the last segment of the URI:
 *
 *     POST .../events         one JSON event, an array of events or JSON
 *                             lines, applied in one write transaction:
 *                             all or nothing
 *     GET  .../profile?user=  the profile and what is computed from it
 *     GET  .../rules          the profile rules in force
 *     GET  .../experiments    results of every experiment, and
 *     GET  .../experiments/<key>, POST .../experiments/<key> with
 *                             {"active":..} | {"coverage":..} |
 *                             {"weights":[..]}: see
 *                             ngx_http_storefront_stats.c
 *
 * Answers are JSON, errors {"error":"..."}.  A write transaction holds
 * LMDB's writer lock: the worker waits while another process (an import)
 * writes, so a batch is one transaction.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_storefront.h"
#include "ngx_http_storefront_stats.h"       /* experiment routes */


typedef struct {
    sf_arena                   *arena;
    sf_value                   *items;
    ngx_uint_t                 *lines;    /* JSON lines: line of each item */
    ngx_uint_t                  n;
    ngx_uint_t                  array;    /* a JSON array of events */
} ngx_http_storefront_batch_t;


static ngx_int_t ngx_http_storefront_admin_handler(ngx_http_request_t *r);
static void ngx_http_storefront_admin_events(ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_admin_apply(ngx_http_request_t *r,
    ngx_http_storefront_batch_t *batch);
static ngx_int_t ngx_http_storefront_admin_parse(ngx_http_request_t *r,
    ngx_str_t *body, ngx_http_storefront_batch_t *batch);
static ngx_int_t ngx_http_storefront_admin_lines(ngx_http_request_t *r,
    ngx_str_t *body, ngx_http_storefront_batch_t *batch);
static ngx_int_t ngx_http_storefront_admin_event_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_http_storefront_batch_t *batch, ngx_uint_t i,
    const char *msg);
static ngx_int_t ngx_http_storefront_admin_profile(ngx_http_request_t *r);
static ngx_int_t ngx_http_storefront_admin_derived(sf_buf *b,
    const sf_profile *p, const sf_derived *d, int64_t now);
static ngx_int_t ngx_http_storefront_admin_rules(ngx_http_request_t *r);


char *
ngx_http_storefront_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_storefront_loc_conf_t *slcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (slcf->admin) {
        return "is duplicate";
    }

    slcf->admin = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_storefront_admin_handler;

    return NGX_CONF_OK;
}


char *
ngx_http_storefront_admin_token(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_storefront_loc_conf_t *slcf = conf;

    return ngx_http_storefront_conf_token(cf, cmd, &slcf->admin_token);
}


static ngx_int_t
ngx_http_storefront_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_str_t                        route;
    ngx_http_storefront_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_storefront_module);

    rc = ngx_http_storefront_bearer(r, &slcf->admin_token);

    if (rc != NGX_OK) {
        return ngx_http_storefront_send_unauthorized(r, rc, "admin");
    }

    ngx_http_storefront_route(r, &route);

    if (route.len == sizeof("events") - 1
        && ngx_strncmp(route.data, "events", route.len) == 0)
    {
        if (r->method != NGX_HTTP_POST) {
            return ngx_http_storefront_send_not_allowed(r, "POST");
        }

        rc = ngx_http_read_client_request_body(r,
                                          ngx_http_storefront_admin_events);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            /* 413 beyond client_max_body_size, from nginx */
            return rc;
        }

        return NGX_DONE;
    }

    if ((route.len == sizeof("profile") - 1
         && ngx_strncmp(route.data, "profile", route.len) == 0)
        || (route.len == sizeof("rules") - 1
            && ngx_strncmp(route.data, "rules", route.len) == 0))
    {
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_storefront_send_not_allowed(r, "GET, HEAD");
        }

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        if (route.data[0] == 'p') {
            return ngx_http_storefront_admin_profile(r);
        }

        return ngx_http_storefront_admin_rules(r);
    }

    /* GET .../experiments[/<key>], POST .../experiments/<key>:
     * ngx_http_storefront_stats.c */

    rc = ngx_http_storefront_stats_admin(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_storefront_send_error(r, NGX_HTTP_NOT_FOUND,
                                          "no admin resource \"%V\": "
                                          "events, profile, rules or "
                                          "experiments", &route);
}




/* ---- POST events ------------------------------------------------------ */

static void
ngx_http_storefront_admin_events(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    body;
    ngx_http_storefront_batch_t  batch;

    if (ngx_http_storefront_request_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_memzero(&batch, sizeof(ngx_http_storefront_batch_t));

    batch.arena = sf_arena_create(64 * 1024);
    if (batch.arena == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_storefront_admin_parse(r, &body, &batch);

    if (rc == NGX_DECLINED) {
        rc = ngx_http_storefront_admin_apply(r, &batch);
    }

    /* every response is built in r->pool: the parsed values can go */

    sf_arena_destroy(batch.arena);

    ngx_http_finalize_request(r, rc);
}


/*
 * The body is one JSON document (an event object or an array of them)
 * or JSON lines (an object per line, blank lines skipped): a document
 * that does not parse as a whole is read as JSON lines when its first
 * line is a complete object.  Returns NGX_DECLINED when the events are
 * in batch, else what ngx_http_finalize_request() takes (an error
 * response was sent).
 */

static ngx_int_t
ngx_http_storefront_admin_parse(ngx_http_request_t *r, ngx_str_t *body,
    ngx_http_storefront_batch_t *batch)
{
    int        rc;
    u_char    *p, *last, *eol;
    sf_error   err;
    sf_value   doc, first;

    p = body->data;
    last = p + body->len;

    while (p < last && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
    {
        p++;
    }

    if (p == last) {
        return ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                   "empty body: send an event object, an "
                                   "array of events or JSON lines");
    }

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_json_parse((const char *) body->data, body->len, batch->arena,
                       &doc, &err);

    if (rc == SF_OK) {
        if (doc.type == SF_ARRAY) {
            batch->items = (sf_value *) doc.u.arr.items;
            batch->n = doc.u.arr.n;
            batch->array = 1;

        } else {
            batch->items = ngx_palloc(r->pool, sizeof(sf_value));
            if (batch->items == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            batch->items[0] = doc;
            batch->n = 1;
        }

        if (batch->n > NGX_HTTP_STOREFRONT_EVENTS_MAX) {
            return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "%ui events in one request, at most %d "
                                   "are allowed", batch->n,
                                   NGX_HTTP_STOREFRONT_EVENTS_MAX);
        }

        return NGX_DECLINED;
    }

    if (rc == SF_ERR_NOMEM) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (*p == '{') {
        eol = ngx_strlchr(p, last, '\n');

        if (eol != NULL
            && sf_json_parse((const char *) p, eol - p, batch->arena, &first,
                             NULL)
               == SF_OK)
        {
            return ngx_http_storefront_admin_lines(r, body, batch);
        }
    }

    return ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                          "malformed JSON: %s", err.msg);
}


static ngx_int_t
ngx_http_storefront_admin_lines(ngx_http_request_t *r, ngx_str_t *body,
    ngx_http_storefront_batch_t *batch)
{
    int          rc;
    u_char      *p, *q, *last, *eol;
    sf_error     err;
    ngx_uint_t   n, line, blank;

    last = body->data + body->len;

    /* count first: the cap before any work */

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

    if (n > NGX_HTTP_STOREFRONT_EVENTS_MAX) {
        return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "%ui events in one request, at most %d "
                                   "are allowed", n,
                                   NGX_HTTP_STOREFRONT_EVENTS_MAX);
    }

    batch->items = ngx_palloc(r->pool, n * sizeof(sf_value));
    batch->lines = ngx_palloc(r->pool, n * sizeof(ngx_uint_t));

    if (batch->items == NULL || batch->lines == NULL) {
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

        rc = sf_json_parse((const char *) p, eol - p, batch->arena,
                           &batch->items[n], &err);

        if (rc == SF_ERR_NOMEM) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc != SF_OK) {
            return ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                                  "line %ui: malformed JSON: "
                                                  "%s", line, err.msg);
        }

        batch->lines[n++] = line;
    }

    batch->n = n;

    return NGX_DECLINED;
}


/*
 * Every event is checked before the write transaction starts, then all
 * are applied in one transaction: any failure aborts it, nothing is
 * written.
 */

static ngx_int_t
ngx_http_storefront_admin_apply(ngx_http_request_t *r,
    ngx_http_storefront_batch_t *batch)
{
    int               rc;
    sf_db            *db;
    sf_buf           *b;
    sf_txn           *txn;
    time_t            now;
    sf_error          err;
    sf_event         *ev;
    ngx_uint_t        i, status, duplicates;
    sf_event_result  *res;

    if (batch->n == 0) {
        b = ngx_http_storefront_scratch();
        sf_buf_appends(b, "{\"applied\":0,\"duplicates\":0,\"results\":[]}");
        return ngx_http_storefront_send_buf(r, NGX_HTTP_OK, b);
    }

    ev = ngx_palloc(r->pool, batch->n * sizeof(sf_event));
    res = ngx_pcalloc(r->pool, batch->n * sizeof(sf_event_result));

    if (ev == NULL || res == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    now = ngx_time();

    for (i = 0; i < batch->n; i++) {
        err.code = 0;
        err.msg[0] = '\0';

        if (sf_event_from_json(&batch->items[i], (int64_t) now, &ev[i], &err)
            != SF_OK)
        {
            return ngx_http_storefront_admin_event_error(r,
                                   NGX_HTTP_BAD_REQUEST, batch, i, err.msg);
        }
    }

    db = ngx_http_storefront_worker_db(r->connection->log);

    if (db == NULL) {
        return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "the database is unavailable");
    }

    err.code = 0;
    err.msg[0] = '\0';

    if (sf_txn_begin(db, &txn, &err) != SF_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront admin: no write transaction: %s", err.msg);

        return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "the database cannot be written");
    }

    duplicates = 0;

    for (i = 0; i < batch->n; i++) {
        rc = sf_txn_apply_event(txn, &ev[i], &res[i], &err);

        if (rc == SF_OK) {
            duplicates += res[i].duplicate ? 1 : 0;
            continue;
        }

        sf_txn_abort(txn);

        switch (rc) {

        case SF_ERR_NOT_FOUND:
            /* a return of an order that was never bought */
            status = NGX_HTTP_CONFLICT;
            break;

        case SF_ERR_INVALID:
            /* e.g. a redemption of more points than the balance */
            status = NGX_HTTP_STOREFRONT_UNPROCESSABLE;
            break;

        case SF_ERR_MAP_FULL:
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "storefront admin: events not applied: %s "
                          "(\"map_size\" of \"storefront_db\")", err.msg);
            status = NGX_HTTP_INSUFFICIENT_STORAGE;
            break;

        default:
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "storefront admin: events not applied: %s",
                          err.msg);
            status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            break;
        }

        return ngx_http_storefront_admin_event_error(r, status, batch, i,
                                                     err.msg);
    }

    if (sf_txn_commit(txn, &err) != SF_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront admin: events not applied: %s", err.msg);

        return ngx_http_storefront_send_error(r,
                                   err.code == SF_ERR_MAP_FULL
                                   ? NGX_HTTP_INSUFFICIENT_STORAGE
                                   : NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "events not applied: %s", err.msg);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "storefront admin: %ui events applied, %ui duplicates",
                  batch->n - duplicates, duplicates);

    b = ngx_http_storefront_scratch();

    sf_buf_printf(b, "{\"applied\":%lu,\"duplicates\":%lu,\"results\":[",
                  (unsigned long) (batch->n - duplicates),
                  (unsigned long) duplicates);

    for (i = 0; i < batch->n; i++) {
        sf_buf_appends(b, i ? ",{\"user\":" : "{\"user\":");
        sf_buf_append_json_string(b, ev[i].user, ev[i].user_len);
        sf_buf_appends(b, ",\"order_id\":");
        sf_buf_append_json_string(b, ev[i].order_id, ev[i].order_id_len);
        sf_buf_appends(b, res[i].duplicate ? ",\"duplicate\":true"
                                           : ",\"duplicate\":false");
        sf_buf_appends(b, ",\"points\":");
        sf_buf_append_js_number(b, res[i].points_earned);

        if (sf_buf_appends(b, "}") != SF_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (sf_buf_appends(b, "]}") != SF_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_storefront_send_buf(r, NGX_HTTP_OK, b);
}


/* {"error":"event 3: ...","index":3} or {"error":"line 4: ...","line":4} */

static ngx_int_t
ngx_http_storefront_admin_event_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_http_storefront_batch_t *batch, ngx_uint_t i,
    const char *msg)
{
    u_char   text[NGX_MAX_ERROR_STR], *p;
    sf_buf  *b;

    if (batch->lines) {
        p = ngx_snprintf(text, sizeof(text), "line %ui: %s", batch->lines[i],
                         msg);

    } else if (batch->array) {
        p = ngx_snprintf(text, sizeof(text), "event %ui: %s", i, msg);

    } else {
        p = ngx_snprintf(text, sizeof(text), "event: %s", msg);
    }

    b = ngx_http_storefront_scratch();

    sf_buf_appends(b, "{\"error\":");
    sf_buf_append_json_string(b, (const char *) text, p - text);

    if (batch->lines) {
        sf_buf_printf(b, ",\"line\":%lu", (unsigned long) batch->lines[i]);

    } else if (batch->array) {
        sf_buf_printf(b, ",\"index\":%lu", (unsigned long) i);
    }

    if (sf_buf_appends(b, "}") != SF_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_storefront_send_buf(r, status, b);
}


/* ---- GET profile, rules -------------------------------------------------- */

static ngx_int_t
ngx_http_storefront_admin_profile(ngx_http_request_t *r)
{
    int              rc;
    u_char          *dst, *src;
    time_t           now;
    sf_buf          *b;
    sf_error         err;
    ngx_str_t        arg, user;
    ngx_uint_t       i;
    sf_derived       d;
    sf_profile       profile;
    sf_snapshot     *snapshot;
    const sf_rules  *rules;

    if (ngx_http_arg(r, (u_char *) "user", sizeof("user") - 1, &arg)
        != NGX_OK
        || arg.len == 0)
    {
        return ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                   "the \"user\" argument is required");
    }

    dst = ngx_pnalloc(r->pool, arg.len);
    if (dst == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    user.data = dst;
    src = arg.data;

    ngx_unescape_uri(&dst, &src, arg.len, 0);

    user.len = dst - user.data;

    for (i = 0; i < user.len; i++) {
        if (user.data[i] < ' ' || user.data[i] == 0x7f) {
            break;
        }
    }

    if (user.len == 0 || user.len > NGX_HTTP_STOREFRONT_USER_ID_MAX
        || i != user.len)
    {
        return ngx_http_storefront_send_error(r, NGX_HTTP_BAD_REQUEST,
                                   "invalid \"user\": 1 to %d bytes without "
                                   "control characters",
                                   NGX_HTTP_STOREFRONT_USER_ID_MAX);
    }

    snapshot = ngx_http_storefront_snapshot_acquire(r->connection->log);

    if (snapshot == NULL) {
        return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "the database is unavailable");
    }

    err.code = 0;
    err.msg[0] = '\0';

    rc = sf_snapshot_get_profile(snapshot, (const char *) user.data,
                                 user.len, &profile, &err);

    if (rc == SF_OK) {
        rc = sf_snapshot_rules(snapshot, &rules, &err);
    }

    if (rc != SF_OK) {
        ngx_http_storefront_snapshot_release();

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront admin: %s", err.msg);

        return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "%s", err.msg);
    }

    if (!profile.found) {
        ngx_http_storefront_snapshot_release();

        return ngx_http_storefront_send_error(r, NGX_HTTP_NOT_FOUND,
                                              "user \"%V\" has no profile",
                                              &user);
    }

    now = ngx_time();

    sf_profile_derive(&profile, rules, (int64_t) now, &d);

    /* the profile's strings point into the snapshot: write them first */

    b = ngx_http_storefront_scratch();

    rc = sf_profile_to_json((const char *) user.data, user.len, &profile, b);

    if (rc == SF_OK) {
        rc = ngx_http_storefront_admin_derived(b, &profile, &d, now);
    }

    ngx_http_storefront_snapshot_release();

    if (rc != SF_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_storefront_send_buf(r, NGX_HTTP_OK, b);
}


/* replaces the closing brace of the profile with ,"derived":{...}} */

static ngx_int_t
ngx_http_storefront_admin_derived(sf_buf *b, const sf_profile *p,
    const sf_derived *d, int64_t now)
{
    if (b->len == 0 || b->data[b->len - 1] != '}') {
        return SF_ERR_INVALID;
    }

    b->len--;

    sf_buf_appends(b, ",\"derived\":{\"as_of\":");
    sf_buf_append_time(b, now);
    sf_buf_appends(b, ",\"segment\":");
    sf_buf_append_json_string(b, d->segment, ngx_strlen(d->segment));
    sf_buf_printf(b, ",\"rfm\":\"%s\",\"r\":%d,\"f\":%d,\"m\":%d",
                  d->rfm, d->r, d->f, d->m);
    sf_buf_appends(b, ",\"lifecycle\":");
    sf_buf_append_json_string(b, d->lifecycle, ngx_strlen(d->lifecycle));
    sf_buf_appends(b, ",\"tier\":");
    sf_buf_append_json_string(b, d->tier, ngx_strlen(d->tier));
    sf_buf_appends(b, ",\"tier_benefits\":");
    sf_buf_appends(b, d->tier_benefits[0] ? d->tier_benefits : "{}");
    sf_buf_appends(b, ",\"spend_365\":");
    sf_buf_append_js_number(b, d->spend_365);
    sf_buf_appends(b, ",\"points\":");
    sf_buf_append_js_number(b, p->points);
    sf_buf_appends(b, ",\"days_since_last_order\":");

    if (d->days_since_last_order < 0) {
        sf_buf_appends(b, "null");

    } else {
        sf_buf_append_js_number(b, d->days_since_last_order);
    }

    return sf_buf_appends(b, "}}");
}


static ngx_int_t
ngx_http_storefront_admin_rules(ngx_http_request_t *r)
{
    int              rc;
    sf_buf          *b;
    sf_error         err;
    sf_snapshot     *snapshot;
    const sf_rules  *rules;

    snapshot = ngx_http_storefront_snapshot_acquire(r->connection->log);

    if (snapshot == NULL) {
        return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "the database is unavailable");
    }

    err.code = 0;
    err.msg[0] = '\0';

    b = ngx_http_storefront_scratch();

    rc = sf_snapshot_rules(snapshot, &rules, &err);

    if (rc == SF_OK) {
        rc = sf_rules_to_json(rules, b);
    }

    ngx_http_storefront_snapshot_release();

    if (rc != SF_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "storefront admin: %s", err.msg);

        return ngx_http_storefront_send_error(r,
                                   NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "the rules cannot be read");
    }

    return ngx_http_storefront_send_buf(r, NGX_HTTP_OK, b);
}
