/*
 * storefrontctl: the push commands (ctl_push.c).
 *
 *   push counters [--json]
 *   push log [--json|--jsonl] [--user U] [--category C] [--reason R]
 *   push policy [--policy FILE]
 *   push verify [--policy FILE] [--json]
 *   explain --push --user U --category C [--channel X] [--campaign ID]
 *       [--at TIME] [--policy FILE] [--json]
 */

#ifndef CTL_PUSH_H
#define CTL_PUSH_H

#include "storefront.h"

/*
 * Runs one command: argv[0] is "counters", "log", "policy", "verify" or
 * "explain" (then "--push" among the options is accepted and ignored).
 * db_path is the database given globally (may be NULL); "--db DIR" among
 * the options overrides it.  Returns the exit status: 0 success, 1 data
 * or database error (or, for verify, a violation found), 2 usage error.
 */
int ctl_push_command(const char *db_path, int argc, char **argv);

/* 1 when "--push" is among argv (explain is then a push explanation). */
int ctl_push_is_explain(int argc, char **argv);

/* Usage lines for the help text, after "  " like the other commands. */
extern const char ctl_push_usage[];

/*
 * The "push" member of an import file: applied over the policy stored in
 * the database (or the engine's defaults when none is) and stored, in
 * the import's write transaction.
 */
int ctl_push_import_policy(sf_txn *txn, const sf_value *v, sf_error *err);

/* Checks a "push" member without a database (import's validation pass). */
int ctl_push_check_policy(const sf_value *v, sf_error *err);

#endif /* CTL_PUSH_H */
