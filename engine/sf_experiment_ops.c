/*
 * Operating experiments while they run: start, stop, ramp coverage, and
 * change the split by re-randomisation.  Changes go through the
 * experiment's JSON form and the compiler, so they are validated exactly
 * as an import is.
 */

#include <math.h>
#include <string.h>

#include "storefront.h"


/* Copies obj's members into m, leaving out the names in skip. */
static size_t
sf_ops_copy(const sf_value *obj, sf_member *m, const char **skip)
{
    size_t        i, n;
    const char  **s;

    n = 0;
    for (i = 0; i < obj->u.obj.n; i++) {
        for (s = skip; *s; s++) {
            if (strlen(*s) == obj->u.obj.members[i].name_len
                && memcmp(*s, obj->u.obj.members[i].name,
                          obj->u.obj.members[i].name_len) == 0)
            {
                break;
            }
        }
        if (*s == NULL) {
            m[n++] = obj->u.obj.members[i];
        }
    }
    return n;
}


static void
sf_ops_set(sf_member *m, const char *name, const sf_value *v)
{
    m->name = name;
    m->name_len = strlen(name);
    m->value = *v;
}


static void
sf_ops_value_text(sf_buf *b, const sf_value *v)
{
    if (v == NULL) {
        sf_buf_appends(b, "default");
    } else {
        sf_json_write(b, v);
    }
}


int
sf_experiment_update(const void *rec, size_t len, const sf_value *changes,
    sf_buf *out, sf_buf *summary, sf_error *err)
{
    int              rc;
    char             seed[300];
    double           version;
    size_t           n, i;
    sf_buf           json;
    sf_arena        *a;
    sf_value         exp, updated, sv, vv;
    sf_member       *m;
    const sf_value  *active, *coverage, *weights, *old, *v;
    static const char  *skip[] = { "active", "coverage", "weights", "seed",
                                   "bucketVersion", NULL };

    if (changes == NULL || changes->type != SF_OBJECT
        || changes->u.obj.n == 0)
    {
        return sf_error_set(err, SF_ERR_INVALID, "changes must be an object "
                            "with \"active\", \"coverage\" or \"weights\"");
    }

    for (i = 0; i < changes->u.obj.n; i++) {
        const sf_member  *c = &changes->u.obj.members[i];

        if (!((c->name_len == 6 && !memcmp(c->name, "active", 6))
              || (c->name_len == 8 && !memcmp(c->name, "coverage", 8))
              || (c->name_len == 7 && !memcmp(c->name, "weights", 7))))
        {
            return sf_error_set(err, SF_ERR_INVALID, "cannot change \"%.*s\": "
                                "only \"active\", \"coverage\" and "
                                "\"weights\"", (int) c->name_len, c->name);
        }
    }

    active = sf_value_member(changes, "active", 6);
    coverage = sf_value_member(changes, "coverage", 8);
    weights = sf_value_member(changes, "weights", 7);

    if (active && active->type != SF_BOOL) {
        return sf_error_set(err, SF_ERR_INVALID, "\"active\" must be true or "
                            "false");
    }

    sf_buf_init(&json);
    a = sf_arena_create(0);
    if (a == NULL || sf_experiment_to_json(rec, len, &json) != SF_OK
        || sf_json_parse(json.data, json.len, a, &exp, err) != SF_OK)
    {
        sf_buf_free(&json);
        sf_arena_destroy(a);
        return sf_error_set(err, SF_ERR_DB, "corrupt experiment record");
    }

    m = sf_arena_alloc(a, (exp.u.obj.n + 5) * sizeof(sf_member));
    if (m == NULL) {
        rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
        goto done;
    }
    n = sf_ops_copy(&exp, m, skip);

    /* active */
    old = sf_value_member(&exp, "active", 6);
    v = active ? active : old;
    if (v) {
        sf_ops_set(&m[n++], "active", v);
    }
    if (active && (old == NULL ? 1 : old->u.boolean) != active->u.boolean) {
        sf_buf_printf(summary, "%sactive %s -> %s", summary->len ? ", " : "",
                      old == NULL || old->u.boolean ? "true" : "false",
                      active->u.boolean ? "true" : "false");
    }

    /* coverage: ranges keep their starts, so nobody moves */
    old = sf_value_member(&exp, "coverage", 8);
    v = coverage ? coverage : old;
    if (v) {
        sf_ops_set(&m[n++], "coverage", v);
    }
    if (coverage) {
        sf_buf_appends(summary, summary->len ? ", coverage " : "coverage ");
        sf_ops_value_text(summary, old);
        sf_buf_appends(summary, " -> ");
        sf_ops_value_text(summary, coverage);
    }

    /* weights: a new split needs a new seed, else users would move
     * between arms in a biased way */
    old = sf_value_member(&exp, "weights", 7);
    v = weights ? weights : old;
    if (v) {
        sf_ops_set(&m[n++], "weights", v);
    }

    old = sf_value_member(&exp, "seed", 4);
    v = sf_value_member(&exp, "bucketVersion", 13);
    version = (v && v->type == SF_NUMBER) ? v->u.number : 0;

    if (weights) {
        const sf_value  *key = sf_value_member(&exp, "key", 3);
        const sf_value  *base = old ? old : key;
        const char      *colon;
        size_t           blen;

        /* the base seed, without an earlier ":vN" */
        blen = base->u.str.len;
        colon = NULL;
        for (i = blen; i > 0; i--) {
            if (base->u.str.p[i - 1] == ':') {
                colon = base->u.str.p + i - 1;
                break;
            }
        }
        if (colon && version > 0 && colon[1] == 'v') {
            blen = (size_t) (colon - base->u.str.p);
        }

        version += 1;
        snprintf(seed, sizeof(seed), "%.*s:v%.0f", (int) blen, base->u.str.p,
                 version);
        sv.type = SF_STRING;
        sv.u.str.p = seed;
        sv.u.str.len = strlen(seed);
        sf_ops_set(&m[n++], "seed", &sv);

        sf_buf_appends(summary, summary->len ? ", weights " : "weights ");
        sf_ops_value_text(summary, sf_value_member(&exp, "weights", 7));
        sf_buf_appends(summary, " -> ");
        sf_ops_value_text(summary, weights);
        sf_buf_printf(summary, " (re-randomised: seed \"%s\")", seed);

    } else if (old) {
        sf_ops_set(&m[n++], "seed", old);
    }

    if (version > 0) {
        vv.type = SF_NUMBER;
        vv.u.number = version;
        sf_ops_set(&m[n++], "bucketVersion", &vv);
    }

    updated.type = SF_OBJECT;
    updated.u.obj.members = m;
    updated.u.obj.n = n;

    rc = sf_experiment_compile(&updated, out, err);
    if (rc == SF_OK && summary->len == 0) {
        sf_buf_appends(summary, "no change");
    }

done:

    sf_buf_free(&json);
    sf_arena_destroy(a);
    return rc;
}
