/*
 * Page layouts: compilation checks (unknown references, empty layouts,
 * loops), rule order, targeting, time windows, experiments choosing a
 * layout, includes and cross-sell derived from category affinities.
 */

#include <stdlib.h>
#include <string.h>

#include "storefront.h"
#include "tap.h"


static sf_arena  *arena;

static const char  *doc =
    "{\"modules\":{"
    "  \"hero\":{\"fragment\":\"/fragments/hero\",\"vary\":[\"segment\"]},"
    "  \"guess\":{\"fragment\":\"/fragments/guess\",\"fallback\":\"<p>-</p>\"},"
    "  \"best\":{\"fragment\":\"/fragments/bestsellers\"},"
    "  \"new\":{\"fragment\":\"/fragments/new\"},"
    "  \"sale\":{\"fragment\":\"/fragments/sale\"},"
    "  \"rec\":{\"fragment\":\"/fragments/recommend\"},"
    "  \"footer\":{\"fragment\":\"/fragments/footer\"},"
    "  \"ad\":{\"fragment\":\"/fragments/ad\",\"ad_slot\":\"banner\"}},"
    " \"layouts\":{"
    "  \"base\":[{\"module\":\"footer\"}],"
    "  \"home-default\":[{\"module\":\"hero\",\"params\":{\"banner\":"
    "\"spring sale\"}},{\"module\":\"best\"},{\"module\":\"new\"},"
    "{\"layout\":\"base\"}],"
    "  \"home-vip\":[{\"module\":\"guess\",\"params\":{\"sponsored\":1,"
    "\"organic\":5}},{\"derive\":\"cross_sell\",\"module\":\"rec\",\"max\":2},"
    "{\"layout\":\"base\"}],"
    "  \"home-sale\":[{\"module\":\"sale\"},{\"layout\":\"home-default\"}],"
    "  \"home-b\":[{\"module\":\"new\"},{\"module\":\"ad\"},"
    "{\"module\":\"best\"}]},"
    " \"pages\":{\"home\":{\"default\":\"home-default\",\"rules\":["
    "  {\"name\":\"double-11\",\"from\":\"2026-11-11\",\"to\":\"2026-11-12\","
    "\"layout\":\"home-sale\"},"
    "  {\"name\":\"vip\",\"when\":{\"tier\":\"gold\"},\"layout\":\"home-vip\"},"
    "  {\"name\":\"layout-test\",\"experiment\":\"home-layout\"}]},"
    "  \"cart\":{\"default\":\"home-b\"}},"
    " \"cross_sell\":[{\"bought\":\"running_shoes\",\"recommend\":[\"socks\","
    "\"insoles\"]},{\"bought\":\"baby\",\"recommend\":\"toys\"}]}";


static void *
arena_alloc(void *ctx, size_t n)
{
    return sf_arena_alloc(ctx, n);
}


static int
compile(const char *json, sf_buf *out, sf_error *err)
{
    sf_value  v;

    if (sf_json_parse(json, strlen(json), arena, &v, err) != SF_OK) {
        return SF_ERR_INVALID;
    }
    return sf_pages_compile(&v, out, err);
}


static sf_value
attrs(const char *json)
{
    sf_value  v;
    sf_error  err;

    sf_json_parse(json, strlen(json), arena, &v, &err);
    return v;
}


static void
modules_text(const sf_page_decision *d, char *out, size_t size)
{
    size_t  i, n;

    n = 0;
    out[0] = '\0';
    for (i = 0; i < d->nmodules && n < size; i++) {
        n += (size_t) snprintf(out + n, size - n, "%s%.*s%s%.*s",
                               i ? ";" : "", (int) d->modules[i].module_len,
                               d->modules[i].module,
                               d->modules[i].params_len ? "?" : "",
                               (int) d->modules[i].params_len,
                               d->modules[i].params);
    }
}


int
main(void)
{
    int               rc;
    char              text[512];
    sf_buf            blob, json;
    sf_error          err;
    sf_value          a;
    sf_assignment     as;
    sf_page_decision  d;
    int64_t           nov10 = 1794268800, nov11 = 1794355200;

    arena = sf_arena_create(0);
    sf_buf_init(&blob);
    sf_buf_init(&json);

    rc = compile(doc, &blob, &err);
    tap_ok(rc == SF_OK, "layouts compile (%s)", rc ? err.msg : "ok");

    a = attrs("{\"tier\":\"regular\"}");
    rc = sf_page_decide(blob.data, blob.len, "home", 4, &a, NULL, 0, nov10,
                        arena_alloc, arena, &d);
    modules_text(&d, text, sizeof(text));
    tap_ok(rc == SF_OK && strcmp(text, "hero?banner=spring%20sale;best;new;"
                                 "footer") == 0
           && d.rule_len == 7 && d.modules[0].vary == SF_VARY_SEGMENT,
           "default layout, include expanded, params encoded: %s", text);

    a = attrs("{\"tier\":\"gold\",\"categories\":{\"running_shoes\":4,"
              "\"baby\":2,\"socks\":1}}");
    sf_page_decide(blob.data, blob.len, "home", 4, &a, NULL, 0, nov10,
                   arena_alloc, arena, &d);
    modules_text(&d, text, sizeof(text));
    tap_ok(strcmp(text, "guess?sponsored=1&organic=5;rec?category=insoles;"
                  "rec?category=toys;footer") == 0
           && strncmp(d.rule, "vip", 3) == 0,
           "gold: vip layout, cross-sell from affinities (socks already "
           "bought): %s", text);

    sf_page_decide(blob.data, blob.len, "home", 4, &a, NULL, 0, nov11 + 3600,
                   arena_alloc, arena, &d);
    modules_text(&d, text, sizeof(text));
    tap_ok(strncmp(text, "sale;hero", 9) == 0 && d.ntrace == 3
           && d.trace[1].outcome == SF_PAGE_RULE_SKIPPED,
           "on the promotion day the first rule wins: %s", text);

    memset(&as, 0, sizeof(as));
    as.key = "home-layout";
    as.key_len = 11;
    as.in_experiment = 1;
    as.variation_key = "b";
    as.variation_key_len = 1;
    as.layout = "home-b";
    as.layout_len = 6;
    a = attrs("{\"tier\":\"regular\"}");
    sf_page_decide(blob.data, blob.len, "home", 4, &a, &as, 1, nov10,
                   arena_alloc, arena, &d);
    modules_text(&d, text, sizeof(text));
    tap_ok(strcmp(text, "new;ad;best") == 0
           && d.trace[2].outcome == SF_PAGE_RULE_MATCHED,
           "an experiment's variation chooses the layout: %s", text);
    tap_ok(d.modules[1].ad_slot_len == 6
           && memcmp(d.modules[1].ad_slot, "banner", 6) == 0
           && d.modules[0].ad_slot == NULL,
           "an ad slot's position and type come with the layout");

    as.layout = "nope";
    as.layout_len = 4;
    sf_page_decide(blob.data, blob.len, "home", 4, &a, &as, 1, nov10,
                   arena_alloc, arena, &d);
    tap_ok(d.trace[2].outcome == SF_PAGE_RULE_NO_LAYOUT
           && strcmp(d.rule, "default") == 0,
           "a variation naming no known layout falls through to the default");

    tap_ok(sf_page_decide(blob.data, blob.len, "search", 6, &a, NULL, 0,
                          nov10, arena_alloc, arena, &d) == SF_ERR_NOT_FOUND,
           "an unknown page type is reported");

    sf_pages_to_json(blob.data, blob.len, &json);
    {
        sf_buf  again;

        sf_buf_init(&again);
        tap_ok(compile(json.data, &again, &err) == SF_OK
               && again.len == blob.len
               && memcmp(again.data, blob.data, blob.len) == 0,
               "exported layouts compile back to the same record");
        sf_buf_free(&again);
    }

    /* import errors */
    rc = compile("{\"modules\":{\"a\":{\"fragment\":\"/a\"}},\"layouts\":{"
                 "\"x\":[{\"module\":\"b\"}]},\"pages\":{\"home\":{\"default\":"
                 "\"x\"}}}", &blob, &err);
    tap_ok(rc == SF_ERR_INVALID && strstr(err.msg, "unknown module \"b\""),
           "unknown module: %s", err.msg);
    rc = compile("{\"modules\":{\"a\":{\"fragment\":\"/a\"}},\"layouts\":{"
                 "\"x\":[]},\"pages\":{\"home\":{\"default\":\"x\"}}}", &blob,
                 &err);
    tap_ok(rc == SF_ERR_INVALID && strstr(err.msg, "is empty"),
           "empty layout: %s", err.msg);
    rc = compile("{\"modules\":{\"a\":{\"fragment\":\"/a\"}},\"layouts\":{"
                 "\"x\":[{\"layout\":\"y\"}],\"y\":[{\"module\":\"a\"},"
                 "{\"layout\":\"x\"}]},\"pages\":{\"home\":{\"default\":"
                 "\"x\"}}}", &blob, &err);
    tap_ok(rc == SF_ERR_INVALID && strstr(err.msg, "loop: x -> y -> x"),
           "include loop: %s", err.msg);
    rc = compile("{\"modules\":{\"a\":{\"fragment\":\"/a\"}},\"layouts\":{"
                 "\"x\":[{\"module\":\"a\"}]},\"pages\":{\"home\":{\"default\":"
                 "\"zz\"}}}", &blob, &err);
    tap_ok(rc == SF_ERR_INVALID && strstr(err.msg, "\"default\""),
           "unknown default layout: %s", err.msg);
    rc = compile("{\"modules\":{\"a\":{\"fragment\":\"/a\",\"vary\":"
                 "[\"user\"]}},\"layouts\":{\"x\":[{\"module\":\"a\"}]},"
                 "\"pages\":{\"home\":{\"default\":\"x\"}}}", &blob, &err);
    tap_ok(rc == SF_ERR_INVALID && strstr(err.msg, "never the user"),
           "fragments never vary by user: %s", err.msg);
    rc = compile("{\"modules\":{\"a\":{\"fragment\":\"/a\"}},\"layouts\":{"
                 "\"x\":[{\"module\":\"a\",\"params\":{\"p\":[1]}}]},"
                 "\"pages\":{\"home\":{\"default\":\"x\",\"rules\":[{\"when\":"
                 "{\"tier\":{\"$bogus\":1}},\"layout\":\"x\"}]}}}", &blob,
                 &err);
    tap_ok(rc == SF_ERR_INVALID, "bad params or condition: %s", err.msg);

    sf_buf_free(&blob);
    sf_buf_free(&json);
    sf_arena_destroy(arena);
    return tap_done();
}
