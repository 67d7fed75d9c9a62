/*
 * storefrontctl stats and storefrontctl experiment: experiment results and
 * live operations (start, stop, ramp, re-randomise), from the command line.
 *
 *   storefrontctl stats [KEY] [--json]
 *   storefrontctl experiment start|stop KEY
 *   storefrontctl experiment ramp KEY COVERAGE     (0..1, or a percentage)
 *   storefrontctl experiment weights KEY W1,W2,...
 *
 * The entry points take the database path that storefrontctl resolved
 * (--db or $STOREFRONT_DB) and the arguments after the command's name;
 * "--db DIR" is accepted among them too.  Exit status: 0 success, 1 data
 * or database error, 2 usage error.
 */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "ctl_stats.h"


static const char  ctl_stats_usage[] =
    "Usage: " CTL_NAME " [--db DIR] stats [KEY] [--json]\n"
    "Per experiment and variation: users, conversions, conversion rate,\n"
    "average order value, revenue per user, return rate; against the\n"
    "control: lift, p-value and 95% confidence interval of the difference;\n"
    "the sample ratio mismatch check.  Results need 1000 users per arm.\n";

static const char  ctl_experiment_usage[] =
    "Usage: " CTL_NAME " [--db DIR] experiment start KEY\n"
    "       " CTL_NAME " [--db DIR] experiment stop KEY\n"
    "       " CTL_NAME " [--db DIR] experiment ramp KEY COVERAGE\n"
    "       " CTL_NAME " [--db DIR] experiment weights KEY W1,W2,...\n"
    "COVERAGE is 0..1 or a percentage (\"10%\"): a ramp moves no user\n"
    "already assigned.  New weights re-randomise every user (a new bucket\n"
    "version and seed \"<seed>:vN\"), as GrowthBook does.\n";


/*
 * Splits argv into options and positional arguments.  Takes --json (when
 * json is not NULL), --db DIR / --db=DIR (into g), --help and "--".
 * Returns CTL_OK, CTL_USAGE, or -1 for --help.
 */
static int
ctl_stats_args(const char *cmd, int argc, char **argv, int *json,
    ctl_global *g, char **pos, int *npos)
{
    int   i, options;

    *npos = 0;
    options = 1;

    for (i = 0; i < argc; i++) {
        const char  *a = argv[i];

        if (!options || a[0] != '-' || a[1] == '\0') {
            pos[(*npos)++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options = 0;
            continue;
        }
        if (json && strcmp(a, "--json") == 0) {
            *json = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            return -1;
        }
        if (strncmp(a, "--db=", 5) == 0) {
            g->db_path = a + 5;
            continue;
        }
        if (strcmp(a, "--db") == 0) {
            if (i + 1 >= argc) {
                return ctl_usage_err("%s: option '--db' needs a value", cmd);
            }
            g->db_path = argv[++i];
            continue;
        }

        /* a negative number is an argument (not valid anywhere, but the
         * engine says why) */
        if (a[1] >= '0' && a[1] <= '9') {
            pos[(*npos)++] = argv[i];
            continue;
        }

        return ctl_usage_err("%s: unknown option '%s'", cmd, a);
    }

    return ctl_need_db(cmd, g);
}


/* ---- stats ------------------------------------------------------------- */

static void
ctl_stats_percent(char *buf, size_t size, double x, int sign)
{
    if (!isfinite(x)) {
        snprintf(buf, size, "-");
    } else {
        snprintf(buf, size, sign ? "%+.2f%%" : "%.2f%%", 100 * x);
    }
}


static void
ctl_stats_text(const sf_experiment_report *r, size_t n)
{
    char                         rate[32], ret[32], lift[32], lo[32], hi[32];
    size_t                       i, j;
    const sf_arm_stats          *st;
    const sf_experiment_report  *e;

    if (n == 0) {
        printf("no experiments\n");
        return;
    }

    for (i = 0; i < n; i++) {
        e = &r[i];

        printf("%sexperiment \"%s\"%s%s%s: %s, coverage %g, weights ",
               i ? "\n" : "", e->info.key, e->info.name[0] ? " (" : "",
               e->info.name, e->info.name[0] ? ")" : "",
               e->info.active ? "active" : "stopped", e->info.coverage);
        for (j = 0; j < e->info.nvariations; j++) {
            printf("%s%g", j ? "/" : "", e->info.weights[j]);
        }
        printf(", bucket version %u\n", e->info.bucket_version);

        printf("  users %llu, %s; sample ratio: chi-square %.2f, p %.4g%s\n",
               (unsigned long long) e->summary.users, e->status,
               e->summary.srm_chi2, e->summary.srm_p,
               e->summary.srm_alarm ? " < 0.001: MISMATCH, check the split"
                                    : "");

        printf("  %-16s %8s %8s %8s %10s %10s %8s %9s %8s  %s\n",
               "variation", "users", "convert", "rate", "AOV", "rev/user",
               "returns", "lift", "p", "95% CI of difference");

        for (j = 0; j < e->info.nvariations; j++) {
            st = &e->arms[j];

            ctl_stats_percent(rate, sizeof(rate), st->conversion_rate, 0);
            ctl_stats_percent(ret, sizeof(ret), st->return_rate, 0);

            printf("  %-16.16s %8llu %8llu %8s %10.2f %10.2f %8s",
                   e->info.variation_keys[j],
                   (unsigned long long) st->c.users,
                   (unsigned long long) st->c.converters, rate,
                   st->average_order_value, st->revenue_per_user, ret);

            if (j == 0) {
                printf(" %9s\n", "control");
                continue;
            }

            if (st->c.users == 0 || e->arms[0].c.users == 0) {
                printf(" %9s\n", "-");
                continue;
            }

            /* no relative lift over a control that converts nobody */
            ctl_stats_percent(lift, sizeof(lift),
                              e->arms[0].conversion_rate > 0 ? st->lift
                                                             : NAN, 1);
            ctl_stats_percent(lo, sizeof(lo), st->ci_low, 1);
            ctl_stats_percent(hi, sizeof(hi), st->ci_high, 1);
            printf(" %9s %8.4f  [%s, %s]%s\n", lift, st->p_value, lo, hi,
                   st->significant ? " significant" : "");
        }
    }
}


int
ctl_stats_command(const char *db_path, int argc, char **argv)
{
    int                    rc, json, npos;
    char                 **pos;
    size_t                 n;
    sf_db                 *db;
    sf_buf                 out;
    sf_arena              *a;
    sf_error               err;
    ctl_global             g;
    sf_snapshot           *snap;
    const char            *key;
    sf_experiment_report  *r;

    pos = calloc((size_t) argc + 1, sizeof(char *));
    if (pos == NULL) {
        return ctl_nomem();
    }

    /* the database's own map size: the global --map-size is not passed on */
    memset(&g, 0, sizeof(g));
    g.db_path = db_path;

    json = 0;
    rc = ctl_stats_args("stats", argc, argv, &json, &g, pos, &npos);
    if (rc == -1) {
        free(pos);
        fputs(ctl_stats_usage, stdout);
        return ctl_finish_stdout(CTL_OK);
    }
    if (rc == CTL_OK && npos > 1) {
        rc = ctl_usage_err("stats: too many arguments");
    }
    key = npos == 1 ? pos[0] : NULL;
    free(pos);
    if (rc != CTL_OK) {
        return rc;
    }

    if (ctl_open_snapshot(&g, &db, &snap) != CTL_OK) {
        return CTL_ERROR;
    }

    memset(&err, 0, sizeof(err));
    sf_buf_init(&out);

    a = sf_arena_create(64 * 1024);
    rc = a ? SF_OK : sf_error_set(&err, SF_ERR_NOMEM, "out of memory");

    if (rc == SF_OK) {
        rc = sf_report_collect(snap, key, key ? strlen(key) : 0, a, &r, &n,
                               &err);
    }

    if (rc == SF_OK) {
        if (json) {
            rc = sf_report_json(r, n, (int64_t) time(NULL), &out);
            if (rc == SF_OK) {
                rc = sf_buf_appends(&out, "\n");
            }
            if (rc == SF_OK && ctl_write(stdout, &out) != 0) {
                rc = SF_ERR_IO;
            }

        } else {
            ctl_stats_text(r, n);
        }
    }

    if (rc != SF_OK && err.msg[0]) {
        ctl_err("%s", err.msg);
    }

    sf_buf_free(&out);
    sf_arena_destroy(a);
    ctl_close_snapshot(db, snap);

    return ctl_finish_stdout(rc == SF_OK ? CTL_OK : CTL_ERROR);
}


/* ---- experiment start|stop|ramp|weights --------------------------------- */

/* "0.1", "1", "10%" -> 0..1; -1 when not a number */
static double
ctl_stats_coverage(const char *s)
{
    char    *end;
    double   x;

    errno = 0;
    x = strtod(s, &end);
    if (end == s || errno != 0 || !isfinite(x)) {
        return -1;
    }
    if (*end == '%' && end[1] == '\0') {
        return x / 100;
    }
    return *end == '\0' ? x : -1;
}


int
ctl_experiment_command(const char *db_path, int argc, char **argv)
{
    int         rc, npos;
    char      **pos, *p, *end;
    double      x;
    sf_db      *db;
    sf_txn     *txn;
    sf_buf      changes, summary;
    sf_arena   *a;
    sf_error    err;
    sf_value    v;
    ctl_global  g;
    const char *op, *key;

    pos = calloc((size_t) argc + 1, sizeof(char *));
    if (pos == NULL) {
        return ctl_nomem();
    }

    memset(&g, 0, sizeof(g));
    g.db_path = db_path;

    rc = ctl_stats_args("experiment", argc, argv, NULL, &g, pos, &npos);
    if (rc == -1) {
        free(pos);
        fputs(ctl_experiment_usage, stdout);
        return ctl_finish_stdout(CTL_OK);
    }
    if (rc != CTL_OK) {
        free(pos);
        return rc;
    }

    sf_buf_init(&changes);
    sf_buf_init(&summary);

    op = npos > 0 ? pos[0] : "";
    key = npos > 1 ? pos[1] : NULL;

    if (strcmp(op, "start") == 0 || strcmp(op, "stop") == 0) {
        if (npos != 2) {
            rc = ctl_usage_err("experiment %s: give the experiment KEY", op);
            goto done;
        }
        sf_buf_appends(&changes, op[2] == 'a' ? "{\"active\":true}"
                                              : "{\"active\":false}");

    } else if (strcmp(op, "ramp") == 0) {
        if (npos != 3) {
            rc = ctl_usage_err("experiment ramp: give KEY and COVERAGE");
            goto done;
        }
        x = ctl_stats_coverage(pos[2]);
        if (x < 0 || x > 1) {
            rc = ctl_usage_err("experiment ramp: invalid coverage "
                               "\"%s\": 0..1 or 0%%..100%%", pos[2]);
            goto done;
        }
        sf_buf_appends(&changes, "{\"coverage\":");
        sf_buf_append_js_number(&changes, x);
        sf_buf_appends(&changes, "}");

    } else if (strcmp(op, "weights") == 0) {
        if (npos != 3) {
            rc = ctl_usage_err("experiment weights: give KEY and W1,W2,...");
            goto done;
        }
        sf_buf_appends(&changes, "{\"weights\":[");
        for (p = pos[2]; ; p = end + 1) {
            errno = 0;
            x = strtod(p, &end);
            if (end == p || errno != 0 || !isfinite(x)
                || (*end != ',' && *end != '\0'))
            {
                rc = ctl_usage_err("experiment weights: invalid "
                                   "weights \"%s\": numbers separated "
                                   "by commas", pos[2]);
                goto done;
            }
            if (p != pos[2]) {
                sf_buf_appends(&changes, ",");
            }
            sf_buf_append_js_number(&changes, x);
            if (*end == '\0') {
                break;
            }
        }
        sf_buf_appends(&changes, "]}");

    } else {
        rc = ctl_usage_err("experiment: %s\"%s\": start, stop, ramp "
                           "or weights", *op ? "unknown operation "
                                             : "missing operation",
                           op);
        goto done;
    }

    memset(&err, 0, sizeof(err));
    db = NULL;
    txn = NULL;

    a = sf_arena_create(0);
    if (a == NULL) {
        rc = ctl_nomem();
        goto done;
    }

    rc = sf_json_parse(changes.data, changes.len, a, &v, &err);
    if (rc == SF_OK) {
        /* not ctl_open_db: the message names the operation */
        rc = sf_db_open(&db, g.db_path, 0, 0, &err);
    }
    if (rc == SF_OK) {
        rc = sf_txn_begin(db, &txn, &err);
    }
    if (rc == SF_OK) {
        rc = sf_txn_update_experiment(txn, key, strlen(key), &v, &summary,
                                      &err);
        if (rc == SF_OK) {
            rc = sf_txn_commit(txn, &err);
        } else {
            sf_txn_abort(txn);
        }
    }

    if (rc == SF_OK) {
        printf("experiment \"%s\": %.*s\n", key, (int) summary.len,
               summary.data);
        rc = ctl_finish_stdout(CTL_OK);

    } else {
        ctl_err("experiment %s \"%s\": %s", op, key, err.msg);
        rc = CTL_ERROR;
    }

    if (db) {
        sf_db_close(db);
    }
    sf_arena_destroy(a);

done:

    free(pos);
    sf_buf_free(&changes);
    sf_buf_free(&summary);
    return rc;
}
