/*
 * The LMDB environment: opening it, read snapshots that a worker keeps and
 * renews per request, and write transactions for the tools.
 *
 * Named databases:
 *   meta         "format" -> format version; import checkpoints
 *   experiments  experiment key -> compiled experiment record
 *   profiles     user id -> profile record
 *   orders       user id NUL order id -> sf_order (idempotent events)
 *   config       "rules" -> sf_rules, "pages" -> page layouts
 *   exposures    user id NUL experiment key -> sf_exposure_rec
 *   arms         experiment key NUL variation (u32 BE) -> sf_arm_counts
 *   push         push decision state (sf_push.c)
 *   push_log     sequence (u64 BE) -> one push decision (sf_push.c)
 *   ads, ad_state, ad_counts    campaigns, users' impressions, counters
 */

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "storefront.h"
#include "sf_internal.h"


#define SF_DB_FORMAT       "1"
#define SF_DB_MAX_DBS      32
#define SF_DB_MAX_READERS  1022   /* workers, lingering old workers, tools */

struct sf_db {
    MDB_env    *env;
    MDB_dbi     meta;
    MDB_dbi     experiments;
    MDB_dbi     profiles;
    MDB_dbi     orders;
    MDB_dbi     config;
    MDB_dbi     exposures;
    MDB_dbi     arms;
    MDB_dbi     stores[SF_STORE__COUNT];     /* by sf_store */
    int         have_dbs;       /* named databases exist */
    uint64_t    commits;        /* made through this handle */
    unsigned    flags;
    char       *path;
};

struct sf_snapshot {
    sf_db       *db;
    MDB_txn     *txn;
    MDB_cursor  *cursor;
    int          active;
    uint32_t     rules_version;     /* of the cached copy, 0 = defaults */
    sf_rules     rules;
};

/* An applied event, kept so that a repeat changes nothing. */
typedef struct {
    int64_t   time;
    double    amount;
    double    returned;
    double    points;
    uint32_t  type;
    uint32_t  pad;
} sf_order;

typedef struct {
    int64_t   time;
    uint32_t  variation;
    uint32_t  converted;
} sf_exposure_rec;

struct sf_txn {
    sf_db       *db;
    MDB_txn     *txn;
    int          decisions;     /* decision data written: bump generation */
};

#define SF_GENERATION_KEY  "generation"



static int
sf_db_error(sf_error *err, int rc, const char *what)
{
    if (rc == MDB_MAP_FULL) {
        return sf_error_set(err, SF_ERR_MAP_FULL, "%s: the database map is "
                            "full: raise the map size", what);
    }

    return sf_error_set(err, SF_ERR_DB, "%s: %s", what, mdb_strerror(rc));
}


static int
sf_db_mkdirs(const char *path)
{
    char   *p, *s;
    int     rc;

    s = strdup(path);
    if (s == NULL) {
        return ENOMEM;
    }

    rc = 0;
    for (p = s + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(s, 0755) != 0 && errno != EEXIST) {
                rc = errno;
                break;
            }
            *p = '/';
        }
    }

    if (rc == 0 && mkdir(s, 0755) != 0 && errno != EEXIST) {
        rc = errno;
    }

    free(s);
    return rc;
}


/*
 * A tool run as root must not leave files the workers (another user)
 * cannot open: the files take the directory's owner.
 */
static void
sf_db_match_owner(const char *path)
{
    char         file[4096];
    struct stat  dir, st;
    const char  *names[] = { "data.mdb", "lock.mdb" };
    size_t       i;

    if (geteuid() != 0 || stat(path, &dir) != 0) {
        return;
    }

    for (i = 0; i < 2; i++) {
        snprintf(file, sizeof(file), "%s/%s", path, names[i]);
        if (stat(file, &st) == 0
            && (st.st_uid != dir.st_uid || st.st_gid != dir.st_gid))
        {
            if (chown(file, dir.st_uid, dir.st_gid) != 0) {
                /* best effort: the open itself has succeeded */
            }
        }
    }
}


static int
sf_db_has_data(const char *path)
{
    char         file[4096];
    struct stat  st;

    snprintf(file, sizeof(file), "%s/data.mdb", path);
    return stat(file, &st) == 0 && st.st_size > 0;
}


static int
sf_db_open_names(sf_db *db, MDB_txn *txn, unsigned flags)
{
    int  rc;

    rc = mdb_dbi_open(txn, "meta", flags, &db->meta);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "experiments", flags, &db->experiments);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "profiles", flags, &db->profiles);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "orders", flags, &db->orders);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "config", flags, &db->config);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "exposures", flags, &db->exposures);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "arms", flags, &db->arms);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "push", flags, &db->stores[SF_STORE_PUSH]);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "push_log", flags,
                          &db->stores[SF_STORE_PUSH_LOG]);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "ads", flags, &db->stores[SF_STORE_ADS]);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "ad_state", flags,
                          &db->stores[SF_STORE_AD_STATE]);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "ad_counts", flags,
                          &db->stores[SF_STORE_AD_COUNTS]);
    }
    return rc;
}


static int
sf_db_open_dbis(sf_db *db, sf_error *err)
{
    int        rc;
    MDB_val    k, v;
    MDB_txn   *txn;
    unsigned   create;

    /* first try without creating, so read-only openers work */
    rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return sf_db_error(err, rc, db->path);
    }

    rc = sf_db_open_names(db, txn, 0);

    if (rc == 0) {
        k.mv_data = "format";
        k.mv_size = 6;
        rc = mdb_get(txn, db->meta, &k, &v);
        if (rc == 0 && (v.mv_size != 1 || memcmp(v.mv_data, SF_DB_FORMAT, 1)))
        {
            mdb_txn_abort(txn);
            return sf_error_set(err, SF_ERR_DB, "%s: unsupported database "
                                "format \"%.*s\"", db->path, (int) v.mv_size,
                                (char *) v.mv_data);
        }
        rc = mdb_txn_commit(txn);
        if (rc != 0) {
            return sf_db_error(err, rc, db->path);
        }
        db->have_dbs = 1;
        return SF_OK;
    }

    mdb_txn_abort(txn);

    if (rc != MDB_NOTFOUND) {
        return sf_db_error(err, rc, db->path);
    }

    if (db->flags & SF_DB_READONLY) {
        /* an empty environment: no data yet, not an error */
        return SF_OK;
    }

    create = MDB_CREATE;
    rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc != 0) {
        return sf_db_error(err, rc, db->path);
    }

    rc = sf_db_open_names(db, txn, create);
    if (rc == 0) {
        k.mv_data = "format";
        k.mv_size = 6;
        v.mv_data = SF_DB_FORMAT;
        v.mv_size = 1;
        rc = mdb_put(txn, db->meta, &k, &v, 0);
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return sf_db_error(err, rc, db->path);
    }

    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        return sf_db_error(err, rc, db->path);
    }

    db->have_dbs = 1;
    return SF_OK;
}


int
sf_db_open(sf_db **dbp, const char *path, size_t map_size, unsigned flags,
    sf_error *err)
{
    int          rc;
    sf_db       *db;
    struct stat  st;

    *dbp = NULL;

    if (flags & SF_DB_CREATE) {
        rc = sf_db_mkdirs(path);
        if (rc != 0) {
            return sf_error_set(err, SF_ERR_IO, "%s: cannot create: %s", path,
                                strerror(rc));
        }

    } else if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return sf_error_set(err, SF_ERR_NOT_FOUND, "%s: no such database "
                            "directory", path);
    }

    db = calloc(1, sizeof(sf_db));
    if (db == NULL || (db->path = strdup(path)) == NULL) {
        free(db);
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }
    db->flags = flags;

    rc = mdb_env_create(&db->env);
    if (rc == 0) {
        rc = mdb_env_set_maxdbs(db->env, SF_DB_MAX_DBS);
    }
    if (rc == 0) {
        rc = mdb_env_set_maxreaders(db->env, SF_DB_MAX_READERS);
    }
    if (rc == 0 && (map_size || !sf_db_has_data(path))) {
        /* without a size, an existing file keeps the size it records */
        rc = mdb_env_set_mapsize(db->env,
                                 map_size ? map_size : SF_DB_DEFAULT_MAP_SIZE);
    }
    if (rc == 0) {
        rc = mdb_env_open(db->env, path,
                          MDB_NOTLS
                          | ((flags & SF_DB_READONLY) ? MDB_RDONLY : 0),
                          0644);
    }

    if (rc != 0) {
        sf_db_error(err, rc, path);
        sf_db_close(db);
        return err ? err->code : SF_ERR_DB;
    }

    if (flags & SF_DB_CREATE) {
        sf_db_match_owner(path);
    }

    rc = sf_db_open_dbis(db, err);
    if (rc != SF_OK) {
        sf_db_close(db);
        return rc;
    }

    *dbp = db;
    return SF_OK;
}


void
sf_db_close(sf_db *db)
{
    if (db == NULL) {
        return;
    }

    if (db->env) {
        mdb_env_close(db->env);
    }
    free(db->path);
    free(db);
}


int
sf_db_reader_check(sf_db *db, int *cleared)
{
    int  dead;

    dead = 0;
    if (mdb_reader_check(db->env, &dead) != 0) {
        return SF_ERR_DB;
    }

    if (cleared) {
        *cleared = dead;
    }
    return SF_OK;
}


static int
sf_db_count_reader(const char *msg, void *ctx)
{
    /* mdb_reader_list prints a title line, then one line per reader */
    if (strncmp(msg, "    pid", 7) != 0 && strstr(msg, "(no active") == NULL) {
        (*(unsigned *) ctx)++;
    }
    return 0;
}


int
sf_db_info_get(sf_db *db, sf_db_info *info, sf_error *err)
{
    int          rc;
    MDB_txn     *txn;
    MDB_stat     st;
    MDB_envinfo  ei;

    memset(info, 0, sizeof(*info));

    mdb_env_info(db->env, &ei);
    mdb_env_stat(db->env, &st);

    info->map_size = ei.me_mapsize;
    info->used_bytes = (ei.me_last_pgno + 1) * (size_t) st.ms_psize;
    info->max_readers = ei.me_maxreaders;
    mdb_reader_list(db->env, sf_db_count_reader, &info->readers_in_use);

    if (!db->have_dbs) {
        return SF_OK;
    }

    rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return sf_db_error(err, rc, db->path);
    }

    rc = mdb_stat(txn, db->experiments, &st);
    if (rc == 0) {
        info->experiments = st.ms_entries;
        rc = mdb_stat(txn, db->profiles, &st);
    }
    if (rc == 0) {
        info->profiles = st.ms_entries;
    }

    mdb_txn_abort(txn);
    return rc ? sf_db_error(err, rc, db->path) : SF_OK;
}


/* ---- read snapshots ------------------------------------------------------ */

int
sf_snapshot_create(sf_db *db, sf_snapshot **sp, sf_error *err)
{
    int           rc;
    sf_snapshot  *s;

    s = calloc(1, sizeof(sf_snapshot));
    if (s == NULL) {
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }
    s->db = db;
    sf_rules_default(&s->rules);

    rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &s->txn);
    if (rc == 0 && db->have_dbs) {
        rc = mdb_cursor_open(s->txn, db->experiments, &s->cursor);
    }
    if (rc != 0) {
        if (s->txn) {
            mdb_txn_abort(s->txn);
        }
        free(s);
        return sf_db_error(err, rc, db->path);
    }

    /* keep the reader slot and the cursor, release the snapshot */
    mdb_txn_reset(s->txn);

    *sp = s;
    return SF_OK;
}


int
sf_snapshot_renew(sf_snapshot *s, sf_error *err)
{
    int  rc;

    if (s->active) {
        return SF_OK;
    }

    rc = mdb_txn_renew(s->txn);

    if (rc == MDB_MAP_RESIZED) {
        /* another process grew the map: adopt its size and retry */
        rc = mdb_env_set_mapsize(s->db->env, 0);
        if (rc == 0) {
            rc = mdb_txn_renew(s->txn);
        }
    }

    if (rc == 0 && s->cursor) {
        rc = mdb_cursor_renew(s->txn, s->cursor);
        if (rc != 0) {
            mdb_txn_reset(s->txn);
        }
    }

    if (rc != 0) {
        return sf_db_error(err, rc, s->db->path);
    }

    s->active = 1;
    return SF_OK;
}


void
sf_snapshot_reset(sf_snapshot *s)
{
    if (s->active) {
        mdb_txn_reset(s->txn);
        s->active = 0;
    }
}


void
sf_snapshot_free(sf_snapshot *s)
{
    if (s == NULL) {
        return;
    }

    if (s->cursor) {
        mdb_cursor_close(s->cursor);
    }
    mdb_txn_abort(s->txn);
    free(s);
}


int
sf_snapshot_each_experiment(sf_snapshot *s, sf_record_cb cb, void *ctx,
    sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    if (s->cursor == NULL) {
        return SF_OK;
    }

    for (rc = mdb_cursor_get(s->cursor, &k, &v, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(s->cursor, &k, &v, MDB_NEXT))
    {
        rc = cb(ctx, v.mv_data, v.mv_size);
        if (rc != 0) {
            return rc;
        }
    }

    if (rc != MDB_NOTFOUND) {
        return sf_db_error(err, rc, s->db->path);
    }

    return SF_OK;
}


int
sf_snapshot_get_experiment(sf_snapshot *s, const char *key, size_t key_len,
    const void **rec, size_t *len, sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    if (!s->db->have_dbs) {
        return sf_error_set(err, SF_ERR_NOT_FOUND, "no experiment \"%.*s\"",
                            (int) key_len, key);
    }

    k.mv_data = (void *) key;
    k.mv_size = key_len;

    rc = mdb_get(s->txn, s->db->experiments, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return sf_error_set(err, SF_ERR_NOT_FOUND, "no experiment \"%.*s\"",
                            (int) key_len, key);
    }
    if (rc != 0) {
        return sf_db_error(err, rc, s->db->path);
    }

    *rec = v.mv_data;
    *len = v.mv_size;
    return SF_OK;
}


int
sf_evaluate_all(sf_snapshot *s, const sf_request *request, sf_assignment *out,
    size_t max, size_t *n, sf_error *err)
{
    int             rc;
    MDB_val         k, v;
    sf_request      r;
    sf_hash_cache   cache;
    const sf_request  *req;

    *n = 0;

    /* the experiments share the hash of the visitor's id */
    req = request;
    if (request->hash_cache == NULL) {
        r = *request;
        memset(&cache, 0, sizeof(cache));
        r.hash_cache = &cache;
        req = &r;
    }

    if (s->cursor == NULL) {
        return SF_OK;
    }

    for (rc = mdb_cursor_get(s->cursor, &k, &v, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(s->cursor, &k, &v, MDB_NEXT))
    {
        if (*n == max) {
            return sf_error_set(err, SF_ERR_TOO_MANY, "more than %zu "
                                "experiments", max);
        }

        if (sf_experiment_evaluate(v.mv_data, v.mv_size, req, &out[*n])
            != SF_OK)
        {
            return sf_error_set(err, SF_ERR_DB, "%s: corrupt experiment "
                                "record \"%.*s\"", s->db->path,
                                (int) k.mv_size, (char *) k.mv_data);
        }

        (*n)++;
    }

    if (rc != MDB_NOTFOUND) {
        return sf_db_error(err, rc, s->db->path);
    }

    return SF_OK;
}


/* ---- write transactions ---------------------------------------------------- */

/*
 * The data generation: a counter in meta that every commit changing what
 * a request's decision reads (experiments, profiles and orders, rules,
 * pages, campaigns) increments, and state written on the request path
 * (exposures, arms, push and ad state) does not.  Readers that keep
 * decisions across requests compare it.
 */

static int
sf_txn_bump_generation(sf_txn *t)
{
    int       rc;
    uint64_t  gen;
    MDB_val   k, v;

    k.mv_data = SF_GENERATION_KEY;
    k.mv_size = sizeof(SF_GENERATION_KEY) - 1;

    gen = 0;
    rc = mdb_get(t->txn, t->db->meta, &k, &v);
    if (rc == 0 && v.mv_size == sizeof(gen)) {
        memcpy(&gen, v.mv_data, sizeof(gen));
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        return rc;
    }

    gen++;
    v.mv_data = &gen;
    v.mv_size = sizeof(gen);

    return mdb_put(t->txn, t->db->meta, &k, &v, 0);
}


int
sf_snapshot_generation(sf_snapshot *s, uint64_t *gen, sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    *gen = 0;

    if (!s->db->have_dbs) {
        return SF_OK;
    }

    k.mv_data = SF_GENERATION_KEY;
    k.mv_size = sizeof(SF_GENERATION_KEY) - 1;

    rc = mdb_get(s->txn, s->db->meta, &k, &v);
    if (rc == 0 && v.mv_size == sizeof(*gen)) {
        memcpy(gen, v.mv_data, sizeof(*gen));
        return SF_OK;
    }

    return (rc == 0 || rc == MDB_NOTFOUND) ? SF_OK
                                           : sf_db_error(err, rc, "meta");
}


typedef struct {
    const char  *name;
    size_t       name_len;
    int          reads;
} sf_reads_ctx;


static int
sf_snapshot_reads_one(void *ctx, const void *rec, size_t len)
{
    sf_reads_ctx  *x = ctx;

    if (sf_experiment_reads(rec, len, x->name, x->name_len)) {
        x->reads = 1;
        return 1;       /* found: stop */
    }

    return 0;
}


int
sf_snapshot_reads(sf_snapshot *s, const char *name, size_t name_len,
    int *reads, sf_error *err)
{
    int           rc;
    sf_reads_ctx  x;

    x.name = name;
    x.name_len = name_len;
    x.reads = 0;

    rc = sf_snapshot_each_experiment(s, sf_snapshot_reads_one, &x, err);

    *reads = x.reads;
    return x.reads ? SF_OK : rc;
}


uint64_t
sf_db_commits(sf_db *db)
{
    return db->commits;
}


uint64_t
sf_db_last_txn(sf_db *db)
{
    MDB_envinfo  ei;

    mdb_env_info(db->env, &ei);

    return (uint64_t) ei.me_last_txnid;
}


int
sf_txn_begin(sf_db *db, sf_txn **tp, sf_error *err)
{
    int      rc;
    sf_txn  *t;

    if (db->flags & SF_DB_READONLY) {
        return sf_error_set(err, SF_ERR_INVALID, "%s: opened read-only",
                            db->path);
    }

    t = calloc(1, sizeof(sf_txn));
    if (t == NULL) {
        return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }
    t->db = db;

    rc = mdb_txn_begin(db->env, NULL, 0, &t->txn);
    if (rc == MDB_MAP_RESIZED) {
        rc = mdb_env_set_mapsize(db->env, 0);
        if (rc == 0) {
            rc = mdb_txn_begin(db->env, NULL, 0, &t->txn);
        }
    }

    if (rc != 0) {
        free(t);
        return sf_db_error(err, rc, db->path);
    }

    *tp = t;
    return SF_OK;
}


int
sf_txn_commit(sf_txn *t, sf_error *err)
{
    int  rc;

    if (t->decisions) {
        rc = sf_txn_bump_generation(t);
        if (rc != 0) {
            mdb_txn_abort(t->txn);
            free(t);
            return sf_db_error(err, rc, "commit");
        }
    }

    rc = mdb_txn_commit(t->txn);
    if (rc == 0) {
        t->db->commits++;
    }
    free(t);

    return rc ? sf_db_error(err, rc, "commit") : SF_OK;
}


void
sf_txn_abort(sf_txn *t)
{
    if (t) {
        mdb_txn_abort(t->txn);
        free(t);
    }
}


int
sf_txn_put_experiment(sf_txn *t, const void *rec, size_t len, sf_error *err)
{
    int          rc;
    size_t       key_len;
    MDB_val      k, v;
    const char  *key;

    if (sf_experiment_key(rec, len, &key, &key_len) != SF_OK) {
        return sf_error_set(err, SF_ERR_INVALID, "not an experiment record");
    }

    k.mv_data = (void *) key;
    k.mv_size = key_len;
    v.mv_data = (void *) rec;
    v.mv_size = len;

    t->decisions = 1;
    rc = mdb_put(t->txn, t->db->experiments, &k, &v, 0);
    return rc ? sf_db_error(err, rc, "experiment") : SF_OK;
}


int
sf_txn_delete_experiment(sf_txn *t, const char *key, size_t key_len,
    sf_error *err)
{
    int      rc;
    MDB_val  k;

    k.mv_data = (void *) key;
    k.mv_size = key_len;

    t->decisions = 1;
    rc = mdb_del(t->txn, t->db->experiments, &k, NULL);
    if (rc == MDB_NOTFOUND) {
        return sf_error_set(err, SF_ERR_NOT_FOUND, "no experiment \"%.*s\"",
                            (int) key_len, key);
    }

    return rc ? sf_db_error(err, rc, "experiment") : SF_OK;
}


int
sf_txn_update_experiment(sf_txn *t, const char *key, size_t key_len,
    const sf_value *changes, sf_buf *summary, sf_error *err)
{
    int      rc;
    sf_buf   rec;
    MDB_val  k, v;

    k.mv_data = (void *) key;
    k.mv_size = key_len;

    rc = mdb_get(t->txn, t->db->experiments, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return sf_error_set(err, SF_ERR_NOT_FOUND, "no experiment \"%.*s\"",
                            (int) key_len, key);
    }
    if (rc != 0) {
        return sf_db_error(err, rc, "experiment");
    }

    sf_buf_init(&rec);
    rc = sf_experiment_update(v.mv_data, v.mv_size, changes, &rec, summary,
                              err);
    if (rc == SF_OK) {
        rc = sf_txn_put_experiment(t, rec.data, rec.len, err);
    }
    sf_buf_free(&rec);
    return rc;
}


int
sf_txn_clear_experiments(sf_txn *t, sf_error *err)
{
    int  rc;

    t->decisions = 1;
    rc = mdb_drop(t->txn, t->db->experiments, 0);
    return rc ? sf_db_error(err, rc, "experiments") : SF_OK;
}


/* ---- profiles, rules, events ------------------------------------------------ */

int
sf_db_set_map_size(sf_db *db, size_t size, sf_error *err)
{
    int  rc;

    rc = mdb_env_set_mapsize(db->env, size);
    return rc ? sf_db_error(err, rc, db->path) : SF_OK;
}


static int
sf_db_get_profile(sf_db *db, MDB_txn *txn, const char *id, size_t id_len,
    sf_profile *p, sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    sf_profile_init(p);

    if (!db->have_dbs) {
        return SF_OK;
    }

    k.mv_data = (void *) id;
    k.mv_size = id_len;

    rc = mdb_get(txn, db->profiles, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return SF_OK;           /* a new visitor: defaults */
    }
    if (rc != 0) {
        return sf_db_error(err, rc, db->path);
    }

    if (sf_profile_decode(v.mv_data, v.mv_size, p) != SF_OK) {
        sf_profile_init(p);
        return sf_error_set(err, SF_ERR_DB, "%s: corrupt profile record",
                            db->path);
    }

    return SF_OK;
}


int
sf_snapshot_get_profile(sf_snapshot *s, const char *id, size_t id_len,
    sf_profile *p, sf_error *err)
{
    return sf_db_get_profile(s->db, s->txn, id, id_len, p, err);
}


static int
sf_db_read_rules(sf_db *db, MDB_txn *txn, const sf_rules **found,
    sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    *found = NULL;

    if (!db->have_dbs) {
        return SF_OK;
    }

    k.mv_data = "rules";
    k.mv_size = 5;

    rc = mdb_get(txn, db->config, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return SF_OK;
    }
    if (rc != 0) {
        return sf_db_error(err, rc, db->path);
    }

    if (v.mv_size != sizeof(sf_rules)) {
        return sf_error_set(err, SF_ERR_DB, "%s: rules of another format",
                            db->path);
    }

    *found = v.mv_data;     /* may be unaligned: callers memcpy */
    return SF_OK;
}


int
sf_snapshot_rules(sf_snapshot *s, const sf_rules **rules, sf_error *err)
{
    int              rc;
    uint32_t         version;
    const sf_rules  *stored;

    rc = sf_db_read_rules(s->db, s->txn, &stored, err);
    if (rc != SF_OK) {
        return rc;
    }

    if (stored == NULL) {
        if (s->rules_version != 0) {
            sf_rules_default(&s->rules);
            s->rules_version = 0;
        }

    } else {
        memcpy(&version, (const char *) stored + offsetof(sf_rules, version),
               sizeof(version));
        if (version != s->rules_version) {
            memcpy(&s->rules, stored, sizeof(sf_rules));
            s->rules_version = version;
        }
    }

    *rules = &s->rules;
    return SF_OK;
}


int
sf_snapshot_each_profile(sf_snapshot *s, sf_profile_cb cb, void *ctx,
    sf_error *err)
{
    int          rc;
    MDB_val      k, v;
    MDB_cursor  *c;

    if (!s->db->have_dbs) {
        return SF_OK;
    }

    rc = mdb_cursor_open(s->txn, s->db->profiles, &c);
    if (rc != 0) {
        return sf_db_error(err, rc, s->db->path);
    }

    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
    {
        rc = cb(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
        if (rc != 0) {
            mdb_cursor_close(c);
            return rc;
        }
    }

    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? SF_OK : sf_db_error(err, rc, s->db->path);
}


int
sf_txn_put_profile(sf_txn *t, const char *id, size_t id_len, const void *rec,
    size_t len, sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    k.mv_data = (void *) id;
    k.mv_size = id_len;
    v.mv_data = (void *) rec;
    v.mv_size = len;

    t->decisions = 1;
    rc = mdb_put(t->txn, t->db->profiles, &k, &v, 0);
    return rc ? sf_db_error(err, rc, "profile") : SF_OK;
}


int
sf_txn_get_profile(sf_txn *t, const char *id, size_t id_len, sf_profile *p,
    sf_error *err)
{
    return sf_db_get_profile(t->db, t->txn, id, id_len, p, err);
}


int
sf_txn_get_rules(sf_txn *t, sf_rules *rules, sf_error *err)
{
    int              rc;
    const sf_rules  *stored;

    rc = sf_db_read_rules(t->db, t->txn, &stored, err);
    if (rc != SF_OK) {
        return rc;
    }

    if (stored) {
        memcpy(rules, stored, sizeof(*rules));
    } else {
        sf_rules_default(rules);
    }
    return SF_OK;
}


int
sf_txn_put_rules(sf_txn *t, const sf_rules *rules, sf_error *err)
{
    int       rc;
    MDB_val   k, v;
    sf_rules  current, r;

    rc = sf_txn_get_rules(t, &current, err);
    if (rc != SF_OK) {
        return rc;
    }

    /* a new version makes every worker copy the rules again */
    r = *rules;
    r.version = current.version + 1;
    if (r.version == 0) {
        r.version = 1;
    }

    k.mv_data = "rules";
    k.mv_size = 5;
    v.mv_data = &r;
    v.mv_size = sizeof(r);

    t->decisions = 1;
    rc = mdb_put(t->txn, t->db->config, &k, &v, 0);
    return rc ? sf_db_error(err, rc, "rules") : SF_OK;
}


int
sf_txn_put_pages(sf_txn *t, const void *blob, size_t len, sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    k.mv_data = "pages";
    k.mv_size = 5;
    v.mv_data = (void *) blob;
    v.mv_size = len;

    t->decisions = 1;
    rc = mdb_put(t->txn, t->db->config, &k, &v, 0);
    return rc ? sf_db_error(err, rc, "pages") : SF_OK;
}


int
sf_snapshot_pages(sf_snapshot *s, const void **blob, size_t *len,
    sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    *blob = NULL;
    *len = 0;

    if (!s->db->have_dbs) {
        return SF_OK;
    }

    k.mv_data = "pages";
    k.mv_size = 5;

    rc = mdb_get(s->txn, s->db->config, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return SF_OK;
    }
    if (rc != 0) {
        return sf_db_error(err, rc, s->db->path);
    }

    *blob = v.mv_data;
    *len = v.mv_size;
    return SF_OK;
}


int
sf_txn_put_meta(sf_txn *t, const char *key, const void *val, size_t len,
    sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    k.mv_data = (void *) key;
    k.mv_size = strlen(key);
    v.mv_data = (void *) val;
    v.mv_size = len;

    rc = len ? mdb_put(t->txn, t->db->meta, &k, &v, 0)
             : mdb_del(t->txn, t->db->meta, &k, NULL);
    if (rc == MDB_NOTFOUND) {
        rc = 0;
    }
    return rc ? sf_db_error(err, rc, "meta") : SF_OK;
}


int
sf_txn_get_meta(sf_txn *t, const char *key, sf_buf *val, sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    k.mv_data = (void *) key;
    k.mv_size = strlen(key);
    val->len = 0;

    rc = mdb_get(t->txn, t->db->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return SF_ERR_NOT_FOUND;
    }
    if (rc != 0) {
        return sf_db_error(err, rc, "meta");
    }

    return sf_buf_append(val, v.mv_data, v.mv_size);
}


static int
sf_txn_save_profile(sf_txn *t, const sf_event *ev, const sf_profile *p,
    sf_error *err)
{
    int     rc;
    sf_buf  rec;

    sf_buf_init(&rec);
    rc = sf_profile_encode(p, &rec);
    if (rc == SF_OK) {
        rc = sf_txn_put_profile(t, ev->user, ev->user_len, rec.data, rec.len,
                                err);
    } else {
        sf_error_set(err, rc, "out of memory");
    }
    sf_buf_free(&rec);
    return rc;
}


/* ---- exposures and their conversions ------------------------------------ */

static size_t
sf_arm_key(char *key, const char *exp, size_t exp_len, uint32_t variation)
{
    memcpy(key, exp, exp_len);
    key[exp_len] = '\0';
    key[exp_len + 1] = (char) (variation >> 24);
    key[exp_len + 2] = (char) (variation >> 16);
    key[exp_len + 3] = (char) (variation >> 8);
    key[exp_len + 4] = (char) variation;
    return exp_len + 5;
}


typedef void (*sf_arm_update)(sf_arm_counts *c, double amount, int first);


static int
sf_txn_arm_add(sf_txn *t, const char *exp, size_t exp_len, uint32_t variation,
    sf_arm_update update, double amount, int first, sf_error *err)
{
    int            rc;
    char           key[256 + 5];
    MDB_val        k, v;
    sf_arm_counts  c;

    if (exp_len > 256) {
        return sf_error_set(err, SF_ERR_INVALID, "experiment key too long");
    }

    k.mv_data = key;
    k.mv_size = sf_arm_key(key, exp, exp_len, variation);

    rc = mdb_get(t->txn, t->db->arms, &k, &v);
    if (rc == 0 && v.mv_size == sizeof(c)) {
        memcpy(&c, v.mv_data, sizeof(c));
    } else if (rc == 0 || rc == MDB_NOTFOUND) {
        memset(&c, 0, sizeof(c));
    } else {
        return sf_db_error(err, rc, "arms");
    }

    update(&c, amount, first);

    v.mv_data = &c;
    v.mv_size = sizeof(c);
    rc = mdb_put(t->txn, t->db->arms, &k, &v, 0);
    return rc ? sf_db_error(err, rc, "arms") : SF_OK;
}


static void
sf_arm_exposed(sf_arm_counts *c, double amount, int first)
{
    (void) amount;
    (void) first;
    c->users++;
}


static void
sf_arm_purchased(sf_arm_counts *c, double amount, int first)
{
    c->orders++;
    c->revenue += amount;
    c->converters += first;
}


static void
sf_arm_returned(sf_arm_counts *c, double amount, int first)
{
    (void) first;
    c->returns++;
    c->returned += amount;
}


int
sf_txn_record_exposure(sf_txn *t, const sf_exposure *e, int *is_new,
    sf_error *err)
{
    int              rc;
    char             key[256 + 1 + 256];
    MDB_val          k, v;
    sf_exposure_rec  rec;

    *is_new = 0;

    if (e->user_len > 256 || e->experiment_len > 256) {
        return sf_error_set(err, SF_ERR_INVALID, "user or experiment key too "
                            "long");
    }

    memcpy(key, e->user, e->user_len);
    key[e->user_len] = '\0';
    memcpy(key + e->user_len + 1, e->experiment, e->experiment_len);
    k.mv_data = key;
    k.mv_size = e->user_len + 1 + e->experiment_len;

    memset(&rec, 0, sizeof(rec));
    rec.time = e->time;
    rec.variation = e->variation;
    v.mv_data = &rec;
    v.mv_size = sizeof(rec);

    /* a user counts once per experiment, whatever the workers say */
    rc = mdb_put(t->txn, t->db->exposures, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        return SF_OK;
    }
    if (rc != 0) {
        return sf_db_error(err, rc, "exposures");
    }

    *is_new = 1;
    return sf_txn_arm_add(t, e->experiment, e->experiment_len, e->variation,
                          sf_arm_exposed, 0, 0, err);
}


/* Credits an order or a return to every exposure of the user before t. */
static int
sf_txn_attribute(sf_txn *t, const sf_event *ev, int64_t before,
    double amount, sf_error *err)
{
    int              rc, first;
    MDB_val          k, v;
    MDB_cursor      *c;
    sf_exposure_rec  rec;

    rc = mdb_cursor_open(t->txn, t->db->exposures, &c);
    if (rc != 0) {
        return sf_db_error(err, rc, "exposures");
    }

    k.mv_data = (void *) ev->user;
    k.mv_size = ev->user_len;

    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
         rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
    {
        if (k.mv_size <= ev->user_len
            || memcmp(k.mv_data, ev->user, ev->user_len) != 0
            || ((char *) k.mv_data)[ev->user_len] != '\0')
        {
            break;
        }

        memcpy(&rec, v.mv_data, sizeof(rec));
        if (rec.time > before) {
            continue;
        }

        if (ev->type == SF_EVENT_PURCHASE) {
            first = !rec.converted;
            if (first) {
                rec.converted = 1;
                v.mv_data = &rec;
                v.mv_size = sizeof(rec);
                rc = mdb_cursor_put(c, &k, &v, MDB_CURRENT);
                if (rc != 0) {
                    break;
                }
            }
            rc = sf_txn_arm_add(t, (char *) k.mv_data + ev->user_len + 1,
                                k.mv_size - ev->user_len - 1, rec.variation,
                                sf_arm_purchased, amount, first, err);
        } else {
            rc = sf_txn_arm_add(t, (char *) k.mv_data + ev->user_len + 1,
                                k.mv_size - ev->user_len - 1, rec.variation,
                                sf_arm_returned, amount, 0, err);
        }

        if (rc != SF_OK) {
            mdb_cursor_close(c);
            return rc;
        }
    }

    mdb_cursor_close(c);

    if (rc != 0 && rc != MDB_NOTFOUND) {
        return sf_db_error(err, rc, "exposures");
    }
    return SF_OK;
}


static int
sf_db_arm_counts(sf_db *db, MDB_txn *txn, const char *key, size_t key_len,
    sf_arm_counts *arms, size_t max, size_t *n, sf_error *err)
{
    int          rc;
    char         prefix[256 + 5];
    uint32_t     var;
    MDB_val      k, v;
    MDB_cursor  *c;

    *n = 0;
    if (!db->have_dbs || key_len > 256) {
        return SF_OK;
    }

    rc = mdb_cursor_open(txn, db->arms, &c);
    if (rc != 0) {
        return sf_db_error(err, rc, "arms");
    }

    k.mv_data = prefix;
    k.mv_size = sf_arm_key(prefix, key, key_len, 0);

    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
         rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
    {
        if (k.mv_size != key_len + 5 || memcmp(k.mv_data, key, key_len) != 0
            || ((char *) k.mv_data)[key_len] != '\0')
        {
            break;
        }

        var = ((uint32_t) ((unsigned char *) k.mv_data)[key_len + 1] << 24)
              | ((uint32_t) ((unsigned char *) k.mv_data)[key_len + 2] << 16)
              | ((uint32_t) ((unsigned char *) k.mv_data)[key_len + 3] << 8)
              | ((unsigned char *) k.mv_data)[key_len + 4];

        if (var >= max || v.mv_size != sizeof(sf_arm_counts)) {
            continue;
        }

        while (*n <= var) {
            memset(&arms[(*n)++], 0, sizeof(sf_arm_counts));
        }
        memcpy(&arms[var], v.mv_data, sizeof(sf_arm_counts));
    }

    mdb_cursor_close(c);
    return (rc == 0 || rc == MDB_NOTFOUND) ? SF_OK
                                           : sf_db_error(err, rc, "arms");
}


int
sf_snapshot_arm_counts(sf_snapshot *s, const char *key, size_t key_len,
    sf_arm_counts *arms, size_t max, size_t *n, sf_error *err)
{
    return sf_db_arm_counts(s->db, s->txn, key, key_len, arms, max, n, err);
}


int
sf_txn_arm_counts(sf_txn *t, const char *key, size_t key_len,
    sf_arm_counts *arms, size_t max, size_t *n, sf_error *err)
{
    return sf_db_arm_counts(t->db, t->txn, key, key_len, arms, max, n, err);
}


/* The key of an order: user id, NUL, order id. */
static size_t
sf_order_key(char *key, const char *user, size_t user_len,
    const char *order_id, size_t order_id_len)
{
    memcpy(key, user, user_len);
    key[user_len] = '\0';
    memcpy(key + user_len + 1, order_id, order_id_len);
    return user_len + 1 + order_id_len;
}


int
sf_snapshot_each_order(sf_snapshot *s, sf_order_cb cb, void *ctx,
    sf_error *err)
{
    int              rc;
    char            *nul;
    MDB_val          k, v;
    sf_order         order;
    MDB_cursor      *c;
    sf_order_record  o;

    if (!s->db->have_dbs) {
        return SF_OK;
    }

    rc = mdb_cursor_open(s->txn, s->db->orders, &c);
    if (rc != 0) {
        return sf_db_error(err, rc, s->db->path);
    }

    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
    {
        nul = memchr(k.mv_data, '\0', k.mv_size);
        if (nul == NULL || v.mv_size != sizeof(order)) {
            continue;       /* not written by this version: nothing to say */
        }

        memcpy(&order, v.mv_data, sizeof(order));

        o.user = k.mv_data;
        o.user_len = (size_t) (nul - (char *) k.mv_data);
        o.order_id = nul + 1;
        o.order_id_len = k.mv_size - o.user_len - 1;
        o.info.type = (sf_event_type) order.type;
        o.info.time = order.time;
        o.info.amount = order.amount;
        o.info.returned = order.returned;
        o.info.points = order.points;

        rc = cb(ctx, &o);
        if (rc != 0) {
            mdb_cursor_close(c);
            return rc;
        }
    }

    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? SF_OK : sf_db_error(err, rc, s->db->path);
}


int
sf_txn_put_order(sf_txn *t, const sf_order_record *o, sf_error *err)
{
    int       rc;
    char      key[256 + 1 + 128];
    MDB_val   k, v;
    sf_order  order;

    if (o->user_len == 0 || o->user_len > 256 || o->order_id_len == 0
        || o->order_id_len > 128)
    {
        return sf_error_set(err, SF_ERR_INVALID, "user or order id empty or "
                            "too long");
    }

    memset(&order, 0, sizeof(order));
    order.type = o->info.type;
    order.time = o->info.time;
    order.amount = o->info.amount;
    order.returned = o->info.returned;
    order.points = o->info.points;

    k.mv_data = key;
    k.mv_size = sf_order_key(key, o->user, o->user_len, o->order_id,
                             o->order_id_len);
    v.mv_data = &order;
    v.mv_size = sizeof(order);

    /* with the profiles it belongs to: the data generation moves */
    t->decisions = 1;

    rc = mdb_put(t->txn, t->db->orders, &k, &v, 0);
    if (rc != 0) {
        return sf_db_error(err, rc, "orders");
    }

    return SF_OK;
}


int
sf_txn_apply_event(sf_txn *t, const sf_event *ev, sf_event_result *res,
    sf_error *err)
{
    int         rc, exists;
    char        key[256 + 1 + 128];
    double      amount, points;
    MDB_val     k, v;
    sf_rules    rules;
    sf_order    order;
    sf_profile  p;

    memset(res, 0, sizeof(*res));

    if (ev->user_len > 256 || ev->order_id_len > 128) {
        return sf_error_set(err, SF_ERR_INVALID, "user or order id too long");
    }

    k.mv_data = key;
    k.mv_size = sf_order_key(key, ev->user, ev->user_len, ev->order_id,
                             ev->order_id_len);

    rc = mdb_get(t->txn, t->db->orders, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return sf_db_error(err, rc, "orders");
    }

    exists = (rc == 0);
    if (exists) {
        memcpy(&order, v.mv_data, sizeof(order));
    }

    rc = sf_txn_get_profile(t, ev->user, ev->user_len, &p, err);
    if (rc != SF_OK) {
        return rc;
    }

    switch (ev->type) {

    case SF_EVENT_PURCHASE:
    case SF_EVENT_POINTS:
        if (exists) {
            res->duplicate = 1;
            return SF_OK;
        }

        memset(&order, 0, sizeof(order));
        order.type = ev->type;
        order.time = ev->time;
        order.amount = ev->amount;

        if (ev->type == SF_EVENT_POINTS) {
            if (p.points + ev->amount < 0) {
                return sf_error_set(err, SF_ERR_INVALID, "user \"%.*s\" has "
                                    "%g points, fewer than %g",
                                    (int) ev->user_len, ev->user, p.points,
                                    -ev->amount);
            }
            if (!p.found) {
                p.found = 1;
                p.first_seen = ev->time;
            }
            p.points += ev->amount;
            order.points = ev->amount;
            res->points_earned = ev->amount;
            break;
        }

        rc = sf_txn_get_rules(t, &rules, err);
        if (rc != SF_OK) {
            return rc;
        }
        points = floor(ev->amount * rules.points_per_unit
                       * sf_rules_points_multiplier(&rules, ev->time));
        order.points = points;
        res->points_earned = points;
        sf_profile_add_purchase(&p, ev->amount, ev->time, ev->categories,
                                points);
        break;

    case SF_EVENT_RETURN:
        if (!exists || order.type != SF_EVENT_PURCHASE) {
            return sf_error_set(err, SF_ERR_NOT_FOUND, "user \"%.*s\" has no "
                                "order \"%.*s\"", (int) ev->user_len,
                                ev->user, (int) ev->order_id_len,
                                ev->order_id);
        }
        if (order.returned > 0) {
            res->duplicate = 1;
            return SF_OK;
        }

        amount = ev->amount < 0 ? order.amount : fmin(ev->amount,
                                                      order.amount);
        points = order.amount > 0 ? floor(order.points * amount / order.amount)
                                  : 0;
        order.returned = amount > 0 ? amount : 1e-9;   /* marks the return */
        res->points_earned = -points;
        sf_profile_add_return(&p, amount, order.time, points);
        break;

    default:
        return sf_error_set(err, SF_ERR_INVALID, "unknown event type");
    }

    v.mv_data = &order;
    v.mv_size = sizeof(order);
    t->decisions = 1;
    rc = mdb_put(t->txn, t->db->orders, &k, &v, 0);
    if (rc != 0) {
        return sf_db_error(err, rc, "orders");
    }

    if (ev->type != SF_EVENT_POINTS) {
        rc = sf_txn_attribute(t, ev, ev->type == SF_EVENT_RETURN
                                     ? order.time : ev->time,
                              ev->type == SF_EVENT_RETURN
                                  ? order.returned : ev->amount, err);
        if (rc != SF_OK) {
            return rc;
        }
    }

    return sf_txn_save_profile(t, ev, &p, err);
}


/* ---- RFM quintiles ------------------------------------------------------------ */

typedef struct {
    double   *recency, *frequency, *monetary;
    size_t    n, cap;
    int64_t   now;
    int       oom;
} sf_rfm_scan;


static int
sf_rfm_collect(void *ctx, const char *id, size_t id_len, const void *rec,
    size_t len)
{
    sf_rfm_scan  *sc = ctx;
    sf_profile    p;
    double       *r, *f, *m;
    size_t        cap;

    (void) id;
    (void) id_len;

    sf_profile_init(&p);
    if (sf_profile_decode(rec, len, &p) != SF_OK || p.orders == 0
        || p.last_order == 0)
    {
        return 0;
    }

    if (sc->n == sc->cap) {
        cap = sc->cap ? sc->cap * 2 : 65536;
        r = realloc(sc->recency, cap * sizeof(double));
        f = r ? realloc(sc->frequency, cap * sizeof(double)) : NULL;
        m = f ? realloc(sc->monetary, cap * sizeof(double)) : NULL;
        if (r) {
            sc->recency = r;
        }
        if (f) {
            sc->frequency = f;
        }
        if (m == NULL) {
            sc->oom = 1;
            return SF_ERR_NOMEM;
        }
        sc->monetary = m;
        sc->cap = cap;
    }

    sc->recency[sc->n] = fmax(0, (double) (sc->now - p.last_order) / 86400);
    sc->frequency[sc->n] = p.orders;
    sc->monetary[sc->n] = p.monetary;
    sc->n++;
    return 0;
}


static int
sf_rfm_cmp(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


/* The 20th, 40th, 60th and 80th percentiles. */
static void
sf_rfm_quintiles(double *v, size_t n, double *cuts)
{
    int  i;

    qsort(v, n, sizeof(double), sf_rfm_cmp);
    for (i = 0; i < 4; i++) {
        cuts[i] = v[(size_t) ceil((i + 1) * (double) n / 5) - 1];
    }
}


int
sf_rfm_rebuild(sf_db *db, int64_t now, sf_rules *out, size_t *profiles,
    sf_error *err)
{
    int           rc;
    sf_txn       *t = NULL;
    sf_rules      rules;
    sf_snapshot  *s;
    sf_rfm_scan   sc;

    memset(&sc, 0, sizeof(sc));
    sf_rules_default(&rules);
    sc.now = now;

    rc = sf_snapshot_create(db, &s, err);
    if (rc != SF_OK) {
        return rc;
    }

    rc = sf_snapshot_renew(s, err);
    if (rc == SF_OK) {
        rc = sf_snapshot_each_profile(s, sf_rfm_collect, &sc, err);
        sf_snapshot_reset(s);
    }
    sf_snapshot_free(s);

    if (rc == SF_OK && sc.oom) {
        rc = sf_error_set(err, SF_ERR_NOMEM, "out of memory");
    }
    if (rc == SF_OK && sc.n == 0) {
        rc = sf_error_set(err, SF_ERR_INVALID, "no profile with orders: "
                          "nothing to compute cut-points from");
    }

    if (rc == SF_OK) {
        rc = sf_txn_begin(db, &t, err);
    }

    if (rc == SF_OK) {
        rc = sf_txn_get_rules(t, &rules, err);
        if (rc == SF_OK) {
            sf_rfm_quintiles(sc.recency, sc.n, rules.recency_days);
            sf_rfm_quintiles(sc.frequency, sc.n, rules.frequency);
            sf_rfm_quintiles(sc.monetary, sc.n, rules.monetary);
            rules.rfm_computed_at = (int32_t) (now / 86400);
            rc = sf_txn_put_rules(t, &rules, err);
        }
        if (rc == SF_OK) {
            rc = sf_txn_commit(t, err);
        } else {
            sf_txn_abort(t);
        }
    }

    if (rc == SF_OK) {
        if (out) {
            *out = rules;
        }
        if (profiles) {
            *profiles = sc.n;
        }
    }

    free(sc.recency);
    free(sc.frequency);
    free(sc.monetary);
    return rc;
}


/* ---- plain key-value stores (sf_internal.h) ---------------------------------- */

int
sf_txn_kv_get(sf_txn *t, sf_store store, const void *key, size_t klen,
    const void **val, size_t *vlen, sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    k.mv_data = (void *) key;
    k.mv_size = klen;

    rc = mdb_get(t->txn, t->db->stores[store], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return SF_ERR_NOT_FOUND;
    }
    if (rc != 0) {
        return sf_db_error(err, rc, t->db->path);
    }

    *val = v.mv_data;
    *vlen = v.mv_size;
    return SF_OK;
}


int
sf_snapshot_kv_get(sf_snapshot *s, sf_store store, const void *key,
    size_t klen, const void **val, size_t *vlen, sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    if (!s->db->have_dbs) {
        return SF_ERR_NOT_FOUND;
    }

    k.mv_data = (void *) key;
    k.mv_size = klen;

    rc = mdb_get(s->txn, s->db->stores[store], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return SF_ERR_NOT_FOUND;
    }
    if (rc != 0) {
        return sf_db_error(err, rc, s->db->path);
    }

    *val = v.mv_data;
    *vlen = v.mv_size;
    return SF_OK;
}


int
sf_txn_kv_put(sf_txn *t, sf_store store, const void *key, size_t klen,
    const void *val, size_t vlen, unsigned flags, sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    k.mv_data = (void *) key;
    k.mv_size = klen;
    v.mv_data = (void *) val;
    v.mv_size = vlen;

    if (store == SF_STORE_ADS) {
        t->decisions = 1;     /* campaigns, not state */
    }

    rc = mdb_put(t->txn, t->db->stores[store], &k, &v,
                 (flags & SF_KV_APPEND) ? MDB_APPEND : 0);
    return rc ? sf_db_error(err, rc, t->db->path) : SF_OK;
}


int
sf_txn_kv_last(sf_txn *t, sf_store store, const void **key, size_t *klen,
    sf_error *err)
{
    int          rc;
    MDB_val      k, v;
    MDB_cursor  *c;

    rc = mdb_cursor_open(t->txn, t->db->stores[store], &c);
    if (rc != 0) {
        return sf_db_error(err, rc, t->db->path);
    }

    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    mdb_cursor_close(c);

    if (rc == MDB_NOTFOUND) {
        return SF_ERR_NOT_FOUND;
    }
    if (rc != 0) {
        return sf_db_error(err, rc, t->db->path);
    }

    *key = k.mv_data;
    *klen = k.mv_size;
    return SF_OK;
}


/*
 * Deletes the first records of a store while drop() says so, at most max
 * of them; *dropped gets how many.
 */

int
sf_txn_kv_drop_first(sf_txn *t, sf_store store,
    int (*drop)(const void *val, size_t len, void *ctx), void *ctx,
    size_t max, size_t *dropped, sf_error *err)
{
    int          rc;
    MDB_val      k, v;
    MDB_cursor  *c;

    *dropped = 0;

    rc = mdb_cursor_open(t->txn, t->db->stores[store], &c);
    if (rc != 0) {
        return sf_db_error(err, rc, t->db->path);
    }

    while (*dropped < max) {
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        if (rc != 0 || !drop(v.mv_data, v.mv_size, ctx)) {
            break;
        }

        rc = mdb_cursor_del(c, 0);
        if (rc != 0) {
            break;
        }

        (*dropped)++;
    }

    mdb_cursor_close(c);

    if (rc != 0 && rc != MDB_NOTFOUND) {
        return sf_db_error(err, rc, t->db->path);
    }

    return SF_OK;
}


int
sf_db_kv_each(sf_db *db, sf_store store, const void *prefix, size_t plen,
    sf_kv_cb cb, void *ctx, sf_error *err)
{
    int          rc, cbrc;
    MDB_txn     *txn;
    MDB_val      k, v;
    MDB_cursor  *c;

    if (!db->have_dbs) {
        return SF_OK;
    }

    rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return sf_db_error(err, rc, db->path);
    }

    rc = mdb_cursor_open(txn, db->stores[store], &c);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return sf_db_error(err, rc, db->path);
    }

    k.mv_data = (void *) prefix;
    k.mv_size = plen;

    cbrc = 0;
    for (rc = mdb_cursor_get(c, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
    {
        if (k.mv_size < plen
            || (plen && memcmp(k.mv_data, prefix, plen) != 0))
        {
            break;
        }
        cbrc = cb(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
        if (cbrc != 0) {
            break;
        }
    }

    mdb_cursor_close(c);
    mdb_txn_abort(txn);

    if (cbrc != 0) {
        return cbrc;
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return sf_db_error(err, rc, db->path);
    }
    return SF_OK;
}


int
sf_db_set_durable(sf_db *db, int durable, sf_error *err)
{
    int  rc;

    rc = mdb_env_set_flags(db->env, MDB_NOSYNC, durable ? 0 : 1);
    return rc ? sf_db_error(err, rc, db->path) : SF_OK;
}
