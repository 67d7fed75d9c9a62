/*
 * JSON in and out: values (sf_value) built from yajl's callback parser,
 * whole documents or streamed element by element from files, and compact
 * JSON output.  Numbers are doubles, as in JavaScript.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "storefront.h"


#define SF_JSON_MAX_DEPTH  64
#define SF_JSON_CHUNK      (64 * 1024)


/* ---- lookups ------------------------------------------------------------ */

const sf_value *
sf_value_member(const sf_value *obj, const char *name, size_t name_len)
{
    size_t           i;
    const sf_member  *m;

    if (obj == NULL || obj->type != SF_OBJECT) {
        return NULL;
    }

    for (i = 0; i < obj->u.obj.n; i++) {
        m = &obj->u.obj.members[i];
        if (m->name_len == name_len && memcmp(m->name, name, name_len) == 0) {
            return &m->value;
        }
    }

    return NULL;
}


const char *
sf_value_unknown_member(const sf_value *obj, const char *const *known)
{
    size_t              i;
    const char *const  *k;

    for (i = 0; i < obj->u.obj.n; i++) {
        for (k = known; *k; k++) {
            if (strlen(*k) == obj->u.obj.members[i].name_len
                && memcmp(*k, obj->u.obj.members[i].name,
                          obj->u.obj.members[i].name_len) == 0)
            {
                break;
            }
        }
        if (*k == NULL) {
            return obj->u.obj.members[i].name;
        }
    }

    return NULL;
}


const sf_value *
sf_value_path(const sf_value *obj, const char *path, size_t path_len)
{
    const char  *p, *end, *dot;

    p = path;
    end = path + path_len;

    for ( ;; ) {
        dot = memchr(p, '.', (size_t) (end - p));
        if (dot == NULL) {
            return sf_value_member(obj, p, (size_t) (end - p));
        }

        obj = sf_value_member(obj, p, (size_t) (dot - p));
        if (obj == NULL) {
            return NULL;
        }
        p = dot + 1;
    }
}


int
sf_value_as_string(const sf_value *v, char *buf, const char **s, size_t *len)
{
    sf_buf  b;

    if (v == NULL) {
        return SF_ERR_NOT_FOUND;
    }

    switch (v->type) {

    case SF_STRING:
        *s = v->u.str.p;
        *len = v->u.str.len;
        return SF_OK;

    case SF_BOOL:
        *s = v->u.boolean ? "true" : "false";
        *len = v->u.boolean ? 4 : 5;
        return SF_OK;

    case SF_NUMBER:
        /* integers (the common numeric id) without touching the heap */
        if (v->u.number == (double) (long long) v->u.number
            && v->u.number > -1e15 && v->u.number < 1e15)
        {
            *len = (size_t) snprintf(buf, 32, "%lld",
                                     (long long) v->u.number);
            *s = buf;
            return SF_OK;
        }
        sf_buf_init(&b);
        if (sf_buf_append_js_number(&b, v->u.number) != SF_OK
            || b.len >= 32)
        {
            sf_buf_free(&b);
            return SF_ERR_NOMEM;
        }
        memcpy(buf, b.data, b.len + 1);
        *s = buf;
        *len = b.len;
        sf_buf_free(&b);
        return SF_OK;

    default:
        return SF_ERR_NOT_FOUND;
    }
}


/* ---- building values from yajl callbacks -------------------------------- */

typedef struct {
    int      is_object;
    sf_buf   items;          /* sf_member[] or sf_value[] */
    char    *key;            /* pending member name (arena) */
    size_t   key_len;
} sf_json_frame;

typedef enum {
    SF_JS_VALUE = 0,         /* whole-document parse */
    SF_JS_START,             /* stream: expect the top-level object */
    SF_JS_TOP,               /* stream: inside it, expect a key or end */
    SF_JS_MEMBER,            /* stream: expect a member's value */
    SF_JS_ARRAY,             /* stream: inside a member's array */
    SF_JS_DONE,
    SF_JS_LINES              /* values stream: one value per line */
} sf_json_state;

typedef struct {
    sf_arena             *arena;
    sf_json_frame         stack[SF_JSON_MAX_DEPTH];
    int                   depth;
    sf_value              root;
    int                   have_root;
    sf_error             *err;
    int                   failed;
    int                   own_error;    /* failed by the parser, not cb */

    /* streaming */
    sf_json_state         state;
    char                  member[256];
    long                  index;
    unsigned long         line;
    unsigned long         element_line;
    sf_json_element_cb    cb;
    void                 *ctx;
    int                   values;       /* sf_json_stream_values */
    unsigned long         completed;    /* values on this line (lines) */
    sf_value              pending;      /* the line's value, in the arena */
} sf_json_builder;


static int
sf_json_fail(sf_json_builder *jb, int code, const char *msg)
{
    if (!jb->failed) {
        sf_error_set(jb->err, code, "%s", msg);
        jb->failed = code;
        jb->own_error = 1;
    }
    return 0;                   /* tells yajl to stop */
}


/* A complete value at depth 0: the root, or a streamed element. */
static int
sf_json_complete(sf_json_builder *jb, const sf_value *v)
{
    int    rc;
    long   index;

    if (jb->state == SF_JS_VALUE) {
        jb->root = *v;
        jb->have_root = 1;
        return 1;
    }

    if (jb->state == SF_JS_LINES) {
        /* passed on at the end of the line, if it is alone there */
        if (jb->completed++ == 0) {
            jb->pending = *v;
        }
        return 1;
    }

    index = (jb->state == SF_JS_ARRAY) ? jb->index++ : -1;

    rc = jb->cb(jb->ctx, jb->member, index, v, jb->element_line, jb->err);
    sf_arena_reset(jb->arena);

    if (rc != 0) {
        jb->failed = rc;
        return 0;
    }

    if (jb->state == SF_JS_MEMBER) {
        jb->state = SF_JS_TOP;
    }

    return 1;
}


static int
sf_json_add(sf_json_builder *jb, const sf_value *v)
{
    sf_json_frame  *f;
    sf_member       m;

    if (jb->depth == 0) {
        if (jb->state == SF_JS_START || jb->state == SF_JS_TOP) {
            return sf_json_fail(jb, SF_ERR_INVALID,
                                "the document must be a JSON object");
        }
        if (jb->values && jb->state == SF_JS_MEMBER) {
            return sf_json_fail(jb, SF_ERR_INVALID,
                                "the document must be a JSON array");
        }
        if (v->type != SF_ARRAY && v->type != SF_OBJECT) {
            /* a container's line was taken when it opened */
            jb->element_line = jb->line;
        }
        return sf_json_complete(jb, v);
    }

    f = &jb->stack[jb->depth - 1];

    if (f->is_object) {
        m.name = f->key;
        m.name_len = f->key_len;
        m.value = *v;
        if (sf_buf_append(&f->items, &m, sizeof(m)) != SF_OK) {
            return sf_json_fail(jb, SF_ERR_NOMEM, "out of memory");
        }
        return 1;
    }

    if (sf_buf_append(&f->items, v, sizeof(*v)) != SF_OK) {
        return sf_json_fail(jb, SF_ERR_NOMEM, "out of memory");
    }
    return 1;
}


static int
sf_json_push(sf_json_builder *jb, int is_object)
{
    sf_json_frame  *f;

    if (jb->depth == 0) {
        jb->element_line = jb->line;
    }

    if (jb->depth == SF_JSON_MAX_DEPTH) {
        return sf_json_fail(jb, SF_ERR_INVALID, "JSON nested too deeply");
    }

    f = &jb->stack[jb->depth++];
    f->is_object = is_object;
    f->items.len = 0;
    f->key = NULL;
    f->key_len = 0;
    return 1;
}


static int
sf_json_pop(sf_json_builder *jb)
{
    sf_json_frame  *f;
    sf_value        v;
    void           *items;

    f = &jb->stack[--jb->depth];

    items = NULL;
    if (f->items.len) {
        items = sf_arena_alloc(jb->arena, f->items.len);
        if (items == NULL) {
            return sf_json_fail(jb, SF_ERR_NOMEM, "out of memory");
        }
        memcpy(items, f->items.data, f->items.len);
    }

    if (f->is_object) {
        v.type = SF_OBJECT;
        v.u.obj.members = items;
        v.u.obj.n = f->items.len / sizeof(sf_member);
    } else {
        v.type = SF_ARRAY;
        v.u.arr.items = items;
        v.u.arr.n = f->items.len / sizeof(sf_value);
    }

    return sf_json_add(jb, &v);
}


static int
sf_json_on_null(void *ctx)
{
    sf_value  v;

    v.type = SF_NULL;
    return sf_json_add(ctx, &v);
}


static int
sf_json_on_boolean(void *ctx, int b)
{
    sf_value  v;

    v.type = SF_BOOL;
    v.u.boolean = b ? 1 : 0;
    return sf_json_add(ctx, &v);
}


/*
 * Plain decimals of at most 15 significant digits ("120", "-4.25"): the
 * digits are exact in a double, and so is 10^k for k <= 22, so one
 * correctly rounded division gives what strtod gives, much faster.
 * Returns 0 when the text needs strtod.
 */
static int
sf_json_fast_number(const char *s, size_t len, double *out)
{
    static const double  pow10[] = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15
    };
    int                  neg, digits, frac, dot;
    size_t               i;
    uint64_t             m;

    i = 0;
    neg = (len > 0 && s[0] == '-');
    i += neg;
    m = 0;
    digits = 0;
    frac = 0;
    dot = 0;

    for (; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            m = m * 10 + (uint64_t) (s[i] - '0');
            if (++digits > 15) {
                return 0;
            }
            frac += dot;
        } else if (s[i] == '.' && !dot) {
            dot = 1;
        } else {
            return 0;           /* an exponent */
        }
    }

    if (digits == 0) {
        return 0;
    }

    *out = (double) m / pow10[frac];
    if (neg) {
        *out = -*out;
    }
    return 1;
}


static int
sf_json_on_number(void *ctx, const char *s, size_t len)
{
    char      tmp[64], *end;
    sf_value  v;

    v.type = SF_NUMBER;
    if (sf_json_fast_number(s, len, &v.u.number)) {
        return sf_json_add(ctx, &v);
    }

    if (len >= sizeof(tmp)) {
        return sf_json_fail(ctx, SF_ERR_INVALID, "number too long");
    }

    memcpy(tmp, s, len);
    tmp[len] = '\0';

    v.type = SF_NUMBER;
    v.u.number = strtod(tmp, &end);
    if (*end != '\0' || !isfinite(v.u.number)) {
        return sf_json_fail(ctx, SF_ERR_INVALID, "number out of range");
    }

    return sf_json_add(ctx, &v);
}


static int
sf_json_on_string(void *ctx, const unsigned char *s, size_t len)
{
    sf_json_builder  *jb = ctx;
    sf_value          v;

    v.type = SF_STRING;
    v.u.str.p = sf_arena_strndup(jb->arena, (const char *) s, len);
    v.u.str.len = len;
    if (v.u.str.p == NULL) {
        return sf_json_fail(jb, SF_ERR_NOMEM, "out of memory");
    }

    return sf_json_add(jb, &v);
}


static int
sf_json_on_start_map(void *ctx)
{
    sf_json_builder  *jb = ctx;

    if (jb->state == SF_JS_START) {
        jb->state = SF_JS_TOP;
        return 1;
    }

    if (jb->state == SF_JS_TOP
        || (jb->values && jb->depth == 0 && jb->state != SF_JS_ARRAY
            && jb->state != SF_JS_LINES))
    {
        return sf_json_fail(jb, SF_ERR_INVALID, jb->values
                            ? "the document must be a JSON array"
                            : "unexpected object");
    }

    return sf_json_push(jb, 1);
}


static int
sf_json_on_map_key(void *ctx, const unsigned char *s, size_t len)
{
    sf_json_builder  *jb = ctx;
    sf_json_frame    *f;

    if (jb->depth == 0 && jb->state == SF_JS_TOP) {
        if (len >= sizeof(jb->member)) {
            return sf_json_fail(jb, SF_ERR_INVALID, "member name too long");
        }
        memcpy(jb->member, s, len);
        jb->member[len] = '\0';
        jb->state = SF_JS_MEMBER;
        return 1;
    }

    f = &jb->stack[jb->depth - 1];
    f->key = sf_arena_strndup(jb->arena, (const char *) s, len);
    f->key_len = len;
    if (f->key == NULL) {
        return sf_json_fail(jb, SF_ERR_NOMEM, "out of memory");
    }

    return 1;
}


static int
sf_json_on_end_map(void *ctx)
{
    sf_json_builder  *jb = ctx;

    if (jb->depth == 0) {
        /* the end of the streamed document's top-level object */
        jb->state = SF_JS_DONE;
        return 1;
    }

    return sf_json_pop(jb);
}


static int
sf_json_on_start_array(void *ctx)
{
    sf_json_builder  *jb = ctx;

    if (jb->depth == 0 && jb->state == SF_JS_MEMBER) {
        jb->state = SF_JS_ARRAY;
        jb->index = 0;
        return 1;
    }

    if (jb->depth == 0 && jb->state != SF_JS_VALUE
        && jb->state != SF_JS_ARRAY && jb->state != SF_JS_LINES)
    {
        return sf_json_fail(jb, SF_ERR_INVALID,
                            "the document must be a JSON object");
    }

    return sf_json_push(jb, 0);
}


static int
sf_json_on_end_array(void *ctx)
{
    sf_json_builder  *jb = ctx;

    if (jb->depth == 0 && jb->state == SF_JS_ARRAY) {
        jb->state = jb->values ? SF_JS_DONE : SF_JS_TOP;
        return 1;
    }

    return sf_json_pop(jb);
}


static const yajl_callbacks  sf_json_callbacks = {
    sf_json_on_null,
    sf_json_on_boolean,
    NULL,
    NULL,
    sf_json_on_number,
    sf_json_on_string,
    sf_json_on_start_map,
    sf_json_on_map_key,
    sf_json_on_end_map,
    sf_json_on_start_array,
    sf_json_on_end_array
};


static void
sf_json_builder_init(sf_json_builder *jb, sf_arena *a, sf_error *err)
{
    int  i;

    memset(jb, 0, sizeof(*jb));
    jb->arena = a;
    jb->err = err;
    jb->line = 1;
    for (i = 0; i < SF_JSON_MAX_DEPTH; i++) {
        sf_buf_init(&jb->stack[i].items);
    }
}


static void
sf_json_builder_free(sf_json_builder *jb)
{
    int  i;

    for (i = 0; i < SF_JSON_MAX_DEPTH; i++) {
        sf_buf_free(&jb->stack[i].items);
    }
}


/* Copies yajl's error text, first line only, without its context dump. */
static void
sf_json_yajl_message(yajl_handle h, const char *data, size_t len,
    char *out, size_t size)
{
    unsigned char  *msg;
    char           *nl;

    msg = yajl_get_error(h, 0, (const unsigned char *) data, len);
    snprintf(out, size, "%s", msg ? (char *) msg : "invalid JSON");
    if (msg) {
        yajl_free_error(h, msg);
    }

    nl = strchr(out, '\n');
    if (nl) {
        *nl = '\0';
    }
}


int
sf_json_parse(const char *text, size_t len, sf_arena *a, sf_value *out,
    sf_error *err)
{
    int               rc;
    char              msg[256];
    yajl_handle       h;
    yajl_status       st;
    sf_json_builder  *jb;

    jb = malloc(sizeof(sf_json_builder));
    if (jb == NULL) {
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }

    sf_json_builder_init(jb, a, err);
    jb->state = SF_JS_VALUE;

    h = yajl_alloc(&sf_json_callbacks, NULL, jb);
    if (h == NULL) {
        free(jb);
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }

    st = yajl_parse(h, (const unsigned char *) text, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    rc = SF_OK;

    if (st != yajl_status_ok) {
        if (jb->failed) {
            rc = jb->failed;
        } else {
            sf_json_yajl_message(h, text, len, msg, sizeof(msg));
            rc = sf_error_set(err, SF_ERR_INVALID, "%s at offset %zu", msg,
                              yajl_get_bytes_consumed(h));
        }

    } else if (!jb->have_root) {
        rc = sf_error_set(err, SF_ERR_INVALID, "empty JSON document");

    } else {
        *out = jb->root;
    }

    yajl_free(h);
    sf_json_builder_free(jb);
    free(jb);
    return rc;
}


/*
 * Feeds a file to yajl one line at a time (long lines in chunks of
 * SF_JSON_CHUNK), so that the builder's callbacks know the line they are
 * on and errors name a line and a column; progress (may be NULL) gets the
 * bytes read every megabyte and at a successful end.
 */
static int
sf_json_feed(FILE *f, const char *filename, sf_json_builder *jb, char *chunk,
    sf_progress_cb progress, void *ctx, sf_error *err)
{
    int           rc;
    char         *p, *end, *nl, msg[256];
    size_t        n, seg, col_base, consumed;
    uint64_t      total, last_progress;
    yajl_handle   h;
    yajl_status   st;

    h = yajl_alloc(&sf_json_callbacks, NULL, jb);
    if (h == NULL) {
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }

    rc = SF_OK;
    col_base = 0;
    total = 0;
    last_progress = 0;
    p = chunk;
    seg = 0;

    while ((n = fread(chunk, 1, SF_JSON_CHUNK, f)) > 0) {
        total += n;
        end = chunk + n;

        for (p = chunk; p < end; p += seg) {
            nl = memchr(p, '\n', (size_t) (end - p));
            seg = nl ? (size_t) (nl - p) + 1 : (size_t) (end - p);

            st = yajl_parse(h, (const unsigned char *) p, seg);
            if (st != yajl_status_ok) {
                goto failed;
            }

            if (nl) {
                jb->line++;
                col_base = 0;
            } else {
                col_base += seg;
            }
        }

        if (progress && total - last_progress >= (1 << 20)) {
            progress(ctx, total);
            last_progress = total;
        }
    }

    if (ferror(f)) {
        rc = sf_error_set(err, SF_ERR_IO, "%s: read error", filename);
        goto done;
    }

    p = chunk;
    seg = 0;
    st = yajl_complete_parse(h);
    if (st != yajl_status_ok) {
        goto failed;
    }

    if (jb->state != SF_JS_DONE) {
        rc = sf_error_set(err, SF_ERR_INVALID, "%s:%lu: unexpected end of file",
                          filename, jb->line);
    } else if (progress) {
        progress(ctx, total);
    }

    goto done;

failed:

    consumed = yajl_get_bytes_consumed(h);

    if (jb->failed) {
        if (jb->own_error && err != NULL) {
            /* an error of the parser's own: place it */
            snprintf(msg, sizeof(msg), "%.*s", (int) sizeof(msg) - 1,
                     err->msg);
            sf_error_set(err, SF_ERR_INVALID, "%s:%lu:%zu: %s", filename,
                         jb->line, col_base + consumed, msg);
        }
        rc = jb->failed;

    } else {
        sf_json_yajl_message(h, p, seg, msg, sizeof(msg));
        rc = sf_error_set(err, SF_ERR_INVALID, "%s:%lu:%zu: %s", filename,
                          jb->line, col_base + consumed + 1, msg);
    }

done:

    yajl_free(h);
    return rc;
}


/* A builder on an arena of its own and a read buffer, for one stream. */
static int
sf_json_stream_begin(sf_json_builder **jbp, char **chunkp, sf_error *err)
{
    char             *chunk;
    sf_arena         *a;
    sf_json_builder  *jb;

    chunk = malloc(SF_JSON_CHUNK);
    jb = malloc(sizeof(sf_json_builder));
    a = sf_arena_create(0);

    if (chunk == NULL || jb == NULL || a == NULL) {
        free(chunk);
        free(jb);
        sf_arena_destroy(a);
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }

    sf_json_builder_init(jb, a, err);
    *jbp = jb;
    *chunkp = chunk;
    return SF_OK;
}


static void
sf_json_stream_end(sf_json_builder *jb, char *chunk)
{
    sf_arena  *a = jb->arena;

    sf_json_builder_free(jb);
    free(jb);
    free(chunk);
    sf_arena_destroy(a);
}


/*
 * The file is fed to yajl one line at a time (long lines in chunks), so
 * that callbacks know the line they are on and errors can name a line and
 * a column.
 */
int
sf_json_stream_file(FILE *f, const char *filename, sf_json_element_cb cb,
    sf_progress_cb progress, void *ctx, sf_error *err)
{
    int               rc;
    char             *chunk;
    sf_json_builder  *jb;

    if (sf_json_stream_begin(&jb, &chunk, err) != SF_OK) {
        return SF_ERR_NOMEM;
    }

    jb->state = SF_JS_START;
    jb->cb = cb;
    jb->ctx = ctx;

    rc = sf_json_feed(f, filename, jb, chunk, progress, ctx, err);

    sf_json_stream_end(jb, chunk);
    return rc;
}


/* ---- streams of values: an array's elements, JSON lines ----------------- */

/* A fresh parser after a bad line (yajl cannot be reset). */
static yajl_handle
sf_json_lines_parser(sf_json_builder *jb)
{
    yajl_handle  h;

    h = yajl_alloc(&sf_json_callbacks, NULL, jb);
    if (h != NULL) {
        yajl_config(h, yajl_allow_multiple_values, 1);
    }
    return h;
}


/*
 * JSON lines: the end of a line (or of the file) closes its record.  A
 * line holds one value, or only white space.  Returns 0 to go on, or the
 * callback's code to stop.
 */
static int
sf_json_line_end(sf_json_builder *jb, yajl_handle *h, const char *filename,
    unsigned long line, int blank, int failed, const char *why, size_t col)
{
    int       rc;
    sf_error  e;

    if (!failed) {
        if (jb->depth > 0 || (jb->completed == 0 && !blank)) {
            why = "incomplete JSON value (a record must be on one line)";
            failed = 1;
        } else if (jb->completed > 1) {
            why = "more than one JSON value on the line";
            failed = 1;
        }
    }

    if (!failed) {
        rc = 0;
        if (jb->completed) {
            rc = jb->cb(jb->ctx, "", jb->index++, &jb->pending, line,
                        jb->err);
        }
        jb->completed = 0;
        sf_arena_reset(jb->arena);
        return rc;
    }

    jb->completed = 0;

    /* tell the caller, who may skip the line and go on */
    memset(&e, 0, sizeof(e));
    sf_error_set(&e, SF_ERR_INVALID, "%s:%lu:%zu: %s", filename, line, col,
                 why);
    if (jb->err) {
        *jb->err = e;
    }

    rc = jb->cb(jb->ctx, "", -1, NULL, line, jb->err);
    if (rc != 0) {
        return rc;
    }

    /* start again on the next line */
    jb->depth = 0;
    jb->failed = 0;
    jb->own_error = 0;
    sf_arena_reset(jb->arena);
    yajl_free(*h);
    *h = sf_json_lines_parser(jb);
    if (*h == NULL) {
        return sf_error_set(jb->err, SF_ERR_NOMEM, "out of memory");
    }
    return 0;
}


static int
sf_json_stream_lines(FILE *f, const char *filename,
    sf_json_stream_opts *o, sf_json_builder *jb, char *chunk,
    sf_error *err)
{
    int            rc, blank, failed;
    char          *p, *end, *nl, *q, msg[256];
    size_t         n, seg, col_base, consumed;
    uint64_t       total, last_progress;
    unsigned long  line;
    yajl_handle    h;
    yajl_status    st;

    h = sf_json_lines_parser(jb);
    if (h == NULL) {
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }

    rc = 0;
    total = 0;
    last_progress = 0;
    col_base = 0;
    line = jb->line;
    blank = 1;
    failed = 0;
    msg[0] = '\0';
    consumed = 0;

    while (rc == 0 && (o->max_bytes == 0 || total < o->max_bytes)) {
        n = SF_JSON_CHUNK;
        if (o->max_bytes && o->max_bytes - total < n) {
            n = (size_t) (o->max_bytes - total);
        }
        n = fread(chunk, 1, n, f);
        if (n == 0) {
            break;
        }
        total += n;
        end = chunk + n;

        for (p = chunk; rc == 0 && p < end; p += seg) {
            nl = memchr(p, '\n', (size_t) (end - p));
            seg = nl ? (size_t) (nl - p) + 1 : (size_t) (end - p);

            if (blank) {
                for (q = p; q < p + seg; q++) {
                    if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n') {
                        blank = 0;
                        break;
                    }
                }
            }

            if (!failed) {
                jb->line = line;
                st = yajl_parse(h, (const unsigned char *) p, seg);
                if (st != yajl_status_ok) {
                    failed = 1;
                    consumed = col_base + yajl_get_bytes_consumed(h);
                    if (jb->failed && !jb->own_error) {
                        /* the callback stopped the stream */
                        rc = jb->failed;
                        break;
                    }
                    if (jb->failed) {
                        snprintf(msg, sizeof(msg), "%.*s",
                                 (int) sizeof(msg) - 1,
                                 err ? err->msg : "invalid JSON");
                    } else {
                        sf_json_yajl_message(h, p, seg, msg, sizeof(msg));
                        consumed++;
                    }
                }
            }

            if (nl) {
                rc = sf_json_line_end(jb, &h, filename, line, blank, failed,
                                      msg, failed ? consumed : 1);
                line++;
                col_base = 0;
                blank = 1;
                failed = 0;
            } else {
                col_base += seg;
            }
        }

        if (o->progress && total - last_progress >= (1 << 20)) {
            o->progress(jb->ctx, total);
            last_progress = total;
        }
    }

    if (rc == 0 && ferror(f)) {
        rc = sf_error_set(err, SF_ERR_IO, "%s: read error", filename);
    }

    if (rc == 0) {
        /* the last line may lack its newline */
        if (!failed && !blank) {
            jb->line = line;
            st = yajl_complete_parse(h);
            if (st != yajl_status_ok) {
                failed = 1;
                if (jb->failed && !jb->own_error) {
                    rc = jb->failed;
                } else if (jb->failed) {
                    snprintf(msg, sizeof(msg), "%.*s",
                             (int) sizeof(msg) - 1,
                             err ? err->msg : "invalid JSON");
                } else {
                    sf_json_yajl_message(h, "", 0, msg, sizeof(msg));
                }
                consumed = col_base + 1;
            }
        }
        if (rc == 0 && (!blank || failed)) {
            rc = sf_json_line_end(jb, &h, filename, line, blank, failed, msg,
                                  failed ? consumed : 1);
        }
    }

    if (rc == 0 && o->progress) {
        o->progress(jb->ctx, total);
    }

    /* a last line without its newline counts too */
    o->lines_read = line - (o->first_line ? o->first_line : 1)
                    + (col_base > 0);

    if (h) {
        yajl_free(h);
    }
    return rc;
}


int
sf_json_stream_values(FILE *f, const char *filename,
    sf_json_stream_opts *o, sf_json_element_cb cb, void *ctx,
    sf_error *err)
{
    int               rc;
    char             *chunk;
    sf_json_builder  *jb;

    if (sf_json_stream_begin(&jb, &chunk, err) != SF_OK) {
        return SF_ERR_NOMEM;
    }

    jb->values = 1;
    jb->cb = cb;
    jb->ctx = ctx;
    jb->member[0] = '\0';
    if (o->first_line) {
        jb->line = o->first_line;
    }

    if (o->format == SF_JSON_LINES) {
        jb->state = SF_JS_LINES;
        rc = sf_json_stream_lines(f, filename, o, jb, chunk, err);

    } else {
        /* one array: its elements as a document's member's would be */
        jb->state = SF_JS_MEMBER;
        rc = sf_json_feed(f, filename, jb, chunk, o->progress, ctx, err);
    }

    sf_json_stream_end(jb, chunk);
    return rc;
}


/* ---- output --------------------------------------------------------------- */

int
sf_json_write(sf_buf *b, const sf_value *v)
{
    size_t  i;
    int     rc;

    switch (v->type) {

    case SF_NULL:
        return sf_buf_appends(b, "null");

    case SF_BOOL:
        return sf_buf_appends(b, v->u.boolean ? "true" : "false");

    case SF_NUMBER:
        return sf_buf_append_js_number(b, v->u.number);

    case SF_STRING:
        return sf_buf_append_json_string(b, v->u.str.p, v->u.str.len);

    case SF_ARRAY:
        rc = sf_buf_append(b, "[", 1);
        for (i = 0; rc == SF_OK && i < v->u.arr.n; i++) {
            if (i) {
                rc = sf_buf_append(b, ",", 1);
            }
            if (rc == SF_OK) {
                rc = sf_json_write(b, &v->u.arr.items[i]);
            }
        }
        return rc == SF_OK ? sf_buf_append(b, "]", 1) : rc;

    case SF_OBJECT:
        rc = sf_buf_append(b, "{", 1);
        for (i = 0; rc == SF_OK && i < v->u.obj.n; i++) {
            if (i) {
                rc = sf_buf_append(b, ",", 1);
            }
            if (rc == SF_OK) {
                rc = sf_buf_append_json_string(b, v->u.obj.members[i].name,
                                               v->u.obj.members[i].name_len);
            }
            if (rc == SF_OK) {
                rc = sf_buf_append(b, ":", 1);
            }
            if (rc == SF_OK) {
                rc = sf_json_write(b, &v->u.obj.members[i].value);
            }
        }
        return rc == SF_OK ? sf_buf_append(b, "}", 1) : rc;
    }

    return SF_ERR_INVALID;
}
