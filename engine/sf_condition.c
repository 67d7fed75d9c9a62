/*
 * GrowthBook targeting conditions: compiled once when an experiment is
 * written, evaluated per request without parsing JSON.
 *
 * The semantics are those of GrowthBook's JavaScript SDK (evalCondition in
 * mongrule.ts), including JavaScript's loose comparisons, String() and
 * Number() conversions and JSON.stringify equality.
 *
 * Compiled form (position independent, read with memcpy: records live in
 * an LMDB map at any alignment):
 *
 *   "SFC1" node
 *   node     = op:u8 aux:u8 size:u32 payload      size counts the header
 *   ALL      = children (field, OR, NOR, AND, NOT)  one condition object
 *   OR/NOR/AND = children (ALL)                   NOT = one ALL child
 *   FIELD    = len:u32 path value-node
 *   V_STR    = len:u32 text (aux 1: compare lower-cased)
 *   V_NUM    = f64         V_BOOL (aux)   V_NULL   V_DEEP = json
 *   V_OPS    = children (operator nodes, all must hold)
 *   operators: EQ/NE/LT.. = json primitive, V* = len:u32 padded version,
 *   IN = n:u32 json primitives, IN_GROUP/REGEX = len:u32 text,
 *   NOT/SIZE/ELEM/ALL = children, EXISTS/TYPE (aux), FALSE
 *   json     = tag:u8 then f64 | len:u32 bytes | n:u32 size:u32 items,
 *              object members as len:u32 name json, in JavaScript order
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "storefront.h"


#define SFC_MAGIC        "SFC1"
#define SFC_MAGIC_LEN    4
#define SFC_HDR          6
#define SFC_MAX_DEPTH    32      /* nesting of conditions and values */
#define SFC_JOIN_DEPTH   32      /* nested arrays turned into strings */

enum {
    /* on an object: evalCondition */
    SFC_ALL = 1,
    SFC_OR,
    SFC_NOR,
    SFC_AND,
    SFC_NOT,
    SFC_FIELD,

    /* on a value: evalConditionValue */
    SFC_V_STR,
    SFC_V_NUM,
    SFC_V_BOOL,
    SFC_V_NULL,
    SFC_V_DEEP,
    SFC_V_OPS,

    /* operators: evalOperatorCondition */
    SFC_O_EQ,
    SFC_O_NE,
    SFC_O_LT,
    SFC_O_LTE,
    SFC_O_GT,
    SFC_O_GTE,
    SFC_O_VEQ,
    SFC_O_VNE,
    SFC_O_VGT,
    SFC_O_VGTE,
    SFC_O_VLT,
    SFC_O_VLTE,
    SFC_O_EXISTS,
    SFC_O_IN,            /* aux: SFC_IN_* bits */
    SFC_O_IN_GROUP,      /* aux 1: $notInGroup */
    SFC_O_NOT,
    SFC_O_SIZE,
    SFC_O_ELEM,          /* aux 0: operator object, 1: condition */
    SFC_O_ALL,
    SFC_O_REGEX,         /* aux 1: $regexi */
    SFC_O_TYPE,
    SFC_O_FALSE
};

#define SFC_IN_FOLD     1
#define SFC_IN_NEGATE   2

/* json tags */
enum {
    SFC_J_NULL = 0,
    SFC_J_FALSE,
    SFC_J_TRUE,
    SFC_J_NUM,
    SFC_J_STR,
    SFC_J_ARR,
    SFC_J_OBJ
};

/* $type names, in getType's words */
enum {
    SFC_T_NONE = 0,
    SFC_T_STRING,
    SFC_T_NUMBER,
    SFC_T_BOOLEAN,
    SFC_T_OBJECT,
    SFC_T_ARRAY,
    SFC_T_NULL
};


typedef const unsigned char  uchar_t;

static const sf_value  sfc_null = { SF_NULL, { 0 } };

static pthread_once_t  sfc_once = PTHREAD_ONCE_INIT;
static locale_t        sfc_c_locale;


static void
sfc_locale_init(void)
{
    sfc_c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t) 0);
}


/* ---- byte helpers -------------------------------------------------------- */

static uint32_t
sfc_rd32(uchar_t *p)
{
    uint32_t  v;

    memcpy(&v, p, 4);
    return v;
}


static double
sfc_rdf64(uchar_t *p)
{
    double  v;

    memcpy(&v, p, 8);
    return v;
}


/* A node at p within [p, end): 0 when malformed. */
static int
sfc_node(uchar_t *p, uchar_t *end, int *op, int *aux, uchar_t **body,
    uchar_t **next)
{
    uint32_t  size;

    if (end - p < SFC_HDR) {
        return 0;
    }

    size = sfc_rd32(p + 2);
    if (size < SFC_HDR || size > (size_t) (end - p)) {
        return 0;
    }

    *op = p[0];
    *aux = p[1];
    *body = p + SFC_HDR;
    *next = p + size;
    return 1;
}


/* A length-prefixed string at *p within end: 0 when malformed. */
static int
sfc_text(uchar_t **p, uchar_t *end, const char **s, size_t *len)
{
    uint32_t  n;

    if (end - *p < 4) {
        return 0;
    }
    n = sfc_rd32(*p);
    if (n > (size_t) (end - *p) - 4) {
        return 0;
    }

    *s = (const char *) *p + 4;
    *len = n;
    *p += 4 + n;
    return 1;
}


/* ---- scratch strings: stack first, heap when long ----------------------- */

typedef struct {
    char    *d;
    size_t   n;
    size_t   cap;
    int      oom;
    char     buf[192];
} sfc_str;


static void
sfc_str_init(sfc_str *s)
{
    s->d = s->buf;
    s->n = 0;
    s->cap = sizeof(s->buf);
    s->oom = 0;
}


static void
sfc_str_free(sfc_str *s)
{
    if (s->d != s->buf) {
        free(s->d);
    }
    sfc_str_init(s);
}


static void
sfc_str_add(sfc_str *s, const char *p, size_t n)
{
    size_t   cap;
    char    *d;

    if (s->oom) {
        return;
    }

    if (s->n + n > s->cap) {
        cap = s->cap * 2;
        while (cap < s->n + n) {
            cap *= 2;
        }
        if (s->d == s->buf) {
            d = malloc(cap);
            if (d != NULL) {
                memcpy(d, s->buf, s->n);
            }
        } else {
            d = realloc(s->d, cap);
        }
        if (d == NULL) {
            s->oom = 1;
            return;
        }
        s->d = d;
        s->cap = cap;
    }

    if (p != NULL) {
        memcpy(s->d + s->n, p, n);
    }
    s->n += n;
}


/* ---- JavaScript conversions --------------------------------------------- */

/* String(x) for a number; out has room for 32 bytes. */
static size_t
sfc_number_text(double x, char *out)
{
    char                 tmp[24];
    size_t               n, k;
    sf_buf               b;
    unsigned long long   u;

    if (x == floor(x) && fabs(x) < 9007199254740992.0) {
        /* integers: the common case, written by hand (-0 is "0") */
        u = (unsigned long long) fabs(x);
        k = sizeof(tmp);
        do {
            tmp[--k] = (char) ('0' + u % 10);
            u /= 10;
        } while (u);
        n = 0;
        if (x < 0) {
            out[n++] = '-';
        }
        memcpy(out + n, tmp + k, sizeof(tmp) - k);
        return n + sizeof(tmp) - k;
    }

    /* fractions, huge values, NaN: rare, the shared formatter */
    sf_buf_init(&b);
    if (sf_buf_append_js_number(&b, x) != SF_OK || b.len >= 32) {
        sf_buf_free(&b);
        memcpy(out, "NaN", 3);
        return 3;
    }
    memcpy(out, b.data, b.len);
    n = b.len;
    sf_buf_free(&b);
    return n;
}


static void sfc_join(const sf_value *v, sfc_str *s, int depth);


/* Appends String(v) (arrays joined with ","). */
static void
sfc_add_string(const sf_value *v, sfc_str *s, int depth)
{
    char    num[32];
    size_t  n;

    switch (v->type) {
    case SF_NULL:
        sfc_str_add(s, "null", 4);
        break;
    case SF_BOOL:
        if (v->u.boolean) {
            sfc_str_add(s, "true", 4);
        } else {
            sfc_str_add(s, "false", 5);
        }
        break;
    case SF_NUMBER:
        n = sfc_number_text(v->u.number, num);
        sfc_str_add(s, num, n);
        break;
    case SF_STRING:
        sfc_str_add(s, v->u.str.p, v->u.str.len);
        break;
    case SF_ARRAY:
        sfc_join(v, s, depth + 1);
        break;
    case SF_OBJECT:
        sfc_str_add(s, "[object Object]", 15);
        break;
    }
}


/* Array.prototype.join: null elements are empty. */
static void
sfc_join(const sf_value *v, sfc_str *s, int depth)
{
    size_t  i;

    if (depth > SFC_JOIN_DEPTH) {
        return;
    }

    for (i = 0; i < v->u.arr.n; i++) {
        if (i > 0) {
            sfc_str_add(s, ",", 1);
        }
        if (v->u.arr.items[i].type != SF_NULL) {
            sfc_add_string(&v->u.arr.items[i], s, depth);
        }
    }
}


/*
 * String(v): strings as they are (no copy), anything else written into s.
 * Returns 0 when out of memory.
 */
static int
sfc_to_string(const sf_value *v, sfc_str *s, const char **p, size_t *len)
{
    if (v->type == SF_STRING) {
        *p = v->u.str.p;
        *len = v->u.str.len;
        return 1;
    }

    sfc_add_string(v, s, 0);
    *p = s->d;
    *len = s->n;
    return !s->oom;
}


static int
sfc_js_space(uint32_t c)
{
    return c == 0x09 || c == 0x0A || c == 0x0B || c == 0x0C || c == 0x0D
           || c == 0x20 || c == 0xA0 || c == 0x1680
           || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029
           || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}


/* One code point of UTF-8 at p (n > 0 bytes); *used set.  Bytes that are
 * not UTF-8 come back as 0x110000 + byte. */
static uint32_t
sfc_utf8(uchar_t *p, size_t n, size_t *used)
{
    unsigned  c, k, i;
    uint32_t  cp;

    c = p[0];
    if (c < 0x80) {
        *used = 1;
        return c;
    }

    if (c >= 0xC2 && c < 0xE0) {
        k = 1;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c < 0xF0) {
        k = 2;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c < 0xF5) {
        k = 3;
        cp = c & 0x07;
    } else {
        *used = 1;
        return 0x110000 + c;
    }

    if (n <= k) {
        *used = 1;
        return 0x110000 + c;
    }
    for (i = 1; i <= k; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *used = 1;
            return 0x110000 + c;
        }
        cp = (cp << 6) | (p[i] & 0x3F);
    }

    *used = k + 1;
    return cp;
}


static size_t
sfc_utf8_put(uint32_t cp, char *b)
{
    if (cp >= 0x110000) {
        b[0] = (char) (cp - 0x110000);
        return 1;
    }
    if (cp < 0x80) {
        b[0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (char) (0xC0 | (cp >> 6));
        b[1] = (char) (0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (char) (0xE0 | (cp >> 12));
        b[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char) (0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (char) (0xF0 | (cp >> 18));
    b[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
    b[3] = (char) (0x80 | (cp & 0x3F));
    return 4;
}


/* toLowerCase of one code point as UTF-8 into b (room for 8). */
static size_t
sfc_lower_cp(uint32_t cp, char *b)
{
    size_t  n;

    if (cp < 0x80) {
        b[0] = (char) ((cp >= 'A' && cp <= 'Z') ? cp + 32 : cp);
        return 1;
    }
    if (cp == 0x130) {
        /* the one unconditional multi-character lower case mapping */
        n = sfc_utf8_put('i', b);
        return n + sfc_utf8_put(0x307, b + n);
    }
    if (cp >= 0x110000) {
        return sfc_utf8_put(cp, b);
    }

    return sfc_utf8_put(sf_js_case_lower(cp), b);
}


/* Appends s.toLowerCase() to b (compile time). */
static int
sfc_lower_append(sf_buf *b, const char *s, size_t len)
{
    char      t[8];
    size_t    i, used;
    uint32_t  cp;

    for (i = 0; i < len; i += used) {
        cp = sfc_utf8((uchar_t *) s + i, len - i, &used);
        if (sf_buf_append(b, t, sfc_lower_cp(cp, t)) != SF_OK) {
            return SF_ERR_NOMEM;
        }
    }

    return SF_OK;
}


/* a.toLowerCase() === lower, lower already lower-cased. */
static int
sfc_lower_eq(const char *a, size_t alen, const char *lower, size_t llen)
{
    char      t[8];
    size_t    i, o, used, n;
    uint32_t  cp;

    o = 0;
    for (i = 0; i < alen; i += used) {
        if ((unsigned char) a[i] < 0x80) {
            used = 1;
            t[0] = a[i];
            if (t[0] >= 'A' && t[0] <= 'Z') {
                t[0] += 32;
            }
            n = 1;
        } else {
            cp = sfc_utf8((uchar_t *) a + i, alen - i, &used);
            n = sfc_lower_cp(cp, t);
        }
        if (n > llen - o || memcmp(lower + o, t, n) != 0) {
            return 0;
        }
        o += n;
    }

    return o == llen;
}


/*
 * Comparison of two strings as JavaScript compares them: by UTF-16 code
 * units, which differs from code point order for characters above U+FFFF
 * against U+E000..U+FFFF.
 */
static int
sfc_utf16_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t    i, n, ua, ub;
    uint32_t  ca, cb;

    n = alen < blen ? alen : blen;
    for (i = 0; i < n && a[i] == b[i]; i++) {
        /* common prefix */
    }

    if (i == n) {
        return (alen > blen) - (alen < blen);
    }

    /* back to the start of the differing character */
    while (i > 0 && ((unsigned char) a[i] & 0xC0) == 0x80) {
        i--;
    }

    ca = sfc_utf8((uchar_t *) a + i, alen - i, &ua);
    cb = sfc_utf8((uchar_t *) b + i, blen - i, &ub);

    if ((ca >= 0x10000) != (cb >= 0x10000) && ca < 0x110000
        && cb < 0x110000)
    {
        /* one is a surrogate pair: compare its high surrogate */
        if (ca >= 0x10000) {
            ca = 0xD800 + ((ca - 0x10000) >> 10);
        } else {
            cb = 0xD800 + ((cb - 0x10000) >> 10);
        }
    }

    return (ca > cb) - (ca < cb);
}


/* StringToNumber: NaN for anything that is not a numeric literal. */
static double
sfc_string_number(const char *s, size_t len)
{
    char                   small[64], *copy, *end;
    size_t                 i, j, used, k;
    double                 v, sign;
    int                    base, d, digits, neg;
    uchar_t               *p = (uchar_t *) s;

    /* trim JavaScript white space and line terminators */
    i = 0;
    while (i < len && sfc_js_space(sfc_utf8(p + i, len - i, &used))) {
        i += used;
    }
    j = len;
    while (j > i) {
        k = j - 1;
        while (k > i && (p[k] & 0xC0) == 0x80) {
            k--;
        }
        if (!sfc_js_space(sfc_utf8(p + k, j - k, &used))) {
            break;
        }
        j = k;
    }

    if (i == j) {
        return 0;
    }

    s += i;
    len = j - i;

    if (len > 2 && s[0] == '0') {
        base = (s[1] | 0x20) == 'x' ? 16 : (s[1] | 0x20) == 'o' ? 8
               : (s[1] | 0x20) == 'b' ? 2 : 0;
        if (base) {
            v = 0;
            for (k = 2; k < len; k++) {
                d = (s[k] >= '0' && s[k] <= '9') ? s[k] - '0'
                    : ((s[k] | 0x20) >= 'a' && (s[k] | 0x20) <= 'f')
                      ? (s[k] | 0x20) - 'a' + 10 : 99;
                if (d >= base) {
                    return NAN;
                }
                v = v * base + d;
            }
            return v;
        }
    }

    neg = 0;
    k = 0;
    if (s[0] == '+' || s[0] == '-') {
        neg = (s[0] == '-');
        k = 1;
    }
    sign = neg ? -1.0 : 1.0;

    if (len - k == 8 && memcmp(s + k, "Infinity", 8) == 0) {
        return sign * INFINITY;
    }

    /* StrDecimalLiteral: digits [. digits] [e [+-] digits] */
    digits = 0;
    while (k < len && s[k] >= '0' && s[k] <= '9') {
        k++;
        digits++;
    }
    if (k < len && s[k] == '.') {
        k++;
        while (k < len && s[k] >= '0' && s[k] <= '9') {
            k++;
            digits++;
        }
    }
    if (digits == 0) {
        return NAN;
    }
    if (k < len && (s[k] | 0x20) == 'e') {
        k++;
        if (k < len && (s[k] == '+' || s[k] == '-')) {
            k++;
        }
        if (k >= len || s[k] < '0' || s[k] > '9') {
            return NAN;
        }
        while (k < len && s[k] >= '0' && s[k] <= '9') {
            k++;
        }
    }
    if (k != len) {
        return NAN;
    }

    copy = len < sizeof(small) ? small : malloc(len + 1);
    if (copy == NULL) {
        return NAN;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';

    /* strtod in the "C" locale: the decimal point is '.' */
    pthread_once(&sfc_once, sfc_locale_init);
    if (sfc_c_locale != (locale_t) 0) {
        v = strtod_l(copy, &end, sfc_c_locale);
    } else {
        v = strtod(copy, &end);
    }

    if (copy != small) {
        free(copy);
    }

    return v;
}


/* Number(v) */
static double
sfc_to_number(const sf_value *v)
{
    double       x;
    sfc_str      s;
    const char  *p;
    size_t       n;

    switch (v->type) {
    case SF_NULL:
        return 0;
    case SF_BOOL:
        return v->u.boolean ? 1 : 0;
    case SF_NUMBER:
        return v->u.number;
    case SF_STRING:
        return sfc_string_number(v->u.str.p, v->u.str.len);
    case SF_ARRAY:
        /* ToPrimitive of an array is its join */
        sfc_str_init(&s);
        x = sfc_to_string(v, &s, &p, &n) ? sfc_string_number(p, n) : NAN;
        sfc_str_free(&s);
        return x;
    default:
        return NAN;
    }
}


static int
sfc_truthy(const sf_value *v)
{
    switch (v->type) {
    case SF_NULL:
        return 0;
    case SF_BOOL:
        return v->u.boolean;
    case SF_NUMBER:
        return v->u.number != 0 && !isnan(v->u.number);
    case SF_STRING:
        return v->u.str.len != 0;
    default:
        return 1;
    }
}


/* ---- primitives stored in compiled conditions --------------------------- */

typedef struct {
    sf_type      type;       /* SF_NULL, SF_BOOL, SF_NUMBER or SF_STRING */
    int          boolean;
    double       number;
    const char  *s;
    size_t       len;
} sfc_prim;


/* Reads a json primitive at *p; 0 when malformed or not a primitive. */
static int
sfc_read_prim(uchar_t **p, uchar_t *end, sfc_prim *e)
{
    if (*p >= end) {
        return 0;
    }

    switch (*(*p)++) {
    case SFC_J_NULL:
        e->type = SF_NULL;
        return 1;
    case SFC_J_FALSE:
    case SFC_J_TRUE:
        e->type = SF_BOOL;
        e->boolean = ((*p)[-1] == SFC_J_TRUE);
        return 1;
    case SFC_J_NUM:
        if (end - *p < 8) {
            return 0;
        }
        e->type = SF_NUMBER;
        e->number = sfc_rdf64(*p);
        *p += 8;
        return 1;
    case SFC_J_STR:
        e->type = SF_STRING;
        return sfc_text(p, end, &e->s, &e->len);
    default:
        return 0;
    }
}


/* ToPrimitive(v): arrays and objects become strings (in s). */
static int
sfc_to_prim(const sf_value *v, sfc_str *s, sfc_prim *out)
{
    out->type = v->type;
    switch (v->type) {
    case SF_NULL:
        return 1;
    case SF_BOOL:
        out->boolean = v->u.boolean;
        return 1;
    case SF_NUMBER:
        out->number = v->u.number;
        return 1;
    default:
        out->type = SF_STRING;
        return sfc_to_string(v, s, &out->s, &out->len);
    }
}


static double
sfc_prim_number(const sfc_prim *a)
{
    switch (a->type) {
    case SF_NULL:
        return 0;
    case SF_BOOL:
        return a->boolean;
    case SF_NUMBER:
        return a->number;
    default:
        return sfc_string_number(a->s, a->len);
    }
}


/* The abstract relational comparison: -1, 0, 1, or 2 for undefined
 * (a NaN operand: every one of < <= > >= is false). */
static int
sfc_compare(const sfc_prim *a, const sfc_prim *b)
{
    double  x, y;

    if (a->type == SF_STRING && b->type == SF_STRING) {
        return sfc_utf16_cmp(a->s, a->len, b->s, b->len);
    }

    x = sfc_prim_number(a);
    y = sfc_prim_number(b);
    if (isnan(x) || isnan(y)) {
        return 2;
    }

    return (x > y) - (x < y);
}


/* v === e (objects and arrays are never equal to a primitive) */
static int
sfc_strict_eq(const sf_value *v, const sfc_prim *e)
{
    if (v->type != e->type) {
        return 0;
    }

    switch (v->type) {
    case SF_NULL:
        return 1;
    case SF_BOOL:
        return !v->u.boolean == !e->boolean;
    case SF_NUMBER:
        return v->u.number == e->number;
    case SF_STRING:
        return v->u.str.len == e->len
               && memcmp(v->u.str.p, e->s, e->len) == 0;
    default:
        return 0;
    }
}


/* ---- paddedVersionString ------------------------------------------------- */

/*
 * Removes a leading "v" and "+build", splits on '-' and '.', adds "~" to a
 * plain x.y.z, left-pads numeric parts with spaces to 5 and joins with '-'.
 * The build suffix is cut at the first '+' not followed by a line
 * terminator (JavaScript's /\+.*$/).
 */
static void
sfc_pad_version(const char *s, size_t len, sfc_str *out)
{
    char    *d;
    size_t   i, start, end, part, parts, k, n;
    int      numeric;

    if (len == 0) {
        s = "0";
        len = 1;
    }

    start = (s[0] == 'v') ? 1 : 0;

    k = start;
    for (i = start; i < len; i++) {
        if (s[i] == '\n' || s[i] == '\r') {
            k = i + 1;
        } else if (len - i >= 3 && (unsigned char) s[i] == 0xE2
                   && (unsigned char) s[i + 1] == 0x80
                   && ((unsigned char) s[i + 2] == 0xA8
                       || (unsigned char) s[i + 2] == 0xA9))
        {
            k = i + 3;
        }
    }
    end = len;
    for (i = k; i < len; i++) {
        if (s[i] == '+') {
            end = i;
            break;
        }
    }

    parts = 1;
    for (i = start; i < end; i++) {
        parts += (s[i] == '-' || s[i] == '.');
    }

    /* room for the text, 4 pad spaces a part, and "-~" */
    sfc_str_add(out, NULL, end - start + 4 * parts + 2);
    if (out->oom) {
        return;
    }
    out->n -= end - start + 4 * parts + 2;
    d = out->d + out->n;

    part = start;
    for (i = start; i <= end; i++) {
        if (i < end && s[i] != '-' && s[i] != '.') {
            continue;
        }

        /* the part is s[part, i) */
        n = i - part;
        numeric = (n > 0);
        for (k = part; k < i; k++) {
            if (s[k] < '0' || s[k] > '9') {
                numeric = 0;
                break;
            }
        }
        if (part > start) {
            *d++ = '-';
        }
        for (k = n; numeric && k < 5; k++) {
            *d++ = ' ';
        }
        memcpy(d, s + part, n);
        d += n;
        part = i + 1;
    }

    if (parts == 3) {
        *d++ = '-';
        *d++ = '~';
    }

    out->n = (size_t) (d - out->d);
}


/* paddedVersionString(v) into out. */
static int
sfc_version_of(const sf_value *v, sfc_str *out)
{
    char    num[32];
    size_t  n;

    if (v->type == SF_NUMBER) {
        n = sfc_number_text(v->u.number, num);
        sfc_pad_version(num, n, out);
    } else if (v->type == SF_STRING) {
        sfc_pad_version(v->u.str.p, v->u.str.len, out);
    } else {
        sfc_pad_version("0", 1, out);
    }

    return !out->oom;
}


/* ---- attribute lookup ---------------------------------------------------- */

/* The member named so; the last one wins, as in JSON.parse. */
static const sf_value *
sfc_member(const sf_value *obj, const char *name, size_t len)
{
    size_t            i;
    const sf_member  *m;

    for (i = obj->u.obj.n; i > 0; i--) {
        m = &obj->u.obj.members[i - 1];
        if (m->name_len == len
            && (len == 0 || (m->name[0] == name[0]
                             && memcmp(m->name, name, len) == 0)))
        {
            return &m->value;
        }
    }

    return NULL;
}


/* A canonical array index ("0", "17", not "017"), or -1. */
static long long
sfc_array_index(const char *s, size_t len)
{
    size_t     i;
    long long  v;

    if (len == 0 || len > 10 || (s[0] == '0' && len > 1)) {
        return -1;
    }

    v = 0;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }

    return v < 4294967295LL ? v : -1;
}


/*
 * getPath: each part must name an own property of an object or array
 * (arrays have indexes and "length"); NULL (JavaScript null) otherwise.
 * tmp holds an array's length.
 */
static const sf_value *
sfc_path(const sf_value *obj, const char *path, size_t len, sf_value *tmp)
{
    const char  *p, *end, *dot;
    size_t       n;
    long long    idx;

    if (obj == NULL) {
        return NULL;
    }

    p = path;
    end = path + len;

    for ( ;; ) {
        dot = memchr(p, '.', (size_t) (end - p));
        n = (size_t) ((dot ? dot : end) - p);

        if (obj->type == SF_OBJECT) {
            obj = sfc_member(obj, p, n);

        } else if (obj->type == SF_ARRAY) {
            idx = sfc_array_index(p, n);
            if (idx >= 0) {
                obj = (size_t) idx < obj->u.arr.n ? &obj->u.arr.items[idx]
                                                  : NULL;
            } else if (n == 6 && memcmp(p, "length", 6) == 0) {
                tmp->type = SF_NUMBER;
                tmp->u.number = (double) obj->u.arr.n;
                obj = tmp;
            } else {
                obj = NULL;
            }

        } else {
            obj = NULL;
        }

        if (obj == NULL || dot == NULL) {
            return obj;
        }
        p = dot + 1;
    }
}


/* ---- JSON.stringify equality -------------------------------------------- */

static size_t
sfc_first_index(const sf_value *obj, const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < obj->u.obj.n; i++) {
        if (obj->u.obj.members[i].name_len == len
            && memcmp(obj->u.obj.members[i].name, name, len) == 0)
        {
            return i;
        }
    }

    return i;
}


/* Size in bytes of the json value at p, 0 when malformed. */
static size_t
sfc_json_size(uchar_t *p, uchar_t *end)
{
    size_t  n;

    if (p >= end) {
        return 0;
    }

    switch (*p) {
    case SFC_J_NULL:
    case SFC_J_FALSE:
    case SFC_J_TRUE:
        n = 1;
        break;
    case SFC_J_NUM:
        n = 9;
        break;
    case SFC_J_STR:
        n = (end - p < 5) ? 0 : 5 + (size_t) sfc_rd32(p + 1);
        break;
    case SFC_J_ARR:
    case SFC_J_OBJ:
        n = (end - p < 9) ? 0 : 9 + (size_t) sfc_rd32(p + 5);
        break;
    default:
        return 0;
    }

    return n <= (size_t) (end - p) ? n : 0;
}


/* JSON.stringify(v) === JSON.stringify(json at p). */
static int
sfc_deep_eq(uchar_t *p, uchar_t *end, const sf_value *v)
{
    size_t           i, j, n, count, first, last_first, nlen, sz;
    const char      *name;
    const sf_value  *m;
    sfc_prim         e;
    uchar_t         *q;

    if ((sz = sfc_json_size(p, end)) == 0) {
        return 0;
    }
    end = p + sz;

    switch (*p) {

    case SFC_J_ARR:
        if (v->type != SF_ARRAY) {
            return 0;
        }
        n = sfc_rd32(p + 1);
        if (n != v->u.arr.n) {
            return 0;
        }
        q = p + 9;
        for (i = 0; i < n; i++) {
            sz = sfc_json_size(q, end);
            if (sz == 0 || !sfc_deep_eq(q, end, &v->u.arr.items[i])) {
                return 0;
            }
            q += sz;
        }
        return 1;

    case SFC_J_OBJ:
        if (v->type != SF_OBJECT) {
            return 0;
        }
        n = sfc_rd32(p + 1);

        /* same number of distinct keys */
        count = 0;
        for (i = 0; i < v->u.obj.n; i++) {
            if (sfc_first_index(v, v->u.obj.members[i].name,
                                v->u.obj.members[i].name_len) == i)
            {
                count++;
            }
        }
        if (count != n) {
            return 0;
        }

        /* same keys, values, and order of the non-index keys */
        q = p + 9;
        last_first = 0;
        j = 0;
        for (i = 0; i < n; i++) {
            if (!sfc_text(&q, end, &name, &nlen)) {
                return 0;
            }
            m = sfc_member(v, name, nlen);
            if (m == NULL) {
                return 0;
            }
            if (sfc_array_index(name, nlen) < 0) {
                first = sfc_first_index(v, name, nlen);
                if (j++ > 0 && first <= last_first) {
                    return 0;
                }
                last_first = first;
            }
            sz = sfc_json_size(q, end);
            if (sz == 0 || !sfc_deep_eq(q, end, m)) {
                return 0;
            }
            q += sz;
        }
        return 1;

    default:
        q = p;
        if (!sfc_read_prim(&q, end, &e)) {
            return 0;
        }
        return sfc_strict_eq(v, &e);
    }
}


/* ---- evaluation ---------------------------------------------------------- */

typedef struct {
    const sf_value  *groups;
} sfc_ctx;


static int sfc_eval_cond(sfc_ctx *c, uchar_t *p, uchar_t *end,
    const sf_value *obj);
static int sfc_eval_value(sfc_ctx *c, uchar_t *p, uchar_t *end,
    const sf_value *v);


/* isIn(actual, expected) for expected as stored json primitives. */
static int
sfc_in_one(const sf_value *x, uchar_t *p, uchar_t *end, uint32_t n,
    int fold)
{
    uint32_t  i;
    sfc_prim  e;

    for (i = 0; i < n; i++) {
        if (!sfc_read_prim(&p, end, &e)) {
            return 0;
        }
        if (fold && x->type == SF_STRING && e.type == SF_STRING) {
            if (sfc_lower_eq(x->u.str.p, x->u.str.len, e.s, e.len)) {
                return 1;
            }
        } else if (sfc_strict_eq(x, &e)) {
            return 1;
        }
    }

    return 0;
}


static int
sfc_in(const sf_value *actual, uchar_t *p, uchar_t *end, int fold)
{
    size_t    i;
    uint32_t  n;

    if (end - p < 4) {
        return 0;
    }
    n = sfc_rd32(p);
    p += 4;

    if (actual->type == SF_ARRAY) {
        for (i = 0; i < actual->u.arr.n; i++) {
            if (sfc_in_one(&actual->u.arr.items[i], p, end, n, fold)) {
                return 1;
            }
        }
        return 0;
    }

    return sfc_in_one(actual, p, end, n, fold);
}


/* x in a saved group's array (includes: strict equality). */
static int
sfc_in_values(const sf_value *x, const sf_value *arr)
{
    size_t    i;
    sfc_prim  e;

    if (x->type == SF_ARRAY || x->type == SF_OBJECT) {
        return 0;
    }

    for (i = 0; i < arr->u.arr.n; i++) {
        if (sfc_to_prim(x, NULL, &e) && sfc_strict_eq(&arr->u.arr.items[i], &e))
        {
            return 1;
        }
    }

    return 0;
}


/* String.prototype.includes(String(x)) */
static int
sfc_str_includes(const sf_value *hay, const sf_value *x)
{
    int          r;
    sfc_str      s;
    const char  *p, *h;
    size_t       n, hn, i;

    sfc_str_init(&s);
    r = 0;
    if (sfc_to_string(x, &s, &p, &n)) {
        h = hay->u.str.p;
        hn = hay->u.str.len;
        if (n == 0) {
            r = 1;
        }
        for (i = 0; !r && n <= hn && i <= hn - n; i++) {
            r = (memcmp(h + i, p, n) == 0);
        }
    }
    sfc_str_free(&s);
    return r;
}


/*
 * $inGroup: isIn(actual, savedGroups[key] || []).  A string group value
 * behaves as JavaScript's String.prototype.includes; any other truthy
 * non-array value throws in the SDK: -1 here.
 */
static int
sfc_in_group(sfc_ctx *c, const sf_value *actual, const char *key,
    size_t len)
{
    size_t           i;
    const sf_value  *g;

    g = (c->groups && c->groups->type == SF_OBJECT)
        ? sfc_member(c->groups, key, len) : NULL;

    if (g == NULL || !sfc_truthy(g)) {
        return 0;
    }

    if (g->type == SF_ARRAY) {
        if (actual->type == SF_ARRAY) {
            for (i = 0; i < actual->u.arr.n; i++) {
                if (sfc_in_values(&actual->u.arr.items[i], g)) {
                    return 1;
                }
            }
            return 0;
        }
        return sfc_in_values(actual, g);
    }

    if (g->type == SF_STRING) {
        if (actual->type == SF_ARRAY) {
            for (i = 0; i < actual->u.arr.n; i++) {
                if (sfc_str_includes(g, &actual->u.arr.items[i])) {
                    return 1;
                }
            }
            return 0;
        }
        return sfc_str_includes(g, actual);
    }

    return -1;
}


static int
sfc_type_of(const sf_value *v)
{
    switch (v->type) {
    case SF_NULL:
        return SFC_T_NULL;
    case SF_BOOL:
        return SFC_T_BOOLEAN;
    case SF_NUMBER:
        return SFC_T_NUMBER;
    case SF_STRING:
        return SFC_T_STRING;
    case SF_ARRAY:
        return SFC_T_ARRAY;
    default:
        return SFC_T_OBJECT;
    }
}


/* One operator node against the attribute value. */
static int
sfc_eval_op(sfc_ctx *c, int op, int aux, uchar_t *p, uchar_t *end,
    const sf_value *actual)
{
    int           r, cmp;
    size_t        i, n;
    sf_value      len;
    sfc_str       s;
    sfc_prim      a, e;
    const char   *t;
    uchar_t      *q, *body, *next;
    int           cop, caux;

    switch (op) {

    case SFC_O_EQ:
    case SFC_O_NE:
        if (aux) {
            /* an array or object is never === to an attribute */
            return op == SFC_O_NE;
        }
        if (!sfc_read_prim(&p, end, &e)) {
            return 0;
        }
        return sfc_strict_eq(actual, &e) == (op == SFC_O_EQ);

    case SFC_O_LT:
    case SFC_O_LTE:
    case SFC_O_GT:
    case SFC_O_GTE:
        if (!sfc_read_prim(&p, end, &e)) {
            return 0;
        }
        sfc_str_init(&s);
        cmp = sfc_to_prim(actual, &s, &a) ? sfc_compare(&a, &e) : 2;
        sfc_str_free(&s);
        switch (op) {
        case SFC_O_LT:
            return cmp == -1;
        case SFC_O_LTE:
            return cmp == -1 || cmp == 0;
        case SFC_O_GT:
            return cmp == 1;
        default:
            return cmp == 1 || cmp == 0;
        }

    case SFC_O_VEQ:
    case SFC_O_VNE:
    case SFC_O_VGT:
    case SFC_O_VGTE:
    case SFC_O_VLT:
    case SFC_O_VLTE:
        if (!sfc_text(&p, end, &t, &n)) {
            return 0;
        }
        sfc_str_init(&s);
        if (!sfc_version_of(actual, &s)) {
            sfc_str_free(&s);
            return 0;
        }
        cmp = sfc_utf16_cmp(s.d, s.n, t, n);
        sfc_str_free(&s);
        switch (op) {
        case SFC_O_VEQ:
            return cmp == 0;
        case SFC_O_VNE:
            return cmp != 0;
        case SFC_O_VGT:
            return cmp > 0;
        case SFC_O_VGTE:
            return cmp >= 0;
        case SFC_O_VLT:
            return cmp < 0;
        default:
            return cmp <= 0;
        }

    case SFC_O_EXISTS:
        return aux ? actual->type != SF_NULL : actual->type == SF_NULL;

    case SFC_O_IN:
        r = sfc_in(actual, p, end, aux & SFC_IN_FOLD);
        return (aux & SFC_IN_NEGATE) ? !r : r;

    case SFC_O_IN_GROUP:
        if (!sfc_text(&p, end, &t, &n)) {
            return 0;
        }
        r = sfc_in_group(c, actual, t, n);
        if (r < 0) {
            return 0;
        }
        return aux ? !r : r;

    case SFC_O_NOT:
        return !sfc_eval_value(c, p, end, actual);

    case SFC_O_SIZE:
        if (actual->type != SF_ARRAY) {
            return 0;
        }
        len.type = SF_NUMBER;
        len.u.number = (double) actual->u.arr.n;
        return sfc_eval_value(c, p, end, &len);

    case SFC_O_ELEM:
        if (actual->type != SF_ARRAY) {
            return 0;
        }
        for (i = 0; i < actual->u.arr.n; i++) {
            if (!sfc_truthy(&actual->u.arr.items[i])) {
                continue;
            }
            r = aux ? sfc_eval_cond(c, p, end, &actual->u.arr.items[i])
                    : sfc_eval_value(c, p, end, &actual->u.arr.items[i]);
            if (r) {
                return 1;
            }
        }
        return 0;

    case SFC_O_ALL:
        if (actual->type != SF_ARRAY) {
            return 0;
        }
        for (q = p; q < end; q = next) {
            if (!sfc_node(q, end, &cop, &caux, &body, &next)) {
                return 0;
            }
            for (i = 0; i < actual->u.arr.n; i++) {
                if (sfc_eval_value(c, q, next, &actual->u.arr.items[i])) {
                    break;
                }
            }
            if (i == actual->u.arr.n) {
                return 0;
            }
        }
        return 1;

    case SFC_O_REGEX:
        if (!sfc_text(&p, end, &t, &n)) {
            return 0;
        }
        sfc_str_init(&s);
        {
            const char  *str;
            size_t       slen;

            r = sfc_to_string(actual, &s, &str, &slen)
                && sf_js_regex_test(t, n, aux, str, slen);
        }
        sfc_str_free(&s);
        return r;

    case SFC_O_TYPE:
        return aux != SFC_T_NONE && sfc_type_of(actual) == aux;

    default:
        /* SFC_O_FALSE: unknown operators are false, as in the SDK */
        return 0;
    }
}


/* A value node (evalConditionValue) at [p, end) against v. */
static int
sfc_eval_value(sfc_ctx *c, uchar_t *p, uchar_t *end, const sf_value *v)
{
    int           op, aux, r, cop, caux;
    size_t        n, len;
    sfc_str       s;
    const char   *t, *str;
    uchar_t      *body, *next, *q, *cbody, *cnext;

    if (!sfc_node(p, end, &op, &aux, &body, &next)) {
        return 0;
    }

    switch (op) {

    case SFC_V_STR:
        if (!sfc_text(&body, next, &t, &n)) {
            return 0;
        }
        if (v->type == SF_STRING && !aux) {
            return v->u.str.len == n && memcmp(v->u.str.p, t, n) == 0;
        }
        sfc_str_init(&s);
        r = 0;
        if (sfc_to_string(v, &s, &str, &len)) {
            r = aux ? sfc_lower_eq(str, len, t, n)
                    : (len == n && memcmp(str, t, n) == 0);
        }
        sfc_str_free(&s);
        return r;

    case SFC_V_NUM:
        if (next - body < 8) {
            return 0;
        }
        return sfc_to_number(v) == sfc_rdf64(body);

    case SFC_V_BOOL:
        return v->type != SF_NULL && !sfc_truthy(v) == !aux;

    case SFC_V_NULL:
        return v->type == SF_NULL;

    case SFC_V_DEEP:
        return sfc_deep_eq(body, next, v);

    case SFC_V_OPS:
        for (q = body; q < next; q = cnext) {
            if (!sfc_node(q, next, &cop, &caux, &cbody, &cnext)) {
                return 0;
            }
            if (!sfc_eval_op(c, cop, caux, cbody, cnext, v)) {
                return 0;
            }
        }
        return 1;

    default:
        return 0;
    }
}


/* $or over ALL children: true when there are none. */
static int
sfc_eval_or(sfc_ctx *c, uchar_t *p, uchar_t *end, const sf_value *obj)
{
    int       op, aux;
    uchar_t  *body, *next;

    if (p == end) {
        return 1;
    }

    for ( ; p < end; p = next) {
        if (!sfc_node(p, end, &op, &aux, &body, &next)) {
            return 0;
        }
        if (sfc_eval_cond(c, p, next, obj)) {
            return 1;
        }
    }

    return 0;
}


/* An ALL node (evalCondition) at [p, end) against obj. */
static int
sfc_eval_cond(sfc_ctx *c, uchar_t *p, uchar_t *end, const sf_value *obj)
{
    int              op, aux, cop, caux, r;
    size_t           n;
    sf_value         tmp;
    const char      *path;
    const sf_value  *v;
    uchar_t         *body, *next, *q, *cbody, *cnext, *s, *sbody, *snext;

    if (!sfc_node(p, end, &op, &aux, &body, &next) || op != SFC_ALL) {
        return 0;
    }

    for (q = body; q < next; q = cnext) {
        if (!sfc_node(q, next, &cop, &caux, &cbody, &cnext)) {
            return 0;
        }

        switch (cop) {

        case SFC_FIELD:
            if (!sfc_text(&cbody, cnext, &path, &n)) {
                return 0;
            }
            v = sfc_path(obj, path, n, &tmp);
            r = sfc_eval_value(c, cbody, cnext, v ? v : &sfc_null);
            break;

        case SFC_OR:
            r = sfc_eval_or(c, cbody, cnext, obj);
            break;

        case SFC_NOR:
            r = !sfc_eval_or(c, cbody, cnext, obj);
            break;

        case SFC_AND:
            r = 1;
            for (s = cbody; r && s < cnext; s = snext) {
                if (!sfc_node(s, cnext, &op, &aux, &sbody, &snext)) {
                    return 0;
                }
                r = sfc_eval_cond(c, s, snext, obj);
            }
            break;

        case SFC_NOT:
            r = !sfc_eval_cond(c, cbody, cnext, obj);
            break;

        default:
            return 0;
        }

        if (!r) {
            return 0;
        }
    }

    return 1;
}


int
sf_condition_evaluate(const void *compiled, size_t len,
    const sf_value *attributes, const sf_value *saved_groups)
{
    sfc_ctx   c;
    uchar_t  *p = compiled;

    if (p == NULL || len < SFC_MAGIC_LEN + SFC_HDR
        || memcmp(p, SFC_MAGIC, SFC_MAGIC_LEN) != 0)
    {
        return 0;
    }

    c.groups = saved_groups;

    return sfc_eval_cond(&c, p + SFC_MAGIC_LEN, p + len, attributes) == 1;
}


/* ---- compilation --------------------------------------------------------- */

typedef struct {
    sf_buf    *out;
    sf_error  *err;
    int        rc;
} sfc_cc;


static void
sfc_put(sfc_cc *c, const void *p, size_t n)
{
    if (c->rc == SF_OK && sf_buf_append(c->out, p, n) != SF_OK) {
        c->rc = sf_error_set(c->err, SF_ERR_NOMEM, "out of memory");
    }
}


static void
sfc_put_u8(sfc_cc *c, unsigned v)
{
    unsigned char  b = (unsigned char) v;

    sfc_put(c, &b, 1);
}


static void
sfc_put_u32(sfc_cc *c, uint32_t v)
{
    sfc_put(c, &v, 4);
}


static void
sfc_put_text(sfc_cc *c, const char *s, size_t n)
{
    if (n > UINT32_MAX - 64) {
        c->rc = sf_error_set(c->err, SF_ERR_INVALID, "string too long");
        return;
    }
    sfc_put_u32(c, (uint32_t) n);
    sfc_put(c, s, n);
}


/* s.toLowerCase() as a length-prefixed text */
static void
sfc_put_lower(sfc_cc *c, const char *s, size_t n)
{
    sf_buf  b;

    sf_buf_init(&b);
    if (sfc_lower_append(&b, s, n) != SF_OK) {
        c->rc = sf_error_set(c->err, SF_ERR_NOMEM, "out of memory");
    } else {
        sfc_put_text(c, b.data ? b.data : "", b.len);
    }
    sf_buf_free(&b);
}


static size_t
sfc_begin(sfc_cc *c, int op, int aux)
{
    size_t  off = c->out->len;

    sfc_put_u8(c, (unsigned) op);
    sfc_put_u8(c, (unsigned) aux);
    sfc_put_u32(c, 0);
    return off;
}


/* Patches a u32 at off with the bytes written since off + base. */
static void
sfc_patch(sfc_cc *c, size_t off, size_t from)
{
    uint32_t  size;

    if (c->rc != SF_OK) {
        return;
    }
    if (c->out->len - from > UINT32_MAX) {
        c->rc = sf_error_set(c->err, SF_ERR_INVALID, "condition too large");
        return;
    }
    size = (uint32_t) (c->out->len - from);
    memcpy(c->out->data + off, &size, 4);
}


static void
sfc_end(sfc_cc *c, size_t off)
{
    sfc_patch(c, off + 2, off);
}


/*
 * The distinct members of an object in JavaScript's property order:
 * array-index names ascending, then the others in order of first
 * appearance.  Values are taken from the last duplicate (JSON.parse).
 * *order receives the first-appearance indexes (malloc'ed).
 */
static int
sfc_js_order(const sf_value *obj, size_t **order, size_t *n)
{
    size_t            i, j, k;
    size_t           *o;
    long long         a, b;
    const sf_member  *m = obj->u.obj.members;

    *n = 0;
    *order = NULL;
    if (obj->u.obj.n == 0) {
        return SF_OK;
    }

    o = malloc(obj->u.obj.n * sizeof(size_t));
    if (o == NULL) {
        return SF_ERR_NOMEM;
    }

    k = 0;
    for (i = 0; i < obj->u.obj.n; i++) {
        if (sfc_first_index(obj, m[i].name, m[i].name_len) == i
            && sfc_array_index(m[i].name, m[i].name_len) >= 0)
        {
            /* insertion sort by index value */
            a = sfc_array_index(m[i].name, m[i].name_len);
            for (j = k; j > 0; j--) {
                b = sfc_array_index(m[o[j - 1]].name, m[o[j - 1]].name_len);
                if (b < a) {
                    break;
                }
                o[j] = o[j - 1];
            }
            o[j] = i;
            k++;
        }
    }
    for (i = 0; i < obj->u.obj.n; i++) {
        if (sfc_first_index(obj, m[i].name, m[i].name_len) == i
            && sfc_array_index(m[i].name, m[i].name_len) < 0)
        {
            o[k++] = i;
        }
    }
    *order = o;
    *n = k;
    return SF_OK;
}


static void
sfc_put_json(sfc_cc *c, const sf_value *v, int depth)
{
    size_t            i, n, off, *order;
    const sf_member  *m;

    if (depth > SFC_MAX_DEPTH) {
        c->rc = sf_error_set(c->err, SF_ERR_INVALID,
                             "condition nested too deeply");
        return;
    }

    switch (v->type) {
    case SF_NULL:
        sfc_put_u8(c, SFC_J_NULL);
        break;
    case SF_BOOL:
        sfc_put_u8(c, v->u.boolean ? SFC_J_TRUE : SFC_J_FALSE);
        break;
    case SF_NUMBER:
        sfc_put_u8(c, SFC_J_NUM);
        sfc_put(c, &v->u.number, 8);
        break;
    case SF_STRING:
        sfc_put_u8(c, SFC_J_STR);
        sfc_put_text(c, v->u.str.p, v->u.str.len);
        break;
    case SF_ARRAY:
        sfc_put_u8(c, SFC_J_ARR);
        sfc_put_u32(c, (uint32_t) v->u.arr.n);
        off = c->out->len;
        sfc_put_u32(c, 0);
        for (i = 0; i < v->u.arr.n; i++) {
            sfc_put_json(c, &v->u.arr.items[i], depth + 1);
        }
        sfc_patch(c, off, off + 4);
        break;
    case SF_OBJECT:
        if (sfc_js_order(v, &order, &n) != SF_OK) {
            c->rc = sf_error_set(c->err, SF_ERR_NOMEM, "out of memory");
            return;
        }
        sfc_put_u8(c, SFC_J_OBJ);
        sfc_put_u32(c, (uint32_t) n);
        off = c->out->len;
        sfc_put_u32(c, 0);
        for (i = 0; i < n; i++) {
            m = &v->u.obj.members[order[i]];
            sfc_put_text(c, m->name, m->name_len);
            sfc_put_json(c, sfc_member(v, m->name, m->name_len), depth + 1);
        }
        sfc_patch(c, off, off + 4);
        free(order);
        break;
    }
}


static int
sfc_is_operator_object(const sf_value *v)
{
    size_t  i;

    if (v->type != SF_OBJECT || v->u.obj.n == 0) {
        return 0;
    }
    for (i = 0; i < v->u.obj.n; i++) {
        if (v->u.obj.members[i].name_len == 0
            || v->u.obj.members[i].name[0] != '$')
        {
            return 0;
        }
    }

    return 1;
}


static int
sfc_name_is(const sf_member *m, const char *name)
{
    size_t  n = strlen(name);

    return m->name_len == n && memcmp(m->name, name, n) == 0;
}


static void sfc_compile_cond(sfc_cc *c, const sf_value *obj, int depth);
static void sfc_compile_value(sfc_cc *c, const sf_value *v, int depth,
    int fold);


/* Runs body for each distinct member m of object o_ (val: its value, the
 * last duplicate's). */
#define SFC_EACH_MEMBER(c, o_, m, val, body)                                 \
    do {                                                                     \
        size_t  i_, n_, *order_;                                             \
        if (sfc_js_order(o_, &order_, &n_) != SF_OK) {                       \
            (c)->rc = sf_error_set((c)->err, SF_ERR_NOMEM, "out of memory"); \
            break;                                                           \
        }                                                                    \
        for (i_ = 0; i_ < n_ && (c)->rc == SF_OK; i_++) {                    \
            m = &(o_)->u.obj.members[order_[i_]];                            \
            val = sfc_member(o_, m->name, m->name_len);                      \
            body                                                             \
        }                                                                    \
        free(order_);                                                        \
    } while (0)


static const struct {
    const char  *name;
    int          op;
} sfc_simple_ops[] = {
    { "$lt", SFC_O_LT }, { "$lte", SFC_O_LTE },
    { "$gt", SFC_O_GT }, { "$gte", SFC_O_GTE },
    { "$veq", SFC_O_VEQ }, { "$vne", SFC_O_VNE },
    { "$vgt", SFC_O_VGT }, { "$vgte", SFC_O_VGTE },
    { "$vlt", SFC_O_VLT }, { "$vlte", SFC_O_VLTE },
    { NULL, 0 }
};


static void
sfc_compile_op(sfc_cc *c, const sf_member *m, const sf_value *arg,
    int depth)
{
    int           i, aux, op, fold;
    size_t        off, k, cnt_off;
    uint32_t      cnt;
    sfc_str       s;
    const char   *p;
    size_t        n;
    static const char  *types[] = {
        NULL, "string", "number", "boolean", "object", "array", "null"
    };

    if (sfc_name_is(m, "$eq") || sfc_name_is(m, "$ne")) {
        op = sfc_name_is(m, "$eq") ? SFC_O_EQ : SFC_O_NE;
        if (arg->type == SF_ARRAY || arg->type == SF_OBJECT) {
            sfc_end(c, sfc_begin(c, op, 1));
        } else {
            off = sfc_begin(c, op, 0);
            sfc_put_json(c, arg, depth);
            sfc_end(c, off);
        }
        return;
    }

    for (i = 0; sfc_simple_ops[i].name; i++) {
        if (!sfc_name_is(m, sfc_simple_ops[i].name)) {
            continue;
        }
        op = sfc_simple_ops[i].op;
        off = sfc_begin(c, op, 0);
        sfc_str_init(&s);
        if (op >= SFC_O_VEQ) {
            if (!sfc_version_of(arg, &s)) {
                c->rc = sf_error_set(c->err, SF_ERR_NOMEM, "out of memory");
            }
            sfc_put_text(c, s.d, s.n);
        } else if (arg->type == SF_ARRAY || arg->type == SF_OBJECT) {
            /* compared as ToPrimitive(arg): its string */
            if (!sfc_to_string(arg, &s, &p, &n)) {
                c->rc = sf_error_set(c->err, SF_ERR_NOMEM, "out of memory");
            }
            sfc_put_u8(c, SFC_J_STR);
            sfc_put_text(c, p, n);
        } else {
            sfc_put_json(c, arg, depth);
        }
        sfc_str_free(&s);
        sfc_end(c, off);
        return;
    }

    if (sfc_name_is(m, "$exists")) {
        sfc_end(c, sfc_begin(c, SFC_O_EXISTS, sfc_truthy(arg)));
        return;
    }

    if (sfc_name_is(m, "$in") || sfc_name_is(m, "$nin")
        || sfc_name_is(m, "$ini") || sfc_name_is(m, "$nini"))
    {
        if (arg->type != SF_ARRAY) {
            sfc_end(c, sfc_begin(c, SFC_O_FALSE, 0));
            return;
        }
        fold = (m->name[m->name_len - 1] == 'i');
        aux = (fold ? SFC_IN_FOLD : 0) | (m->name[1] == 'n' && m->name[2] == 'i'
                                          ? SFC_IN_NEGATE : 0);
        off = sfc_begin(c, SFC_O_IN, aux);
        cnt_off = c->out->len;
        sfc_put_u32(c, 0);
        cnt = 0;
        for (k = 0; k < arg->u.arr.n; k++) {
            const sf_value  *x = &arg->u.arr.items[k];

            if (x->type == SF_ARRAY || x->type == SF_OBJECT) {
                continue;       /* never === to anything */
            }
            if (fold && x->type == SF_STRING) {
                sfc_put_u8(c, SFC_J_STR);
                sfc_put_lower(c, x->u.str.p, x->u.str.len);
            } else {
                sfc_put_json(c, x, depth);
            }
            cnt++;
        }
        if (c->rc == SF_OK) {
            memcpy(c->out->data + cnt_off, &cnt, 4);
        }
        sfc_end(c, off);
        return;
    }

    if (sfc_name_is(m, "$inGroup") || sfc_name_is(m, "$notInGroup")) {
        /* savedGroups[arg]: the property key String(arg) */
        off = sfc_begin(c, SFC_O_IN_GROUP, m->name[1] == 'n');
        sfc_str_init(&s);
        if (!sfc_to_string(arg, &s, &p, &n)) {
            c->rc = sf_error_set(c->err, SF_ERR_NOMEM, "out of memory");
        }
        sfc_put_text(c, p, n);
        sfc_str_free(&s);
        sfc_end(c, off);
        return;
    }

    if (sfc_name_is(m, "$not") || sfc_name_is(m, "$size")) {
        off = sfc_begin(c, sfc_name_is(m, "$not") ? SFC_O_NOT : SFC_O_SIZE, 0);
        sfc_compile_value(c, arg, depth + 1, 0);
        sfc_end(c, off);
        return;
    }

    if (sfc_name_is(m, "$elemMatch")) {
        if (arg->type != SF_OBJECT) {
            c->rc = sf_error_set(c->err, SF_ERR_INVALID,
                                 "$elemMatch needs an object");
            return;
        }
        if (sfc_is_operator_object(arg)) {
            off = sfc_begin(c, SFC_O_ELEM, 0);
            sfc_compile_value(c, arg, depth + 1, 0);
        } else {
            off = sfc_begin(c, SFC_O_ELEM, 1);
            sfc_compile_cond(c, arg, depth + 1);
        }
        sfc_end(c, off);
        return;
    }

    if (sfc_name_is(m, "$all") || sfc_name_is(m, "$alli")) {
        if (arg->type != SF_ARRAY) {
            sfc_end(c, sfc_begin(c, SFC_O_FALSE, 0));
            return;
        }
        fold = (m->name_len == 5);
        off = sfc_begin(c, SFC_O_ALL, 0);
        for (k = 0; k < arg->u.arr.n; k++) {
            sfc_compile_value(c, &arg->u.arr.items[k], depth + 1, fold);
        }
        sfc_end(c, off);
        return;
    }

    if (sfc_name_is(m, "$regex") || sfc_name_is(m, "$regexi")) {
        if (arg->type != SF_STRING) {
            /* the SDK's regex.replace throws: caught, false */
            sfc_end(c, sfc_begin(c, SFC_O_FALSE, 0));
            return;
        }
        off = sfc_begin(c, SFC_O_REGEX, m->name_len == 7);
        sfc_put_text(c, arg->u.str.p, arg->u.str.len);
        sfc_end(c, off);
        return;
    }

    if (sfc_name_is(m, "$type")) {
        aux = SFC_T_NONE;
        for (i = 1; arg->type == SF_STRING
                    && i < (int) (sizeof(types) / sizeof(types[0])); i++)
        {
            if (arg->u.str.len == strlen(types[i])
                && memcmp(arg->u.str.p, types[i], arg->u.str.len) == 0)
            {
                aux = i;
            }
        }
        sfc_end(c, sfc_begin(c, SFC_O_TYPE, aux));
        return;
    }

    /* an unknown operator: false, as in the SDK */
    sfc_end(c, sfc_begin(c, SFC_O_FALSE, 0));
}


static void
sfc_compile_value(sfc_cc *c, const sf_value *v, int depth, int fold)
{
    size_t            off;
    const sf_member  *m;
    const sf_value   *val;

    if (depth > SFC_MAX_DEPTH) {
        c->rc = sf_error_set(c->err, SF_ERR_INVALID,
                             "condition nested too deeply");
        return;
    }

    switch (v->type) {
    case SF_STRING:
        off = sfc_begin(c, SFC_V_STR, fold);
        if (fold) {
            sfc_put_lower(c, v->u.str.p, v->u.str.len);
        } else {
            sfc_put_text(c, v->u.str.p, v->u.str.len);
        }
        sfc_end(c, off);
        return;

    case SF_NUMBER:
        off = sfc_begin(c, SFC_V_NUM, 0);
        sfc_put(c, &v->u.number, 8);
        sfc_end(c, off);
        return;

    case SF_BOOL:
        sfc_end(c, sfc_begin(c, SFC_V_BOOL, v->u.boolean ? 1 : 0));
        return;

    case SF_NULL:
        sfc_end(c, sfc_begin(c, SFC_V_NULL, 0));
        return;

    default:
        break;
    }

    if (!sfc_is_operator_object(v)) {
        /* arrays and plain objects: JSON.stringify equality */
        off = sfc_begin(c, SFC_V_DEEP, 0);
        sfc_put_json(c, v, depth);
        sfc_end(c, off);
        return;
    }

    off = sfc_begin(c, SFC_V_OPS, 0);
    SFC_EACH_MEMBER(c, v, m, val, {
        sfc_compile_op(c, m, val, depth);
    });
    sfc_end(c, off);
}


static void
sfc_compile_list(sfc_cc *c, int op, const sf_member *m, const sf_value *v,
    int depth)
{
    size_t  i, off;

    if (v->type != SF_ARRAY) {
        c->rc = sf_error_set(c->err, SF_ERR_INVALID,
                             "%.*s must be an array of conditions",
                             (int) m->name_len, m->name);
        return;
    }

    off = sfc_begin(c, op, 0);
    for (i = 0; i < v->u.arr.n && c->rc == SF_OK; i++) {
        if (v->u.arr.items[i].type != SF_OBJECT) {
            c->rc = sf_error_set(c->err, SF_ERR_INVALID,
                                 "%.*s[%zu] must be a condition object",
                                 (int) m->name_len, m->name, i);
            return;
        }
        sfc_compile_cond(c, &v->u.arr.items[i], depth + 1);
    }
    sfc_end(c, off);
}


static void
sfc_compile_cond(sfc_cc *c, const sf_value *obj, int depth)
{
    size_t            off, foff;
    const sf_member  *m;
    const sf_value   *val;

    if (depth > SFC_MAX_DEPTH) {
        c->rc = sf_error_set(c->err, SF_ERR_INVALID,
                             "condition nested too deeply");
        return;
    }

    off = sfc_begin(c, SFC_ALL, 0);

    SFC_EACH_MEMBER(c, obj, m, val, {
        if (sfc_name_is(m, "$or")) {
            sfc_compile_list(c, SFC_OR, m, val, depth);
        } else if (sfc_name_is(m, "$nor")) {
            sfc_compile_list(c, SFC_NOR, m, val, depth);
        } else if (sfc_name_is(m, "$and")) {
            sfc_compile_list(c, SFC_AND, m, val, depth);
        } else if (sfc_name_is(m, "$not")) {
            if (val->type != SF_OBJECT) {
                c->rc = sf_error_set(c->err, SF_ERR_INVALID,
                                     "$not must be a condition object");
                break;
            }
            foff = sfc_begin(c, SFC_NOT, 0);
            sfc_compile_cond(c, val, depth + 1);
            sfc_end(c, foff);
        } else {
            foff = sfc_begin(c, SFC_FIELD, 0);
            sfc_put_text(c, m->name, m->name_len);
            sfc_compile_value(c, val, depth + 1, 0);
            sfc_end(c, foff);
        }
    });

    sfc_end(c, off);
}


int
sf_condition_compile(const sf_value *cond, sf_buf *out, sf_error *err)
{
    size_t  start;
    sfc_cc  c;

    if (cond == NULL || cond->type != SF_OBJECT) {
        return sf_error_set(err, SF_ERR_INVALID,
                            "a condition must be a JSON object");
    }

    c.out = out;
    c.err = err;
    c.rc = SF_OK;

    start = out->len;
    sfc_put(&c, SFC_MAGIC, SFC_MAGIC_LEN);
    sfc_compile_cond(&c, cond, 0);

    if (c.rc != SF_OK) {
        out->len = start;
        if (out->data) {
            out->data[start] = '\0';
        }
    }

    return c.rc;
}
