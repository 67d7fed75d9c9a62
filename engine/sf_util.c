/*
 * Small utilities shared by the engine: errors, growable buffers, arenas
 * and JavaScript-compatible number formatting.
 */

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "storefront.h"


int
sf_error_set(sf_error *err, int code, const char *fmt, ...)
{
    va_list  ap;

    if (err != NULL) {
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }

    return code;
}


/* ---- sf_buf ------------------------------------------------------------- */

void
sf_buf_init(sf_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}


void
sf_buf_free(sf_buf *b)
{
    free(b->data);
    sf_buf_init(b);
}


int
sf_buf_reserve(sf_buf *b, size_t extra)
{
    size_t   cap;
    char    *p;

    if (b->len + extra + 1 <= b->cap) {
        return SF_OK;
    }

    cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        return SF_ERR_NOMEM;
    }

    b->data = p;
    b->cap = cap;
    return SF_OK;
}


int
sf_buf_append(sf_buf *b, const void *p, size_t n)
{
    if (sf_buf_reserve(b, n) != SF_OK) {
        return SF_ERR_NOMEM;
    }

    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';     /* keeps the buffer usable as a C string */
    return SF_OK;
}


int
sf_buf_appends(sf_buf *b, const char *s)
{
    return sf_buf_append(b, s, strlen(s));
}


int
sf_buf_printf(sf_buf *b, const char *fmt, ...)
{
    int      n;
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);

    if (n < 0 || sf_buf_reserve(b, (size_t) n) != SF_OK) {
        return SF_ERR_NOMEM;
    }

    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
    va_end(ap);

    b->len += (size_t) n;
    return SF_OK;
}


int
sf_buf_append_json_string(sf_buf *b, const char *s, size_t n)
{
    size_t          i;
    unsigned char   c;
    char            esc[8];

    if (sf_buf_reserve(b, n + 2) != SF_OK) {
        return SF_ERR_NOMEM;
    }

    b->data[b->len++] = '"';

    for (i = 0; i < n; i++) {
        c = (unsigned char) s[i];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char) c;
            if (sf_buf_append(b, esc, 2) != SF_OK) {
                return SF_ERR_NOMEM;
            }

        } else if (c < 0x20) {
            switch (c) {
            case '\n': memcpy(esc, "\\n", 3); break;
            case '\r': memcpy(esc, "\\r", 3); break;
            case '\t': memcpy(esc, "\\t", 3); break;
            default: snprintf(esc, sizeof(esc), "\\u%04x", c); break;
            }
            if (sf_buf_appends(b, esc) != SF_OK) {
                return SF_ERR_NOMEM;
            }

        } else if (sf_buf_append(b, &s[i], 1) != SF_OK) {
            return SF_ERR_NOMEM;
        }
    }

    return sf_buf_append(b, "\"", 1);
}


/*
 * JavaScript's Number.prototype.toString: the shortest text that reads
 * back as the same double, integers without a fraction, exponent form
 * below 1e-6 and from 1e21 up.  Hashing depends on it when a number is
 * used as a hash attribute.
 */
int
sf_buf_append_js_number(sf_buf *b, double x)
{
    int     prec, exp10;
    char    tmp[40], out[48], digits[24], *e;
    size_t  nd, i, o;

    if (isnan(x)) {
        return sf_buf_appends(b, "NaN");
    }
    if (isinf(x)) {
        return sf_buf_appends(b, x < 0 ? "-Infinity" : "Infinity");
    }
    if (x == 0) {
        return sf_buf_appends(b, "0");
    }

    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, x);
        if (strtod(tmp, NULL) == x) {
            break;
        }
    }

    /* tmp is [-]d.ddde[+-]xx: split into digits and a decimal exponent */
    o = 0;
    if (tmp[0] == '-') {
        out[o++] = '-';
    }

    nd = 0;
    for (i = (tmp[0] == '-'); tmp[i] != 'e'; i++) {
        if (tmp[i] != '.') {
            digits[nd++] = tmp[i];
        }
    }
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    e = strchr(tmp, 'e');
    exp10 = atoi(e + 1);            /* x = 0.d1d2... * 10^(exp10 + 1) */

    if (exp10 >= 21 || exp10 <= -7) {
        /* exponent form: d[.ddd]e+xx */
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, nd - 1);
            o += nd - 1;
        }
        o += (size_t) snprintf(out + o, sizeof(out) - o, "e%c%d",
                               exp10 < 0 ? '-' : '+', abs(exp10));

    } else if (exp10 < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (i = 0; i < (size_t) (-exp10 - 1); i++) {
            out[o++] = '0';
        }
        memcpy(out + o, digits, nd);
        o += nd;

    } else {
        for (i = 0; i < nd || i <= (size_t) exp10; i++) {
            if (i == (size_t) exp10 + 1) {
                out[o++] = '.';
            }
            out[o++] = i < nd ? digits[i] : '0';
        }
    }

    return sf_buf_append(b, out, o);
}


/* ---- arena -------------------------------------------------------------- */

typedef struct sf_arena_block  sf_arena_block;

struct sf_arena_block {
    sf_arena_block  *next;
    size_t           size;
    size_t           used;
    /* data follows, 16-byte aligned by the header's size */
    max_align_t      data[];
};

struct sf_arena {
    sf_arena_block  *head;       /* current block */
    sf_arena_block  *first;
    size_t           block_size;
};


static sf_arena_block *
sf_arena_block_new(size_t size)
{
    sf_arena_block  *blk;

    blk = malloc(sizeof(sf_arena_block) + size);
    if (blk == NULL) {
        return NULL;
    }

    blk->next = NULL;
    blk->size = size;
    blk->used = 0;
    return blk;
}


sf_arena *
sf_arena_create(size_t block_size)
{
    sf_arena  *a;

    a = malloc(sizeof(sf_arena));
    if (a == NULL) {
        return NULL;
    }

    a->block_size = block_size ? block_size : 64 * 1024;
    a->first = sf_arena_block_new(a->block_size);
    if (a->first == NULL) {
        free(a);
        return NULL;
    }

    a->head = a->first;
    return a;
}


void
sf_arena_destroy(sf_arena *a)
{
    sf_arena_block  *blk, *next;

    if (a == NULL) {
        return;
    }

    for (blk = a->first; blk != NULL; blk = next) {
        next = blk->next;
        free(blk);
    }
    free(a);
}


void
sf_arena_reset(sf_arena *a)
{
    sf_arena_block  *blk, *next;

    for (blk = a->first->next; blk != NULL; blk = next) {
        next = blk->next;
        free(blk);
    }

    a->first->next = NULL;
    a->first->used = 0;
    a->head = a->first;
}


void *
sf_arena_alloc(sf_arena *a, size_t n)
{
    void            *p;
    sf_arena_block  *blk;

    n = (n + 15) & ~(size_t) 15;

    if (a->head->used + n > a->head->size) {
        blk = sf_arena_block_new(n > a->block_size ? n : a->block_size);
        if (blk == NULL) {
            return NULL;
        }
        a->head->next = blk;
        a->head = blk;
    }

    p = (char *) a->head->data + a->head->used;
    a->head->used += n;
    return p;
}


char *
sf_arena_strndup(sf_arena *a, const char *s, size_t n)
{
    char  *p;

    p = sf_arena_alloc(a, n + 1);
    if (p == NULL) {
        return NULL;
    }

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}


/* ---- time ---------------------------------------------------------------- */

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t
sf_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t   era;
    unsigned  yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned) (y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t) doe - 719468;
}


static int
sf_digits(const char *p, size_t n, int *out)
{
    size_t  i;
    int     v;

    v = 0;
    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}


int
sf_parse_time(const sf_value *v, int64_t *out)
{
    int          y, mo, d, h, mi, s, oh, om;
    size_t       len;
    const char  *p;

    if (v == NULL) {
        return SF_ERR_INVALID;
    }

    if (v->type == SF_NUMBER) {
        if (v->u.number < 0 || v->u.number > 253402300799.0) {
            return SF_ERR_INVALID;
        }
        *out = (int64_t) v->u.number;
        return SF_OK;
    }

    if (v->type != SF_STRING) {
        return SF_ERR_INVALID;
    }

    p = v->u.str.p;
    len = v->u.str.len;
    h = mi = s = 0;

    if (len < 10 || !sf_digits(p, 4, &y) || p[4] != '-'
        || !sf_digits(p + 5, 2, &mo) || p[7] != '-'
        || !sf_digits(p + 8, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > 31)
    {
        return SF_ERR_INVALID;
    }
    p += 10;
    len -= 10;

    if (len > 0) {
        if ((*p != 'T' && *p != ' ') || len < 9
            || !sf_digits(p + 1, 2, &h) || p[3] != ':'
            || !sf_digits(p + 4, 2, &mi) || p[6] != ':'
            || !sf_digits(p + 7, 2, &s) || h > 23 || mi > 59 || s > 60)
        {
            return SF_ERR_INVALID;
        }
        p += 9;
        len -= 9;

        /* fractions of a second are dropped */
        if (len > 0 && *p == '.') {
            do {
                p++;
                len--;
            } while (len > 0 && *p >= '0' && *p <= '9');
        }
    }

    *out = sf_days_from_civil(y, (unsigned) mo, (unsigned) d) * 86400
           + h * 3600 + mi * 60 + s;

    if (len == 0 || (len == 1 && *p == 'Z')) {
        return SF_OK;
    }

    if (len == 6 && (*p == '+' || *p == '-') && sf_digits(p + 1, 2, &oh)
        && p[3] == ':' && sf_digits(p + 4, 2, &om))
    {
        *out -= (*p == '+' ? 1 : -1) * (oh * 3600 + om * 60);
        return SF_OK;
    }

    return SF_ERR_INVALID;
}


int
sf_buf_append_time(sf_buf *b, int64_t t)
{
    int64_t   days, z, era;
    unsigned  doe, yoe, doy, mp, d, m, secs;
    int64_t   y;

    days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    secs = (unsigned) (t - days * 86400);

    /* civil_from_days */
    z = days + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned) (z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = (int64_t) yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += (m <= 2);

    return sf_buf_printf(b, "\"%04lld-%02u-%02uT%02u:%02u:%02uZ\"",
                         (long long) y, m, d, secs / 3600, secs / 60 % 60,
                         secs % 60);
}
