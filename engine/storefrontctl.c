/*
 * storefrontctl: load, inspect and explain the storefront LMDB data.
 *
 *   storefrontctl [--db DIR] [--map-size SIZE] [--now TIME] COMMAND [ARGS]
 *
 * Exit status: 0 success, 1 data or database error, 2 usage error, 3 an
 * import that skipped bad records (--skip-bad).
 * Every diagnostic goes to stderr and starts with "storefrontctl: ".
 *
 * This file holds main and the command table; each command is in a file
 * of its own (ctl_*.c), and what they share is declared in ctl.h.
 */

#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ctl_pages.h"
#include "ctl_ads.h"
#include "ctl_push.h"
#include "ctl_stats.h"


#ifndef SF_VERSION
#define SF_VERSION  "0.1.0"
#endif


/* ---- main --------------------------------------------------------------- */

typedef int (*ctl_command_fn)(ctl_global *g, int argc, char **argv,
    char **pos);

typedef struct {
    const char       *name;
    ctl_command_fn    run;
    const char       *usage;
} ctl_command;

/* commands of other files (ctl_*.c), which parse their own options */

static int
ctl_cmd_push(ctl_global *g, int argc, char **argv, char **pos)
{
    (void) pos;
    return ctl_push_command(g->db_path, argc, argv);
}


static int
ctl_cmd_ads(ctl_global *g, int argc, char **argv, char **pos)
{
    (void) pos;
    return ctl_ads_command(g->db_path, argc, argv);
}


static int
ctl_cmd_stats(ctl_global *g, int argc, char **argv, char **pos)
{
    (void) pos;
    return ctl_stats_command(g->db_path, argc, argv);
}


static int
ctl_cmd_experiment(ctl_global *g, int argc, char **argv, char **pos)
{
    (void) pos;
    return ctl_experiment_command(g->db_path, argc, argv);
}


static const ctl_command ctl_commands[] = {
    { "import", ctl_cmd_import,
      "import FILE [--format document|jsonl|array] [--replace] [--skip-bad]\n"
      "        [--batch N] [--resume] [--limit N] [--jobs N] [--tmpdir DIR]\n"
      "      Load FILE (- for standard input).  FILE is a document\n"
      "      {\"experiments\": [GrowthBook experiment, ...],\n"
      "      \"rules\": {...}, \"profiles\": [profile, ...]} (any of the\n"
      "      members), or profiles alone as JSON lines (one object per\n"
      "      line, blank lines allowed) or as a JSON array.  The format is\n"
      "      told from the first bytes ('[': array; '{' whose first member\n"
      "      is a profile's: JSON lines; else a document); --format forces\n"
      "      it.\n"
      "      Experiments and rules are all or nothing, in one transaction.\n"
      "      Without --replace experiments not in FILE are kept; with\n"
      "      --replace they are removed.  Rules are applied over the rules\n"
      "      in force (members absent stay).\n"
      "      Profiles: the whole file is read and checked first (JSON lines\n"
      "      by --jobs threads, default one per CPU up to 8); a bad record\n"
      "      rejects the file (FILE:LINE: problem; reading stops after 10)\n"
      "      and nothing is written.  --skip-bad reports bad records (the\n"
      "      first 20, then a count), loads the others and exits with\n"
      "      status 3.  Then profiles are written in id order, --batch per\n"
      "      transaction (default 50000), each batch with a checkpoint (the\n"
      "      file's path, size and mtime, and the profiles committed).\n"
      "      After an interruption or a failure the message says how many\n"
      "      were committed: the same command with --resume continues after\n"
      "      the last committed batch (a profile is replaced, never added\n"
      "      to, so running again from the start is also safe).  --limit N\n"
      "      writes at most N profiles in this run.  A full map is grown\n"
      "      (doubled) and the batch retried.  A later record with the same\n"
      "      id wins.  The checked profiles are held in memory (about the\n"
      "      size of FILE); --tmpdir DIR holds them in a file in DIR.  On a\n"
      "      terminal, stderr shows progress: percent, profiles/s, ETA.\n" },
    { "export", ctl_cmd_export,
      "export [--profiles | --jsonl] [FILE]\n"
      "      Write the import document to FILE (default standard output):\n"
      "      experiments and rules, and with --profiles every profile (one\n"
      "      per line) and the applied events (\"orders\": a repeated\n"
      "      event still changes nothing after an import elsewhere);\n"
      "      --jsonl writes only the profiles, as JSON lines.  Importing it\n"
      "      gives the same state.\n" },
    { "list", ctl_cmd_list,
      "list [--json]\n"
      "      One line per experiment: key, status, variations, weights,\n"
      "      coverage, namespace, hash attribute.\n" },
    { "explain", ctl_cmd_explain,
      "explain [--user ID] [--attr NAME=VALUE]... [--url URL] [--qa] "
      "[--json]\n"
      "      Evaluate every experiment for one visitor and say why: the\n"
      "      visitor's profile (or defaults), RFM scores, segment,\n"
      "      lifecycle and tier, and for each experiment whether its\n"
      "      targeting condition holds.  Conditions see the computed values\n"
      "      (segment, rfm, rfm_r/f/m, lifecycle, tier, points, orders,\n"
      "      spend_365, categories, ...), the --attr attributes and the\n"
      "      profile's attributes.  --user sets the attribute \"id\"; --attr\n"
      "      sets string attributes (a repeated NAME: the last wins); --url\n"
      "      is the request URL, and the attribute \"url\" unless --attr\n"
      "      sets it; --qa honours ?KEY=INDEX forcing in it.\n"
      "  explain --page TYPE [--user ID] [--attr N=V]... [--url URL]\n"
      "        [--now T] [--json]\n"
      "      The page layout the visitor would get, and which rule or\n"
      "      experiment chose it.\n"
      "  explain --push --user U --category C [--channel X] [--at T]\n"
      "  explain --ads --user U --page P [--now T]\n"
      "      A push decision or the ads of a page view, without recording\n"
      "      them (see push and ads).\n" },
    { "profile", ctl_cmd_profile,
      "profile show ID [--json]\n"
      "      The stored profile and what follows from it now: RFM scores\n"
      "      and code, segment, lifecycle, tier and its benefits,\n"
      "      trailing-365-day spend, points.\n" },
    { "event", ctl_cmd_event,
      "event purchase --user U --order ID --amount X [--category C]...\n"
      "        [--time T] [--json]\n"
      "  event return --user U --order ID [--amount X] [--time T] [--json]\n"
      "  event points --user U --id ID --amount N [--time T] [--json]\n"
      "  event --file FILE [--batch N] [--skip-bad]\n"
      "      Apply purchases, returns (of an applied purchase; without\n"
      "      --amount the whole order) and points adjustments (negative:\n"
      "      a redemption).  The order or adjustment id makes an event\n"
      "      idempotent: a repeat is reported as a duplicate and changes\n"
      "      nothing.  --file reads events as JSON lines or a JSON array\n"
      "      ({\"type\": \"purchase\", \"user\": ..., \"order_id\": ...,\n"
      "      \"amount\": ..., \"categories\": [...], \"time\": ...}), checks\n"
      "      them all first, then applies them in transactions of --batch\n"
      "      (default 1000), each all or nothing.\n" },
    { "rfm", ctl_cmd_rfm,
      "rfm rebuild | rfm show | rfm set [--recency D1,D2,D3,D4]\n"
      "        [--frequency F1,F2,F3,F4] [--monetary M1,M2,M3,M4]  [--json]\n"
      "      rebuild computes the quintile cut-points over every profile\n"
      "      with orders and stores them; show prints the cut-points in\n"
      "      force and whether they were computed or preset; set stores\n"
      "      explicit ones (4 ascending numbers each).\n" },
    { "rules", ctl_cmd_rules,
      "rules show [--json]\n"
      "      The rules in force: RFM cut-points, segment table, lifecycle\n"
      "      days, tiers and benefits, points.  --json prints them as the\n"
      "      \"rules\" member of an import document.\n" },
    { "info", ctl_cmd_info,
      "info [--json]\n"
      "      Map size, bytes used, readers, number of experiments and\n"
      "      profiles.\n" },
    { "push", ctl_cmd_push,
      "push counters|log|policy|verify ...\n"
      "      Push decisions: counters by reason, the decision log, the\n"
      "      policy in force, and a replay of the log against the caps.\n" },
    { "ads", ctl_cmd_ads,
      "ads report [--json] | ads explain --user ID --page TYPE ...\n"
      "      Impressions, clicks and CTR per campaign, creative and\n"
      "      advertiser; the ads one page view would get now, and why.\n" },
    { "stats", ctl_cmd_stats,
      "stats [KEY] [--json]\n"
      "      Experiment results: users, conversions, rates, lift, p-value,\n"
      "      confidence interval, sample ratio mismatch.\n" },
    { "experiment", ctl_cmd_experiment,
      "experiment start|stop KEY | ramp KEY COVERAGE | weights KEY W1,W2..\n"
      "      Operate a running experiment (new weights re-randomise).\n" },
    { NULL, NULL, NULL }
};


static void
ctl_help(FILE *f)
{
    const ctl_command  *c;

    fputs("Usage: " CTL_NAME " [--db DIR] [--map-size SIZE] [--now TIME] "
          "COMMAND [ARGS]\n"
          "\n"
          "Manage the storefront LMDB database.\n"
          "\n"
          "Options:\n"
          "  --db DIR         the database directory (default: "
          "$STOREFRONT_DB)\n"
          "  --map-size SIZE  LMDB map size, e.g. 1G or 512M (default: the\n"
          "                   database's current size, or 1G)\n"
          "  --now TIME       evaluate at TIME (unix seconds or ISO 8601):\n"
          "                   recency, lifecycle and spend age with it; the\n"
          "                   default time of events\n"
          "  --help           show this help\n"
          "  --version        show the version\n"
          "\n"
          "Commands:\n", f);

    for (c = ctl_commands; c->name != NULL; c++) {
        fprintf(f, "  %s", c->usage);
    }

    fputs("\nExit status: 0 success, 1 data or database error, "
          "2 usage error,\n3 an import or event file that skipped bad "
          "records (--skip-bad).\n", f);
}


/* Before the command only global options are parsed: nothing to handle. */
static int
ctl_no_handler(void *ctx, int id, const char *value)
{
    (void) ctx;
    (void) id;
    (void) value;
    return CTL_OK;
}


int
main(int argc, char **argv)
{
    int                 i, rc;
    char              **pos;
    ctl_global          g;
    const ctl_command  *c;

    memset(&g, 0, sizeof(g));
    g.db_path = getenv("STOREFRONT_DB");

    /* global options before the command */
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char  *a = argv[i];
        size_t       len;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            ctl_help(stdout);
            return ctl_finish_stdout(CTL_OK);
        }
        if (strcmp(a, "--version") == 0) {
            printf(CTL_NAME " " SF_VERSION "\n");
            return ctl_finish_stdout(CTL_OK);
        }

        len = strncmp(a, "--", 2) == 0 ? strcspn(a + 2, "=") : 0;
        if (len != 0
            && ((len == 2 && strncmp(a + 2, "db", 2) == 0)
                || (len == 3 && strncmp(a + 2, "now", 3) == 0)
                || (len == 8 && strncmp(a + 2, "map-size", 8) == 0)))
        {
            /* the command parser handles exactly these */
            char  *one[2];
            int    n = (a[2 + len] == '=' || i + 1 >= argc) ? 1 : 2;
            int    np;

            one[0] = argv[i];
            one[1] = n == 2 ? argv[i + 1] : NULL;
            rc = ctl_parse_args("", n, one, &g, NULL, ctl_no_handler,
                                NULL, one, &np);
            if (rc != CTL_OK) {
                return rc == -1 ? CTL_USAGE : rc;
            }
            i += n - 1;
            continue;
        }

        return ctl_usage_err("unknown option '%s'", a);
    }

    if (i >= argc) {
        return ctl_usage_err("missing COMMAND (import, export, list, "
                             "explain, profile, event, rfm, rules, info)");
    }

    if (strcmp(argv[i], "help") == 0) {
        ctl_help(stdout);
        return ctl_finish_stdout(CTL_OK);
    }

    /* explain --ads: the ads one page view would get */
    if (strcmp(argv[i], "explain") == 0
        && ctl_ads_is_explain(argc - i, argv + i))
    {
        return ctl_ads_command(g.db_path, argc - i, argv + i);
    }

    /* explain --page is the page layout decision's explanation */
    if (strcmp(argv[i], "explain") == 0
        && ctl_pages_is_explain(argc - i, argv + i))
    {
        return ctl_pages_command(g.db_path, argc - i, argv + i);
    }

    /* explain --push is the push decision's explanation */
    if (strcmp(argv[i], "explain") == 0
        && ctl_push_is_explain(argc - i, argv + i))
    {
        return ctl_push_command(g.db_path, argc - i, argv + i);
    }

    for (c = ctl_commands; c->name != NULL; c++) {
        if (strcmp(c->name, argv[i]) == 0) {
            break;
        }
    }
    if (c->name == NULL) {
        return ctl_usage_err("unknown command \"%s\"", argv[i]);
    }

    pos = calloc((size_t) argc + 1, sizeof(char *));
    if (pos == NULL) {
        return ctl_nomem();
    }

    rc = c->run(&g, argc - i - 1, argv + i + 1, pos);
    if (rc == -1) {
        printf("Usage: " CTL_NAME " [--db DIR] [--map-size SIZE] "
               "[--now TIME] %s", c->usage);
        rc = ctl_finish_stdout(CTL_OK);
    }

    free(pos);
    return rc;
}

