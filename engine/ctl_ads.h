/*
 * storefrontctl: ad campaigns (import, export, report, explain).
 *
 * The campaigns and the page limits are one set: an import document with
 * "campaigns" or "ad_pages" replaces the ads data as a whole (what is not
 * in the document is gone), as one compiled record; export writes it
 * back.  Impression and click counters and users' cap state are kept.
 */

#ifndef CTL_ADS_H
#define CTL_ADS_H

#include "storefront.h"


/*
 *   ads report [--json]
 *       impressions, clicks and CTR per campaign, creative and advertiser
 *   ads explain --user ID --page TYPE [--slots A,B] [--max-slots N]
 *       [--attr NAME=VALUE]... [--now TIME] [--seed N] [--json]
 *       the ads one page view would get now and how many campaigns each
 *       reason skipped (nothing is recorded)
 *
 * argv[0] is the verb ("report" or "explain"); "--ads" is accepted and
 * ignored, so that "explain --ads ..." can be handed over as it is.
 * Returns the exit status: 0, 1 (data or database error), 2 (usage).
 * Diagnostics go to stderr, prefixed "storefrontctl: ".
 */
int ctl_ads_command(const char *db, int argc, char **argv);

/* 1 when argv (from "explain") holds "--ads": an ads explanation. */
int ctl_ads_is_explain(int argc, char **argv);

/*
 * Compiles doc's "campaigns" and "ad_pages" and stores them in txn.
 * Nothing is written when neither member is present.  SF_ERR_INVALID
 * with a message "ads: ..." naming the campaign and the problem.
 */
int ctl_ads_import(sf_txn *txn, const sf_value *doc, sf_error *err);

/*
 * For a streaming import: collects the elements of "campaigns" (each with
 * index >= 0) and the "ad_pages" object (index -1) into a document for
 * ctl_ads_import.  Each campaign is checked as it comes, so a problem is
 * reported with the element's line (the caller prefixes FILE:LINE).
 * ctl_ads_collected() is NULL when the file had neither member.
 */
typedef struct ctl_ads_doc  ctl_ads_doc;

ctl_ads_doc *ctl_ads_doc_create(void);
int ctl_ads_collect(ctl_ads_doc *d, const char *member, long index,
    const sf_value *element, sf_error *err);
const sf_value *ctl_ads_collected(ctl_ads_doc *d);
void ctl_ads_doc_free(ctl_ads_doc *d);

/*
 * Appends the members "campaigns":[...],"ad_pages":{...} of the stored
 * ads (no braces, so that they go into an export document); *found is 0
 * and nothing is appended when there are none.
 */
int ctl_ads_export(sf_snapshot *s, sf_buf *out, int *found, sf_error *err);

#endif /* CTL_ADS_H */
