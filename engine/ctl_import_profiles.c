/*
 * storefrontctl import: the profiles.  They are checked into a spool, read
 * in parallel parts from a JSON lines file, sorted by id and written in
 * batches, each with a checkpoint for --resume (see ctl_import.c).
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "ctl_import.h"


#define CTL_CHECKPOINT_KEY   "import"
#define CTL_MAP_MAX          ((size_t) 1 << 42)     /* 4 TiB */
#define CTL_SPLIT_MIN        ((uint64_t) 16 << 20)  /* read in parts from */

/*
 * A spooled profile: this header, the id, the record packed (ctl_pack),
 * padding to 8.
 */
typedef struct {
    uint32_t  id_len;
    uint32_t  rec_len;          /* unpacked */
    uint64_t  line;
} ctl_spool_hdr;


/* ---- progress ---- */

double
ctl_elapsed(const struct timespec *since)
{
    struct timespec  now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double) (now.tv_sec - since->tv_sec)
           + (double) (now.tv_nsec - since->tv_nsec) / 1e9;
}


void
ctl_progress_start(ctl_progress *p)
{
    p->on = isatty(STDERR_FILENO);
    p->drawn = 0;
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    p->last = p->start;
}


/* At most 10 times a second; done/total decide the percent and ETA. */
static int
ctl_progress_due(ctl_progress *p, int force)
{
    if (!p->on) {
        return 0;
    }
    if (!force && p->drawn && ctl_elapsed(&p->last) < 0.1) {
        return 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &p->last);
    p->drawn = 1;
    return 1;
}


static void
ctl_eta(double seconds, char *buf, size_t size)
{
    long  s = (long) (seconds + 0.5);

    if (seconds < 0 || seconds > 1e6) {
        snprintf(buf, size, "?");
    } else if (s >= 3600) {
        snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    } else {
        snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
    }
}


void
ctl_progress_clear(ctl_progress *p)
{
    if (p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->drawn = 0;
    }
}


static void
ctl_import_draw(ctl_import *im, int force)
{
    char      a[32], b[32], eta[32];
    double    t, rate;
    size_t    n;
    uint64_t  bytes;
    unsigned  i;

    if (!ctl_progress_due(&im->pr, force)) {
        return;
    }

    n = 0;
    bytes = 0;
    for (i = 0; i < im->nreaders; i++) {
        n += __atomic_load_n(&im->rd[i].count, __ATOMIC_RELAXED);
        bytes += __atomic_load_n(&im->rd[i].bytes, __ATOMIC_RELAXED);
    }

    t = ctl_elapsed(&im->pr.start);
    rate = t > 0 ? (double) n / t : 0;

    if (im->total) {
        if (bytes > im->total) {
            bytes = im->total;
        }
        ctl_eta(bytes ? t * (double) (im->total - bytes) / (double) bytes
                      : -1, eta, sizeof(eta));
        fprintf(stderr, "\r\033[Kchecking %s: %3d%%  %s of %s  %zu profiles"
                "  %.0f/s  ETA %s", im->fname,
                (int) (bytes * 100 / im->total),
                ctl_human_size(bytes, a, sizeof(a)),
                ctl_human_size(im->total, b, sizeof(b)), n, rate, eta);
    } else {
        fprintf(stderr, "\r\033[Kchecking %s: %s  %zu profiles  %.0f/s",
                im->fname, ctl_human_size(bytes, a, sizeof(a)), n, rate);
    }
    fflush(stderr);
}


static void
ctl_import_progress(void *ctx, uint64_t bytes_read)
{
    ctl_reader  *rd = ctx;

    __atomic_store_n(&rd->bytes, bytes_read, __ATOMIC_RELAXED);
    if (rd->im->nreaders == 1) {
        ctl_import_draw(rd->im, 0);
    }
}


/* ---- checking, into the spool ---- */

static void
ctl_reader_fail(ctl_reader *rd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
ctl_reader_fail(ctl_reader *rd, const char *fmt, ...)
{
    va_list  ap;

    if (rd->failed) {
        return;
    }
    rd->failed = 1;
    va_start(ap, fmt);
    vsnprintf(rd->msg, sizeof(rd->msg), fmt, ap);
    va_end(ap);
}


/*
 * A bad profile record: kept to be reported (the first CTL_BAD_SHOWN) and
 * counted.  Returns non-zero to stop reading.
 */
static int
ctl_reader_bad(ctl_reader *rd, unsigned long line, const char *problem)
{
    size_t          n, col;
    unsigned long   l;
    const char     *fname = rd->im->fname;
    char           *end;
    ctl_bad        *b;

    rd->nbad++;

    if (rd->nbad_kept < CTL_BAD_SHOWN) {
        col = 0;
        n = strlen(fname);

        /* "FILE:LINE:COL: why" from the JSON reader: keep why and COL */
        if (strncmp(problem, fname, n) == 0 && problem[n] == ':') {
            l = strtoul(problem + n + 1, &end, 10);
            if (*end == ':') {
                col = strtoul(end + 1, &end, 10);
                if (end[0] == ':' && end[1] == ' ') {
                    line = l;
                    problem = end + 2;
                } else {
                    col = 0;
                }
            }
        }

        b = &rd->bad[rd->nbad_kept];
        b->line = line;
        b->col = col;
        b->msg = strdup(problem);
        if (b->msg != NULL) {
            rd->nbad_kept++;
        }
    }

    if (!rd->im->opts->skip_bad && rd->nbad >= CTL_BAD_STOP) {
        rd->stopped = 1;
        __atomic_store_n(&rd->im->stop_all, 1, __ATOMIC_RELAXED);
        return SF_ERR_INVALID;
    }
    return SF_OK;
}


static int
ctl_spool_open(ctl_reader *rd)
{
    char        *path;
    const char  *dir;

    dir = rd->im->opts->tmpdir;

    path = malloc(strlen(dir) + sizeof("/storefront-import.XXXXXX"));
    if (path == NULL) {
        ctl_reader_fail(rd, "out of memory");
        return SF_ERR_NOMEM;
    }
    sprintf(path, "%s/storefront-import.XXXXXX", dir);

    rd->spool_fd = mkstemp(path);
    if (rd->spool_fd == -1) {
        ctl_reader_fail(rd, "%s: cannot create the import's temporary "
                        "file: %s", dir, strerror(errno));
        free(path);
        return SF_ERR_IO;
    }
    unlink(path);           /* gone when we are, whatever happens */
    free(path);

    rd->spool = fdopen(rd->spool_fd, "w");
    if (rd->spool == NULL
        || setvbuf(rd->spool, NULL, _IOFBF, 1 << 20) != 0)
    {
        ctl_reader_fail(rd, "out of memory");
        return SF_ERR_NOMEM;
    }
    return SF_OK;
}


static uint64_t
ctl_id_prefix(const char *id, size_t len)
{
    uint64_t  p;
    size_t    i;

    p = 0;
    for (i = 0; i < 8; i++) {
        p = (p << 8) | (i < len ? (unsigned char) id[i] : 0);
    }
    return p;
}


/*
 * A compiled profile is mostly zeros (the spend ring, high bytes): it is
 * spooled as groups of 8 words, each a byte of flags (bit i: word i is not
 * zero) and the words that are not.  Spooled profiles take a third less
 * memory, which is fresh memory the kernel must clear.  dst has room for
 * len + len / 64 + 16 bytes; returns the packed length.
 */
static size_t
ctl_pack(const char *src, size_t len, char *dst)
{
    size_t     i, j, words, out;
    uint64_t   w;
    char       last[8];
    unsigned   mask;

    words = (len + 7) / 8;
    out = 0;

    for (i = 0; i < words; i += 8) {
        size_t  at = out++;

        mask = 0;
        for (j = i; j < words && j < i + 8; j++) {
            if (j * 8 + 8 <= len) {
                memcpy(&w, src + j * 8, 8);
            } else {
                memset(last, 0, 8);
                memcpy(last, src + j * 8, len - j * 8);
                memcpy(&w, last, 8);
            }
            if (w != 0) {
                mask |= 1u << (j - i);
                memcpy(dst + out, &w, 8);
                out += 8;
            }
        }
        dst[at] = (char) mask;
    }

    return out;
}


/* dst has room for len rounded up to 8. */
static void
ctl_unpack(const char *src, size_t len, char *dst)
{
    size_t     i, j, words;
    unsigned   mask;

    words = (len + 7) / 8;

    for (i = 0; i < words; i += 8) {
        mask = (unsigned char) *src++;
        for (j = i; j < words && j < i + 8; j++) {
            if (mask & (1u << (j - i))) {
                memcpy(dst + j * 8, src, 8);
                src += 8;
            } else {
                memset(dst + j * 8, 0, 8);
            }
        }
    }
}


/*
 * Chunks of anonymous memory for the spool: the kernel may back them with
 * huge pages, which the random reads of the writing favour.
 */
static int
ctl_spool_chunk(ctl_reader *rd)
{
    char  **c, *p;

    c = realloc(rd->chunks, (rd->nchunks + 1) * sizeof(char *));
    if (c == NULL) {
        ctl_reader_fail(rd, "out of memory");
        return SF_ERR_NOMEM;
    }
    rd->chunks = c;

    p = mmap(NULL, CTL_CHUNK, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        ctl_reader_fail(rd, "out of memory for the checked profiles (%s): "
                        "--tmpdir DIR keeps them in a file", strerror(errno));
        return SF_ERR_NOMEM;
    }
#ifdef MADV_HUGEPAGE
    madvise(p, CTL_CHUNK, MADV_HUGEPAGE);
#endif

    rd->chunks[rd->nchunks] = p;
    rd->spool_size = (uint64_t) rd->nchunks << CTL_CHUNK_SHIFT;
    rd->nchunks++;
    return SF_OK;
}


/* A checked profile record goes to the spool and the sort index. */
static int
ctl_reader_spool(ctl_reader *rd, const char *id, size_t id_len,
    unsigned long line)
{
    static const char  zeros[8];
    char              *p;
    ctl_spool_hdr      h;
    size_t             n, pad;
    ctl_key           *k;

    rd->packed.len = 0;
    if (sf_buf_reserve(&rd->packed, rd->compiled.len + rd->compiled.len / 64
                                    + 16) != SF_OK)
    {
        ctl_reader_fail(rd, "out of memory");
        return SF_ERR_NOMEM;
    }
    rd->packed.len = ctl_pack(rd->compiled.data, rd->compiled.len,
                              rd->packed.data);

    n = sizeof(h) + id_len + rd->packed.len;
    pad = (8 - n % 8) % 8;
    n += pad;

    if (n > CTL_RECORD_MAX) {
        return ctl_reader_bad(rd, line, "the profile is too large (more "
                              "than 1 MiB compiled)");
    }

    if (rd->im->opts->tmpdir) {
        if (rd->spool == NULL && ctl_spool_open(rd) != SF_OK) {
            return SF_ERR_IO;
        }

    } else if (rd->spool_size + n
               > ((uint64_t) rd->nchunks << CTL_CHUNK_SHIFT))
    {
        /* a new chunk: records do not straddle chunks */
        if (ctl_spool_chunk(rd) != SF_OK) {
            return SF_ERR_NOMEM;
        }
    }

    if (rd->nkeys == rd->keys_cap) {
        size_t  cap = rd->keys_cap ? rd->keys_cap * 2 : 65536;

        k = realloc(rd->keys, cap * sizeof(ctl_key));
        if (k == NULL) {
            ctl_reader_fail(rd, "out of memory");
            return SF_ERR_NOMEM;
        }
        rd->keys = k;
        rd->keys_cap = cap;
    }

    h.id_len = (uint32_t) id_len;
    h.rec_len = (uint32_t) rd->compiled.len;
    h.line = line;

    /* the reader, then the offset: positions sort in file order */
    k = &rd->keys[rd->nkeys++];
    k->prefix = ctl_id_prefix(id, id_len);
    k->pos = ((uint64_t) rd->no << 60) | (rd->spool_size << 16) | id_len;

    if (rd->spool == NULL) {
        p = rd->chunks[rd->spool_size >> CTL_CHUNK_SHIFT]
            + (rd->spool_size & (CTL_CHUNK - 1));
        memcpy(p, &h, sizeof(h));
        memcpy(p + sizeof(h), id, id_len);
        memcpy(p + sizeof(h) + id_len, rd->packed.data, rd->packed.len);
        memset(p + n - pad, 0, pad);

    } else if (fwrite(&h, sizeof(h), 1, rd->spool) != 1
               || fwrite(id, 1, id_len, rd->spool) != id_len
               || fwrite(rd->packed.data, 1, rd->packed.len, rd->spool)
                  != rd->packed.len
               || (pad && fwrite(zeros, 1, pad, rd->spool) != pad))
    {
        ctl_reader_fail(rd, "%s: writing the import's temporary file: %s",
                        rd->im->opts->tmpdir, strerror(errno));
        return SF_ERR_IO;
    }

    rd->spool_size += n;
    rd->spool_bytes += n;
    if (rd->spool_size > CTL_POS_OFFSET) {
        ctl_reader_fail(rd, "%s: the input is too large", rd->im->fname);
        return SF_ERR_IO;
    }
    return SF_OK;
}


int
ctl_reader_profile(ctl_reader *rd, const sf_value *el, unsigned long line)
{
    const char  *id;
    size_t       id_len;
    sf_error     err;

    memset(&err, 0, sizeof(err));
    rd->compiled.len = 0;
    id = NULL;
    if (sf_profile_compile(el, rd->im->now, &rd->compiled, &id, &id_len,
                           &err) != SF_OK)
    {
        return ctl_reader_bad(rd, line, err.msg[0] ? err.msg
                                                   : "invalid profile");
    }

    if (ctl_reader_spool(rd, id, id_len, line) != SF_OK) {
        return SF_ERR_IO;
    }

    __atomic_store_n(&rd->count, rd->nkeys, __ATOMIC_RELAXED);
    if ((rd->nkeys & 0x3fff) == 0 && rd->im->nreaders == 1) {
        ctl_import_draw(rd->im, 0);
    }
    return SF_OK;
}


/* A JSON lines or array stream: every value is a profile. */
static int
ctl_import_value(void *ctx, const char *member, long index,
    const sf_value *element, unsigned long line, sf_error *err)
{
    ctl_reader  *rd = ctx;
    int          rc;

    (void) member;
    (void) index;

    if (__atomic_load_n(&rd->im->stop_all, __ATOMIC_RELAXED)) {
        /* another reader found enough bad records */
        rd->stopped = 1;
        rc = SF_ERR_INVALID;
    } else if (element == NULL) {
        /* a line that is not JSON: err says where and why */
        rc = ctl_reader_bad(rd, line, err->msg);
    } else {
        rc = ctl_reader_profile(rd, element, line);
    }

    if (rc != SF_OK) {
        sf_error_set(err, rc, "%s", rd->failed ? rd->msg : "stopped");
    }
    return rc;
}


/* ---- the profile spool, sorted ---- */

/* The readers' spools (their chunks): for sorting and writing. */
static char  **ctl_spool_chunks[CTL_MAX_JOBS];


static const char *
ctl_key_spooled(const ctl_key *k)
{
    uint64_t  off = (k->pos >> 16) & CTL_POS_OFFSET;

    return ctl_spool_chunks[k->pos >> 60][off >> CTL_CHUNK_SHIFT]
           + (off & (CTL_CHUNK - 1));
}


static const char *
ctl_key_id(const ctl_key *k)
{
    return ctl_key_spooled(k) + sizeof(ctl_spool_hdr);
}


/* By id, then by position in the file (a later record wins). */
static int
ctl_key_cmp(const void *a, const void *b)
{
    const ctl_key  *x = a, *y = b;
    size_t          xl, yl, n;
    int             c;

    if (x->prefix != y->prefix) {
        return x->prefix < y->prefix ? -1 : 1;
    }

    xl = x->pos & 0xffff;
    yl = y->pos & 0xffff;
    if (xl > 8 || yl > 8) {
        n = xl < yl ? xl : yl;
        c = memcmp(ctl_key_id(x), ctl_key_id(y), n);
        if (c != 0) {
            return c;
        }
    }
    if (xl != yl) {
        return xl < yl ? -1 : 1;
    }
    return (x->pos > y->pos) - (x->pos < y->pos);
}


static int
ctl_key_same_id(const ctl_key *x, const ctl_key *y)
{
    size_t  xl = x->pos & 0xffff, yl = y->pos & 0xffff;

    if (x->prefix != y->prefix || xl != yl) {
        return 0;
    }
    return xl <= 8 || memcmp(ctl_key_id(x), ctl_key_id(y), xl) == 0;
}


/*
 * LSD radix sort of the keys by prefix, a byte a pass (256 buckets keep
 * the scatter in cache); passes where every key has the same byte are
 * skipped.  -1 when out of memory.
 */
static int
ctl_radix_sort(ctl_key *keys, size_t n)
{
    int       pass, shift;
    size_t    i, count[256], sum, c;
    ctl_key  *tmp, *from, *to, *t;
    unsigned  d;

    if (n < 2) {
        return 0;
    }

    tmp = malloc(n * sizeof(ctl_key));
    if (tmp == NULL) {
        return -1;
    }

    from = keys;
    to = tmp;

    for (pass = 0; pass < 8; pass++) {
        shift = 8 * pass;
        memset(count, 0, sizeof(count));
        for (i = 0; i < n; i++) {
            count[(from[i].prefix >> shift) & 0xff]++;
        }
        if (count[(from[0].prefix >> shift) & 0xff] == n) {
            continue;
        }
        for (sum = 0, d = 0; d < 256; d++) {
            c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (i = 0; i < n; i++) {
            to[count[(from[i].prefix >> shift) & 0xff]++] = from[i];
        }
        t = from;
        from = to;
        to = t;
    }

    if (from != keys) {
        memcpy(keys, from, n * sizeof(ctl_key));
    }
    free(tmp);
    return 0;
}


/*
 * Sorts the index by id and keeps, of records with the same id, the last
 * one in the file.  Returns the number of records dropped.
 */
size_t
ctl_import_sort(ctl_import *im)
{
    size_t  i, j, n;

    /* by prefix (a stable radix sort keeps the file order of ties) */
    if (ctl_radix_sort(im->keys, im->nkeys) != 0) {
        qsort(im->keys, im->nkeys, sizeof(ctl_key), ctl_key_cmp);
    }

    /* ties of prefix: by the whole id, then by position */
    for (i = 0; i < im->nkeys; i = j) {
        for (j = i + 1; j < im->nkeys
                        && im->keys[j].prefix == im->keys[i].prefix; j++)
        {
            /* the run */
        }
        if (j - i > 1) {
            qsort(im->keys + i, j - i, sizeof(ctl_key), ctl_key_cmp);
        }
    }

    n = 0;
    for (i = 0; i < im->nkeys; i++) {
        if (i + 1 < im->nkeys && ctl_key_same_id(&im->keys[i],
                                                 &im->keys[i + 1]))
        {
            continue;       /* a later record of the same id follows */
        }
        im->keys[n++] = im->keys[i];
    }

    i = im->nkeys - n;
    im->nkeys = n;
    return i;
}


/* The id of a spooled profile, and its record unpacked into rec. */
int
ctl_key_record(const ctl_key *k, const char **id, size_t *id_len,
    sf_buf *rec)
{
    ctl_spool_hdr  h;
    const char    *p;

    p = ctl_key_spooled(k);
    memcpy(&h, p, sizeof(h));
    *id = p + sizeof(h);
    *id_len = h.id_len;

    if (rec) {
        rec->len = 0;
        if (sf_buf_reserve(rec, (size_t) h.rec_len + 8) != SF_OK) {
            return SF_ERR_NOMEM;
        }
        ctl_unpack(p + sizeof(h) + h.id_len, h.rec_len, rec->data);
        rec->len = h.rec_len;
    }
    return SF_OK;
}


/* ---- checkpoints ---- */

static int
ctl_checkpoint_json(sf_buf *b, const ctl_checkpoint *c)
{
    b->len = 0;
    if (sf_buf_appends(b, "{\"path\":") != SF_OK
        || sf_buf_append_json_string(b, c->path, strlen(c->path)) != SF_OK
        || sf_buf_printf(b, ",\"size\":%" PRIu64 ",\"mtime\":%" PRId64
                         ",\"total\":%" PRIu64 ",\"committed\":%" PRIu64
                         ",\"last_id\":", c->size, c->mtime, c->total,
                         c->committed) != SF_OK
        || sf_buf_append_json_string(b, c->last_id, strlen(c->last_id))
           != SF_OK
        || sf_buf_appends(b, "}") != SF_OK)
    {
        return SF_ERR_NOMEM;
    }
    return SF_OK;
}


int
ctl_checkpoint_read(sf_db *db, ctl_checkpoint *c, sf_error *err)
{
    int              rc;
    sf_txn          *t;
    sf_buf           b;
    sf_arena        *a;
    sf_value         v;
    const sf_value  *m;

    memset(c, 0, sizeof(*c));
    sf_buf_init(&b);

    rc = sf_txn_begin(db, &t, err);
    if (rc != SF_OK) {
        return rc;
    }
    rc = sf_txn_get_meta(t, CTL_CHECKPOINT_KEY, &b, err);
    sf_txn_abort(t);

    if (rc == SF_ERR_NOT_FOUND) {
        sf_buf_free(&b);
        return SF_OK;
    }
    if (rc != SF_OK) {
        sf_buf_free(&b);
        return rc;
    }

    a = sf_arena_create(0);
    if (a == NULL) {
        sf_buf_free(&b);
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }

    if (sf_json_parse(b.data, b.len, a, &v, err) == SF_OK) {
        c->found = 1;
        if ((m = sf_value_member(&v, "path", 4)) && m->type == SF_STRING) {
            snprintf(c->path, sizeof(c->path), "%.*s", (int) m->u.str.len,
                     m->u.str.p);
        }
        if ((m = sf_value_member(&v, "last_id", 7)) && m->type == SF_STRING)
        {
            snprintf(c->last_id, sizeof(c->last_id), "%.*s",
                     (int) m->u.str.len, m->u.str.p);
        }
        if ((m = sf_value_member(&v, "size", 4)) && m->type == SF_NUMBER) {
            c->size = (uint64_t) m->u.number;
        }
        if ((m = sf_value_member(&v, "mtime", 5)) && m->type == SF_NUMBER) {
            c->mtime = (int64_t) m->u.number;
        }
        if ((m = sf_value_member(&v, "total", 5)) && m->type == SF_NUMBER) {
            c->total = (uint64_t) m->u.number;
        }
        if ((m = sf_value_member(&v, "committed", 9))
            && m->type == SF_NUMBER)
        {
            c->committed = (uint64_t) m->u.number;
        }
    }

    sf_arena_destroy(a);
    sf_buf_free(&b);
    return SF_OK;
}


/* ---- reading in parts ---- */

static void *
ctl_reader_run(void *arg)
{
    ctl_reader           *rd = arg;
    ctl_import           *im = rd->im;
    FILE                 *f;
    sf_json_stream_opts   so;

    f = fopen(im->path, "r");
    if (f == NULL || fseeko(f, (off_t) rd->start, SEEK_SET) != 0) {
        ctl_reader_fail(rd, "%s: %s", im->fname, strerror(errno));
        rd->rc = SF_ERR_IO;
        if (f) {
            fclose(f);
        }
        return NULL;
    }

    memset(&so, 0, sizeof(so));
    so.format = SF_JSON_LINES;
    so.max_bytes = rd->len;
    so.progress = ctl_import_progress;
    rd->rc = sf_json_stream_values(f, im->fname, &so, ctl_import_value, rd,
                                   &rd->err);
    rd->lines = so.lines_read;
    fclose(f);
    return NULL;
}


/*
 * Splits a JSON lines file into parts at newlines, one per reader.
 * Returns the number of parts.
 */
static unsigned
ctl_split(int fd, uint64_t size, unsigned parts, uint64_t *starts)
{
    char       buf[4096];
    ssize_t    n, i;
    unsigned   k, np;
    uint64_t   at;

    starts[0] = 0;
    np = 1;
    for (k = 1; k < parts; k++) {
        at = size / parts * k;
        if (at <= starts[np - 1]) {
            continue;
        }
        for ( ;; ) {
            n = pread(fd, buf, sizeof(buf), (off_t) at);
            if (n <= 0) {
                return np;
            }
            for (i = 0; i < n && buf[i] != '\n'; i++) {
                /* to the end of the line */
            }
            at += (uint64_t) i;
            if (i < n) {
                break;
            }
        }
        at++;
        if (at >= size) {
            break;
        }
        starts[np++] = at;
    }
    return np;
}


/*
 * Reads and checks the input: a large JSON lines file in parallel parts,
 * anything else in one go.  f is closed.
 */
int
ctl_import_read(ctl_import *im, FILE *f, const char *path, int format,
    const struct stat *st)
{
    int                   rc, done, joined[CTL_MAX_JOBS];
    unsigned              i, n;
    uint64_t              starts[CTL_MAX_JOBS];
    pthread_t             th[CTL_MAX_JOBS];
    sf_json_stream_opts   so;
    struct timespec       ts;
    ctl_reader           *rd;

    n = 1;
    if (format == CTL_FMT_JSONL && S_ISREG(st->st_mode)
        && strcmp(path, "-") != 0 && im->opts->jobs > 1
        && (uint64_t) st->st_size >= CTL_SPLIT_MIN)
    {
        n = ctl_split(fileno(f), (uint64_t) st->st_size, im->opts->jobs,
                      starts);
    }

    im->nreaders = n;
    im->path = path;
    for (i = 0; i < n; i++) {
        rd = &im->rd[i];
        rd->im = im;
        rd->no = i;
        rd->spool_fd = -1;
        sf_buf_init(&rd->compiled);
        sf_buf_init(&rd->packed);
        if (n > 1) {
            rd->start = starts[i];
            rd->len = (i + 1 < n ? starts[i + 1] : (uint64_t) st->st_size)
                      - starts[i];
        }
    }

    if (n == 1) {
        rd = &im->rd[0];
        if (format == CTL_FMT_DOCUMENT) {
            rd->rc = sf_json_stream_file(f, im->fname, ctl_import_element,
                                         ctl_import_progress, rd, &rd->err);
        } else {
            memset(&so, 0, sizeof(so));
            so.format = format == CTL_FMT_ARRAY ? SF_JSON_ARRAY
                                                : SF_JSON_LINES;
            so.progress = ctl_import_progress;
            rd->rc = sf_json_stream_values(f, im->fname, &so,
                                           ctl_import_value, rd, &rd->err);
        }
        fclose(f);
        ctl_progress_clear(&im->pr);
        return CTL_OK;
    }

    fclose(f);

    for (i = 0; i < n; i++) {
        rc = pthread_create(&th[i], NULL, ctl_reader_run, &im->rd[i]);
        if (rc != 0) {
            ctl_err("cannot start a reader: %s", strerror(rc));
            while (i-- > 0) {
                pthread_join(th[i], NULL);
            }
            return CTL_ERROR;
        }
    }

    /* the readers work; this thread draws their progress */
    ts.tv_sec = 0;
    ts.tv_nsec = 50 * 1000000;
    memset(joined, 0, sizeof(joined));
    do {
        nanosleep(&ts, NULL);
        ctl_import_draw(im, 0);
        done = 1;
        for (i = 0; i < n; i++) {
            if (!joined[i]) {
                if (pthread_tryjoin_np(th[i], NULL) == 0) {
                    joined[i] = 1;
                } else {
                    done = 0;
                }
            }
        }
    } while (!done);

    ctl_progress_clear(&im->pr);
    return CTL_OK;
}


/* Lines in [start, start + len) of the file: for a part not read through. */
static unsigned long
ctl_count_lines(const char *path, uint64_t start, uint64_t len)
{
    int             fd;
    char            buf[65536], *p, *end;
    ssize_t         n;
    unsigned long   lines;

    fd = open(path, O_RDONLY);
    if (fd == -1) {
        return 0;
    }

    lines = 0;
    while (len > 0) {
        n = pread(fd, buf, len < sizeof(buf) ? (size_t) len : sizeof(buf),
                  (off_t) start);
        if (n <= 0) {
            break;
        }
        for (p = buf, end = buf + n;
             (p = memchr(p, '\n', (size_t) (end - p))) != NULL; p++)
        {
            lines++;
        }
        start += (uint64_t) n;
        len -= (uint64_t) n;
    }

    close(fd);
    return lines;
}


/*
 * Says what was wrong: an error that stopped the reading, or the bad
 * records (the first CTL_BAD_SHOWN in file order, then a count).
 * CTL_OK when the import may go on.
 */
int
ctl_import_report(ctl_import *im, int format, int detected)
{
    char            a[64];
    size_t          shown, j;
    unsigned        i;
    unsigned long   base;
    ctl_reader     *rd;

    if (im->failed) {
        ctl_err("%s", im->msg);
        return CTL_ERROR;
    }

    for (i = 0; i < im->nreaders; i++) {
        rd = &im->rd[i];
        if (rd->failed) {
            ctl_err("%s", rd->msg);
            return CTL_ERROR;
        }
        if (rd->rc != SF_OK && !rd->stopped) {
            ctl_err("%s%s", rd->err.msg[0] ? rd->err.msg : "cannot read",
                    format == CTL_FMT_ARRAY && detected && rd->nkeys == 0
                    && rd->nbad == 0
                    ? " (an array of profile objects was expected)" : "");
            return CTL_ERROR;
        }
        im->bad += rd->nbad;
        im->stopped |= rd->stopped;
    }

    shown = 0;
    base = 0;
    for (i = 0; i < im->nreaders; i++) {
        rd = &im->rd[i];
        for (j = 0; j < rd->nbad_kept && shown < CTL_BAD_SHOWN; j++) {
            if (rd->bad[j].col) {
                ctl_err("%s:%lu:%zu: %s", im->fname, base + rd->bad[j].line,
                        rd->bad[j].col, rd->bad[j].msg);
            } else {
                ctl_err("%s:%lu: %s", im->fname, base + rd->bad[j].line,
                        rd->bad[j].msg);
            }
            shown++;
        }
        if (i + 1 < im->nreaders) {
            base += rd->rc == SF_OK ? rd->lines
                    : ctl_count_lines(im->path, rd->start, rd->len);
        }
    }

    if (im->bad > shown) {
        ctl_err("%s: ... and %" PRIu64 " more bad records", im->fname,
                im->bad - shown);
    }

    if (im->bad && !im->opts->skip_bad) {
        ctl_plural(a, sizeof(a), im->bad, "bad record");
        ctl_err("%s: rejected: %s%s", im->fname, a,
                im->stopped ? " (stopped reading there)" : "");
        return CTL_ERROR;
    }
    return CTL_OK;
}


/* Maps the readers' spools and puts their keys in one index. */
int
ctl_import_gather(ctl_import *im)
{
    size_t        n, at;
    unsigned      i;
    ctl_reader   *rd;

    n = 0;
    for (i = 0; i < im->nreaders; i++) {
        rd = &im->rd[i];
        if (rd->nkeys == 0) {
            continue;
        }

        if (rd->spool) {
            /* a file: mapped, and seen through chunk pointers */
            size_t  c;

            if (fflush(rd->spool) != 0) {
                ctl_err("%s: writing the import's temporary file: %s",
                        im->opts->tmpdir, strerror(errno));
                return CTL_ERROR;
            }

            rd->base = mmap(NULL, rd->spool_size, PROT_READ,
                            MAP_SHARED | MAP_POPULATE, rd->spool_fd, 0);
            if (rd->base == MAP_FAILED) {
                rd->base = NULL;
                ctl_err("cannot map the import's temporary file: %s",
                        strerror(errno));
                return CTL_ERROR;
            }

            rd->nchunks = (rd->spool_size >> CTL_CHUNK_SHIFT) + 1;
            rd->chunks = malloc(rd->nchunks * sizeof(char *));
            if (rd->chunks == NULL) {
                rd->nchunks = 0;
                return ctl_nomem();
            }
            for (c = 0; c < rd->nchunks; c++) {
                rd->chunks[c] = (char *) rd->base + (c << CTL_CHUNK_SHIFT);
            }
        }

        ctl_spool_chunks[i] = rd->chunks;
        im->spool_size += rd->spool_bytes;
        n += rd->nkeys;
    }

    if (im->nreaders == 1) {
        im->keys = im->rd[0].keys;
        im->rd[0].keys = NULL;
        im->nkeys = im->rd[0].nkeys;
        return CTL_OK;
    }

    im->keys = malloc((n ? n : 1) * sizeof(ctl_key));
    if (im->keys == NULL) {
        return ctl_nomem();
    }

    at = 0;
    for (i = 0; i < im->nreaders; i++) {
        rd = &im->rd[i];
        memcpy(im->keys + at, rd->keys, rd->nkeys * sizeof(ctl_key));
        at += rd->nkeys;
        free(rd->keys);
        rd->keys = NULL;
    }
    im->nkeys = n;
    return CTL_OK;
}


/* ---- writing ---- */

/* Doubles the map after MDB_MAP_FULL (no transaction open). */
static int
ctl_grow_map(ctl_writer *w, size_t at_least)
{
    size_t      size;
    sf_db_info  info;

    memset(&info, 0, sizeof(info));
    if (sf_db_info_get(w->db, &info, &w->err) != SF_OK) {
        return SF_ERR_DB;
    }

    size = info.map_size ? info.map_size : SF_DB_DEFAULT_MAP_SIZE;
    do {
        if (size >= CTL_MAP_MAX) {
            return sf_error_set(&w->err, SF_ERR_MAP_FULL, "the database map "
                                "cannot grow beyond %zu bytes", size);
        }
        size *= 2;
    } while (size < at_least);

    if (sf_db_set_map_size(w->db, size, &w->err) != SF_OK) {
        return SF_ERR_DB;
    }
    w->grown++;
    return SF_OK;
}


/* Profiles keys[from, to) and the checkpoint after them. */
static int
ctl_put_profiles(ctl_writer *w, sf_txn *txn, size_t from, size_t to)
{
    size_t          i, id_len;
    const char     *id;
    ctl_import     *im = w->im;

    for (i = from; i < to; i++) {
        if (i + 8 < to) {
            /* the spool is read in id order, at random: fetch ahead */
            const char  *next = ctl_key_spooled(&im->keys[i + 8]);

            __builtin_prefetch(next);
            __builtin_prefetch(next + 64);
            __builtin_prefetch(next + 128);
        }
        if (ctl_key_record(&im->keys[i], &id, &id_len, &w->rec) != SF_OK) {
            return sf_error_set(&w->err, SF_ERR_NOMEM, "out of memory");
        }
        if (sf_txn_put_profile(txn, id, id_len, w->rec.data, w->rec.len,
                               &w->err) != SF_OK)
        {
            return w->err.code ? w->err.code : SF_ERR_DB;
        }
    }

    if (!w->checkpoints) {
        return SF_OK;
    }

    if (to == im->nkeys) {
        /* all done: nothing left to resume */
        return sf_txn_put_meta(txn, CTL_CHECKPOINT_KEY, "", 0, &w->err);
    }

    w->cp.committed = to;
    if (to > 0) {
        ctl_key_record(&im->keys[to - 1], &id, &id_len, NULL);
        snprintf(w->cp.last_id, sizeof(w->cp.last_id), "%.*s", (int) id_len,
                 id);
    }
    if (ctl_checkpoint_json(&w->cpbuf, &w->cp) != SF_OK) {
        return sf_error_set(&w->err, SF_ERR_NOMEM, "out of memory");
    }
    return sf_txn_put_meta(txn, CTL_CHECKPOINT_KEY, w->cpbuf.data,
                           w->cpbuf.len, &w->err);
}


/*
 * One transaction: the experiments and rules (header), or the profiles
 * keys[from, to).  A full map is grown and the transaction run again.
 */
int
ctl_write_txn(ctl_writer *w, int header, size_t from, size_t to)
{
    int      rc;
    sf_txn  *txn;

    for ( ;; ) {
        memset(&w->err, 0, sizeof(w->err));

        rc = sf_txn_begin(w->db, &txn, &w->err);
        if (rc != SF_OK) {
            return rc;
        }

        rc = header ? ctl_put_experiments(w, txn)
                    : ctl_put_profiles(w, txn, from, to);
        if (rc == SF_OK) {
            rc = sf_txn_commit(txn, &w->err);
        } else {
            sf_txn_abort(txn);
        }

        if (rc == SF_OK || w->err.code != SF_ERR_MAP_FULL) {
            return rc == SF_OK ? SF_OK : (w->err.code ? w->err.code : rc);
        }

        rc = ctl_grow_map(w, 0);
        if (rc != SF_OK) {
            return rc;
        }
    }
}


void
ctl_writer_draw(ctl_writer *w, size_t done, size_t total, int force)
{
    char    eta[32];
    double  t, rate;

    if (!ctl_progress_due(&w->pr, force)) {
        return;
    }

    t = ctl_elapsed(&w->pr.start);
    rate = t > 0 ? (double) (done - w->start) / t : 0;
    ctl_eta(rate > 0 ? (double) (total - done) / rate : -1, eta, sizeof(eta));
    fprintf(stderr, "\r\033[Kwriting: %3d%%  %zu of %zu profiles  %.0f/s  "
            "ETA %s", total ? (int) ((uint64_t) done * 100 / total) : 100,
            done, total, rate, eta);
    fflush(stderr);
}


/* Makes room for what the spool will take, so the map rarely fills. */
void
ctl_reserve_map(ctl_writer *w)
{
    sf_db_info  info;
    size_t      need;

    memset(&info, 0, sizeof(info));
    if (sf_db_info_get(w->db, &info, &w->err) != SF_OK) {
        return;
    }
    need = info.used_bytes + (size_t) (w->im->spool_size * 1.25)
           + ((size_t) 64 << 20);
    if (need > info.map_size) {
        ctl_grow_map(w, need);
    }
}
