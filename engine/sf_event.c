/*
 * Events that change profiles: purchases, returns and points
 * adjustments, read from JSON objects such as
 *   {"type":"purchase","user":"u1","order_id":"o-9","amount":120.5,
 *    "categories":["shoes","socks"],"time":"2026-11-11T20:00:00Z"}
 *   {"type":"return","user":"u1","order_id":"o-9","amount":20}
 *   {"type":"points","user":"u1","amount":-1000,"order_id":"redeem-77"}
 * The order id makes each event idempotent (sf_txn_apply_event).  The
 * applied events are kept as orders, read and written here as JSON for
 * export and import.
 */

#include <math.h>
#include <string.h>

#include "storefront.h"


static int
sf_event_string(const sf_value *obj, const char *name, const char **s,
    size_t *len, size_t max)
{
    const sf_value  *v;
    size_t           i;

    v = sf_value_member(obj, name, strlen(name));
    if (v == NULL || v->type != SF_STRING || v->u.str.len == 0
        || v->u.str.len > max)
    {
        return 0;
    }

    for (i = 0; i < v->u.str.len; i++) {
        if ((unsigned char) v->u.str.p[i] < 0x20) {
            return 0;
        }
    }

    *s = v->u.str.p;
    *len = v->u.str.len;
    return 1;
}


/* An unknown member is an error: a typo is not data. */
static int
sf_event_known_members(const sf_value *obj, const char *const *known,
    sf_error *err)
{
    const char  *name;

    name = sf_value_unknown_member(obj, known);
    if (name != NULL) {
        return sf_error_set(err, SF_ERR_INVALID, "unknown member \"%.64s\"",
                            name);
    }

    return SF_OK;
}


int
sf_event_from_json(const sf_value *v, int64_t now, sf_event *ev,
    sf_error *err)
{
    size_t           i, tlen;
    const char      *type;
    const sf_value  *m;

    static const char  *known[] = { "type", "user", "order_id", "amount",
                                    "time", "categories", NULL };

    memset(ev, 0, sizeof(*ev));

    if (v == NULL || v->type != SF_OBJECT) {
        return sf_error_set(err, SF_ERR_INVALID, "an event must be a JSON "
                            "object");
    }

    if (!sf_event_string(v, "type", &type, &tlen, 16)) {
        return sf_error_set(err, SF_ERR_INVALID, "\"type\" must be "
                            "\"purchase\", \"return\" or \"points\"");
    }

    if (tlen == 8 && memcmp(type, "purchase", 8) == 0) {
        ev->type = SF_EVENT_PURCHASE;
    } else if (tlen == 6 && memcmp(type, "return", 6) == 0) {
        ev->type = SF_EVENT_RETURN;
    } else if (tlen == 6 && memcmp(type, "points", 6) == 0) {
        ev->type = SF_EVENT_POINTS;
    } else {
        return sf_error_set(err, SF_ERR_INVALID, "unknown event type \"%.*s\"",
                            (int) tlen, type);
    }

    if (!sf_event_string(v, "user", &ev->user, &ev->user_len, 256)) {
        return sf_error_set(err, SF_ERR_INVALID, "\"user\" must be a string "
                            "of 1 to 256 bytes");
    }

    if (!sf_event_string(v, "order_id", &ev->order_id, &ev->order_id_len,
                         128))
    {
        return sf_error_set(err, SF_ERR_INVALID, "\"order_id\" must be a "
                            "string of 1 to 128 bytes (it makes the event "
                            "idempotent)");
    }

    m = sf_value_member(v, "amount", 6);
    if (m != NULL && (m->type != SF_NUMBER || !isfinite(m->u.number))) {
        return sf_error_set(err, SF_ERR_INVALID, "\"amount\" must be a "
                            "number");
    }

    if (ev->type == SF_EVENT_PURCHASE
        && (m == NULL || m->u.number < 0 || m->u.number > 1e12))
    {
        return sf_error_set(err, SF_ERR_INVALID, "a purchase needs an "
                            "\"amount\" >= 0");
    }
    if (ev->type == SF_EVENT_RETURN && m != NULL && m->u.number < 0) {
        return sf_error_set(err, SF_ERR_INVALID, "a return's \"amount\" must "
                            "be >= 0 (absent: the whole order)");
    }
    if (ev->type == SF_EVENT_POINTS && (m == NULL || m->u.number == 0)) {
        return sf_error_set(err, SF_ERR_INVALID, "a points event needs a "
                            "non-zero \"amount\"");
    }
    ev->amount = m ? m->u.number : -1;

    ev->time = now;
    m = sf_value_member(v, "time", 4);
    if (m != NULL && sf_parse_time(m, &ev->time) != SF_OK) {
        return sf_error_set(err, SF_ERR_INVALID, "\"time\" must be unix "
                            "seconds or ISO 8601 text");
    }

    m = sf_value_member(v, "categories", 10);
    if (m != NULL) {
        if (m->type != SF_ARRAY || m->u.arr.n > 64) {
            return sf_error_set(err, SF_ERR_INVALID, "\"categories\" must be "
                                "an array of at most 64 names");
        }
        for (i = 0; i < m->u.arr.n; i++) {
            if (m->u.arr.items[i].type != SF_STRING
                || m->u.arr.items[i].u.str.len == 0
                || m->u.arr.items[i].u.str.len > 64)
            {
                return sf_error_set(err, SF_ERR_INVALID, "\"categories\" "
                                    "must hold names of 1 to 64 bytes");
            }
        }
        ev->categories = m;
    }

    return sf_event_known_members(v, known, err);
}


/* ---- orders: applied events as kept ----------------------------------- */

int
sf_order_from_json(const sf_value *v, sf_order_record *o, sf_error *err)
{
    size_t           tlen;
    const char      *type;
    const sf_value  *m;

    static const char  *known[] = { "user", "order_id", "type", "time",
                                    "amount", "returned", "points", NULL };

    memset(o, 0, sizeof(*o));

    if (v == NULL || v->type != SF_OBJECT) {
        return sf_error_set(err, SF_ERR_INVALID, "an order must be a JSON "
                            "object");
    }

    if (!sf_event_string(v, "user", &o->user, &o->user_len, 256)) {
        return sf_error_set(err, SF_ERR_INVALID, "\"user\" must be a string "
                            "of 1 to 256 bytes");
    }

    if (!sf_event_string(v, "order_id", &o->order_id, &o->order_id_len,
                         128))
    {
        return sf_error_set(err, SF_ERR_INVALID, "\"order_id\" must be a "
                            "string of 1 to 128 bytes");
    }

    if (!sf_event_string(v, "type", &type, &tlen, 16)) {
        tlen = 0;
    }

    if (tlen == 8 && memcmp(type, "purchase", 8) == 0) {
        o->info.type = SF_EVENT_PURCHASE;
    } else if (tlen == 6 && memcmp(type, "points", 6) == 0) {
        o->info.type = SF_EVENT_POINTS;
    } else {
        return sf_error_set(err, SF_ERR_INVALID, "\"type\" must be "
                            "\"purchase\" or \"points\" (a return is kept "
                            "as its purchase's \"returned\")");
    }

    m = sf_value_member(v, "time", 4);
    if (m == NULL || sf_parse_time(m, &o->info.time) != SF_OK) {
        return sf_error_set(err, SF_ERR_INVALID, "\"time\" must be unix "
                            "seconds or ISO 8601 text");
    }

    m = sf_value_member(v, "amount", 6);
    if (m == NULL || m->type != SF_NUMBER || !isfinite(m->u.number)
        || (o->info.type == SF_EVENT_PURCHASE
            && (m->u.number < 0 || m->u.number > 1e12)))
    {
        return sf_error_set(err, SF_ERR_INVALID, "\"amount\" must be a "
                            "number (>= 0 for a purchase)");
    }
    o->info.amount = m->u.number;

    m = sf_value_member(v, "returned", 8);
    if (m != NULL
        && (m->type != SF_NUMBER || !isfinite(m->u.number)
            || m->u.number < 0
            || (m->u.number > 0 && (o->info.type != SF_EVENT_PURCHASE
                                    || m->u.number > o->info.amount))))
    {
        return sf_error_set(err, SF_ERR_INVALID, "\"returned\" must be a "
                            "number from 0 to the purchase's \"amount\"");
    }
    o->info.returned = m ? m->u.number : 0;

    m = sf_value_member(v, "points", 6);
    if (m != NULL && (m->type != SF_NUMBER || !isfinite(m->u.number))) {
        return sf_error_set(err, SF_ERR_INVALID, "\"points\" must be a "
                            "number");
    }
    o->info.points = m ? m->u.number : 0;

    return sf_event_known_members(v, known, err);
}


int
sf_order_to_json(const sf_order_record *o, sf_buf *out)
{
    if (sf_buf_appends(out, "{\"user\":") != SF_OK
        || sf_buf_append_json_string(out, o->user, o->user_len) != SF_OK
        || sf_buf_appends(out, ",\"order_id\":") != SF_OK
        || sf_buf_append_json_string(out, o->order_id, o->order_id_len)
           != SF_OK
        || sf_buf_appends(out, o->info.type == SF_EVENT_POINTS
                               ? ",\"type\":\"points\",\"time\":"
                               : ",\"type\":\"purchase\",\"time\":")
           != SF_OK
        || sf_buf_append_time(out, o->info.time) != SF_OK
        || sf_buf_appends(out, ",\"amount\":") != SF_OK
        || sf_buf_append_js_number(out, o->info.amount) != SF_OK
        || sf_buf_appends(out, ",\"returned\":") != SF_OK
        || sf_buf_append_js_number(out, o->info.returned) != SF_OK
        || sf_buf_appends(out, ",\"points\":") != SF_OK
        || sf_buf_append_js_number(out, o->info.points) != SF_OK
        || sf_buf_appends(out, "}") != SF_OK)
    {
        return SF_ERR_NOMEM;
    }

    return SF_OK;
}
