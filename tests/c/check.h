/* A minimal test harness: a test is a function; it passes when every CHECK
 * in it holds. The runner prints "c-tests: N passed, M failed" last. */
#ifndef INGEST_CHECK_H
#define INGEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

extern int current_failures;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      current_failures++;                                                           \
      fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
    }                                                                               \
  } while (0)

/* Check a status, and on a mismatch show what the library said. */
#define CHECK_STATUS(expr, want)                                                    \
  do {                                                                              \
    IngestStatus got_ = (expr);                                                     \
    if (got_ != (want)) {                                                           \
      current_failures++;                                                           \
      fprintf(stderr, "  %s:%d: %s gave %s, want %s (last error: %s)\n", __FILE__, \
              __LINE__, #expr, ingest_status_name((int)got_),                       \
              ingest_status_name((int)(want)), ingest_last_error());               \
    }                                                                               \
  } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, INGEST_OK)

/* True when `haystack` is not NULL and contains `needle`. */
static inline int contains(const char *haystack, const char *needle) {
  return haystack != NULL && strstr(haystack, needle) != NULL;
}

/* The number after "key": in flat JSON, or -1 when absent. Enough for the
 * counters and totals these tests read. */
static inline double json_number(const char *json, const char *key) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  const char *at = json ? strstr(json, pattern) : NULL;
  if (at == NULL) return -1;
  return strtod(at + strlen(pattern), NULL);
}

typedef void (*test_fn)(void);

/* Tests in test_threads.c, run by the runner in test_ingest.c. */
void test_threads_share_one_handle(void);
void test_threads_with_own_handles_share_one_file(void);
void test_processes_share_one_file(void);
void test_hostile_writers_never_fail_honest_ones(void);
/* test_postgres.c */
void test_postgres_by_url(void);
void test_handles_share_one_postgres_database(void);
void test_last_error_is_per_thread(void);
/* Open `path` for a writer that races others: durability normal, and a
 * busy timeout long enough that a slow machine never times out. */
IngestStatus open_racer(const char *path, IngestHandle **out);

/* A fresh directory for file stores, removed with its files by cleanup. */
const char *scratch_dir(void);
/* `name` inside the scratch directory, in a static buffer per call site use. */
void scratch_path(char *buf, size_t len, const char *name);

#endif
