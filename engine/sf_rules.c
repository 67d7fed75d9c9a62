/*
 * Profile rules: RFM cut-points, the ordered segment table, lifecycle
 * thresholds, member tiers and points.  Kept as one fixed-size block so
 * that a worker can copy it once when it changes and read it freely.
 */

#include <math.h>
#include <string.h>

#include "storefront.h"


#define SF_RULES_MAGIC  0x31525853u     /* "SXR1" */


typedef struct {
    const char  *name;
    uint8_t      r_min, r_max, f_min, f_max, m_min, m_max;
} sf_default_segment;

/*
 * The common RFM segment table; first match wins, else "others".  The
 * guides' groups map onto it: "active" = champions + loyal, "potential"
 * (high value, low activity) = cant_lose_them + at_risk, "churn risk" =
 * about_to_sleep + hibernating + lost.
 */
static const sf_default_segment  sf_default_segments[] = {
    { "champions",          4, 5, 4, 5, 4, 5 },
    { "loyal",              3, 5, 3, 5, 3, 5 },
    { "cant_lose_them",     1, 2, 4, 5, 4, 5 },
    { "at_risk",            1, 2, 3, 5, 3, 5 },
    { "new",                5, 5, 1, 1, 1, 5 },
    { "promising",          4, 4, 1, 1, 1, 5 },
    { "potential_loyalist", 3, 5, 1, 3, 1, 5 },
    { "need_attention",     2, 3, 2, 3, 2, 5 },
    { "about_to_sleep",     2, 3, 1, 2, 1, 5 },
    { "lost",               1, 1, 1, 2, 1, 5 },
    { "hibernating",        1, 2, 1, 3, 1, 5 },
};


void
sf_rules_default(sf_rules *rules)
{
    size_t  i;

    memset(rules, 0, sizeof(*rules));
    rules->magic = SF_RULES_MAGIC;
    rules->version = 1;

    rules->recency_days[0] = 30;
    rules->recency_days[1] = 90;
    rules->recency_days[2] = 180;
    rules->recency_days[3] = 365;
    rules->frequency[0] = 1;
    rules->frequency[1] = 2;
    rules->frequency[2] = 4;
    rules->frequency[3] = 8;
    rules->monetary[0] = 100;
    rules->monetary[1] = 300;
    rules->monetary[2] = 1000;
    rules->monetary[3] = 3000;

    rules->nsegments = sizeof(sf_default_segments)
                       / sizeof(sf_default_segments[0]);
    for (i = 0; i < rules->nsegments; i++) {
        snprintf(rules->segments[i].name, SF_NAME_MAX, "%s",
                 sf_default_segments[i].name);
        rules->segments[i].r_min = sf_default_segments[i].r_min;
        rules->segments[i].r_max = sf_default_segments[i].r_max;
        rules->segments[i].f_min = sf_default_segments[i].f_min;
        rules->segments[i].f_max = sf_default_segments[i].f_max;
        rules->segments[i].m_min = sf_default_segments[i].m_min;
        rules->segments[i].m_max = sf_default_segments[i].m_max;
    }

    rules->new_days = 30;
    rules->at_risk_days = 90;
    rules->lost_days = 365;

    rules->ntiers = 3;
    snprintf(rules->tiers[0].name, SF_NAME_MAX, "regular");
    rules->tiers[0].min_spend = 0;
    snprintf(rules->tiers[0].benefits, SF_BENEFITS_MAX,
             "{\"discount\":0,\"free_shipping\":false}");
    snprintf(rules->tiers[1].name, SF_NAME_MAX, "silver");
    rules->tiers[1].min_spend = 1000;
    snprintf(rules->tiers[1].benefits, SF_BENEFITS_MAX,
             "{\"discount\":0.05,\"free_shipping\":false}");
    snprintf(rules->tiers[2].name, SF_NAME_MAX, "gold");
    rules->tiers[2].min_spend = 5000;
    snprintf(rules->tiers[2].benefits, SF_BENEFITS_MAX,
             "{\"discount\":0.1,\"free_shipping\":true}");

    rules->points_per_unit = 1;
}


/* ---- reading rules from JSON -------------------------------------------- */

static int
sf_rules_name(const sf_value *v, char *out, const char *what, sf_error *err)
{
    size_t  i;
    char    c;

    if (v == NULL || v->type != SF_STRING || v->u.str.len == 0
        || v->u.str.len >= SF_NAME_MAX)
    {
        return sf_error_set(err, SF_ERR_INVALID, "%s: \"name\" must be a "
                            "string of 1 to %d characters", what,
                            SF_NAME_MAX - 1);
    }

    for (i = 0; i < v->u.str.len; i++) {
        c = v->u.str.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '-'))
        {
            return sf_error_set(err, SF_ERR_INVALID, "%s: name \"%.*s\" may "
                                "hold only letters, digits, _ and -", what,
                                (int) v->u.str.len, v->u.str.p);
        }
    }

    memcpy(out, v->u.str.p, v->u.str.len);
    out[v->u.str.len] = '\0';
    return SF_OK;
}


static int
sf_rules_number(const sf_value *obj, const char *name, double min,
    double *out, const char *what, sf_error *err)
{
    const sf_value  *v;

    v = sf_value_member(obj, name, strlen(name));
    if (v == NULL) {
        return SF_OK;           /* absent: keep */
    }

    if (v->type != SF_NUMBER || v->u.number < min) {
        return sf_error_set(err, SF_ERR_INVALID, "%s: \"%s\" must be a "
                            "number >= %g", what, name, min);
    }

    *out = v->u.number;
    return SF_OK;
}


static int
sf_rules_cuts(const sf_value *obj, const char *name, double *cuts,
    sf_error *err)
{
    int              i;
    const sf_value  *v;

    v = sf_value_member(obj, name, strlen(name));
    if (v == NULL) {
        return SF_OK;
    }

    if (v->type != SF_ARRAY || v->u.arr.n != 4) {
        return sf_error_set(err, SF_ERR_INVALID, "rfm: \"%s\" must be 4 "
                            "ascending cut-points", name);
    }

    for (i = 0; i < 4; i++) {
        if (v->u.arr.items[i].type != SF_NUMBER
            || v->u.arr.items[i].u.number < 0
            || (i && v->u.arr.items[i].u.number
                     < v->u.arr.items[i - 1].u.number))
        {
            return sf_error_set(err, SF_ERR_INVALID, "rfm: \"%s\" must be 4 "
                                "ascending non-negative cut-points", name);
        }
    }

    for (i = 0; i < 4; i++) {
        cuts[i] = v->u.arr.items[i].u.number;
    }
    return SF_OK;
}


static int
sf_rules_score_range(const sf_value *seg, const char *name, uint8_t *min,
    uint8_t *max, const char *what, sf_error *err)
{
    const sf_value  *v;

    v = sf_value_member(seg, name, strlen(name));
    if (v == NULL) {
        *min = 0;
        *max = 5;
        return SF_OK;
    }

    if (v->type != SF_ARRAY || v->u.arr.n != 2
        || v->u.arr.items[0].type != SF_NUMBER
        || v->u.arr.items[1].type != SF_NUMBER
        || v->u.arr.items[0].u.number < 0 || v->u.arr.items[1].u.number > 5
        || v->u.arr.items[0].u.number > v->u.arr.items[1].u.number)
    {
        return sf_error_set(err, SF_ERR_INVALID, "%s: \"%s\" must be "
                            "[min, max] scores within 0..5", what, name);
    }

    *min = (uint8_t) v->u.arr.items[0].u.number;
    *max = (uint8_t) v->u.arr.items[1].u.number;
    return SF_OK;
}


static int
sf_rules_weekday(const sf_value *v, int32_t *out)
{
    static const char  *names[] = { "sun", "mon", "tue", "wed", "thu", "fri",
                                    "sat" };
    int                 i;

    if (v->type != SF_STRING || v->u.str.len < 3) {
        return 0;
    }

    for (i = 0; i < 7; i++) {
        if (strncasecmp(v->u.str.p, names[i], 3) == 0) {
            *out = i;
            return 1;
        }
    }
    return 0;
}


static int
sf_rules_segments(sf_rules *rules, const sf_value *v, sf_error *err)
{
    char              what[64];
    size_t            i, j;
    sf_segment_rule   segs[SF_MAX_SEGMENTS];
    const sf_value   *seg;

    if (v->type != SF_ARRAY || v->u.arr.n == 0
        || v->u.arr.n > SF_MAX_SEGMENTS)
    {
        return sf_error_set(err, SF_ERR_INVALID, "\"segments\" must be an "
                            "array of 1 to %d rules", SF_MAX_SEGMENTS);
    }

    for (i = 0; i < v->u.arr.n; i++) {
        seg = &v->u.arr.items[i];
        snprintf(what, sizeof(what), "segments[%zu]", i);

        if (seg->type != SF_OBJECT) {
            return sf_error_set(err, SF_ERR_INVALID, "%s must be an object",
                                what);
        }

        if (sf_rules_name(sf_value_member(seg, "name", 4), segs[i].name,
                          what, err)
            || sf_rules_score_range(seg, "r", &segs[i].r_min, &segs[i].r_max,
                                    what, err)
            || sf_rules_score_range(seg, "f", &segs[i].f_min, &segs[i].f_max,
                                    what, err)
            || sf_rules_score_range(seg, "m", &segs[i].m_min, &segs[i].m_max,
                                    what, err))
        {
            return SF_ERR_INVALID;
        }

        for (j = 0; j < i; j++) {
            if (strcmp(segs[j].name, segs[i].name) == 0) {
                return sf_error_set(err, SF_ERR_INVALID, "%s: segment \"%s\" "
                                    "appears twice", what, segs[i].name);
            }
        }
    }

    rules->nsegments = (uint32_t) v->u.arr.n;
    memcpy(rules->segments, segs, v->u.arr.n * sizeof(segs[0]));
    return SF_OK;
}


static int
sf_rules_tiers(sf_rules *rules, const sf_value *v, sf_error *err)
{
    char             what[64];
    size_t           i;
    sf_buf           b;
    sf_tier_rule     tiers[SF_MAX_TIERS];
    const sf_value  *tier, *m;

    if (v->type != SF_ARRAY || v->u.arr.n == 0 || v->u.arr.n > SF_MAX_TIERS) {
        return sf_error_set(err, SF_ERR_INVALID, "\"tiers\" must be an "
                            "array of 1 to %d tiers", SF_MAX_TIERS);
    }

    memset(tiers, 0, sizeof(tiers));

    for (i = 0; i < v->u.arr.n; i++) {
        tier = &v->u.arr.items[i];
        snprintf(what, sizeof(what), "tiers[%zu]", i);

        if (tier->type != SF_OBJECT) {
            return sf_error_set(err, SF_ERR_INVALID, "%s must be an object",
                                what);
        }

        if (sf_rules_name(sf_value_member(tier, "name", 4), tiers[i].name,
                          what, err))
        {
            return SF_ERR_INVALID;
        }

        m = sf_value_member(tier, "min_spend_365", 13);
        if (m == NULL || m->type != SF_NUMBER || m->u.number < 0) {
            return sf_error_set(err, SF_ERR_INVALID, "%s: \"min_spend_365\" "
                                "must be a number >= 0", what);
        }
        tiers[i].min_spend = m->u.number;

        if (i && tiers[i].min_spend <= tiers[i - 1].min_spend) {
            return sf_error_set(err, SF_ERR_INVALID, "%s: tiers must be in "
                                "ascending order of \"min_spend_365\"", what);
        }

        m = sf_value_member(tier, "benefits", 8);
        if (m == NULL) {
            snprintf(tiers[i].benefits, SF_BENEFITS_MAX, "{}");
            continue;
        }
        if (m->type != SF_OBJECT) {
            return sf_error_set(err, SF_ERR_INVALID, "%s: \"benefits\" must be "
                                "an object", what);
        }

        sf_buf_init(&b);
        sf_json_write(&b, m);
        if (b.len >= SF_BENEFITS_MAX) {
            sf_buf_free(&b);
            return sf_error_set(err, SF_ERR_INVALID, "%s: \"benefits\" is "
                                "longer than %d bytes as JSON", what,
                                SF_BENEFITS_MAX - 1);
        }
        memcpy(tiers[i].benefits, b.data, b.len + 1);
        sf_buf_free(&b);
    }

    rules->ntiers = (uint32_t) v->u.arr.n;
    memcpy(rules->tiers, tiers, sizeof(tiers));
    return SF_OK;
}


static int
sf_rules_points(sf_rules *rules, const sf_value *v, sf_error *err)
{
    size_t           i;
    int64_t          t;
    sf_points_day    days[SF_MAX_POINT_DAYS];
    const sf_value  *mult, *d, *m;

    if (v->type != SF_OBJECT) {
        return sf_error_set(err, SF_ERR_INVALID, "\"points\" must be an "
                            "object");
    }

    if (sf_rules_number(v, "per_unit", 0, &rules->points_per_unit, "points",
                        err))
    {
        return SF_ERR_INVALID;
    }

    mult = sf_value_member(v, "multipliers", 11);
    if (mult == NULL) {
        return SF_OK;
    }

    if (mult->type != SF_ARRAY || mult->u.arr.n > SF_MAX_POINT_DAYS) {
        return sf_error_set(err, SF_ERR_INVALID, "points: \"multipliers\" must "
                            "be an array of at most %d days",
                            SF_MAX_POINT_DAYS);
    }

    for (i = 0; i < mult->u.arr.n; i++) {
        d = &mult->u.arr.items[i];
        days[i].day = -1;
        days[i].weekday = -1;

        m = sf_value_member(d, "multiplier", 10);
        if (d->type != SF_OBJECT || m == NULL || m->type != SF_NUMBER
            || m->u.number <= 0)
        {
            return sf_error_set(err, SF_ERR_INVALID, "points.multipliers[%zu]: "
                                "needs a \"multiplier\" > 0", i);
        }
        days[i].multiplier = m->u.number;

        if ((m = sf_value_member(d, "date", 4)) != NULL) {
            if (m->type != SF_STRING || m->u.str.len != 10
                || sf_parse_time(m, &t) != SF_OK)
            {
                return sf_error_set(err, SF_ERR_INVALID, "points.multipliers"
                                    "[%zu]: \"date\" must be YYYY-MM-DD", i);
            }
            days[i].day = (int32_t) (t / 86400);

        } else if ((m = sf_value_member(d, "weekday", 7)) != NULL) {
            if (!sf_rules_weekday(m, &days[i].weekday)) {
                return sf_error_set(err, SF_ERR_INVALID, "points.multipliers"
                                    "[%zu]: \"weekday\" must be mon..sun", i);
            }

        } else {
            return sf_error_set(err, SF_ERR_INVALID, "points.multipliers[%zu]: "
                                "needs a \"date\" or a \"weekday\"", i);
        }
    }

    rules->npoint_days = (uint32_t) mult->u.arr.n;
    memcpy(rules->point_days, days, mult->u.arr.n * sizeof(days[0]));
    return SF_OK;
}


int
sf_rules_apply_json(sf_rules *rules, const sf_value *v, sf_error *err)
{
    sf_rules         r;
    const sf_value  *m;

    if (v == NULL || v->type != SF_OBJECT) {
        return sf_error_set(err, SF_ERR_INVALID, "rules must be an object");
    }

    r = *rules;     /* all or nothing */

    if ((m = sf_value_member(v, "rfm", 3)) != NULL) {
        if (m->type != SF_OBJECT) {
            return sf_error_set(err, SF_ERR_INVALID, "\"rfm\" must be an "
                                "object");
        }
        if (sf_rules_cuts(m, "recency_days", r.recency_days, err)
            || sf_rules_cuts(m, "frequency", r.frequency, err)
            || sf_rules_cuts(m, "monetary", r.monetary, err))
        {
            return SF_ERR_INVALID;
        }
        r.rfm_computed_at = 0;
    }

    if ((m = sf_value_member(v, "segments", 8)) != NULL
        && sf_rules_segments(&r, m, err))
    {
        return SF_ERR_INVALID;
    }

    if ((m = sf_value_member(v, "lifecycle", 9)) != NULL) {
        if (m->type != SF_OBJECT
            || sf_rules_number(m, "new_days", 0, &r.new_days, "lifecycle", err)
            || sf_rules_number(m, "at_risk_days", 1, &r.at_risk_days,
                               "lifecycle", err)
            || sf_rules_number(m, "lost_days", 1, &r.lost_days, "lifecycle",
                               err))
        {
            return m->type != SF_OBJECT
                   ? sf_error_set(err, SF_ERR_INVALID, "\"lifecycle\" must be "
                                  "an object")
                   : SF_ERR_INVALID;
        }
        if (r.at_risk_days >= r.lost_days) {
            return sf_error_set(err, SF_ERR_INVALID, "lifecycle: "
                                "\"at_risk_days\" must be less than "
                                "\"lost_days\"");
        }
    }

    if ((m = sf_value_member(v, "tiers", 5)) != NULL
        && sf_rules_tiers(&r, m, err))
    {
        return SF_ERR_INVALID;
    }

    if ((m = sf_value_member(v, "points", 6)) != NULL
        && sf_rules_points(&r, m, err))
    {
        return SF_ERR_INVALID;
    }

    *rules = r;
    return SF_OK;
}


/* ---- writing rules as JSON ----------------------------------------------- */

static void
sf_rules_json_cuts(sf_buf *b, const char *name, const double *cuts)
{
    int  i;

    sf_buf_printf(b, "\"%s\":[", name);
    for (i = 0; i < 4; i++) {
        if (i) {
            sf_buf_append(b, ",", 1);
        }
        sf_buf_append_js_number(b, cuts[i]);
    }
    sf_buf_append(b, "]", 1);
}


int
sf_rules_to_json(const sf_rules *r, sf_buf *b)
{
    static const char  *weekdays[] = { "sun", "mon", "tue", "wed", "thu",
                                       "fri", "sat" };
    uint32_t            i;
    const sf_segment_rule  *s;

    sf_buf_appends(b, "{\"rfm\":{");
    sf_rules_json_cuts(b, "recency_days", r->recency_days);
    sf_buf_append(b, ",", 1);
    sf_rules_json_cuts(b, "frequency", r->frequency);
    sf_buf_append(b, ",", 1);
    sf_rules_json_cuts(b, "monetary", r->monetary);
    sf_buf_appends(b, "},\"segments\":[");

    for (i = 0; i < r->nsegments; i++) {
        s = &r->segments[i];
        sf_buf_printf(b, "%s{\"name\":\"%s\",\"r\":[%u,%u],\"f\":[%u,%u],"
                      "\"m\":[%u,%u]}", i ? "," : "", s->name, s->r_min,
                      s->r_max, s->f_min, s->f_max, s->m_min, s->m_max);
    }

    sf_buf_appends(b, "],\"lifecycle\":{\"new_days\":");
    sf_buf_append_js_number(b, r->new_days);
    sf_buf_appends(b, ",\"at_risk_days\":");
    sf_buf_append_js_number(b, r->at_risk_days);
    sf_buf_appends(b, ",\"lost_days\":");
    sf_buf_append_js_number(b, r->lost_days);
    sf_buf_appends(b, "},\"tiers\":[");

    for (i = 0; i < r->ntiers; i++) {
        sf_buf_printf(b, "%s{\"name\":\"%s\",\"min_spend_365\":", i ? "," : "",
                      r->tiers[i].name);
        sf_buf_append_js_number(b, r->tiers[i].min_spend);
        sf_buf_printf(b, ",\"benefits\":%s}", r->tiers[i].benefits);
    }

    sf_buf_appends(b, "],\"points\":{\"per_unit\":");
    sf_buf_append_js_number(b, r->points_per_unit);
    sf_buf_appends(b, ",\"multipliers\":[");

    for (i = 0; i < r->npoint_days; i++) {
        sf_buf_appends(b, i ? ",{" : "{");
        if (r->point_days[i].day >= 0) {
            sf_buf_appends(b, "\"date\":");
            /* the date part of the ISO time */
            sf_buf_append_time(b, (int64_t) r->point_days[i].day * 86400);
            b->len -= 11;
            sf_buf_append(b, "\"", 1);
        } else {
            sf_buf_printf(b, "\"weekday\":\"%s\"",
                          weekdays[r->point_days[i].weekday]);
        }
        sf_buf_appends(b, ",\"multiplier\":");
        sf_buf_append_js_number(b, r->point_days[i].multiplier);
        sf_buf_append(b, "}", 1);
    }

    return sf_buf_appends(b, "]}}");
}


double
sf_rules_points_multiplier(const sf_rules *rules, int64_t t)
{
    int32_t   day, weekday;
    uint32_t  i;
    double    m;

    day = (int32_t) (t / 86400);
    weekday = (int32_t) ((day + 4) % 7);     /* 1970-01-01 was a Thursday */

    m = 1;
    for (i = 0; i < rules->npoint_days; i++) {
        if (rules->point_days[i].day == day
            || rules->point_days[i].weekday == weekday)
        {
            m = fmax(m, rules->point_days[i].multiplier);
        }
    }

    return m;
}
