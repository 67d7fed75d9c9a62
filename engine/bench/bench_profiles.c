/*
 * bench_profiles: random profile lookups per second on one core, over a
 * database loaded with profiles u1 .. uN (gen_profiles, then
 * storefrontctl import).
 *
 * Each lookup is what a request does: renew the snapshot, read the rules
 * in force, get the profile of a random id, derive scores, segment,
 * lifecycle and tier, reset the snapshot.  A second variant does the get
 * and derive inside one renewed snapshot, so the cost of renew/reset can
 * be told apart.  Each variant runs 5 times (alternating); the median is
 * printed, in lookups per second of CPU time and of wall time.
 *
 * Then what the machine allows: dependent reads of random 4 KB pages of
 * the database file, mapped as LMDB maps it (each read's address depends
 * on the one before, as a B-tree descent's does).  A lookup that finds k
 * pages outside the CPU's caches costs at least k of those reads.
 *
 * usage: bench_profiles --db DIR -n N [-l LOOKUPS] [-r RUNS] [-q]
 *   -n  the ids are u1 .. uN
 *   -l  lookups per run (default 1000000)
 *   -r  runs per variant (default 5)
 *   -q  print only the summary lines
 * Exit status 0, or 1 on an engine error or when ids are not found.  The
 * target is >= 1,000,000 lookups per second per core.
 */

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "storefront.h"

#define MAX_RUNS   25
#define NIDS       (1 << 20)        /* random ids, prepared beforehand */
#define WARM       100000           /* lookups before the runs */
#define TARGET     1000000.0

typedef struct {
    char    id[24];
    size_t  len;
} bench_id;


static double
clock_s(clockid_t c)
{
    struct timespec  t;

    clock_gettime(c, &t);
    return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


static uint64_t  rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t
rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}


static int
touch(void *ctx, const char *id, size_t id_len, const void *rec, size_t len)
{
    *(uint64_t *) ctx += (unsigned char) id[id_len - 1]
                         + ((const unsigned char *) rec)[len - 1];
    return 0;
}


/*
 * Dependent reads of random pages of DIR/data.mdb; returns reads per CPU
 * second, or 0 when the file cannot be mapped.
 */
static double
page_reads(const char *db_path, long reads, uint64_t *sink)
{
    int            fd;
    long           i;
    char           path[4096];
    double         c0, c;
    size_t         npages, p;
    uint64_t       x, z;
    struct stat    st;
    const char    *map;

    snprintf(path, sizeof(path), "%s/data.mdb", db_path);

    fd = open(path, O_RDONLY);
    if (fd == -1) {
        return 0;
    }

    if (fstat(fd, &st) == -1 || st.st_size < 4096) {
        close(fd);
        return 0;
    }

    map = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);

    if (map == MAP_FAILED) {
        return 0;
    }

    npages = (size_t) st.st_size / 4096;

    /* every page mapped once, as in a worker that has run a while */
    for (p = 0, x = 0; p < npages; p++) {
        x += (unsigned char) map[p * 4096];
    }

    c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);

    for (i = 0; i < reads; i++) {
        /* splitmix64 of the last value read: the next address waits */
        z = x + (uint64_t) i * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;

        x += *(const volatile uint64_t *) (map + (z % npages) * 4096
                                           + (z >> 58) * 64);
    }

    c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;

    munmap((void *) map, (size_t) st.st_size);

    *sink += x;

    return (double) reads / c;
}


/* One run; returns lookups per CPU second, *wall per wall second. */
static double
run(sf_snapshot *s, const bench_id *ids, long lookups, int per_request,
    int64_t now, double *wall, long *found, uint64_t *sink)
{
    long              i;
    double            c0, w0, c, w;
    sf_error          err;
    sf_profile        p;
    sf_derived        d;
    const sf_rules   *rules;

    *found = 0;
    c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    w0 = clock_s(CLOCK_MONOTONIC);

    if (!per_request) {
        sf_snapshot_renew(s, &err);
        sf_snapshot_rules(s, &rules, &err);
    }

    for (i = 0; i < lookups; i++) {
        const bench_id  *id = &ids[i & (NIDS - 1)];

        if (per_request) {
            if (sf_snapshot_renew(s, &err) != SF_OK
                || sf_snapshot_rules(s, &rules, &err) != SF_OK)
            {
                fprintf(stderr, "bench_profiles: %s\n", err.msg);
                exit(1);
            }
        }

        if (sf_snapshot_get_profile(s, id->id, id->len, &p, &err) != SF_OK) {
            fprintf(stderr, "bench_profiles: %s\n", err.msg);
            exit(1);
        }
        sf_profile_derive(&p, rules, now, &d);
        *found += p.found;
        *sink += (uint64_t) d.r + (uint64_t) d.segment[0];

        if (per_request) {
            sf_snapshot_reset(s);
        }
    }

    if (!per_request) {
        sf_snapshot_reset(s);
    }

    c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    w = clock_s(CLOCK_MONOTONIC) - w0;
    *wall = (double) lookups / w;
    return (double) lookups / c;
}


int
main(int argc, char **argv)
{
    int           i, runs, quiet, v;
    long          n, lookups, found;
    uint64_t      sink;
    int64_t       now;
    double        cpu[2][MAX_RUNS], wall[2][MAX_RUNS], med[2], wmed[2];
    const char   *db_path;
    bench_id     *ids;
    sf_db        *db;
    sf_snapshot  *s;
    sf_error      err;
    sf_db_info    info;
    static const char  *names[] = { "per request (renew, get, derive, reset)",
                                    "in one snapshot (get, derive)" };

    db_path = NULL;
    n = 0;
    lookups = 1000000;
    runs = 5;
    quiet = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            db_path = argv[++i];
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            n = atol(argv[++i]);
        } else if (strcmp(argv[i], "-l") == 0 && i + 1 < argc) {
            lookups = atol(argv[++i]);
        } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-q") == 0) {
            quiet = 1;
        } else {
            db_path = NULL;
            break;
        }
    }

    if (db_path == NULL || n < 1 || lookups < 1 || runs < 1
        || runs > MAX_RUNS)
    {
        fprintf(stderr, "usage: bench_profiles --db DIR -n N [-l LOOKUPS] "
                "[-r RUNS] [-q]\n");
        return 2;
    }

    memset(&err, 0, sizeof(err));
    if (sf_db_open(&db, db_path, 0, SF_DB_READONLY, &err) != SF_OK
        || sf_snapshot_create(db, &s, &err) != SF_OK)
    {
        fprintf(stderr, "bench_profiles: %s\n", err.msg);
        return 1;
    }

    ids = malloc(NIDS * sizeof(bench_id));
    if (ids == NULL) {
        return 1;
    }
    for (i = 0; i < NIDS; i++) {
        ids[i].len = (size_t) snprintf(ids[i].id, sizeof(ids[i].id), "u%ld",
                                       (long) (rng() % (uint64_t) n) + 1);
    }

    if (sf_db_info_get(db, &info, &err) == SF_OK && !quiet) {
        printf("database %s: %zu profiles, %zu bytes used\n", db_path,
               info.profiles, info.used_bytes);
    }

    now = (int64_t) time(NULL);
    sink = 0;

    /*
     * Warm the map as a long-running worker's is: every page read once
     * (in key order), so that the runs measure lookups, not page faults.
     */
    if (sf_snapshot_renew(s, &err) != SF_OK
        || sf_snapshot_each_profile(s, touch, &sink, &err) != SF_OK)
    {
        fprintf(stderr, "bench_profiles: %s\n", err.msg);
        return 1;
    }
    sf_snapshot_reset(s);

    run(s, ids, WARM, 1, now, &wmed[0], &found, &sink);
    if (found != WARM) {
        fprintf(stderr, "bench_profiles: %ld of %d ids found: is the "
                "database loaded with u1 .. u%ld?\n", found, WARM, n);
        return 1;
    }

    for (i = 0; i < runs; i++) {
        for (v = 0; v < 2; v++) {
            /* alternate the variants: the machine is shared and noisy */
            int  k = (i & 1) ? 1 - v : v;

            cpu[k][i] = run(s, ids, lookups, k == 0, now, &wall[k][i],
                            &found, &sink);
            if (!quiet) {
                printf("run %d %-40s %12.0f lookups/s CPU %12.0f wall\n",
                       i + 1, names[k], cpu[k][i], wall[k][i]);
            }
        }
    }

    for (v = 0; v < 2; v++) {
        qsort(cpu[v], (size_t) runs, sizeof(double), cmp_double);
        qsort(wall[v], (size_t) runs, sizeof(double), cmp_double);
        med[v] = cpu[v][runs / 2];
        wmed[v] = wall[v][runs / 2];
    }

    printf("median %-40s %12.0f lookups/s per core (CPU time), %.0f wall\n",
           names[0], med[0], wmed[0]);
    printf("median %-40s %12.0f lookups/s per core (CPU time), %.0f wall\n",
           names[1], med[1], wmed[1]);
    printf("target >= %.0f lookups/s per core: %s (checksum %llu)\n", TARGET,
           med[0] >= TARGET ? "met" : "NOT met", (unsigned long long) sink);

    for (i = 0; i < runs; i++) {
        cpu[0][i] = page_reads(db_path, lookups, &sink);
    }

    qsort(cpu[0], (size_t) runs, sizeof(double), cmp_double);

    if (cpu[0][runs / 2] > 0) {
        printf("machine: %.0f dependent reads of random 4 KB pages of the "
               "database file per second (%.0f ns each): the ceiling of "
               "lookups that miss the CPU caches on one page; %.0f on "
               "two\n", cpu[0][runs / 2], 1e9 / cpu[0][runs / 2],
               cpu[0][runs / 2] / 2);
    }

    free(ids);
    sf_snapshot_free(s);
    sf_db_close(db);
    return 0;
}
