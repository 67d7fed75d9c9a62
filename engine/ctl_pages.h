/*
 * storefrontctl: page layouts (import, export, explain --page).
 * Command-line code on the engine's public API; not part of the engine.
 */

#ifndef CTL_PAGES_H
#define CTL_PAGES_H

#include "storefront.h"

/*
 * Compiles the "pages" member of an import document ({"modules",
 * "layouts", "pages", "cross_sell"}) and stores it in the transaction.
 * experiments_or_null is an array of GrowthBook experiment objects (or
 * NULL): each variation whose value names a "layout" must name one of the
 * layouts.  SF_ERR_INVALID with a message naming what is wrong, starting
 * with "pages: ".
 */
int ctl_pages_import(sf_txn *txn, const sf_value *pages,
    const sf_value *experiments_or_null, sf_error *err);

/*
 * The import's "pages" member, as a row of storefrontctl's ctl_extras:
 * ctl_pages_check compiles it (unknown modules, empty layouts, loops...);
 * ctl_pages_put imports it with ctl_pages_import, checked against the
 * import's experiments (ctl_pages_import_experiments) and the stored ones
 * (unless the import replaces them).
 */
int ctl_pages_check(const sf_value *v, sf_error *err);
int ctl_pages_put(sf_txn *txn, sf_db *db, const sf_value *v, sf_error *err);

/*
 * Called by the import before it writes its members, with its compiled
 * experiments recs[0..n) (kept, not copied, until the next call): they are
 * what ctl_pages_put checks; without "pages" in the import (with_pages 0)
 * they are checked now against the stored layouts.  Call again with recs
 * NULL when done.
 */
int ctl_pages_import_experiments(sf_db *db, const void *const *recs,
    const size_t *lens, size_t n, int replace, int with_pages,
    sf_error *err);

/*
 * The experiments to check: the compiled records recs[0..n), then the
 * stored ones of db (db may be NULL) under keys the records do not have,
 * as an array of experiment objects allocated in a.
 */
int ctl_pages_experiments(sf_db *db, const void *const *recs,
    const size_t *lens, size_t n, sf_arena *a, sf_value *out,
    sf_error *err);

/* Appends the stored page layouts as the JSON object they were imported
 * from; SF_ERR_NOT_FOUND (nothing appended) when there are none. */
int ctl_pages_export(sf_snapshot *s, sf_buf *out);

/*
 * storefrontctl explain --page TYPE [--user ID] [--attr NAME=VALUE]...
 *     [--url URL] [--qa] [--now TIME] [--json]
 * ctl_pages_is_explain tells whether the arguments of "explain" (argv[0]
 * the command) ask for it.  argv may start with the command name.
 * Returns the exit status.
 */
int ctl_pages_is_explain(int argc, char **argv);
int ctl_pages_command(const char *db, int argc, char **argv);

#endif /* CTL_PAGES_H */
