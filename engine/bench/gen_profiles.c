/*
 * gen_profiles: synthetic customer profiles as JSON lines, for benchmarks
 * and tests of `storefrontctl import`.
 *
 * usage: gen_profiles N [-s SEED] [-t NOW] [--sorted]
 *   N         number of profiles (ids u1 .. uN)
 *   -s SEED   random seed (default 1): the same seed gives the same file
 *   -t NOW    unix time the data is "as of" (default: now)
 *   --sorted  ids in ascending order (default: a fixed shuffle, as an
 *             export from an unordered store would give)
 *
 * The distributions are rough but shaped like a shop's customer base:
 * about a quarter of the accounts never ordered; order counts are
 * geometric (many one-off buyers, a long tail of regulars); order values
 * log-normal (median ~ 120); recency exponential (most bought in the last
 * few months, some years ago); 1-4 categories by Zipf popularity; country,
 * city tier, age band, channel and a few tags as attributes; a time-zone
 * offset, sometimes quiet hours and opt-outs.  Lines are ~250 bytes.
 */

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY  86400


static uint64_t  rng_state;

static uint64_t
rng(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static double
uniform(void)
{
    return (double) (rng() >> 11) / 9007199254740992.0;
}

static double
normal(void)
{
    double  u = uniform(), v = uniform();

    if (u < 1e-300) {
        u = 1e-300;
    }
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* index into a table of n by Zipf-like popularity (weight 1/(i+1)) */
static int
zipf(int n)
{
    double  h = 0, x;
    int     i;

    for (i = 0; i < n; i++) {
        h += 1.0 / (i + 1);
    }
    x = uniform() * h;
    for (i = 0; i < n; i++) {
        x -= 1.0 / (i + 1);
        if (x <= 0) {
            return i;
        }
    }
    return n - 1;
}

static int
pick(const double *weights, int n)
{
    double  x = uniform();
    int     i;

    for (i = 0; i < n - 1; i++) {
        x -= weights[i];
        if (x <= 0) {
            return i;
        }
    }
    return n - 1;
}

static void
iso(char *buf, size_t size, int64_t t)
{
    time_t     tt = (time_t) t;
    struct tm  tm;

    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}


static const char  *countries[] = { "CN", "HK", "TW", "SG", "MY", "US", "JP" };
static const double  country_w[] = { 0.70, 0.06, 0.05, 0.06, 0.05, 0.05,
                                     0.03 };
static const int     country_tz[] = { 480, 480, 480, 480, 480, -300, 540 };
static const char  *age_bands[] = { "18-24", "25-34", "35-44", "45-54", "55+" };
static const double  age_w[] = { 0.18, 0.38, 0.24, 0.12, 0.08 };
static const char  *channels[] = { "app", "web", "mini_program", "store" };
static const double  channel_w[] = { 0.45, 0.25, 0.22, 0.08 };
static const char  *categories[] = {
    "apparel", "shoes", "beauty", "baby", "electronics", "home", "food",
    "sports", "books", "toys", "pets", "jewelry", "bags", "health",
    "outdoor", "automotive"
};


int
main(int argc, char **argv)
{
    int64_t    now, first_seen, first_order, last_order;
    uint64_t   n, i, k, step, seed;
    int        sorted, a, c, ncat, used[16], orders, returns, j;
    double     avg, monetary, spend, points, days, x;
    char       t1[32], t2[32], t3[32], *end;
    char      *out;

    n = 0;
    seed = 1;
    now = (int64_t) time(NULL);
    sorted = 0;

    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "-s") == 0 && a + 1 < argc) {
            seed = strtoull(argv[++a], NULL, 10);
        } else if (strcmp(argv[a], "-t") == 0 && a + 1 < argc) {
            now = strtoll(argv[++a], NULL, 10);
        } else if (strcmp(argv[a], "--sorted") == 0) {
            sorted = 1;
        } else if (n == 0 && argv[a][0] >= '1' && argv[a][0] <= '9') {
            n = strtoull(argv[a], &end, 10);
            if (*end != '\0') {
                n = 0;
                break;
            }
        } else {
            n = 0;
            break;
        }
    }

    if (n == 0) {
        fprintf(stderr, "usage: gen_profiles N [-s SEED] [-t NOW] "
                "[--sorted]\n");
        return 2;
    }

    rng_state = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    if (rng_state == 0) {
        rng_state = 1;
    }

    /* a step coprime with n walks 0..n-1 in a scrambled order */
    step = 1;
    if (!sorted && n > 2) {
        step = (uint64_t) (n * 0.6180339887) | 1;
        for (;;) {
            uint64_t  x1 = step, y1 = n, t;

            while (y1) {
                t = x1 % y1;
                x1 = y1;
                y1 = t;
            }
            if (x1 == 1) {
                break;
            }
            step += 2;
        }
    }

    out = malloc(1 << 20);
    if (out == NULL || setvbuf(stdout, out, _IOFBF, 1 << 20) != 0) {
        return 1;
    }

    for (i = 0; i < n; i++) {
        k = (i * step) % n + 1;

        c = pick(country_w, 7);

        /* about a quarter never ordered */
        orders = 0;
        if (uniform() >= 0.26) {
            orders = 1;
            while (uniform() < 0.62 && orders < 500) {
                orders++;
            }
        }

        first_seen = now - (int64_t) (uniform() * 5 * 365 * DAY);
        printf("{\"id\":\"u%" PRIu64 "\",\"attributes\":{\"country\":\"%s\","
               "\"city_tier\":%d,\"age_band\":\"%s\",\"channel\":\"%s\"",
               k, countries[c], 1 + zipf(5), age_bands[pick(age_w, 5)],
               channels[pick(channel_w, 4)]);
        x = uniform();
        if (x < 0.10) {
            printf(",\"tags\":[\"high_repurchase\",\"coupon_sensitive\"]");
        } else if (x < 0.25) {
            printf(",\"tags\":[\"coupon_sensitive\"]");
        } else if (x < 0.30) {
            printf(",\"tags\":[\"vip_service\"]");
        }
        printf("}");

        iso(t1, sizeof(t1), first_seen);

        if (orders == 0) {
            printf(",\"first_seen\":\"%s\",\"orders\":0", t1);

        } else {
            /* recency: exponential, mean ~ 150 days, within the account */
            days = -log(1 - uniform()) * 150;
            last_order = now - (int64_t) (days * DAY)
                         - (int64_t) (uniform() * DAY);
            if (last_order < first_seen) {
                last_order = first_seen + (int64_t) (uniform() * DAY);
            }
            first_order = last_order;
            if (orders > 1) {
                first_order = first_seen + (int64_t) ((double) (last_order
                              - first_seen) * uniform() * 0.5);
            }

            avg = exp(log(120) + 0.8 * normal());
            monetary = floor(avg * orders * 100) / 100;

            /* trailing-year spend: the share of orders in the last year */
            spend = 0;
            if (now - last_order < 365 * DAY) {
                x = (double) (now - first_order) / DAY;
                spend = x <= 365 ? monetary
                                 : floor(monetary * fmax(0.2, 365 / x) * 100)
                                   / 100;
            }

            returns = 0;
            for (j = 0; j < orders && j < 20; j++) {
                returns += uniform() < 0.06;
            }
            points = floor(monetary * (0.3 + 0.7 * uniform()));

            iso(t2, sizeof(t2), first_order);
            iso(t3, sizeof(t3), last_order);
            printf(",\"first_seen\":\"%s\",\"first_order\":\"%s\","
                   "\"last_order\":\"%s\",\"orders\":%d,\"monetary\":%.2f,"
                   "\"spend_365\":%.2f,\"returns\":%d,\"points\":%.0f",
                   t1, t2, t3, orders, monetary, spend, returns, points);

            ncat = 1 + (orders > 1) + (orders > 4 && uniform() < 0.5)
                   + (orders > 8 && uniform() < 0.5);
            memset(used, 0, sizeof(used));
            printf(",\"categories\":{");
            for (j = 0; j < ncat; j++) {
                int  cat;

                do {
                    cat = zipf(16);
                } while (used[cat]);
                used[cat] = 1;
                printf("%s\"%s\":%d", j ? "," : "", categories[cat],
                       j == 0 ? (orders + 1) / 2 + 1 : 1 + (int) (uniform()
                                                          * (orders / 2 + 1)));
            }
            printf("}");
        }

        printf(",\"tz_offset\":%d", country_tz[c]);
        if (uniform() < 0.2) {
            printf(",\"quiet_hours\":\"22:00-08:00\"");
        }
        x = uniform();
        if (x < 0.08) {
            printf(",\"opt_out\":[\"promo\"]");
        } else if (x < 0.10) {
            printf(",\"opt_out\":[\"promo\",\"sms\"]");
        }
        printf("}\n");
    }

    if (fflush(stdout) != 0) {
        perror("gen_profiles: stdout");
        return 1;
    }
    return 0;
}
