/*
 * Engine-internal storage primitives, shared by the engine's files but
 * not part of the public API (storefront.h).
 */

#ifndef SF_INTERNAL_H
#define SF_INTERNAL_H

#include "storefront.h"


/*
 * FNV-1a over UTF-16 code units, in steps: hashes that share a prefix (the
 * visitor's id for version 1, the seed for version 2) compute it once.
 */
#define SF_FNV_OFFSET  0x811c9dc5u

uint32_t sf_fnv1a32_feed(uint32_t state, const char *s, size_t len);
double sf_hash_v1_after_value(uint32_t value_state, const char *seed,
    size_t seed_len);
double sf_hash_v2_after_seed(uint32_t seed_state, const char *value,
    size_t value_len);
int sf_in_namespace_after_id(uint32_t id_state, const char *ns,
    size_t ns_len, double start, double end);


/* Plain key-value stores beside the structured ones. */
typedef enum {
    SF_STORE_PUSH = 0,      /* push state, policy and counters */
    SF_STORE_PUSH_LOG,      /* push decisions, by sequence */
    SF_STORE_ADS,           /* "campaigns" -> ads record */
    SF_STORE_AD_STATE,      /* user id -> ad state record */
    SF_STORE_AD_COUNTS,     /* "c:id", "cr:id/creative", "p:advertiser" */
    SF_STORE__COUNT
} sf_store;

/* Reads a key in a read snapshot (zero-copy until the snapshot ends). */
int sf_snapshot_kv_get(sf_snapshot *s, sf_store store, const void *key,
    size_t klen, const void **val, size_t *vlen, sf_error *err);

#define SF_KV_APPEND  0x1   /* keys arrive in ascending order */

/* SF_ERR_NOT_FOUND when absent; *val points into the map until the
 * transaction changes that key or ends. */
int sf_txn_kv_get(sf_txn *t, sf_store store, const void *key, size_t klen,
    const void **val, size_t *vlen, sf_error *err);
int sf_txn_kv_put(sf_txn *t, sf_store store, const void *key, size_t klen,
    const void *val, size_t vlen, unsigned flags, sf_error *err);
/* The last key of a store (for sequences); SF_ERR_NOT_FOUND when empty. */
int sf_txn_kv_drop_first(sf_txn *t, sf_store store,
    int (*drop)(const void *val, size_t len, void *ctx), void *ctx,
    size_t max, size_t *dropped, sf_error *err);
int sf_txn_kv_last(sf_txn *t, sf_store store, const void **key,
    size_t *klen, sf_error *err);

typedef int (*sf_kv_cb)(void *ctx, const void *key, size_t klen,
    const void *val, size_t vlen);
/* Walks the keys starting with prefix, in a read snapshot of its own. */
int sf_db_kv_each(sf_db *db, sf_store store, const void *prefix,
    size_t plen, sf_kv_cb cb, void *ctx, sf_error *err);

#endif /* SF_INTERNAL_H */
