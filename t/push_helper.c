/*
 * A small tool for the push tests, built by t/push*.t from the engine
 * library and engine/ctl_push.c:
 *
 *   push_helper --db DIR import FILE     {"profiles": [...], "push": {...}}
 *                                        in one write transaction
 *   push_helper --db DIR push ARGS...    as "storefrontctl push ARGS..."
 *   push_helper --db DIR explain ARGS... as "storefrontctl explain ..."
 *
 * It stands in for storefrontctl until that links engine/ctl_push.c and
 * imports profiles; the tests use storefrontctl when it can.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storefront.h"
#include "ctl_push.h"


static int
helper_import(const char *db_path, const char *file)
{
    int              rc;
    long             size;
    FILE            *f;
    char            *text;
    size_t           i, n, id_len;
    sf_db           *db;
    sf_buf           rec;
    sf_txn          *txn;
    sf_arena        *a;
    sf_error         err;
    sf_value         doc;
    const char      *id;
    const sf_value  *profiles, *push;

    f = fopen(file, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        fprintf(stderr, "push_helper: %s: cannot read\n", file);
        return 1;
    }
    text = malloc((size_t) size + 1);
    if (text == NULL || fread(text, 1, (size_t) size, f) != (size_t) size) {
        fprintf(stderr, "push_helper: %s: cannot read\n", file);
        return 1;
    }
    fclose(f);

    memset(&err, 0, sizeof(err));
    a = sf_arena_create(65536);
    if (sf_json_parse(text, (size_t) size, a, &doc, &err) != SF_OK) {
        fprintf(stderr, "push_helper: %s: %s\n", file, err.msg);
        return 1;
    }

    if (sf_db_open(&db, db_path, 0, SF_DB_CREATE, &err) != SF_OK
        || sf_txn_begin(db, &txn, &err) != SF_OK)
    {
        fprintf(stderr, "push_helper: %s\n", err.msg);
        return 1;
    }

    rc = SF_OK;
    n = 0;
    sf_buf_init(&rec);

    profiles = sf_value_member(&doc, "profiles", 8);
    if (profiles && profiles->type == SF_ARRAY) {
        for (i = 0; rc == SF_OK && i < profiles->u.arr.n; i++) {
            rec.len = 0;
            rc = sf_profile_compile(&profiles->u.arr.items[i],
                                    (int64_t) time(NULL), &rec, &id, &id_len,
                                    &err);
            if (rc == SF_OK) {
                rc = sf_txn_put_profile(txn, id, id_len, rec.data, rec.len,
                                        &err);
                n++;
            }
        }
    }

    push = sf_value_member(&doc, "push", 4);
    if (rc == SF_OK && push) {
        rc = ctl_push_import_policy(txn, push, &err);
    }

    if (rc == SF_OK) {
        rc = sf_txn_commit(txn, &err);
    } else {
        sf_txn_abort(txn);
    }

    sf_buf_free(&rec);
    sf_db_close(db);
    sf_arena_destroy(a);
    free(text);

    if (rc != SF_OK) {
        fprintf(stderr, "push_helper: %s: %s\n", file, err.msg);
        return 1;
    }

    printf("imported %zu profiles%s\n", n, push ? " and the push policy" : "");
    return 0;
}


int
main(int argc, char **argv)
{
    const char  *db;

    if (argc < 4 || strcmp(argv[1], "--db") != 0) {
        fprintf(stderr, "usage: push_helper --db DIR import FILE | push ARGS "
                "| explain ARGS\n");
        return 2;
    }

    db = argv[2];

    if (strcmp(argv[3], "import") == 0 && argc == 5) {
        return helper_import(db, argv[4]);
    }
    if (strcmp(argv[3], "push") == 0) {
        return ctl_push_command(db, argc - 4, argv + 4);
    }
    if (strcmp(argv[3], "explain") == 0) {
        return ctl_push_command(db, argc - 3, argv + 3);
    }

    fprintf(stderr, "push_helper: unknown command \"%s\"\n", argv[3]);
    return 2;
}
