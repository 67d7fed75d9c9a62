/*
 * storefrontctl: diagnostics, the command-line parser every command uses,
 * and opening the database.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"


void
ctl_err(const char *fmt, ...)
{
    va_list  ap;

    fputs(CTL_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}


int
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


int
ctl_nomem(void)
{
    ctl_err("out of memory");
    return CTL_ERROR;
}


/* Writes the whole buffer to f; 0 on success. */
int
ctl_write(FILE *f, const sf_buf *b)
{
    if (b->len && fwrite(b->data, 1, b->len, f) != b->len) {
        return -1;
    }
    return 0;
}


/* Flushes stdout and reports a failed write (full disk, closed pipe). */
int
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

static const ctl_option ctl_global_options[] = {
    { "db", 1, OPT_DB },
    { "map-size", 1, OPT_MAP_SIZE },
    { "now", 1, OPT_NOW },
    { "help", 0, OPT_HELP },
    { NULL, 0, 0 }
};


int
ctl_attr_set(sf_member **attrs, size_t *n, size_t *cap, const char *name,
    size_t name_len, const char *value)
{
    size_t      i;
    sf_member  *m;

    for (i = 0; i < *n; i++) {
        if ((*attrs)[i].name_len == name_len
            && memcmp((*attrs)[i].name, name, name_len) == 0)
        {
            break;
        }
    }

    if (i == *n) {
        if (*n == *cap) {
            m = realloc(*attrs, (*cap ? *cap * 2 : 8) * sizeof(sf_member));
            if (m == NULL) {
                return ctl_nomem();
            }
            *attrs = m;
            *cap = *cap ? *cap * 2 : 8;
        }
        (*n)++;
    }

    m = &(*attrs)[i];
    m->name = name;
    m->name_len = name_len;
    m->value.type = SF_STRING;
    m->value.u.str.p = value;
    m->value.u.str.len = strlen(value);
    return CTL_OK;
}


/* A time: unix seconds or ISO 8601 ("2026-11-11", "...T20:00:00+08:00"). */
int
ctl_parse_time(const char *s, int64_t *out)
{
    char      *end;
    sf_value   v;

    if (*s == '\0') {
        return -1;
    }

    v.type = SF_STRING;
    v.u.str.p = s;
    v.u.str.len = strlen(s);

    if ((*s >= '0' && *s <= '9') || *s == '-') {
        errno = 0;
        v.u.number = strtod(s, &end);
        if (errno == 0 && *end == '\0') {
            v.type = SF_NUMBER;
        } else {
            v.u.str.p = s;
            v.u.str.len = strlen(s);
        }
    }

    return sf_parse_time(&v, out) == SF_OK ? 0 : -1;
}


/* "now" for decisions: --now, or the clock. */
int64_t
ctl_now(const ctl_global *g)
{
    return g->now_set ? g->now : (int64_t) time(NULL);
}


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


/*
 * Parses argv[0..argc) of one command: options of opts or global options
 * (handled into g), positionals collected into pos (room for argc).
 * Returns CTL_OK, CTL_USAGE (message printed) or -1 for --help.
 */
int
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
        case OPT_NOW:
            if (ctl_parse_time(value, &g->now) != 0) {
                return ctl_usage_err("%s%sinvalid --now \"%s\" (use unix "
                                     "seconds or ISO 8601, e.g. "
                                     "2026-11-11T20:00:00Z)", cmd, sep,
                                     value);
            }
            g->now_set = 1;
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


int
ctl_need_db(const char *cmd, const ctl_global *g)
{
    if (g->db_path == NULL || *g->db_path == '\0') {
        return ctl_usage_err("%s: no database: give --db DIR or set "
                             "STOREFRONT_DB", cmd);
    }
    return CTL_OK;
}


int
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
int
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


void
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


/* --json alone: the options of list, profile, rules and info. */
int
ctl_json_option(void *ctx, int id, const char *value)
{
    (void) value;
    if (id == OPT_JSON) {
        *(int *) ctx = 1;
    }
    return CTL_OK;
}


const ctl_option ctl_json_options[] = {
    { "json", 0, OPT_JSON },
    { NULL, 0, 0 }
};
