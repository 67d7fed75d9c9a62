/*
 * A minimal TAP producer for the engine's unit tests: "ok N - name" lines,
 * a trailing plan, per-section pass counts as comments.
 */

#ifndef SF_TAP_H
#define SF_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int          tap_n, tap_failed, tap_sec_pass, tap_sec_total;
static const char  *tap_sec_name;


static inline void
tap_section(const char *name)
{
    tap_sec_name = name;
    tap_sec_pass = 0;
    tap_sec_total = 0;
}


static inline void
tap_section_end(void)
{
    printf("# %s: %d/%d passed\n", tap_sec_name, tap_sec_pass, tap_sec_total);
}


static inline void __attribute__((format(printf, 2, 3)))
tap_ok(int ok, const char *fmt, ...)
{
    va_list  ap;

    tap_n++;
    tap_sec_total++;
    if (ok) {
        tap_sec_pass++;
    } else {
        tap_failed++;
    }

    printf("%sok %d - ", ok ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}


static inline void __attribute__((format(printf, 1, 2)))
tap_skip(const char *fmt, ...)
{
    va_list  ap;

    tap_n++;
    printf("ok %d # SKIP ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}


static inline int
tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}


/*
 * GrowthBook's test cases: $STOREFRONT_GB_CASES, else the shared copy
 * beside the repository.  NULL (and a TAP skip) when absent.
 */
static inline char *
tap_read_conformance(size_t *len)
{
    FILE        *f;
    char        *text;
    long         size;
    const char  *path;

    path = getenv("STOREFRONT_GB_CASES");
    if (path == NULL) {
        path = "../shared/conformance/growthbook-cases.json";
    }

    f = fopen(path, "rb");
    if (f == NULL) {
        printf("1..0 # SKIP conformance file %s absent\n", path);
        return NULL;
    }

    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);

    text = malloc((size_t) size + 1);
    if (text == NULL || fread(text, 1, (size_t) size, f) != (size_t) size) {
        printf("Bail out! cannot read %s\n", path);
        exit(1);
    }
    fclose(f);

    *len = (size_t) size;
    return text;
}

#endif /* SF_TAP_H */
