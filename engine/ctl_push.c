/*
 * storefrontctl: push decision counters, the audit log, its verification
 * against the caps, the policy in force, and explained dry-run decisions.
 *
 * Every command uses the engine's public API only.  "explain" evaluates
 * each check on its own by deciding dry runs in a write transaction that
 * is always aborted: the policy and the profile are changed inside it to
 * isolate one check at a time, and nothing is ever committed.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "ctl.h"
#include "ctl_push.h"


const char ctl_push_usage[] =
    "push counters [--json]\n"
    "      Push decisions counted by reason.\n"
    "  push log [--json|--jsonl] [--user U] [--category C] [--reason R]\n"
    "      The audit log of push decisions, in order.\n"
    "  push policy [--policy FILE]\n"
    "      The push policy in force: the one stored by import, else the\n"
    "      engine's defaults with FILE (a \"push\" object) over them.\n"
    "  push verify [--policy FILE] [--json]\n"
    "      Check the audit log against the policy: no user over a cap in\n"
    "      any window, the throttle kept, counters equal to the log.\n"
    "      Exit status 1 when a check fails.\n"
    "  explain --push --user U --category C [--channel X] [--campaign ID]\n"
    "      [--at TIME] [--policy FILE] [--json]\n"
    "      A dry-run push decision with every check explained.\n";


typedef struct {
    const char  *db;
    const char  *user;
    const char  *category;
    const char  *channel;
    const char  *campaign;
    const char  *at;
    const char  *policy_file;
    const char  *reason;
    int          json;
    int          jsonl;
} ctl_push_opts;


static void ctl_push_time_text(char *out, size_t size, int64_t ms);


/* ---- options ------------------------------------------------------------ */

static int
ctl_push_parse(const char *cmd, int argc, char **argv, ctl_push_opts *o)
{
    int           i, flag;
    size_t        len;
    const char   *a, *val, **slot;

    static const struct {
        const char  *name;
        size_t       offset;     /* of the const char * in ctl_push_opts */
        int          flag;       /* 1: --json, 2: --jsonl, 3: ignored */
    } opts[] = {
        { "db", offsetof(ctl_push_opts, db), 0 },
        { "user", offsetof(ctl_push_opts, user), 0 },
        { "category", offsetof(ctl_push_opts, category), 0 },
        { "channel", offsetof(ctl_push_opts, channel), 0 },
        { "campaign", offsetof(ctl_push_opts, campaign), 0 },
        { "at", offsetof(ctl_push_opts, at), 0 },
        { "policy", offsetof(ctl_push_opts, policy_file), 0 },
        { "reason", offsetof(ctl_push_opts, reason), 0 },
        { "json", 0, 1 },
        { "jsonl", 0, 2 },
        { "push", 0, 3 },
        { NULL, 0, 0 }
    };

    for (i = 1; i < argc; i++) {
        a = argv[i];

        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            return ctl_usage_err("%s: unexpected argument \"%s\"", cmd, a);
        }

        a += 2;
        len = strcspn(a, "=");
        flag = -1;

        for (int j = 0; opts[j].name != NULL; j++) {
            if (strlen(opts[j].name) != len
                || strncmp(opts[j].name, a, len) != 0)
            {
                continue;
            }

            flag = opts[j].flag;

            if (flag) {
                if (a[len] == '=') {
                    return ctl_usage_err("%s: option '--%s' takes no "
                                         "value", cmd, opts[j].name);
                }
                if (flag == 1) {
                    o->json = 1;
                } else if (flag == 2) {
                    o->jsonl = 1;
                }
                break;
            }

            if (a[len] == '=') {
                val = a + len + 1;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                return ctl_usage_err("%s: option '--%s' needs a value",
                                     cmd, opts[j].name);
            }

            slot = (const char **) ((char *) o + opts[j].offset);
            *slot = val;
            break;
        }

        if (flag == -1) {
            return ctl_usage_err("%s: unknown option '%s'", cmd, argv[i]);
        }
    }

    return CTL_OK;
}


/*
 * The message names no command, unlike ctl_need_db's; the map size is
 * the database's own (the global --map-size is not passed on).
 */
static int
ctl_push_open(const ctl_push_opts *o, unsigned flags, sf_db **db)
{
    ctl_global  g;

    if (o->db == NULL || o->db[0] == '\0') {
        return ctl_usage_err("no database: give --db DIR or set "
                             "STOREFRONT_DB");
    }

    memset(&g, 0, sizeof(g));
    g.db_path = o->db;

    return ctl_open_db(&g, flags, db);
}


static int64_t
ctl_push_now_ms(void)
{
    struct timeval  tv;

    gettimeofday(&tv, NULL);
    return (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;
}


/* ---- policies ------------------------------------------------------------- */

/* Reads a JSON file: a "push" object, or an import file holding one. */
static int
ctl_push_read_policy(const char *path, sf_push_policy *p)
{
    int              rc;
    long             size;
    FILE            *f;
    char            *text;
    sf_arena        *a;
    sf_error         err;
    sf_value         doc;
    const sf_value  *v;

    f = fopen(path, "rb");
    if (f == NULL) {
        ctl_err("%s: %s", path, strerror(errno));
        return CTL_ERROR;
    }

    text = NULL;
    size = -1;

    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0
        && fseek(f, 0, SEEK_SET) == 0)
    {
        text = malloc((size_t) size + 1);
    }

    if (text == NULL
        || fread(text, 1, (size_t) size, f) != (size_t) size)
    {
        ctl_err("%s: cannot read", path);
        free(text);
        fclose(f);
        return CTL_ERROR;
    }

    fclose(f);

    a = sf_arena_create(65536);
    if (a == NULL) {
        free(text);
        return ctl_nomem();
    }

    memset(&err, 0, sizeof(err));

    rc = sf_json_parse(text, (size_t) size, a, &doc, &err);

    if (rc == SF_OK) {
        v = sf_value_member(&doc, "push", 4);
        rc = sf_push_policy_apply_json(p, v ? v : &doc, &err);
    }

    sf_arena_destroy(a);
    free(text);

    if (rc != SF_OK) {
        ctl_err("%s: %s", path, err.msg);
        return CTL_ERROR;
    }

    return CTL_OK;
}


/*
 * The policy in force: the one stored, else the defaults (with the file
 * over them).  *source says which.
 */
static int
ctl_push_policy_in_force(sf_db *db, const ctl_push_opts *o,
    sf_push_policy *p, const char **source)
{
    int        rc, found;
    sf_txn    *txn;
    sf_error   err;

    memset(&err, 0, sizeof(err));
    found = 0;

    if (db != NULL) {
        rc = sf_txn_begin(db, &txn, &err);
        if (rc == SF_OK) {
            rc = sf_txn_get_push_policy(txn, p, &found, &err);
            sf_txn_abort(txn);
        }
        if (rc != SF_OK) {
            ctl_err("%s", err.msg);
            return CTL_ERROR;
        }
    }

    if (found) {
        *source = "database";
        return CTL_OK;
    }

    sf_push_policy_default(p);
    *source = "defaults";

    if (o->policy_file) {
        *source = "file";
        return ctl_push_read_policy(o->policy_file, p);
    }

    return CTL_OK;
}


static const sf_push_category *
ctl_push_category(const sf_push_policy *p, const char *name, size_t len)
{
    uint32_t  i;

    for (i = 0; i < p->ncategories; i++) {
        if (strlen(p->categories[i].name) == len
            && memcmp(p->categories[i].name, name, len) == 0)
        {
            return &p->categories[i];
        }
    }
    return NULL;
}


static void
ctl_push_cap_text(char *out, size_t size, const sf_push_cap *c)
{
    int64_t  s;

    s = c->window_ms / 1000;

    if (s % 604800 == 0) {
        snprintf(out, size, "%u/%" PRId64 "w", c->max, s / 604800);
    } else if (s % 86400 == 0) {
        snprintf(out, size, "%u/%" PRId64 "d", c->max, s / 86400);
    } else if (s % 3600 == 0) {
        snprintf(out, size, "%u/%" PRId64 "h", c->max, s / 3600);
    } else if (s % 60 == 0) {
        snprintf(out, size, "%u/%" PRId64 "m", c->max, s / 60);
    } else {
        snprintf(out, size, "%u/%" PRId64 "s", c->max, s);
    }
}


int
ctl_push_import_policy(sf_txn *txn, const sf_value *v, sf_error *err)
{
    int             rc, found;
    sf_push_policy  p;

    rc = sf_txn_get_push_policy(txn, &p, &found, err);
    if (rc != SF_OK) {
        return rc;
    }

    if (!found) {
        sf_push_policy_default(&p);
    }

    rc = sf_push_policy_apply_json(&p, v, err);
    if (rc != SF_OK) {
        return rc;
    }

    return sf_txn_put_push_policy(txn, &p, err);
}


int
ctl_push_check_policy(const sf_value *v, sf_error *err)
{
    sf_push_policy  p;

    sf_push_policy_default(&p);
    return sf_push_policy_apply_json(&p, v, err);
}


static int
ctl_push_policy(const ctl_push_opts *o)
{
    int              rc;
    sf_db           *db;
    sf_buf           b;
    const char      *source;
    sf_push_policy   p;

    rc = ctl_push_open(o, 0, &db);
    if (rc != CTL_OK) {
        return rc;
    }

    rc = ctl_push_policy_in_force(db, o, &p, &source);
    sf_db_close(db);

    if (rc != CTL_OK) {
        return rc;
    }

    sf_buf_init(&b);
    sf_buf_printf(&b, "{\"source\":\"%s\",\"policy\":", source);
    sf_push_policy_to_json(&p, &b);
    sf_buf_appends(&b, "}\n");

    rc = ctl_write(stdout, &b) ? CTL_ERROR : CTL_OK;
    sf_buf_free(&b);

    return ctl_finish_stdout(rc);
}


/* ---- counters ---------------------------------------------------------------- */

static int
ctl_push_counters(const ctl_push_opts *o)
{
    int        rc, i;
    sf_db     *db;
    uint64_t   counts[SF_PUSH__COUNT], total;
    sf_error   err;

    rc = ctl_push_open(o, SF_DB_READONLY, &db);
    if (rc != CTL_OK) {
        return rc;
    }

    memset(&err, 0, sizeof(err));
    rc = sf_db_push_counters(db, counts, &err);
    sf_db_close(db);

    if (rc != SF_OK) {
        ctl_err("%s", err.msg);
        return CTL_ERROR;
    }

    total = 0;
    for (i = 0; i < SF_PUSH__COUNT; i++) {
        total += counts[i];
    }

    if (o->json) {
        for (i = 0; i < SF_PUSH__COUNT; i++) {
            printf("%s\"%s\":%" PRIu64, i ? "," : "{",
                   sf_push_reason_name((sf_push_reason) i), counts[i]);
        }
        printf(",\"decisions\":%" PRIu64 ",\"denied\":%" PRIu64 "}\n", total,
               total - counts[SF_PUSH_ALLOW]);
        return ctl_finish_stdout(CTL_OK);
    }

    printf("%-12s %12s\n", "REASON", "DECISIONS");
    for (i = 0; i < SF_PUSH__COUNT; i++) {
        printf("%-12s %12" PRIu64 "\n", sf_push_reason_name((sf_push_reason) i),
               counts[i]);
    }
    printf("%-12s %12" PRIu64 "\n%-12s %12" PRIu64 "\n", "total", total,
           "denied", total - counts[SF_PUSH_ALLOW]);

    return ctl_finish_stdout(CTL_OK);
}


/* ---- the log --------------------------------------------------------------------- */

typedef struct {
    const ctl_push_opts  *o;
    sf_buf                b;
    uint64_t              n;
    int                   failed;
} ctl_push_log_ctx;


static int
ctl_push_log_entry(void *ctx, uint64_t seq, int64_t time_ms,
    const char *user, size_t user_len, const char *category,
    size_t category_len, const char *channel, size_t channel_len,
    sf_push_reason reason)
{
    char                  t[64];
    ctl_push_log_ctx     *l = ctx;
    const ctl_push_opts  *o = l->o;

    if ((o->user && (strlen(o->user) != user_len
                     || memcmp(o->user, user, user_len) != 0))
        || (o->category && (strlen(o->category) != category_len
                            || memcmp(o->category, category, category_len)
                               != 0))
        || (o->reason && strcmp(o->reason, sf_push_reason_name(reason)) != 0))
    {
        return 0;
    }

    l->b.len = 0;

    if (o->json || o->jsonl) {
        if (o->json) {
            sf_buf_appends(&l->b, l->n ? ",\n" : "[\n");
        }
        sf_buf_printf(&l->b, "{\"seq\":%" PRIu64 ",\"time\":", seq);
        sf_buf_append_time(&l->b, time_ms / 1000);
        sf_buf_printf(&l->b, ",\"time_ms\":%" PRId64 ",\"user\":", time_ms);
        sf_buf_append_json_string(&l->b, user, user_len);
        sf_buf_appends(&l->b, ",\"category\":");
        sf_buf_append_json_string(&l->b, category, category_len);
        sf_buf_appends(&l->b, ",\"channel\":");
        sf_buf_append_json_string(&l->b, channel, channel_len);
        sf_buf_printf(&l->b, ",\"decision\":\"%s\",\"reason\":\"%s\"}",
                      reason == SF_PUSH_ALLOW ? "allow" : "deny",
                      sf_push_reason_name(reason));
        if (o->jsonl) {
            sf_buf_append(&l->b, "\n", 1);
        }

    } else {
        if (l->n == 0) {
            sf_buf_printf(&l->b, "%-10s %-24s %-8s %-14s %-8s %-8s %s\n",
                          "SEQ", "TIME", "DECISION", "REASON", "CATEGORY",
                          "CHANNEL", "USER");
        }
        ctl_push_time_text(t, sizeof(t), time_ms / 1000 * 1000);
        sf_buf_printf(&l->b, "%-10" PRIu64 " %-24s", seq, t);
        sf_buf_printf(&l->b, " %-8s %-14s %-8.*s %-8.*s %.*s\n",
                      reason == SF_PUSH_ALLOW ? "allow" : "deny",
                      sf_push_reason_name(reason), (int) category_len,
                      category, (int) channel_len, channel, (int) user_len,
                      user);
    }

    l->n++;

    if (ctl_write(stdout, &l->b) != 0) {
        l->failed = 1;
        return 1;
    }

    return 0;
}


static int
ctl_push_log(const ctl_push_opts *o)
{
    int               rc;
    sf_db            *db;
    sf_error          err;
    ctl_push_log_ctx  l;

    if (o->json && o->jsonl) {
        return ctl_usage_err("push log: --json or --jsonl, not both");
    }

    if (o->reason) {
        for (rc = 0; rc < SF_PUSH__COUNT; rc++) {
            if (strcmp(o->reason, sf_push_reason_name((sf_push_reason) rc))
                == 0)
            {
                break;
            }
        }
        if (rc == SF_PUSH__COUNT) {
            return ctl_usage_err("push log: unknown reason \"%s\" "
                                 "(allow, cap, quiet_hours, opted_out, "
                                 "throttled, duplicate)", o->reason);
        }
    }

    rc = ctl_push_open(o, SF_DB_READONLY, &db);
    if (rc != CTL_OK) {
        return rc;
    }

    memset(&l, 0, sizeof(l));
    l.o = o;
    sf_buf_init(&l.b);
    memset(&err, 0, sizeof(err));

    rc = sf_db_push_log(db, ctl_push_log_entry, &l, &err);
    sf_db_close(db);

    if (l.failed) {
        sf_buf_free(&l.b);
        return ctl_finish_stdout(CTL_ERROR);
    }

    if (rc != SF_OK) {
        sf_buf_free(&l.b);
        ctl_err("%s", err.msg);
        return CTL_ERROR;
    }

    if (o->json) {
        fputs(l.n ? "\n]\n" : "[]\n", stdout);
    }

    sf_buf_free(&l.b);
    return ctl_finish_stdout(CTL_OK);
}


/* ---- verify ---------------------------------------------------------------------- */

/*
 * The allowed sends of each (user, category, channel), newest last, as
 * many as the largest cap needs: a send at t breaks a cap (max, window)
 * when the max-th send before it is inside (t - window, t].
 */

typedef struct {
    char      *key;
    size_t     len;
    uint32_t   n;               /* sends kept */
    int64_t   *ring;            /* oldest first */
} ctl_push_slot;

typedef struct {
    const sf_push_policy  *policy;
    uint32_t               keep;
    ctl_push_slot         *slots;
    size_t                 nslots;     /* power of two */
    size_t                 used;
    uint64_t               counts[SF_PUSH__COUNT];
    uint64_t               decisions;
    uint64_t               cap_violations;
    uint64_t               throttle_violations;
    uint64_t               unknown;    /* allowed, category not in policy */
    uint64_t               out_of_order;
    int64_t                last_time;
    int64_t                tat;
    int                    nomem;
    char                   first[512]; /* the first violation */
} ctl_push_verify_ctx;


static uint64_t
ctl_push_hash(const char *p, size_t len)
{
    size_t    i;
    uint64_t  h;

    h = 1469598103934665603ULL;
    for (i = 0; i < len; i++) {
        h ^= (unsigned char) p[i];
        h *= 1099511628211ULL;
    }
    return h;
}


static ctl_push_slot *
ctl_push_slot_get(ctl_push_verify_ctx *v, const char *key, size_t len)
{
    size_t          i, j, n;
    ctl_push_slot  *s, *old;

    if ((v->used + 1) * 10 > v->nslots * 7) {
        n = v->nslots ? v->nslots * 2 : 4096;
        s = calloc(n, sizeof(ctl_push_slot));
        if (s == NULL) {
            return NULL;
        }
        old = v->slots;
        for (i = 0; i < v->nslots; i++) {
            if (old[i].key == NULL) {
                continue;
            }
            j = ctl_push_hash(old[i].key, old[i].len) & (n - 1);
            while (s[j].key != NULL) {
                j = (j + 1) & (n - 1);
            }
            s[j] = old[i];
        }
        free(old);
        v->slots = s;
        v->nslots = n;
    }

    i = ctl_push_hash(key, len) & (v->nslots - 1);

    for ( ;; ) {
        s = &v->slots[i];
        if (s->key == NULL) {
            break;
        }
        if (s->len == len && memcmp(s->key, key, len) == 0) {
            return s;
        }
        i = (i + 1) & (v->nslots - 1);
    }

    s->key = malloc(len);
    s->ring = malloc(v->keep * sizeof(int64_t));
    if (s->key == NULL || s->ring == NULL) {
        free(s->key);
        free(s->ring);
        s->key = NULL;
        return NULL;
    }
    memcpy(s->key, key, len);
    s->len = len;
    s->n = 0;
    v->used++;

    return s;
}


static int
ctl_push_verify_entry(void *ctx, uint64_t seq, int64_t time_ms,
    const char *user, size_t user_len, const char *category,
    size_t category_len, const char *channel, size_t channel_len,
    sf_push_reason reason)
{
    char                     key[1024], cap[32];
    size_t                   klen;
    uint32_t                 i;
    double                   interval, tau;
    ctl_push_slot           *s;
    ctl_push_verify_ctx     *v = ctx;
    const sf_push_category  *cat;

    v->decisions++;
    if ((unsigned) reason < SF_PUSH__COUNT) {
        v->counts[reason]++;
    }

    if (time_ms < v->last_time) {
        v->out_of_order++;
    }
    v->last_time = time_ms;

    if (reason != SF_PUSH_ALLOW) {
        return 0;
    }

    cat = ctl_push_category(v->policy, category, category_len);
    if (cat == NULL) {
        v->unknown++;
        return 0;
    }
    if (cat->exempt) {
        return 0;
    }

    if (v->policy->throttle_rate > 0) {
        /* replay the GCRA over the allowed sends, as the engine keeps it */
        interval = 1000.0 / v->policy->throttle_rate;
        tau = interval * v->policy->throttle_burst;
        if (v->tat < time_ms) {
            v->tat = time_ms;
        }
        if ((double) (v->tat - time_ms) > tau) {
            if (v->throttle_violations++ == 0 && v->cap_violations == 0) {
                snprintf(v->first, sizeof(v->first), "seq %" PRIu64 ": the "
                         "throttle was exceeded", seq);
            }
        }
        v->tat += (int64_t) (interval + 0.999999999);
    }

    if (cat->ncaps == 0) {
        return 0;
    }

    if (user_len + category_len + channel_len + 2 > sizeof(key)) {
        return 0;
    }
    klen = 0;
    memcpy(key, user, user_len);
    klen += user_len;
    key[klen++] = '\0';
    memcpy(key + klen, category, category_len);
    klen += category_len;
    key[klen++] = '\0';
    memcpy(key + klen, channel, channel_len);
    klen += channel_len;

    s = ctl_push_slot_get(v, key, klen);
    if (s == NULL) {
        v->nomem = 1;
        return 1;
    }

    for (i = 0; i < cat->ncaps; i++) {
        if (s->n >= cat->caps[i].max
            && s->ring[s->n - cat->caps[i].max]
               > time_ms - cat->caps[i].window_ms)
        {
            if (v->cap_violations++ == 0 && v->throttle_violations == 0) {
                ctl_push_cap_text(cap, sizeof(cap), &cat->caps[i]);
                snprintf(v->first, sizeof(v->first), "seq %" PRIu64 ": user "
                         "\"%.*s\" category \"%.*s\" channel \"%.*s\": "
                         "over the cap %s", seq, (int) user_len, user,
                         (int) category_len, category, (int) channel_len,
                         channel, cap);
            }
            break;
        }
    }

    if (s->n == v->keep) {
        memmove(s->ring, s->ring + 1, (v->keep - 1) * sizeof(int64_t));
        s->n--;
    }
    s->ring[s->n++] = time_ms;

    return 0;
}


static int
ctl_push_verify(const ctl_push_opts *o)
{
    int                   rc, i, ok;
    sf_db                *db;
    size_t                k;
    uint32_t              c, j;
    uint64_t              counters[SF_PUSH__COUNT], expired[SF_PUSH__COUNT];
    sf_error              err;
    const char           *source;
    sf_push_policy        p;
    ctl_push_verify_ctx   v;

    rc = ctl_push_open(o, 0, &db);
    if (rc != CTL_OK) {
        return rc;
    }

    rc = ctl_push_policy_in_force(db, o, &p, &source);
    if (rc != CTL_OK) {
        sf_db_close(db);
        return rc;
    }

    memset(&v, 0, sizeof(v));
    v.policy = &p;
    v.keep = 1;
    v.last_time = INT64_MIN;

    for (c = 0; c < p.ncategories; c++) {
        for (j = 0; j < p.categories[c].ncaps; j++) {
            if (p.categories[c].caps[j].max > v.keep) {
                v.keep = p.categories[c].caps[j].max;
            }
        }
    }

    memset(&err, 0, sizeof(err));

    rc = sf_db_push_log(db, ctl_push_verify_entry, &v, &err);
    if (rc == SF_OK) {
        rc = sf_db_push_counters(db, counters, &err);
    }
    if (rc == SF_OK) {
        rc = sf_db_push_expired(db, expired, &err);
    }
    sf_db_close(db);

    for (k = 0; k < v.nslots; k++) {
        free(v.slots[k].key);
        free(v.slots[k].ring);
    }
    free(v.slots);

    if (v.nomem) {
        return ctl_nomem();
    }
    if (rc != SF_OK) {
        ctl_err("%s", err.msg);
        return CTL_ERROR;
    }

    /* the counters count what storefront_push_log_keep let go as well */

    ok = 1;
    for (i = 0; i < SF_PUSH__COUNT; i++) {
        if (counters[i] != v.counts[i] + expired[i]) {
            ok = 0;
        }
    }

    if (o->json) {
        printf("{\"policy\":\"%s\",\"decisions\":%" PRIu64 ",\"log\":",
               source, v.decisions);
        for (i = 0; i < SF_PUSH__COUNT; i++) {
            printf("%s\"%s\":%" PRIu64, i ? "," : "{",
                   sf_push_reason_name((sf_push_reason) i), v.counts[i]);
        }
        for (i = 0; i < SF_PUSH__COUNT; i++) {
            printf("%s\"%s\":%" PRIu64, i ? "," : "},\"expired\":{",
                   sf_push_reason_name((sf_push_reason) i), expired[i]);
        }
        printf("},\"counters_match\":%s,\"keys\":%zu,\"cap_violations\":%"
               PRIu64 ",\"throttle_violations\":%" PRIu64 ",\"unknown\":%"
               PRIu64 ",\"out_of_order\":%" PRIu64 "}\n",
               ok ? "true" : "false", v.used, v.cap_violations,
               v.throttle_violations, v.unknown, v.out_of_order);

    } else {
        printf("policy: %s\ndecisions in the log: %" PRIu64 "\n", source,
               v.decisions);
        for (i = 0; i < SF_PUSH__COUNT; i++) {
            printf("  %-12s %" PRIu64 "\n",
                   sf_push_reason_name((sf_push_reason) i), v.counts[i]);
        }
        for (i = 0; i < SF_PUSH__COUNT; i++) {
            if (expired[i]) {
                printf("  expired from the log (storefront_push_log_keep): "
                       "%s %" PRIu64 "\n",
                       sf_push_reason_name((sf_push_reason) i), expired[i]);
            }
        }
        printf("counters equal to the log: %s\n", ok ? "yes" : "NO");
        printf("capped (user, category, channel) checked: %zu\n", v.used);
        printf("cap violations: %" PRIu64 "\n", v.cap_violations);
        printf("throttle violations: %" PRIu64 "\n", v.throttle_violations);
        if (v.unknown) {
            printf("allowed sends of categories not in the policy: %" PRIu64
                   "\n", v.unknown);
        }
        if (v.out_of_order) {
            printf("decisions with an earlier time than the one before: %"
                   PRIu64 "\n", v.out_of_order);
        }
        if (v.first[0]) {
            printf("first violation: %s\n", v.first);
        }
    }

    rc = (ok && v.cap_violations == 0 && v.throttle_violations == 0)
         ? CTL_OK : CTL_ERROR;

    return ctl_finish_stdout(rc);
}


/* ---- explain --------------------------------------------------------------------- */

typedef struct {
    const char  *check;
    const char  *result;        /* pass, fail, skip */
    char         detail[400];
    char         cap[32];       /* caps: "2/7d" */
    int64_t      used;          /* caps: -1 unknown */
    uint32_t     limit;
    int64_t      until_ms;      /* a failing check: when it clears, 0 */
} ctl_push_check;


/*
 * A dry run with the policy and the profile given, in the transaction
 * (aborted by the caller): the profile is written without its opt-out
 * list unless keep_opt_out.
 */
static int
ctl_push_probe(sf_txn *txn, const sf_push_policy *pol, const sf_profile *pr,
    int keep_opt_out, const sf_push_request *req, sf_push_decision *d,
    sf_error *err)
{
    int         rc;
    sf_buf      rec;
    sf_profile  copy;

    rc = sf_txn_put_push_policy(txn, pol, err);
    if (rc != SF_OK) {
        return rc;
    }

    if (pr->found) {
        copy = *pr;
        if (!keep_opt_out) {
            copy.opt_out = NULL;
            copy.opt_out_len = 0;
        }
        sf_buf_init(&rec);
        rc = sf_profile_encode(&copy, &rec);
        if (rc == SF_OK) {
            rc = sf_txn_put_profile(txn, req->user, req->user_len, rec.data,
                                    rec.len, err);
        }
        sf_buf_free(&rec);
        if (rc != SF_OK) {
            return rc;
        }
    }

    return sf_txn_push_decide(txn, pol, req, d, err);
}


static sf_push_category *
ctl_push_category_mut(sf_push_policy *p, const char *name, size_t len)
{
    return (sf_push_category *) ctl_push_category(p, name, len);
}


static void
ctl_push_tz_text(char *out, size_t size, int32_t tz)
{
    snprintf(out, size, "UTC%c%02d:%02d", tz < 0 ? '-' : '+',
             abs(tz) / 60, abs(tz) % 60);
}


static void
ctl_push_time_text(char *out, size_t size, int64_t ms)
{
    sf_buf  b;

    sf_buf_init(&b);
    sf_buf_append_time(&b, (ms + 999) / 1000);
    snprintf(out, size, "%.*s", b.len > 2 ? (int) b.len - 2 : 0,
             b.len > 2 ? b.data + 1 : "");
    sf_buf_free(&b);
}


static int
ctl_push_explain(const ctl_push_opts *o)
{
    int                      rc, nchecks, i, listed, local_minute;
    char                     t1[64], t2[64], tz[16];
    sf_db                   *db;
    sf_buf                   out, prec;
    sf_txn                  *txn;
    int64_t                  now_ms, at;
    sf_error                 err;
    sf_value                 atv;
    uint32_t                 c;
    int32_t                  tzmin;
    sf_profile               prof, raw;
    const char              *source, *p, *end, *comma;
    sf_push_policy           pol, probe;
    ctl_push_check           checks[8], *ck;
    sf_push_request          req;
    sf_push_decision         final, d;
    sf_push_category        *pc;
    const sf_push_category  *cat;

    if (o->user == NULL || o->category == NULL) {
        return ctl_usage_err("explain --push: --user and --category are "
                             "required");
    }

    now_ms = ctl_push_now_ms();

    if (o->at) {
        memset(&atv, 0, sizeof(atv));
        atv.type = SF_STRING;
        atv.u.str.p = o->at;
        atv.u.str.len = strlen(o->at);
        if (o->at[0] >= '0' && o->at[0] <= '9'
            && strspn(o->at, "0123456789") == strlen(o->at))
        {
            atv.type = SF_NUMBER;
            atv.u.number = strtod(o->at, NULL);
        }
        if (sf_parse_time(&atv, &at) != SF_OK) {
            return ctl_usage_err("explain: invalid --at \"%s\": unix "
                                 "seconds or ISO 8601", o->at);
        }
        now_ms = at * 1000;
    }

    memset(&req, 0, sizeof(req));
    req.user = o->user;
    req.user_len = strlen(o->user);
    req.category = o->category;
    req.category_len = strlen(o->category);
    req.channel = o->channel ? o->channel : "push";
    req.channel_len = strlen(req.channel);
    if (o->campaign && o->campaign[0]) {
        req.campaign = o->campaign;
        req.campaign_len = strlen(o->campaign);
    }
    req.now_ms = now_ms;
    req.dry_run = 1;

    rc = ctl_push_open(o, 0, &db);
    if (rc != CTL_OK) {
        return rc;
    }

    rc = ctl_push_policy_in_force(db, o, &pol, &source);
    if (rc != CTL_OK) {
        sf_db_close(db);
        return rc;
    }

    cat = ctl_push_category(&pol, req.category, req.category_len);
    if (cat == NULL) {
        sf_db_close(db);
        ctl_err("explain: unknown category \"%s\"", o->category);
        return CTL_ERROR;
    }

    memset(&err, 0, sizeof(err));
    sf_buf_init(&prec);
    txn = NULL;

    rc = sf_txn_begin(db, &txn, &err);
    if (rc != SF_OK) {
        goto failed;
    }

    /* the decision itself first, before anything is changed */

    rc = sf_txn_push_decide(txn, &pol, &req, &final, &err);
    if (rc != SF_OK) {
        goto failed;
    }

    /* a copy of the profile that outlives changes in the transaction */

    rc = sf_txn_get_profile(txn, req.user, req.user_len, &raw, &err);
    if (rc != SF_OK) {
        goto failed;
    }

    sf_profile_init(&prof);
    if (raw.found) {
        if (sf_profile_encode(&raw, &prec) != SF_OK
            || sf_profile_decode(prec.data, prec.len, &prof) != SF_OK)
        {
            rc = sf_error_set(&err, SF_ERR_DB, "cannot copy the profile");
            goto failed;
        }
        prof.found = 1;
    }

    nchecks = 0;
    memset(checks, 0, sizeof(checks));

    /* opt-out */

    ck = &checks[nchecks++];
    ck->check = "opt_out";
    ck->used = -1;
    listed = 0;
    if (prof.found && prof.opt_out_len) {
        for (p = prof.opt_out, end = p + prof.opt_out_len; p < end;
             p = comma + 1)
        {
            comma = memchr(p, ',', (size_t) (end - p));
            if (comma == NULL) {
                comma = end;
            }
            if (((size_t) (comma - p) == 3 && memcmp(p, "all", 3) == 0)
                || ((size_t) (comma - p) == req.category_len
                    && memcmp(p, req.category, req.category_len) == 0)
                || ((size_t) (comma - p) == req.channel_len
                    && memcmp(p, req.channel, req.channel_len) == 0))
            {
                listed = 1;
            }
        }
    }
    ck->result = listed ? "fail" : "pass";
    if (prof.opt_out_len) {
        snprintf(ck->detail, sizeof(ck->detail), "%s (the profile opts "
                 "out of: %.*s)", listed ? "opted out" : "not opted out",
                 (int) prof.opt_out_len, prof.opt_out);
    } else {
        snprintf(ck->detail, sizeof(ck->detail), "not opted out (%s)",
                 prof.found ? "the profile opts out of nothing"
                 : "no profile");
    }

    /* duplicate campaign: no caps, no quiet hours, no opt-out */

    ck = &checks[nchecks++];
    ck->check = "duplicate";
    ck->used = -1;
    if (req.campaign_len == 0) {
        ck->result = "skip";
        snprintf(ck->detail, sizeof(ck->detail), "no campaign given");
    } else {
        probe = pol;
        pc = ctl_push_category_mut(&probe, req.category, req.category_len);
        pc->exempt = 1;
        pc->urgent = 1;
        rc = ctl_push_probe(txn, &probe, &prof, 0, &req, &d, &err);
        if (rc != SF_OK) {
            goto failed;
        }
        ck->result = d.reason == SF_PUSH_DUPLICATE ? "fail" : "pass";
        snprintf(ck->detail, sizeof(ck->detail), "campaign \"%.*s\" %s",
                 (int) req.campaign_len, req.campaign,
                 d.reason == SF_PUSH_DUPLICATE ? "was sent to the user before"
                 : "not sent to the user before");
    }

    /* quiet hours: the category not urgent, nothing else */

    ck = &checks[nchecks++];
    ck->check = "quiet_hours";
    ck->used = -1;
    {
        sf_push_request  r2 = req;

        r2.campaign = NULL;
        r2.campaign_len = 0;
        probe = pol;
        pc = ctl_push_category_mut(&probe, req.category, req.category_len);
        pc->exempt = 1;
        pc->urgent = 0;
        rc = ctl_push_probe(txn, &probe, &prof, 0, &r2, &d, &err);
        if (rc != SF_OK) {
            goto failed;
        }
    }
    local_minute = d.local_minute;
    tzmin = (prof.found && prof.has_tz) ? prof.tz_offset_min
                                        : pol.default_tz_min;
    ctl_push_tz_text(tz, sizeof(tz), tzmin);
    if (prof.found && prof.has_quiet) {
        snprintf(t2, sizeof(t2), "%02u:%02u-%02u:%02u (the profile's)",
                 prof.quiet_start / 60, prof.quiet_start % 60,
                 prof.quiet_end / 60, prof.quiet_end % 60);
    } else if (pol.has_quiet) {
        snprintf(t2, sizeof(t2), "%02u:%02u-%02u:%02u (the policy's)",
                 pol.quiet_start / 60, pol.quiet_start % 60,
                 pol.quiet_end / 60, pol.quiet_end % 60);
    } else {
        snprintf(t2, sizeof(t2), "none");
    }
    if (d.reason == SF_PUSH_QUIET_HOURS) {
        ctl_push_time_text(t1, sizeof(t1), d.retry_at_ms);
        ck->until_ms = d.retry_at_ms;
        ck->result = cat->urgent ? "pass" : "fail";
        snprintf(ck->detail, sizeof(ck->detail), "local time %02d:%02d "
                 "(%s, %s) is in the quiet hours %s%s%s",
                 d.local_minute / 60, d.local_minute % 60, tz,
                 (prof.found && prof.has_tz) ? "the profile's"
                 : "the default", t2,
                 cat->urgent ? "; the category is urgent: it may go"
                 : "; they end at ", cat->urgent ? "" : t1);
    } else {
        ck->result = "pass";
        snprintf(ck->detail, sizeof(ck->detail), "local time %02d:%02d (%s, "
                 "%s) is outside the quiet hours %s", d.local_minute / 60,
                 d.local_minute % 60, tz,
                 (prof.found && prof.has_tz) ? "the profile's"
                 : "the default", t2);
    }

    /* each cap alone */

    if (cat->exempt) {
        ck = &checks[nchecks++];
        ck->check = "cap";
        ck->used = -1;
        ck->result = "skip";
        snprintf(ck->detail, sizeof(ck->detail), "the category is exempt "
                 "from caps and the throttle");
    } else if (cat->ncaps == 0) {
        ck = &checks[nchecks++];
        ck->check = "cap";
        ck->used = -1;
        ck->result = "skip";
        snprintf(ck->detail, sizeof(ck->detail), "the category has no caps");
    }

    for (c = 0; !cat->exempt && c < cat->ncaps; c++) {
        sf_push_request  r2 = req;

        r2.campaign = NULL;
        r2.campaign_len = 0;
        probe = pol;
        probe.throttle_rate = 0;
        pc = ctl_push_category_mut(&probe, req.category, req.category_len);
        pc->ncaps = 1;
        pc->caps[0] = cat->caps[c];
        pc->exempt = 0;
        pc->urgent = 1;
        rc = ctl_push_probe(txn, &probe, &prof, 0, &r2, &d, &err);
        if (rc != SF_OK) {
            goto failed;
        }

        ck = &checks[nchecks++];
        ck->check = "cap";
        ctl_push_cap_text(ck->cap, sizeof(ck->cap), &cat->caps[c]);
        ck->limit = cat->caps[c].max;
        if (d.reason == SF_PUSH_CAP) {
            ck->result = "fail";
            ck->used = cat->caps[c].max;
            ck->until_ms = d.retry_at_ms;
            ctl_push_time_text(t1, sizeof(t1), d.retry_at_ms);
            snprintf(ck->detail, sizeof(ck->detail), "cap %s: %u of %u sent "
                     "in the window; a unit frees at %s", ck->cap,
                     cat->caps[c].max, cat->caps[c].max, t1);
        } else {
            ck->result = "pass";
            ck->used = (int64_t) d.limit - d.remaining - 1;
            snprintf(ck->detail, sizeof(ck->detail), "cap %s: %" PRId64
                     " of %u sent in the window", ck->cap, ck->used,
                     cat->caps[c].max);
        }
    }

    /* the throttle alone */

    ck = &checks[nchecks++];
    ck->check = "throttle";
    ck->used = -1;
    if (pol.throttle_rate <= 0) {
        ck->result = "skip";
        snprintf(ck->detail, sizeof(ck->detail), "no global throttle");
    } else if (cat->exempt) {
        ck->result = "skip";
        snprintf(ck->detail, sizeof(ck->detail), "the category is exempt");
    } else {
        sf_push_request  r2 = req;

        r2.campaign = NULL;
        r2.campaign_len = 0;
        probe = pol;
        pc = ctl_push_category_mut(&probe, req.category, req.category_len);
        pc->ncaps = 0;
        pc->urgent = 1;
        rc = ctl_push_probe(txn, &probe, &prof, 0, &r2, &d, &err);
        if (rc != SF_OK) {
            goto failed;
        }
        if (d.reason == SF_PUSH_THROTTLED) {
            ck->result = "fail";
            ck->until_ms = d.retry_at_ms;
            snprintf(ck->detail, sizeof(ck->detail), "over %g messages a "
                     "second (burst %g): room in %" PRId64 " ms",
                     pol.throttle_rate, pol.throttle_burst,
                     d.retry_at_ms - now_ms);
        } else {
            ck->result = "pass";
            snprintf(ck->detail, sizeof(ck->detail), "within %g messages a "
                     "second (burst %g)", pol.throttle_rate,
                     pol.throttle_burst);
        }
    }

    sf_txn_abort(txn);
    txn = NULL;
    sf_db_close(db);
    db = NULL;

    /* the answer */

    sf_buf_init(&out);
    ctl_push_time_text(t1, sizeof(t1), now_ms);

    if (o->json) {
        sf_buf_appends(&out, "{\"user\":");
        sf_buf_append_json_string(&out, req.user, req.user_len);
        sf_buf_appends(&out, ",\"category\":");
        sf_buf_append_json_string(&out, req.category, req.category_len);
        sf_buf_appends(&out, ",\"channel\":");
        sf_buf_append_json_string(&out, req.channel, req.channel_len);
        sf_buf_appends(&out, ",\"campaign\":");
        if (req.campaign_len) {
            sf_buf_append_json_string(&out, req.campaign, req.campaign_len);
        } else {
            sf_buf_appends(&out, "null");
        }
        sf_buf_printf(&out, ",\"at\":\"%s\",\"policy\":\"%s\",\"profile\":%s",
                      t1, source, prof.found ? "true" : "false");
        sf_buf_printf(&out, ",\"tz_offset\":%d,\"local_time\":\"%02d:%02d\"",
                      (int) tzmin, local_minute / 60, local_minute % 60);
        sf_buf_appends(&out, ",\"checks\":[");
        for (i = 0; i < nchecks; i++) {
            ck = &checks[i];
            sf_buf_printf(&out, "%s{\"check\":\"%s\",\"result\":\"%s\"",
                          i ? "," : "", ck->check, ck->result);
            if (ck->cap[0]) {
                sf_buf_printf(&out, ",\"cap\":\"%s\",\"used\":%" PRId64
                              ",\"limit\":%u", ck->cap, ck->used, ck->limit);
            }
            if (ck->until_ms) {
                sf_buf_appends(&out, ",\"until\":");
                sf_buf_append_time(&out, (ck->until_ms + 999) / 1000);
            }
            sf_buf_appends(&out, ",\"detail\":");
            sf_buf_append_json_string(&out, ck->detail, strlen(ck->detail));
            sf_buf_appends(&out, "}");
        }
        sf_buf_printf(&out, "],\"decision\":\"%s\",\"reason\":\"%s\"",
                      final.allow ? "allow" : "deny",
                      sf_push_reason_name(final.reason));
        if (!final.allow && final.retry_at_ms > 0) {
            sf_buf_printf(&out, ",\"retry_after\":%" PRId64
                          ",\"next_allowed\":",
                          (final.retry_at_ms - now_ms + 999) / 1000);
            sf_buf_append_time(&out, (final.retry_at_ms + 999) / 1000);
        } else {
            sf_buf_appends(&out, ",\"retry_after\":null,"
                                 "\"next_allowed\":null");
        }
        sf_buf_appends(&out, "}\n");

    } else {
        sf_buf_printf(&out, "push decision for user \"%s\", category \"%s\","
                      " channel \"%.*s\"", o->user, o->category,
                      (int) req.channel_len, req.channel);
        if (req.campaign_len) {
            sf_buf_printf(&out, ", campaign \"%s\"", o->campaign);
        }
        sf_buf_printf(&out, " at %s (a dry run: nothing recorded)\n", t1);
        sf_buf_printf(&out, "policy: %s\n",
                      strcmp(source, "database") == 0
                      ? "stored in the database (it replaces the nginx "
                        "directives)"
                      : strcmp(source, "file") == 0
                      ? "the engine's defaults with --policy over them "
                        "(none stored)"
                      : "the engine's defaults (none stored; nginx "
                        "directives may differ: pass them with --policy)");
        sf_buf_printf(&out, "profile: %s\n",
                      prof.found ? "found" : "none (the defaults apply)");
        for (i = 0; i < nchecks; i++) {
            ck = &checks[i];
            sf_buf_printf(&out, "  %-12s %-5s %s\n",
                          strcmp(ck->check, "quiet_hours") == 0
                          ? "quiet hours"
                          : strcmp(ck->check, "opt_out") == 0 ? "opt-out"
                          : ck->check, ck->result, ck->detail);
        }
        sf_buf_printf(&out, "decision: %s (%s)", final.allow ? "allow"
                      : "deny", sf_push_reason_name(final.reason));
        if (!final.allow && final.retry_at_ms > 0) {
            ctl_push_time_text(t2, sizeof(t2), final.retry_at_ms);
            sf_buf_printf(&out, ", next allowed %s (in %" PRId64 " s)", t2,
                          (final.retry_at_ms - now_ms + 999) / 1000);
        } else if (!final.allow) {
            sf_buf_appends(&out, ", not later either");
        }
        sf_buf_appends(&out, "\n");
    }

    rc = ctl_write(stdout, &out) ? CTL_ERROR : CTL_OK;
    sf_buf_free(&out);
    sf_buf_free(&prec);

    return ctl_finish_stdout(rc);

failed:

    if (txn) {
        sf_txn_abort(txn);
    }
    sf_buf_free(&prec);
    sf_db_close(db);
    ctl_err("explain: %s", err.msg[0] ? err.msg : "database error");
    return CTL_ERROR;
}


int
ctl_push_is_explain(int argc, char **argv)
{
    int  i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--push") == 0) {
            return 1;
        }
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
    }
    return 0;
}


/* ---- the command ----------------------------------------------------------------- */

int
ctl_push_command(const char *db_path, int argc, char **argv)
{
    int            rc;
    const char    *cmd;
    ctl_push_opts  o;

    if (argc < 1) {
        return ctl_usage_err("push: missing command (counters, log, "
                             "policy, verify)");
    }

    cmd = argv[0];

    memset(&o, 0, sizeof(o));
    o.db = db_path;

    rc = ctl_push_parse(cmd, argc, argv, &o);
    if (rc != CTL_OK) {
        return rc;
    }

    if (strcmp(cmd, "counters") == 0) {
        return ctl_push_counters(&o);
    }
    if (strcmp(cmd, "log") == 0) {
        return ctl_push_log(&o);
    }
    if (strcmp(cmd, "policy") == 0) {
        return ctl_push_policy(&o);
    }
    if (strcmp(cmd, "verify") == 0) {
        return ctl_push_verify(&o);
    }
    if (strcmp(cmd, "explain") == 0) {
        return ctl_push_explain(&o);
    }

    return ctl_usage_err("push: unknown command \"%s\" (counters, log, "
                         "policy, verify)", cmd);
}
