/*
 * storefrontctl: load, inspect and explain the storefront LMDB data.
 *
 *   storefrontctl [--db DIR] [--map-size SIZE] COMMAND [ARGS]
 *
 * Exit status: 0 success, 1 data or database error, 2 usage error.
 * Every diagnostic goes to stderr and starts with "storefrontctl: ".
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storefront.h"


#ifndef SF_VERSION
#define SF_VERSION  "0.1.0"
#endif

#define CTL_OK     0
#define CTL_ERROR  1
#define CTL_USAGE  2

#define CTL_NAME   "storefrontctl"


typedef struct {
    const char  *db_path;
    size_t       map_size;
} ctl_global;


static void
ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
ctl_err(const char *fmt, ...)
{
    va_list  ap;

    fputs(CTL_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}


static int
ctl_usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
ctl_usage_err(const char *fmt, ...)
{
    va_list  ap;

    fputs(CTL_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry '" CTL_NAME " --help' for more information.\n", stderr);
    return CTL_USAGE;
}


static int
ctl_nomem(void)
{
    ctl_err("out of memory");
    return CTL_ERROR;
}


/* Writes the whole buffer to f; 0 on success. */
static int
ctl_write(FILE *f, const sf_buf *b)
{
    if (b->len && fwrite(b->data, 1, b->len, f) != b->len) {
        return -1;
    }
    return 0;
}


/* Flushes stdout and reports a failed write (full disk, closed pipe). */
static int
ctl_finish_stdout(int rc)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        ctl_err("error writing to standard output: %s", strerror(errno));
        return CTL_ERROR;
    }
    return rc;
}


/* ---- command line parsing --------------------------------------------- */

/*
 * Options are GNU style: "--name value" or "--name=value"; "--" ends the
 * options.  The global options are accepted before and after the command.
 */

typedef struct {
    const char  *name;       /* without the leading "--" */
    int          has_arg;
    int          id;
} ctl_option;

enum {
    OPT_DB = 1, OPT_MAP_SIZE, OPT_HELP, OPT_VERSION,
    OPT_REPLACE, OPT_JSON, OPT_USER, OPT_ATTR, OPT_URL, OPT_QA
};

static const ctl_option ctl_global_options[] = {
    { "db", 1, OPT_DB },
    { "map-size", 1, OPT_MAP_SIZE },
    { "help", 0, OPT_HELP },
    { NULL, 0, 0 }
};


/* Parses sizes such as 1073741824, 512M, 1G, 64KiB (powers of 1024). */
static int
ctl_parse_size(const char *s, size_t *out)
{
    char                *end;
    unsigned long long   v, mult;

    if (*s < '0' || *s > '9') {
        return -1;
    }

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0) {
        return -1;
    }

    mult = 1;
    switch (*end) {
    case '\0':
        break;
    case 'k': case 'K':
        mult = 1ULL << 10;
        end++;
        break;
    case 'm': case 'M':
        mult = 1ULL << 20;
        end++;
        break;
    case 'g': case 'G':
        mult = 1ULL << 30;
        end++;
        break;
    case 't': case 'T':
        mult = 1ULL << 40;
        end++;
        break;
    default:
        return -1;
    }

    if (mult > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)) {
        end += strlen(end);
    }

    if (*end != '\0' || v == 0 || v > (unsigned long long) SIZE_MAX / mult) {
        return -1;
    }

    *out = (size_t) (v * mult);
    return 0;
}


static const ctl_option *
ctl_find_option(const ctl_option *opts, const char *name, size_t len)
{
    for (; opts != NULL && opts->name != NULL; opts++) {
        if (strlen(opts->name) == len && memcmp(opts->name, name, len) == 0) {
            return opts;
        }
    }
    return NULL;
}


typedef int (*ctl_option_handler)(void *ctx, int id, const char *value);

/*
 * Parses argv[0..argc) of one command: options of opts or global options
 * (handled into g), positionals collected into pos (room for argc).
 * Returns CTL_OK, CTL_USAGE (message printed) or -1 for --help.
 */
static int
ctl_parse_args(const char *cmd, int argc, char **argv, ctl_global *g,
    const ctl_option *opts, ctl_option_handler handler, void *ctx,
    char **pos, int *npos)
{
    int                 i, rc, only_pos;
    size_t              len;
    const char         *arg, *name, *eq, *value, *sep;
    const ctl_option   *o;

    *npos = 0;
    only_pos = 0;
    sep = *cmd ? ": " : "";

    for (i = 0; i < argc; i++) {
        arg = argv[i];

        if (only_pos || arg[0] != '-' || strcmp(arg, "-") == 0) {
            pos[(*npos)++] = argv[i];
            continue;
        }

        if (strcmp(arg, "--") == 0) {
            only_pos = 1;
            continue;
        }

        if (strcmp(arg, "-h") == 0) {
            return -1;
        }

        if (arg[1] != '-') {
            return ctl_usage_err("%s%sunknown option '%s'", cmd, sep, arg);
        }

        name = arg + 2;
        eq = strchr(name, '=');
        len = eq ? (size_t) (eq - name) : strlen(name);

        o = ctl_find_option(opts, name, len);
        if (o == NULL) {
            o = ctl_find_option(ctl_global_options, name, len);
        }
        if (o == NULL) {
            return ctl_usage_err("%s%sunknown option '--%.*s'", cmd, sep,
                                 (int) len, name);
        }

        value = NULL;
        if (o->has_arg) {
            if (eq) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                return ctl_usage_err("%s%soption '--%s' needs a value",
                                     cmd, sep, o->name);
            }
        } else if (eq) {
            return ctl_usage_err("%s%soption '--%s' takes no value",
                                 cmd, sep, o->name);
        }

        switch (o->id) {
        case OPT_HELP:
            return -1;
        case OPT_DB:
            if (*value == '\0') {
                return ctl_usage_err("%s%sempty --db", cmd, sep);
            }
            g->db_path = value;
            break;
        case OPT_MAP_SIZE:
            if (ctl_parse_size(value, &g->map_size) != 0) {
                return ctl_usage_err("%s%sinvalid --map-size \"%s\" "
                                     "(use e.g. 1073741824, 512M, 4G)",
                                     cmd, sep, value);
            }
            break;
        default:
            rc = handler(ctx, o->id, value);
            if (rc != CTL_OK) {
                return rc;
            }
        }
    }

    return CTL_OK;
}


static int
ctl_need_db(const char *cmd, const ctl_global *g)
{
    if (g->db_path == NULL || *g->db_path == '\0') {
        return ctl_usage_err("%s: no database: give --db DIR or set "
                             "STOREFRONT_DB", cmd);
    }
    return CTL_OK;
}


static int
ctl_open_db(const ctl_global *g, unsigned flags, sf_db **db)
{
    sf_error  err;

    memset(&err, 0, sizeof(err));
    if (sf_db_open(db, g->db_path, g->map_size, flags, &err) != SF_OK) {
        ctl_err("%s", err.msg);       /* names the path */
        return CTL_ERROR;
    }
    return CTL_OK;
}


/* A read snapshot of db, renewed and ready. */
static int
ctl_open_snapshot(const ctl_global *g, sf_db **db, sf_snapshot **snap)
{
    sf_error  err;

    if (ctl_open_db(g, SF_DB_READONLY, db) != CTL_OK) {
        return CTL_ERROR;
    }

    memset(&err, 0, sizeof(err));
    if (sf_snapshot_create(*db, snap, &err) != SF_OK
        || sf_snapshot_renew(*snap, &err) != SF_OK)
    {
        ctl_err("%s", err.msg);
        if (*snap) {
            sf_snapshot_free(*snap);
            *snap = NULL;
        }
        sf_db_close(*db);
        *db = NULL;
        return CTL_ERROR;
    }

    return CTL_OK;
}


static void
ctl_close_snapshot(sf_db *db, sf_snapshot *snap)
{
    if (snap) {
        sf_snapshot_reset(snap);
        sf_snapshot_free(snap);
    }
    if (db) {
        sf_db_close(db);
    }
}


static int
ctl_no_handler(void *ctx, int id, const char *value)
{
    (void) ctx;
    (void) id;
    (void) value;
    return CTL_OK;
}


/* ---- text tables ------------------------------------------------------- */

/* Display width of UTF-8 text: code points. */
static size_t
ctl_width(const char *s)
{
    size_t  w;

    for (w = 0; *s; s++) {
        if (((unsigned char) *s & 0xc0) != 0x80) {
            w++;
        }
    }
    return w;
}


/*
 * A text table: cells are copied with control characters replaced, and
 * columns are padded to their widest cell.
 */
typedef struct {
    size_t    ncols;
    size_t    nrows;
    size_t    cap;          /* rows */
    char    **cells;        /* nrows * ncols */
} ctl_table;


static int
ctl_table_row(ctl_table *t, const char *const *cells)
{
    char    **p, *c;
    size_t    i, j, n;

    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 32;
        p = realloc(t->cells, t->cap * t->ncols * sizeof(char *));
        if (p == NULL) {
            return -1;
        }
        t->cells = p;
    }

    for (i = 0; i < t->ncols; i++) {
        n = strlen(cells[i]);
        c = malloc(n + 1);
        if (c == NULL) {
            while (i-- > 0) {
                free(t->cells[t->nrows * t->ncols + i]);
            }
            return -1;
        }
        for (j = 0; j < n; j++) {
            c[j] = ((unsigned char) cells[i][j] < 0x20 || cells[i][j] == 0x7f)
                   ? '?' : cells[i][j];
        }
        c[n] = '\0';
        t->cells[t->nrows * t->ncols + i] = c;
    }

    t->nrows++;
    return 0;
}


static void
ctl_table_print(const ctl_table *t, FILE *f)
{
    size_t   r, c, w, width[16];

    for (c = 0; c < t->ncols && c < 16; c++) {
        width[c] = 0;
        for (r = 0; r < t->nrows; r++) {
            w = ctl_width(t->cells[r * t->ncols + c]);
            if (w > width[c]) {
                width[c] = w;
            }
        }
    }

    for (r = 0; r < t->nrows; r++) {
        for (c = 0; c < t->ncols; c++) {
            const char  *s = t->cells[r * t->ncols + c];

            fputs(s, f);
            if (c + 1 < t->ncols) {
                for (w = ctl_width(s); w < width[c] + 2; w++) {
                    fputc(' ', f);
                }
            }
        }
        fputc('\n', f);
    }
}


static void
ctl_table_free(ctl_table *t)
{
    size_t  i;

    for (i = 0; i < t->nrows * t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    t->cells = NULL;
    t->nrows = 0;
    t->cap = 0;
}


/* A JS-style number as a C string in buf (room for 32). */
static const char *
ctl_number(double x, char *buf, size_t size)
{
    sf_buf  b;

    sf_buf_init(&b);
    if (sf_buf_append_js_number(&b, x) != SF_OK) {
        snprintf(buf, size, "%.17g", x);
    } else {
        snprintf(buf, size, "%.*s", (int) b.len, b.data);
    }
    sf_buf_free(&b);
    return buf;
}


/* "1.0 GiB" style, for humans. */
static const char *
ctl_human_size(uint64_t n, char *buf, size_t size)
{
    static const char  *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double               v;
    int                  u;

    v = (double) n;
    for (u = 0; v >= 1024 && u < 4; u++) {
        v /= 1024;
    }

    if (u == 0) {
        snprintf(buf, size, "%" PRIu64 " B", n);
    } else {
        snprintf(buf, size, "%.1f %s", v, units[u]);
    }
    return buf;
}


/* ---- import ------------------------------------------------------------- */

typedef struct {
    char           *key;        /* NUL-terminated copy */
    size_t          key_len;
    char           *rec;
    size_t          len;
    unsigned long   line;
} ctl_record;

typedef struct ctl_import  ctl_import;

/*
 * One handler per top-level member of an import file.  Later data kinds
 * (profiles, campaigns, ...) add a row here.
 */
typedef int (*ctl_section_handler)(ctl_import *im, long index,
    const sf_value *element, unsigned long line);

typedef struct {
    const char           *name;
    ctl_section_handler   handler;
} ctl_section;

struct ctl_import {
    const char       *fname;        /* as shown in messages */
    int               failed;
    char              msg[1024];    /* our own error, when failed */

    ctl_record       *recs;
    size_t            nrecs;
    size_t            cap;
    size_t           *slots;        /* hash of keys: index + 1, 0 empty */
    size_t            nslots;
    sf_buf            compiled;

    int               progress;     /* stderr is a terminal */
    int               drawn;
    uint64_t          bytes;
    uint64_t          total;        /* file size, 0 when unknown */
    struct timespec   last_draw;
};


static int ctl_import_experiment(ctl_import *im, long index,
    const sf_value *el, unsigned long line);

static const ctl_section ctl_sections[] = {
    { "experiments", ctl_import_experiment },
    { NULL, NULL }
};


static void
ctl_import_fail(ctl_import *im, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
ctl_import_fail(ctl_import *im, const char *fmt, ...)
{
    va_list  ap;

    if (im->failed) {
        return;
    }
    im->failed = 1;
    va_start(ap, fmt);
    vsnprintf(im->msg, sizeof(im->msg), fmt, ap);
    va_end(ap);
}


static void
ctl_progress_draw(ctl_import *im, int force)
{
    char              a[32], b[32];
    struct timespec   now;
    long              ms;

    if (!im->progress) {
        return;
    }

    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (now.tv_sec - im->last_draw.tv_sec) * 1000
         + (now.tv_nsec - im->last_draw.tv_nsec) / 1000000;
    if (!force && im->drawn && ms < 100) {
        return;
    }
    im->last_draw = now;
    im->drawn = 1;

    if (im->total) {
        fprintf(stderr, "\r\033[Kimporting %s: %s / %s (%d%%), "
                "%zu experiments", im->fname,
                ctl_human_size(im->bytes, a, sizeof(a)),
                ctl_human_size(im->total, b, sizeof(b)),
                (int) (im->bytes * 100 / im->total), im->nrecs);
    } else {
        fprintf(stderr, "\r\033[Kimporting %s: %s, %zu experiments",
                im->fname, ctl_human_size(im->bytes, a, sizeof(a)),
                im->nrecs);
    }
    fflush(stderr);
}


static void
ctl_progress_clear(ctl_import *im)
{
    if (im->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        im->drawn = 0;
    }
}


static void
ctl_import_progress(void *ctx, uint64_t bytes_read)
{
    ctl_import  *im = ctx;

    im->bytes = bytes_read;
    ctl_progress_draw(im, 0);
}


static uint32_t
ctl_key_hash(const char *s, size_t n)
{
    uint32_t  h = 0x811c9dc5;

    while (n--) {
        h = (h ^ (unsigned char) *s++) * 0x01000193;
    }
    return h;
}


/* The record with this key, or NULL. */
static ctl_record *
ctl_import_lookup(ctl_import *im, const char *key, size_t len)
{
    size_t       i, mask;
    ctl_record  *r;

    if (im->nslots == 0) {
        return NULL;
    }

    mask = im->nslots - 1;
    for (i = ctl_key_hash(key, len) & mask; im->slots[i]; i = (i + 1) & mask) {
        r = &im->recs[im->slots[i] - 1];
        if (r->key_len == len && memcmp(r->key, key, len) == 0) {
            return r;
        }
    }
    return NULL;
}


static void
ctl_import_slot(ctl_import *im, size_t idx)
{
    size_t       i, mask;
    ctl_record  *r;

    mask = im->nslots - 1;
    r = &im->recs[idx];
    i = ctl_key_hash(r->key, r->key_len) & mask;
    while (im->slots[i]) {
        i = (i + 1) & mask;
    }
    im->slots[i] = idx + 1;
}


/* Adds recs[idx] to the key hash, growing it at half load. */
static int
ctl_import_index(ctl_import *im, size_t idx)
{
    size_t   i, n, *slots;

    if ((idx + 1) * 2 > im->nslots) {
        n = im->nslots ? im->nslots * 2 : 64;
        slots = calloc(n, sizeof(size_t));
        if (slots == NULL) {
            return -1;
        }
        free(im->slots);
        im->slots = slots;
        im->nslots = n;
        for (i = 0; i < idx; i++) {
            ctl_import_slot(im, i);
        }
    }

    ctl_import_slot(im, idx);
    return 0;
}


/* Names an experiment in messages: "experiment "KEY"" or by position. */
static void
ctl_experiment_name(const sf_value *el, long index, char *buf, size_t size)
{
    const sf_value  *k;
    sf_buf           b;

    k = sf_value_member(el, "key", 3);
    if (k == NULL || k->type != SF_STRING) {
        snprintf(buf, size, "experiments[%ld]", index);
        return;
    }

    sf_buf_init(&b);
    if (sf_buf_appends(&b, "experiment ") != SF_OK
        || sf_buf_append_json_string(&b, k->u.str.p, k->u.str.len) != SF_OK)
    {
        snprintf(buf, size, "experiments[%ld]", index);
    } else {
        snprintf(buf, size, "%.*s", (int) b.len, b.data);
    }
    sf_buf_free(&b);
}


/*
 * The problem in a compile message without a leading 'experiment "KEY": '
 * or 'experiment: ' (the caller names the experiment itself).
 */
static const char *
ctl_problem(const char *msg)
{
    const char  *p;

    if (strncmp(msg, "experiment", 10) != 0) {
        return msg;
    }

    p = msg + 10;
    if (p[0] == ' ' && p[1] == '"') {
        for (p += 2; *p && *p != '"'; p++) {
            if (*p == '\\' && p[1]) {
                p++;
            }
        }
        if (*p != '"') {
            return msg;
        }
        p++;
    }

    return (p[0] == ':' && p[1] == ' ') ? p + 2 : msg;
}


static int
ctl_import_experiment(ctl_import *im, long index, const sf_value *el,
    unsigned long line)
{
    char          name[600];
    const char   *key;
    size_t        key_len;
    ctl_record   *r, *dup;
    sf_error      err;

    if (index < 0) {
        ctl_import_fail(im, "%s:%lu: member \"experiments\" must be an array",
                        im->fname, line);
        return SF_ERR_INVALID;
    }

    ctl_experiment_name(el, index, name, sizeof(name));

    if (el->type != SF_OBJECT) {
        ctl_import_fail(im, "%s:%lu: %s: an experiment must be a JSON object",
                        im->fname, line, name);
        return SF_ERR_INVALID;
    }

    memset(&err, 0, sizeof(err));
    im->compiled.len = 0;
    if (sf_experiment_compile(el, &im->compiled, &err) != SF_OK) {
        ctl_import_fail(im, "%s:%lu: %s: %s", im->fname, line, name,
                        err.msg[0] ? ctl_problem(err.msg)
                                   : "invalid experiment");
        return SF_ERR_INVALID;
    }

    if (sf_experiment_key(im->compiled.data, im->compiled.len, &key, &key_len)
        != SF_OK)
    {
        ctl_import_fail(im, "%s:%lu: %s: cannot read the compiled key",
                        im->fname, line, name);
        return SF_ERR_INVALID;
    }

    dup = ctl_import_lookup(im, key, key_len);
    if (dup != NULL) {
        ctl_import_fail(im, "%s:%lu: %s: duplicate key (first defined on "
                        "line %lu)", im->fname, line, name, dup->line);
        return SF_ERR_INVALID;
    }

    if (im->nrecs == im->cap) {
        size_t       cap = im->cap ? im->cap * 2 : 64;
        ctl_record  *p = realloc(im->recs, cap * sizeof(ctl_record));

        if (p == NULL) {
            goto nomem;
        }
        im->recs = p;
        im->cap = cap;
    }

    r = &im->recs[im->nrecs];
    r->key = malloc(key_len + 1);
    r->rec = malloc(im->compiled.len ? im->compiled.len : 1);
    if (r->key == NULL || r->rec == NULL) {
        free(r->key);
        free(r->rec);
        goto nomem;
    }
    memcpy(r->key, key, key_len);
    r->key[key_len] = '\0';
    r->key_len = key_len;
    memcpy(r->rec, im->compiled.data, im->compiled.len);
    r->len = im->compiled.len;
    r->line = line;

    if (ctl_import_index(im, im->nrecs) != 0) {
        free(r->key);
        free(r->rec);
        goto nomem;
    }
    im->nrecs++;

    ctl_progress_draw(im, 0);
    return SF_OK;

nomem:

    ctl_import_fail(im, "out of memory");
    return SF_ERR_NOMEM;
}


static int
ctl_import_element(void *ctx, const char *member, long index,
    const sf_value *element, unsigned long line, sf_error *err)
{
    ctl_import         *im = ctx;
    const ctl_section  *s;
    int                 rc;

    for (s = ctl_sections; s->name != NULL; s++) {
        if (strcmp(s->name, member) == 0) {
            break;
        }
    }

    if (s->name == NULL) {
        char     known[256];
        size_t   n = 0;

        known[0] = '\0';
        for (s = ctl_sections; s->name != NULL && n < sizeof(known); s++) {
            n += snprintf(known + n, sizeof(known) - n, "%s\"%s\"",
                          n ? ", " : "", s->name);
        }
        ctl_import_fail(im, "%s:%lu: unknown member \"%s\" (known: %s)",
                        im->fname, line, member, known);
        rc = SF_ERR_INVALID;

    } else {
        rc = s->handler(im, index, element, line);
    }

    if (rc != SF_OK) {
        sf_error_set(err, rc, "%s", im->msg);
    }
    return rc;
}


static int
ctl_record_cmp(const void *a, const void *b)
{
    const ctl_record  *x = a, *y = b;
    size_t             n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int                c = memcmp(x->key, y->key, n);

    if (c != 0) {
        return c;
    }
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}


typedef struct {
    ctl_import  *im;
    size_t       removed;
} ctl_count_ctx;


static int
ctl_count_removed(void *ctx, const void *rec, size_t len)
{
    ctl_count_ctx  *c = ctx;
    const char     *key;
    size_t          key_len;

    if (sf_experiment_key(rec, len, &key, &key_len) == SF_OK
        && ctl_import_lookup(c->im, key, key_len) == NULL)
    {
        c->removed++;
    }
    return 0;
}


/* Experiments in the database that --replace would remove. */
static size_t
ctl_count_replaced(const ctl_global *g, ctl_import *im)
{
    sf_db          *db = NULL;
    sf_snapshot    *snap = NULL;
    sf_error        err;
    ctl_count_ctx   c;

    c.im = im;
    c.removed = 0;

    memset(&err, 0, sizeof(err));
    if (sf_db_open(&db, g->db_path, g->map_size, SF_DB_READONLY, &err)
        != SF_OK)
    {
        return 0;
    }

    if (sf_snapshot_create(db, &snap, &err) == SF_OK) {
        if (sf_snapshot_renew(snap, &err) == SF_OK) {
            sf_snapshot_each_experiment(snap, ctl_count_removed, &c, &err);
            sf_snapshot_reset(snap);
        }
        sf_snapshot_free(snap);
    }
    sf_db_close(db);

    return c.removed;
}


typedef struct {
    int  replace;
} ctl_import_opts;


static int
ctl_import_option(void *ctx, int id, const char *value)
{
    ctl_import_opts  *o = ctx;

    (void) value;
    if (id == OPT_REPLACE) {
        o->replace = 1;
    }
    return CTL_OK;
}


static const ctl_option ctl_import_options[] = {
    { "replace", 0, OPT_REPLACE },
    { NULL, 0, 0 }
};


static int
ctl_cmd_import(ctl_global *g, int argc, char **argv, char **pos)
{
    int               rc, npos, ret;
    size_t            i, removed;
    FILE             *f;
    struct stat       st;
    sf_db            *db;
    sf_txn           *txn;
    sf_error          err;
    ctl_import        im;
    ctl_import_opts   opts;

    memset(&opts, 0, sizeof(opts));
    rc = ctl_parse_args("import", argc, argv, g, ctl_import_options,
                        ctl_import_option, &opts, pos, &npos);
    if (rc != CTL_OK) {
        return rc;
    }
    if (npos != 1) {
        return ctl_usage_err("import: %s", npos ? "too many arguments"
                                                : "missing FILE (or - for "
                                                  "standard input)");
    }
    if ((rc = ctl_need_db("import", g)) != CTL_OK) {
        return rc;
    }

    memset(&im, 0, sizeof(im));
    sf_buf_init(&im.compiled);

    if (strcmp(pos[0], "-") == 0) {
        f = stdin;
        im.fname = "<stdin>";
    } else {
        f = fopen(pos[0], "r");
        if (f == NULL) {
            ctl_err("%s: %s", pos[0], strerror(errno));
            return CTL_ERROR;
        }
        im.fname = pos[0];
    }

    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
        im.total = (uint64_t) st.st_size;
    }
    im.progress = isatty(STDERR_FILENO);

    ret = CTL_ERROR;
    db = NULL;
    txn = NULL;
    memset(&err, 0, sizeof(err));

    rc = sf_json_stream_file(f, im.fname, ctl_import_element,
                             ctl_import_progress, &im, &err);
    ctl_progress_clear(&im);

    if (f != stdin) {
        fclose(f);
    }

    if (rc != SF_OK) {
        ctl_err("%s", im.failed ? im.msg
                      : (err.msg[0] ? err.msg : "import failed"));
        goto done;
    }

    /* parsed and valid: now one write transaction, all or nothing */

    removed = opts.replace ? ctl_count_replaced(g, &im) : 0;

    qsort(im.recs, im.nrecs, sizeof(ctl_record), ctl_record_cmp);

    if (ctl_open_db(g, SF_DB_CREATE, &db) != CTL_OK) {
        goto done;
    }

    if (sf_txn_begin(db, &txn, &err) != SF_OK) {
        txn = NULL;
        goto db_failed;
    }

    if (opts.replace && sf_txn_clear_experiments(txn, &err) != SF_OK) {
        goto db_failed;
    }

    for (i = 0; i < im.nrecs; i++) {
        if (sf_txn_put_experiment(txn, im.recs[i].rec, im.recs[i].len, &err)
            != SF_OK)
        {
            goto db_failed;
        }
    }

    rc = sf_txn_commit(txn, &err);
    txn = NULL;
    if (rc != SF_OK) {
        goto db_failed;
    }

    if (opts.replace) {
        printf("imported %zu experiment%s into %s (%zu removed)\n", im.nrecs,
               im.nrecs == 1 ? "" : "s", g->db_path, removed);
    } else {
        printf("imported %zu experiment%s into %s\n", im.nrecs,
               im.nrecs == 1 ? "" : "s", g->db_path);
    }
    ret = ctl_finish_stdout(CTL_OK);
    goto done;

db_failed:

    if (txn) {
        sf_txn_abort(txn);
    }
    if (err.code == SF_ERR_MAP_FULL) {
        ctl_err("%s: the database map is full; nothing was imported: rerun "
                "with a larger --map-size (e.g. --map-size 4G)", g->db_path);
    } else {
        ctl_err("%s: %s; nothing was imported", g->db_path, err.msg);
    }

done:

    if (db) {
        sf_db_close(db);
    }
    for (i = 0; i < im.nrecs; i++) {
        free(im.recs[i].key);
        free(im.recs[i].rec);
    }
    free(im.recs);
    free(im.slots);
    sf_buf_free(&im.compiled);
    return ret;
}


/* ---- export ------------------------------------------------------------- */

typedef struct {
    FILE    *out;
    sf_buf   buf;
    size_t   n;
    int      failed;
} ctl_export;


static int
ctl_export_record(void *ctx, const void *rec, size_t len)
{
    ctl_export  *x = ctx;

    if (sf_buf_appends(&x->buf, x->n ? ",\n" : "\n") != SF_OK
        || sf_experiment_to_json(rec, len, &x->buf) != SF_OK)
    {
        x->failed = 1;
        return 1;
    }
    x->n++;

    if (x->buf.len >= 1 << 20) {
        if (ctl_write(x->out, &x->buf) != 0) {
            x->failed = 2;
            return 1;
        }
        x->buf.len = 0;
    }
    return 0;
}


static int
ctl_cmd_export(ctl_global *g, int argc, char **argv, char **pos)
{
    int           rc, npos, fd, ret;
    char         *tmp;
    const char   *target;
    mode_t        mask;
    sf_db        *db;
    sf_snapshot  *snap;
    sf_error      err;
    ctl_export    x;

    rc = ctl_parse_args("export", argc, argv, g, NULL, ctl_no_handler, NULL,
                        pos, &npos);
    if (rc != CTL_OK) {
        return rc;
    }
    if (npos > 1) {
        return ctl_usage_err("export: too many arguments");
    }
    if ((rc = ctl_need_db("export", g)) != CTL_OK) {
        return rc;
    }

    target = (npos == 1 && strcmp(pos[0], "-") != 0) ? pos[0] : NULL;

    if (ctl_open_snapshot(g, &db, &snap) != CTL_OK) {
        return CTL_ERROR;
    }

    memset(&x, 0, sizeof(x));
    sf_buf_init(&x.buf);
    tmp = NULL;
    ret = CTL_ERROR;

    if (target) {
        /* written beside the target and renamed: never a partial file */
        tmp = malloc(strlen(target) + sizeof(".tmp.XXXXXX"));
        if (tmp == NULL) {
            ctl_nomem();
            goto done;
        }
        sprintf(tmp, "%s.tmp.XXXXXX", target);
        fd = mkstemp(tmp);
        if (fd == -1) {
            ctl_err("%s: %s", target, strerror(errno));
            free(tmp);
            tmp = NULL;
            goto done;
        }
        mask = umask(0);
        umask(mask);
        fchmod(fd, 0666 & ~mask);
        x.out = fdopen(fd, "w");
        if (x.out == NULL) {
            ctl_err("%s: %s", tmp, strerror(errno));
            close(fd);
            goto done;
        }
    } else {
        x.out = stdout;
    }

    memset(&err, 0, sizeof(err));
    if (sf_buf_appends(&x.buf, "{\"experiments\":[") != SF_OK) {
        ctl_nomem();
        goto done;
    }

    rc = sf_snapshot_each_experiment(snap, ctl_export_record, &x, &err);
    if (x.failed == 1) {
        ctl_nomem();
        goto done;
    }
    if (rc != SF_OK && !x.failed) {
        ctl_err("%s", err.msg);
        goto done;
    }

    if (!x.failed) {
        if (sf_buf_appends(&x.buf, x.n ? "\n]}\n" : "]}\n") != SF_OK) {
            ctl_nomem();
            goto done;
        }
        if (ctl_write(x.out, &x.buf) != 0) {
            x.failed = 2;
        }
    }

    if (x.out != stdout) {
        if (fflush(x.out) != 0 || fsync(fileno(x.out)) != 0) {
            x.failed = 2;
        }
        if (fclose(x.out) != 0) {
            x.failed = 2;
        }
        x.out = NULL;
        if (x.failed) {
            ctl_err("%s: %s", target, strerror(errno));
            goto done;
        }
        if (rename(tmp, target) != 0) {
            ctl_err("%s: %s", target, strerror(errno));
            goto done;
        }
        free(tmp);
        tmp = NULL;
        ret = CTL_OK;

    } else {
        /* a failed write sets the stream's error flag: reported here */
        ret = ctl_finish_stdout(x.failed ? CTL_ERROR : CTL_OK);
    }

done:

    if (x.out != NULL && x.out != stdout) {
        fclose(x.out);
    }
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    sf_buf_free(&x.buf);
    ctl_close_snapshot(db, snap);
    return ret;
}


/* ---- list --------------------------------------------------------------- */

typedef struct {
    int          json;
    int          failed;
    sf_arena    *arena;
    sf_buf       rec_json;
    sf_buf       out;         /* --json output */
    size_t       n;
    ctl_table    table;
} ctl_list;


static int
ctl_list_option(void *ctx, int id, const char *value)
{
    (void) value;
    if (id == OPT_JSON) {
        *(int *) ctx = 1;
    }
    return CTL_OK;
}


static const ctl_option ctl_json_options[] = {
    { "json", 0, OPT_JSON },
    { NULL, 0, 0 }
};


/* The string value v, or dflt, copied into buf. */
static const char *
ctl_str(const sf_value *v, const char *dflt, char *buf, size_t size)
{
    if (v != NULL && v->type == SF_STRING) {
        snprintf(buf, size, "%.*s", (int) v->u.str.len, v->u.str.p);
    } else {
        snprintf(buf, size, "%s", dflt);
    }
    return buf;
}


static int
ctl_list_record(void *ctx, const void *rec, size_t len)
{
    ctl_list        *l = ctx;
    sf_value         e;
    const sf_value  *key, *active, *vars, *cov, *w, *ns, *ha, *fa, *hv, *seed;
    sf_error         err;
    sf_buf          *o;
    size_t           i;
    int              is_active, nvars;
    double           coverage;
    char             k[512], hattr[300], fattr[256], covs[32], num[32],
                     nss[600], ws[256], nvs[16];
    const char      *cells[7];

    sf_arena_reset(l->arena);
    l->rec_json.len = 0;
    if (sf_experiment_to_json(rec, len, &l->rec_json) != SF_OK
        || sf_json_parse(l->rec_json.data, l->rec_json.len, l->arena, &e,
                         &err) != SF_OK)
    {
        l->failed = 1;
        return 1;
    }

    key = sf_value_member(&e, "key", 3);
    active = sf_value_member(&e, "active", 6);
    vars = sf_value_member(&e, "variations", 10);
    cov = sf_value_member(&e, "coverage", 8);
    w = sf_value_member(&e, "weights", 7);
    ns = sf_value_member(&e, "namespace", 9);
    ha = sf_value_member(&e, "hashAttribute", 13);
    fa = sf_value_member(&e, "fallbackAttribute", 17);
    hv = sf_value_member(&e, "hashVersion", 11);
    seed = sf_value_member(&e, "seed", 4);

    is_active = !(active && active->type == SF_BOOL && !active->u.boolean);
    nvars = (vars && vars->type == SF_ARRAY) ? (int) vars->u.arr.n : 0;
    coverage = (cov && cov->type == SF_NUMBER) ? cov->u.number : 1;
    if (!(w && w->type == SF_ARRAY)) {
        w = NULL;
    }
    if (!(ns && ns->type == SF_ARRAY && ns->u.arr.n == 3)) {
        ns = NULL;
    }

    if (l->json) {
        o = &l->out;
        if (sf_buf_appends(o, l->n ? ",\n{\"key\":" : "\n{\"key\":") != SF_OK
            || (key ? sf_json_write(o, key)
                    : sf_buf_appends(o, "null")) != SF_OK
            || sf_buf_printf(o, ",\"active\":%s,\"variations\":%d"
                             ",\"coverage\":",
                             is_active ? "true" : "false", nvars) != SF_OK
            || sf_buf_append_js_number(o, coverage) != SF_OK
            || sf_buf_appends(o, ",\"weights\":") != SF_OK
            || (w ? sf_json_write(o, w) : sf_buf_appends(o, "null")) != SF_OK
            || sf_buf_appends(o, ",\"namespace\":") != SF_OK
            || (ns ? sf_json_write(o, ns)
                   : sf_buf_appends(o, "null")) != SF_OK
            || sf_buf_appends(o, ",\"hash_attribute\":") != SF_OK
            || (ha && ha->type == SF_STRING
                ? sf_json_write(o, ha)
                : sf_buf_appends(o, "\"id\"")) != SF_OK
            || sf_buf_appends(o, ",\"fallback_attribute\":") != SF_OK
            || (fa && fa->type == SF_STRING
                ? sf_json_write(o, fa)
                : sf_buf_appends(o, "null")) != SF_OK
            || sf_buf_appends(o, ",\"hash_version\":") != SF_OK
            || sf_buf_append_js_number(o, hv && hv->type == SF_NUMBER
                                          ? hv->u.number : 1) != SF_OK
            || sf_buf_appends(o, ",\"seed\":") != SF_OK
            || (seed && seed->type == SF_STRING ? sf_json_write(o, seed)
                : key ? sf_json_write(o, key)
                : sf_buf_appends(o, "null")) != SF_OK
            || sf_buf_appends(o, "}") != SF_OK)
        {
            l->failed = 1;
            return 1;
        }
        l->n++;
        return 0;
    }

    ctl_str(key, "?", k, sizeof(k));
    snprintf(nvs, sizeof(nvs), "%d", nvars);
    ctl_number(coverage, covs, sizeof(covs));

    if (w) {
        size_t  n = 0;

        ws[0] = '\0';
        for (i = 0; i < w->u.arr.n && n < sizeof(ws); i++) {
            const sf_value  *x = &w->u.arr.items[i];

            n += snprintf(ws + n, sizeof(ws) - n, "%s%s", i ? "/" : "",
                          x->type == SF_NUMBER
                          ? ctl_number(x->u.number, num, sizeof(num)) : "?");
        }
    } else {
        snprintf(ws, sizeof(ws), "equal");
    }

    if (ns) {
        char  a[32], b[32], id[256];

        snprintf(nss, sizeof(nss), "%s [%s,%s)",
                 ctl_str(&ns->u.arr.items[0], "?", id, sizeof(id)),
                 ns->u.arr.items[1].type == SF_NUMBER
                 ? ctl_number(ns->u.arr.items[1].u.number, a, sizeof(a)) : "?",
                 ns->u.arr.items[2].type == SF_NUMBER
                 ? ctl_number(ns->u.arr.items[2].u.number, b, sizeof(b)) : "?");
    } else {
        snprintf(nss, sizeof(nss), "-");
    }

    ctl_str(ha, "id", hattr, sizeof(hattr));
    if (fa && fa->type == SF_STRING) {
        size_t  n = strlen(hattr);

        snprintf(hattr + n, sizeof(hattr) - n, " (fallback %s)",
                 ctl_str(fa, "", fattr, sizeof(fattr)));
    }

    cells[0] = k;
    cells[1] = is_active ? "active" : "inactive";
    cells[2] = nvs;
    cells[3] = ws;
    cells[4] = covs;
    cells[5] = nss;
    cells[6] = hattr;

    if (ctl_table_row(&l->table, cells) != 0) {
        l->failed = 1;
        return 1;
    }
    l->n++;
    return 0;
}


static int
ctl_cmd_list(ctl_global *g, int argc, char **argv, char **pos)
{
    static const char  *head[] = { "KEY", "STATUS", "VARIATIONS", "WEIGHTS",
                                   "COVERAGE", "NAMESPACE", "HASH ATTRIBUTE" };
    int           rc, npos, json, ret;
    sf_db        *db;
    sf_snapshot  *snap;
    sf_error      err;
    ctl_list      l;

    json = 0;
    rc = ctl_parse_args("list", argc, argv, g, ctl_json_options,
                        ctl_list_option, &json, pos, &npos);
    if (rc != CTL_OK) {
        return rc;
    }
    if (npos > 0) {
        return ctl_usage_err("list: too many arguments");
    }
    if ((rc = ctl_need_db("list", g)) != CTL_OK) {
        return rc;
    }

    if (ctl_open_snapshot(g, &db, &snap) != CTL_OK) {
        return CTL_ERROR;
    }

    memset(&l, 0, sizeof(l));
    l.json = json;
    l.table.ncols = 7;
    sf_buf_init(&l.rec_json);
    sf_buf_init(&l.out);
    l.arena = sf_arena_create(0);
    ret = CTL_ERROR;

    if (l.arena == NULL || ctl_table_row(&l.table, head) != 0
        || sf_buf_appends(&l.out, "{\"experiments\":[") != SF_OK)
    {
        ctl_nomem();
        goto done;
    }

    memset(&err, 0, sizeof(err));
    rc = sf_snapshot_each_experiment(snap, ctl_list_record, &l, &err);
    if (l.failed) {
        ctl_err("%s: cannot decode a stored experiment", g->db_path);
        goto done;
    }
    if (rc != SF_OK) {
        ctl_err("%s", err.msg);
        goto done;
    }

    if (json) {
        if (sf_buf_appends(&l.out, l.n ? "\n]}\n" : "]}\n") != SF_OK) {
            ctl_nomem();
            goto done;
        }
        ctl_write(stdout, &l.out);
    } else if (l.n == 0) {
        printf("no experiments\n");
    } else {
        ctl_table_print(&l.table, stdout);
    }
    ret = ctl_finish_stdout(CTL_OK);

done:

    ctl_table_free(&l.table);
    sf_buf_free(&l.rec_json);
    sf_buf_free(&l.out);
    sf_arena_destroy(l.arena);
    ctl_close_snapshot(db, snap);
    return ret;
}


/* ---- explain ------------------------------------------------------------ */

typedef struct {
    int          json;
    int          qa;
    const char  *user;
    const char  *url;
    sf_member   *attrs;
    size_t       nattrs;
    size_t       cap;
} ctl_explain_opts;


/* Sets an attribute; a repeated name replaces the earlier value. */
static int
ctl_explain_set_attr(ctl_explain_opts *o, const char *name, size_t name_len,
    const char *value)
{
    size_t      i;
    sf_member  *m;

    for (i = 0; i < o->nattrs; i++) {
        if (o->attrs[i].name_len == name_len
            && memcmp(o->attrs[i].name, name, name_len) == 0)
        {
            break;
        }
    }

    if (i == o->nattrs) {
        if (o->nattrs == o->cap) {
            o->cap = o->cap ? o->cap * 2 : 8;
            m = realloc(o->attrs, o->cap * sizeof(sf_member));
            if (m == NULL) {
                return ctl_nomem();
            }
            o->attrs = m;
        }
        o->nattrs++;
    }

    m = &o->attrs[i];
    m->name = name;
    m->name_len = name_len;
    m->value.type = SF_STRING;
    m->value.u.str.p = value;
    m->value.u.str.len = strlen(value);
    return CTL_OK;
}


static int
ctl_explain_option(void *ctx, int id, const char *value)
{
    ctl_explain_opts  *o = ctx;
    const char        *eq;

    switch (id) {
    case OPT_JSON:
        o->json = 1;
        break;
    case OPT_QA:
        o->qa = 1;
        break;
    case OPT_URL:
        o->url = value;
        break;
    case OPT_USER:
        o->user = value;
        return ctl_explain_set_attr(o, "id", 2, value);
    case OPT_ATTR:
        eq = strchr(value, '=');
        if (eq == NULL || eq == value) {
            return ctl_usage_err("explain: --attr needs NAME=VALUE, "
                                 "got \"%s\"", value);
        }
        return ctl_explain_set_attr(o, value, (size_t) (eq - value), eq + 1);
    }
    return CTL_OK;
}


static const ctl_option ctl_explain_options[] = {
    { "json", 0, OPT_JSON },
    { "user", 1, OPT_USER },
    { "attr", 1, OPT_ATTR },
    { "url", 1, OPT_URL },
    { "qa", 0, OPT_QA },
    { NULL, 0, 0 }
};


typedef struct {
    const ctl_explain_opts  *opts;
    const sf_request        *req;
    sf_buf                   out;
    ctl_table                table;
    size_t                   n;
    int                      failed;
} ctl_explain;


static int
ctl_explain_record(void *ctx, const void *rec, size_t len)
{
    ctl_explain    *x = ctx;
    sf_assignment   a;
    sf_buf         *o = &x->out;
    char            key[512], var[16], vkey[512], hash[32], seed[512],
                    attr[512], value[80];
    const char     *cells[9];

    memset(&a, 0, sizeof(a));
    if (sf_experiment_evaluate(rec, len, x->req, &a) != SF_OK) {
        x->failed = 1;
        return 1;
    }

    if (x->opts->json) {
        if (sf_buf_appends(o, x->n ? ",\n{\"key\":" : "\n{\"key\":") != SF_OK
            || sf_buf_append_json_string(o, a.key, a.key_len) != SF_OK
            || sf_buf_printf(o, ",\"in_experiment\":%s,\"variation\":%d"
                             ",\"variation_key\":",
                             a.in_experiment ? "true" : "false",
                             a.variation) != SF_OK
            || sf_buf_append_json_string(o, a.variation_key,
                                         a.variation_key_len) != SF_OK
            || sf_buf_appends(o, ",\"value\":") != SF_OK
            || (a.value && a.value_len
                ? sf_buf_append(o, a.value, a.value_len)
                : sf_buf_appends(o, "null")) != SF_OK
            || sf_buf_appends(o, ",\"hash\":") != SF_OK
            || (a.hash_computed
                ? sf_buf_append_js_number(o, a.hash)
                : sf_buf_appends(o, "null")) != SF_OK
            || sf_buf_printf(o, ",\"hash_used\":%s,\"seed\":",
                             a.hash_used ? "true" : "false") != SF_OK
            || sf_buf_append_json_string(o, a.seed, a.seed_len) != SF_OK
            || sf_buf_appends(o, ",\"hash_attribute\":") != SF_OK
            || sf_buf_append_json_string(o, a.hash_attribute,
                                         a.hash_attribute_len) != SF_OK
            || sf_buf_appends(o, ",\"reason\":") != SF_OK
            || sf_buf_append_json_string(o, sf_reason_name(a.reason),
                                         strlen(sf_reason_name(a.reason)))
               != SF_OK
            || sf_buf_appends(o, "}") != SF_OK)
        {
            x->failed = 2;
            return 1;
        }
        x->n++;
        return 0;
    }

    snprintf(key, sizeof(key), "%.*s", (int) a.key_len, a.key);
    snprintf(var, sizeof(var), "%d", a.variation);
    snprintf(vkey, sizeof(vkey), "%.*s", (int) a.variation_key_len,
             a.variation_key);
    if (a.hash_computed) {
        ctl_number(a.hash, hash, sizeof(hash));
    } else {
        snprintf(hash, sizeof(hash), "-");
    }
    snprintf(seed, sizeof(seed), "%.*s", (int) a.seed_len, a.seed);
    snprintf(attr, sizeof(attr), "%.*s", (int) a.hash_attribute_len,
             a.hash_attribute);
    if (a.value == NULL || a.value_len == 0) {
        snprintf(value, sizeof(value), "-");
    } else if (a.value_len < 60) {
        snprintf(value, sizeof(value), "%.*s", (int) a.value_len, a.value);
    } else {
        snprintf(value, sizeof(value), "%.56s...", a.value);
    }

    cells[0] = key;
    cells[1] = a.in_experiment ? "yes" : "no";
    cells[2] = var;
    cells[3] = vkey;
    cells[4] = hash;
    cells[5] = seed;
    cells[6] = attr[0] ? attr : "-";
    cells[7] = sf_reason_name(a.reason);
    cells[8] = value;

    if (ctl_table_row(&x->table, cells) != 0) {
        x->failed = 2;
        return 1;
    }
    x->n++;
    return 0;
}


static int
ctl_cmd_explain(ctl_global *g, int argc, char **argv, char **pos)
{
    static const char  *head[] = { "EXPERIMENT", "IN", "VARIATION", "KEY",
                                   "HASH", "SEED", "HASH ATTRIBUTE",
                                   "REASON", "VALUE" };
    int                rc, npos, ret;
    sf_db             *db;
    sf_snapshot       *snap;
    sf_error           err;
    sf_value           attrs;
    sf_request         req;
    sf_buf             ab;
    ctl_explain        x;
    ctl_explain_opts   opts;

    memset(&opts, 0, sizeof(opts));
    rc = ctl_parse_args("explain", argc, argv, g, ctl_explain_options,
                        ctl_explain_option, &opts, pos, &npos);
    if (rc != CTL_OK) {
        free(opts.attrs);
        return rc;
    }
    if (npos > 0) {
        free(opts.attrs);
        return ctl_usage_err("explain: unexpected argument \"%s\"", pos[0]);
    }
    if ((rc = ctl_need_db("explain", g)) != CTL_OK) {
        free(opts.attrs);
        return rc;
    }

    if (ctl_open_snapshot(g, &db, &snap) != CTL_OK) {
        free(opts.attrs);
        return CTL_ERROR;
    }

    attrs.type = SF_OBJECT;
    attrs.u.obj.members = opts.attrs;
    attrs.u.obj.n = opts.nattrs;

    memset(&req, 0, sizeof(req));
    req.attributes = &attrs;
    req.url = opts.url;
    req.url_len = opts.url ? strlen(opts.url) : 0;
    req.qa_override = opts.qa;
    req.now = (int64_t) time(NULL);

    memset(&x, 0, sizeof(x));
    x.opts = &opts;
    x.req = &req;
    x.table.ncols = 9;
    sf_buf_init(&x.out);
    sf_buf_init(&ab);
    ret = CTL_ERROR;

    if (opts.json) {
        rc = sf_buf_appends(&x.out, "{\"user\":");
        if (rc == SF_OK) {
            rc = opts.user
                 ? sf_buf_append_json_string(&x.out, opts.user,
                                             strlen(opts.user))
                 : sf_buf_appends(&x.out, "null");
        }
        if (rc == SF_OK) {
            rc = sf_buf_appends(&x.out, ",\"attributes\":");
        }
        if (rc == SF_OK) {
            rc = sf_json_write(&x.out, &attrs);
        }
        if (rc == SF_OK) {
            rc = sf_buf_appends(&x.out, ",\"experiments\":[");
        }
    } else {
        rc = ctl_table_row(&x.table, head) == 0 ? SF_OK : SF_ERR_NOMEM;
    }
    if (rc != SF_OK) {
        ctl_nomem();
        goto done;
    }

    memset(&err, 0, sizeof(err));
    rc = sf_snapshot_each_experiment(snap, ctl_explain_record, &x, &err);
    if (x.failed == 1) {
        ctl_err("%s: cannot evaluate a stored experiment", g->db_path);
        goto done;
    }
    if (x.failed) {
        ctl_nomem();
        goto done;
    }
    if (rc != SF_OK) {
        ctl_err("%s", err.msg);
        goto done;
    }

    if (opts.json) {
        if (sf_buf_appends(&x.out, x.n ? "\n]}\n" : "]}\n") != SF_OK) {
            ctl_nomem();
            goto done;
        }
        ctl_write(stdout, &x.out);

    } else {
        if (sf_json_write(&ab, &attrs) != SF_OK) {
            ctl_nomem();
            goto done;
        }
        printf("attributes %.*s", (int) ab.len, ab.data);
        if (opts.url) {
            printf(", url %s%s", opts.url,
                   opts.qa ? "" : " (query-string forcing off: use --qa)");
        }
        printf("\n");
        if (x.n == 0) {
            printf("no experiments\n");
        } else {
            ctl_table_print(&x.table, stdout);
        }
    }
    ret = ctl_finish_stdout(CTL_OK);

done:

    ctl_table_free(&x.table);
    sf_buf_free(&x.out);
    sf_buf_free(&ab);
    free(opts.attrs);
    ctl_close_snapshot(db, snap);
    return ret;
}


/* ---- info --------------------------------------------------------------- */

static int
ctl_cmd_info(ctl_global *g, int argc, char **argv, char **pos)
{
    int          rc, npos, json;
    char         a[32], b[32];
    sf_db       *db;
    sf_error     err;
    sf_db_info   info;
    sf_buf       o;

    json = 0;
    rc = ctl_parse_args("info", argc, argv, g, ctl_json_options,
                        ctl_list_option, &json, pos, &npos);
    if (rc != CTL_OK) {
        return rc;
    }
    if (npos > 0) {
        return ctl_usage_err("info: too many arguments");
    }
    if ((rc = ctl_need_db("info", g)) != CTL_OK) {
        return rc;
    }

    if (ctl_open_db(g, SF_DB_READONLY, &db) != CTL_OK) {
        return CTL_ERROR;
    }

    memset(&err, 0, sizeof(err));
    memset(&info, 0, sizeof(info));
    rc = sf_db_info_get(db, &info, &err);
    sf_db_close(db);
    if (rc != SF_OK) {
        ctl_err("%s", err.msg);
        return CTL_ERROR;
    }

    if (json) {
        sf_buf_init(&o);
        if (sf_buf_appends(&o, "{\"db\":") != SF_OK
            || sf_buf_append_json_string(&o, g->db_path, strlen(g->db_path))
               != SF_OK
            || sf_buf_printf(&o, ",\"map_size\":%zu,\"used_bytes\":%zu"
                             ",\"max_readers\":%u,\"readers_in_use\":%u"
                             ",\"experiments\":%zu}\n",
                             info.map_size, info.used_bytes,
                             info.max_readers, info.readers_in_use,
                             info.experiments) != SF_OK)
        {
            sf_buf_free(&o);
            return ctl_nomem();
        }
        ctl_write(stdout, &o);
        sf_buf_free(&o);
        return ctl_finish_stdout(CTL_OK);
    }

    printf("database     %s\n", g->db_path);
    printf("map size     %zu (%s)\n", info.map_size,
           ctl_human_size(info.map_size, a, sizeof(a)));
    printf("used         %zu (%s, %.1f%% of the map)\n", info.used_bytes,
           ctl_human_size(info.used_bytes, b, sizeof(b)),
           info.map_size ? 100.0 * (double) info.used_bytes
                           / (double) info.map_size : 0.0);
    printf("readers      %u in use of %u\n", info.readers_in_use,
           info.max_readers);
    printf("experiments  %zu\n", info.experiments);
    return ctl_finish_stdout(CTL_OK);
}


/* ---- main --------------------------------------------------------------- */

typedef int (*ctl_command_fn)(ctl_global *g, int argc, char **argv,
    char **pos);

typedef struct {
    const char       *name;
    ctl_command_fn    run;
    const char       *usage;
} ctl_command;

static const ctl_command ctl_commands[] = {
    { "import", ctl_cmd_import,
      "import FILE [--replace]\n"
      "      Load experiments from FILE (- for standard input): a JSON\n"
      "      object {\"experiments\": [GrowthBook experiment, ...]}.\n"
      "      All or nothing.  Without --replace experiments not in FILE\n"
      "      are kept; with --replace they are removed.\n" },
    { "export", ctl_cmd_export,
      "export [FILE]\n"
      "      Write every experiment in the import format to FILE\n"
      "      (default standard output).\n" },
    { "list", ctl_cmd_list,
      "list [--json]\n"
      "      One line per experiment: key, status, variations, weights,\n"
      "      coverage, namespace, hash attribute.\n" },
    { "explain", ctl_cmd_explain,
      "explain [--user ID] [--attr NAME=VALUE]... [--url URL] [--qa] "
      "[--json]\n"
      "      Evaluate every experiment for one visitor and say why.\n"
      "      --user sets the attribute \"id\"; --attr sets string\n"
      "      attributes (a repeated NAME: the last wins); --url is the\n"
      "      request URL; --qa honours ?KEY=INDEX forcing in it.\n" },
    { "info", ctl_cmd_info,
      "info [--json]\n"
      "      Map size, bytes used, readers, number of experiments.\n" },
    { NULL, NULL, NULL }
};


static void
ctl_help(FILE *f)
{
    const ctl_command  *c;

    fputs("Usage: " CTL_NAME " [--db DIR] [--map-size SIZE] COMMAND "
          "[ARGS]\n"
          "\n"
          "Manage the storefront LMDB database.\n"
          "\n"
          "Options:\n"
          "  --db DIR         the database directory (default: "
          "$STOREFRONT_DB)\n"
          "  --map-size SIZE  LMDB map size, e.g. 1G or 512M (default: the\n"
          "                   database's current size, or 1G)\n"
          "  --help           show this help\n"
          "  --version        show the version\n"
          "\n"
          "Commands:\n", f);

    for (c = ctl_commands; c->name != NULL; c++) {
        fprintf(f, "  %s", c->usage);
    }

    fputs("\nExit status: 0 success, 1 data or database error, "
          "2 usage error.\n", f);
}


int
main(int argc, char **argv)
{
    int                 i, rc;
    char              **pos;
    ctl_global          g;
    const ctl_command  *c;

    memset(&g, 0, sizeof(g));
    g.db_path = getenv("STOREFRONT_DB");

    /* global options before the command */
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char  *a = argv[i];
        size_t       len;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            ctl_help(stdout);
            return ctl_finish_stdout(CTL_OK);
        }
        if (strcmp(a, "--version") == 0) {
            printf(CTL_NAME " " SF_VERSION "\n");
            return ctl_finish_stdout(CTL_OK);
        }

        len = strncmp(a, "--", 2) == 0 ? strcspn(a + 2, "=") : 0;
        if (len != 0
            && ((len == 2 && strncmp(a + 2, "db", 2) == 0)
                || (len == 8 && strncmp(a + 2, "map-size", 8) == 0)))
        {
            /* the command parser handles exactly these two */
            char  *one[2];
            int    n = (a[2 + len] == '=' || i + 1 >= argc) ? 1 : 2;
            int    np;

            one[0] = argv[i];
            one[1] = n == 2 ? argv[i + 1] : NULL;
            rc = ctl_parse_args("", n, one, &g, NULL, ctl_no_handler,
                                NULL, one, &np);
            if (rc != CTL_OK) {
                return rc == -1 ? CTL_USAGE : rc;
            }
            i += n - 1;
            continue;
        }

        return ctl_usage_err("unknown option '%s'", a);
    }

    if (i >= argc) {
        return ctl_usage_err("missing COMMAND (import, export, list, "
                             "explain, info)");
    }

    if (strcmp(argv[i], "help") == 0) {
        ctl_help(stdout);
        return ctl_finish_stdout(CTL_OK);
    }

    for (c = ctl_commands; c->name != NULL; c++) {
        if (strcmp(c->name, argv[i]) == 0) {
            break;
        }
    }
    if (c->name == NULL) {
        return ctl_usage_err("unknown command \"%s\"", argv[i]);
    }

    pos = calloc((size_t) argc + 1, sizeof(char *));
    if (pos == NULL) {
        return ctl_nomem();
    }

    rc = c->run(&g, argc - i - 1, argv + i + 1, pos);
    if (rc == -1) {
        printf("Usage: " CTL_NAME " [--db DIR] [--map-size SIZE] %s",
               c->usage);
        rc = ctl_finish_stdout(CTL_OK);
    }

    free(pos);
    return rc;
}
