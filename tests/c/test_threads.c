/* Several threads on one handle, and several handles on one file: every
 * distinct event is stored exactly once, whoever wins the race. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

enum { THREADS = 4, EVENTS = 60 };

/* Every thread submits the same EVENTS distinct events (so each one races
 * THREADS ways), half as JSON and half on the typed path, in an order that
 * differs per thread. */
struct worker {
  IngestHandle *h;   /* shared, or NULL to open `path` itself */
  const char *path;
  int index;
  int accepted, duplicate, errors;
};

IngestStatus open_racer(const char *path, IngestHandle **out) {
  IngestOptions o = {0};
  o.durability = "normal";
  o.busy_timeout_ms = 30000;
  return ingest_open_with_options(path, &o, out);
}

static void *submit_all(void *arg) {
  struct worker *w = arg;
  IngestHandle *h = w->h;
  if (h == NULL) {
    if (open_racer(w->path, &h) != INGEST_OK) {
      w->errors++;
      return NULL;
    }
  }
  for (int k = 0; k < EVENTS; k++) {
    int i = (k * 7 + w->index * 13) % EVENTS; /* 7 is coprime with EVENTS */
    const int64_t ts = 1704067200000 + (int64_t)i * 60000;
    IngestStatus s;
    IngestOutcomeStatus status = INGEST_REJECTED;
    if (i % 2 == 0) {
      IngestOutcome o;
      s = ingest_submit_fields(h, "racer", "laps", (double)i, ts, NULL, &o);
      if (s == INGEST_OK) status = o.status;
    } else {
      char event[160], *out = NULL;
      snprintf(event, sizeof event, "{\"client\": \"racer\", \"metric\": \"LAPS\", \"value\": \"%d\", \"ts\": %lld}",
               i, (long long)ts);
      s = ingest_submit_json(h, event, &out);
      if (s == INGEST_OK) status = contains(out, "\"accepted\"") ? INGEST_ACCEPTED
                                   : contains(out, "\"duplicate\"") ? INGEST_DUPLICATE
                                                                   : INGEST_REJECTED;
      ingest_string_free(out);
    }
    if (s != INGEST_OK || status == INGEST_REJECTED) {
      fprintf(stderr, "  thread %d event %d: %s %s\n", w->index, i, ingest_status_name((int)s), ingest_last_error());
      w->errors++;
    } else if (status == INGEST_ACCEPTED) {
      w->accepted++;
    } else {
      w->duplicate++;
    }
    /* Readers run alongside the writers. */
    if (k % 20 == 0) {
      char *agg = NULL;
      if (ingest_aggregate_json(h, "{\"metric\": \"laps\"}", &agg) != INGEST_OK) w->errors++;
      ingest_string_free(agg);
    }
  }
  if (w->h == NULL) ingest_close(h);
  return NULL;
}

static void race(IngestHandle *shared, const char *path) {
  pthread_t threads[THREADS];
  struct worker workers[THREADS];
  for (int t = 0; t < THREADS; t++) {
    workers[t] = (struct worker){shared, path, t, 0, 0, 0};
    CHECK(pthread_create(&threads[t], NULL, submit_all, &workers[t]) == 0);
  }
  int accepted = 0, duplicate = 0, errors = 0;
  for (int t = 0; t < THREADS; t++) {
    CHECK(pthread_join(threads[t], NULL) == 0);
    accepted += workers[t].accepted;
    duplicate += workers[t].duplicate;
    errors += workers[t].errors;
  }
  CHECK(errors == 0);
  CHECK(accepted == EVENTS);
  CHECK(duplicate == (THREADS - 1) * EVENTS);
}

static void check_distinct_set(IngestHandle *h) {
  char *stats = NULL, *agg = NULL;
  CHECK_OK(ingest_stats_json(h, &stats));
  CHECK(json_number(stats, "stored_events") == EVENTS);
  ingest_string_free(stats);
  /* The amounts are 0..EVENTS-1, each once. */
  CHECK_OK(ingest_aggregate_json(h, "{\"client_id\": \"racer\"}", &agg));
  CHECK(json_number(agg, "count") == EVENTS);
  CHECK(json_number(agg, "sum") == (double)(EVENTS * (EVENTS - 1) / 2));
  CHECK(json_number(agg, "min") == 0 && json_number(agg, "max") == EVENTS - 1);
  ingest_string_free(agg);
}

void test_threads_share_one_handle(void) {
  char path[512];
  scratch_path(path, sizeof path, "threads.db");
  IngestOptions o = {0};
  o.durability = "normal";
  IngestHandle *h = NULL;
  CHECK_OK(ingest_open_with_options(path, &o, &h));
  race(h, NULL);
  check_distinct_set(h);
  ingest_close(h);
}

void test_threads_with_own_handles_share_one_file(void) {
  char path[512];
  scratch_path(path, sizeof path, "handles.db");
  /* Create the file (and its schema) before the race. */
  IngestHandle *h = NULL;
  CHECK_OK(ingest_open(path, NULL, &h));
  race(NULL, path);
  check_distinct_set(h);
  ingest_close(h);
}

enum { PROCESSES = 3 };

void test_processes_share_one_file(void) {
  char path[512];
  scratch_path(path, sizeof path, "processes.db");
  IngestHandle *h = NULL;
  CHECK_OK(ingest_open(path, NULL, &h));
  ingest_close(h); /* a handle never crosses fork(): each child opens its own */
  fflush(NULL);
  pid_t children[PROCESSES];
  for (int p = 0; p < PROCESSES; p++) {
    children[p] = fork();
    CHECK(children[p] >= 0);
    if (children[p] == 0) {
      struct worker w = {NULL, path, p, 0, 0, 0};
      submit_all(&w);
      _exit(w.errors == 0 ? 0 : 1);
    }
  }
  for (int p = 0; p < PROCESSES; p++) {
    int status = -1;
    if (children[p] > 0) CHECK(waitpid(children[p], &status, 0) == children[p]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  h = NULL;
  CHECK_OK(ingest_open(path, NULL, &h));
  check_distinct_set(h);
  ingest_close(h);
}

/* Hostile writers beside honest ones on one handle (issue 15): writers
 * 0-2 send batches of the largest amounts accepted, one out of range and
 * one that is not a number (two of five rejected); writers 3-5 send single
 * events. Every call succeeds with its outcomes, and the totals are the
 * exact sums rounded once. */
enum { EXACT_WRITERS = 6, EXACT_ROUNDS = 30 };

struct exact_writer {
  IngestHandle *h;
  int index;
  int failures;
};

/* The statuses of the outcomes in `json` are exactly `want`, in order. */
static int statuses_are(const char *json, const char *const *want, int n) {
  const char *key = "\"status\":\"";
  const char *at = json;
  for (int i = 0; i < n; i++) {
    at = at ? strstr(at, key) : NULL;
    if (at == NULL) return 0;
    at += strlen(key);
    if (strncmp(at, want[i], strlen(want[i])) != 0 || at[strlen(want[i])] != '"') return 0;
  }
  return at != NULL && strstr(at, key) == NULL;
}

#define EXACT_EVENT(client, amount) \
  "{\"client\": \"" client "\", \"metric\": \"sales\", \"value\": " amount ", \"ts\": %lld}"

static void *exact_write(void *arg) {
  static const char *const hostile[] = {"accepted", "accepted", "rejected", "accepted", "rejected"};
  static const char *const honest[] = {"accepted"};
  struct exact_writer *w = arg;
  for (int r = 0; r < EXACT_ROUNDS; r++) {
    const long long ms = 1714557600000LL + r * 1000LL + w->index; /* 2024-05-01T10:00:00Z on */
    char body[1024], *out = NULL;
    IngestStatus s;
    int ok;
    if (w->index < EXACT_WRITERS / 2) {
      snprintf(body, sizeof body,
               "[" EXACT_EVENT("evil", "1e289") "," EXACT_EVENT("evil", "1e289") "," EXACT_EVENT("evil", "1e308") ","
                   EXACT_EVENT("evil", "-1e289") "," EXACT_EVENT("evil", "\"-inf\"") "]",
               ms, ms + 10, ms + 20, ms + 30, ms);
      s = ingest_submit_batch_json(w->h, body, &out);
      ok = s == INGEST_OK && statuses_are(out, hostile, 5);
    } else {
      snprintf(body, sizeof body, "{\"client\": \"honest%d\", \"metric\": \"sales\", \"value\": 0.1, \"ts\": %lld}",
               w->index, ms);
      s = ingest_submit_json(w->h, body, &out);
      ok = s == INGEST_OK && statuses_are(out, honest, 1);
    }
    if (!ok) {
      fprintf(stderr, "  writer %d round %d: %s %s %s\n", w->index, r, ingest_status_name((int)s),
              s == INGEST_OK ? "" : ingest_last_error(), out ? out : "");
      w->failures++;
    }
    ingest_string_free(out);
  }
  return NULL;
}

void test_hostile_writers_never_fail_honest_ones(void) {
  char path[512];
  scratch_path(path, sizeof path, "exact.db");
  IngestHandle *h = NULL;
  CHECK_OK(open_racer(path, &h));
  if (h == NULL) return;
  pthread_t threads[EXACT_WRITERS];
  struct exact_writer writers[EXACT_WRITERS];
  for (int t = 0; t < EXACT_WRITERS; t++) {
    writers[t] = (struct exact_writer){h, t, 0};
    CHECK(pthread_create(&threads[t], NULL, exact_write, &writers[t]) == 0);
  }
  for (int t = 0; t < EXACT_WRITERS; t++) {
    CHECK(pthread_join(threads[t], NULL) == 0);
    CHECK(writers[t].failures == 0);
  }
  /* One multiplication rounds the exact product once: each client's exact
   * sum, 90 x 1e289 and 30 x 0.1, rounded once. */
  const double evil = (double)(EXACT_WRITERS / 2 * EXACT_ROUNDS) * 1e289;
  const double honest = (double)EXACT_ROUNDS * 0.1;
  double naive = 0;
  for (int r = 0; r < EXACT_ROUNDS; r++) naive += 0.1;
  CHECK(naive != honest); /* adding as it goes would not do */
  char *agg = NULL;
  CHECK_OK(ingest_aggregate_json(h, "{\"group_by\": \"client_id\"}", &agg));
  const char *at = agg ? strstr(agg, "\"client_id\":\"evil\"") : NULL;
  CHECK(at != NULL && json_number(at, "count") == 3 * EXACT_WRITERS / 2 * EXACT_ROUNDS &&
        json_number(at, "sum") == evil);
  for (int t = EXACT_WRITERS / 2; t < EXACT_WRITERS; t++) {
    char key[64];
    snprintf(key, sizeof key, "\"client_id\":\"honest%d\"", t);
    at = agg ? strstr(agg, key) : NULL;
    CHECK(at != NULL && json_number(at, "count") == EXACT_ROUNDS && json_number(at, "sum") == honest);
  }
  if (current_failures) fprintf(stderr, "  totals: %s\n", agg ? agg : "(null)");
  ingest_string_free(agg);
  char *stats = NULL;
  CHECK_OK(ingest_stats_json(h, &stats));
  CHECK(json_number(stats, "stored_rejected") == 2 * EXACT_WRITERS / 2 * EXACT_ROUNDS);
  ingest_string_free(stats);
  ingest_close(h);
}

static void *fail_once(void *arg) {
  (void)arg;
  IngestHandle *h = NULL;
  if (ingest_open(NULL, NULL, &h) != INGEST_NULL_POINTER) return (void *)1;
  /* This thread's own message, whatever the main thread did. */
  return contains(ingest_last_error(), "path") ? NULL : (void *)1;
}

void test_last_error_is_per_thread(void) {
  IngestHandle *h = NULL;
  CHECK_STATUS(ingest_open(":memory:", "{\"nope\": 1}", &h), INGEST_INVALID_RULES);
  pthread_t t;
  void *result = (void *)1;
  CHECK(pthread_create(&t, NULL, fail_once, NULL) == 0);
  CHECK(pthread_join(t, &result) == 0);
  CHECK(result == NULL);
  CHECK(contains(ingest_last_error(), "nope"));
  CHECK(!contains(ingest_last_error(), "path"));
}
