/*
 * JavaScript regular expressions for GrowthBook's $regex and $regexi, run
 * on POSIX regcomp/regexec.
 *
 * A JavaScript pattern is translated into a byte-oriented POSIX ERE: every
 * literal, class and escape becomes UTF-8 byte sequences (regcomp runs in
 * the "C" locale whatever the process locale), and case-insensitive
 * matching is written into the pattern with JavaScript's Canonicalize
 * instead of REG_ICASE.  Like JavaScript without the u flag, patterns work
 * on UTF-16 code units: characters above U+FFFF are two units, in the
 * pattern and in the subject (which is then rewritten as CESU-8).
 * Constructs POSIX cannot express (lookaround, \0) make the pattern
 * unsupported, which the caller treats as GrowthBook treats an invalid
 * pattern: no match.
 *
 * A compiled regex_t cannot be stored in LMDB, so conditions keep the
 * pattern and this file compiles it on first use into a small per-thread
 * cache.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <locale.h>
#include <pthread.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "storefront.h"


#define SF_RX_MAX_CP        0x10FFFF
#define SF_RX_MAX_UNIT      0xFFFF   /* sets are of UTF-16 code units */
#define SF_RX_MAX_DEPTH     64
#define SF_RX_MAX_GROUPS    255
#define SF_RX_DUP_MAX       1000     /* larger counts blow up regcomp */
#define SF_RX_CACHE_SIZE    256      /* power of 2, multiple of WAYS */
#define SF_RX_CACHE_WAYS    4


/* ---- locales and JavaScript case mapping -------------------------------- */

static pthread_once_t  sf_rx_once = PTHREAD_ONCE_INIT;
static locale_t        sf_rx_c_locale;      /* regcomp/regexec: bytes */
static locale_t        sf_rx_utf8_locale;   /* case tables, may be 0 */


static void
sf_rx_locales_init(void)
{
    static const char  *names[] = { "C.UTF-8", "C.utf8", "en_US.UTF-8" };
    size_t              i;

    sf_rx_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        sf_rx_utf8_locale = newlocale(LC_CTYPE_MASK, names[i], (locale_t) 0);
        if (sf_rx_utf8_locale != (locale_t) 0) {
            break;
        }
    }
}


/*
 * Simple (one to one) case mappings.  Without a UTF-8 locale only ASCII is
 * mapped.
 */
uint32_t
sf_js_case_lower(uint32_t cp)
{
    if (cp < 0x80) {
        return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    }

    pthread_once(&sf_rx_once, sf_rx_locales_init);
    if (sf_rx_utf8_locale == (locale_t) 0 || cp > SF_RX_MAX_CP) {
        return cp;
    }

    return (uint32_t) towlower_l((wint_t) cp, sf_rx_utf8_locale);
}


uint32_t
sf_js_case_upper(uint32_t cp)
{
    if (cp < 0x80) {
        return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
    }

    pthread_once(&sf_rx_once, sf_rx_locales_init);
    if (sf_rx_utf8_locale == (locale_t) 0 || cp > SF_RX_MAX_CP) {
        return cp;
    }

    return (uint32_t) towupper_l((wint_t) cp, sf_rx_utf8_locale);
}


/* ECMAScript Canonicalize(ch) without the u flag. */
static uint32_t
sf_rx_canon(uint32_t cp)
{
    uint32_t  u;

    u = sf_js_case_upper(cp);
    if (cp >= 128 && u < 128) {
        return cp;
    }

    return u;
}


/* ---- code point sets ---------------------------------------------------- */

typedef struct {
    uint32_t  lo;
    uint32_t  hi;
} sf_rx_range;

typedef struct {
    sf_rx_range  *r;
    size_t        n;
    size_t        cap;
    int           oom;
} sf_rx_set;


static void
sf_rx_set_free(sf_rx_set *s)
{
    free(s->r);
    s->r = NULL;
    s->n = s->cap = 0;
}


static void
sf_rx_set_add(sf_rx_set *s, uint32_t lo, uint32_t hi)
{
    size_t        cap;
    sf_rx_range  *r;

    if (s->n == s->cap) {
        cap = s->cap ? s->cap * 2 : 16;
        r = realloc(s->r, cap * sizeof(sf_rx_range));
        if (r == NULL) {
            s->oom = 1;
            return;
        }
        s->r = r;
        s->cap = cap;
    }

    s->r[s->n].lo = lo;
    s->r[s->n].hi = hi;
    s->n++;
}


static int
sf_rx_range_cmp(const void *a, const void *b)
{
    const sf_rx_range  *x = a, *y = b;

    return (x->lo > y->lo) - (x->lo < y->lo);
}


/* Sorts and merges overlapping or adjacent ranges. */
static void
sf_rx_set_norm(sf_rx_set *s)
{
    size_t  i, o;

    if (s->n < 2) {
        return;
    }

    qsort(s->r, s->n, sizeof(sf_rx_range), sf_rx_range_cmp);

    o = 0;
    for (i = 1; i < s->n; i++) {
        if (s->r[i].lo <= s->r[o].hi + 1) {
            if (s->r[i].hi > s->r[o].hi) {
                s->r[o].hi = s->r[i].hi;
            }
        } else {
            s->r[++o] = s->r[i];
        }
    }
    s->n = o + 1;
}


static void
sf_rx_set_negate(sf_rx_set *s)
{
    size_t     i;
    uint32_t   next;
    sf_rx_set  t = { NULL, 0, 0, 0 };

    sf_rx_set_norm(s);

    next = 0;
    for (i = 0; i < s->n; i++) {
        if (s->r[i].lo > next) {
            sf_rx_set_add(&t, next, s->r[i].lo - 1);
        }
        next = s->r[i].hi + 1;
    }
    if (next <= SF_RX_MAX_UNIT) {
        sf_rx_set_add(&t, next, SF_RX_MAX_UNIT);
    }

    t.oom |= s->oom;
    sf_rx_set_free(s);
    *s = t;
}


static void
sf_rx_set_add_set(sf_rx_set *s, const sf_rx_set *a)
{
    size_t  i;

    for (i = 0; i < a->n; i++) {
        sf_rx_set_add(s, a->r[i].lo, a->r[i].hi);
    }
    s->oom |= a->oom;
}


/*
 * Case classes for the i flag: characters whose Canonicalize is the same.
 * Built once: (canon, member) pairs sorted by canon, for every character
 * that case mapping touches in the BMP (without the u flag, characters
 * above it are surrogate pairs and have no case).
 */

typedef struct {
    uint32_t  canon;
    uint32_t  cp;
} sf_rx_fold_pair;

static pthread_once_t    sf_rx_fold_once = PTHREAD_ONCE_INIT;
static sf_rx_fold_pair  *sf_rx_folds;
static size_t            sf_rx_nfolds;


static int
sf_rx_fold_cmp(const void *a, const void *b)
{
    const sf_rx_fold_pair  *x = a, *y = b;

    if (x->canon != y->canon) {
        return (x->canon > y->canon) - (x->canon < y->canon);
    }
    return (x->cp > y->cp) - (x->cp < y->cp);
}


static void
sf_rx_folds_init(void)
{
    size_t            n, cap, i, o;
    uint32_t          c, k;
    sf_rx_fold_pair  *f, *g;

    n = 0;
    cap = 4096;
    f = malloc(cap * sizeof(sf_rx_fold_pair));

    for (c = 0x41; f != NULL && c <= SF_RX_MAX_UNIT; c++) {
        k = sf_rx_canon(c);
        if (k == c) {
            continue;
        }
        if (n + 2 > cap) {
            cap *= 2;
            g = realloc(f, cap * sizeof(sf_rx_fold_pair));
            if (g == NULL) {
                free(f);
                f = NULL;
                break;
            }
            f = g;
        }
        f[n].canon = k;
        f[n].cp = c;
        n++;
        if (sf_rx_canon(k) == k) {
            f[n].canon = k;
            f[n].cp = k;
            n++;
        }
    }

    if (f == NULL) {
        return;
    }

    qsort(f, n, sizeof(sf_rx_fold_pair), sf_rx_fold_cmp);

    /* drop duplicate (canon, canon) pairs */
    o = 0;
    for (i = 0; i < n; i++) {
        if (o == 0 || f[i].canon != f[o - 1].canon || f[i].cp != f[o - 1].cp)
        {
            f[o++] = f[i];
        }
    }

    sf_rx_folds = f;
    sf_rx_nfolds = o;
}


static int
sf_rx_set_has(const sf_rx_set *s, uint32_t c)
{
    size_t  lo, hi, mid;

    lo = 0;
    hi = s->n;
    while (lo < hi) {
        mid = (lo + hi) / 2;
        if (s->r[mid].hi < c) {
            lo = mid + 1;
        } else if (s->r[mid].lo > c) {
            hi = mid;
        } else {
            return 1;
        }
    }

    return 0;
}


/* Closure under Canonicalize: whatever matches a member under the i flag.
 * A class with a member in the set joins the set whole. */
static void
sf_rx_set_fold(sf_rx_set *s)
{
    size_t  i, j, k;

    pthread_once(&sf_rx_fold_once, sf_rx_folds_init);
    sf_rx_set_norm(s);

    k = s->n;
    for (i = 0; i < sf_rx_nfolds; i = j) {
        int  hit = 0;

        for (j = i; j < sf_rx_nfolds
                    && sf_rx_folds[j].canon == sf_rx_folds[i].canon; j++)
        {
            if (!hit) {
                /* only the ranges that were there before this fold */
                size_t  n = s->n;

                s->n = k;
                hit = sf_rx_set_has(s, sf_rx_folds[j].cp);
                s->n = n;
            }
        }
        if (hit) {
            for (j = i; j < sf_rx_nfolds
                        && sf_rx_folds[j].canon == sf_rx_folds[i].canon; j++)
            {
                sf_rx_set_add(s, sf_rx_folds[j].cp, sf_rx_folds[j].cp);
            }
        }
    }

    sf_rx_set_norm(s);
}


static void
sf_rx_set_class(sf_rx_set *s, int cls)
{
    static const sf_rx_range  space[] = {
        { 0x09, 0x0D }, { 0x20, 0x20 }, { 0xA0, 0xA0 }, { 0x1680, 0x1680 },
        { 0x2000, 0x200A }, { 0x2028, 0x2029 }, { 0x202F, 0x202F },
        { 0x205F, 0x205F }, { 0x3000, 0x3000 }, { 0xFEFF, 0xFEFF }
    };
    size_t     i;
    sf_rx_set  t = { NULL, 0, 0, 0 };

    switch (cls | 0x20) {
    case 'd':
        sf_rx_set_add(&t, '0', '9');
        break;
    case 'w':
        sf_rx_set_add(&t, '0', '9');
        sf_rx_set_add(&t, 'A', 'Z');
        sf_rx_set_add(&t, '_', '_');
        sf_rx_set_add(&t, 'a', 'z');
        break;
    default: /* 's' */
        for (i = 0; i < sizeof(space) / sizeof(space[0]); i++) {
            sf_rx_set_add(&t, space[i].lo, space[i].hi);
        }
        break;
    }

    if (cls >= 'A' && cls <= 'Z') {
        sf_rx_set_negate(&t);
    }

    sf_rx_set_add_set(s, &t);
    sf_rx_set_free(&t);
}


/* ---- the translator ----------------------------------------------------- */

typedef struct {
    const unsigned char  *p;
    const unsigned char  *end;
    int                   icase;
    sf_buf               *out;
    int                   js_total;      /* capturing groups in the pattern */
    int                   js_groups;     /* capturing groups opened so far */
    int                   ere_groups;    /* ERE groups emitted so far */
    int                   named;         /* the pattern has named groups */
    uint32_t              pending;       /* low surrogate still to read */
    int                   group_ere[SF_RX_MAX_GROUPS + 1];
    int                   oom;
    const char           *error;         /* invalid in JavaScript */
    const char           *unsupported;   /* valid, but not in POSIX */
} sf_rx_tr;


static void
sf_rx_emit(sf_rx_tr *t, const char *s, size_t n)
{
    if (sf_buf_append(t->out, s, n) != SF_OK) {
        t->oom = 1;
    }
}


static void
sf_rx_emit_byte(sf_rx_tr *t, unsigned c)
{
    char  b = (char) c;

    sf_rx_emit(t, &b, 1);
}


static int
sf_rx_failed(sf_rx_tr *t)
{
    return t->error != NULL || t->unsupported != NULL || t->oom;
}


/* A single byte outside a bracket expression. */
static void
sf_rx_emit_literal_byte(sf_rx_tr *t, unsigned c)
{
    if (c < 0x80 && strchr(".[]()*+?{}|^$\\", (int) c) != NULL) {
        sf_rx_emit_byte(t, '\\');
    }
    sf_rx_emit_byte(t, c);
}


/*
 * ASCII ranges as one atom: a literal for a single byte, else a bracket
 * expression with ']' first, '^' not first, '[' and '-' last, and none of
 * them as a range end point.
 */
static void
sf_rx_emit_bracket(sf_rx_tr *t, const sf_rx_range *r, size_t n)
{
    int       any;
    size_t    i;
    unsigned  c, e;
    uint8_t   in[128];

    if (n == 1 && r[0].lo == r[0].hi) {
        sf_rx_emit_literal_byte(t, r[0].lo);
        return;
    }

    memset(in, 0, sizeof(in));
    for (i = 0; i < n; i++) {
        for (c = r[i].lo; c <= r[i].hi && c < 128; c++) {
            in[c] = 1;
        }
    }

    sf_rx_emit_byte(t, '[');
    any = 0;
    if (in[']']) {
        sf_rx_emit_byte(t, ']');
        any = 1;
    }

    for (c = 1; c < 128; c++) {
        if (!in[c] || strchr("]^[-", (int) c) != NULL) {
            continue;
        }
        e = c;
        while (e + 1 < 128 && in[e + 1] && strchr("]^[-", (int) e + 1) == NULL)
        {
            e++;
        }
        sf_rx_emit_byte(t, c);
        if (e > c + 1) {
            sf_rx_emit_byte(t, '-');
        }
        if (e > c) {
            sf_rx_emit_byte(t, e);
        }
        any = 1;
        c = e;
    }

    if (in['^']) {
        if (!any) {
            /* "[^" would negate: put '[' or '-' first */
            if (in['[']) {
                sf_rx_emit_byte(t, '[');
                in['['] = 0;
            } else {
                sf_rx_emit_byte(t, '-');
                in['-'] = 0;
            }
        }
        sf_rx_emit_byte(t, '^');
    }
    if (in['[']) {
        sf_rx_emit_byte(t, '[');
    }
    if (in['-']) {
        sf_rx_emit_byte(t, '-');
    }
    sf_rx_emit_byte(t, ']');
}


static size_t
sf_rx_utf8_encode(uint32_t cp, unsigned char *b)
{
    if (cp < 0x80) {
        b[0] = (unsigned char) cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (unsigned char) (0xC0 | (cp >> 6));
        b[1] = (unsigned char) (0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (unsigned char) (0xE0 | (cp >> 12));
        b[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char) (0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (unsigned char) (0xF0 | (cp >> 18));
    b[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));
    b[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
    b[3] = (unsigned char) (0x80 | (cp & 0x3F));
    return 4;
}


/*
 * Emits the UTF-8 encodings of the code points [lo, hi] (all of one
 * encoded length, lo > 0x7F) as alternatives of byte range sequences, as
 * RE2 and Rust's utf8-ranges do.
 */
static void
sf_rx_emit_utf8_range(sf_rx_tr *t, uint32_t lo, uint32_t hi, int *first)
{
    int            i;
    size_t         n, k;
    uint32_t       m;
    unsigned char  a[4], b[4];

    for (i = 1; i < 4; i++) {
        m = ((uint32_t) 1 << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0) {
                sf_rx_emit_utf8_range(t, lo, lo | m, first);
                sf_rx_emit_utf8_range(t, (lo | m) + 1, hi, first);
                return;
            }
            if ((hi & m) != m) {
                sf_rx_emit_utf8_range(t, lo, (hi & ~m) - 1, first);
                sf_rx_emit_utf8_range(t, hi & ~m, hi, first);
                return;
            }
        }
    }

    n = sf_rx_utf8_encode(lo, a);
    sf_rx_utf8_encode(hi, b);

    if (!*first) {
        sf_rx_emit_byte(t, '|');
    }
    *first = 0;

    for (k = 0; k < n; k++) {
        /* bytes of multi-byte sequences are >= 0x80: never special */
        if (a[k] == b[k]) {
            sf_rx_emit_byte(t, a[k]);
        } else {
            sf_rx_emit_byte(t, '[');
            sf_rx_emit_byte(t, a[k]);
            sf_rx_emit_byte(t, '-');
            sf_rx_emit_byte(t, b[k]);
            sf_rx_emit_byte(t, ']');
        }
    }
}


/*
 * Emits a normalized set as one ERE atom.  Returns 1 when the atom is a
 * sequence of bytes that a quantifier must group, 0 when it is a single
 * atom (a bracket, a byte or a group).
 */
static int
sf_rx_emit_set(sf_rx_tr *t, sf_rx_set *s)
{
    int          first, multi;
    size_t       i, nascii;
    uint32_t     lo, hi, b;
    sf_rx_set    c = { NULL, 0, 0, 0 };
    sf_rx_range  ascii[128];
    static const uint32_t  bounds[] = { 0x7FF, 0xFFFF };

    sf_rx_set_norm(s);

    /* no NUL: a C string pattern cannot say it */
    for (i = 0; i < s->n; i++) {
        lo = s->r[i].lo ? s->r[i].lo : 1;
        hi = s->r[i].hi;
        if (lo <= hi) {
            sf_rx_set_add(&c, lo, hi);
        }
    }

    if (c.oom || s->oom) {
        t->oom = 1;
        sf_rx_set_free(&c);
        return 0;
    }

    if (c.n == 0) {
        /* matches nothing: a character before the start */
        sf_rx_emit(t, "(x^)", 4);
        t->ere_groups++;
        sf_rx_set_free(&c);
        return 0;
    }

    nascii = 0;
    multi = 0;
    for (i = 0; i < c.n; i++) {
        if (c.r[i].lo < 0x80) {
            ascii[nascii].lo = c.r[i].lo;
            ascii[nascii].hi = c.r[i].hi < 0x80 ? c.r[i].hi : 0x7F;
            nascii++;
        }
        if (c.r[i].hi >= 0x80) {
            multi = 1;
        }
    }

    if (!multi) {
        sf_rx_emit_bracket(t, ascii, nascii);
        sf_rx_set_free(&c);
        return 0;
    }

    /* a single multi-byte character: its bytes */
    if (c.n == 1 && c.r[0].lo == c.r[0].hi) {
        unsigned char  e[4];
        size_t         n, k;

        n = sf_rx_utf8_encode(c.r[0].lo, e);
        for (k = 0; k < n; k++) {
            sf_rx_emit_byte(t, e[k]);
        }
        sf_rx_set_free(&c);
        return 1;
    }

    sf_rx_emit_byte(t, '(');
    t->ere_groups++;
    first = 1;

    if (nascii) {
        sf_rx_emit_bracket(t, ascii, nascii);
        first = 0;
    }

    for (i = 0; i < c.n; i++) {
        lo = c.r[i].lo < 0x80 ? 0x80 : c.r[i].lo;
        hi = c.r[i].hi;
        for (b = 0; b < 2 && lo <= hi; b++) {
            if (lo <= bounds[b]) {
                uint32_t  h = hi < bounds[b] ? hi : bounds[b];

                sf_rx_emit_utf8_range(t, lo, h, &first);
                lo = h + 1;
            }
        }
    }

    sf_rx_emit_byte(t, ')');
    sf_rx_set_free(&c);
    return 0;
}


/* One character as an atom, case-folded under the i flag. */
static int
sf_rx_emit_char(sf_rx_tr *t, uint32_t cp)
{
    int        rc;
    sf_rx_set  s = { NULL, 0, 0, 0 };

    sf_rx_set_add(&s, cp, cp);
    if (t->icase) {
        sf_rx_set_fold(&s);
    }
    rc = sf_rx_emit_set(t, &s);
    sf_rx_set_free(&s);
    return rc;
}


static uint32_t
sf_rx_next_cp(sf_rx_tr *t)
{
    unsigned  c, n, i;
    uint32_t  cp;

    if (t->pending) {
        cp = t->pending;
        t->pending = 0;
        return cp;
    }

    c = *t->p++;
    if (c < 0x80) {
        return c;
    }

    if (c >= 0xF5) {
        return 0xFFFD;
    } else if (c >= 0xF0) {
        n = 3;
        cp = c & 0x07;
    } else if (c >= 0xE0) {
        n = 2;
        cp = c & 0x0F;
    } else if (c >= 0xC2 && c < 0xE0) {
        n = 1;
        cp = c & 0x1F;
    } else {
        return 0xFFFD;
    }

    for (i = 0; i < n; i++) {
        if (t->p >= t->end || (*t->p & 0xC0) != 0x80) {
            return 0xFFFD;
        }
        cp = (cp << 6) | (*t->p++ & 0x3F);
    }

    if (cp >= 0x10000) {
        /* JavaScript sees two code units: the low one comes next */
        t->pending = 0xDC00 + ((cp - 0x10000) & 0x3FF);
        return 0xD800 + ((cp - 0x10000) >> 10);
    }

    return cp;
}


static int
sf_rx_hex(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}


/* n hex digits at p, or -1. */
static long
sf_rx_hex_n(sf_rx_tr *t, const unsigned char *p, int n)
{
    int   i, d;
    long  v;

    if (t->end - p < n) {
        return -1;
    }

    v = 0;
    for (i = 0; i < n; i++) {
        d = sf_rx_hex(p[i]);
        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }

    return v;
}


/* Annex B legacy octal escape starting at t->p (a digit 0-7). */
static uint32_t
sf_rx_octal(sf_rx_tr *t)
{
    uint32_t  v;
    int       max;

    max = (*t->p <= '3') ? 3 : 2;
    v = 0;
    while (max-- > 0 && t->p < t->end && *t->p >= '0' && *t->p <= '7') {
        v = v * 8 + (uint32_t) (*t->p++ - '0');
    }

    return v;
}


/*
 * A CharacterEscape after the backslash (shared by atoms and classes),
 * t->p at the escape letter.  Returns the code point, or -1 with
 * t->error / t->unsupported set.
 */
static long
sf_rx_char_escape(sf_rx_tr *t, int in_class)
{
    int       c;
    long      v;
    uint32_t  cp;

    c = *t->p;

    switch (c) {
    case 't': t->p++; return 9;
    case 'n': t->p++; return 10;
    case 'v': t->p++; return 11;
    case 'f': t->p++; return 12;
    case 'r': t->p++; return 13;

    case 'c':
        if (t->end - t->p >= 2
            && (((t->p[1] | 0x20) >= 'a' && (t->p[1] | 0x20) <= 'z')
                || (in_class && ((t->p[1] >= '0' && t->p[1] <= '9')
                                 || t->p[1] == '_'))))
        {
            t->p += 2;
            return t->p[-1] % 32;
        }
        /* Annex B: the backslash is a literal, "c" follows */
        return '\\';

    case 'x':
        v = sf_rx_hex_n(t, t->p + 1, 2);
        if (v < 0) {
            t->p++;
            return 'x';
        }
        t->p += 3;
        return v;

    case 'u':
        v = sf_rx_hex_n(t, t->p + 1, 4);
        if (v < 0) {
            t->p++;
            return 'u';
        }
        t->p += 5;
        return v;               /* surrogates too: one code unit each */

    case '0':
        if (t->end - t->p >= 2 && t->p[1] >= '0' && t->p[1] <= '9') {
            v = sf_rx_octal(t);
        } else {
            t->p++;
            v = 0;
        }
        if (v == 0) {
            t->unsupported = "\\0 (NUL) in a pattern";
            return -1;
        }
        return v;

    default:
        if (c >= '1' && c <= '7') {
            return sf_rx_octal(t);
        }
        /* identity escape: the character itself */
        cp = sf_rx_next_cp(t);
        return cp;
    }
}


static int sf_rx_disjunction(sf_rx_tr *t, int depth);


/* {n}, {n,}, {n,m} at t->p: 1 and the bounds (m = -1: none), else 0. */
static int
sf_rx_braced(sf_rx_tr *t, const unsigned char **next, long *n, long *m)
{
    const unsigned char  *p = t->p;

    if (p >= t->end || *p != '{') {
        return 0;
    }
    p++;
    if (p >= t->end || *p < '0' || *p > '9') {
        return 0;
    }

    *n = 0;
    while (p < t->end && *p >= '0' && *p <= '9') {
        if (*n < 1000000) {
            *n = *n * 10 + (*p - '0');
        }
        p++;
    }
    *m = *n;

    if (p < t->end && *p == ',') {
        p++;
        *m = -1;
        if (p < t->end && *p >= '0' && *p <= '9') {
            *m = 0;
            while (p < t->end && *p >= '0' && *p <= '9') {
                if (*m < 1000000) {
                    *m = *m * 10 + (*p - '0');
                }
                p++;
            }
        }
    }

    if (p >= t->end || *p != '}') {
        return 0;
    }

    *next = p + 1;
    return 1;
}


static int
sf_rx_at_quantifier(sf_rx_tr *t)
{
    long                  n, m;
    const unsigned char  *next;

    if (t->pending || t->p >= t->end) {
        return 0;
    }
    if (*t->p == '*' || *t->p == '+' || *t->p == '?') {
        return 1;
    }

    return sf_rx_braced(t, &next, &n, &m);
}


/* An optional quantifier after an atom that starts at out offset start. */
static void
sf_rx_quantifier(sf_rx_tr *t, size_t start, int compound)
{
    char                  q[48];
    long                  n, m;
    size_t                len;
    const unsigned char  *next;

    if (!sf_rx_at_quantifier(t)) {
        return;
    }

    if (*t->p == '{') {
        sf_rx_braced(t, &next, &n, &m);
        t->p = next;
        if (m >= 0 && n > m) {
            t->error = "numbers out of order in {} quantifier";
            return;
        }
        if (n > SF_RX_DUP_MAX || m > SF_RX_DUP_MAX) {
            t->unsupported = "repetition count too large";
            return;
        }
        if (m < 0) {
            len = (size_t) snprintf(q, sizeof(q), "{%ld,}", n);
        } else if (m == n) {
            len = (size_t) snprintf(q, sizeof(q), "{%ld}", n);
        } else {
            len = (size_t) snprintf(q, sizeof(q), "{%ld,%ld}", n, m);
        }
    } else {
        q[0] = (char) *t->p++;
        len = 1;
    }

    if (compound) {
        /* the atom is several bytes: group it (a new, last group) */
        if (sf_buf_reserve(t->out, 1) != SF_OK) {
            t->oom = 1;
            return;
        }
        memmove(t->out->data + start + 1, t->out->data + start,
                t->out->len - start + 1);
        t->out->data[start] = '(';
        t->out->len++;
        sf_rx_emit_byte(t, ')');
        t->ere_groups++;
    }

    sf_rx_emit(t, q, len);

    /* lazy and greedy match the same strings: drop the '?' */
    if (t->p < t->end && *t->p == '?') {
        t->p++;
    }

    if (sf_rx_at_quantifier(t)) {
        t->error = "nothing to repeat";
    }
}


/* [...] with t->p after the '['. */
static int
sf_rx_class(sf_rx_tr *t)
{
    int        negate, rc, have_lo, lo_is_class;
    long       cp, lo;
    sf_rx_set  s = { NULL, 0, 0, 0 };

    negate = 0;
    if (t->p < t->end && *t->p == '^') {
        negate = 1;
        t->p++;
    }

    have_lo = 0;
    lo = 0;
    lo_is_class = 0;

    for ( ;; ) {
        int  is_class = 0;

        if (t->pending) {
            cp = sf_rx_next_cp(t);

        } else if (t->p >= t->end) {
            t->error = "unterminated character class";
            sf_rx_set_free(&s);
            return 0;

        } else if (*t->p == ']') {
            t->p++;
            break;

        /* one ClassAtom */
        } else if (*t->p == '\\') {
            t->p++;
            if (t->p >= t->end) {
                t->error = "\\ at end of pattern";
                sf_rx_set_free(&s);
                return 0;
            }
            switch (*t->p) {
            case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
                sf_rx_set_class(&s, *t->p);
                t->p++;
                is_class = 1;
                cp = -1;
                break;
            case 'b':
                t->p++;
                cp = 8;
                break;
            case '-':
                t->p++;
                cp = '-';
                break;
            case '8': case '9':
                cp = *t->p++;
                break;
            default:
                cp = sf_rx_char_escape(t, 1);
                if (cp < 0) {
                    sf_rx_set_free(&s);
                    return 0;
                }
            }

        } else {
            cp = sf_rx_next_cp(t);
        }

        /* a range "lo-cp" pending? */
        if (have_lo) {
            have_lo = 0;
            if (is_class || lo_is_class) {
                /* Annex B: [\d-x] is \d, '-' and x */
                sf_rx_set_add(&s, '-', '-');
                if (!lo_is_class) {
                    sf_rx_set_add(&s, (uint32_t) lo, (uint32_t) lo);
                }
                if (!is_class) {
                    sf_rx_set_add(&s, (uint32_t) cp, (uint32_t) cp);
                }
                continue;
            }
            if (lo > cp) {
                t->error = "range out of order in character class";
                sf_rx_set_free(&s);
                return 0;
            }
            sf_rx_set_add(&s, (uint32_t) lo, (uint32_t) cp);
            continue;
        }

        if (!t->pending && t->end - t->p >= 2 && t->p[0] == '-'
            && t->p[1] != ']')
        {
            t->p++;
            have_lo = 1;
            lo = cp;
            lo_is_class = is_class;
            continue;
        }

        if (!is_class) {
            sf_rx_set_add(&s, (uint32_t) cp, (uint32_t) cp);
        }
    }

    if (t->icase) {
        sf_rx_set_fold(&s);
    }
    if (negate) {
        sf_rx_set_negate(&s);
    }

    rc = sf_rx_emit_set(t, &s);
    sf_rx_set_free(&s);
    return rc;
}


static void
sf_rx_group(sf_rx_tr *t, int depth)
{
    int  capturing, js;

    capturing = 1;

    if (t->p < t->end && *t->p == '?') {
        if (t->end - t->p >= 2 && t->p[1] == ':') {
            capturing = 0;
            t->p += 2;

        } else if (t->end - t->p >= 2 && (t->p[1] == '=' || t->p[1] == '!')) {
            t->unsupported = "lookahead";
            return;

        } else if (t->end - t->p >= 3 && t->p[1] == '<'
                   && (t->p[2] == '=' || t->p[2] == '!'))
        {
            t->unsupported = "lookbehind";
            return;

        } else if (t->end - t->p >= 2 && t->p[1] == '<') {
            t->p += 2;
            if (t->p >= t->end || *t->p == '>') {
                t->error = "invalid capture group name";
                return;
            }
            while (t->p < t->end && *t->p != '>') {
                if (*t->p < 0x80 && !(((*t->p | 0x20) >= 'a'
                                       && (*t->p | 0x20) <= 'z')
                                      || (*t->p >= '0' && *t->p <= '9')
                                      || *t->p == '_' || *t->p == '$'))
                {
                    t->error = "invalid capture group name";
                    return;
                }
                t->p++;
            }
            if (t->p >= t->end) {
                t->error = "invalid capture group name";
                return;
            }
            t->p++;

        } else {
            t->error = "invalid group";
            return;
        }
    }

    sf_rx_emit_byte(t, '(');
    t->ere_groups++;
    if (capturing) {
        js = ++t->js_groups;
        if (js <= SF_RX_MAX_GROUPS) {
            t->group_ere[js] = t->ere_groups;
        }
    }

    sf_rx_disjunction(t, depth + 1);
    if (sf_rx_failed(t)) {
        return;
    }

    if (t->p >= t->end || *t->p != ')') {
        t->error = "unterminated group";
        return;
    }
    t->p++;
    sf_rx_emit_byte(t, ')');
}


/* One term: an assertion, or an atom and its quantifier. */
static void
sf_rx_term(sf_rx_tr *t, int depth)
{
    int       compound;
    long      cp, n;
    size_t    start;
    char      ref[2];
    sf_rx_set s = { NULL, 0, 0, 0 };

    start = t->out->len;
    compound = 0;

    if (t->pending) {
        compound = sf_rx_emit_char(t, sf_rx_next_cp(t));
        sf_rx_quantifier(t, start, compound);
        return;
    }

    switch (*t->p) {

    case '^':
    case '$':
        sf_rx_emit_byte(t, *t->p++);
        if (sf_rx_at_quantifier(t)) {
            t->error = "nothing to repeat";
        }
        return;

    case '*':
    case '+':
    case '?':
        t->error = "nothing to repeat";
        return;

    case '{':
        if (sf_rx_at_quantifier(t)) {
            t->error = "nothing to repeat";
            return;
        }
        t->p++;
        compound = sf_rx_emit_char(t, '{');
        break;

    case '(':
        t->p++;
        sf_rx_group(t, depth);
        break;

    case '[':
        t->p++;
        compound = sf_rx_class(t);
        break;

    case '.':
        t->p++;
        sf_rx_set_add(&s, 0x0A, 0x0A);
        sf_rx_set_add(&s, 0x0D, 0x0D);
        sf_rx_set_add(&s, 0x2028, 0x2029);
        sf_rx_set_negate(&s);
        compound = sf_rx_emit_set(t, &s);
        sf_rx_set_free(&s);
        break;

    case '\\':
        t->p++;
        if (t->p >= t->end) {
            t->error = "\\ at end of pattern";
            return;
        }

        switch (*t->p) {

        case 'b':
        case 'B':
            sf_rx_emit_byte(t, '\\');
            sf_rx_emit_byte(t, *t->p++);
            if (sf_rx_at_quantifier(t)) {
                t->error = "nothing to repeat";
            }
            return;

        case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
            sf_rx_set_class(&s, *t->p++);
            if (t->icase) {
                sf_rx_set_fold(&s);
            }
            compound = sf_rx_emit_set(t, &s);
            sf_rx_set_free(&s);
            break;

        case 'k':
            if (t->named) {
                t->unsupported = "named back reference";
                return;
            }
            t->p++;
            compound = sf_rx_emit_char(t, 'k');
            break;

        case '1': case '2': case '3': case '4': case '5':
        case '6': case '7': case '8': case '9':
            n = 0;
            {
                const unsigned char  *q = t->p;

                while (q < t->end && *q >= '0' && *q <= '9' && n < 100000) {
                    n = n * 10 + (*q++ - '0');
                }
                if (n <= t->js_total) {
                    t->p = q;
                    if (n > SF_RX_MAX_GROUPS || n > t->js_groups) {
                        /* a forward reference matches the empty string */
                        if (n > t->js_groups) {
                            sf_rx_emit(t, "()", 2);
                            t->ere_groups++;
                            break;
                        }
                        t->unsupported = "back reference number too large";
                        return;
                    }
                    if (t->group_ere[n] > 9) {
                        t->unsupported = "back reference beyond \\9";
                        return;
                    }
                    ref[0] = '\\';
                    ref[1] = (char) ('0' + t->group_ere[n]);
                    sf_rx_emit(t, ref, 2);
                    break;
                }
            }
            if (*t->p >= '8') {
                compound = sf_rx_emit_char(t, *t->p++);
                break;
            }
            /* legacy octal */
            /* fall through */
        default:
            cp = sf_rx_char_escape(t, 0);
            if (cp < 0) {
                return;
            }
            compound = sf_rx_emit_char(t, (uint32_t) cp);
            break;
        }
        break;

    default:
        /* ')' and '|' are the caller's */
        cp = sf_rx_next_cp(t);
        compound = sf_rx_emit_char(t, (uint32_t) cp);
        break;
    }

    if (sf_rx_failed(t)) {
        return;
    }

    sf_rx_quantifier(t, start, compound);
}


static int
sf_rx_disjunction(sf_rx_tr *t, int depth)
{
    if (depth > SF_RX_MAX_DEPTH) {
        t->unsupported = "groups nested too deeply";
        return -1;
    }

    for ( ;; ) {
        while (t->pending
               || (t->p < t->end && *t->p != '|' && *t->p != ')'))
        {
            sf_rx_term(t, depth);
            if (sf_rx_failed(t)) {
                return -1;
            }
        }

        if (t->p < t->end && *t->p == '|') {
            t->p++;
            sf_rx_emit_byte(t, '|');
            continue;
        }

        return 0;
    }
}


/* Counts capturing groups and notes named ones (Annex B needs the count
 * to tell a back reference from an octal escape). */
static void
sf_rx_count_groups(sf_rx_tr *t)
{
    int                   in_class;
    const unsigned char  *p;

    in_class = 0;
    for (p = t->p; p < t->end; p++) {
        if (*p == '\\') {
            p++;
            continue;
        }
        if (in_class) {
            in_class = (*p != ']');
            continue;
        }
        if (*p == '[') {
            in_class = 1;
        } else if (*p == '(') {
            if (p + 1 < t->end && p[1] == '?') {
                if (p + 2 < t->end && p[2] == '<' && p + 3 < t->end
                    && p[3] != '=' && p[3] != '!')
                {
                    t->js_total++;
                    t->named = 1;
                }
            } else {
                t->js_total++;
            }
        }
    }
}


int
sf_js_regex_translate(const char *pattern, size_t len, int icase,
    sf_buf *out, sf_error *err)
{
    sf_rx_tr  *t;
    int        rc;

    t = calloc(1, sizeof(sf_rx_tr));
    if (t == NULL) {
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }

    t->p = (const unsigned char *) pattern;
    t->end = t->p + len;
    t->icase = icase;
    t->out = out;

    sf_rx_count_groups(t);

    if (memchr(pattern, '\0', len) != NULL) {
        t->unsupported = "NUL in a pattern";
    } else {
        sf_rx_disjunction(t, 0);
        if (!sf_rx_failed(t) && t->p < t->end) {
            t->error = "unmatched ')'";
        }
    }

    /* an empty pattern matches everywhere */
    if (!sf_rx_failed(t) && out->len == 0) {
        sf_rx_emit(t, "()", 2);
    }

    if (t->oom) {
        rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    } else if (t->error) {
        rc = sf_error_set(err, SF_ERR_INVALID,
                          "invalid regular expression: %s", t->error);
    } else if (t->unsupported) {
        rc = sf_error_set(err, SF_ERR_INVALID,
                          "unsupported regular expression: %s",
                          t->unsupported);
    } else {
        rc = SF_OK;
    }

    free(t);
    return rc;
}


/* ---- the per-thread cache ----------------------------------------------- */

typedef struct {
    uint32_t   hash;
    uint8_t    state;            /* 0 empty, 1 compiled, 2 invalid */
    uint8_t    icase;
    char      *pattern;
    size_t     len;
    regex_t    re;
} sf_rx_entry;

static _Thread_local sf_rx_entry  *sf_rx_cache;
static _Thread_local unsigned      sf_rx_clock;


static void
sf_rx_entry_clear(sf_rx_entry *e)
{
    if (e->state == 1) {
        regfree(&e->re);
    }
    free(e->pattern);
    memset(e, 0, sizeof(sf_rx_entry));
}


static void
sf_rx_entry_fill(sf_rx_entry *e, uint32_t h, const char *pattern,
    size_t len, int icase)
{
    sf_buf    ere;
    locale_t  old;

    e->pattern = malloc(len + 1);
    if (e->pattern == NULL) {
        return;
    }
    memcpy(e->pattern, pattern, len);
    e->len = len;
    e->hash = h;
    e->icase = (uint8_t) icase;
    e->state = 2;

    sf_buf_init(&ere);
    if (sf_js_regex_translate(pattern, len, icase, &ere, NULL) == SF_OK) {
        old = uselocale(sf_rx_c_locale ? sf_rx_c_locale : LC_GLOBAL_LOCALE);
        if (regcomp(&e->re, ere.data, REG_EXTENDED | REG_NOSUB) == 0) {
            e->state = 1;
        }
        uselocale(old);
    }
    sf_buf_free(&ere);
}


static sf_rx_entry *
sf_rx_lookup(const char *pattern, size_t len, int icase)
{
    size_t        i, set;
    uint32_t      h;
    sf_rx_entry  *e;

    if (sf_rx_cache == NULL) {
        sf_rx_cache = calloc(SF_RX_CACHE_SIZE, sizeof(sf_rx_entry));
        if (sf_rx_cache == NULL) {
            return NULL;
        }
    }

    h = 0x811c9dc5 ^ (uint32_t) icase;
    for (i = 0; i < len; i++) {
        h = (h ^ (unsigned char) pattern[i]) * 0x01000193;
    }

    set = (h * SF_RX_CACHE_WAYS) & (SF_RX_CACHE_SIZE - 1);

    for (i = 0; i < SF_RX_CACHE_WAYS; i++) {
        e = &sf_rx_cache[set + i];
        if (e->state != 0 && e->hash == h && e->icase == icase
            && e->len == len && memcmp(e->pattern, pattern, len) == 0)
        {
            return e;
        }
    }

    for (i = 0; i < SF_RX_CACHE_WAYS; i++) {
        e = &sf_rx_cache[set + i];
        if (e->state == 0) {
            break;
        }
    }
    if (i == SF_RX_CACHE_WAYS) {
        e = &sf_rx_cache[set + (sf_rx_clock++ % SF_RX_CACHE_WAYS)];
        sf_rx_entry_clear(e);
    }

    sf_rx_entry_fill(e, h, pattern, len, icase);
    if (e->state == 0) {
        return NULL;
    }

    return e;
}


/*
 * The subject as JavaScript sees it: characters above U+FFFF become two
 * code units, each written as a 3-byte sequence (CESU-8), the form the
 * translated patterns expect.  Returns the length, or 0 with *d NULL when
 * out of memory.
 */
static size_t
sf_rx_cesu8(const char *s, size_t n, char *small, size_t small_len,
    char **d)
{
    size_t          i, o, cap;
    uint32_t        cp, u;
    unsigned char  *q;
    const unsigned char  *p = (const unsigned char *) s;

    cap = n + n / 2 + 1;
    *d = cap <= small_len ? small : malloc(cap);
    if (*d == NULL) {
        return 0;
    }
    q = (unsigned char *) *d;

    o = 0;
    for (i = 0; i < n; ) {
        if (p[i] >= 0xF0 && p[i] < 0xF5 && n - i >= 4
            && (p[i + 1] & 0xC0) == 0x80 && (p[i + 2] & 0xC0) == 0x80
            && (p[i + 3] & 0xC0) == 0x80)
        {
            cp = ((uint32_t) (p[i] & 0x07) << 18)
                 | ((uint32_t) (p[i + 1] & 0x3F) << 12)
                 | ((uint32_t) (p[i + 2] & 0x3F) << 6) | (p[i + 3] & 0x3F);
            if (cp >= 0x10000) {
                u = 0xD800 + ((cp - 0x10000) >> 10);
                q[o++] = 0xED;
                q[o++] = (unsigned char) (0x80 | ((u >> 6) & 0x3F));
                q[o++] = (unsigned char) (0x80 | (u & 0x3F));
                u = 0xDC00 + ((cp - 0x10000) & 0x3FF);
                q[o++] = 0xED;
                q[o++] = (unsigned char) (0x80 | ((u >> 6) & 0x3F));
                q[o++] = (unsigned char) (0x80 | (u & 0x3F));
                i += 4;
                continue;
            }
        }
        q[o++] = p[i++];
    }
    q[o] = '\0';

    return o;
}


int
sf_js_regex_test(const char *pattern, size_t len, int icase,
    const char *subject, size_t subject_len)
{
    int           rc, astral;
    char          small[256], *copy;
    size_t        i, n;
    locale_t      old;
    regmatch_t    m[1];
    sf_rx_entry  *e;

    pthread_once(&sf_rx_once, sf_rx_locales_init);

    e = sf_rx_lookup(pattern, len, icase ? 1 : 0);
    if (e == NULL || e->state != 1) {
        return 0;
    }

    astral = 0;
    for (i = 0; i < subject_len; i++) {
        if ((unsigned char) subject[i] >= 0xF0) {
            astral = 1;
            break;
        }
    }

    copy = NULL;
    n = subject_len;

#ifdef REG_STARTEND
    if (astral) {
#else
    {
#endif
        n = sf_rx_cesu8(subject, subject_len, small, sizeof(small), &copy);
        if (copy == NULL) {
            return 0;
        }
        subject = copy;
    }

    old = uselocale(sf_rx_c_locale ? sf_rx_c_locale : LC_GLOBAL_LOCALE);

#ifdef REG_STARTEND
    m[0].rm_so = 0;
    m[0].rm_eo = (regoff_t) n;
    rc = regexec(&e->re, subject, 1, m, REG_STARTEND);
#else
    rc = regexec(&e->re, subject, 1, m, 0);
#endif

    uselocale(old);

    if (copy != NULL && copy != small) {
        free(copy);
    }

    return rc == 0;
}
