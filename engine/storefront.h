/*
 * storefront engine: the whole public API.
 *
 * The engine knows nothing of nginx.  Decisions are functions of (a
 * snapshot of the LMDB environment, the request facts, now).  Strings are
 * (pointer, length) pairs and are not NUL-terminated unless said so;
 * strings handed out by the engine point into the snapshot and stay valid
 * only until the snapshot is reset.
 */

#ifndef STOREFRONT_H
#define STOREFRONT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif


/* ---- errors ------------------------------------------------------------ */

enum {
    SF_OK = 0,
    SF_ERR_NOMEM = -1,
    SF_ERR_INVALID = -2,     /* bad input: JSON, experiment, argument */
    SF_ERR_DB = -3,          /* LMDB failure */
    SF_ERR_MAP_FULL = -4,    /* LMDB map is full: grow map_size */
    SF_ERR_NOT_FOUND = -5,
    SF_ERR_IO = -6,
    SF_ERR_TOO_MANY = -7     /* output array too small */
};

typedef struct {
    int   code;
    char  msg[512];
} sf_error;

/* Sets err (when not NULL) and returns code. */
int sf_error_set(sf_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));


typedef struct sf_value   sf_value;     /* JSON-like values, see below */


/* ---- growable byte buffer ---------------------------------------------- */

typedef struct {
    char    *data;
    size_t   len;
    size_t   cap;
} sf_buf;

void sf_buf_init(sf_buf *b);
void sf_buf_free(sf_buf *b);
int sf_buf_reserve(sf_buf *b, size_t extra);
int sf_buf_append(sf_buf *b, const void *p, size_t n);
int sf_buf_appends(sf_buf *b, const char *s);                 /* C string */
int sf_buf_printf(sf_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
int sf_buf_append_json_string(sf_buf *b, const char *s, size_t n);
/* Parses a time: unix seconds, or ISO 8601 ("2026-11-11",
 * "2026-11-11T20:00:00Z", "...+08:00"). */
int sf_parse_time(const sf_value *v, int64_t *out);
/* Appends t as "YYYY-MM-DDTHH:MM:SSZ" (JSON string, quotes included). */
int sf_buf_append_time(sf_buf *b, int64_t t);
/* Appends a number the way JavaScript's String(x) writes it. */
int sf_buf_append_js_number(sf_buf *b, double x);


/* ---- arena: many small allocations freed at once ----------------------- */

typedef struct sf_arena sf_arena;

sf_arena *sf_arena_create(size_t block_size);
void sf_arena_destroy(sf_arena *a);
void sf_arena_reset(sf_arena *a);           /* frees all but the first block */
void *sf_arena_alloc(sf_arena *a, size_t n); /* 8-byte aligned, NULL on OOM */
char *sf_arena_strndup(sf_arena *a, const char *s, size_t n);


/* ---- JSON-like values --------------------------------------------------- */

/*
 * A read-only view of a JSON value.  Used for request attributes, for
 * parsed import documents and for targeting conditions.  Objects keep their
 * members in document order; lookups are linear (objects are small).
 */

typedef enum {
    SF_NULL = 0,
    SF_BOOL,
    SF_NUMBER,
    SF_STRING,
    SF_ARRAY,
    SF_OBJECT
} sf_type;

typedef struct sf_value   sf_value;
typedef struct sf_member  sf_member;

struct sf_value {
    sf_type  type;
    union {
        int     boolean;
        double  number;
        struct {
            const char  *p;
            size_t       len;
        } str;
        struct {
            const sf_value  *items;
            size_t           n;
        } arr;
        struct {
            const sf_member *members;
            size_t           n;
        } obj;
    } u;
};

struct sf_member {
    const char  *name;
    size_t       name_len;
    sf_value     value;
};

/* Member of an object by name, NULL if absent or obj is not an object. */
const sf_value *sf_value_member(const sf_value *obj, const char *name,
    size_t name_len);
/* The first member of obj whose name is not in known (NULL-terminated),
 * or NULL: input objects refuse unknown members, a typo is not data. */
const char *sf_value_unknown_member(const sf_value *obj,
    const char *const *known);
/* Member by dotted path ("a.b.c"), as GrowthBook's getPath. */
const sf_value *sf_value_path(const sf_value *obj, const char *path,
    size_t path_len);
/*
 * The value as JavaScript's String(v) would give it, for hashing: strings
 * as they are, numbers and booleans written out; NULL result (return
 * SF_ERR_NOT_FOUND) for null, arrays and objects.  buf holds the text for
 * non-strings and must have room for 32 bytes.
 */
int sf_value_as_string(const sf_value *v, char *buf, const char **s,
    size_t *len);

/* Parses one JSON document into a value allocated in the arena. */
int sf_json_parse(const char *text, size_t len, sf_arena *a, sf_value *out,
    sf_error *err);
/* Writes a value as compact JSON. */
int sf_json_write(sf_buf *b, const sf_value *v);

/*
 * Streams a JSON document from a file: the document is one object; each
 * element of each array-valued top-level member is built as a value in a
 * scratch arena and passed to cb with the member name and the line the
 * element started on.  Scalar and object top-level members are passed once
 * with index -1.  The arena is reset after each callback: cb copies what it
 * keeps.  A non-zero return from cb stops the stream and is returned.
 * Errors name the file, line and column.  progress (may be NULL) is called
 * now and then with the bytes read so far.
 */
typedef int (*sf_json_element_cb)(void *ctx, const char *member,
    long index, const sf_value *element, unsigned long line, sf_error *err);
typedef void (*sf_progress_cb)(void *ctx, uint64_t bytes_read);

int sf_json_stream_file(FILE *f, const char *filename, sf_json_element_cb cb,
    sf_progress_cb progress, void *ctx, sf_error *err);

/* -- added with the profile import (storefrontctl): streams of values -- */

#define SF_JSON_ARRAY  1     /* the elements of one top-level array */
#define SF_JSON_LINES  2     /* JSON lines: one value per line */

typedef struct {
    int              format;       /* SF_JSON_ARRAY or SF_JSON_LINES */
    unsigned long    first_line;   /* number of the first line (0: 1) */
    uint64_t         max_bytes;    /* JSON lines: read no further (0: to
                                    * the end; split files at newlines) */
    sf_progress_cb   progress;     /* may be NULL */
    unsigned long    lines_read;   /* set: the lines read (JSON lines) */
} sf_json_stream_opts;

/*
 * Streams a file of JSON values: each element of a top-level array, or
 * each line's value, is passed to cb with member "" and its index, as
 * sf_json_stream_file passes a member's elements.  JSON lines: blank lines
 * are skipped; a line that is not exactly one JSON value is passed to cb
 * with element NULL, index -1 and err holding "FILE:LINE:COL: problem":
 * cb returns 0 to skip it and go on, non-zero to stop.
 */
int sf_json_stream_values(FILE *f, const char *filename,
    sf_json_stream_opts *opts, sf_json_element_cb cb, void *ctx,
    sf_error *err);


/* ---- GrowthBook hashing and bucketing ---------------------------------- */

/* FNV-1a 32 over the UTF-16 code units of UTF-8 strings a then b. */
uint32_t sf_fnv1a32_utf16(const char *a, size_t alen, const char *b,
    size_t blen);
/* GrowthBook hash(seed, value, version): SF_OK and *out in [0,1), or
 * SF_ERR_INVALID for an unknown version (GrowthBook's null). */
int sf_hash(const char *seed, size_t seed_len, const char *value,
    size_t value_len, int version, double *out);
int sf_in_namespace(const char *id, size_t id_len, const char *ns,
    size_t ns_len, double start, double end);
void sf_equal_weights(int n, double *weights);
/* ranges has room for n pairs; weights may be NULL. */
void sf_bucket_ranges(int n, double coverage, const double *weights,
    int nweights, double (*ranges)[2]);
int sf_choose_variation(double n, const double (*ranges)[2], int nranges);
/* Forced variation from a URL's query string, or -1. */
int sf_query_string_override(const char *key, size_t key_len,
    const char *url, size_t url_len, int nvariations);


/* ---- experiments -------------------------------------------------------- */

/*
 * An experiment is imported as a GrowthBook experiment object and stored
 * compiled into one binary record (see sf_experiment.c for the layout).
 */

/* Validates a GrowthBook experiment object and compiles it into out. */
int sf_experiment_compile(const sf_value *exp, sf_buf *out, sf_error *err);
/* The experiment key of a compiled record. */
int sf_experiment_key(const void *rec, size_t len, const char **key,
    size_t *key_len);
/*
 * 1 when the experiment may read the attribute name (or a member of it):
 * as its hash, fallback or filter attribute, or anywhere in its
 * condition (saved groups included).  It errs on the side of 1.
 */
int sf_experiment_reads(const void *rec, size_t len, const char *name,
    size_t name_len);
/* Appends the record back as a GrowthBook experiment object (JSON). */
int sf_experiment_to_json(const void *rec, size_t len, sf_buf *out);

/*
 * Operates a running experiment: changes is an object with any of
 *   "active": bool          start or stop
 *   "coverage": 0..1        ramp; moves no user already assigned
 *   "weights": [...]        a new split: re-randomises every user, since
 *                           the seed becomes "<seed>:v<N>" (N counts the
 *                           re-randomisations, kept as "bucketVersion")
 * The record is rebuilt into out; summary gets what changed, e.g.
 * "coverage 0.1 -> 1".
 */
int sf_experiment_update(const void *rec, size_t len, const sf_value *changes,
    sf_buf *out, sf_buf *summary, sf_error *err);

typedef enum {
    SF_REASON_ASSIGNED = 0,      /* in the experiment by hashing */
    SF_REASON_QUERY_OVERRIDE,    /* forced by the query string (QA) */
    SF_REASON_FORCED,            /* experiment's force */
    SF_REASON_SINGLE_VARIATION,  /* fewer than 2 variations */
    SF_REASON_INACTIVE,          /* active: false */
    SF_REASON_NO_ID,             /* no hash attribute value */
    SF_REASON_NAMESPACE,         /* outside the namespace range */
    SF_REASON_FILTERED,          /* outside a filter range */
    SF_REASON_CONDITION,         /* targeting condition false */
    SF_REASON_COVERAGE,          /* hash outside every bucket range */
    SF_REASON_HASH_VERSION,      /* unknown hash version */
    SF_REASON_DISABLED,          /* engine disabled by the caller */
    SF_REASON_QA_MODE,           /* QA mode: only forced variations */
    SF_REASON_CONTEXT_FORCED,    /* forced_variations of the request */
    SF_REASON__COUNT
} sf_reason;

const char *sf_reason_name(sf_reason r);   /* e.g. "coverage" */

/* The FNV state of the last value hashed, shared by the experiments of
 * one request (sf_evaluate_all keeps one itself). */
typedef struct {
    const char  *value;
    size_t       len;
    uint32_t     state;
} sf_hash_cache;

typedef struct {
    const sf_value  *attributes;   /* an object, or NULL */
    const char      *url;          /* path?query or full URL, may be NULL */
    size_t           url_len;
    int              qa_override;  /* honour ?<key>=<index> forcing */
    int              disabled;     /* GrowthBook enabled: false */
    int              qa_mode;      /* GrowthBook qaMode: no hashing */
    const sf_value  *forced_variations;  /* object key -> index, or NULL */
    const sf_value  *saved_groups;       /* object name -> array, or NULL */
    sf_hash_cache   *hash_cache;         /* may be NULL */
    int64_t          now;          /* unix seconds */
} sf_request;

typedef struct {
    const char  *key;             /* experiment key */
    size_t       key_len;
    int          in_experiment;
    int          variation;        /* index served (0 when not in) */
    const char  *variation_key;    /* meta[].key or the index as text */
    size_t       variation_key_len;
    const char  *value;            /* the variation's JSON value */
    size_t       value_len;
    const char  *layout;           /* the value's "layout" member, if any */
    size_t       layout_len;
    int          hash_used;
    double       hash;             /* valid when hash_computed */
    int          hash_computed;
    const char  *seed;             /* seed used (seed or key) */
    size_t       seed_len;
    const char  *hash_attribute;   /* attribute name used */
    size_t       hash_attribute_len;
    sf_reason    reason;
    char         index_text[12];   /* backing store for variation_key */
} sf_assignment;

/* Evaluates one compiled record; strings in out point into rec. */
int sf_experiment_evaluate(const void *rec, size_t len,
    const sf_request *req, sf_assignment *out);


/* ---- targeting conditions (GrowthBook) --------------------------------- */

/* Compiles a condition object into out; saved groups are resolved at
 * evaluation. */
int sf_condition_compile(const sf_value *cond, sf_buf *out, sf_error *err);
/* 1 when the condition holds for attributes, 0 when not.  saved_groups is
 * an object of arrays, or NULL. */
int sf_condition_evaluate(const void *compiled, size_t len,
    const sf_value *attributes, const sf_value *saved_groups);

/* -- added with the targeting feature (sf_condition*.c) -- */

/*
 * JavaScript regular expressions ($regex, $regexi) on POSIX regex: 1 when
 * pattern (JavaScript syntax; icase: the i flag) matches subject, 0 when
 * not or when the pattern is invalid or uses what POSIX cannot express
 * (lookaround).  Compiled patterns are cached per thread.
 */
int sf_js_regex_test(const char *pattern, size_t len, int icase,
    const char *subject, size_t subject_len);
/* The POSIX ERE for a JavaScript pattern (appended, NUL-terminated), or
 * SF_ERR_INVALID saying why not. */
int sf_js_regex_translate(const char *pattern, size_t len, int icase,
    sf_buf *out, sf_error *err);
/* Simple Unicode case mappings of one code point (ASCII only when no UTF-8
 * locale is installed). */
uint32_t sf_js_case_lower(uint32_t cp);
uint32_t sf_js_case_upper(uint32_t cp);


/* ---- binary values ------------------------------------------------------- */

/*
 * Values stored in records (profile attributes) are kept in a compact
 * binary form and turned back into sf_value views at request time without
 * parsing JSON; strings stay in the record (zero-copy).
 */
typedef void *(*sf_alloc_fn)(void *ctx, size_t size);

int sf_value_encode(sf_buf *b, const sf_value *v);
/* *used is set to the bytes the value took. */
int sf_value_decode(const void *data, size_t len, sf_alloc_fn alloc,
    void *alloc_ctx, sf_value *out, size_t *used);


/* ---- profile rules: RFM, segments, lifecycle, tiers, points ------------- */

#define SF_MAX_SEGMENTS       32
#define SF_MAX_TIERS          8
#define SF_MAX_POINT_DAYS     64
#define SF_NAME_MAX           32
#define SF_BENEFITS_MAX       256

typedef struct {
    char      name[SF_NAME_MAX];
    uint8_t   r_min, r_max, f_min, f_max, m_min, m_max;
} sf_segment_rule;

typedef struct {
    char      name[SF_NAME_MAX];
    double    min_spend;            /* trailing-365-day spend */
    char      benefits[SF_BENEFITS_MAX];   /* compact JSON object */
} sf_tier_rule;

typedef struct {
    int32_t   day;                  /* days since 1970-01-01, or -1 */
    int32_t   weekday;              /* 0 = Sunday .. 6, or -1 */
    double    multiplier;
} sf_points_day;

/*
 * All rules in one fixed-size block: stored compiled, copied into a
 * worker's memory when they change, read without locks.
 */
typedef struct {
    uint32_t         magic;
    uint32_t         version;
    /* RFM cut-points: 4 ascending thresholds each; score 1..5 */
    double           recency_days[4];     /* <= [0] days -> R 5 */
    double           frequency[4];        /* > [3] orders -> F 5 */
    double           monetary[4];         /* > [3] -> M 5 */
    int32_t          rfm_computed_at;     /* days since epoch, 0 = preset */
    uint32_t         nsegments;
    sf_segment_rule  segments[SF_MAX_SEGMENTS];
    /* lifecycle */
    double           new_days;            /* first order within N days */
    double           at_risk_days;        /* no order for X days */
    double           lost_days;           /* no order for Y days */
    uint32_t         ntiers;
    sf_tier_rule     tiers[SF_MAX_TIERS];
    double           points_per_unit;
    uint32_t         npoint_days;
    sf_points_day    point_days[SF_MAX_POINT_DAYS];
} sf_rules;

void sf_rules_default(sf_rules *rules);
/*
 * Applies a JSON object with any of the members "rfm", "segments",
 * "lifecycle", "tiers", "points" over rules (members absent stay).
 */
int sf_rules_apply_json(sf_rules *rules, const sf_value *v, sf_error *err);
int sf_rules_to_json(const sf_rules *rules, sf_buf *out);
/* Points multiplier for a purchase at time t (local to the shop: UTC). */
double sf_rules_points_multiplier(const sf_rules *rules, int64_t t);


/* ---- profiles -------------------------------------------------------------- */

#define SF_MAX_CATEGORIES     16
#define SF_SPEND_BUCKETS      13     /* 30-day buckets: trailing 365 days */
#define SF_SPEND_BUCKET_DAYS  30

typedef struct {
    const char  *name;
    size_t       name_len;
    uint32_t     count;
} sf_category;

/* A decoded profile; strings point into the record. */
typedef struct {
    int           found;            /* 0: a visitor without a profile */
    int64_t       first_seen;
    int64_t       first_order;      /* 0 = never */
    int64_t       last_order;
    uint32_t      orders;
    uint32_t      returns;
    double        monetary;         /* lifetime spend, net of returns */
    double        points;
    int32_t       spend_epoch;      /* bucket index of spend[0] */
    double        spend[SF_SPEND_BUCKETS];   /* ring, by bucket index */
    int           has_tz;
    int32_t       tz_offset_min;    /* minutes east of UTC */
    int           has_quiet;
    uint16_t      quiet_start;      /* minutes after local midnight */
    uint16_t      quiet_end;
    const char   *opt_out;          /* comma-separated list, e.g. "promo,sms" */
    size_t        opt_out_len;
    size_t        ncategories;
    sf_category   categories[SF_MAX_CATEGORIES];   /* most bought first */
    const void   *attributes;       /* binary value (sf_value_decode) */
    size_t        attributes_len;
} sf_profile;

/* What is computed from a profile, the rules and now. */
typedef struct {
    int           r, f, m;          /* 1..5, 0 when never ordered */
    char          rfm[4];           /* "545", "000" */
    const char   *segment;          /* rules' name or "others" */
    const char   *lifecycle;        /* new, active, at_risk, lost */
    const char   *tier;
    const char   *tier_benefits;    /* compact JSON object */
    double        spend_365;
    double        days_since_last_order;   /* -1 when never */
} sf_derived;

void sf_profile_init(sf_profile *p);     /* a visitor without a profile */
/* The members a profile object may have (NULL-terminated). */
extern const char *const  sf_profile_members[];
/* Builds a profile record from an import object {"id": ..., ...}. */
int sf_profile_compile(const sf_value *obj, int64_t now, sf_buf *out,
    const char **id, size_t *id_len, sf_error *err);
int sf_profile_decode(const void *rec, size_t len, sf_profile *p);
/* Encodes p; p->attributes holds the binary attributes (may be empty). */
int sf_profile_encode(const sf_profile *p, sf_buf *out);
/* Adds a purchase or a return to the aggregates (no idempotency here). */
void sf_profile_add_purchase(sf_profile *p, double amount, int64_t t,
    const sf_value *categories, double points);
void sf_profile_add_return(sf_profile *p, double amount, int64_t order_time,
    double points);
int sf_profile_to_json(const char *id, size_t id_len, const sf_profile *p,
    sf_buf *out);
double sf_profile_spend_365(const sf_profile *p, int64_t now);
void sf_profile_derive(const sf_profile *p, const sf_rules *rules,
    int64_t now, sf_derived *d);
/*
 * The attributes targeting conditions see: the computed values (segment,
 * rfm, lifecycle, tier, points, orders, ...), then the request's own
 * attributes, then the profile's attributes for names not taken.  The
 * object points into the profile's record, the rules and memory from
 * alloc, never into *p or *d: they need not outlive the call.
 */
int sf_profile_attributes(const sf_profile *p, const sf_derived *d,
    const sf_value *request_attributes, sf_alloc_fn alloc, void *alloc_ctx,
    sf_value *out);


/* ---- events ------------------------------------------------------------------ */

typedef enum {
    SF_EVENT_PURCHASE = 1,
    SF_EVENT_RETURN,
    SF_EVENT_POINTS               /* a points adjustment, e.g. redemption */
} sf_event_type;

typedef struct {
    sf_event_type   type;
    const char     *user;
    size_t          user_len;
    const char     *order_id;
    size_t          order_id_len;
    double          amount;       /* purchase/return amount; points delta */
    int64_t         time;         /* unix seconds */
    const sf_value *categories;   /* array of strings, or NULL */
} sf_event;

typedef struct {
    int       duplicate;          /* already applied: nothing changed */
    double    points_earned;
} sf_event_result;

/* Reads {"type": "purchase", "user": ..., "order_id": ..., ...}. */
int sf_event_from_json(const sf_value *v, int64_t now, sf_event *ev,
    sf_error *err);

/*
 * An applied purchase or points event, kept under (user, order id) so that
 * a repeat changes nothing and a return finds its purchase.  Exported and
 * imported as
 *   {"user":"u1","order_id":"o-9","type":"purchase",
 *    "time":"2026-11-11T20:00:00Z","amount":120.5,"returned":20,
 *    "points":120}
 * Writing one changes no profile: the profile's aggregates already count
 * it.
 */
typedef struct {
    sf_event_type   type;         /* purchase or points */
    int64_t         time;
    double          amount;
    double          returned;     /* > 0: returned (a purchase) */
    double          points;       /* earned or adjusted */
} sf_order_info;

typedef struct {
    const char     *user;
    size_t          user_len;
    const char     *order_id;
    size_t          order_id_len;
    sf_order_info   info;
} sf_order_record;

int sf_order_from_json(const sf_value *v, sf_order_record *o, sf_error *err);
int sf_order_to_json(const sf_order_record *o, sf_buf *out);


/* ---- experiment results ------------------------------------------------- */

#define SF_STATS_MIN_USERS  1000     /* per arm, before results are shown */
#define SF_SRM_ALARM_P      0.001

/* What is counted per experiment arm (variation). */
typedef struct {
    uint64_t  users;           /* unique users exposed */
    uint64_t  converters;      /* of them, users with an order after */
    uint64_t  orders;
    double    revenue;
    uint64_t  returns;         /* orders returned */
    double    returned;        /* amount returned */
} sf_arm_counts;

typedef struct {
    sf_arm_counts  c;
    double         conversion_rate;    /* converters / users */
    double         average_order_value;
    double         revenue_per_user;
    double         return_rate;        /* returns / orders */
    /* against the control (arm 0); zero for the control itself */
    double         lift;               /* relative, of the conversion rate */
    double         z;
    double         p_value;            /* two-sided, two-proportion z-test */
    double         ci_low, ci_high;    /* 95% CI of the rate difference */
    int            significant;        /* p < 0.05 with enough data */
} sf_arm_stats;

typedef struct {
    size_t    arms;
    double    srm_chi2;
    double    srm_p;
    int       srm_alarm;               /* p < 0.001 */
    int       enough_data;             /* every arm >= 1000 users */
    uint64_t  users;
} sf_experiment_stats;

/* weights: the configured split (NULL: equal). */
void sf_stats_compute(const sf_arm_counts *arms, size_t n,
    const double *weights, sf_arm_stats *out, sf_experiment_stats *summary);
double sf_stats_normal_cdf(double z);
/* Upper tail of the chi-square distribution with dof degrees of freedom. */
double sf_stats_chi2_sf(double x, int dof);

/* An exposure: a user saw a variation. */
typedef struct {
    const char  *experiment;
    size_t       experiment_len;
    uint32_t     variation;
    const char  *user;
    size_t       user_len;
    int64_t      time;
} sf_exposure;

/* -- experiment reports (sf_experiment_info.c): what the stats endpoint,
 *    the status page, the metrics and storefrontctl stats show -- */

/* An experiment's set-up as stored; strings NUL-terminated in the arena. */
typedef struct {
    const char    *key;
    const char    *name;               /* "" when none */
    size_t         nvariations;
    const char   **variation_keys;     /* meta[].key, else the index */
    const char   **variation_names;    /* meta[].name, else "" */
    double        *weights;            /* the split in force (GrowthBook's
                                          equal weights when not given) */
    int            weights_given;
    double         coverage;           /* 1 when not given */
    int            active;
    unsigned       bucket_version;     /* re-randomisations so far */
    const char    *seed;               /* seed in force (key when none) */
    const char    *hash_attribute;     /* "id" when not given */
} sf_experiment_info;

int sf_experiment_info_get(const void *rec, size_t len, sf_arena *a,
    sf_experiment_info *info, sf_error *err);

typedef struct sf_snapshot  sf_snapshot;     /* see the LMDB environment */

/* One experiment: set-up, counts and statistics (arrays of nvariations). */
typedef struct {
    sf_experiment_info    info;
    sf_arm_counts        *counts;
    sf_arm_stats         *arms;
    double               *rate_ci_low;     /* 95% CI of each arm's rate */
    double               *rate_ci_high;
    sf_experiment_stats   summary;
    const char           *status;  /* "not enough data", "sample ratio
                                      mismatch", "significant",
                                      "not significant" */
} sf_experiment_report;

/*
 * Every experiment of the snapshot (or only key, when key_len > 0) with
 * its counts and statistics, allocated in the arena: the result stays
 * valid after the snapshot is reset.  SF_ERR_NOT_FOUND for a key that is
 * not there.
 */
int sf_report_collect(sf_snapshot *s, const char *key, size_t key_len,
    sf_arena *a, sf_experiment_report **out, size_t *n, sf_error *err);
/* {"generated_at":..,"experiments":[...]} (see sf_experiment_info.c). */
int sf_report_json(const sf_experiment_report *r, size_t n, int64_t now,
    sf_buf *out);

/* -- end of experiment reports -- */


/* ---- push decisions ------------------------------------------------------ */

#define SF_PUSH_MAX_CATEGORIES  16
#define SF_PUSH_MAX_CAPS        4
#define SF_PUSH_MAX_RING        64     /* the largest cap's max */

typedef enum {
    SF_PUSH_ALLOW = 0,
    SF_PUSH_CAP,
    SF_PUSH_QUIET_HOURS,
    SF_PUSH_OPTED_OUT,
    SF_PUSH_THROTTLED,
    SF_PUSH_DUPLICATE,
    SF_PUSH__COUNT
} sf_push_reason;

const char *sf_push_reason_name(sf_push_reason r);   /* "allow", "cap"... */

typedef struct {
    uint32_t  max;
    int64_t   window_ms;
} sf_push_cap;

typedef struct {
    char         name[SF_NAME_MAX];
    uint32_t     ncaps;
    sf_push_cap  caps[SF_PUSH_MAX_CAPS];   /* per user, per channel */
    uint8_t      exempt;                   /* no caps, no throttle */
    uint8_t      urgent;                   /* may go in quiet hours */
} sf_push_category;

typedef struct {
    uint32_t          ncategories;
    sf_push_category  categories[SF_PUSH_MAX_CATEGORIES];
    uint8_t           has_quiet;
    uint16_t          quiet_start;          /* minutes after midnight */
    uint16_t          quiet_end;
    int32_t           default_tz_min;       /* for users without one */
    double            throttle_rate;        /* messages per second, 0: off */
    double            throttle_burst;       /* messages beyond the rate */
} sf_push_policy;

/* promo 2 per 7 days, reminder 1 per day, transactional exempt and
 * urgent, quiet hours 22:00-08:00 UTC, no throttle. */
void sf_push_policy_default(sf_push_policy *p);
/* "2/7d", "1/day", "10/1h": max per window (units s, m, h, d, w). */
int sf_push_parse_cap(const char *s, size_t len, sf_push_cap *cap);
/* Adds a category or replaces its caps; ncaps 0 keeps the caps. */
int sf_push_policy_set(sf_push_policy *p, const char *category,
    size_t len, const sf_push_cap *caps, uint32_t ncaps, int exempt,
    int urgent, sf_error *err);
/* Overlays {"categories":{...},"quiet_hours":..,"default_tz_offset":..,
 * "throttle":{"rate":..,"burst":..}} on p. */
int sf_push_policy_apply_json(sf_push_policy *p, const sf_value *v,
    sf_error *err);
int sf_push_policy_to_json(const sf_push_policy *p, sf_buf *out);

typedef struct {
    const char  *user;
    size_t       user_len;
    const char  *category;
    size_t       category_len;
    const char  *channel;              /* "push", "sms", ... */
    size_t       channel_len;
    const char  *campaign;             /* optional */
    size_t       campaign_len;
    int64_t      now_ms;
    int64_t      log_keep_ms;          /* 0: the log keeps everything */
    int          dry_run;              /* decide, record nothing */
} sf_push_request;

typedef struct {
    int             allow;
    sf_push_reason  reason;
    int64_t         retry_at_ms;       /* when it could go; 0 when allowed */
    uint32_t        limit;             /* the tightest cap, 0 when none */
    uint32_t        remaining;
    int64_t         reset_ms;          /* when a unit of it frees */
    int             quiet;             /* in the user's quiet hours */
    int             local_minute;      /* user's local time of day */
} sf_push_decision;

/* Reads a push request from JSON {"user","category","channel",...}. */
int sf_push_request_from_json(const sf_value *v, int64_t now_ms,
    sf_push_request *req, sf_error *err);


/* ---- page layouts ---------------------------------------------------------- */

/*
 * Page layouts are imported as one object:
 *   "modules":  {"hero": {"fragment": "/fragments/hero", "fallback": "",
 *                         "vary": ["segment"]},
 *                "ad-top": {"fragment": "/fragments/ad", "ad_slot": "banner"},
 *                ...}            (a module with "ad_slot" is filled by ads)
 *   "layouts":  {"home-default": [{"module": "hero", "params": {...}},
 *                                 {"layout": "common-footer"},
 *                                 {"derive": "cross_sell", "module":
 *                                  "recommend", "max": 2}], ...}
 *   "pages":    {"home": {"default": "home-default", "rules": [
 *                  {"name": "vip", "when": {"tier": "gold"},
 *                   "layout": "home-vip"},
 *                  {"name": "double-11", "from": "2026-11-11",
 *                   "to": "2026-11-12", "layout": "home-sale"},
 *                  {"name": "layout-test", "experiment": "home-layout"}]}}
 *   "cross_sell": [{"bought": "running_shoes", "recommend": ["socks"]}]
 * and compiled into one record: includes are expanded, conditions
 * compiled, references and loops checked.
 */

#define SF_PAGE_MAX_MODULES  32

#define SF_VARY_SEGMENT      0x1
#define SF_VARY_TIER         0x2
#define SF_VARY_LIFECYCLE    0x4
#define SF_VARY_VARIANTS     0x8

typedef struct {
    const char  *module;          /* the module's name */
    size_t       module_len;
    const char  *fragment;        /* URI of its fragment location */
    size_t       fragment_len;
    const char  *fallback;        /* served when the fragment fails */
    size_t       fallback_len;
    const char  *params;          /* "a=1&b=x", URL-encoded */
    size_t       params_len;
    unsigned     vary;            /* SF_VARY_*: what the fragment varies by */
    const char  *ad_slot;         /* an ad slot of this type, or NULL */
    size_t       ad_slot_len;
} sf_page_module;

typedef enum {
    SF_PAGE_RULE_MATCHED = 0,
    SF_PAGE_RULE_CONDITION,       /* condition false */
    SF_PAGE_RULE_WINDOW,          /* outside its time window */
    SF_PAGE_RULE_NOT_IN,          /* not in the experiment */
    SF_PAGE_RULE_NO_LAYOUT,       /* the variation names no known layout */
    SF_PAGE_RULE_SKIPPED          /* an earlier rule matched */
} sf_page_rule_outcome;

typedef struct {
    const char            *name;
    size_t                 name_len;
    sf_page_rule_outcome   outcome;
} sf_page_trace;

typedef struct {
    const char      *layout;
    size_t           layout_len;
    const char      *rule;        /* the rule that chose, or "default" */
    size_t           rule_len;
    size_t           nmodules;
    sf_page_module   modules[SF_PAGE_MAX_MODULES];
    size_t           ntrace;
    sf_page_trace    trace[SF_PAGE_MAX_MODULES];
} sf_page_decision;

const char *sf_page_outcome_name(sf_page_rule_outcome o);

int sf_pages_compile(const sf_value *doc, sf_buf *out, sf_error *err);
/* The JSON the pages were imported from. */
int sf_pages_to_json(const void *blob, size_t len, sf_buf *out);
int sf_pages_has_layout(const void *blob, size_t len, const char *name,
    size_t name_len);
/*
 * Decides the layout of a page: the first rule that matches (condition
 * over the attributes plus "experiments": {key: variation key}, time
 * window, or the experiment's variation naming a layout), else the
 * page's default.  SF_ERR_NOT_FOUND for an unknown page type.  Derived
 * parameters are allocated with alloc.
 */
int sf_page_decide(const void *blob, size_t len, const char *page,
    size_t page_len, const sf_value *attributes,
    const sf_assignment *assignments, size_t nassignments, int64_t now,
    sf_alloc_fn alloc, void *alloc_ctx, sf_page_decision *d);


/* ---- ads ------------------------------------------------------------------ */

/*
 * Ad campaigns are imported as {"campaigns": [...], "ad_pages": {...}}:
 *   {"id": "nike-run", "advertiser": "nike", "priority": 10, "weight": 3,
 *    "creatives": [{"id": "cr1", "url": "https://...", "skippable": true,
 *                   "format": "banner"}],
 *    "pages": ["home"], "slots": ["banner", "infeed"],
 *    "condition": {...}, "start": "2026-11-01", "end": "2026-12-01",
 *    "daypart": {"days": ["mon", "fri"], "hours": [9, 21]},
 *    "caps": ["3/1d", "10/1w", "20/lifetime"], "cooldown": "10m",
 *    "allow_same_advertiser": false}
 *   "ad_pages": {"home": {"max_slots": 2}, "cart": {"max_slots": 0}}
 * Caps are rolling windows (units minute, hour, day, week, month = 30
 * days, lifetime), several per campaign, as in Google Ad Manager.
 */

#define SF_ADS_MAX_SLOTS       8
#define SF_ADS_MAX_CAPS        4
#define SF_ADS_MAX_RING        64     /* the largest windowed cap */
#define SF_ADS_DEFAULT_SLOTS   2      /* per page, from the guides */

typedef struct {
    const char  *slot;            /* slot type asked for */
    size_t       slot_len;
    const char  *campaign;
    size_t       campaign_len;
    const char  *advertiser;
    size_t       advertiser_len;
    const char  *creative;
    size_t       creative_len;
    const char  *url;             /* landing URL (from the data only) */
    size_t       url_len;
    const char  *format;
    size_t       format_len;
    int          skippable;
    uint32_t     campaign_index;
} sf_ad_fill;

typedef enum {
    SF_AD_SKIP_PAGE = 0,          /* not for this page or slot type */
    SF_AD_SKIP_FLIGHT,            /* before start or after end */
    SF_AD_SKIP_DAYPART,
    SF_AD_SKIP_TARGETING,
    SF_AD_SKIP_CAP,
    SF_AD_SKIP_COOLDOWN,
    SF_AD_SKIP_ON_PAGE,           /* campaign or advertiser already shown */
    SF_AD_SKIP__COUNT
} sf_ad_skip;

typedef struct {
    size_t       nfills;
    sf_ad_fill   fills[SF_ADS_MAX_SLOTS];
    uint32_t     max_slots;       /* the page's limit in force */
    uint32_t     skipped[SF_AD_SKIP__COUNT];   /* campaigns, by reason */
} sf_ad_decision;

const char *sf_ad_skip_name(sf_ad_skip s);

int sf_ads_compile(const sf_value *doc, sf_buf *out, sf_error *err);
int sf_ads_to_json(const void *blob, size_t len, sf_buf *out);

/*
 * Fills the slots of a page: eligible campaigns by priority, then by
 * weight (a weighted draw from seed), never more than the page's limit
 * (the data's, else default_max_slots), never the same campaign twice,
 * nor the same advertiser unless the campaign allows it.  state is the
 * user's ad state record (sf_txn_ad_state), may be NULL.  tz_min is the
 * user's offset for dayparting.
 */
int sf_ads_decide(const void *blob, size_t len, const char *page,
    size_t page_len, const sf_ad_fill *slots_asked, size_t nslots,
    uint32_t default_max_slots, const sf_value *attributes,
    const void *state, size_t state_len, int64_t now_ms, int32_t tz_min,
    uint64_t seed, sf_ad_decision *d);
/* The user's state after the impressions of d (for sf_txn_put_ad_state). */
int sf_ads_state_record(const void *blob, size_t len, const void *state,
    size_t state_len, const sf_ad_decision *d, int64_t now_ms, sf_buf *out);
/* -- added with the nginx module: the same in time proportional to the
 * state's size (the per-request path); entries of campaigns not shown are
 * copied as they are.  d must come from sf_ads_decide on the same blob. */
int sf_ads_state_add(const void *blob, size_t len, const void *state,
    size_t state_len, const sf_ad_decision *d, int64_t now_ms, sf_buf *out);
/* Looks a creative up for a click: its landing URL and advertiser. */
int sf_ads_find_creative(const void *blob, size_t len, const char *campaign,
    size_t campaign_len, const char *creative, size_t creative_len,
    sf_ad_fill *out);

/* HMAC-SHA256 (click links are signed with it). */
void sf_hmac_sha256(const void *key, size_t key_len, const void *msg,
    size_t msg_len, unsigned char out[32]);
/* The signature of a click link, as 22 URL-safe base64 characters. */
void sf_ad_click_signature(const void *key, size_t key_len,
    const char *campaign, size_t campaign_len, const char *creative,
    size_t creative_len, char out[23]);

typedef struct {
    uint64_t  impressions;
    uint64_t  clicks;
} sf_ad_counts;


/* ---- the LMDB environment ---------------------------------------------- */

typedef struct sf_db        sf_db;
typedef struct sf_snapshot  sf_snapshot;
typedef struct sf_txn       sf_txn;

#define SF_DB_DEFAULT_MAP_SIZE  ((size_t) 1 << 30)
#define SF_DB_READONLY   0x1     /* never write (tools that only read) */
#define SF_DB_CREATE     0x2     /* create the directory if missing */

/*
 * Opens the environment at the directory path.  map_size 0 keeps the
 * file's size or the default.  The environment is opened with MDB_NOTLS so
 * that one read transaction can be kept per worker and renewed.
 */
int sf_db_open(sf_db **db, const char *path, size_t map_size,
    unsigned flags, sf_error *err);
void sf_db_close(sf_db *db);
/* Clears reader slots left by dead processes; *cleared may be NULL. */
int sf_db_reader_check(sf_db *db, int *cleared);

typedef struct {
    size_t    map_size;
    size_t    used_bytes;        /* last page used * page size */
    unsigned  max_readers;
    unsigned  readers_in_use;
    size_t    experiments;
    size_t    profiles;
} sf_db_info;

int sf_db_info_get(sf_db *db, sf_db_info *info, sf_error *err);

/* A reusable read snapshot: renew before use, reset after. */
int sf_snapshot_create(sf_db *db, sf_snapshot **s, sf_error *err);
int sf_snapshot_renew(sf_snapshot *s, sf_error *err);
void sf_snapshot_reset(sf_snapshot *s);
void sf_snapshot_free(sf_snapshot *s);

/*
 * The data generation of the snapshot: changes with every commit that
 * changes what a decision reads (experiments, profiles, orders, rules,
 * pages, campaigns), not with state written on the request path
 * (exposures, push and ad state).  0 for a database never written so.
 * sf_db_last_txn() is the id of the environment's last commit, read
 * without a transaction: while it is unchanged, so is the generation.
 * sf_db_commits() counts the commits made through this handle.
 */
int sf_snapshot_generation(sf_snapshot *s, uint64_t *gen, sf_error *err);
/* 1 in *reads when an experiment of the snapshot may read the attribute. */
int sf_snapshot_reads(sf_snapshot *s, const char *name, size_t name_len,
    int *reads, sf_error *err);
uint64_t sf_db_last_txn(sf_db *db);
uint64_t sf_db_commits(sf_db *db);

/*
 * Evaluates every experiment in the snapshot in key order.  out has room
 * for max results; *n is set to the number written.  SF_ERR_TOO_MANY when
 * there are more experiments than max (the first max are evaluated).
 */
int sf_evaluate_all(sf_snapshot *s, const sf_request *req,
    sf_assignment *out, size_t max, size_t *n, sf_error *err);

/* Iterates compiled experiment records in key order. */
typedef int (*sf_record_cb)(void *ctx, const void *rec, size_t len);
int sf_snapshot_each_experiment(sf_snapshot *s, sf_record_cb cb, void *ctx,
    sf_error *err);
int sf_snapshot_get_experiment(sf_snapshot *s, const char *key,
    size_t key_len, const void **rec, size_t *len, sf_error *err);

/* The visitor's profile; p->found is 0 (and defaults set) when none. */
int sf_snapshot_get_profile(sf_snapshot *s, const char *id, size_t id_len,
    sf_profile *p, sf_error *err);
/* The rules in force, cached in the snapshot until they change. */
int sf_snapshot_rules(sf_snapshot *s, const sf_rules **rules,
    sf_error *err);
typedef int (*sf_profile_cb)(void *ctx, const char *id, size_t id_len,
    const void *rec, size_t len);
int sf_snapshot_each_profile(sf_snapshot *s, sf_profile_cb cb, void *ctx,
    sf_error *err);

/* Grows the map (after SF_ERR_MAP_FULL, with no transaction open). */
int sf_db_set_map_size(sf_db *db, size_t size, sf_error *err);

/* Write transactions: one writer at a time across all processes. */
int sf_txn_begin(sf_db *db, sf_txn **txn, sf_error *err);
int sf_txn_commit(sf_txn *txn, sf_error *err);
void sf_txn_abort(sf_txn *txn);

int sf_txn_put_experiment(sf_txn *txn, const void *rec, size_t len,
    sf_error *err);
int sf_txn_delete_experiment(sf_txn *txn, const char *key, size_t key_len,
    sf_error *err);
/* sf_experiment_update on the stored experiment, in the transaction. */
int sf_txn_update_experiment(sf_txn *txn, const char *key, size_t key_len,
    const sf_value *changes, sf_buf *summary, sf_error *err);
/* Page layouts (sf_pages_compile); absent: *blob NULL. */
int sf_txn_put_pages(sf_txn *txn, const void *blob, size_t len,
    sf_error *err);
int sf_snapshot_pages(sf_snapshot *s, const void **blob, size_t *len,
    sf_error *err);
/* Ads: the campaigns, users' impression state and counters. */
int sf_txn_put_ads(sf_txn *txn, const void *blob, size_t len, sf_error *err);
int sf_snapshot_ads(sf_snapshot *s, const void **blob, size_t *len,
    sf_error *err);
int sf_txn_ad_state(sf_txn *txn, const char *user, size_t user_len,
    const void **state, size_t *len, sf_error *err);
int sf_txn_put_ad_state(sf_txn *txn, const char *user, size_t user_len,
    const void *state, size_t len, sf_error *err);
int sf_snapshot_ad_state(sf_snapshot *s, const char *user, size_t user_len,
    const void **state, size_t *len, sf_error *err);
/* Adds impressions and clicks to the counters of campaign/creative and
 * of the advertiser ("a:" key prefixes "c:", "cr:", "p:"). */
int sf_txn_count_ad(sf_txn *txn, const sf_ad_fill *fill, uint64_t impressions,
    uint64_t clicks, sf_error *err);
typedef int (*sf_ad_counts_cb)(void *ctx, const char *kind, const char *key,
    size_t key_len, const sf_ad_counts *c);
int sf_db_ad_counts(sf_db *db, sf_ad_counts_cb cb, void *ctx, sf_error *err);
/* Deletes every experiment (import --replace). */
int sf_txn_clear_experiments(sf_txn *txn, sf_error *err);

int sf_txn_put_profile(sf_txn *txn, const char *id, size_t id_len,
    const void *rec, size_t len, sf_error *err);
int sf_txn_get_profile(sf_txn *txn, const char *id, size_t id_len,
    sf_profile *p, sf_error *err);
int sf_txn_get_rules(sf_txn *txn, sf_rules *rules, sf_error *err);
int sf_txn_put_rules(sf_txn *txn, const sf_rules *rules, sf_error *err);
/* Applies an event idempotently (by order id) in the transaction. */
int sf_txn_apply_event(sf_txn *txn, const sf_event *ev, sf_event_result *res,
    sf_error *err);
/* The applied events as they are kept (export), in (user, id) order. */
typedef int (*sf_order_cb)(void *ctx, const sf_order_record *o);
int sf_snapshot_each_order(sf_snapshot *s, sf_order_cb cb, void *ctx,
    sf_error *err);
/* Keeps an applied event as it is given (import): no profile changes. */
int sf_txn_put_order(sf_txn *txn, const sf_order_record *o, sf_error *err);
/* Stores a named checkpoint (import resumption), or reads it. */
int sf_txn_put_meta(sf_txn *txn, const char *key, const void *val,
    size_t len, sf_error *err);
int sf_txn_get_meta(sf_txn *txn, const char *key, sf_buf *val,
    sf_error *err);

/*
 * Records an exposure once per (user, experiment): *is_new tells whether
 * it counted.  Purchases and returns applied later are attributed to the
 * variations the user was exposed to before them.
 */
int sf_txn_record_exposure(sf_txn *txn, const sf_exposure *e, int *is_new,
    sf_error *err);
/* The counts of every arm of an experiment (arms up to max). */
int sf_snapshot_arm_counts(sf_snapshot *s, const char *key, size_t key_len,
    sf_arm_counts *arms, size_t max, size_t *n, sf_error *err);
int sf_txn_arm_counts(sf_txn *txn, const char *key, size_t key_len,
    sf_arm_counts *arms, size_t max, size_t *n, sf_error *err);

/*
 * Decides a push for one user, atomically: an allowed decision records
 * the send (and an audit entry) in the same transaction, so two workers
 * cannot both spend the last unit of a cap.  SF_ERR_INVALID for an unknown
 * category.  policy is the nginx defaults; a policy stored in the
 * database ("push" in an import file) replaces them.
 */
int sf_txn_push_decide(sf_txn *txn, const sf_push_policy *policy,
    const sf_push_request *req, sf_push_decision *d, sf_error *err);
int sf_txn_get_push_policy(sf_txn *txn, sf_push_policy *p, int *found,
    sf_error *err);
int sf_txn_put_push_policy(sf_txn *txn, const sf_push_policy *p,
    sf_error *err);
/* Decision counters by reason. */
int sf_db_push_counters(sf_db *db, uint64_t counts[SF_PUSH__COUNT],
    sf_error *err);
/* Decisions that left the log (storefront_push_log_keep), by reason. */
int sf_db_push_expired(sf_db *db, uint64_t counts[SF_PUSH__COUNT],
    sf_error *err);
/* The audit log of decisions, in order. */
typedef int (*sf_push_log_cb)(void *ctx, uint64_t seq, int64_t time_ms,
    const char *user, size_t user_len, const char *category,
    size_t category_len, const char *channel, size_t channel_len,
    sf_push_reason reason);
int sf_db_push_log(sf_db *db, sf_push_log_cb cb, void *ctx, sf_error *err);
/* Durable commits (fsync) or relaxed ones (survive a crashed process,
 * not a crashed machine). */
int sf_db_set_durable(sf_db *db, int durable, sf_error *err);

/* Computes RFM quintile cut-points over every profile and stores them. */
int sf_rfm_rebuild(sf_db *db, int64_t now, sf_rules *out, size_t *profiles,
    sf_error *err);


#ifdef __cplusplus
}
#endif

#endif /* STOREFRONT_H */
