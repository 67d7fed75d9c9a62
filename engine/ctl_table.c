/*
 * storefrontctl: text output: tables padded to their widest cell, and
 * numbers, sizes, times and counts as the commands print them.
 */

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"


/* ---- text tables ------------------------------------------------------- */

/* Display width of UTF-8 text: code points. */
static size_t
ctl_width(const char *s)
{
    size_t  w;

    for (w = 0; *s; s++) {
        if (((unsigned char) *s & 0xc0) != 0x80) {
            w++;
        }
    }
    return w;
}


int
ctl_table_row(ctl_table *t, const char *const *cells)
{
    char    **p, *c;
    size_t    i, j, n;

    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 32;
        p = realloc(t->cells, t->cap * t->ncols * sizeof(char *));
        if (p == NULL) {
            return -1;
        }
        t->cells = p;
    }

    for (i = 0; i < t->ncols; i++) {
        n = strlen(cells[i]);
        c = malloc(n + 1);
        if (c == NULL) {
            while (i-- > 0) {
                free(t->cells[t->nrows * t->ncols + i]);
            }
            return -1;
        }
        for (j = 0; j < n; j++) {
            c[j] = ((unsigned char) cells[i][j] < 0x20 || cells[i][j] == 0x7f)
                   ? '?' : cells[i][j];
        }
        c[n] = '\0';
        t->cells[t->nrows * t->ncols + i] = c;
    }

    t->nrows++;
    return 0;
}


void
ctl_table_print(const ctl_table *t, FILE *f)
{
    size_t   r, c, w, width[16];

    for (c = 0; c < t->ncols && c < 16; c++) {
        width[c] = 0;
        for (r = 0; r < t->nrows; r++) {
            w = ctl_width(t->cells[r * t->ncols + c]);
            if (w > width[c]) {
                width[c] = w;
            }
        }
    }

    for (r = 0; r < t->nrows; r++) {
        for (c = 0; c < t->ncols; c++) {
            const char  *s = t->cells[r * t->ncols + c];

            fputs(s, f);
            if (c + 1 < t->ncols) {
                for (w = ctl_width(s); w < width[c] + 2; w++) {
                    fputc(' ', f);
                }
            }
        }
        fputc('\n', f);
    }
}


void
ctl_table_free(ctl_table *t)
{
    size_t  i;

    for (i = 0; i < t->nrows * t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    t->cells = NULL;
    t->nrows = 0;
    t->cap = 0;
}


/* A JS-style number as a C string in buf (room for 32). */
const char *
ctl_number(double x, char *buf, size_t size)
{
    sf_buf  b;

    sf_buf_init(&b);
    if (sf_buf_append_js_number(&b, x) != SF_OK) {
        snprintf(buf, size, "%.17g", x);
    } else {
        snprintf(buf, size, "%.*s", (int) b.len, b.data);
    }
    sf_buf_free(&b);
    return buf;
}


/* "1.0 GiB" style, for humans. */
const char *
ctl_human_size(uint64_t n, char *buf, size_t size)
{
    static const char  *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double               v;
    int                  u;

    v = (double) n;
    for (u = 0; v >= 1024 && u < 4; u++) {
        v /= 1024;
    }

    if (u == 0) {
        snprintf(buf, size, "%" PRIu64 " B", n);
    } else {
        snprintf(buf, size, "%.1f %s", v, units[u]);
    }
    return buf;
}


const char *
ctl_time_text(int64_t t, char *buf, size_t size)
{
    sf_buf  b;

    if (t == 0) {
        snprintf(buf, size, "-");
        return buf;
    }
    sf_buf_init(&b);
    if (sf_buf_append_time(&b, t) == SF_OK && b.len >= 2) {
        snprintf(buf, size, "%.*s", (int) b.len - 2, b.data + 1);
    } else {
        snprintf(buf, size, "%" PRId64, t);
    }
    sf_buf_free(&b);
    return buf;
}


void
ctl_plural(char *buf, size_t size, uint64_t n, const char *what)
{
    snprintf(buf, size, "%" PRIu64 " %s%s", n, what, n == 1 ? "" : "s");
}
