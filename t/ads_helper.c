/*
 * A stand-in for storefrontctl's ads commands, for t/ads.t while they are
 * not hooked into storefrontctl: the same code (engine/ctl_ads.c).
 *
 *   ctl-ads --db DIR import FILE     campaigns and ad_pages of FILE
 *   ctl-ads --db DIR export          {"campaigns":...,"ad_pages":...}
 *   ctl-ads --db DIR ads VERB ...    as "storefrontctl ads VERB ..."
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storefront.h"
#include "ctl_ads.h"


typedef struct {
    ctl_ads_doc  *doc;
    const char   *file;
    int           failed;
} import_ctx;


static int
element(void *ctx, const char *member, long index, const sf_value *el,
    unsigned long line, sf_error *err)
{
    import_ctx  *x = ctx;
    char         msg[sizeof(err->msg)];

    if (strcmp(member, "campaigns") != 0 && strcmp(member, "ad_pages") != 0) {
        return 0;
    }
    if (ctl_ads_collect(x->doc, member, index, el, err) != SF_OK) {
        snprintf(msg, sizeof(msg), "%.200s:%lu: %.280s", x->file, line,
                 err->msg);
        snprintf(err->msg, sizeof(err->msg), "%s", msg);
        x->failed = 1;
        return SF_ERR_INVALID;
    }
    return 0;
}


static int
import(const char *path, const char *file)
{
    FILE        *f;
    sf_db       *db;
    sf_txn      *txn;
    sf_error     err;
    import_ctx   x;

    memset(&err, 0, sizeof(err));
    f = fopen(file, "rb");
    if (f == NULL) {
        fprintf(stderr, "storefrontctl: %s: cannot open\n", file);
        return 1;
    }

    x.doc = ctl_ads_doc_create();
    x.file = file;
    x.failed = 0;

    if (sf_json_stream_file(f, file, element, NULL, &x, &err) != SF_OK) {
        fclose(f);
        fprintf(stderr, "storefrontctl: %s\n", err.msg);
        return 1;
    }
    fclose(f);

    if (sf_db_open(&db, path, 0, SF_DB_CREATE, &err) != SF_OK) {
        fprintf(stderr, "storefrontctl: %s\n", err.msg);
        return 1;
    }
    if (sf_txn_begin(db, &txn, &err) != SF_OK
        || ctl_ads_import(txn, ctl_ads_collected(x.doc), &err) != SF_OK
        || sf_txn_commit(txn, &err) != SF_OK)
    {
        fprintf(stderr, "storefrontctl: %s: %s\n", file, err.msg);
        sf_db_close(db);
        return 1;
    }
    sf_db_close(db);
    ctl_ads_doc_free(x.doc);
    printf("imported the ads of %s\n", file);
    return 0;
}


static int
export(const char *path)
{
    int           found;
    sf_db        *db;
    sf_buf        b;
    sf_error      err;
    sf_snapshot  *s;

    memset(&err, 0, sizeof(err));
    sf_buf_init(&b);
    if (sf_db_open(&db, path, 0, SF_DB_READONLY, &err) != SF_OK
        || sf_snapshot_create(db, &s, &err) != SF_OK
        || sf_snapshot_renew(s, &err) != SF_OK
        || ctl_ads_export(s, &b, &found, &err) != SF_OK)
    {
        fprintf(stderr, "storefrontctl: %s\n", err.msg);
        return 1;
    }
    printf("{%.*s}\n", (int) b.len, b.data ? b.data : "");
    sf_snapshot_reset(s);
    sf_snapshot_free(s);
    sf_db_close(db);
    sf_buf_free(&b);
    return 0;
}


int
main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--db") == 0) {
        if (argc == 5 && strcmp(argv[3], "import") == 0) {
            return import(argv[2], argv[4]);
        }
        if (argc == 4 && strcmp(argv[3], "export") == 0) {
            return export(argv[2]);
        }
        if (argc >= 5 && strcmp(argv[3], "ads") == 0) {
            return ctl_ads_command(argv[2], argc - 4, argv + 4);
        }
    }
    fprintf(stderr, "usage: ctl-ads --db DIR import FILE | export | "
            "ads VERB ...\n");
    return 2;
}
