/*
 * GrowthBook's hashing and bucketing, bit-exact with its SDKs.
 *
 * GrowthBook hashes JavaScript strings, that is UTF-16 code units, so the
 * UTF-8 input is decoded and each code unit (surrogate pairs for code
 * points past U+FFFF) is folded into FNV-1a.  Invalid UTF-8 bytes count
 * as U+FFFD, as a browser's decoder would give them.
 */

#include <string.h>

#include "storefront.h"
#include "sf_internal.h"


#define SF_FNV_PRIME   0x01000193u


uint32_t
sf_fnv1a32_feed(uint32_t h, const char *s, size_t len)
{
    size_t          i, k, need;
    uint32_t        cp, min;
    unsigned char   c;

    for (i = 0; i < len; /* void */) {
        c = (unsigned char) s[i];

        if (c < 0x80) {
            h = (h ^ c) * SF_FNV_PRIME;
            i++;
            continue;
        }

        if (c >= 0xc2 && c <= 0xdf) {
            need = 1; cp = c & 0x1f; min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2; cp = c & 0x0f; min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3; cp = c & 0x07; min = 0x10000;
        } else {
            need = 0; cp = 0; min = 0;
        }

        for (k = 1; need && k <= need; k++) {
            if (i + k >= len || ((unsigned char) s[i + k] & 0xc0) != 0x80) {
                need = 0;
                break;
            }
            cp = (cp << 6) | ((unsigned char) s[i + k] & 0x3f);
        }

        if (need == 0 || cp < min || cp > 0x10ffff
            || (cp >= 0xd800 && cp <= 0xdfff))
        {
            /* an invalid or truncated sequence: one U+FFFD per byte */
            h = (h ^ 0xfffd) * SF_FNV_PRIME;
            i++;
            continue;
        }

        i += need + 1;

        if (cp < 0x10000) {
            h = (h ^ cp) * SF_FNV_PRIME;
        } else {
            cp -= 0x10000;
            h = (h ^ (0xd800 + (cp >> 10))) * SF_FNV_PRIME;
            h = (h ^ (0xdc00 + (cp & 0x3ff))) * SF_FNV_PRIME;
        }
    }

    return h;
}


uint32_t
sf_fnv1a32_utf16(const char *a, size_t alen, const char *b, size_t blen)
{
    return sf_fnv1a32_feed(sf_fnv1a32_feed(SF_FNV_OFFSET, a, alen), b, blen);
}


int
sf_hash(const char *seed, size_t seed_len, const char *value,
    size_t value_len, int version, double *out)
{
    if (version == 2) {
        *out = sf_hash_v2_after_seed(sf_fnv1a32_feed(SF_FNV_OFFSET, seed,
                                                     seed_len),
                                     value, value_len);
        return SF_OK;
    }

    if (version == 1) {
        *out = sf_hash_v1_after_value(sf_fnv1a32_feed(SF_FNV_OFFSET, value,
                                                      value_len),
                                      seed, seed_len);
        return SF_OK;
    }

    return SF_ERR_INVALID;
}


double
sf_hash_v1_after_value(uint32_t value_state, const char *seed,
    size_t seed_len)
{
    return (double) (sf_fnv1a32_feed(value_state, seed, seed_len) % 1000)
           / 1000;
}


double
sf_hash_v2_after_seed(uint32_t seed_state, const char *value,
    size_t value_len)
{
    int       n;
    char      dec[16];
    uint32_t  h;

    h = sf_fnv1a32_feed(seed_state, value, value_len);

    /* String(h), digits written backwards */
    n = sizeof(dec);
    do {
        dec[--n] = (char) ('0' + h % 10);
        h /= 10;
    } while (h);

    h = sf_fnv1a32_feed(SF_FNV_OFFSET, dec + n, sizeof(dec) - (size_t) n);
    return (double) (h % 10000) / 10000;
}


int
sf_in_namespace(const char *id, size_t id_len, const char *ns,
    size_t ns_len, double start, double end)
{
    return sf_in_namespace_after_id(sf_fnv1a32_feed(SF_FNV_OFFSET, id, id_len),
                                    ns, ns_len, start, end);
}


int
sf_in_namespace_after_id(uint32_t id_state, const char *ns, size_t ns_len,
    double start, double end)
{
    double    n;
    uint32_t  h;

    /* hash("__" + ns, id, 1) = fnv(id + "__" + ns) % 1000 / 1000 */
    h = sf_fnv1a32_feed(sf_fnv1a32_feed(id_state, "__", 2), ns, ns_len);
    n = (double) (h % 1000) / 1000;

    return n >= start && n < end;
}


void
sf_equal_weights(int n, double *weights)
{
    int  i;

    for (i = 0; i < n; i++) {
        weights[i] = 1.0 / n;
    }
}


void
sf_bucket_ranges(int n, double coverage, const double *weights,
    int nweights, double (*ranges)[2])
{
    int     i;
    double  total, cumulative, w;

    if (coverage < 0) {
        coverage = 0;
    } else if (coverage > 1) {
        coverage = 1;
    }

    if (weights != NULL && nweights == n) {
        total = 0;
        for (i = 0; i < n; i++) {
            total += weights[i];
        }
        if (total < 0.99 || total > 1.01) {
            weights = NULL;
        }

    } else {
        weights = NULL;
    }

    cumulative = 0;
    for (i = 0; i < n; i++) {
        w = weights ? weights[i] : 1.0 / n;
        ranges[i][0] = cumulative;
        ranges[i][1] = cumulative + coverage * w;
        cumulative += w;
    }
}


int
sf_choose_variation(double n, const double (*ranges)[2], int nranges)
{
    int  i;

    for (i = 0; i < nranges; i++) {
        if (n >= ranges[i][0] && n < ranges[i][1]) {
            return i;
        }
    }

    return -1;
}


/* JavaScript's parseInt(s) without a radix; -1 for NaN or negative. */
static long
sf_js_parse_int(const char *p, const char *end)
{
    int   neg, base, d, any;
    long  v;

    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'
                       || *p == '\v' || *p == '\f'))
    {
        p++;
    }

    neg = 0;
    if (p < end && (*p == '+' || *p == '-')) {
        neg = (*p == '-');
        p++;
    }

    base = 10;
    if (end - p >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    }

    v = 0;
    any = 0;
    for ( /* void */ ; p < end; p++) {
        if (*p >= '0' && *p <= '9') {
            d = *p - '0';
        } else if (base == 16 && *p >= 'a' && *p <= 'f') {
            d = *p - 'a' + 10;
        } else if (base == 16 && *p >= 'A' && *p <= 'F') {
            d = *p - 'A' + 10;
        } else {
            break;
        }
        if (v > 1000000) {
            v = 1000000;        /* far past any variation count */
        } else {
            v = v * base + d;
        }
        any = 1;
    }

    if (!any || (neg && v != 0)) {
        return -1;
    }

    return v;
}


int
sf_query_string_override(const char *key, size_t key_len, const char *url,
    size_t url_len, int nvariations)
{
    long         v;
    const char  *p, *end, *amp, *eq, *kv_end, *hash;

    if (url == NULL) {
        return -1;
    }

    /* url.split("?")[1], then without any "#..." */
    p = memchr(url, '?', url_len);
    if (p == NULL) {
        return -1;
    }
    p++;
    end = url + url_len;

    kv_end = memchr(p, '?', (size_t) (end - p));
    if (kv_end) {
        end = kv_end;
    }
    hash = memchr(p, '#', (size_t) (end - p));
    if (hash) {
        end = hash;
    }

    while (p < end) {
        amp = memchr(p, '&', (size_t) (end - p));
        kv_end = amp ? amp : end;

        eq = memchr(p, '=', (size_t) (kv_end - p));

        if ((size_t) ((eq ? eq : kv_end) - p) == key_len
            && memcmp(p, key, key_len) == 0)
        {
            /* the first parameter with this name decides */
            if (eq == NULL) {
                return -1;
            }
            /* split("=", 2) keeps only the text up to a second "=" */
            amp = memchr(eq + 1, '=', (size_t) (kv_end - eq - 1));
            v = sf_js_parse_int(eq + 1, amp ? amp : kv_end);
            return (v >= 0 && v < nvariations) ? (int) v : -1;
        }

        p = kv_end + 1;
    }

    return -1;
}
