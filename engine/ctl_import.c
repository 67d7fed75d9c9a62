/*
 * storefrontctl import: the command, the members of an import document
 * (experiments, rules, the members other files handle) and the input's
 * format.  The profiles (spool, reading in parts, checkpoints, writing in
 * batches) are in ctl_import_profiles.c.
 */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "ctl_import.h"
#include "ctl_pages.h"
#include "ctl_ads.h"
#include "ctl_push.h"


/* ---- import ------------------------------------------------------------- */

/*
 * An import reads FILE once ("checking"): experiments are compiled and
 * kept in memory, rules are checked, and profiles are compiled into a
 * spool (packed binary records in memory, or with --tmpdir in an unlinked
 * file); bad records are collected with their lines.  A JSON lines file
 * is read by several threads, in parts split at newlines.  Nothing is
 * written unless the whole file is good (or --skip-bad).  Then
 * ("writing") experiments and rules go in one transaction, and profiles
 * in batches, sorted by id: LMDB takes sorted keys an order of magnitude
 * faster than keys in file order (measured: 1.3 million against 85,000
 * puts a second), and packs the pages full.  Parsing once and spooling
 * the compiled records avoids parsing the file twice.  Each batch stores
 * a checkpoint in the database's meta, so --resume continues after the
 * last committed batch.
 */

#define CTL_DEFAULT_BATCH    50000

static const char  *ctl_format_names[] = { "auto", "document", "jsonl",
                                           "array" };

/*
 * One handler per top-level member of an import document.  Later data
 * kinds (campaigns, ...) add a row here.
 */
typedef int (*ctl_section_handler)(ctl_import *im, long index,
    const sf_value *element, unsigned long line);

typedef struct {
    const char           *name;
    ctl_section_handler   handler;
} ctl_section;

/* A member handled in another file (ctl_*.c): check, then write. */
typedef struct {
    const char  *name;
    int        (*check)(const sf_value *v, sf_error *err);
    int        (*put)(sf_txn *txn, sf_db *db, const sf_value *v,
                      sf_error *err);
} ctl_extra;


static volatile sig_atomic_t  ctl_interrupted;


static void
ctl_on_signal(int sig)
{
    (void) sig;
    ctl_interrupted = 1;
}


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

    return SF_OK;

nomem:

    ctl_import_fail(im, "out of memory");
    return SF_ERR_NOMEM;
}


static int
ctl_import_rules(ctl_import *im, long index, const sf_value *el,
    unsigned long line)
{
    sf_rules  r;
    sf_error  err;

    if (index >= 0 || el->type != SF_OBJECT) {
        ctl_import_fail(im, "%s:%lu: member \"rules\" must be an object",
                        im->fname, line);
        return SF_ERR_INVALID;
    }
    if (im->have_rules) {
        ctl_import_fail(im, "%s:%lu: member \"rules\" given twice (first on "
                        "line %lu)", im->fname, line, im->rules_line);
        return SF_ERR_INVALID;
    }

    /* checked over the rules in force; applied again when written */
    r = im->rules_base;
    memset(&err, 0, sizeof(err));
    if (sf_rules_apply_json(&r, el, &err) != SF_OK) {
        ctl_import_fail(im, "%s:%lu: rules: %s", im->fname, line, err.msg);
        return SF_ERR_INVALID;
    }

    im->rules_json.len = 0;
    if (sf_json_write(&im->rules_json, el) != SF_OK) {
        ctl_import_fail(im, "out of memory");
        return SF_ERR_NOMEM;
    }
    im->have_rules = 1;
    im->rules_line = line;
    return SF_OK;
}


/* "profiles" in a document: read by reader 0. */
static int
ctl_import_profile(ctl_import *im, long index, const sf_value *el,
    unsigned long line)
{
    if (index < 0) {
        ctl_import_fail(im, "%s:%lu: member \"profiles\" must be an array",
                        im->fname, line);
        return SF_ERR_INVALID;
    }
    return ctl_reader_profile(&im->rd[0], el, line);
}


/*
 * Members of an import document that other files handle: checked while the
 * file is read, written in the transaction of the experiments and rules.
 */
static int
ctl_push_put(sf_txn *txn, sf_db *db, const sf_value *v, sf_error *err)
{
    (void) db;
    return ctl_push_import_policy(txn, v, err);
}


static const ctl_extra ctl_extras[] = {
    { "push", ctl_push_check_policy, ctl_push_put },
    { "pages", ctl_pages_check, ctl_pages_put },
    { NULL, NULL, NULL }
};


static int
ctl_import_extra(ctl_import *im, size_t x, long index, const sf_value *el,
    unsigned long line)
{
    sf_error  err;

    if (index >= 0 || el->type != SF_OBJECT) {
        ctl_import_fail(im, "%s:%lu: member \"%s\" must be an object",
                        im->fname, line, ctl_extras[x].name);
        return SF_ERR_INVALID;
    }
    if (im->have_extra[x]) {
        ctl_import_fail(im, "%s:%lu: member \"%s\" given twice (first on "
                        "line %lu)", im->fname, line, ctl_extras[x].name,
                        im->extra_line[x]);
        return SF_ERR_INVALID;
    }

    memset(&err, 0, sizeof(err));
    if (ctl_extras[x].check && ctl_extras[x].check(el, &err) != SF_OK) {
        ctl_import_fail(im, "%s:%lu: %s: %s", im->fname, line,
                        ctl_extras[x].name, err.msg);
        return SF_ERR_INVALID;
    }

    im->extra_json[x].len = 0;
    if (sf_json_write(&im->extra_json[x], el) != SF_OK) {
        ctl_import_fail(im, "out of memory");
        return SF_ERR_NOMEM;
    }
    im->have_extra[x] = 1;
    im->extra_line[x] = line;
    return SF_OK;
}


static int
ctl_put_extras(ctl_import *im, sf_db *db, sf_txn *txn, sf_error *err)
{
    int        rc;
    size_t     x;
    sf_value   v;
    sf_arena  *a;

    for (x = 0; ctl_extras[x].name != NULL; x++) {
        if (!im->have_extra[x]) {
            continue;
        }

        a = sf_arena_create(0);
        if (a == NULL) {
            return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
        }
        rc = sf_json_parse(im->extra_json[x].data, im->extra_json[x].len, a,
                           &v, err);
        if (rc == SF_OK) {
            rc = ctl_extras[x].put(txn, db, &v, err);
        }
        sf_arena_destroy(a);

        if (rc != SF_OK) {
            return rc;
        }
    }

    return SF_OK;
}


static int
ctl_have_extras(const ctl_import *im)
{
    size_t  x;

    for (x = 0; ctl_extras[x].name != NULL; x++) {
        if (im->have_extra[x]) {
            return 1;
        }
    }
    return 0;
}


/*
 * "orders": the applied events of an export, kept so that a repeated
 * event still changes nothing and a return finds its purchase.  Checked
 * as they come, kept as the record and its two ids, written with the
 * experiments.
 */
static int
ctl_import_order(ctl_import *im, long index, const sf_value *el,
    unsigned long line)
{
    sf_error         err;
    sf_order_record  o;

    if (index < 0) {
        ctl_import_fail(im, "%s:%lu: member \"orders\" must be an array",
                        im->fname, line);
        return SF_ERR_INVALID;
    }

    memset(&err, 0, sizeof(err));
    if (sf_order_from_json(el, &o, &err) != SF_OK) {
        ctl_import_fail(im, "%s:%lu: orders[%ld]: %s", im->fname, line, index,
                        err.msg);
        return SF_ERR_INVALID;
    }

    if (sf_buf_append(&im->orders, &o, sizeof(o)) != SF_OK
        || sf_buf_append(&im->orders, o.user, o.user_len) != SF_OK
        || sf_buf_append(&im->orders, o.order_id, o.order_id_len) != SF_OK)
    {
        ctl_import_fail(im, "out of memory");
        return SF_ERR_NOMEM;
    }
    im->norders++;
    return SF_OK;
}


static int
ctl_put_orders(ctl_import *im, sf_txn *txn, sf_error *err)
{
    size_t           i, off;
    sf_order_record  o;

    for (i = 0, off = 0; i < im->norders; i++) {
        memcpy(&o, im->orders.data + off, sizeof(o));
        off += sizeof(o);
        o.user = im->orders.data + off;
        off += o.user_len;
        o.order_id = im->orders.data + off;
        off += o.order_id_len;

        if (sf_txn_put_order(txn, &o, err) != SF_OK) {
            return SF_ERR_DB;
        }
    }
    return SF_OK;
}


/* "campaigns" and "ad_pages": one set, checked as it comes */
static int
ctl_import_ads(ctl_import *im, const char *member, long index,
    const sf_value *el, unsigned long line)
{
    sf_error  err;

    if (im->ads == NULL) {
        im->ads = ctl_ads_doc_create();
        if (im->ads == NULL) {
            ctl_import_fail(im, "out of memory");
            return SF_ERR_NOMEM;
        }
    }

    memset(&err, 0, sizeof(err));
    if (ctl_ads_collect(im->ads, member, index, el, &err) != SF_OK) {
        ctl_import_fail(im, "%s:%lu: %s", im->fname, line, err.msg);
        return SF_ERR_INVALID;
    }
    return SF_OK;
}


static int
ctl_import_campaigns(ctl_import *im, long index, const sf_value *el,
    unsigned long line)
{
    return ctl_import_ads(im, "campaigns", index, el, line);
}


static int
ctl_import_ad_pages(ctl_import *im, long index, const sf_value *el,
    unsigned long line)
{
    return ctl_import_ads(im, "ad_pages", index, el, line);
}


static const ctl_section ctl_sections[] = {
    { "experiments", ctl_import_experiment },
    { "campaigns", ctl_import_campaigns },
    { "ad_pages", ctl_import_ad_pages },
    { "profiles", ctl_import_profile },
    { "rules", ctl_import_rules },
    { "orders", ctl_import_order },
    { NULL, NULL }
};


int
ctl_import_element(void *ctx, const char *member, long index,
    const sf_value *element, unsigned long line, sf_error *err)
{
    ctl_reader         *rd = ctx;
    ctl_import         *im = rd->im;
    const ctl_section  *s;
    size_t              x;
    int                 rc;

    x = 0;
    for (s = ctl_sections; s->name != NULL; s++) {
        if (strcmp(s->name, member) == 0) {
            break;
        }
    }

    for (x = 0; s->name == NULL && ctl_extras[x].name != NULL; x++) {
        if (strcmp(ctl_extras[x].name, member) == 0) {
            break;
        }
    }

    if (s->name == NULL && ctl_extras[x].name != NULL) {
        rc = ctl_import_extra(im, x, index, element, line);

    } else if (s->name == NULL) {
        char     known[256];
        size_t   n = 0;

        known[0] = '\0';
        for (s = ctl_sections; s->name != NULL && n < sizeof(known); s++) {
            n += snprintf(known + n, sizeof(known) - n, "%s\"%s\"",
                          n ? ", " : "", s->name);
        }
        for (x = 0; ctl_extras[x].name != NULL && n < sizeof(known); x++) {
            n += snprintf(known + n, sizeof(known) - n, ", \"%s\"",
                          ctl_extras[x].name);
        }
        ctl_import_fail(im, "%s:%lu: unknown member \"%s\" (known: %s)",
                        im->fname, line, member, known);
        rc = SF_ERR_INVALID;

    } else {
        rc = s->handler(im, index, element, line);
    }

    if (rc != SF_OK) {
        sf_error_set(err, rc, "%s", im->failed ? im->msg
                                    : im->rd[0].failed ? im->rd[0].msg
                                    : "stopped");
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


/* ---- reading the input ---- */

/*
 * Standard input (or a pipe) cannot be read twice: the bytes looked at to
 * tell the format are served again before the rest.
 */
typedef struct {
    FILE     *f;
    char     *buf;
    size_t    len;
    size_t    off;
} ctl_peeked;


static ssize_t
ctl_peeked_read(void *cookie, char *buf, size_t size)
{
    ctl_peeked  *p = cookie;
    size_t       n;

    if (p->off < p->len) {
        n = p->len - p->off < size ? p->len - p->off : size;
        memcpy(buf, p->buf + p->off, n);
        p->off += n;
        return (ssize_t) n;
    }

    n = fread(buf, 1, size, p->f);
    if (n == 0 && ferror(p->f)) {
        return -1;
    }
    return (ssize_t) n;
}


static int
ctl_peeked_close(void *cookie)
{
    ctl_peeked  *p = cookie;

    free(p->buf);
    free(p);
    return 0;
}


/* Profile members (sf_profile_compile): a line starting so is a profile. */
static int
ctl_is_profile_member(const char *s, size_t len)
{
    const char *const  *n;

    for (n = sf_profile_members; *n; n++) {
        if (strlen(*n) == len && memcmp(*n, s, len) == 0) {
            return 1;
        }
    }
    return 0;
}


/*
 * The format from the first bytes: '[' an array; '{' whose first member
 * is a profile's a JSON lines file (but "orders" holding an array begins
 * a document); any other object a document.
 */
static int
ctl_detect_format(const char *p, size_t len)
{
    size_t       i;
    const char  *key;

    i = 0;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
        i = 3;
    }
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'
                       || p[i] == '\n'))
    {
        i++;
    }

    if (i < len && p[i] == '[') {
        return CTL_FMT_ARRAY;
    }
    if (i >= len || p[i] != '{') {
        return CTL_FMT_DOCUMENT;        /* its parser says what is wrong */
    }

    for (i++; i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'
                          || p[i] == '\n'); i++)
    {
        /* skip */
    }
    if (i >= len || p[i] != '"') {
        return CTL_FMT_DOCUMENT;
    }

    key = p + i + 1;
    for (i++; i < len && p[i] != '"' && p[i] != '\\'; i++) {
        /* the first member's name */
    }
    if (i < len && p[i] == '"'
        && ctl_is_profile_member(key, (size_t) (p + i - key)))
    {
        if ((size_t) (p + i - key) == 6 && memcmp(key, "orders", 6) == 0) {
            for (i++; i < len && (p[i] == ' ' || p[i] == ':'
                                  || p[i] == '\t' || p[i] == '\r'
                                  || p[i] == '\n'); i++)
            {
                /* skip */
            }
            if (i < len && p[i] == '[') {
                return CTL_FMT_DOCUMENT;
            }
        }
        return CTL_FMT_JSONL;
    }
    return CTL_FMT_DOCUMENT;
}


/*
 * Opens FILE (or standard input) and tells its format.  *f reads from the
 * beginning.
 */
int
ctl_import_open(const char *path, int *format, FILE **fp, struct stat *st)
{
    char        *buf;
    size_t       n;
    FILE        *f;
    ctl_peeked  *pk;
    cookie_io_functions_t  io;

    if (strcmp(path, "-") == 0) {
        f = stdin;
    } else {
        f = fopen(path, "r");
        if (f == NULL) {
            ctl_err("%s: %s", path, strerror(errno));
            return CTL_ERROR;
        }
    }

    if (fstat(fileno(f), st) != 0) {
        memset(st, 0, sizeof(*st));
    }

    if (S_ISDIR(st->st_mode)) {
        ctl_err("%s: is a directory", path);
        fclose(f);
        return CTL_ERROR;
    }

    buf = malloc(65536);
    if (buf == NULL) {
        return ctl_nomem();
    }
    n = fread(buf, 1, 65536, f);

    if (*format == CTL_FMT_AUTO) {
        *format = ctl_detect_format(buf, n);
    }

    if (S_ISREG(st->st_mode) && fseek(f, 0, SEEK_SET) == 0) {
        free(buf);
        *fp = f;
        return CTL_OK;
    }

    pk = calloc(1, sizeof(ctl_peeked));
    if (pk == NULL) {
        free(buf);
        return ctl_nomem();
    }
    pk->f = f;
    pk->buf = buf;
    pk->len = n;

    memset(&io, 0, sizeof(io));
    io.read = ctl_peeked_read;
    io.close = ctl_peeked_close;
    *fp = fopencookie(pk, "r", io);
    if (*fp == NULL) {
        free(buf);
        free(pk);
        return ctl_nomem();
    }
    return CTL_OK;
}


/* ---- writing: all but the profiles, in one transaction ---- */

int
ctl_put_experiments(ctl_writer *w, sf_txn *txn)
{
    size_t       i;
    ctl_import  *im = w->im;

    if (im->opts->replace && sf_txn_clear_experiments(txn, &w->err) != SF_OK)
    {
        return SF_ERR_DB;
    }

    for (i = 0; i < im->nrecs; i++) {
        if (sf_txn_put_experiment(txn, im->recs[i].rec, im->recs[i].len,
                                  &w->err) != SF_OK)
        {
            return SF_ERR_DB;
        }
    }

    if (im->have_rules) {
        sf_rules   rules;
        sf_value   v;
        sf_arena  *a;
        int        rc;

        if (sf_txn_get_rules(txn, &rules, &w->err) != SF_OK) {
            return SF_ERR_DB;
        }

        a = sf_arena_create(0);
        if (a == NULL) {
            return sf_error_set(&w->err, SF_ERR_NOMEM, "out of memory");
        }
        rc = sf_json_parse(im->rules_json.data, im->rules_json.len, a, &v,
                           &w->err);
        if (rc == SF_OK) {
            rc = sf_rules_apply_json(&rules, &v, &w->err);
        }
        sf_arena_destroy(a);
        if (rc != SF_OK) {
            return rc;      /* the rules in force changed meanwhile */
        }

        if (sf_txn_put_rules(txn, &rules, &w->err) != SF_OK) {
            return SF_ERR_DB;
        }
    }

    /* experiments naming a page layout: checked against the layouts */
    {
        const void  **recs;
        size_t       *lens, x;
        int           rc, with_pages;

        recs = calloc(im->nrecs + 1, sizeof(void *));
        lens = calloc(im->nrecs + 1, sizeof(size_t));
        if (recs == NULL || lens == NULL) {
            free(recs);
            free(lens);
            return sf_error_set(&w->err, SF_ERR_NOMEM, "out of memory");
        }
        for (i = 0; i < im->nrecs; i++) {
            recs[i] = im->recs[i].rec;
            lens[i] = im->recs[i].len;
        }
        with_pages = 0;
        for (x = 0; ctl_extras[x].name != NULL; x++) {
            if (strcmp(ctl_extras[x].name, "pages") == 0) {
                with_pages = im->have_extra[x];
            }
        }

        rc = ctl_pages_import_experiments(w->db, (const void *const *) recs,
                                          lens, im->nrecs, im->opts->replace,
                                          with_pages, &w->err);
        if (rc == SF_OK) {
            rc = ctl_put_extras(im, w->db, txn, &w->err);
        }
        if (rc == SF_OK && im->ads) {
            rc = ctl_ads_import(txn, ctl_ads_collected(im->ads), &w->err);
        }
        if (rc == SF_OK) {
            rc = ctl_put_orders(im, txn, &w->err);
        }
        ctl_pages_import_experiments(NULL, NULL, NULL, 0, 0, 1, NULL);
        free(recs);
        free(lens);
        return rc;
    }
}


/* ---- the command ---- */

static int
ctl_import_option(void *ctx, int id, const char *value)
{
    ctl_import_opts  *o = ctx;
    char             *end;
    unsigned long long  n;
    int               i;

    switch (id) {
    case OPT_REPLACE:
        o->replace = 1;
        break;
    case OPT_SKIP_BAD:
        o->skip_bad = 1;
        break;
    case OPT_RESUME:
        o->resume = 1;
        break;
    case OPT_TMPDIR:
        o->tmpdir = value;
        break;
    case OPT_JOBS:
        errno = 0;
        n = strtoull(value, &end, 10);
        if (errno || *end || value[0] < '0' || value[0] > '9' || n == 0
            || n > CTL_MAX_JOBS)
        {
            return ctl_usage_err("import: --jobs must be a whole number from "
                                 "1 to %d, not \"%s\"", CTL_MAX_JOBS, value);
        }
        o->jobs = (unsigned) n;
        break;
    case OPT_FORMAT:
        for (i = 0; i < 4; i++) {
            if (strcmp(value, ctl_format_names[i]) == 0) {
                o->format = i;
                return CTL_OK;
            }
        }
        return ctl_usage_err("import: --format must be document, jsonl or "
                             "array, not \"%s\"", value);
    case OPT_BATCH:
    case OPT_LIMIT:
        errno = 0;
        n = strtoull(value, &end, 10);
        if (errno || *end || value[0] < '0' || value[0] > '9' || n == 0
            || (id == OPT_BATCH && n > 10000000))
        {
            return ctl_usage_err("import: --%s must be a whole number from "
                                 "1%s, not \"%s\"",
                                 id == OPT_BATCH ? "batch" : "limit",
                                 id == OPT_BATCH ? " to 10000000" : "",
                                 value);
        }
        if (id == OPT_BATCH) {
            o->batch = (size_t) n;
        } else {
            o->limit = n;
        }
        break;
    }
    return CTL_OK;
}


static const ctl_option ctl_import_options[] = {
    { "replace", 0, OPT_REPLACE },
    { "format", 1, OPT_FORMAT },
    { "skip-bad", 0, OPT_SKIP_BAD },
    { "resume", 0, OPT_RESUME },
    { "batch", 1, OPT_BATCH },
    { "limit", 1, OPT_LIMIT },
    { "tmpdir", 1, OPT_TMPDIR },
    { "jobs", 1, OPT_JOBS },
    { NULL, 0, 0 }
};


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


/*
 * What the import starts from, when the database exists: the rules in
 * force (to check the file's rules against) and the experiments that
 * --replace would remove.
 */
static void
ctl_import_baseline(const ctl_global *g, ctl_import *im, size_t *removed)
{
    sf_db           *db = NULL;
    sf_snapshot     *snap = NULL;
    sf_error         err;
    ctl_count_ctx    c;
    const sf_rules  *rules;

    c.im = im;
    c.removed = 0;

    memset(&err, 0, sizeof(err));
    if (sf_db_open(&db, g->db_path, g->map_size, SF_DB_READONLY, &err)
        != SF_OK)
    {
        return;
    }

    if (sf_snapshot_create(db, &snap, &err) == SF_OK) {
        if (sf_snapshot_renew(snap, &err) == SF_OK) {
            if (removed) {
                sf_snapshot_each_experiment(snap, ctl_count_removed, &c,
                                            &err);
                *removed = c.removed;
            } else if (sf_snapshot_rules(snap, &rules, &err) == SF_OK) {
                im->rules_base = *rules;
            }
            sf_snapshot_reset(snap);
        }
        sf_snapshot_free(snap);
    }
    sf_db_close(db);
}


static void
ctl_import_free(ctl_import *im)
{
    size_t  i, x;

    if (im->ads) {
        ctl_ads_doc_free(im->ads);
        im->ads = NULL;
    }

    for (i = 0; i < im->nrecs; i++) {
        free(im->recs[i].key);
        free(im->recs[i].rec);
    }
    free(im->recs);
    free(im->slots);
    free(im->keys);
    sf_buf_free(&im->compiled);
    sf_buf_free(&im->orders);
    sf_buf_free(&im->rules_json);
    for (x = 0; x < CTL_MAX_EXTRAS; x++) {
        sf_buf_free(&im->extra_json[x]);
    }

    for (i = 0; i < im->nreaders; i++) {
        ctl_reader  *rd = &im->rd[i];
        size_t       j;

        if (rd->base) {
            munmap(rd->base, rd->spool_size);
        } else {
            for (j = 0; j < rd->nchunks; j++) {
                munmap(rd->chunks[j], CTL_CHUNK);
            }
        }
        free(rd->chunks);
        if (rd->spool) {
            fclose(rd->spool);
        } else if (rd->spool_fd >= 0) {
            close(rd->spool_fd);
        }
        free(rd->keys);
        sf_buf_free(&rd->compiled);
        sf_buf_free(&rd->packed);
        for (j = 0; j < rd->nbad_kept; j++) {
            free(rd->bad[j].msg);
        }
    }
}


int
ctl_cmd_import(ctl_global *g, int argc, char **argv, char **pos)
{
    int               rc, npos, ret, format, profiles;
    char              parts[256], a[64], b[64];
    size_t            removed, dropped, i, to, end, batch, x;
    long              cpus;
    FILE             *f;
    double            t_read, t_sort, t_write;
    struct stat       st;
    struct timespec   t0;
    struct sigaction  sa, old_int, old_term;
    sf_error          err;
    ctl_import        im;
    ctl_writer        w;
    ctl_checkpoint    old;
    ctl_import_opts   opts;

    memset(&opts, 0, sizeof(opts));
    opts.batch = CTL_DEFAULT_BATCH;
    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    opts.jobs = cpus < 1 ? 1 : cpus > 8 ? 8 : (unsigned) cpus;
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
    if (opts.resume && strcmp(pos[0], "-") == 0) {
        return ctl_usage_err("import: --resume needs a FILE, not standard "
                             "input");
    }

    memset(&im, 0, sizeof(im));
    memset(&w, 0, sizeof(w));
    sf_buf_init(&im.compiled);
    sf_buf_init(&im.rules_json);
    for (x = 0; x < CTL_MAX_EXTRAS; x++) {
        sf_buf_init(&im.extra_json[x]);
    }
    sf_buf_init(&w.cpbuf);
    sf_buf_init(&w.rec);
    im.opts = &opts;
    im.now = ctl_now(g);
    im.fname = strcmp(pos[0], "-") == 0 ? "<stdin>" : pos[0];
    sf_rules_default(&im.rules_base);
    ret = CTL_ERROR;

    format = opts.format;
    if (ctl_import_open(pos[0], &format, &f, &st) != CTL_OK) {
        goto done;
    }
    if (S_ISREG(st.st_mode)) {
        im.total = (uint64_t) st.st_size;
    }

    ctl_import_baseline(g, &im, NULL);

    /* ---- read and check everything ---- */

    ctl_progress_start(&im.pr);
    memset(&err, 0, sizeof(err));

    if (ctl_import_read(&im, f, pos[0], format, &st) != CTL_OK) {
        goto done;
    }
    t_read = ctl_elapsed(&im.pr.start);

    rc = ctl_import_report(&im, format, opts.format == CTL_FMT_AUTO);
    if (rc != CTL_OK) {
        goto rejected;
    }

    /* ---- sort the profiles by id ---- */

    clock_gettime(CLOCK_MONOTONIC, &t0);
    dropped = 0;
    if (ctl_import_gather(&im) != CTL_OK) {
        goto done;
    }
    if (im.nkeys) {
        dropped = ctl_import_sort(&im);
    }
    t_sort = ctl_elapsed(&t0);

    /* counted before sorting: the key hash indexes im.recs */
    removed = 0;
    if (opts.replace) {
        ctl_import_baseline(g, &im, &removed);
    }

    if (im.nrecs > 1) {
        qsort(im.recs, im.nrecs, sizeof(ctl_record), ctl_record_cmp);
    }

    /* ---- write ---- */

    if (ctl_open_db(g, SF_DB_CREATE, &w.db) != CTL_OK) {
        goto done;
    }
    w.g = g;
    w.im = &im;

    /* a regular file can be resumed: it is known by path, size, mtime */
    w.checkpoints = S_ISREG(st.st_mode) && im.nkeys > 0
                    && strcmp(pos[0], "-") != 0;
    if (w.checkpoints && realpath(pos[0], w.cp.path) == NULL) {
        snprintf(w.cp.path, sizeof(w.cp.path), "%s", pos[0]);
    }
    w.cp.size = (uint64_t) st.st_size;
    w.cp.mtime = (int64_t) st.st_mtime;
    w.cp.total = im.nkeys;

    if (ctl_checkpoint_read(w.db, &old, &w.err) != SF_OK) {
        ctl_err("%s: %s; nothing was imported", g->db_path, w.err.msg);
        goto done;
    }

    if (opts.resume) {
        const char  *id;
        size_t       id_len;

        if (!old.found) {
            ctl_err("%s: --resume: no interrupted import to resume in %s",
                    im.fname, g->db_path);
            goto done;
        }
        if (strcmp(old.path, w.cp.path) != 0 || old.size != w.cp.size
            || old.mtime != w.cp.mtime || old.total != w.cp.total)
        {
            ctl_err("%s: --resume: the interrupted import was of %s (%"
                    PRIu64 " bytes, modified %s), not of this file as it is "
                    "now: import it without --resume", im.fname, old.path,
                    old.size, ctl_time_text(old.mtime, b, sizeof(b)));
            goto done;
        }
        if (old.committed > im.nkeys) {
            ctl_err("%s: --resume: the checkpoint does not match the file",
                    im.fname);
            goto done;
        }
        if (old.committed) {
            ctl_key_record(&im.keys[old.committed - 1], &id, &id_len, NULL);
            if (strlen(old.last_id) != id_len
                || memcmp(old.last_id, id, id_len) != 0)
            {
                ctl_err("%s: --resume: the checkpoint does not match the "
                        "file", im.fname);
                goto done;
            }
        }
        w.committed = old.committed;
        printf("resuming the import of %s: %" PRIu64 " of %zu profiles "
               "were committed\n", im.fname, old.committed, im.nkeys);

    } else if (old.found && w.checkpoints) {
        fprintf(stderr, CTL_NAME ": note: the interrupted import of %s (%"
                PRIu64 " of %" PRIu64 " profiles committed) is superseded\n",
                old.path, old.committed, old.total);
    }

    w.start = w.committed;
    if (im.nkeys) {
        ctl_reserve_map(&w);
    }

    /* experiments and rules: all or nothing, before any profile */
    if ((im.nrecs || im.have_rules || ctl_have_extras(&im) || im.ads
         || im.norders || opts.replace || (im.nkeys == 0 && !im.bad))
        && ctl_write_txn(&w, 1, 0, 0) != SF_OK)
    {
        if (w.err.code == SF_ERR_INVALID
            && (strncmp(w.err.msg, "pages: ", 7) == 0
                || strncmp(w.err.msg, "ads: ", 5) == 0))
        {
            ctl_err("%s: %s; nothing was imported", im.fname, w.err.msg);
        } else if (w.err.code == SF_ERR_INVALID) {
            ctl_err("%s:%lu: rules: %s; nothing was imported", im.fname,
                    im.rules_line, w.err.msg);
        } else {
            ctl_err("%s: %s; nothing was imported", g->db_path, w.err.msg);
        }
        goto done;
    }

    /* profiles in batches, a checkpoint with each */
    end = im.nkeys;
    if (opts.limit && w.committed + opts.limit < end) {
        end = (size_t) (w.committed + opts.limit);
    }
    batch = opts.batch;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ctl_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    ctl_progress_start(&w.pr);
    for (i = (size_t) w.committed; i < end && !ctl_interrupted; i = to) {
        to = i + batch < end ? i + batch : end;
        if (ctl_write_txn(&w, 0, i, to) != SF_OK) {
            break;
        }
        w.committed = to;
        ctl_writer_draw(&w, to, im.nkeys, 0);
    }
    ctl_progress_clear(&w.pr);
    t_write = ctl_elapsed(&w.pr.start);

    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);

    if (w.committed < end) {
        ctl_err("%s: %s after %" PRIu64 " of %zu profiles were committed%s",
                g->db_path, ctl_interrupted ? "interrupted" : w.err.msg,
                w.committed, im.nkeys,
                w.checkpoints ? ": run the same command with --resume to "
                                "continue"
                              : ": run the import again (profiles are "
                                "replaced, not added)");
        goto done;
    }

    /* ---- summary ---- */

    profiles = im.nkeys || im.bad || format != CTL_FMT_DOCUMENT;
    parts[0] = '\0';
    if (im.nrecs || (!profiles && !im.have_rules)) {
        ctl_plural(parts, sizeof(parts), im.nrecs, "experiment");
    }
    if (im.have_rules) {
        snprintf(parts + strlen(parts), sizeof(parts) - strlen(parts),
                 "%s", parts[0] ? (profiles ? ", rules" : " and rules")
                                : "rules");
    }
    for (x = 0; ctl_extras[x].name != NULL; x++) {
        if (im.have_extra[x]) {
            snprintf(parts + strlen(parts), sizeof(parts) - strlen(parts),
                     "%s%s", parts[0] ? ", " : "", ctl_extras[x].name);
        }
    }
    if (im.ads) {
        snprintf(parts + strlen(parts), sizeof(parts) - strlen(parts),
                 "%sads", parts[0] ? ", " : "");
    }
    if (im.norders) {
        ctl_plural(a, sizeof(a), im.norders, "order");
        snprintf(parts + strlen(parts), sizeof(parts) - strlen(parts),
                 "%s%s", parts[0] ? ", " : "", a);
    }
    if (profiles) {
        ctl_plural(a, sizeof(a), end - w.start, "profile");
        snprintf(parts + strlen(parts), sizeof(parts) - strlen(parts),
                 "%s%s", parts[0] ? " and " : "", a);
    }

    printf("imported %s into %s", parts, g->db_path);
    if (opts.replace) {
        printf(" (%zu removed)", removed);
    }
    if (im.nkeys && t_read + t_sort + t_write >= 1) {
        printf(" in %.1f s: %.0f profiles/s (read and checked %.1f s, "
               "sorted %.1f s, written %.1f s)",
               t_read + t_sort + t_write,
               (double) (end - w.start) / (t_read + t_sort + t_write),
               t_read, t_sort, t_write);
    }
    printf("\n");

    if (dropped) {
        printf("%zu record%s repeated an earlier id: the last record of "
               "each id was kept\n", dropped, dropped == 1 ? "" : "s");
    }
    if (w.grown) {
        sf_db_info  info;

        if (sf_db_info_get(w.db, &info, &w.err) == SF_OK) {
            printf("the map was grown to %s\n",
                   ctl_human_size(info.map_size, b, sizeof(b)));
        }
    }
    if (end < im.nkeys) {
        printf("stopped after %zu of %zu profiles (--limit): run the same "
               "command with --resume to continue\n", end, im.nkeys);
    }
    if (im.bad) {
        ctl_plural(a, sizeof(a), im.bad, "bad record");
        printf("skipped %s (--skip-bad)\n", a);
    }

    ret = ctl_finish_stdout(im.bad ? CTL_SKIPPED : CTL_OK);
    goto done;

rejected:

    ctl_err("%s: nothing was imported%s", im.fname,
            im.bad && !opts.skip_bad && !im.failed
            ? " (--skip-bad loads the good records)" : "");

done:

    if (w.db) {
        sf_db_close(w.db);
    }
    sf_buf_free(&w.cpbuf);
    sf_buf_free(&w.rec);
    ctl_import_free(&im);
    return ret;
}
