/*
 * Push decisions: may this message go to this user now?
 *
 * Checks, in order: the category is known; the user has not opted out
 * (globally, of the category or of the channel); the campaign was not
 * sent to the user before; the user's local time is outside quiet hours
 * (unless the category is urgent); every rolling-window cap of the
 * category and channel has room (unless exempt); the global throttle
 * (GCRA) has room (unless exempt).  An allowed decision records the send
 * in the same write transaction, so decisions are exact under concurrency.
 *
 * Stored state (database "push"):
 *   'r' user NUL category NUL channel -> int64 send times (ms), ascending
 *   'c' user NUL campaign             -> int64 time of the send
 *   'g'                               -> int64 GCRA theoretical arrival (ms)
 *   'p'                               -> sf_push_policy stored by import
 *   'n' reason                        -> uint64 decisions with that reason
 * Database "push_log": uint64 sequence (big-endian) -> one decision.
 */

#include <math.h>
#include <string.h>

#include "storefront.h"
#include "sf_internal.h"


static const char  *sf_push_reasons[SF_PUSH__COUNT] = {
    "allow", "cap", "quiet_hours", "opted_out", "throttled", "duplicate"
};


const char *
sf_push_reason_name(sf_push_reason r)
{
    return (unsigned) r < SF_PUSH__COUNT ? sf_push_reasons[r] : "unknown";
}


/* ---- policy ---------------------------------------------------------------- */

static sf_push_category *
sf_push_find(const sf_push_policy *p, const char *name, size_t len)
{
    uint32_t  i;

    for (i = 0; i < p->ncategories; i++) {
        if (strlen(p->categories[i].name) == len
            && memcmp(p->categories[i].name, name, len) == 0)
        {
            return (sf_push_category *) &p->categories[i];
        }
    }
    return NULL;
}


static int
sf_push_valid_name(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || len >= SF_NAME_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')
              || s[i] == '_' || s[i] == '-'))
        {
            return 0;
        }
    }
    return 1;
}


int
sf_push_policy_set(sf_push_policy *p, const char *name, size_t len,
    const sf_push_cap *caps, uint32_t ncaps, int exempt, int urgent,
    sf_error *err)
{
    sf_push_category  *c;

    if (!sf_push_valid_name(name, len)) {
        return sf_error_set(err, SF_ERR_INVALID, "invalid category \"%.*s\": "
                            "use lowercase letters, digits, _ and -",
                            (int) (len > 64 ? 64 : len), name);
    }
    if (ncaps > SF_PUSH_MAX_CAPS) {
        return sf_error_set(err, SF_ERR_INVALID, "category \"%.*s\": at most "
                            "%d caps", (int) len, name, SF_PUSH_MAX_CAPS);
    }

    c = sf_push_find(p, name, len);
    if (c == NULL) {
        if (p->ncategories == SF_PUSH_MAX_CATEGORIES) {
            return sf_error_set(err, SF_ERR_INVALID, "more than %d categories",
                                SF_PUSH_MAX_CATEGORIES);
        }
        c = &p->categories[p->ncategories++];
        memset(c, 0, sizeof(*c));
        memcpy(c->name, name, len);
    }

    if (ncaps) {
        memcpy(c->caps, caps, ncaps * sizeof(*caps));
        c->ncaps = ncaps;
    }
    if (exempt >= 0) {
        c->exempt = (uint8_t) exempt;
    }
    if (urgent >= 0) {
        c->urgent = (uint8_t) urgent;
    }
    return SF_OK;
}


void
sf_push_policy_default(sf_push_policy *p)
{
    sf_push_cap  cap;

    memset(p, 0, sizeof(*p));

    /* the guides: limited-time offers at most twice a week */
    cap.max = 2;
    cap.window_ms = 7LL * 86400 * 1000;
    sf_push_policy_set(p, "promo", 5, &cap, 1, 0, 0, NULL);

    cap.max = 1;
    cap.window_ms = 86400LL * 1000;
    sf_push_policy_set(p, "reminder", 8, &cap, 1, 0, 0, NULL);

    sf_push_policy_set(p, "transactional", 13, NULL, 0, 1, 1, NULL);

    p->has_quiet = 1;
    p->quiet_start = 22 * 60;
    p->quiet_end = 8 * 60;
}


int
sf_push_parse_cap(const char *s, size_t len, sf_push_cap *cap)
{
    size_t       i;
    int64_t      max, n, unit;
    const char  *u;
    size_t       ulen;

    max = 0;
    for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        max = max * 10 + (s[i] - '0');
        if (max > SF_PUSH_MAX_RING) {
            return SF_ERR_INVALID;
        }
    }
    if (i == 0 || max == 0 || i == len || s[i] != '/') {
        return SF_ERR_INVALID;
    }
    i++;

    n = 0;
    for ( /* void */ ; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        n = n * 10 + (s[i] - '0');
        if (n > 100000) {
            return SF_ERR_INVALID;
        }
    }
    if (n == 0) {
        n = 1;              /* "1/day" */
    }

    u = s + i;
    ulen = len - i;

    if ((ulen == 1 && *u == 's') || (ulen == 3 && !memcmp(u, "sec", 3))) {
        unit = 1;
    } else if ((ulen == 1 && *u == 'm') || (ulen == 3 && !memcmp(u, "min", 3))) {
        unit = 60;
    } else if ((ulen == 1 && *u == 'h') || (ulen == 4 && !memcmp(u, "hour", 4))) {
        unit = 3600;
    } else if ((ulen == 1 && *u == 'd') || (ulen == 3 && !memcmp(u, "day", 3))) {
        unit = 86400;
    } else if ((ulen == 1 && *u == 'w') || (ulen == 4 && !memcmp(u, "week", 4))) {
        unit = 7 * 86400;
    } else {
        return SF_ERR_INVALID;
    }

    cap->max = (uint32_t) max;
    cap->window_ms = n * unit * 1000;
    return SF_OK;
}


static int
sf_push_hhmm(const char *s, uint16_t *out)
{
    int  h, m;

    if (s[2] != ':' || s[0] < '0' || s[0] > '2' || s[1] < '0' || s[1] > '9'
        || s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9')
    {
        return 0;
    }
    h = (s[0] - '0') * 10 + s[1] - '0';
    m = (s[3] - '0') * 10 + s[4] - '0';
    if (h > 23) {
        return 0;
    }
    *out = (uint16_t) (h * 60 + m);
    return 1;
}


static int
sf_push_category_json(sf_push_policy *p, const sf_member *m, sf_error *err)
{
    int              exempt, urgent;
    size_t           i;
    uint32_t         ncaps;
    sf_push_cap      caps[SF_PUSH_MAX_CAPS];
    const sf_value  *v, *c;

    if (m->value.type != SF_OBJECT) {
        return sf_error_set(err, SF_ERR_INVALID, "push category \"%.*s\" must "
                            "be an object", (int) m->name_len, m->name);
    }

    ncaps = 0;
    v = sf_value_member(&m->value, "caps", 4);
    if (v != NULL) {
        if (v->type != SF_ARRAY || v->u.arr.n > SF_PUSH_MAX_CAPS) {
            return sf_error_set(err, SF_ERR_INVALID, "push category \"%.*s\": "
                                "\"caps\" must be an array of at most %d caps "
                                "like \"2/7d\"", (int) m->name_len, m->name,
                                SF_PUSH_MAX_CAPS);
        }
        for (i = 0; i < v->u.arr.n; i++) {
            c = &v->u.arr.items[i];
            if (c->type != SF_STRING
                || sf_push_parse_cap(c->u.str.p, c->u.str.len, &caps[i]))
            {
                return sf_error_set(err, SF_ERR_INVALID, "push category "
                                    "\"%.*s\": invalid cap (use \"2/7d\": at "
                                    "most 64 per N s, m, h, d or w)",
                                    (int) m->name_len, m->name);
            }
        }
        ncaps = (uint32_t) v->u.arr.n;
    }

    exempt = -1;
    urgent = -1;
    v = sf_value_member(&m->value, "exempt", 6);
    if (v != NULL) {
        if (v->type != SF_BOOL) {
            return sf_error_set(err, SF_ERR_INVALID, "push category \"%.*s\": "
                                "\"exempt\" must be true or false",
                                (int) m->name_len, m->name);
        }
        exempt = v->u.boolean;
    }
    v = sf_value_member(&m->value, "urgent", 6);
    if (v != NULL) {
        if (v->type != SF_BOOL) {
            return sf_error_set(err, SF_ERR_INVALID, "push category \"%.*s\": "
                                "\"urgent\" must be true or false",
                                (int) m->name_len, m->name);
        }
        urgent = v->u.boolean;
    }

    if (sf_push_policy_set(p, m->name, m->name_len, caps, ncaps, exempt,
                           urgent, err))
    {
        return SF_ERR_INVALID;
    }

    /* "caps": [] removes the caps */
    if (v != NULL && ncaps == 0 && sf_value_member(&m->value, "caps", 4)) {
        sf_push_find(p, m->name, m->name_len)->ncaps = 0;
    }
    return SF_OK;
}


int
sf_push_policy_apply_json(sf_push_policy *policy, const sf_value *v,
    sf_error *err)
{
    size_t           i;
    sf_push_policy   p;
    const sf_value  *m, *t;

    if (v == NULL || v->type != SF_OBJECT) {
        return sf_error_set(err, SF_ERR_INVALID, "\"push\" must be an object");
    }

    p = *policy;

    m = sf_value_member(v, "categories", 10);
    if (m != NULL) {
        if (m->type != SF_OBJECT) {
            return sf_error_set(err, SF_ERR_INVALID, "push: \"categories\" "
                                "must be an object");
        }
        for (i = 0; i < m->u.obj.n; i++) {
            if (sf_push_category_json(&p, &m->u.obj.members[i], err)) {
                return SF_ERR_INVALID;
            }
        }
    }

    m = sf_value_member(v, "quiet_hours", 11);
    if (m != NULL) {
        if (m->type == SF_NULL) {
            p.has_quiet = 0;
        } else if (m->type != SF_STRING || m->u.str.len != 11
                   || m->u.str.p[5] != '-'
                   || !sf_push_hhmm(m->u.str.p, &p.quiet_start)
                   || !sf_push_hhmm(m->u.str.p + 6, &p.quiet_end))
        {
            return sf_error_set(err, SF_ERR_INVALID, "push: \"quiet_hours\" "
                                "must be \"HH:MM-HH:MM\" or null");
        } else {
            p.has_quiet = 1;
        }
    }

    m = sf_value_member(v, "default_tz_offset", 17);
    if (m != NULL) {
        if (m->type != SF_NUMBER || fabs(m->u.number) > 14 * 60
            || m->u.number != floor(m->u.number))
        {
            return sf_error_set(err, SF_ERR_INVALID, "push: "
                                "\"default_tz_offset\" must be minutes east "
                                "of UTC");
        }
        p.default_tz_min = (int32_t) m->u.number;
    }

    m = sf_value_member(v, "throttle", 8);
    if (m != NULL) {
        if (m->type == SF_NULL) {
            p.throttle_rate = 0;
        } else {
            t = sf_value_member(m, "rate", 4);
            if (m->type != SF_OBJECT || t == NULL || t->type != SF_NUMBER
                || t->u.number < 0)
            {
                return sf_error_set(err, SF_ERR_INVALID, "push: \"throttle\" "
                                    "must be {\"rate\": messages per second, "
                                    "\"burst\": n}");
            }
            p.throttle_rate = t->u.number;
            t = sf_value_member(m, "burst", 5);
            p.throttle_burst = (t && t->type == SF_NUMBER && t->u.number >= 0)
                               ? t->u.number : 0;
        }
    }

    *policy = p;
    return SF_OK;
}


static void
sf_push_cap_text(sf_buf *b, const sf_push_cap *c)
{
    int64_t  s;

    s = c->window_ms / 1000;
    if (s % (7 * 86400) == 0) {
        sf_buf_printf(b, "\"%u/%lldw\"", c->max, (long long) (s / 604800));
    } else if (s % 86400 == 0) {
        sf_buf_printf(b, "\"%u/%lldd\"", c->max, (long long) (s / 86400));
    } else if (s % 3600 == 0) {
        sf_buf_printf(b, "\"%u/%lldh\"", c->max, (long long) (s / 3600));
    } else if (s % 60 == 0) {
        sf_buf_printf(b, "\"%u/%lldm\"", c->max, (long long) (s / 60));
    } else {
        sf_buf_printf(b, "\"%u/%llds\"", c->max, (long long) s);
    }
}


int
sf_push_policy_to_json(const sf_push_policy *p, sf_buf *b)
{
    uint32_t  i, j;

    sf_buf_appends(b, "{\"categories\":{");
    for (i = 0; i < p->ncategories; i++) {
        sf_buf_printf(b, "%s\"%s\":{\"caps\":[", i ? "," : "",
                      p->categories[i].name);
        for (j = 0; j < p->categories[i].ncaps; j++) {
            if (j) {
                sf_buf_append(b, ",", 1);
            }
            sf_push_cap_text(b, &p->categories[i].caps[j]);
        }
        sf_buf_printf(b, "],\"exempt\":%s,\"urgent\":%s}",
                      p->categories[i].exempt ? "true" : "false",
                      p->categories[i].urgent ? "true" : "false");
    }
    sf_buf_appends(b, "},\"quiet_hours\":");
    if (p->has_quiet) {
        sf_buf_printf(b, "\"%02u:%02u-%02u:%02u\"", p->quiet_start / 60,
                      p->quiet_start % 60, p->quiet_end / 60,
                      p->quiet_end % 60);
    } else {
        sf_buf_appends(b, "null");
    }
    sf_buf_printf(b, ",\"default_tz_offset\":%d,\"throttle\":",
                  p->default_tz_min);
    if (p->throttle_rate > 0) {
        sf_buf_appends(b, "{\"rate\":");
        sf_buf_append_js_number(b, p->throttle_rate);
        sf_buf_appends(b, ",\"burst\":");
        sf_buf_append_js_number(b, p->throttle_burst);
        sf_buf_append(b, "}", 1);
    } else {
        sf_buf_appends(b, "null");
    }
    return sf_buf_append(b, "}", 1);
}


/* ---- requests ---------------------------------------------------------------- */

static int
sf_push_field(const sf_value *v, const char *name, const char **s,
    size_t *len, size_t max, int required)
{
    const sf_value  *m;
    size_t           i;

    m = sf_value_member(v, name, strlen(name));
    if (m == NULL || m->type == SF_NULL) {
        return !required;
    }
    if (m->type != SF_STRING || m->u.str.len == 0 || m->u.str.len > max) {
        return 0;
    }
    for (i = 0; i < m->u.str.len; i++) {
        if ((unsigned char) m->u.str.p[i] < 0x20) {
            return 0;
        }
    }
    *s = m->u.str.p;
    *len = m->u.str.len;
    return 1;
}


int
sf_push_request_from_json(const sf_value *v, int64_t now_ms,
    sf_push_request *req, sf_error *err)
{
    const sf_value  *m;

    memset(req, 0, sizeof(*req));
    req->now_ms = now_ms;
    req->channel = "push";
    req->channel_len = 4;

    if (v == NULL || v->type != SF_OBJECT) {
        return sf_error_set(err, SF_ERR_INVALID, "a push request must be a "
                            "JSON object");
    }
    if (!sf_push_field(v, "user", &req->user, &req->user_len, 256, 1)) {
        return sf_error_set(err, SF_ERR_INVALID, "\"user\" must be a string "
                            "of 1 to 256 bytes");
    }
    if (!sf_push_field(v, "category", &req->category, &req->category_len,
                       SF_NAME_MAX - 1, 1))
    {
        return sf_error_set(err, SF_ERR_INVALID, "\"category\" is missing or "
                            "invalid");
    }
    if (!sf_push_field(v, "channel", &req->channel, &req->channel_len,
                       SF_NAME_MAX - 1, 0)
        || !sf_push_valid_name(req->channel, req->channel_len))
    {
        return sf_error_set(err, SF_ERR_INVALID, "\"channel\" must be a name "
                            "such as \"push\" or \"sms\"");
    }
    if (!sf_push_field(v, "campaign", &req->campaign, &req->campaign_len, 128,
                       0))
    {
        return sf_error_set(err, SF_ERR_INVALID, "\"campaign\" must be a "
                            "string of 1 to 128 bytes");
    }

    m = sf_value_member(v, "dry_run", 7);
    if (m != NULL) {
        if (m->type != SF_BOOL) {
            return sf_error_set(err, SF_ERR_INVALID, "\"dry_run\" must be true "
                                "or false");
        }
        req->dry_run = m->u.boolean;
    }

    return SF_OK;
}


/* ---- quiet hours ---------------------------------------------------------------- */

/* Whether local minute m is inside [start, end), a window that may wrap
 * midnight; *wait_s is then the time until it ends. */
static int
sf_push_in_window(int64_t local_s, uint16_t start, uint16_t end,
    int64_t *wait_s)
{
    int64_t  m, end_s;
    int      in;

    if (start == end) {
        return 0;
    }

    m = local_s / 60;
    in = start < end ? (m >= start && m < end) : (m >= start || m < end);
    if (!in) {
        return 0;
    }

    end_s = (int64_t) end * 60;
    *wait_s = (end_s - local_s + 86400) % 86400;
    return 1;
}


/* Whether list (comma-separated) holds name. */
static int
sf_push_listed(const char *list, size_t len, const char *name, size_t nlen)
{
    const char  *p, *end, *comma;

    p = list;
    end = list + len;
    while (p < end) {
        comma = memchr(p, ',', (size_t) (end - p));
        if (comma == NULL) {
            comma = end;
        }
        if ((size_t) (comma - p) == nlen && memcmp(p, name, nlen) == 0) {
            return 1;
        }
        p = comma + 1;
    }
    return 0;
}


/* Opted out globally ("all"), of the category or of the channel. */
static int
sf_push_opted_out(const sf_profile *p, const sf_push_request *req)
{
    return p->found && p->opt_out_len
           && (sf_push_listed(p->opt_out, p->opt_out_len, "all", 3)
               || sf_push_listed(p->opt_out, p->opt_out_len, req->category,
                                 req->category_len)
               || sf_push_listed(p->opt_out, p->opt_out_len, req->channel,
                                 req->channel_len));
}


/* Quiet hours in the user's local time, unless the category is urgent. */
static int
sf_push_check_quiet(const sf_push_policy *policy,
    const sf_push_category *cat, const sf_profile *p,
    const sf_push_request *req, sf_push_decision *d)
{
    int32_t   tz;
    int64_t   local_s, wait_s, now_s;
    uint16_t  qs, qe;
    int       has_quiet;

    now_s = req->now_ms / 1000;
    tz = (p->found && p->has_tz) ? p->tz_offset_min : policy->default_tz_min;
    local_s = ((now_s + tz * 60) % 86400 + 86400) % 86400;
    d->local_minute = (int) (local_s / 60);

    /* the user's own do-not-disturb window replaces the default */
    has_quiet = policy->has_quiet;
    qs = policy->quiet_start;
    qe = policy->quiet_end;
    if (p->found && p->has_quiet) {
        has_quiet = 1;
        qs = p->quiet_start;
        qe = p->quiet_end;
    }

    if (has_quiet && sf_push_in_window(local_s, qs, qe, &wait_s)) {
        d->quiet = 1;
        if (!cat->urgent) {
            d->reason = SF_PUSH_QUIET_HOURS;
            d->retry_at_ms = (now_s + wait_s) * 1000;
            return 1;
        }
    }

    return 0;
}


/*
 * Caps over the ring of send times (ascending): the count inside each
 * window, the time a unit frees, and what remains after one more send.
 */
static int
sf_push_check_caps(const sf_push_category *cat, const int64_t *ring,
    size_t n, int64_t now_ms, sf_push_decision *d)
{
    size_t    in, first;
    uint32_t  i, rem, best;
    int64_t   free_at;
    int       capped;

    capped = 0;
    best = UINT32_MAX;

    for (i = 0; i < cat->ncaps; i++) {
        /* sends inside (now - window, now] */
        for (first = 0; first < n && ring[first] <= now_ms
                                                 - cat->caps[i].window_ms;
             first++)
        {
            /* void */
        }
        in = n - first;

        if (in >= cat->caps[i].max) {
            capped = 1;
            /* one unit frees when the (in - max + 1)th oldest leaves */
            free_at = ring[n - cat->caps[i].max] + cat->caps[i].window_ms;
            if (free_at > d->retry_at_ms) {
                d->retry_at_ms = free_at;
            }
            d->limit = cat->caps[i].max;
            d->remaining = 0;
            d->reset_ms = free_at;
            best = 0;
            continue;
        }

        rem = cat->caps[i].max - (uint32_t) in - 1;
        if (!capped && rem < best) {
            best = rem;
            d->limit = cat->caps[i].max;
            d->remaining = rem;
            /* after this send, the oldest in the window frees first */
            d->reset_ms = (in ? ring[first] : now_ms)
                          + cat->caps[i].window_ms;
        }
    }

    if (capped) {
        d->reason = SF_PUSH_CAP;
    }
    return capped;
}


/* ---- the decision ------------------------------------------------------------------ */

typedef struct {
    int64_t   time_ms;
    uint8_t   reason;
    uint8_t   category_len;
    uint8_t   channel_len;
    uint8_t   pad;
    uint16_t  user_len;
    uint16_t  pad2;
    /* user, category, channel follow */
} sf_push_log_rec;


static size_t
sf_push_key(char *key, char type, const char *a, size_t alen, const char *b,
    size_t blen, const char *c, size_t clen)
{
    size_t  n;

    n = 0;
    key[n++] = type;
    memcpy(key + n, a, alen);
    n += alen;
    if (b) {
        key[n++] = '\0';
        memcpy(key + n, b, blen);
        n += blen;
    }
    if (c) {
        key[n++] = '\0';
        memcpy(key + n, c, clen);
        n += clen;
    }
    return n;
}


/* counters: "n<reason>" decisions, "x<reason>" of them expired from the log */

static int
sf_push_count(sf_txn *t, char kind, sf_push_reason reason, sf_error *err)
{
    int          rc;
    char         key[32];
    size_t       klen, vlen;
    uint64_t     n;
    const void  *val;

    klen = (size_t) snprintf(key, sizeof(key), "%c%s", kind,
                             sf_push_reason_name(reason));
    n = 0;
    rc = sf_txn_kv_get(t, SF_STORE_PUSH, key, klen, &val, &vlen, err);
    if (rc == SF_OK && vlen == sizeof(n)) {
        memcpy(&n, val, sizeof(n));
    } else if (rc != SF_OK && rc != SF_ERR_NOT_FOUND) {
        return rc;
    }
    n++;
    return sf_txn_kv_put(t, SF_STORE_PUSH, key, klen, &n, sizeof(n), 0, err);
}


typedef struct {
    int64_t          cutoff;
    int              n;
    sf_push_reason   reasons[2];
} sf_push_expiry;


static int sf_push_log_expired(const void *val, size_t len, void *ctx);


static int
sf_push_log(sf_txn *t, const sf_push_request *req, sf_push_reason reason,
    sf_error *err)
{
    int               rc;
    char              rec[sizeof(sf_push_log_rec) + 256 + 2 * SF_NAME_MAX];
    size_t            klen, n, dropped;
    sf_push_expiry    x;
    uint64_t          seq;
    unsigned char     be[8];
    const void       *key;
    sf_push_log_rec   h;
    int               i;

    seq = 0;
    rc = sf_txn_kv_last(t, SF_STORE_PUSH_LOG, &key, &klen, err);
    if (rc == SF_OK && klen == 8) {
        for (i = 0; i < 8; i++) {
            seq = (seq << 8) | ((const unsigned char *) key)[i];
        }
    } else if (rc != SF_OK && rc != SF_ERR_NOT_FOUND) {
        return rc;
    }
    seq++;
    for (i = 7; i >= 0; i--) {
        be[i] = (unsigned char) (seq & 0xff);
        seq >>= 8;
    }

    memset(&h, 0, sizeof(h));
    h.time_ms = req->now_ms;
    h.reason = (uint8_t) reason;
    h.user_len = (uint16_t) req->user_len;
    h.category_len = (uint8_t) req->category_len;
    h.channel_len = (uint8_t) req->channel_len;

    n = 0;
    memcpy(rec, &h, sizeof(h));
    n += sizeof(h);
    memcpy(rec + n, req->user, req->user_len);
    n += req->user_len;
    memcpy(rec + n, req->category, req->category_len);
    n += req->category_len;
    memcpy(rec + n, req->channel, req->channel_len);
    n += req->channel_len;

    rc = sf_txn_kv_put(t, SF_STORE_PUSH_LOG, be, 8, rec, n, SF_KV_APPEND,
                       err);

    if (rc != SF_OK || req->log_keep_ms <= 0) {
        return rc;
    }

    /*
     * Two older records go for each new one: the log stays within the
     * time kept however fast decisions come, at a bounded cost each.
     */

    x.cutoff = req->now_ms - req->log_keep_ms;
    x.n = 0;

    rc = sf_txn_kv_drop_first(t, SF_STORE_PUSH_LOG, sf_push_log_expired,
                              &x, 2, &dropped, err);

    /* what left the log is counted, so that the counters still add up */

    for (i = 0; rc == SF_OK && i < (int) dropped && i < x.n; i++) {
        rc = sf_push_count(t, 'x', x.reasons[i], err);
    }

    return rc;
}


static int
sf_push_log_expired(const void *val, size_t len, void *ctx)
{
    sf_push_expiry   *x = ctx;
    sf_push_log_rec   h;

    if (len < sizeof(h)) {
        return 0;
    }

    memcpy(&h, val, sizeof(h));

    if (h.time_ms >= x->cutoff || h.reason >= SF_PUSH__COUNT || x->n == 2) {
        return 0;
    }

    x->reasons[x->n++] = (sf_push_reason) h.reason;

    return 1;
}


static int
sf_push_check_throttle(sf_txn *t, const sf_push_policy *policy,
    const sf_push_request *req, sf_push_decision *d, int64_t *new_tat,
    sf_error *err)
{
    int          rc;
    size_t       vlen;
    double       interval, tau;
    int64_t      tat;
    const void  *val;

    tat = 0;
    rc = sf_txn_kv_get(t, SF_STORE_PUSH, "g", 1, &val, &vlen, err);
    if (rc == SF_OK && vlen == sizeof(tat)) {
        memcpy(&tat, val, sizeof(tat));
    } else if (rc != SF_OK && rc != SF_ERR_NOT_FOUND) {
        return rc;
    }

    /* GCRA: one emission interval per message, burst of tolerance */
    interval = 1000.0 / policy->throttle_rate;
    tau = interval * policy->throttle_burst;

    if (tat < req->now_ms) {
        tat = req->now_ms;
    }

    if ((double) (tat - req->now_ms) > tau) {
        d->reason = SF_PUSH_THROTTLED;
        d->retry_at_ms = req->now_ms
                         + (int64_t) ceil((double) (tat - req->now_ms) - tau);
        return 1;
    }

    *new_tat = tat + (int64_t) ceil(interval);
    return 0;
}


int
sf_txn_push_decide(sf_txn *t, const sf_push_policy *defaults,
    const sf_push_request *req, sf_push_decision *d, sf_error *err)
{
    int                      rc, found;
    char                     key[1 + 256 + 1 + 128 + 1 + SF_NAME_MAX];
    size_t                   klen, vlen, n, i, keep;
    int64_t                  ring[SF_PUSH_MAX_RING + 1], new_tat, oldest;
    sf_profile               p;
    sf_push_policy           policy;
    const void              *val;
    const sf_push_category  *cat;

    memset(d, 0, sizeof(*d));

    if (req->user_len > 256 || req->campaign_len > 128
        || req->category_len >= SF_NAME_MAX || req->channel_len >= SF_NAME_MAX)
    {
        return sf_error_set(err, SF_ERR_INVALID, "user, campaign, category "
                            "or channel too long");
    }

    rc = sf_txn_get_push_policy(t, &policy, &found, err);
    if (rc != SF_OK) {
        return rc;
    }
    if (!found) {
        policy = *defaults;
    }

    cat = sf_push_find(&policy, req->category, req->category_len);
    if (cat == NULL) {
        return sf_error_set(err, SF_ERR_INVALID, "unknown category \"%.*s\"",
                            (int) req->category_len, req->category);
    }

    rc = sf_txn_get_profile(t, req->user, req->user_len, &p, err);
    if (rc != SF_OK) {
        return rc;
    }

    new_tat = -1;
    n = 0;

    if (sf_push_opted_out(&p, req)) {
        d->reason = SF_PUSH_OPTED_OUT;
        goto decided;
    }

    if (req->campaign_len) {
        klen = sf_push_key(key, 'c', req->user, req->user_len, req->campaign,
                           req->campaign_len, NULL, 0);
        rc = sf_txn_kv_get(t, SF_STORE_PUSH, key, klen, &val, &vlen, err);
        if (rc == SF_OK) {
            d->reason = SF_PUSH_DUPLICATE;
            goto decided;
        }
        if (rc != SF_ERR_NOT_FOUND) {
            return rc;
        }
    }

    if (sf_push_check_quiet(&policy, cat, &p, req, d)) {
        goto decided;
    }

    if (!cat->exempt) {
        klen = sf_push_key(key, 'r', req->user, req->user_len, req->category,
                           req->category_len, req->channel, req->channel_len);
        rc = sf_txn_kv_get(t, SF_STORE_PUSH, key, klen, &val, &vlen, err);
        if (rc == SF_OK) {
            n = vlen / sizeof(int64_t);
            if (n > SF_PUSH_MAX_RING) {
                n = SF_PUSH_MAX_RING;
            }
            memcpy(ring, (const char *) val + vlen - n * sizeof(int64_t),
                   n * sizeof(int64_t));
        } else if (rc != SF_ERR_NOT_FOUND) {
            return rc;
        }

        if (sf_push_check_caps(cat, ring, n, req->now_ms, d)) {
            goto decided;
        }

        if (policy.throttle_rate > 0) {
            rc = sf_push_check_throttle(t, &policy, req, d, &new_tat, err);
            if (rc < 0) {
                return rc;
            }
            if (rc == 1) {
                goto decided;
            }
        }
    }

    d->allow = 1;
    d->reason = SF_PUSH_ALLOW;

decided:

    if (req->dry_run) {
        return SF_OK;
    }

    if (d->allow) {
        if (!cat->exempt) {
            /* the ring keeps what the longest window and largest cap need */
            oldest = req->now_ms;
            keep = 1;
            for (i = 0; i < cat->ncaps; i++) {
                if (req->now_ms - cat->caps[i].window_ms < oldest) {
                    oldest = req->now_ms - cat->caps[i].window_ms;
                }
                if (cat->caps[i].max > keep) {
                    keep = cat->caps[i].max;
                }
            }
            for (i = 0; i < n && (ring[i] <= oldest || n - i >= keep); i++) {
                /* drop */
            }
            memmove(ring, ring + i, (n - i) * sizeof(int64_t));
            n -= i;
            ring[n++] = req->now_ms;

            klen = sf_push_key(key, 'r', req->user, req->user_len,
                               req->category, req->category_len, req->channel,
                               req->channel_len);
            rc = sf_txn_kv_put(t, SF_STORE_PUSH, key, klen, ring,
                               n * sizeof(int64_t), 0, err);
            if (rc != SF_OK) {
                return rc;
            }
        }

        if (req->campaign_len) {
            klen = sf_push_key(key, 'c', req->user, req->user_len,
                               req->campaign, req->campaign_len, NULL, 0);
            rc = sf_txn_kv_put(t, SF_STORE_PUSH, key, klen, &req->now_ms,
                               sizeof(req->now_ms), 0, err);
            if (rc != SF_OK) {
                return rc;
            }
        }

        if (new_tat >= 0) {
            rc = sf_txn_kv_put(t, SF_STORE_PUSH, "g", 1, &new_tat,
                               sizeof(new_tat), 0, err);
            if (rc != SF_OK) {
                return rc;
            }
        }
    }

    rc = sf_push_count(t, 'n', d->reason, err);
    if (rc == SF_OK) {
        rc = sf_push_log(t, req, d->reason, err);
    }
    return rc;
}


int
sf_txn_get_push_policy(sf_txn *t, sf_push_policy *p, int *found,
    sf_error *err)
{
    int          rc;
    size_t       vlen;
    const void  *val;

    *found = 0;
    rc = sf_txn_kv_get(t, SF_STORE_PUSH, "p", 1, &val, &vlen, err);
    if (rc == SF_ERR_NOT_FOUND) {
        return SF_OK;
    }
    if (rc != SF_OK) {
        return rc;
    }
    if (vlen != sizeof(*p)) {
        return sf_error_set(err, SF_ERR_DB, "stored push policy of another "
                            "format");
    }

    memcpy(p, val, sizeof(*p));
    *found = 1;
    return SF_OK;
}


int
sf_txn_put_push_policy(sf_txn *t, const sf_push_policy *p, sf_error *err)
{
    return sf_txn_kv_put(t, SF_STORE_PUSH, "p", 1, p, sizeof(*p), 0, err);
}


static int
sf_push_counter(void *ctx, const void *key, size_t klen, const void *val,
    size_t vlen)
{
    int       r;
    uint64_t  n;
    uint64_t *counts = ctx;

    if (vlen != sizeof(n)) {
        return 0;
    }
    memcpy(&n, val, sizeof(n));

    for (r = 0; r < SF_PUSH__COUNT; r++) {
        if (klen == 1 + strlen(sf_push_reasons[r])
            && memcmp((const char *) key + 1, sf_push_reasons[r], klen - 1)
               == 0)
        {
            counts[r] = n;
        }
    }
    return 0;
}


int
sf_db_push_counters(sf_db *db, uint64_t counts[SF_PUSH__COUNT],
    sf_error *err)
{
    memset(counts, 0, SF_PUSH__COUNT * sizeof(uint64_t));
    return sf_db_kv_each(db, SF_STORE_PUSH, "n", 1, sf_push_counter, counts,
                         err);
}


int
sf_db_push_expired(sf_db *db, uint64_t counts[SF_PUSH__COUNT],
    sf_error *err)
{
    memset(counts, 0, SF_PUSH__COUNT * sizeof(uint64_t));
    return sf_db_kv_each(db, SF_STORE_PUSH, "x", 1, sf_push_counter, counts,
                         err);
}


typedef struct {
    sf_push_log_cb   cb;
    void            *ctx;
} sf_push_log_walk;


static int
sf_push_log_entry(void *ctx, const void *key, size_t klen, const void *val,
    size_t vlen)
{
    int                i;
    uint64_t           seq;
    const char        *s;
    sf_push_log_rec    h;
    sf_push_log_walk  *w = ctx;

    if (klen != 8 || vlen < sizeof(h)) {
        return 0;
    }
    memcpy(&h, val, sizeof(h));
    if (sizeof(h) + h.user_len + h.category_len + h.channel_len != vlen) {
        return 0;
    }

    seq = 0;
    for (i = 0; i < 8; i++) {
        seq = (seq << 8) | ((const unsigned char *) key)[i];
    }

    s = (const char *) val + sizeof(h);
    return w->cb(w->ctx, seq, h.time_ms, s, h.user_len, s + h.user_len,
                 h.category_len, s + h.user_len + h.category_len,
                 h.channel_len, (sf_push_reason) h.reason);
}


int
sf_db_push_log(sf_db *db, sf_push_log_cb cb, void *ctx, sf_error *err)
{
    sf_push_log_walk  w;

    w.cb = cb;
    w.ctx = ctx;
    return sf_db_kv_each(db, SF_STORE_PUSH_LOG, NULL, 0, sf_push_log_entry,
                         &w, err);
}
