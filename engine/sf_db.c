/*
 * The LMDB environment: opening it, read snapshots that a worker keeps and
 * renews per request, and write transactions for the tools.
 *
 * Named databases:
 *   meta         "format" -> format version of the stored records
 *   experiments  experiment key -> compiled experiment record
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "storefront.h"


#define SF_DB_FORMAT       "1"
#define SF_DB_MAX_DBS      32
#define SF_DB_MAX_READERS  1022   /* workers, lingering old workers, tools */

struct sf_db {
    MDB_env    *env;
    MDB_dbi     meta;
    MDB_dbi     experiments;
    int         have_dbs;       /* named databases exist */
    unsigned    flags;
    char       *path;
};

struct sf_snapshot {
    sf_db       *db;
    MDB_txn     *txn;
    MDB_cursor  *cursor;
    int          active;
};

struct sf_txn {
    sf_db       *db;
    MDB_txn     *txn;
};


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

    rc = mdb_dbi_open(txn, "meta", 0, &db->meta);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "experiments", 0, &db->experiments);
    }

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

    rc = mdb_dbi_open(txn, "meta", create, &db->meta);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "experiments", create, &db->experiments);
    }
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
    if (rc == 0) {
        /* LMDB keeps the larger of this and the size the file records */
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
sf_evaluate_all(sf_snapshot *s, const sf_request *req, sf_assignment *out,
    size_t max, size_t *n, sf_error *err)
{
    int      rc;
    MDB_val  k, v;

    *n = 0;

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

    rc = mdb_txn_commit(t->txn);
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

    rc = mdb_del(t->txn, t->db->experiments, &k, NULL);
    if (rc == MDB_NOTFOUND) {
        return sf_error_set(err, SF_ERR_NOT_FOUND, "no experiment \"%.*s\"",
                            (int) key_len, key);
    }

    return rc ? sf_db_error(err, rc, "experiment") : SF_OK;
}


int
sf_txn_clear_experiments(sf_txn *t, sf_error *err)
{
    int  rc;

    rc = mdb_drop(t->txn, t->db->experiments, 0);
    return rc ? sf_db_error(err, rc, "experiments") : SF_OK;
}
