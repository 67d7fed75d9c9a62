/*
 * bench_eval: experiment evaluations per second on one core.
 *
 * Builds a throw-away LMDB environment holding 10 compiled experiments
 * (2-3 variations, weights, coverage, a namespace, hash versions 1 and 2),
 * then evaluates them for pre-generated anonymous ids the way the module
 * does per request: renew the snapshot, evaluate all, reset.  A second
 * variant calls sf_experiment_evaluate on records copied out of the map
 * (no LMDB) and a third only renews and resets the snapshot, so the cost
 * of each part can be told apart.  Each variant runs 5 times; the median
 * is printed.
 *
 * usage: bench_eval [-n requests_per_run] [-r runs] [-u users] [-q]
 *   -n  fixed request count per run (default: calibrated to ~0.15 s)
 *   -r  runs per variant (default 5)
 *   -u  number of synthetic user ids (default 100000)
 *   -q  print only the summary lines
 * Exit status 0, or 1 on an engine error.  The target is >= 2,000,000
 * experiment evaluations per second per core (CPU time).
 */

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storefront.h"

#define NEXP        10
#define MAX_OUT     32
#define MAX_RUNS    25
#define TARGET_EPS  2000000.0

static char  tmpdir[64];

/* LMDB's two files: known names, so the signal handler can remove them. */
static void
cleanup_dir(void)
{
    char  path[128];

    if (tmpdir[0] == '\0') {
        return;
    }
    snprintf(path, sizeof(path), "%s/data.mdb", tmpdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", tmpdir);
    unlink(path);
    rmdir(tmpdir);
}

static void
cleanup_all(void)
{
    DIR            *d;
    struct dirent  *e;
    char            path[400];

    if (tmpdir[0] == '\0') {
        return;
    }
    d = opendir(tmpdir);
    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    tmpdir[0] = '\0';
}

static void
on_signal(int sig)
{
    cleanup_dir();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* The experiments, as GrowthBook experiment objects. */
static const char *experiments[NEXP] = {
    "{\"key\":\"home-hero\",\"variations\":[0,1],"
    "\"meta\":[{\"key\":\"control\"},{\"key\":\"new-hero\"}],"
    "\"hashVersion\":2}",

    "{\"key\":\"buy-button\",\"variations\":[{\"button_color\":\"blue\"},"
    "{\"button_color\":\"red\"}],\"weights\":[0.5,0.5],"
    "\"meta\":[{\"key\":\"blue\"},{\"key\":\"red\"}],\"hashVersion\":2}",

    "{\"key\":\"new-checkout\",\"variations\":[false,true],"
    "\"coverage\":0.1,\"hashVersion\":2}",

    "{\"key\":\"copy-length\",\"variations\":[\"short\",\"medium\",\"long\"],"
    "\"weights\":[0.34,0.33,0.33],\"hashVersion\":1}",

    "{\"key\":\"coupon-design\",\"variations\":[0,1,2],"
    "\"weights\":[0.5,0.25,0.25],\"coverage\":0.8,"
    "\"seed\":\"coupon-2024\",\"hashVersion\":2}",

    "{\"key\":\"layout-grid\",\"variations\":[\"list\",\"grid\"],"
    "\"namespace\":[\"layout\",0,0.5],\"hashVersion\":2}",

    "{\"key\":\"layout-cards\",\"variations\":[\"list\",\"cards\"],"
    "\"namespace\":[\"layout\",0.5,1],\"hashVersion\":1}",

    "{\"key\":\"guess-you-like\",\"variations\":[0,1],"
    "\"weights\":[0.9,0.1],\"hashVersion\":1}",

    "{\"key\":\"free-shipping-banner\",\"variations\":[0,1,2],"
    "\"coverage\":0.5,\"hashVersion\":1}",

    "{\"key\":\"search-ranking\",\"variations\":[{\"algo\":\"bm25\"},"
    "{\"algo\":\"ltr\"}],\"weights\":[0.8,0.2],\"coverage\":0.9,"
    "\"hashVersion\":2}",
};

typedef struct {
    char     *mem;         /* nusers ids of 32 hex chars, NUL separated */
    size_t    n;
} users_t;

static uint64_t
xorshift64(uint64_t *s)
{
    uint64_t  x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static int
users_make(users_t *u, size_t n)
{
    static const char  hex[] = "0123456789abcdef";
    uint64_t           s = 0x9e3779b97f4a7c15ULL, r = 0;
    size_t             i, j;
    char              *p;

    u->mem = malloc(n * 33);
    if (u->mem == NULL) {
        return -1;
    }
    u->n = n;
    for (i = 0; i < n; i++) {
        p = u->mem + i * 33;
        for (j = 0; j < 32; j++) {
            if (j % 16 == 0) {
                r = xorshift64(&s);
            }
            p[j] = hex[r & 0xf];
            r >>= 4;
        }
        p[32] = '\0';
    }
    return 0;
}

static double
ts_diff(const struct timespec *a, const struct timespec *b)
{
    return (double) (b->tv_sec - a->tv_sec)
           + (double) (b->tv_nsec - a->tv_nsec) / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Compiled records copied out of the map, for the no-LMDB variant. */
typedef struct {
    void    *rec[MAX_OUT];
    size_t   len[MAX_OUT];
    size_t   n;
} records_t;

static int
copy_record(void *ctx, const void *rec, size_t len)
{
    records_t  *r = ctx;

    if (r->n == MAX_OUT) {
        return SF_ERR_TOO_MANY;
    }
    r->rec[r->n] = malloc(len);
    if (r->rec[r->n] == NULL) {
        return SF_ERR_NOMEM;
    }
    memcpy(r->rec[r->n], rec, len);
    r->len[r->n] = len;
    r->n++;
    return SF_OK;
}

enum { V_SNAPSHOT = 0, V_RECORDS, V_RENEW_ONLY, V__COUNT };

static const char *variant_name[V__COUNT] = {
    "snapshot: renew + sf_evaluate_all + reset",
    "records:  sf_experiment_evaluate (no LMDB)",
    "snapshot: renew + reset only",
};

typedef struct {
    sf_snapshot  *snap;
    records_t    *recs;
    users_t      *users;
    uint64_t      checksum;     /* keeps the work observable */
    uint64_t      in_exp;
    uint64_t      evals;
} bench_t;

/*
 * One run of nreq requests; returns evaluations done (or -1 on error) and
 * the CPU and wall time taken.
 */
static long long
run(bench_t *b, int variant, long nreq, double *cpu, double *wall,
    sf_error *err)
{
    sf_assignment    out[MAX_OUT];
    sf_member        id_member;
    sf_value         attrs;
    sf_request       req;
    struct timespec  c0, c1, w0, w1;
    long long        evals = 0;
    size_t           n, k, ui = 0;
    long             i;
    int              rc;

    memset(&req, 0, sizeof(req));
    id_member.name = "id";
    id_member.name_len = 2;
    id_member.value.type = SF_STRING;
    id_member.value.u.str.len = 32;
    attrs.type = SF_OBJECT;
    attrs.u.obj.members = &id_member;
    attrs.u.obj.n = 1;
    req.attributes = &attrs;
    req.url = "/product/42?ref=home";
    req.url_len = strlen(req.url);
    req.now = 1700000000;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    clock_gettime(CLOCK_MONOTONIC, &w0);

    for (i = 0; i < nreq; i++) {
        id_member.value.u.str.p = b->users->mem + ui * 33;
        if (++ui == b->users->n) {
            ui = 0;
        }

        switch (variant) {

        case V_SNAPSHOT:
            rc = sf_snapshot_renew(b->snap, err);
            if (rc != SF_OK) {
                return -1;
            }
            rc = sf_evaluate_all(b->snap, &req, out, MAX_OUT, &n, err);
            if (rc != SF_OK) {
                sf_snapshot_reset(b->snap);
                return -1;
            }
            for (k = 0; k < n; k++) {
                b->checksum = b->checksum * 31 + (unsigned) out[k].variation;
                b->in_exp += (unsigned) out[k].in_experiment;
            }
            evals += (long long) n;
            sf_snapshot_reset(b->snap);
            break;

        case V_RECORDS:
            for (k = 0; k < b->recs->n; k++) {
                rc = sf_experiment_evaluate(b->recs->rec[k], b->recs->len[k],
                                            &req, &out[k]);
                if (rc != SF_OK) {
                    sf_error_set(err, rc, "sf_experiment_evaluate failed");
                    return -1;
                }
                b->checksum = b->checksum * 31 + (unsigned) out[k].variation;
                b->in_exp += (unsigned) out[k].in_experiment;
            }
            evals += (long long) b->recs->n;
            break;

        default: /* V_RENEW_ONLY */
            rc = sf_snapshot_renew(b->snap, err);
            if (rc != SF_OK) {
                return -1;
            }
            sf_snapshot_reset(b->snap);
            break;
        }
    }

    clock_gettime(CLOCK_MONOTONIC, &w1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    *cpu = ts_diff(&c0, &c1);
    *wall = ts_diff(&w0, &w1);
    b->evals += (uint64_t) evals;
    return evals;
}

static int
load(sf_db *db, sf_error *err)
{
    sf_arena  *a;
    sf_value   v;
    sf_buf     rec;
    sf_txn    *txn;
    int        i, rc;

    a = sf_arena_create(16384);
    if (a == NULL) {
        return sf_error_set(err, SF_ERR_NOMEM, "arena");
    }
    sf_buf_init(&rec);

    rc = sf_txn_begin(db, &txn, err);
    if (rc != SF_OK) {
        goto done;
    }
    for (i = 0; i < NEXP; i++) {
        sf_arena_reset(a);
        rec.len = 0;
        rc = sf_json_parse(experiments[i], strlen(experiments[i]), a, &v, err);
        if (rc == SF_OK) {
            rc = sf_experiment_compile(&v, &rec, err);
        }
        if (rc == SF_OK) {
            rc = sf_txn_put_experiment(txn, rec.data, rec.len, err);
        }
        if (rc != SF_OK) {
            sf_txn_abort(txn);
            goto done;
        }
    }
    rc = sf_txn_commit(txn, err);

done:
    sf_buf_free(&rec);
    sf_arena_destroy(a);
    return rc;
}

int
main(int argc, char **argv)
{
    double       cpu, wall;
    double       eps_cpu[MAX_RUNS], eps_wall[MAX_RUNS], rps[MAX_RUNS];
    double       nspe[MAX_RUNS], med_eps[V__COUNT], med_ns[V__COUNT];
    long         nreq = 0, nusers = 100000;
    long long    evals;
    int          runs = 5, quiet = 0, opt, v, i, rc, status = 1;
    sf_error     err;
    sf_db       *db = NULL;
    records_t    recs;
    users_t      users;
    bench_t      b;

    while ((opt = getopt(argc, argv, "n:r:u:q")) != -1) {
        switch (opt) {
        case 'n':
            nreq = atol(optarg);
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        case 'u':
            nusers = atol(optarg);
            break;
        case 'q':
            quiet = 1;
            break;
        default:
            fprintf(stderr,
                    "usage: %s [-n requests] [-r runs] [-u users] [-q]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || nusers < 1 || nreq < 0) {
        fprintf(stderr, "%s: bad argument\n", argv[0]);
        return 2;
    }

    memset(&err, 0, sizeof(err));
    memset(&recs, 0, sizeof(recs));
    memset(&b, 0, sizeof(b));
    users.mem = NULL;

    snprintf(tmpdir, sizeof(tmpdir), "%s/sf-bench-XXXXXX",
             getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 40
             ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        fprintf(stderr, "mkdtemp %s: %s\n", tmpdir, strerror(errno));
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    if (users_make(&users, (size_t) nusers) != 0) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }

    rc = sf_db_open(&db, tmpdir, (size_t) 64 << 20, SF_DB_CREATE, &err);
    if (rc == SF_OK) {
        rc = load(db, &err);
    }
    if (rc == SF_OK) {
        rc = sf_snapshot_create(db, &b.snap, &err);
    }
    if (rc == SF_OK) {
        rc = sf_snapshot_renew(b.snap, &err);
        if (rc == SF_OK) {
            rc = sf_snapshot_each_experiment(b.snap, copy_record, &recs,
                                             &err);
            sf_snapshot_reset(b.snap);
        }
    }
    if (rc != SF_OK) {
        fprintf(stderr, "engine error %d: %s\n", rc, err.msg);
        goto done;
    }
    if (recs.n != NEXP) {
        fprintf(stderr, "expected %d experiments in the snapshot, found %zu\n",
                NEXP, recs.n);
        goto done;
    }
    b.recs = &recs;
    b.users = &users;

    /* Calibrate: ~0.15 s per snapshot run, the other variants alike. */
    if (nreq == 0) {
        evals = run(&b, V_SNAPSHOT, 20000, &cpu, &wall, &err);
        if (evals < 0) {
            fprintf(stderr, "engine error: %s\n", err.msg);
            goto done;
        }
        nreq = (long) (20000 * 0.15 / (cpu > 1e-6 ? cpu : 1e-6));
        if (nreq < 20000) {
            nreq = 20000;
        }
        if (nreq > 5000000) {
            nreq = 5000000;
        }
    }

    printf("bench_eval: %d experiments, %ld user ids, %ld requests/run, "
           "%d runs per variant, 1 thread\n", NEXP, nusers, nreq, runs);

    for (v = 0; v < V__COUNT; v++) {
        if (!quiet) {
            printf("\n%s\n", variant_name[v]);
        }
        for (i = 0; i < runs; i++) {
            /* renew+reset alone is ~20x cheaper: more of them */
            evals = run(&b, v, v == V_RENEW_ONLY ? nreq * 10 : nreq, &cpu,
                        &wall, &err);
            if (evals < 0) {
                fprintf(stderr, "engine error: %s\n", err.msg);
                goto done;
            }
            rps[i] = nreq / cpu;
            if (v == V_RENEW_ONLY) {
                rps[i] *= 10;
                eps_cpu[i] = eps_wall[i] = 0;
                nspe[i] = cpu * 1e9 / (nreq * 10.0); /* ns per request */
            } else {
                eps_cpu[i] = evals / cpu;
                eps_wall[i] = evals / wall;
                nspe[i] = cpu * 1e9 / (double) evals;
            }
            if (quiet) {
                continue;
            }
            if (v == V_RENEW_ONLY) {
                printf("  run %d: %10.0f renew+reset/s  %7.1f ns each  "
                       "(cpu %.3f s, wall %.3f s)\n",
                       i + 1, rps[i], nspe[i], cpu, wall);
            } else {
                printf("  run %d: %10.0f evals/s cpu  %10.0f evals/s wall  "
                       "%9.0f req/s  %6.1f ns/eval\n",
                       i + 1, eps_cpu[i], eps_wall[i], rps[i], nspe[i]);
            }
        }
        med_ns[v] = median(nspe, runs);
        med_eps[v] = median(eps_cpu, runs);
        if (v == V_RENEW_ONLY) {
            printf("median %-44s %10.0f /s    %6.1f ns per request\n",
                   variant_name[v], median(rps, runs), med_ns[v]);
        } else {
            printf("median %-44s %10.0f evals/s cpu  %10.0f evals/s wall  "
                   "%9.0f req/s  %6.1f ns/eval\n",
                   variant_name[v], med_eps[v], median(eps_wall, runs),
                   median(rps, runs), med_ns[v]);
        }
    }

    printf("\nper request of %d experiments: %.0f ns total, "
           "%.0f ns evaluating records, %.0f ns renew+reset\n",
           NEXP, med_ns[V_SNAPSHOT] * NEXP, med_ns[V_RECORDS] * NEXP,
           med_ns[V_RENEW_ONLY]);
    printf("in-experiment share %.3f, checksum %016llx\n",
           b.evals ? (double) b.in_exp / (double) b.evals : 0.0,
           (unsigned long long) b.checksum);
    printf("target >= %.0f evals/s/core: %s (%.0f)\n", TARGET_EPS,
           med_eps[V_SNAPSHOT] >= TARGET_EPS ? "MET" : "MISSED",
           med_eps[V_SNAPSHOT]);
    status = 0;

done:
    for (i = 0; i < (int) recs.n; i++) {
        free(recs.rec[i]);
    }
    if (b.snap != NULL) {
        sf_snapshot_free(b.snap);
    }
    if (db != NULL) {
        sf_db_close(db);
    }
    free(users.mem);
    cleanup_all();
    return status;
}
