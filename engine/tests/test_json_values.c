/*
 * sf_json_stream_values: the elements of a top-level array, JSON lines
 * (bad lines reported and skipped, line numbers, parts of a file), and
 * the numbers of the JSON reader (the fast path agrees with strtod).
 */

#include <stdlib.h>
#include <string.h>

#include "storefront.h"
#include "tap.h"


typedef struct {
    int            good;
    int            bad;
    int            stop_at;       /* stop at this good value, -1 never */
    unsigned long  lines[16];
    long           index[16];
    char           first_bad[512];
    unsigned long  bad_lines[16];
} seen;


static int
on_value(void *ctx, const char *member, long index, const sf_value *v,
    unsigned long line, sf_error *err)
{
    seen  *s = ctx;

    if (member[0] != '\0') {
        return sf_error_set(err, SF_ERR_INVALID, "member \"%s\"", member);
    }

    if (v == NULL) {
        if (s->bad == 0) {
            snprintf(s->first_bad, sizeof(s->first_bad), "%s", err->msg);
        }
        if (s->bad < 16) {
            s->bad_lines[s->bad] = line;
        }
        s->bad++;
        return 0;
    }

    if (s->good == s->stop_at) {
        return sf_error_set(err, SF_ERR_INVALID, "stopped at line %lu",
                            line);
    }
    if (s->good < 16) {
        s->lines[s->good] = line;
        s->index[s->good] = index;
    }
    s->good++;
    return 0;
}


static int
stream(const char *text, int format, uint64_t max_bytes, seen *s,
    sf_json_stream_opts *o, sf_error *err)
{
    int    rc;
    FILE  *f;

    memset(s, 0, sizeof(*s));
    s->stop_at = -1;
    memset(o, 0, sizeof(*o));
    o->format = format;
    o->max_bytes = max_bytes;
    memset(err, 0, sizeof(*err));

    f = fmemopen((void *) text, strlen(text), "r");
    rc = sf_json_stream_values(f, "v.json", o, on_value, s, err);
    fclose(f);
    return rc;
}


static void
test_array(void)
{
    int                   rc;
    seen                  s;
    sf_error              err;
    sf_json_stream_opts   o;

    rc = stream("[\n {\"id\": \"a\"},\n\n {\"id\":\n \"b\"}, 3\n]\n",
                SF_JSON_ARRAY, 0, &s, &o, &err);
    tap_ok(rc == SF_OK && s.good == 3 && s.lines[0] == 2 && s.lines[1] == 4
           && s.index[2] == 2, "array: elements with their lines and index");

    rc = stream("{\"a\": [1]}", SF_JSON_ARRAY, 0, &s, &o, &err);
    tap_ok(rc == SF_ERR_INVALID && strstr(err.msg, "must be a JSON array"),
           "array: an object is refused (%s)", err.msg);
    rc = stream("[1, 2", SF_JSON_ARRAY, 0, &s, &o, &err);
    tap_ok(rc == SF_ERR_INVALID && strncmp(err.msg, "v.json:1:", 9) == 0,
           "array: truncated (%s)", err.msg);
    rc = stream("[1] [2]", SF_JSON_ARRAY, 0, &s, &o, &err);
    tap_ok(rc == SF_ERR_INVALID, "array: one array only (%s)", err.msg);
}


static void
test_lines(void)
{
    int                   rc;
    seen                  s;
    sf_error              err;
    sf_json_stream_opts   o;
    const char           *text =
        "{\"id\":\"a\"}\n"
        "\n"
        "   \n"
        "{\"id\":\"b\"\n"                   /* 4: incomplete */
        "{\"id\":\"c\"} {\"id\":\"d\"}\n"   /* 5: two values */
        "{\"id\":\"e\"}\r\n"
        "{\"id\": x}\n"                     /* 7: not JSON */
        "\"text\"\n"
        "42";                               /* 9: no newline */

    rc = stream(text, SF_JSON_LINES, 0, &s, &o, &err);
    tap_ok(rc == SF_OK && s.good == 4 && s.bad == 3,
           "lines: %d values, %d bad lines", s.good, s.bad);
    tap_ok(s.lines[0] == 1 && s.lines[1] == 6 && s.lines[2] == 8
           && s.lines[3] == 9, "lines: each value with its line");
    tap_ok(s.index[0] == 0 && s.index[3] == 3, "lines: indexes count values");
    tap_ok(s.bad_lines[0] == 4 && s.bad_lines[1] == 5 && s.bad_lines[2] == 7,
           "lines: bad lines 4, 5, 7");
    tap_ok(strncmp(s.first_bad, "v.json:4:", 9) == 0
           && strstr(s.first_bad, "incomplete"),
           "lines: the problem is placed (%s)", s.first_bad);
    tap_ok(o.lines_read == 9, "lines: %lu lines read", o.lines_read);

    /* a callback's error stops the stream */
    memset(&s, 0, sizeof(s));
    memset(&o, 0, sizeof(o));
    s.stop_at = 1;
    o.format = SF_JSON_LINES;
    {
        FILE  *f = fmemopen((void *) text, strlen(text), "r");

        rc = sf_json_stream_values(f, "v.json", &o, on_value, &s, &err);
        fclose(f);
    }
    tap_ok(rc == SF_ERR_INVALID && strcmp(err.msg, "stopped at line 6") == 0,
           "lines: the callback stops it (%s)", err.msg);

    /* parts of a file: up to max_bytes, line numbers from first_line */
    rc = stream("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n", SF_JSON_LINES, 16, &s,
                &o, &err);
    tap_ok(rc == SF_OK && s.good == 2 && o.lines_read == 2,
           "lines: max_bytes reads the first part only");

    memset(&s, 0, sizeof(s));
    memset(&o, 0, sizeof(o));
    s.stop_at = -1;
    o.format = SF_JSON_LINES;
    o.first_line = 3;
    {
        const char  *t = "{\"n\":3}\n\n{\"n\":4}\n";
        FILE        *f = fmemopen((void *) t, strlen(t), "r");

        rc = sf_json_stream_values(f, "v.json", &o, on_value, &s, &err);
        fclose(f);
    }
    tap_ok(rc == SF_OK && s.lines[0] == 3 && s.lines[1] == 5
           && o.lines_read == 3, "lines: numbered from first_line");

    rc = stream("", SF_JSON_LINES, 0, &s, &o, &err);
    tap_ok(rc == SF_OK && s.good == 0 && s.bad == 0,
           "lines: an empty file is no record");
}


static void
test_numbers(void)
{
    static const char  *nums[] = {
        "0", "-0", "7", "120.5", "-4.25", "0.1", "0.3", "123456789012345",
        "1234567890.12345", "9007199254740993", "1e3", "2.5E-3",
        "0.000001", "99999999999999999999", "3.14159265358979"
    };
    size_t     i;
    int        same;
    char       text[64];
    sf_arena  *a;
    sf_value   v;
    sf_error   err;
    double     want;

    a = sf_arena_create(0);
    same = 1;
    for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        snprintf(text, sizeof(text), "%s", nums[i]);
        want = strtod(text, NULL);
        if (sf_json_parse(text, strlen(text), a, &v, &err) != SF_OK
            || v.type != SF_NUMBER
            || memcmp(&v.u.number, &want, sizeof(double)) != 0)
        {
            printf("# %s: %.17g, strtod %.17g\n", nums[i], v.u.number, want);
            same = 0;
        }
        sf_arena_reset(a);
    }
    tap_ok(same, "numbers: the same doubles as strtod");
    sf_arena_destroy(a);
}


int
main(void)
{
    test_array();
    test_lines();
    test_numbers();
    return tap_done();
}
