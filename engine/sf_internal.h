/*
 * Engine-internal storage primitives, shared by the engine's files but
 * not part of the public API (storefront.h).
 */

#ifndef SF_INTERNAL_H
#define SF_INTERNAL_H

#include "storefront.h"


/* Plain key-value stores beside the structured ones. */
typedef enum {
    SF_STORE_PUSH = 0,      /* push state, policy and counters */
    SF_STORE_PUSH_LOG       /* push decisions, by sequence */
} sf_store;

#define SF_KV_APPEND  0x1   /* keys arrive in ascending order */

/* SF_ERR_NOT_FOUND when absent; *val points into the map until the
 * transaction changes that key or ends. */
int sf_txn_kv_get(sf_txn *t, sf_store store, const void *key, size_t klen,
    const void **val, size_t *vlen, sf_error *err);
int sf_txn_kv_put(sf_txn *t, sf_store store, const void *key, size_t klen,
    const void *val, size_t vlen, unsigned flags, sf_error *err);
/* The last key of a store (for sequences); SF_ERR_NOT_FOUND when empty. */
int sf_txn_kv_last(sf_txn *t, sf_store store, const void **key,
    size_t *klen, sf_error *err);

typedef int (*sf_kv_cb)(void *ctx, const void *key, size_t klen,
    const void *val, size_t vlen);
/* Walks the keys starting with prefix, in a read snapshot of its own. */
int sf_db_kv_each(sf_db *db, sf_store store, const void *prefix,
    size_t plen, sf_kv_cb cb, void *ctx, sf_error *err);

#endif /* SF_INTERNAL_H */
