/*
 * storefrontctl import: what its two files share, ctl_import.c (the
 * command and the document's members) and ctl_import_profiles.c (the
 * profiles: spool, reading in parts, checkpoints, writing).
 */

#ifndef CTL_IMPORT_H
#define CTL_IMPORT_H

#include <sys/stat.h>
#include <time.h>

#include "ctl.h"
#include "ctl_ads.h"


#define CTL_MAX_JOBS      16
#define CTL_POS_OFFSET    ((UINT64_C(1) << 44) - 1)
#define CTL_CHUNK_SHIFT   26                      /* 64 MiB */
#define CTL_CHUNK         ((size_t) 1 << CTL_CHUNK_SHIFT)
#define CTL_RECORD_MAX    ((size_t) 1 << 20)      /* a compiled profile */

typedef struct {
    char           *key;        /* NUL-terminated copy */
    size_t          key_len;
    char           *rec;
    size_t          len;
    unsigned long   line;
} ctl_record;

/*
 * One profile in the sort index: the first 8 bytes of the id (big-endian,
 * zero-padded: ids hold no control characters, so two ids of at most 8
 * bytes are equal iff their prefixes are), and the spool offset << 16 |
 * the id's length.
 */
typedef struct {
    uint64_t  prefix;
    uint64_t  pos;
} ctl_key;

typedef struct {
    int               on;           /* stderr is a terminal */
    int               drawn;
    struct timespec   start;
    struct timespec   last;
} ctl_progress;

typedef struct ctl_import  ctl_import;

/* A bad record, reported when the reading is over. */
typedef struct {
    unsigned long   line;           /* in the reader's part, from 1 */
    size_t          col;            /* 0: not known */
    char           *msg;
} ctl_bad;

/*
 * A reader checks one part of the input and spools its profiles: a JSON
 * lines file is read in parallel parts (split at newlines), any other
 * input by reader 0 alone.
 */
typedef struct {
    ctl_import      *im;
    unsigned         no;            /* in the high bits of key positions */
    uint64_t         start;         /* the part of the file */
    uint64_t         len;
    unsigned long    lines;         /* lines in the part */
    int              rc;
    sf_error         err;
    int              failed;        /* an error of our own: msg */
    char             msg[1024];
    int              spool_fd;      /* --tmpdir: a file, else memory */
    FILE            *spool;
    uint64_t         spool_size;    /* the offset of the next record */
    uint64_t         spool_bytes;   /* held */
    void            *base;          /* the spool file, mapped */
    char           **chunks;        /* the spool: memory, or the map */
    size_t           nchunks;
    ctl_key         *keys;
    size_t           nkeys;
    size_t           keys_cap;
    sf_buf           compiled;
    sf_buf           packed;
    ctl_bad          bad[CTL_BAD_SHOWN];
    size_t           nbad_kept;
    uint64_t         nbad;
    int              stopped;       /* too many bad records */
    uint64_t         bytes;         /* read so far: for the progress */
    size_t           count;         /* profiles so far: for the progress */
} ctl_reader;

/* members of an import document that other files handle (ctl_extras) */
#define CTL_MAX_EXTRAS  8

typedef struct {
    int           replace;
    int           skip_bad;
    int           resume;
    int           format;
    size_t        batch;
    uint64_t      limit;          /* profiles to write in this run, 0 all */
    const char   *tmpdir;
    unsigned      jobs;           /* readers of a JSON lines file */
} ctl_import_opts;

struct ctl_import {
    const char       *fname;        /* as shown in messages */
    const char       *path;         /* to open it again */
    const ctl_import_opts *opts;
    int64_t           now;
    int               failed;
    char              msg[1024];    /* our own error, when failed */

    /* experiments */
    ctl_record       *recs;
    size_t            nrecs;
    size_t            cap;
    size_t           *slots;        /* hash of keys: index + 1, 0 empty */
    size_t            nslots;
    sf_buf            compiled;

    /* "campaigns" and "ad_pages", collected for ctl_ads_import */
    ctl_ads_doc      *ads;

    /* members handled by other files (ctl_extras), compact JSON */
    sf_buf            extra_json[CTL_MAX_EXTRAS];
    unsigned long     extra_line[CTL_MAX_EXTRAS];
    int               have_extra[CTL_MAX_EXTRAS];

    /* "orders": applied events as exported, ctl_order_put records */
    sf_buf            orders;
    size_t            norders;

    /* rules */
    sf_rules          rules_base;   /* in force when the import began */
    sf_buf            rules_json;   /* the document's "rules", compact */
    unsigned long     rules_line;
    int               have_rules;

    /* profiles */
    ctl_reader        rd[CTL_MAX_JOBS];
    unsigned          nreaders;
    ctl_key          *keys;         /* every reader's, sorted by id */
    size_t            nkeys;
    uint64_t          spool_size;
    uint64_t          bad;
    int               stopped;
    int               stop_all;     /* a reader found too many bad ones */

    /* progress of the reading */
    ctl_progress      pr;
    uint64_t          total;        /* input size, 0 when unknown */
};

/*
 * The checkpoint, in meta under "import", is a JSON object:
 *   {"path": realpath, "size": bytes, "mtime": seconds, "total": profiles,
 *    "committed": profiles, "last_id": id of the last one committed}
 * Profiles are written in id order, so "committed" is a position in that
 * order; the file's identity makes it meaningful on a later run.
 */
typedef struct {
    int        found;
    char       path[4096];
    uint64_t   size;
    int64_t    mtime;
    uint64_t   total;
    uint64_t   committed;
    char       last_id[260];
} ctl_checkpoint;

/* The writing: experiments and rules, then the profiles in batches. */
typedef struct {
    const ctl_global  *g;
    ctl_import        *im;
    sf_db             *db;
    sf_error           err;
    ctl_checkpoint     cp;          /* what we write (identity known) */
    int                checkpoints; /* a regular file: resumable */
    sf_buf             cpbuf;
    sf_buf             rec;         /* a profile, unpacked */
    uint64_t           committed;   /* profiles in the database */
    uint64_t           grown;       /* map growths */
    ctl_progress       pr;
    uint64_t           start;       /* committed when this run began */
} ctl_writer;


/* ---- ctl_import.c ---- */

/* The sf_json_stream_file callback of a document: one member's element. */
int ctl_import_element(void *ctx, const char *member, long index,
    const sf_value *element, unsigned long line, sf_error *err);

/* Experiments, rules and the other members: one transaction. */
int ctl_put_experiments(ctl_writer *w, sf_txn *txn);


/* ---- ctl_import_profiles.c ---- */

double ctl_elapsed(const struct timespec *since);
void ctl_progress_start(ctl_progress *p);
void ctl_progress_clear(ctl_progress *p);

int ctl_reader_profile(ctl_reader *rd, const sf_value *el,
    unsigned long line);
int ctl_import_read(ctl_import *im, FILE *f, const char *path, int format,
    const struct stat *st);
int ctl_import_report(ctl_import *im, int format, int detected);
int ctl_import_gather(ctl_import *im);
size_t ctl_import_sort(ctl_import *im);
int ctl_key_record(const ctl_key *k, const char **id, size_t *id_len,
    sf_buf *rec);

int ctl_checkpoint_read(sf_db *db, ctl_checkpoint *c, sf_error *err);
void ctl_reserve_map(ctl_writer *w);
int ctl_write_txn(ctl_writer *w, int header, size_t from, size_t to);
void ctl_writer_draw(ctl_writer *w, size_t done, size_t total, int force);

#endif /* CTL_IMPORT_H */
