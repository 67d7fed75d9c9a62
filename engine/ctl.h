/*
 * storefrontctl: what its files share (storefrontctl.c, ctl_*.c): exit
 * statuses, diagnostics, the command-line parser, opening the database,
 * text output, what more than one command uses, and the commands of the
 * table in storefrontctl.c.  Command-line code on the engine's public
 * API; not part of the engine.
 */

#ifndef CTL_H
#define CTL_H

#include <sys/stat.h>

#include "storefront.h"


#define CTL_OK     0
#define CTL_ERROR  1
#define CTL_USAGE  2

#define CTL_NAME   "storefrontctl"

/* exit status of an import that skipped bad records (--skip-bad) */
#define CTL_SKIPPED  3


/* The global options, given before or after the command. */
typedef struct {
    const char  *db_path;
    size_t       map_size;
    int64_t      now;          /* --now, when now_set */
    int          now_set;
} ctl_global;


/* ---- diagnostics and output (ctl_args.c) ---- */

/* "storefrontctl: ..." and a newline on stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The same, a pointer to --help, and CTL_USAGE to return. */
int ctl_usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int ctl_nomem(void);
int ctl_write(FILE *f, const sf_buf *b);
int ctl_finish_stdout(int rc);


/* ---- command line parsing (ctl_args.c) ---- */

typedef struct {
    const char  *name;       /* without the leading "--" */
    int          has_arg;
    int          id;
} ctl_option;

enum {
    OPT_DB = 1, OPT_MAP_SIZE, OPT_HELP, OPT_VERSION, OPT_NOW,
    OPT_REPLACE, OPT_JSON, OPT_USER, OPT_ATTR, OPT_URL, OPT_QA,
    OPT_FORMAT, OPT_SKIP_BAD, OPT_RESUME, OPT_BATCH, OPT_LIMIT, OPT_TMPDIR,
    OPT_PROFILES, OPT_JSONL, OPT_FILE, OPT_ORDER, OPT_ID, OPT_AMOUNT,
    OPT_CATEGORY, OPT_TIME, OPT_RECENCY, OPT_FREQUENCY, OPT_MONETARY,
    OPT_JOBS
};

typedef int (*ctl_option_handler)(void *ctx, int id, const char *value);

int ctl_parse_time(const char *s, int64_t *out);
/* Sets the string attribute NAME=VALUE in a growing array (explain's
 * --attr); a repeated name replaces the earlier value. */
int ctl_attr_set(sf_member **attrs, size_t *n, size_t *cap, const char *name,
    size_t name_len, const char *value);
int64_t ctl_now(const ctl_global *g);
int ctl_parse_args(const char *cmd, int argc, char **argv, ctl_global *g,
    const ctl_option *opts, ctl_option_handler handler, void *ctx,
    char **pos, int *npos);

int ctl_need_db(const char *cmd, const ctl_global *g);
int ctl_open_db(const ctl_global *g, unsigned flags, sf_db **db);
int ctl_open_snapshot(const ctl_global *g, sf_db **db, sf_snapshot **snap);
void ctl_close_snapshot(sf_db *db, sf_snapshot *snap);

/* --json alone (ctx: an int set to 1) */
extern const ctl_option ctl_json_options[];
int ctl_json_option(void *ctx, int id, const char *value);


/* ---- text tables (ctl_table.c) ---- */

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

int ctl_table_row(ctl_table *t, const char *const *cells);
void ctl_table_print(const ctl_table *t, FILE *f);
void ctl_table_free(ctl_table *t);

const char *ctl_number(double x, char *buf, size_t size);
const char *ctl_human_size(uint64_t n, char *buf, size_t size);
const char *ctl_time_text(int64_t t, char *buf, size_t size);
void ctl_plural(char *buf, size_t size, uint64_t n, const char *what);


/* ---- import files (ctl_import.c), also read by event --file ---- */

#define CTL_BAD_SHOWN        20        /* bad records printed in full */
#define CTL_BAD_STOP         10        /* without --skip-bad: stop after */

enum {
    CTL_FMT_AUTO = 0,
    CTL_FMT_DOCUMENT,
    CTL_FMT_JSONL,
    CTL_FMT_ARRAY
};

/*
 * Opens path ("-": standard input) at its beginning; a *format of
 * CTL_FMT_AUTO is told from the first bytes.
 */
int ctl_import_open(const char *path, int *format, FILE **fp,
    struct stat *st);


/* ---- profiles (ctl_profile.c), also shown by explain and event ---- */

/* The visitor's profile and what follows from it, at now. */
int ctl_lookup(const ctl_global *g, sf_snapshot *snap, const char *id,
    int64_t now, sf_profile *p, sf_derived *d, const sf_rules **rules);

/* The profile object of explain --json, profile show --json and event. */
int ctl_derived_json(sf_buf *o, const sf_profile *p, const sf_derived *d);

/* The lines of explain and profile show about who the visitor is. */
void ctl_derived_text(FILE *f, const char *indent, const sf_profile *p,
    const sf_derived *d);

/* An sf_value_decode allocator over an sf_arena (ctx). */
void *ctl_arena_alloc(void *ctx, size_t n);


/* ---- the commands of storefrontctl.c's table ---- */

/*
 * argv holds the arguments after the command's name, pos has room for
 * them.  Returns the exit status, or -1 for --help.
 */
int ctl_cmd_import(ctl_global *g, int argc, char **argv, char **pos);
int ctl_cmd_export(ctl_global *g, int argc, char **argv, char **pos);
int ctl_cmd_list(ctl_global *g, int argc, char **argv, char **pos);
int ctl_cmd_profile(ctl_global *g, int argc, char **argv, char **pos);
int ctl_cmd_rules(ctl_global *g, int argc, char **argv, char **pos);
int ctl_cmd_rfm(ctl_global *g, int argc, char **argv, char **pos);
int ctl_cmd_event(ctl_global *g, int argc, char **argv, char **pos);
int ctl_cmd_explain(ctl_global *g, int argc, char **argv, char **pos);
int ctl_cmd_info(ctl_global *g, int argc, char **argv, char **pos);

#endif /* CTL_H */
