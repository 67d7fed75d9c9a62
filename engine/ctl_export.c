/*
 * storefrontctl export and list: the stored data written back as an
 * import document (or JSON lines), and the experiments one per line.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "ctl_pages.h"
#include "ctl_ads.h"


/* ---- export ------------------------------------------------------------- */

/*
 * export writes the import document: {"experiments": [...], "rules": {...}}
 * and, with --profiles, "profiles": [...] (one profile per line) and the
 * applied events, "orders": [...], so that a repeated event still counts
 * once after an import elsewhere.  With --jsonl it writes only the
 * profiles, as JSON lines.  Either imports back to the same state.
 */

typedef struct {
    FILE    *out;
    sf_buf   buf;
    size_t   n;
    int      jsonl;
    int      failed;          /* 1 out of memory, 2 write error */
} ctl_export;


static int
ctl_export_flush(ctl_export *x, int force)
{
    if (x->buf.len >= (1 << 20) || (force && x->buf.len)) {
        if (ctl_write(x->out, &x->buf) != 0) {
            x->failed = 2;
            return 1;
        }
        x->buf.len = 0;
    }
    return 0;
}


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

    return ctl_export_flush(x, 0);
}


static int
ctl_export_profile(void *ctx, const char *id, size_t id_len, const void *rec,
    size_t len)
{
    ctl_export  *x = ctx;
    sf_profile   p;

    
    sf_profile_init(&p);
    if (sf_profile_decode(rec, len, &p) != SF_OK) {
        x->failed = 3;
        return 1;
    }

    if (sf_buf_appends(&x->buf, x->jsonl ? "" : x->n ? ",\n" : "\n")
        != SF_OK
        || sf_profile_to_json(id, id_len, &p, &x->buf) != SF_OK
        || (x->jsonl && sf_buf_append(&x->buf, "\n", 1) != SF_OK))
    {
        x->failed = 1;
        return 1;
    }
    x->n++;

    return ctl_export_flush(x, 0);
}


static int
ctl_export_order(void *ctx, const sf_order_record *o)
{
    ctl_export  *x = ctx;

    if (sf_buf_appends(&x->buf, x->n ? ",\n" : "\n") != SF_OK
        || sf_order_to_json(o, &x->buf) != SF_OK)
    {
        x->failed = 1;
        return 1;
    }
    x->n++;

    return ctl_export_flush(x, 0);
}


typedef struct {
    int  profiles;
    int  jsonl;
} ctl_export_opts;


static int
ctl_export_option(void *ctx, int id, const char *value)
{
    ctl_export_opts  *o = ctx;

    (void) value;
    if (id == OPT_PROFILES) {
        o->profiles = 1;
    } else if (id == OPT_JSONL) {
        o->jsonl = 1;
    }
    return CTL_OK;
}


static const ctl_option ctl_export_options[] = {
    { "profiles", 0, OPT_PROFILES },
    { "jsonl", 0, OPT_JSONL },
    { NULL, 0, 0 }
};


/* The document (or the JSON lines) into x->out. */
static int
ctl_export_write(ctl_export *x, sf_snapshot *snap, const ctl_export_opts *o,
    const ctl_global *g)
{
    int              rc;
    sf_error         err;
    const sf_rules  *rules;

    memset(&err, 0, sizeof(err));

    if (!o->jsonl) {
        if (sf_buf_appends(&x->buf, "{\"experiments\":[") != SF_OK) {
            return ctl_nomem();
        }

        rc = sf_snapshot_each_experiment(snap, ctl_export_record, x, &err);
        if (x->failed) {
            goto out;
        }
        if (rc != SF_OK) {
            ctl_err("%s", err.msg);
            return CTL_ERROR;
        }

        if (sf_snapshot_rules(snap, &rules, &err) != SF_OK) {
            ctl_err("%s", err.msg);
            return CTL_ERROR;
        }

        if (sf_buf_appends(&x->buf, x->n ? "\n],\n\"rules\":"
                                         : "],\n\"rules\":") != SF_OK
            || sf_rules_to_json(rules, &x->buf) != SF_OK)
        {
            return ctl_nomem();
        }

        if (sf_buf_appends(&x->buf, ",\n\"pages\":") != SF_OK) {
            return ctl_nomem();
        }
        rc = ctl_pages_export(snap, &x->buf);
        if (rc == SF_ERR_NOT_FOUND) {
            x->buf.len -= sizeof(",\n\"pages\":") - 1;
        } else if (rc != SF_OK) {
            ctl_err("%s: the page layouts cannot be read", g->db_path);
            return CTL_ERROR;
        }

        {
            int       found;
            sf_error  aerr;

            if (sf_buf_appends(&x->buf, ",\n") != SF_OK) {
                return ctl_nomem();
            }
            memset(&aerr, 0, sizeof(aerr));
            if (ctl_ads_export(snap, &x->buf, &found, &aerr) != SF_OK) {
                ctl_err("%s: the ads cannot be read: %s", g->db_path,
                        aerr.msg);
                return CTL_ERROR;
            }
            if (!found) {
                x->buf.len -= 2;
            }
        }

        if (!o->profiles) {
            if (sf_buf_appends(&x->buf, "}\n") != SF_OK) {
                return ctl_nomem();
            }
            ctl_export_flush(x, 1);
            goto out;
        }

        if (sf_buf_appends(&x->buf, ",\n\"profiles\":[") != SF_OK) {
            return ctl_nomem();
        }
        x->n = 0;
    }

    x->jsonl = o->jsonl;
    rc = sf_snapshot_each_profile(snap, ctl_export_profile, x, &err);
    if (x->failed) {
        goto out;
    }
    if (rc != SF_OK) {
        ctl_err("%s", err.msg);
        return CTL_ERROR;
    }

    if (!o->jsonl) {
        if (sf_buf_appends(&x->buf, x->n ? "\n],\n\"orders\":["
                                         : "],\n\"orders\":[") != SF_OK)
        {
            return ctl_nomem();
        }

        x->n = 0;
        rc = sf_snapshot_each_order(snap, ctl_export_order, x, &err);
        if (x->failed) {
            goto out;
        }
        if (rc != SF_OK) {
            ctl_err("%s", err.msg);
            return CTL_ERROR;
        }

        if (sf_buf_appends(&x->buf, x->n ? "\n]}\n" : "]}\n") != SF_OK) {
            return ctl_nomem();
        }
    }
    ctl_export_flush(x, 1);

out:

    switch (x->failed) {
    case 0:
        return CTL_OK;
    case 1:
        return ctl_nomem();
    case 3:
        ctl_err("%s: a stored profile is corrupt", g->db_path);
        return CTL_ERROR;
    default:
        return CTL_ERROR;       /* write error: reported by the caller */
    }
}


int
ctl_cmd_export(ctl_global *g, int argc, char **argv, char **pos)
{
    int               rc, npos, fd, ret;
    char             *tmp;
    const char       *target;
    mode_t            mask;
    sf_db            *db;
    sf_snapshot      *snap;
    ctl_export        x;
    ctl_export_opts   opts;

    memset(&opts, 0, sizeof(opts));
    rc = ctl_parse_args("export", argc, argv, g, ctl_export_options,
                        ctl_export_option, &opts, pos, &npos);
    if (rc != CTL_OK) {
        return rc;
    }
    if (npos > 1) {
        return ctl_usage_err("export: too many arguments");
    }
    if (opts.profiles && opts.jsonl) {
        return ctl_usage_err("export: --jsonl writes only the profiles: "
                             "give --profiles or --jsonl, not both");
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

    rc = ctl_export_write(&x, snap, &opts, g);
    if (rc != CTL_OK && x.failed != 2) {
        goto done;
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


int
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
                        ctl_json_option, &json, pos, &npos);
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
