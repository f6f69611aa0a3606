/* ingest from C: open a file store, submit the seed events of
 * tests/scenarios/seed.json, show a duplicate, a rejection and a retry
 * after a failure, and print aggregates.
 *
 *   cc -std=c11 -Iinclude examples/c/seed.c -Ltarget/debug -lingest -o seed
 *   ./seed /tmp/seed.db
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

/* Print the failure and leave: every ingest_* call returns a status, and
 * ingest_last_error() says why it was not INGEST_OK. */
static void die(const char *what, IngestStatus status) {
  fprintf(stderr, "%s: %s: %s\n", what, ingest_status_name((int)status), ingest_last_error());
  exit(1);
}

/* Submit one raw event and show the outcome; leave if it is not `expected`. */
static void submit(IngestHandle *h, const char *event, const char *expected) {
  char *outcome = NULL;
  IngestStatus s = ingest_submit_json(h, event, &outcome);
  if (s != INGEST_OK) die("submit", s);
  printf("submit %s\n    -> %s\n", event, outcome);
  char want[48];
  snprintf(want, sizeof want, "\"status\":\"%s\"", expected);
  int as_expected = strstr(outcome, want) != NULL;
  ingest_string_free(outcome); /* the caller owns every string it is handed */
  if (!as_expected) {
    fprintf(stderr, "expected %s\n", expected);
    exit(1);
  }
}

static void aggregate(IngestHandle *h, const char *query) {
  char *result = NULL;
  IngestStatus s = ingest_aggregate_json(h, query, &result);
  if (s != INGEST_OK) die("aggregate", s);
  printf("aggregate %s\n    -> %s\n", query, result);
  ingest_string_free(result);
}

/* The raw events of seed.json, as unreliable clients send them. */
static const char *const A_SALE =
    "{\"source\": \"clientA\", \"payload\": {\"metric\": \"sales\", \"value\": 1200, \"timestamp\": \"2024-01-01\"}}";
static const char *const B_NO_METRIC = "{\"source\": \"clientB\", \"payload\": {\"amt\": \"1200\", \"ts\": \"2024-01-02\"}}";
static const char *const C_INCOMPLETE = "{\"source\": \"clientC\", \"payload\": {\"metric\": \"views\"}}";
static const char *const D_SALE =
    "{\"source\": \"clientD\", \"payload\": {\"metric\": \"sales\", \"value\": 50, \"timestamp\": \"2024-01-03T10:00:00Z\"}}";

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "seed.db";
  printf("ingest %s, store %s\n", ingest_version(), path);

  IngestHandle *h = NULL;
  IngestStatus s = ingest_open(path, NULL /* built-in rules */, &h);
  if (s != INGEST_OK) die("open", s);

  submit(h, A_SALE, "accepted");
  submit(h, A_SALE, "duplicate");      /* a retry: same id, nothing stored */
  submit(h, B_NO_METRIC, "accepted");  /* metric "unknown" */
  submit(h, C_INCOMPLETE, "rejected"); /* amount and timestamp missing */

  /* The write fails after inserting: rolled back, nothing kept... */
  s = ingest_simulate_failure(h, "after_insert", 1);
  if (s != INGEST_OK) die("simulate_failure", s);
  char *lost = NULL;
  s = ingest_submit_json(h, D_SALE, &lost);
  printf("submit with an injected failure -> %s: %s\n", ingest_status_name((int)s), ingest_last_error());
  ingest_string_free(lost); /* still NULL: nothing is written on failure */
  if (s != INGEST_INJECTED) return 1;
  /* ...so the retry is accepted, and the next one is a duplicate. */
  submit(h, D_SALE, "accepted");
  submit(h, D_SALE, "duplicate");

  /* The typed fast path: no JSON in, an outcome struct out. */
  IngestOutcome o;
  s = ingest_submit_fields(h, "clientA", "sales", 1200.0, 1704067200000 /* 2024-01-01 */, NULL, &o);
  if (s != INGEST_OK) die("submit_fields", s);
  printf("fast path, the first event again -> %s of id %lld\n",
         o.status == INGEST_DUPLICATE ? "duplicate" : "not a duplicate?", (long long)o.id);
  if (o.status != INGEST_DUPLICATE || o.id != 1) return 1;

  aggregate(h, "{\"client_id\": \"clientA\", \"start\": \"2024-01-01\", \"end\": \"2024-01-31\"}");
  aggregate(h, "{\"metric\": \"sales\"}");
  aggregate(h, "{\"group_by\": \"day\"}");

  char *rejected = NULL;
  s = ingest_rejected_json(h, NULL, &rejected);
  if (s != INGEST_OK) die("rejected", s);
  printf("dead letters -> %s\n", rejected);
  ingest_string_free(rejected);

  char *stats = NULL;
  s = ingest_stats_json(h, &stats);
  if (s != INGEST_OK) die("stats", s);
  printf("stats -> %s\n", stats);
  ingest_string_free(stats);

  ingest_close(h);
  return 0;
}
