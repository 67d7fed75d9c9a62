/*
 * The binary form of values kept inside records: a type byte, then
 *   number: 8 bytes (double)     bool: 1 byte     null: nothing
 *   string: u32 length + bytes
 *   array:  u32 count + items    object: u32 count + (u32 len, name, value)*
 * Decoding builds sf_value views whose strings point into the data.
 */

#include <string.h>

#include "storefront.h"


#define SF_VALUE_MAX_DEPTH  32


static int
sf_value_put_u32(sf_buf *b, size_t n)
{
    uint32_t  u;

    u = (uint32_t) n;
    return sf_buf_append(b, &u, 4);
}


int
sf_value_encode(sf_buf *b, const sf_value *v)
{
    int      rc;
    size_t   i;
    uint8_t  t;

    t = (uint8_t) v->type;
    rc = sf_buf_append(b, &t, 1);

    switch (v->type) {

    case SF_NULL:
        break;

    case SF_BOOL:
        t = (uint8_t) v->u.boolean;
        rc = rc ? rc : sf_buf_append(b, &t, 1);
        break;

    case SF_NUMBER:
        rc = rc ? rc : sf_buf_append(b, &v->u.number, 8);
        break;

    case SF_STRING:
        rc = rc ? rc : sf_value_put_u32(b, v->u.str.len);
        rc = rc ? rc : sf_buf_append(b, v->u.str.p, v->u.str.len);
        break;

    case SF_ARRAY:
        rc = rc ? rc : sf_value_put_u32(b, v->u.arr.n);
        for (i = 0; rc == SF_OK && i < v->u.arr.n; i++) {
            rc = sf_value_encode(b, &v->u.arr.items[i]);
        }
        break;

    case SF_OBJECT:
        rc = rc ? rc : sf_value_put_u32(b, v->u.obj.n);
        for (i = 0; rc == SF_OK && i < v->u.obj.n; i++) {
            rc = sf_value_put_u32(b, v->u.obj.members[i].name_len);
            rc = rc ? rc : sf_buf_append(b, v->u.obj.members[i].name,
                                         v->u.obj.members[i].name_len);
            rc = rc ? rc : sf_value_encode(b, &v->u.obj.members[i].value);
        }
        break;
    }

    return rc;
}


typedef struct {
    const char  *p;
    const char  *end;
    sf_alloc_fn  alloc;
    void        *ctx;
} sf_value_reader;


static int
sf_value_get_u32(sf_value_reader *r, uint32_t *u)
{
    if (r->end - r->p < 4) {
        return 0;
    }
    memcpy(u, r->p, 4);
    r->p += 4;
    return 1;
}


static int
sf_value_read(sf_value_reader *r, sf_value *v, int depth)
{
    uint8_t     t;
    uint32_t    n, i, len;
    sf_value   *items;
    sf_member  *members;

    if (depth > SF_VALUE_MAX_DEPTH || r->p >= r->end) {
        return 0;
    }

    t = (uint8_t) *r->p++;
    v->type = (sf_type) t;

    switch (t) {

    case SF_NULL:
        return 1;

    case SF_BOOL:
        if (r->p >= r->end) {
            return 0;
        }
        v->u.boolean = *r->p++ != 0;
        return 1;

    case SF_NUMBER:
        if (r->end - r->p < 8) {
            return 0;
        }
        memcpy(&v->u.number, r->p, 8);
        r->p += 8;
        return 1;

    case SF_STRING:
        if (!sf_value_get_u32(r, &len) || (size_t) (r->end - r->p) < len) {
            return 0;
        }
        v->u.str.p = r->p;
        v->u.str.len = len;
        r->p += len;
        return 1;

    case SF_ARRAY:
        if (!sf_value_get_u32(r, &n) || (size_t) (r->end - r->p) < n) {
            return 0;
        }
        items = n ? r->alloc(r->ctx, n * sizeof(sf_value)) : NULL;
        if (n && items == NULL) {
            return 0;
        }
        for (i = 0; i < n; i++) {
            if (!sf_value_read(r, &items[i], depth + 1)) {
                return 0;
            }
        }
        v->u.arr.items = items;
        v->u.arr.n = n;
        return 1;

    case SF_OBJECT:
        if (!sf_value_get_u32(r, &n) || (size_t) (r->end - r->p) < n) {
            return 0;
        }
        members = n ? r->alloc(r->ctx, n * sizeof(sf_member)) : NULL;
        if (n && members == NULL) {
            return 0;
        }
        for (i = 0; i < n; i++) {
            if (!sf_value_get_u32(r, &len)
                || (size_t) (r->end - r->p) < len)
            {
                return 0;
            }
            members[i].name = r->p;
            members[i].name_len = len;
            r->p += len;
            if (!sf_value_read(r, &members[i].value, depth + 1)) {
                return 0;
            }
        }
        v->u.obj.members = members;
        v->u.obj.n = n;
        return 1;
    }

    return 0;
}


int
sf_value_decode(const void *data, size_t len, sf_alloc_fn alloc,
    void *alloc_ctx, sf_value *out, size_t *used)
{
    sf_value_reader  r;

    r.p = data;
    r.end = r.p + len;
    r.alloc = alloc;
    r.ctx = alloc_ctx;

    if (!sf_value_read(&r, out, 0)) {
        return SF_ERR_INVALID;
    }

    if (used) {
        *used = (size_t) (r.p - (const char *) data);
    }
    return SF_OK;
}
