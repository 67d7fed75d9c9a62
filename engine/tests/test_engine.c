/*
 * Engine unit tests: JSON values and streaming with line numbers,
 * experiment validation and export round trips, LMDB snapshots and write
 * transactions, and the split of synthetic users.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storefront.h"
#include "tap.h"


static sf_arena  *arena;


static int
parse(const char *json, sf_value *v)
{
    sf_error  err;

    if (sf_json_parse(json, strlen(json), arena, v, &err) != SF_OK) {
        printf("# parse error: %s\n", err.msg);
        return 0;
    }
    return 1;
}


static int
compile(const char *json, sf_buf *rec, sf_error *err)
{
    sf_value  v;

    if (!parse(json, &v)) {
        return SF_ERR_INVALID;
    }
    return sf_experiment_compile(&v, rec, err);
}


static void
test_json(void)
{
    sf_buf    b;
    sf_value  v;
    sf_error  err;

    sf_buf_init(&b);

    tap_ok(parse("{\"a\":{\"b\":[1,\"x\",true,null]},\"c\":1.5}", &v)
           && sf_value_path(&v, "a.b", 3)->type == SF_ARRAY
           && sf_value_path(&v, "a.b", 3)->u.arr.n == 4
           && sf_value_member(&v, "c", 1)->u.number == 1.5
           && sf_value_path(&v, "a.x", 3) == NULL,
           "values: members and dotted paths");

    sf_json_write(&b, &v);
    tap_ok(strcmp(b.data, "{\"a\":{\"b\":[1,\"x\",true,null]},\"c\":1.5}") == 0,
           "values: written back as compact JSON");

    tap_ok(sf_json_parse("{\"a\":", 5, arena, &v, &err) == SF_ERR_INVALID,
           "truncated JSON is an error");

    b.len = 0;
    sf_buf_append_js_number(&b, 1e21);
    sf_buf_append(&b, " ", 1);
    sf_buf_append_js_number(&b, 0.1);
    sf_buf_append(&b, " ", 1);
    sf_buf_append_js_number(&b, 123);
    sf_buf_append(&b, " ", 1);
    sf_buf_append_js_number(&b, 1e-7);
    sf_buf_append(&b, " ", 1);
    sf_buf_append_js_number(&b, -2.5e-6);
    tap_ok(strcmp(b.data, "1e+21 0.1 123 1e-7 -0.0000025") == 0,
           "numbers written as JavaScript writes them (%s)", b.data);

    b.len = 0;
    sf_buf_append_json_string(&b, "a\"b\\\n\x01", 6);
    tap_ok(strcmp(b.data, "\"a\\\"b\\\\\\n\\u0001\"") == 0,
           "JSON strings escaped");

    sf_buf_free(&b);
}


typedef struct {
    int            count;
    unsigned long  lines[8];
    char           members[8][16];
    int            fail_at;
} stream_ctx;


static int
on_element(void *p, const char *member, long index, const sf_value *el,
    unsigned long line, sf_error *err)
{
    stream_ctx  *ctx = p;

    (void) index;
    (void) el;

    if (ctx->count == ctx->fail_at) {
        return sf_error_set(err, SF_ERR_INVALID, "rejected at line %lu",
                            line);
    }
    if (ctx->count < 8) {
        ctx->lines[ctx->count] = line;
        snprintf(ctx->members[ctx->count], 16, "%s", member);
    }
    ctx->count++;
    return 0;
}


static int
stream(const char *text, stream_ctx *ctx, sf_error *err)
{
    int    rc;
    FILE  *f;

    f = fmemopen((void *) text, strlen(text), "r");
    rc = sf_json_stream_file(f, "data.json", on_element, NULL, ctx, err);
    fclose(f);
    return rc;
}


static void
test_stream(void)
{
    int         rc;
    sf_error    err;
    stream_ctx  ctx;

    memset(&ctx, 0, sizeof(ctx));
    ctx.fail_at = -1;
    rc = stream("{\n \"experiments\": [\n  {\"key\": \"a\"},\n\n  {\"key\":\n"
                "\"b\"}\n ],\n \"version\": 1\n}\n", &ctx, &err);
    tap_ok(rc == SF_OK && ctx.count == 3 && ctx.lines[0] == 3
           && ctx.lines[1] == 5 && strcmp(ctx.members[2], "version") == 0,
           "stream: elements with the line they start on");

    memset(&ctx, 0, sizeof(ctx));
    ctx.fail_at = -1;
    rc = stream("{\"experiments\": [\n {\"key\": \"a\"},\n {\"key\" \"b\"}\n]}",
                &ctx, &err);
    tap_ok(rc == SF_ERR_INVALID && strncmp(err.msg, "data.json:3:", 12) == 0,
           "stream: syntax error names file, line and column (%s)", err.msg);

    memset(&ctx, 0, sizeof(ctx));
    ctx.fail_at = 1;
    rc = stream("{\"experiments\": [\n {\"key\": \"a\"},\n {\"key\": \"b\"}\n]}",
                &ctx, &err);
    tap_ok(rc == SF_ERR_INVALID && strcmp(err.msg, "rejected at line 3") == 0,
           "stream: a callback's error stops the stream (%s)", err.msg);

    memset(&ctx, 0, sizeof(ctx));
    ctx.fail_at = -1;
    rc = stream("[1, 2]", &ctx, &err);
    tap_ok(rc == SF_ERR_INVALID, "stream: the document must be an object");

    rc = stream("{\"experiments\": [", &ctx, &err);
    tap_ok(rc == SF_ERR_INVALID, "stream: truncated file is an error (%s)",
           err.msg);
}


static void
test_compile(void)
{
    sf_buf       rec, out;
    sf_error     err;
    size_t       i;
    const char  *good =
        "{\"key\":\"hero\",\"name\":\"Hero\",\"variations\":[{\"b\":\"x\"},"
        "{\"b\":\"y\"}],\"meta\":[{\"key\":\"control\"},{\"key\":\"spring\","
        "\"name\":\"Spring\"}],\"weights\":[0.5,0.5],\"coverage\":0.5,"
        "\"namespace\":[\"ns\",0,0.5],\"hashAttribute\":\"id\","
        "\"fallbackAttribute\":\"anonymous_id\",\"hashVersion\":2,"
        "\"seed\":\"s\",\"active\":true,\"owner\":\"growth\"}";
    static const struct {
        const char  *json;
        const char  *msg;
    } bad[] = {
        { "{\"variations\":[0,1]}", "missing string \"key\"" },
        { "{\"key\":\"a b\",\"variations\":[0,1]}", "\"key\" must be" },
        { "{\"key\":\"k\"}", "\"variations\" must be a non-empty array" },
        { "{\"key\":\"k\",\"variations\":[0,1],\"weights\":[0.5]}",
          "\"weights\" must have one number per variation" },
        { "{\"key\":\"k\",\"variations\":[0,1],\"weights\":[0.5,\"x\"]}",
          "\"weights\" must be non-negative numbers" },
        { "{\"key\":\"k\",\"variations\":[0,1],\"weights\":[0.2,0.2]}",
          "\"weights\" must add up to 1" },
        { "{\"key\":\"k\",\"variations\":[0,1],\"coverage\":1.5}",
          "\"coverage\" must be a number from 0 to 1" },
        { "{\"key\":\"k\",\"variations\":[0,1],\"hashVersion\":3}",
          "\"hashVersion\" must be 1 or 2" },
        { "{\"key\":\"k\",\"variations\":[0,1],\"namespace\":[\"n\",0.5,0.1]}",
          "\"namespace\" must be" },
        { "{\"key\":\"k\",\"variations\":[0,1],\"active\":\"yes\"}",
          "\"active\" must be true or false" },
        { "{\"key\":\"k\",\"variations\":[0,1],\"meta\":[{\"key\":\"a;b\"}]}",
          "\"meta[].key\" must be" },
    };

    sf_buf_init(&rec);
    sf_buf_init(&out);

    tap_ok(compile(good, &rec, &err) == SF_OK, "a full experiment compiles");
    sf_experiment_to_json(rec.data, rec.len, &out);
    tap_ok(strcmp(out.data,
                  "{\"key\":\"hero\",\"name\":\"Hero\",\"variations\":"
                  "[{\"b\":\"x\"},{\"b\":\"y\"}],\"meta\":[{\"key\":\"control\"},"
                  "{\"key\":\"spring\",\"name\":\"Spring\"}],\"weights\":"
                  "[0.5,0.5],\"coverage\":0.5,\"namespace\":[\"ns\",0,0.5],"
                  "\"hashAttribute\":\"id\",\"fallbackAttribute\":"
                  "\"anonymous_id\",\"hashVersion\":2,\"seed\":\"s\","
                  "\"active\":true,\"owner\":\"growth\"}") == 0,
           "exported as a GrowthBook object, unknown members kept (%s)",
           out.data);

    /* export -> compile gives the same record */
    {
        sf_buf  again;

        sf_buf_init(&again);
        tap_ok(compile(out.data, &again, &err) == SF_OK
               && again.len == rec.len
               && memcmp(again.data, rec.data, rec.len) == 0,
               "export compiles back to the same record");
        sf_buf_free(&again);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tap_ok(compile(bad[i].json, &rec, &err) == SF_ERR_INVALID
               && strstr(err.msg, bad[i].msg) != NULL,
               "rejected: %s (%s)", bad[i].json, err.msg);
    }

    sf_buf_free(&rec);
    sf_buf_free(&out);
}


static int
put(sf_db *db, const char *json)
{
    int       rc;
    sf_buf    rec;
    sf_txn   *txn;
    sf_error  err;

    sf_buf_init(&rec);
    rc = compile(json, &rec, &err);
    if (rc == SF_OK) {
        rc = sf_txn_begin(db, &txn, &err);
    }
    if (rc == SF_OK) {
        rc = sf_txn_put_experiment(txn, rec.data, rec.len, &err);
        if (rc == SF_OK) {
            rc = sf_txn_commit(txn, &err);
        } else {
            sf_txn_abort(txn);
        }
    }
    if (rc != SF_OK) {
        printf("# put: %s\n", err.msg);
    }
    sf_buf_free(&rec);
    return rc;
}


static void
user_request(sf_request *req, sf_value *attrs, sf_member *m, const char *id)
{
    memset(req, 0, sizeof(*req));
    m->name = "id";
    m->name_len = 2;
    m->value.type = SF_STRING;
    m->value.u.str.p = id;
    m->value.u.str.len = strlen(id);
    attrs->type = SF_OBJECT;
    attrs->u.obj.members = m;
    attrs->u.obj.n = 1;
    req->attributes = attrs;
}


static void
test_db(void)
{
    int            moved, counts[3], i, in;
    char           dir[] = "/tmp/sf-test-XXXXXX", id[32], cmd[64];
    size_t         n;
    sf_db         *db, *reader;
    sf_txn        *txn;
    sf_error       err;
    sf_value       attrs;
    sf_member      m;
    sf_request     req;
    sf_snapshot   *snap;
    sf_db_info     info;
    sf_assignment  out[4], first[2000];
    double         chi2, expected;

    if (mkdtemp(dir) == NULL) {
        tap_ok(0, "mkdtemp");
        return;
    }

    tap_ok(sf_db_open(&db, dir, 0, 0, &err) == SF_OK, "open a new database");

    tap_ok(sf_db_open(&reader, "/nonexistent/sf", 0, 0, &err)
           == SF_ERR_NOT_FOUND, "a missing directory is reported (%s)",
           err.msg);

    tap_ok(sf_snapshot_create(db, &snap, &err) == SF_OK, "snapshot created");

    sf_snapshot_renew(snap, &err);
    user_request(&req, &attrs, &m, "1");
    tap_ok(sf_evaluate_all(snap, &req, out, 4, &n, &err) == SF_OK && n == 0,
           "an empty database gives no decisions");
    sf_snapshot_reset(snap);

    put(db, "{\"key\":\"b\",\"variations\":[0,1]}");
    put(db, "{\"key\":\"a\",\"variations\":[0,1,2],\"coverage\":0.3}");

    sf_snapshot_renew(snap, &err);
    tap_ok(sf_evaluate_all(snap, &req, out, 4, &n, &err) == SF_OK && n == 2
           && out[0].key_len == 1 && out[0].key[0] == 'a',
           "writes are seen at the next renew, in key order");
    tap_ok(sf_evaluate_all(snap, &req, out, 1, &n, &err) == SF_ERR_TOO_MANY
           && n == 1, "output bound respected");
    sf_snapshot_reset(snap);

    /* a coverage change moves no user who was in */
    for (i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "user-%d", i);
        user_request(&req, &attrs, &m, id);
        sf_snapshot_renew(snap, &err);
        sf_evaluate_all(snap, &req, out, 4, &n, &err);
        first[i] = out[0];
        sf_snapshot_reset(snap);
    }

    put(db, "{\"key\":\"a\",\"variations\":[0,1,2],\"coverage\":1}");

    moved = 0;
    in = 0;
    for (i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "user-%d", i);
        user_request(&req, &attrs, &m, id);
        sf_snapshot_renew(snap, &err);
        sf_evaluate_all(snap, &req, out, 4, &n, &err);
        if (first[i].in_experiment) {
            in++;
            moved += (out[0].variation != first[i].variation);
        }
        sf_snapshot_reset(snap);
    }
    tap_ok(in > 450 && in < 750 && moved == 0,
           "coverage 0.3 -> 1 moves none of the %d users already in", in);

    /* the split of 10 000 users follows the weights */
    put(db, "{\"key\":\"a\",\"variations\":[0,1,2],\"weights\":[0.5,0.3,0.2]}");
    counts[0] = counts[1] = counts[2] = 0;
    sf_snapshot_renew(snap, &err);
    for (i = 0; i < 10000; i++) {
        snprintf(id, sizeof(id), "%08x", (unsigned) i * 2654435761u);
        user_request(&req, &attrs, &m, id);
        sf_evaluate_all(snap, &req, out, 4, &n, &err);
        counts[out[0].variation]++;
    }
    sf_snapshot_reset(snap);
    chi2 = 0;
    for (i = 0; i < 3; i++) {
        expected = 10000 * (i == 0 ? 0.5 : i == 1 ? 0.3 : 0.2);
        chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
    }
    /* 2 degrees of freedom: p = 0.001 at 13.82 */
    tap_ok(chi2 < 13.82, "10000 users split %d/%d/%d, chi-square %.2f",
           counts[0], counts[1], counts[2], chi2);

    /* an aborted transaction leaves nothing */
    sf_txn_begin(db, &txn, &err);
    sf_txn_clear_experiments(txn, &err);
    sf_txn_abort(txn);
    sf_db_info_get(db, &info, &err);
    tap_ok(info.experiments == 2, "an aborted transaction changes nothing");

    /* the data generation follows decision data, not request state */
    {
        uint64_t  gen0, gen1, gen2, txn0, txn1;

        sf_snapshot_renew(snap, &err);
        sf_snapshot_generation(snap, &gen0, &err);
        sf_snapshot_reset(snap);
        txn0 = sf_db_last_txn(db);

        sf_txn_begin(db, &txn, &err);
        sf_txn_put_meta(txn, "scratch", "x", 1, &err);
        sf_txn_commit(txn, &err);
        txn1 = sf_db_last_txn(db);

        sf_snapshot_renew(snap, &err);
        sf_snapshot_generation(snap, &gen1, &err);
        sf_snapshot_reset(snap);

        put(db, "{\"key\":\"c\",\"variations\":[0,1]}");
        sf_snapshot_renew(snap, &err);
        sf_snapshot_generation(snap, &gen2, &err);
        sf_snapshot_reset(snap);

        tap_ok(gen0 > 0 && txn1 == txn0 + 1 && gen1 == gen0
               && gen2 == gen0 + 1,
               "a commit of other data moves the last txn id (%llu -> %llu)"
               " but not the generation; an experiment write moves it"
               " (%llu -> %llu)", (unsigned long long) txn0,
               (unsigned long long) txn1, (unsigned long long) gen0,
               (unsigned long long) gen2);
    }

    tap_ok(sf_db_open(&reader, dir, 0, SF_DB_READONLY, &err) == SF_OK,
           "a second, read-only opener");
    sf_db_close(reader);

    /* map full becomes an error, not a crash */
    {
        char     big[2048];
        sf_db   *small;
        char     dir2[] = "/tmp/sf-test-XXXXXX";
        int      rc = SF_OK;

        mkdtemp(dir2);
        sf_db_open(&small, dir2, 64 * 1024, 0, &err);
        for (i = 0; i < 200 && rc == SF_OK; i++) {
            snprintf(big, sizeof(big), "{\"key\":\"k%d\",\"variations\":"
                     "[\"%0900d\",\"%0900d\"]}", i, 0, 1);
            rc = put(small, big);
        }
        tap_ok(rc == SF_ERR_MAP_FULL, "a full map is reported as such");
        sf_db_close(small);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir2);
        if (system(cmd)) { /* best effort */ }
    }

    sf_snapshot_free(snap);
    sf_db_close(db);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd)) { /* best effort */ }
}


int
main(void)
{
    arena = sf_arena_create(0);

    test_json();
    test_stream();
    test_compile();
    test_db();

    sf_arena_destroy(arena);
    return tap_done();
}
