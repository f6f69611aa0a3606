/* C tests of every function of ingest.h and every error path, run under
 * valgrind by `make test-c`. */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"

int current_failures;

static const char BAD_UTF8[] = {(char)0xff, (char)0xfe, 'x', 0};

static const char *SEED_A =
    "{\"source\": \"clientA\", \"payload\": {\"metric\": \"sales\", \"value\": 1200, "
    "\"timestamp\": \"2024-01-01\"}}";
static const char *SEED_B = "{\"source\": \"clientB\", \"payload\": {\"amt\": \"1200\", \"ts\": \"2024-01-02\"}}";
static const char *SEED_C = "{\"source\": \"clientC\", \"payload\": {\"metric\": \"views\"}}";
static const char *SEED_D =
    "{\"source\": \"clientD\", \"payload\": {\"metric\": \"sales\", \"value\": 50, "
    "\"timestamp\": \"2024-01-03T10:00:00Z\"}}";

/* A value no call may write: out-parameters must stay untouched on failure. */
#define SENTINEL ((char *)(uintptr_t)0x5e5e)

static char scratch[256];

const char *scratch_dir(void) { return scratch; }

void scratch_path(char *buf, size_t len, const char *name) {
  snprintf(buf, len, "%s/%s", scratch, name);
}

static IngestHandle *open_memory(void) {
  IngestHandle *h = NULL;
  CHECK_OK(ingest_open(":memory:", NULL, &h));
  CHECK(h != NULL);
  return h;
}

/* Submit and return the outcome JSON (free with ingest_string_free). */
static char *submit(IngestHandle *h, const char *event) {
  char *out = NULL;
  CHECK_OK(ingest_submit_json(h, event, &out));
  return out;
}

static double stat(IngestHandle *h, const char *key) {
  char *stats = NULL;
  CHECK_OK(ingest_stats_json(h, &stats));
  double v = json_number(stats, key);
  ingest_string_free(stats);
  return v;
}

static void expect_outcome(IngestHandle *h, const char *event, const char *status) {
  char *out = submit(h, event);
  char want[64];
  snprintf(want, sizeof want, "\"status\":\"%s\"", status);
  CHECK(contains(out, want));
  if (!contains(out, want)) fprintf(stderr, "  outcome was %s\n", out ? out : "(null)");
  ingest_string_free(out);
}

/* ---- library-level functions ------------------------------------------ */

static void test_version_and_status_names(void) {
  CHECK(strcmp(ingest_version(), "0.1.0") == 0);
  /* The header's version is the library's. */
  char header[32];
  snprintf(header, sizeof header, "%d.%d.%d", INGEST_VERSION_MAJOR, INGEST_VERSION_MINOR, INGEST_VERSION_PATCH);
  CHECK(strcmp(header, ingest_version()) == 0);
  CHECK(strcmp(ingest_status_name(INGEST_OK), "INGEST_OK") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_INVALID_RULES), "INGEST_INVALID_RULES") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_INVALID_ARGUMENT), "INGEST_INVALID_ARGUMENT") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_INJECTED), "INGEST_INJECTED") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_BUSY), "INGEST_BUSY") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_IO), "INGEST_IO") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_CORRUPT), "INGEST_CORRUPT") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_FULL), "INGEST_FULL") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_READ_ONLY), "INGEST_READ_ONLY") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_STORAGE), "INGEST_STORAGE") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_NULL_POINTER), "INGEST_NULL_POINTER") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_INVALID_UTF8), "INGEST_INVALID_UTF8") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_PANIC), "INGEST_PANIC") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_FORBIDDEN), "INGEST_FORBIDDEN") == 0);
  CHECK(strcmp(ingest_status_name(INGEST_UNAVAILABLE), "INGEST_UNAVAILABLE") == 0);
  CHECK(strcmp(ingest_status_name(15), "INGEST_UNKNOWN") == 0);
  CHECK(strcmp(ingest_status_name(-1), "INGEST_UNKNOWN") == 0);
  /* The values are ABI: pinned here so a reordering fails this test. */
  CHECK(INGEST_OK == 0 && INGEST_INVALID_RULES == 1 && INGEST_INVALID_ARGUMENT == 2);
  CHECK(INGEST_INJECTED == 3 && INGEST_BUSY == 4 && INGEST_IO == 5 && INGEST_CORRUPT == 6);
  CHECK(INGEST_FULL == 7 && INGEST_READ_ONLY == 8 && INGEST_STORAGE == 9);
  CHECK(INGEST_NULL_POINTER == 10 && INGEST_INVALID_UTF8 == 11 && INGEST_PANIC == 12);
  CHECK(INGEST_FORBIDDEN == 13 && INGEST_UNAVAILABLE == 14);
  CHECK(INGEST_ACCEPTED == 0 && INGEST_DUPLICATE == 1 && INGEST_REJECTED == 2 && INGEST_CONFLICT == 3);
}

static void test_null_is_a_noop_for_close_and_free(void) {
  ingest_close(NULL);
  ingest_string_free(NULL);
  CHECK(strcmp(ingest_last_error(), "") == 0);
}

static void test_last_error_is_cleared_by_a_success(void) {
  IngestHandle *h = open_memory();
  CHECK_STATUS(ingest_simulate_failure(h, "nowhere", 1), INGEST_INVALID_ARGUMENT);
  CHECK(contains(ingest_last_error(), "nowhere"));
  CHECK_OK(ingest_clear_failure(h));
  CHECK(strcmp(ingest_last_error(), "") == 0);
  ingest_close(h);
}

/* ---- open / close ------------------------------------------------------ */

static void test_open_memory_and_file(void) {
  IngestHandle *h = open_memory();
  ingest_close(h);

  char path[512];
  scratch_path(path, sizeof path, "open.db");
  IngestHandle *f = NULL;
  CHECK_OK(ingest_open(path, NULL, &f));
  expect_outcome(f, SEED_A, "accepted");
  ingest_close(f);
  /* Reopened, the store still holds the event. */
  f = NULL;
  CHECK_OK(ingest_open(path, NULL, &f));
  expect_outcome(f, SEED_A, "duplicate");
  CHECK(stat(f, "stored_events") == 1);
  ingest_close(f);
}

static void test_open_null_arguments(void) {
  IngestHandle *h = (IngestHandle *)SENTINEL;
  CHECK_STATUS(ingest_open(NULL, NULL, &h), INGEST_NULL_POINTER);
  CHECK(contains(ingest_last_error(), "path"));
  CHECK(h == (IngestHandle *)SENTINEL);
  CHECK_STATUS(ingest_open(":memory:", NULL, NULL), INGEST_NULL_POINTER);
  CHECK(contains(ingest_last_error(), "out"));
  CHECK_STATUS(ingest_open_with_options(NULL, NULL, &h), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_open_with_options(":memory:", NULL, NULL), INGEST_NULL_POINTER);
  CHECK(h == (IngestHandle *)SENTINEL);
}

static void test_open_invalid_utf8(void) {
  IngestHandle *h = (IngestHandle *)SENTINEL;
  CHECK_STATUS(ingest_open(BAD_UTF8, NULL, &h), INGEST_INVALID_UTF8);
  CHECK(contains(ingest_last_error(), "path"));
  CHECK_STATUS(ingest_open(":memory:", BAD_UTF8, &h), INGEST_INVALID_UTF8);
  CHECK(contains(ingest_last_error(), "rules_json"));
  IngestOptions o = {0};
  o.durability = BAD_UTF8;
  CHECK_STATUS(ingest_open_with_options(":memory:", &o, &h), INGEST_INVALID_UTF8);
  CHECK(contains(ingest_last_error(), "durability"));
  o.durability = NULL;
  o.rules_json = BAD_UTF8;
  CHECK_STATUS(ingest_open_with_options(":memory:", &o, &h), INGEST_INVALID_UTF8);
  CHECK(h == (IngestHandle *)SENTINEL);
}

static void test_open_invalid_rules(void) {
  IngestHandle *h = (IngestHandle *)SENTINEL;
  CHECK_STATUS(ingest_open(":memory:", "{not json", &h), INGEST_INVALID_RULES);
  CHECK_STATUS(ingest_open(":memory:", "{\"colour\": \"blue\"}", &h), INGEST_INVALID_RULES);
  CHECK(contains(ingest_last_error(), "colour"));
  CHECK_STATUS(ingest_open(":memory:", "{\"metric_case\": \"shout\"}", &h), INGEST_INVALID_RULES);
  CHECK(contains(ingest_last_error(), "metric_case"));
  CHECK(h == (IngestHandle *)SENTINEL);
}

static void test_open_with_rules(void) {
  IngestHandle *h = NULL;
  CHECK_OK(ingest_open(":memory:", "{\"metric_case\": \"preserve\", \"amount_range\": [0, 100]}", &h));
  char *out = submit(h, "{\"client\": \"a\", \"metric\": \"Sales\", \"value\": 5, \"ts\": \"2024-01-01\"}");
  CHECK(contains(out, "\"metric\":\"Sales\""));
  ingest_string_free(out);
  out = submit(h, "{\"client\": \"a\", \"value\": 500, \"ts\": \"2024-01-01\"}");
  CHECK(contains(out, "\"status\":\"rejected\""));
  CHECK(contains(out, "\"code\":\"out_of_range\""));
  ingest_string_free(out);
  char *rules = NULL;
  CHECK_OK(ingest_rules_json(h, &rules));
  CHECK(contains(rules, "\"metric_case\":\"preserve\""));
  ingest_string_free(rules);
  ingest_close(h);
}

static void test_open_with_options(void) {
  IngestHandle *h = NULL;
  CHECK_OK(ingest_open_with_options(":memory:", NULL, &h));
  ingest_close(h);

  char path[512];
  scratch_path(path, sizeof path, "options.db");
  IngestOptions o = {0};
  o.durability = "normal";
  o.busy_timeout_ms = 250;
  o.max_event_bytes = 200;
  o.rules_json = "{\"defaults\": {\"metric\": \"misc\"}}";
  h = NULL;
  CHECK_OK(ingest_open_with_options(path, &o, &h));
  char *out = submit(h, SEED_B);
  CHECK(contains(out, "\"metric\":\"misc\""));
  ingest_string_free(out);
  /* Larger than max_event_bytes: a rejection of that event, kept. */
  char big[400];
  snprintf(big, sizeof big, "{\"client\": \"a\", \"value\": 1, \"ts\": 1, \"note\": \"%0300d\"}", 7);
  out = submit(h, big);
  CHECK(contains(out, "\"code\":\"too_large\""));
  ingest_string_free(out);
  CHECK(stat(h, "stored_rejected") == 1);
  ingest_close(h);

  IngestOptions bad = {0};
  bad.durability = "sometimes";
  h = (IngestHandle *)SENTINEL;
  CHECK_STATUS(ingest_open_with_options(":memory:", &bad, &h), INGEST_INVALID_ARGUMENT);
  CHECK(contains(ingest_last_error(), "sometimes"));
  CHECK(h == (IngestHandle *)SENTINEL);
}

static void test_open_unopenable_path(void) {
  IngestHandle *h = (IngestHandle *)SENTINEL;
  CHECK_STATUS(ingest_open("/nonexistent-dir/ingest/x.db", NULL, &h), INGEST_IO);
  CHECK(contains(ingest_last_error(), "unable to open"));
  CHECK_STATUS(ingest_open(scratch_dir(), NULL, &h), INGEST_IO); /* a directory */
  CHECK(h == (IngestHandle *)SENTINEL);
}

static void test_open_corrupt_file(void) {
  char path[512];
  scratch_path(path, sizeof path, "corrupt.db");
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (f == NULL) return;
  for (int i = 0; i < 512; i++) fputs("this is not a database ", f);
  fclose(f);
  IngestHandle *h = (IngestHandle *)SENTINEL;
  CHECK_STATUS(ingest_open(path, NULL, &h), INGEST_CORRUPT);
  CHECK(h == (IngestHandle *)SENTINEL);
}

/* ---- submit ------------------------------------------------------------ */

static void test_submit_seed_outcomes(void) {
  IngestHandle *h = open_memory();
  char *out = submit(h, SEED_A);
  CHECK(contains(out, "\"status\":\"accepted\""));
  CHECK(contains(out, "\"id\":1"));
  CHECK(contains(out, "\"client_id\":\"clientA\""));
  CHECK(contains(out, "\"metric\":\"sales\""));
  CHECK(contains(out, "\"timestamp\":\"2024-01-01T00:00:00.000Z\""));
  CHECK(contains(out, "\"reasons\":[]"));
  ingest_string_free(out);

  out = submit(h, SEED_A);
  CHECK(contains(out, "\"status\":\"duplicate\""));
  CHECK(contains(out, "\"id\":1"));
  ingest_string_free(out);

  out = submit(h, SEED_B);
  CHECK(contains(out, "\"status\":\"accepted\""));
  CHECK(contains(out, "\"metric\":\"unknown\""));
  ingest_string_free(out);

  out = submit(h, SEED_C);
  CHECK(contains(out, "\"status\":\"rejected\""));
  CHECK(contains(out, "\"id\":null"));
  CHECK(contains(out, "\"event\":null"));
  CHECK(contains(out, "\"code\":\"missing_field\",\"field\":\"amount\""));
  CHECK(contains(out, "\"code\":\"missing_field\",\"field\":\"timestamp\""));
  ingest_string_free(out);
  CHECK(stat(h, "stored_events") == 2);
  CHECK(stat(h, "stored_rejected") == 1);
  CHECK(stat(h, "accepted") == 2 && stat(h, "duplicate") == 1 && stat(h, "rejected") == 1);
  ingest_close(h);
}

static void test_submit_errors(void) {
  IngestHandle *h = open_memory();
  char *out = SENTINEL;
  CHECK_STATUS(ingest_submit_json(NULL, SEED_A, &out), INGEST_NULL_POINTER);
  CHECK(contains(ingest_last_error(), "h must not be NULL"));
  CHECK_STATUS(ingest_submit_json(h, NULL, &out), INGEST_NULL_POINTER);
  CHECK(contains(ingest_last_error(), "event_json"));
  /* With nowhere to put the answer, the call does nothing at all. */
  CHECK_STATUS(ingest_submit_json(h, SEED_A, NULL), INGEST_NULL_POINTER);
  CHECK(contains(ingest_last_error(), "out_outcome_json"));
  CHECK(stat(h, "stored_events") == 0);
  CHECK_STATUS(ingest_submit_json(h, BAD_UTF8, &out), INGEST_INVALID_UTF8);
  CHECK(contains(ingest_last_error(), "event_json"));
  CHECK_STATUS(ingest_submit_json(h, "{\"source\": ", &out), INGEST_INVALID_ARGUMENT);
  CHECK(contains(ingest_last_error(), "not valid JSON"));
  CHECK_STATUS(ingest_submit_json(h, "", &out), INGEST_INVALID_ARGUMENT);
  char deep[1200];
  size_t n = 0;
  deep[n++] = '{';
  const char *head = "\"client\":\"a\",\"value\":1,\"ts\":1,\"x\":";
  memcpy(deep + n, head, strlen(head));
  n += strlen(head);
  for (int i = 0; i < 200; i++) deep[n++] = '[';
  for (int i = 0; i < 200; i++) deep[n++] = ']';
  deep[n++] = '}';
  deep[n] = 0;
  /* Nested past the depth limit: a rejection of that event, not an error. */
  out = submit(h, deep);
  CHECK(contains(out, "\"code\":\"too_deep\""));
  ingest_string_free(out);
  /* Not an object: a rejection (an outcome), not an error. */
  out = submit(h, "[1, 2]");
  CHECK(contains(out, "\"code\":\"not_an_object\""));
  ingest_string_free(out);
  CHECK(stat(h, "stored_events") == 0);
  ingest_close(h);
}

static void test_submit_batch(void) {
  IngestHandle *h = open_memory();
  char batch[1024];
  snprintf(batch, sizeof batch, "[%s, %s, %s, %s]", SEED_A, SEED_B, SEED_A, SEED_C);
  char *out = NULL;
  CHECK_OK(ingest_submit_batch_json(h, batch, &out));
  CHECK(out != NULL && out[0] == '[');
  const char *first = strstr(out ? out : "", "\"status\":\"accepted\"");
  CHECK(first != NULL);
  const char *second = first ? strstr(first + 1, "\"status\":\"accepted\"") : NULL;
  CHECK(second != NULL);
  const char *third = second ? strstr(second + 1, "\"status\":\"duplicate\"") : NULL;
  CHECK(third != NULL);
  CHECK(third ? strstr(third, "\"status\":\"rejected\"") != NULL : 0);
  ingest_string_free(out);
  CHECK(stat(h, "stored_events") == 2);

  out = NULL;
  CHECK_OK(ingest_submit_batch_json(h, "[]", &out));
  CHECK(out != NULL && strcmp(out, "[]") == 0);
  ingest_string_free(out);

  out = SENTINEL;
  CHECK_STATUS(ingest_submit_batch_json(h, SEED_A, &out), INGEST_INVALID_ARGUMENT);
  CHECK(contains(ingest_last_error(), "array"));
  CHECK_STATUS(ingest_submit_batch_json(h, "[{", &out), INGEST_INVALID_ARGUMENT);
  CHECK_STATUS(ingest_submit_batch_json(h, BAD_UTF8, &out), INGEST_INVALID_UTF8);
  CHECK(contains(ingest_last_error(), "events_json_array"));
  CHECK_STATUS(ingest_submit_batch_json(NULL, "[]", &out), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_submit_batch_json(h, NULL, &out), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_submit_batch_json(h, "[]", NULL), INGEST_NULL_POINTER);
  CHECK(contains(ingest_last_error(), "out_outcomes_json"));
  CHECK(out == SENTINEL);
  ingest_close(h);
}

static void test_check_stores_nothing(void) {
  IngestHandle *h = open_memory();
  char *out = NULL;
  CHECK_OK(ingest_check_json(h, SEED_A, &out));
  CHECK(contains(out, "\"status\":\"accepted\""));
  CHECK(contains(out, "\"id\":null"));
  ingest_string_free(out);
  CHECK(stat(h, "stored_events") == 0);

  ingest_string_free(submit(h, SEED_A));
  out = NULL;
  CHECK_OK(ingest_check_json(h, SEED_A, &out));
  CHECK(contains(out, "\"status\":\"duplicate\""));
  CHECK(contains(out, "\"id\":1"));
  ingest_string_free(out);

  out = NULL;
  CHECK_OK(ingest_check_json(h, SEED_C, &out));
  CHECK(contains(out, "\"status\":\"rejected\""));
  ingest_string_free(out);
  CHECK(stat(h, "stored_events") == 1);
  CHECK(stat(h, "stored_rejected") == 0);

  out = SENTINEL;
  CHECK_STATUS(ingest_check_json(NULL, SEED_A, &out), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_check_json(h, NULL, &out), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_check_json(h, SEED_A, NULL), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_check_json(h, BAD_UTF8, &out), INGEST_INVALID_UTF8);
  CHECK_STATUS(ingest_check_json(h, "nope", &out), INGEST_INVALID_ARGUMENT);
  CHECK(out == SENTINEL);
  ingest_close(h);
}

/* ---- the typed fast path ---------------------------------------------- */

static const int64_t JAN_1 = 1704067200000; /* 2024-01-01T00:00:00Z */

static void test_submit_fields(void) {
  IngestHandle *h = open_memory();
  IngestOutcome o;
  memset(&o, 0xAB, sizeof o);
  CHECK_OK(ingest_submit_fields(h, "clientA", "Sales", 1200.0, JAN_1, NULL, &o));
  CHECK(o.status == INGEST_ACCEPTED && o.id == 1 && o.reason_count == 0);

  /* The same event as JSON is a duplicate of it: one set of rules and keys. */
  char *out = submit(h, SEED_A);
  CHECK(contains(out, "\"status\":\"duplicate\""));
  ingest_string_free(out);
  CHECK_OK(ingest_submit_fields(h, "clientA", "sales", 1200.0, JAN_1, NULL, &o));
  CHECK(o.status == INGEST_DUPLICATE && o.id == 1);

  /* No metric: the rules' default. */
  CHECK_OK(ingest_submit_fields(h, "clientB", NULL, 1200.0, JAN_1 + 86400000, "evt-1", &o));
  CHECK(o.status == INGEST_ACCEPTED && o.id == 2);
  char *events = NULL;
  CHECK_OK(ingest_events_json(h, "{\"client_id\": \"clientB\"}", &events));
  CHECK(contains(events, "\"metric\":\"unknown\""));
  CHECK(contains(events, "\"event_id\":\"evt-1\""));
  ingest_string_free(events);

  CHECK_OK(ingest_submit_fields(h, "clientC", "x", NAN, JAN_1, NULL, &o));
  CHECK(o.status == INGEST_REJECTED && o.id == 0 && o.reason_count == 1);
  CHECK_OK(ingest_submit_fields(h, "", "x", INFINITY, JAN_1, NULL, &o));
  CHECK(o.status == INGEST_REJECTED && o.reason_count == 2);
  CHECK(stat(h, "stored_rejected") == 2);

  IngestOutcome untouched;
  memset(&untouched, 0x5e, sizeof untouched);
  IngestOutcome copy = untouched;
  CHECK_STATUS(ingest_submit_fields(NULL, "a", "m", 1, JAN_1, NULL, &untouched), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_submit_fields(h, NULL, "m", 1, JAN_1, NULL, &untouched), INGEST_NULL_POINTER);
  CHECK(contains(ingest_last_error(), "client_id"));
  CHECK_STATUS(ingest_submit_fields(h, "a", "m", 1, JAN_1, NULL, NULL), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_submit_fields(h, BAD_UTF8, "m", 1, JAN_1, NULL, &untouched), INGEST_INVALID_UTF8);
  CHECK(contains(ingest_last_error(), "client_id"));
  CHECK_STATUS(ingest_submit_fields(h, "a", BAD_UTF8, 1, JAN_1, NULL, &untouched), INGEST_INVALID_UTF8);
  CHECK(contains(ingest_last_error(), "metric"));
  CHECK_STATUS(ingest_submit_fields(h, "a", "m", 1, JAN_1, BAD_UTF8, &untouched), INGEST_INVALID_UTF8);
  CHECK(contains(ingest_last_error(), "event_id"));
  CHECK(memcmp(&untouched, &copy, sizeof copy) == 0);
  CHECK(stat(h, "stored_events") == 2);
  ingest_close(h);
}

static void test_utf8_text_round_trips(void) {
  IngestHandle *h = open_memory();
  /* "clïent-€" and "ventes🙂" as UTF-8 bytes: multi-byte text crosses intact. */
  const char *client = "cl\xc3\xaf" "ent-\xe2\x82\xac";
  const char *metric = "ventes\xf0\x9f\x99\x82";
  IngestOutcome o;
  CHECK_OK(ingest_submit_fields(h, client, metric, 2.5, JAN_1, NULL, &o));
  CHECK(o.status == INGEST_ACCEPTED);
  char event[256], *out = NULL;
  snprintf(event, sizeof event, "{\"client\": \"%s\", \"metric\": \"%s\", \"value\": 2.5, \"ts\": \"2024-01-01\", \"note\": \"\\u00e9\"}",
           client, metric);
  CHECK_OK(ingest_submit_json(h, event, &out));
  CHECK(contains(out, "\"status\":\"duplicate\""));
  ingest_string_free(out);
  char filter[128];
  snprintf(filter, sizeof filter, "{\"client_id\": \"%s\"}", client);
  out = NULL;
  CHECK_OK(ingest_events_json(h, filter, &out));
  CHECK(contains(out, client) && contains(out, metric));
  ingest_string_free(out);
  ingest_close(h);
}

static void test_event_id_dedup_key(void) {
  IngestHandle *h = NULL;
  CHECK_OK(ingest_open(":memory:", "{\"dedup_key\": [\"client_id\", \"event_id\"]}", &h));
  IngestOutcome o;
  CHECK_OK(ingest_submit_fields(h, "pos-7", "sales", 10.0, JAN_1, "receipt-1", &o));
  CHECK(o.status == INGEST_ACCEPTED && o.id == 1);
  /* A retry of the same receipt is a duplicate. */
  CHECK_OK(ingest_submit_fields(h, "pos-7", "sales", 10.0, JAN_1, "receipt-1", &o));
  CHECK(o.status == INGEST_DUPLICATE && o.id == 1 && o.reason_count == 0);
  /* The same receipt with another amount and clock: a conflict, one reason
     per field that differs, and nothing changes. */
  CHECK_OK(ingest_submit_fields(h, "pos-7", "sales", 10.5, JAN_1 + 999, "receipt-1", &o));
  CHECK(o.status == INGEST_CONFLICT && o.id == 1 && o.reason_count == 2);
  char *out = submit(h, "{\"client\": \"pos-7\", \"idempotency_key\": \"receipt-1\", \"value\": 3, \"ts\": 1}");
  CHECK(contains(out, "\"status\":\"conflict\""));
  CHECK(contains(out, "\"amount\":10.0") && contains(out, "stored 10, sent 3"));
  ingest_string_free(out);
  CHECK_OK(ingest_submit_fields(h, "pos-7", "sales", 10.0, JAN_1, "receipt-2", &o));
  CHECK(o.status == INGEST_ACCEPTED && o.id == 2);
  ingest_close(h);
}

static void test_attributes_are_kept(void) {
  IngestHandle *h = open_memory();
  char *out = submit(h, "{\"source\": \"s\", \"payload\": {\"value\": 1, \"ts\": 1700000000, \"region\": \"eu\", "
                        "\"big\": 123456789012345678901234567890}, \"via\": \"gateway\"}");
  CHECK(contains(out, "\"region\":\"eu\""));
  CHECK(contains(out, "\"via\":\"gateway\""));
  CHECK(contains(out, "\"big\":123456789012345678901234567890")); /* integers beyond 64 bits, exact */
  CHECK(contains(out, "\"timestamp\":\"2023-11-14T22:13:20.000Z\"")); /* epoch seconds */
  ingest_string_free(out);
  ingest_close(h);
}

static void test_large_batch(void) {
  IngestHandle *h = open_memory();
  enum { N = 500 };
  size_t cap = (size_t)N * 64 + 16, len = 0;
  char *batch = malloc(cap);
  CHECK(batch != NULL);
  if (batch == NULL) return;
  batch[len++] = '[';
  for (int i = 0; i < N; i++)
    len += (size_t)snprintf(batch + len, cap - len, "%s{\"client\": \"c\", \"value\": %d, \"ts\": %d}", i ? "," : "",
                            i % 250, 1000 + i % 250);
  batch[len++] = ']';
  batch[len] = 0;
  char *out = NULL;
  CHECK_OK(ingest_submit_batch_json(h, batch, &out));
  free(batch);
  ingest_string_free(out);
  CHECK(stat(h, "stored_events") == 250 && stat(h, "duplicate") == 250);
  ingest_close(h);
}

/* ---- queries ----------------------------------------------------------- */

static IngestHandle *open_seeded(void) {
  IngestHandle *h = open_memory();
  ingest_string_free(submit(h, SEED_A));
  ingest_string_free(submit(h, SEED_B));
  ingest_string_free(submit(h, SEED_C));
  ingest_string_free(submit(h, SEED_D));
  return h;
}

static void test_aggregate(void) {
  IngestHandle *h = open_seeded();
  char *r = NULL;
  CHECK_OK(ingest_aggregate_json(h, "{\"client_id\": \"clientA\", \"start\": \"2024-01-01\", \"end\": \"2024-01-31\"}", &r));
  CHECK(json_number(r, "count") == 1 && json_number(r, "sum") == 1200.0);
  CHECK(contains(r, "\"stale\":false"));
  CHECK(!contains(r, "\"groups\""));
  ingest_string_free(r);

  r = NULL;
  CHECK_OK(ingest_aggregate_json(h, "{\"metric\": \"SALES\"}", &r));
  CHECK(json_number(r, "count") == 2 && json_number(r, "sum") == 1250.0);
  CHECK(json_number(r, "avg") == 625.0 && json_number(r, "min") == 50.0 && json_number(r, "max") == 1200.0);
  ingest_string_free(r);

  r = NULL;
  CHECK_OK(ingest_aggregate_json(h, "{\"group_by\": [\"day\", \"client_id\"]}", &r));
  CHECK(contains(r, "\"groups\":["));
  CHECK(contains(r, "\"bucket\":\"2024-01-03T00:00:00.000Z\",\"client_id\":\"clientD\""));
  CHECK(json_number(r, "count") == 3);
  ingest_string_free(r);

  /* Local days of a zone ("tz"): each group says its local start and
     offset beside the UTC instant. */
  r = NULL;
  CHECK_OK(ingest_aggregate_json(h, "{\"metric\": \"sales\", \"group_by\": \"day\", \"tz\": \"Asia/Kathmandu\"}", &r));
  CHECK(contains(r, "\"bucket\":\"2023-12-31T18:15:00.000Z\",\"bucket_local\":\"2024-01-01T00:00:00+05:45\""));
  CHECK(contains(r, "\"bucket\":\"2024-01-02T18:15:00.000Z\",\"bucket_local\":\"2024-01-03T00:00:00+05:45\""));
  ingest_string_free(r);

  /* Empty range: zero, with no avg/min/max. */
  r = NULL;
  CHECK_OK(ingest_aggregate_json(h, "{\"start\": \"2030-01-01\"}", &r));
  CHECK(contains(r, "\"count\":0") && contains(r, "\"avg\":null"));
  ingest_string_free(r);
  ingest_close(h);
}

static void test_aggregate_bad_queries(void) {
  IngestHandle *h = open_seeded();
  const char *bad[] = {
      "{\"client\": \"clientA\"}",            /* unknown key */
      "{\"group_by\": \"week\"}",             /* unknown grouping */
      "{\"group_by\": [\"day\", \"month\"]}", /* two buckets */
      "{\"start\": \"tomorrow\"}",            /* not a time */
      "{\"start\": \"2024-02-01\", \"end\": \"2024-01-01\"}", /* start after end */
      "{\"metric\": 5}",                       /* not text */
      "{\"tz\": \"Mars/Olympus_Mons\"}",       /* unknown zone */
      "{\"tz\": \" \"}",                       /* empty zone */
      "[]",                                    /* not an object */
      "{\"metric\": ",                         /* not JSON */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *r = SENTINEL;
    CHECK_STATUS(ingest_aggregate_json(h, bad[i], &r), INGEST_INVALID_ARGUMENT);
    CHECK(strlen(ingest_last_error()) > 0);
    CHECK(r == SENTINEL);
  }
  char *r = SENTINEL;
  CHECK_STATUS(ingest_aggregate_json(NULL, "{}", &r), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_aggregate_json(h, NULL, &r), INGEST_NULL_POINTER);
  CHECK(contains(ingest_last_error(), "query_json"));
  CHECK_STATUS(ingest_aggregate_json(h, "{}", NULL), INGEST_NULL_POINTER);
  CHECK(contains(ingest_last_error(), "out_result_json"));
  CHECK_STATUS(ingest_aggregate_json(h, BAD_UTF8, &r), INGEST_INVALID_UTF8);
  CHECK(r == SENTINEL);
  ingest_close(h);
}

static void test_events_listing(void) {
  IngestHandle *h = open_seeded();
  char *out = NULL;
  CHECK_OK(ingest_events_json(h, NULL, &out));
  CHECK(contains(out, "clientA") && contains(out, "clientB") && contains(out, "clientD"));
  CHECK(contains(out, "\"received_at\":") && contains(out, "\"rules_version\":"));
  /* Newest first. */
  CHECK(out != NULL && strstr(out, "clientD") < strstr(out, "clientA"));
  ingest_string_free(out);

  out = NULL;
  CHECK_OK(ingest_events_json(h, "{\"metric\": \"Sales\", \"limit\": 1, \"offset\": 1}", &out));
  CHECK(contains(out, "clientA") && !contains(out, "clientD"));
  ingest_string_free(out);

  out = NULL;
  CHECK_OK(ingest_events_json(h, "{\"start\": \"2024-01-02\", \"end\": \"2024-01-03\"}", &out));
  CHECK(contains(out, "clientB") && !contains(out, "clientA") && !contains(out, "clientD"));
  ingest_string_free(out);

  out = SENTINEL;
  CHECK_STATUS(ingest_events_json(h, "{\"status\": \"ok\"}", &out), INGEST_INVALID_ARGUMENT);
  CHECK(contains(ingest_last_error(), "status"));
  CHECK_STATUS(ingest_events_json(h, "{\"limit\": 0}", &out), INGEST_INVALID_ARGUMENT);
  CHECK_STATUS(ingest_events_json(h, "{\"limit\": -1}", &out), INGEST_INVALID_ARGUMENT);
  CHECK_STATUS(ingest_events_json(h, "{\"limit\": 100001}", &out), INGEST_INVALID_ARGUMENT);
  CHECK_STATUS(ingest_events_json(h, "{", &out), INGEST_INVALID_ARGUMENT);
  CHECK_STATUS(ingest_events_json(h, BAD_UTF8, &out), INGEST_INVALID_UTF8);
  CHECK(contains(ingest_last_error(), "filter_json"));
  CHECK_STATUS(ingest_events_json(NULL, NULL, &out), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_events_json(h, NULL, NULL), INGEST_NULL_POINTER);
  CHECK(out == SENTINEL);
  ingest_close(h);
}

static void test_rejected_listing(void) {
  IngestHandle *h = open_seeded();
  ingest_string_free(submit(h, SEED_C)); /* a retry of the same bad input */
  ingest_string_free(submit(h, "{\"client\": \"z\", \"value\": true, \"ts\": \"2024-01-01\"}"));
  char *out = NULL;
  CHECK_OK(ingest_rejected_json(h, NULL, &out));
  CHECK(contains(out, "\"raw\":{\"payload\":{\"metric\":\"views\"},\"source\":\"clientC\"}") ||
        contains(out, "\"raw\":{\"source\":\"clientC\",\"payload\":{\"metric\":\"views\"}}"));
  CHECK(contains(out, "\"attempts\":2"));
  CHECK(contains(out, "\"code\":\"bad_type\""));
  CHECK(contains(out, "\"message\":"));
  ingest_string_free(out);
  CHECK(stat(h, "stored_rejected") == 2);

  out = NULL;
  CHECK_OK(ingest_rejected_json(h, "{\"limit\": 1}", &out));
  CHECK(contains(out, "bad_type") && !contains(out, "clientC"));
  ingest_string_free(out);
  out = NULL;
  CHECK_OK(ingest_rejected_json(h, "{\"limit\": 1, \"offset\": 5}", &out));
  CHECK(out != NULL && strcmp(out, "[]") == 0);
  ingest_string_free(out);

  out = SENTINEL;
  CHECK_STATUS(ingest_rejected_json(h, "{\"client_id\": \"a\"}", &out), INGEST_INVALID_ARGUMENT);
  CHECK_STATUS(ingest_rejected_json(h, "{\"limit\": \"ten\"}", &out), INGEST_INVALID_ARGUMENT);
  CHECK_STATUS(ingest_rejected_json(h, "{\"limit\": 0}", &out), INGEST_INVALID_ARGUMENT);
  CHECK_STATUS(ingest_rejected_json(h, "]", &out), INGEST_INVALID_ARGUMENT);
  CHECK_STATUS(ingest_rejected_json(h, BAD_UTF8, &out), INGEST_INVALID_UTF8);
  CHECK_STATUS(ingest_rejected_json(NULL, NULL, &out), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_rejected_json(h, NULL, NULL), INGEST_NULL_POINTER);
  CHECK(out == SENTINEL);
  ingest_close(h);
}

static void test_stats_and_rules(void) {
  IngestHandle *h = open_seeded();
  char *out = NULL;
  CHECK_OK(ingest_stats_json(h, &out));
  CHECK(json_number(out, "accepted") == 3 && json_number(out, "rejected") == 1);
  CHECK(json_number(out, "duplicate") == 0 && json_number(out, "failed") == 0);
  CHECK(json_number(out, "stored_events") == 3 && json_number(out, "stored_rejected") == 1);
  ingest_string_free(out);
  out = NULL;
  CHECK_OK(ingest_rules_json(h, &out));
  CHECK(contains(out, "\"aliases\"") && contains(out, "\"dedup_key\""));
  ingest_string_free(out);

  out = SENTINEL;
  CHECK_STATUS(ingest_stats_json(NULL, &out), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_stats_json(h, NULL), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_rules_json(NULL, &out), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_rules_json(h, NULL), INGEST_NULL_POINTER);
  CHECK(out == SENTINEL);
  ingest_close(h);
}

static void test_reprocess_rejected(void) {
  char path[512];
  scratch_path(path, sizeof path, "reprocess.db");
  IngestHandle *strict = NULL;
  CHECK_OK(ingest_open(path, "{\"amount_range\": [0, 100]}", &strict));
  expect_outcome(strict, SEED_A, "rejected");                       /* 1200: out of range */
  expect_outcome(strict, SEED_C, "rejected");                       /* no amount, no time */
  expect_outcome(strict, "{\"client\": \"x\", \"value\": 5, \"ts\": 1}", "accepted");
  ingest_close(strict);

  /* The rules change: what they now accept leaves the dead letters. */
  IngestHandle *h = NULL;
  CHECK_OK(ingest_open(path, NULL, &h));
  char *report = NULL;
  CHECK_OK(ingest_reprocess_rejected_json(h, &report));
  CHECK(json_number(report, "accepted") == 1 && json_number(report, "duplicate") == 0);
  CHECK(json_number(report, "rejected") == 1);
  ingest_string_free(report);
  CHECK(stat(h, "stored_events") == 2 && stat(h, "stored_rejected") == 1);
  expect_outcome(h, SEED_A, "duplicate");

  report = SENTINEL;
  CHECK_STATUS(ingest_reprocess_rejected_json(NULL, &report), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_reprocess_rejected_json(h, NULL), INGEST_NULL_POINTER);
  CHECK(contains(ingest_last_error(), "out_report_json"));
  /* A failure while reprocessing keeps the dead letters where they were. */
  CHECK_OK(ingest_simulate_failure(h, "after_insert", 1));
  CHECK_STATUS(ingest_reprocess_rejected_json(h, &report), INGEST_INJECTED);
  CHECK(report == SENTINEL);
  CHECK(stat(h, "stored_rejected") == 1);
  ingest_close(h);
}

/* ---- failure injection ------------------------------------------------- */

static void write_point_then_retry(const char *point, const char *retry_status, double stored_after_failure) {
  IngestHandle *h = open_memory();
  CHECK_OK(ingest_simulate_failure(h, point, 1));
  char *out = SENTINEL;
  CHECK_STATUS(ingest_submit_json(h, SEED_D, &out), INGEST_INJECTED);
  CHECK(contains(ingest_last_error(), point));
  CHECK(out == SENTINEL);
  CHECK(stat(h, "stored_events") == stored_after_failure);
  CHECK(stat(h, "failed") == 1);
  expect_outcome(h, SEED_D, retry_status);
  CHECK(stat(h, "stored_events") == 1);
  ingest_close(h);
}

static void test_failure_before_insert(void) { write_point_then_retry("before_insert", "accepted", 0); }
static void test_failure_after_insert(void) { write_point_then_retry("after_insert", "accepted", 0); }
static void test_failure_after_commit(void) { write_point_then_retry("after_commit", "duplicate", 1); }

static void test_failure_aggregate(void) {
  IngestHandle *h = open_seeded();
  const char *q = "{\"metric\": \"sales\"}";
  char *r = SENTINEL;
  /* No earlier result for this query: the failure is an error. */
  CHECK_OK(ingest_simulate_failure(h, "aggregate", 1));
  CHECK_STATUS(ingest_aggregate_json(h, q, &r), INGEST_INJECTED);
  CHECK(r == SENTINEL);
  /* With one: the last result, marked stale. */
  r = NULL;
  CHECK_OK(ingest_aggregate_json(h, q, &r));
  CHECK(contains(r, "\"stale\":false"));
  ingest_string_free(r);
  CHECK_OK(ingest_simulate_failure(h, "aggregate", 1));
  r = NULL;
  CHECK_OK(ingest_aggregate_json(h, q, &r));
  CHECK(contains(r, "\"stale\":true") && json_number(r, "sum") == 1250.0);
  ingest_string_free(r);
  /* An aggregate failure does not strike writes, nor a write one reads. */
  CHECK_OK(ingest_simulate_failure(h, "aggregate", 1));
  expect_outcome(h, "{\"client\": \"q\", \"value\": 1, \"ts\": 5}", "accepted");
  r = NULL;
  CHECK_STATUS(ingest_aggregate_json(h, "{}", &r), INGEST_INJECTED);
  CHECK_OK(ingest_simulate_failure(h, "after_insert", 1));
  r = NULL;
  CHECK_OK(ingest_aggregate_json(h, "{}", &r));
  ingest_string_free(r);
  CHECK_OK(ingest_clear_failure(h));
  ingest_close(h);
}

static void test_failure_counts_and_disarm(void) {
  IngestHandle *h = open_memory();
  IngestOutcome o;
  CHECK_OK(ingest_simulate_failure(h, "before_insert", 2));
  CHECK_STATUS(ingest_submit_fields(h, "a", "m", 1, JAN_1, NULL, &o), INGEST_INJECTED);
  CHECK_STATUS(ingest_submit_fields(h, "a", "m", 1, JAN_1, NULL, &o), INGEST_INJECTED);
  CHECK_OK(ingest_submit_fields(h, "a", "m", 1, JAN_1, NULL, &o));
  CHECK(o.status == INGEST_ACCEPTED);

  CHECK_OK(ingest_simulate_failure(h, "before_insert", 5));
  CHECK_OK(ingest_simulate_failure(h, "before_insert", 0)); /* 0 disarms */
  expect_outcome(h, SEED_A, "accepted");
  CHECK_OK(ingest_simulate_failure(h, "after_insert", 5));
  CHECK_OK(ingest_clear_failure(h));
  expect_outcome(h, SEED_B, "accepted");

  /* A batch under a failure keeps nothing of itself. */
  char batch[512];
  snprintf(batch, sizeof batch, "[%s, %s]", SEED_C, SEED_D);
  CHECK_OK(ingest_simulate_failure(h, "after_insert", 1));
  char *out = SENTINEL;
  CHECK_STATUS(ingest_submit_batch_json(h, batch, &out), INGEST_INJECTED);
  CHECK(out == SENTINEL);
  CHECK(stat(h, "stored_events") == 3 && stat(h, "stored_rejected") == 0);
  CHECK_OK(ingest_submit_batch_json(h, batch, &out));
  ingest_string_free(out);
  CHECK(stat(h, "stored_events") == 4 && stat(h, "stored_rejected") == 1);

  CHECK_STATUS(ingest_simulate_failure(h, "later", 1), INGEST_INVALID_ARGUMENT);
  CHECK(contains(ingest_last_error(), "\"later\""));
  CHECK_STATUS(ingest_simulate_failure(h, "", 1), INGEST_INVALID_ARGUMENT);
  CHECK_STATUS(ingest_simulate_failure(h, "AFTER_INSERT", 1), INGEST_INVALID_ARGUMENT);
  CHECK_STATUS(ingest_simulate_failure(h, BAD_UTF8, 1), INGEST_INVALID_UTF8);
  CHECK(contains(ingest_last_error(), "point"));
  CHECK_STATUS(ingest_simulate_failure(h, NULL, 1), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_simulate_failure(NULL, "aggregate", 1), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_clear_failure(NULL), INGEST_NULL_POINTER);
  /* None of the bad calls armed anything. */
  expect_outcome(h, "{\"client\": \"n\", \"value\": 2, \"ts\": 9}", "accepted");
  ingest_close(h);
}

/* ---- the fault matrix --------------------------------------------------
 * Every failure point x every call (submit, submit_batch, aggregate), one
 * fresh store per cell. The store holds SEED_A and SEED_D, a cached result
 * of MATRIX_QUERY (2 events, 1250), then MATRIX_LATE (sales, 5): a stale
 * answer (2, 1250) is told apart from the truth (3, 1255). */

typedef enum { CALL_SUBMIT, CALL_BATCH, CALL_AGGREGATE } MatrixCall;

static const char *const MATRIX_CALLS[] = {"submit", "submit_batch", "aggregate"};
static const char *MATRIX_QUERY = "{\"metric\": \"sales\"}";
static const char *MATRIX_LATE = "{\"client\": \"late\", \"metric\": \"sales\", \"value\": 5, \"ts\": \"2024-01-09\"}";
/* submit: one new event (sales 7 on 2024-02-01). */
static const char *MATRIX_EVENT = "{\"client\": \"m\", \"metric\": \"sales\", \"value\": 7, \"ts\": \"2024-02-01\"}";
/* submit_batch: that event, a second one (sales 3 on 2024-02-02), the first
 * respelled (a duplicate inside the batch) and a rejected one. */
static const char *MATRIX_BATCH =
    "[{\"client\": \"m\", \"metric\": \"sales\", \"value\": 7, \"ts\": \"2024-02-01\"},"
    " {\"clientId\": \"m\", \"name\": \" Sales \", \"amt\": \"3\", \"time\": \"2024-02-02T00:00:00Z\"},"
    " {\"source\": \"m\", \"payload\": {\"metric\": \"SALES\", \"value\": \"7.0\", \"timestamp\": 1706745600000}},"
    " {\"client\": \"m\", \"metric\": \"sales\"}]";

static const struct {
  const char *point;
  MatrixCall call;
  int struck;        /* the point strikes this call */
  const char *retry; /* what sending the same call again answers */
} FAULT_MATRIX[] = {
    {"before_insert", CALL_SUBMIT, 1, "accepted"},
    {"after_insert", CALL_SUBMIT, 1, "accepted"},
    {"after_commit", CALL_SUBMIT, 1, "duplicate"},
    {"aggregate", CALL_SUBMIT, 0, "duplicate"},
    {"before_insert", CALL_BATCH, 1, "accepted,accepted,duplicate,rejected"},
    {"after_insert", CALL_BATCH, 1, "accepted,accepted,duplicate,rejected"},
    {"after_commit", CALL_BATCH, 1, "duplicate,duplicate,duplicate,rejected"},
    {"aggregate", CALL_BATCH, 0, "duplicate,duplicate,duplicate,rejected"},
    {"before_insert", CALL_AGGREGATE, 0, "fresh"},
    {"after_insert", CALL_AGGREGATE, 0, "fresh"},
    {"after_commit", CALL_AGGREGATE, 0, "fresh"},
    {"aggregate", CALL_AGGREGATE, 1, "fresh"},
};

/* The statuses of the outcomes in `json`, in order, comma-separated. */
static void outcome_statuses(const char *json, char *buf, size_t len) {
  buf[0] = 0;
  const char *key = "\"status\":\"";
  for (const char *at = json ? strstr(json, key) : NULL; at != NULL; at = strstr(at, key)) {
    at += strlen(key);
    size_t n = strcspn(at, "\"");
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%.*s", used ? "," : "", (int)n, at);
  }
}

/* The ids of the outcomes in `json`, in order (0 for null); how many. */
static int outcome_ids(const char *json, long *ids, int max) {
  int n = 0;
  const char *key = "\"id\":";
  for (const char *at = json ? strstr(json, key) : NULL; at != NULL && n < max; at = strstr(at, key)) {
    at += strlen(key);
    ids[n++] = strtol(at, NULL, 10);
  }
  return n;
}

/* The id of client m's one stored event in [start, end), or -1. */
static long stored_id(IngestHandle *h, const char *start, const char *end) {
  char filter[160];
  snprintf(filter, sizeof filter, "{\"client_id\": \"m\", \"start\": \"%s\", \"end\": \"%s\"}", start, end);
  char *list = NULL;
  CHECK_OK(ingest_events_json(h, filter, &list));
  long ids[4];
  int n = outcome_ids(list, ids, 4);
  ingest_string_free(list);
  return n == 1 ? ids[0] : -1;
}

/* MATRIX_QUERY answers count and sum, stale or not; returns computed_at's
 * first characters in `at` (when not NULL) to compare two answers. */
static void expect_sales(IngestHandle *h, double count, double sum, int stale, char *at, size_t at_len) {
  char *r = SENTINEL;
  CHECK_OK(ingest_aggregate_json(h, MATRIX_QUERY, &r));
  if (r == SENTINEL) return;
  CHECK(json_number(r, "count") == count);
  CHECK(json_number(r, "sum") == sum);
  CHECK(contains(r, stale ? "\"stale\":true" : "\"stale\":false"));
  if (json_number(r, "count") != count || json_number(r, "sum") != sum) fprintf(stderr, "  aggregate was %s\n", r);
  if (at != NULL) {
    const char *c = strstr(r, "\"computed_at\":\"");
    snprintf(at, at_len, "%.40s", c ? c : "");
  }
  ingest_string_free(r);
}

static void fault_matrix_cell(const char *point, MatrixCall call, int struck, const char *retry) {
  IngestHandle *h = open_memory();
  ingest_string_free(submit(h, SEED_A));
  ingest_string_free(submit(h, SEED_D));
  char cached_at[64];
  expect_sales(h, 2, 1250, 0, cached_at, sizeof cached_at);
  ingest_string_free(submit(h, MATRIX_LATE));
  /* What the store holds beyond SEED_A, SEED_D and MATRIX_LATE. */
  double count = 0, sum = 0, dead = 0;
  const int committed = !struck || strcmp(point, "after_commit") == 0;
  char got[128];

  CHECK_OK(ingest_simulate_failure(h, point, 1));
  if (call != CALL_AGGREGATE) {
    const char *input = call == CALL_SUBMIT ? MATRIX_EVENT : MATRIX_BATCH;
    char *out = SENTINEL;
    IngestStatus s = call == CALL_SUBMIT ? ingest_submit_json(h, input, &out) : ingest_submit_batch_json(h, input, &out);
    if (committed) {
      count = call == CALL_SUBMIT ? 1 : 2;
      sum = call == CALL_SUBMIT ? 7 : 10;
      dead = call == CALL_SUBMIT ? 0 : 1;
    }
    if (struck) {
      CHECK_STATUS(s, INGEST_INJECTED);
      CHECK(contains(ingest_last_error(), point));
      CHECK(out == SENTINEL);
      CHECK(stat(h, "failed") == 1);
      /* Nothing partial: all of the call, or (after_commit) none of it. */
      expect_sales(h, 3 + count, 1255 + sum, 0, NULL, 0);
    } else {
      CHECK_OK(s);
      outcome_statuses(out, got, sizeof got);
      CHECK(strcmp(got, call == CALL_SUBMIT ? "accepted" : "accepted,accepted,duplicate,rejected") == 0);
      if (s == INGEST_OK) ingest_string_free(out);
      /* The aggregate failure still waits for an aggregate: the cached answer. */
      char at[64];
      expect_sales(h, 2, 1250, 1, at, sizeof at);
      CHECK(strcmp(at, cached_at) == 0);
    }
    CHECK(stat(h, "stored_events") == 3 + count && stat(h, "stored_rejected") == dead);

    /* The same call again. */
    out = NULL;
    CHECK_OK(call == CALL_SUBMIT ? ingest_submit_json(h, input, &out) : ingest_submit_batch_json(h, input, &out));
    outcome_statuses(out, got, sizeof got);
    CHECK(strcmp(got, retry) == 0);
    if (strcmp(got, retry) != 0) fprintf(stderr, "  retry answered %s, want %s\n", got, retry);
    /* Accepted or duplicate, each answers the id of the one stored event. */
    long ids[4];
    int n = outcome_ids(out, ids, 4);
    long first = stored_id(h, "2024-02-01", "2024-02-02");
    CHECK(first > 0 && n == (call == CALL_SUBMIT ? 1 : 4) && ids[0] == first);
    if (call == CALL_BATCH) CHECK(ids[1] == stored_id(h, "2024-02-02", "2024-02-03") && ids[1] > 0 && ids[2] == first && ids[3] == 0);
    ingest_string_free(out);
    count = call == CALL_SUBMIT ? 1 : 2;
    sum = call == CALL_SUBMIT ? 7 : 10;
    dead = call == CALL_SUBMIT ? 0 : 1;
  } else {
    char at[64];
    if (struck) {
      /* The cached answer, marked stale; a query never answered: an error. */
      expect_sales(h, 2, 1250, 1, at, sizeof at);
      CHECK(strcmp(at, cached_at) == 0);
      CHECK_OK(ingest_simulate_failure(h, point, 1));
      char *r = SENTINEL;
      CHECK_STATUS(ingest_aggregate_json(h, "{\"client_id\": \"m\"}", &r), INGEST_INJECTED);
      CHECK(contains(ingest_last_error(), point));
      CHECK(r == SENTINEL);
    } else {
      /* A write failure does not strike a read, and still waits for a write. */
      expect_sales(h, 3, 1255, 0, NULL, 0);
      char *out = SENTINEL;
      CHECK_STATUS(ingest_submit_json(h, MATRIX_EVENT, &out), INGEST_INJECTED);
      CHECK(out == SENTINEL);
      if (strcmp(point, "after_commit") == 0) count = 1, sum = 7;
    }
  }
  /* The retry of the aggregate, and the end state: exact totals. */
  expect_sales(h, 3 + count, 1255 + sum, 0, NULL, 0);
  CHECK(stat(h, "stored_events") == 3 + count && stat(h, "stored_rejected") == dead);
  ingest_close(h);
}

static void test_fault_matrix(void) {
  for (size_t i = 0; i < sizeof FAULT_MATRIX / sizeof FAULT_MATRIX[0]; i++) {
    int before = current_failures;
    fault_matrix_cell(FAULT_MATRIX[i].point, FAULT_MATRIX[i].call, FAULT_MATRIX[i].struck, FAULT_MATRIX[i].retry);
    if (current_failures != before)
      fprintf(stderr, "  fault matrix cell %s x %s failed\n", FAULT_MATRIX[i].point, MATRIX_CALLS[FAULT_MATRIX[i].call]);
  }
}

/* ---- exact totals (issue 15) ------------------------------------------- */

/* Every sum is the exact sum of the stored amounts rounded once, in every
 * view: the whole hour (rollups), the hour cut by a millisecond at either
 * edge (scans), the day and all time, each also grouped by hour, day and
 * month. The cases of core/tests/integration/exact_totals.rs. */

static const int64_t EXACT_HOUR = 1714557600000; /* 2024-05-01T10:00:00Z */
static const int64_t EXACT_MINUTE = 60000;

static const char *const EXACT_RANGES[] = {
    ", \"start\": \"2024-05-01T10:00:00.000Z\", \"end\": \"2024-05-01T11:00:00.000Z\"",
    ", \"start\": \"2024-05-01T10:00:00.000Z\", \"end\": \"2024-05-01T10:59:59.999Z\"",
    ", \"start\": \"2024-05-01T09:59:59.999Z\", \"end\": \"2024-05-01T11:00:00.000Z\"",
    ", \"start\": \"2024-05-01\", \"end\": \"2024-05-02\"",
    "", /* all time */
};
static const char *const EXACT_GROUPINGS[] = {"", ", \"group_by\": \"hour\"", ", \"group_by\": \"day\"",
                                              ", \"group_by\": \"month\""};

/* A "sales" event of `client`; `amount` is JSON text. */
static void exact_event(char *buf, size_t len, const char *client, const char *amount, int64_t ms) {
  snprintf(buf, len, "{\"client\": \"%s\", \"metric\": \"sales\", \"value\": %s, \"ts\": %lld}", client, amount,
           (long long)ms);
}

static void exact_submit(IngestHandle *h, const char *client, const char *amount, int64_t ms, const char *status) {
  char event[200];
  exact_event(event, sizeof event, client, amount, ms);
  expect_outcome(h, event, status);
}

/* The number after "key": at or after `json`, or NAN when it is absent or
 * not a number (null, say). */
static double number_after(const char *json, const char *key) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  const char *at = json ? strstr(json, pattern) : NULL;
  if (at == NULL) return NAN;
  char *end = NULL;
  double v = strtod(at + strlen(pattern), &end);
  return end == at + strlen(pattern) ? NAN : v;
}

/* Every view of the hour answers `want` as its sum: ungrouped, and grouped
 * as exactly one group with that sum. Each answer is also finite JSON. */
static void expect_every_view(IngestHandle *h, double want) {
  for (size_t r = 0; r < sizeof EXACT_RANGES / sizeof EXACT_RANGES[0]; r++) {
    for (size_t g = 0; g < sizeof EXACT_GROUPINGS / sizeof EXACT_GROUPINGS[0]; g++) {
      char query[256], *out = NULL;
      snprintf(query, sizeof query, "{\"metric\": \"sales\"%s%s}", EXACT_RANGES[r], EXACT_GROUPINGS[g]);
      CHECK_OK(ingest_aggregate_json(h, query, &out));
      int ok = number_after(out, "sum") == want && isfinite(number_after(out, "avg"));
      if (g > 0) {
        const char *groups = out ? strstr(out, "\"groups\":[") : NULL;
        const char *second = groups ? strstr(groups, "\"bucket\"") : NULL;
        second = second ? strstr(second + 1, "\"bucket\"") : NULL;
        ok = ok && groups != NULL && number_after(groups, "sum") == want && second == NULL;
      }
      ok = ok && !contains(out, "null") && !contains(out, "inf") && !contains(out, "NaN");
      CHECK(ok);
      if (!ok) fprintf(stderr, "  want sum %.17g: %s gave %s\n", want, query, out ? out : "(null)");
      ingest_string_free(out);
    }
  }
}

static void test_exact_one_client_cannot_erase_anothers_amounts(void) {
  IngestHandle *h = open_memory();
  exact_submit(h, "evil", "1e16", EXACT_HOUR + EXACT_MINUTE, "accepted");
  for (int i = 0; i < 4; i++) exact_submit(h, "honest", "1.0", EXACT_HOUR + EXACT_MINUTE * (2 + i), "accepted");
  exact_submit(h, "evil", "-1e16", EXACT_HOUR + EXACT_MINUTE * 10, "accepted");
  expect_every_view(h, 4.0);

  char *out = NULL;
  CHECK_OK(ingest_aggregate_json(h,
                                 "{\"metric\": \"sales\", \"start\": \"2024-05-01T10:00:00Z\", "
                                 "\"end\": \"2024-05-01T11:00:00Z\", \"group_by\": \"client_id\"}",
                                 &out));
  const char *evil = out ? strstr(out, "\"client_id\":\"evil\"") : NULL;
  const char *honest = out ? strstr(out, "\"client_id\":\"honest\"") : NULL;
  CHECK(evil != NULL && honest != NULL && evil < honest);
  CHECK(number_after(evil, "count") == 2 && number_after(evil, "sum") == 0.0);
  CHECK(number_after(honest, "count") == 4 && number_after(honest, "sum") == 4.0);
  CHECK(number_after(out, "count") == 6 && number_after(out, "sum") == 4.0);
  if (current_failures) fprintf(stderr, "  by client: %s\n", out ? out : "(null)");
  ingest_string_free(out);
  ingest_close(h);
}

static void test_exact_every_view_gives_the_sum_rounded_once(void) {
  IngestHandle *h = open_memory();
  char batch[2048], event[200];
  size_t len = 0;
  batch[len++] = '[';
  for (int i = 0; i < 10; i++) {
    exact_event(event, sizeof event, "a", "0.1", EXACT_HOUR + EXACT_MINUTE * i);
    len += (size_t)snprintf(batch + len, sizeof batch - len, "%s%s", i ? "," : "", event);
  }
  snprintf(batch + len, sizeof batch - len, "]");
  char *out = NULL, statuses[256];
  CHECK_OK(ingest_submit_batch_json(h, batch, &out));
  outcome_statuses(out, statuses, sizeof statuses);
  CHECK(strcmp(statuses, "accepted,accepted,accepted,accepted,accepted,accepted,accepted,accepted,accepted,"
                         "accepted") == 0);
  ingest_string_free(out);

  out = NULL;
  CHECK_OK(ingest_aggregate_json(h, "{\"metric\": \"sales\", \"start\": \"2024-05-01T10:00:00Z\"}", &out));
  /* Ten 0.1 added one by one are not 1.0; their exact sum rounded is. */
  double naive = 0;
  for (int i = 0; i < 10; i++) naive += 0.1;
  CHECK(naive != 1.0);
  CHECK(number_after(out, "count") == 10 && number_after(out, "sum") == 1.0 && number_after(out, "avg") == 0.1);
  ingest_string_free(out);
  expect_every_view(h, 1.0);

  const struct {
    const char *client, *amount;
    int minute;
  } more[] = {{"b", "1e16", 20}, {"c", "1.0", 21}, {"c", "1.0", 22}, {"c", "1.0", 23}, {"c", "1.0", 24}, {"b", "-1e16", 30}};
  len = 0;
  batch[len++] = '[';
  for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
    exact_event(event, sizeof event, more[i].client, more[i].amount, EXACT_HOUR + EXACT_MINUTE * more[i].minute);
    len += (size_t)snprintf(batch + len, sizeof batch - len, "%s%s", i ? "," : "", event);
  }
  snprintf(batch + len, sizeof batch - len, "]");
  out = NULL;
  CHECK_OK(ingest_submit_batch_json(h, batch, &out));
  outcome_statuses(out, statuses, sizeof statuses);
  CHECK(strcmp(statuses, "accepted,accepted,accepted,accepted,accepted,accepted") == 0);
  ingest_string_free(out);
  expect_every_view(h, 5.0);
  CHECK(stat(h, "stored_events") == 16);
  ingest_close(h);
}

static void test_exact_no_amount_makes_a_total_infinite(void) {
  IngestHandle *h = open_memory();
  const char *too_big[] = {"1e308", "-1e308", "1.7976931348623157e308", "1.0000001e289", "\"1e300\""};
  for (size_t i = 0; i < sizeof too_big / sizeof too_big[0]; i++) {
    char event[200], *out = NULL;
    exact_event(event, sizeof event, "evil", too_big[i], EXACT_HOUR);
    CHECK_OK(ingest_submit_json(h, event, &out));
    int ok = contains(out, "\"status\":\"rejected\"") && contains(out, "\"code\":\"out_of_range\",\"field\":\"amount\"");
    CHECK(ok);
    if (!ok) fprintf(stderr, "  %s gave %s\n", too_big[i], out ? out : "(null)");
    ingest_string_free(out);
  }
  CHECK(stat(h, "stored_events") == 0 && stat(h, "stored_rejected") == 5);
  char *out = NULL;
  CHECK_OK(ingest_aggregate_json(h, "{\"metric\": \"sales\"}", &out));
  CHECK(number_after(out, "count") == 0 && number_after(out, "sum") == 0.0 && contains(out, "\"avg\":null"));
  ingest_string_free(out);

  /* The largest amounts accepted, many times over: 34 of 1e289 and 16 of
   * -1e289, then 0.5. The exact sum, 18 x 1e289 + 0.5, rounds to what the
   * one multiplication 18 x 1e289 rounds to (python/tests/test_exact_totals.py
   * checks this against an exact rational sum). */
  char batch[4096], event[200];
  size_t len = 0;
  batch[len++] = '[';
  for (int i = 0; i < 50; i++) {
    exact_event(event, sizeof event, "evil", i % 3 == 2 ? "-1e289" : "1e289", EXACT_HOUR + i);
    len += (size_t)snprintf(batch + len, sizeof batch - len, "%s%s", i ? "," : "", event);
  }
  snprintf(batch + len, sizeof batch - len, "]");
  out = NULL;
  CHECK_OK(ingest_submit_batch_json(h, batch, &out));
  CHECK(out != NULL && !contains(out, "rejected"));
  ingest_string_free(out);
  exact_submit(h, "honest", "0.5", EXACT_HOUR + 100, "accepted");
  CHECK(stat(h, "stored_events") == 51);
  const double want = 18 * 1e289;
  CHECK(isfinite(want));
  expect_every_view(h, want);
  out = NULL;
  CHECK_OK(ingest_aggregate_json(h, "{\"group_by\": \"client_id\"}", &out));
  CHECK(number_after(strstr(out ? out : "", "\"client_id\":\"evil\""), "sum") == 18 * 1e289);
  CHECK(number_after(strstr(out ? out : "", "\"client_id\":\"honest\""), "sum") == 0.5);
  CHECK(!contains(out, "null") && !contains(out, "inf") && !contains(out, "NaN"));
  ingest_string_free(out);
  ingest_close(h);
}

/* ---- runner ------------------------------------------------------------ */

static void remove_scratch(void) {
  DIR *d = opendir(scratch);
  if (d == NULL) return;
  struct dirent *e;
  char path[512];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", scratch, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(scratch);
}

#define TEST(fn) {#fn, fn}

/* Issue 16: each hostile item of a batch is rejected alone with its code;
   the good ones are stored; only text that is not JSON fails the call, and
   the error names the item. */
static void test_hostile_items_are_rejected_alone(void) {
  IngestHandle *h = open_memory();
  const char *batch =
      "[{\"client_id\": \"g1\", \"amount\": 1, \"ts\": 0},"
      " {\"client_id\": \"s\", \"amount\": 1, \"ts\": 0, \"note\": \"\\ud800\"},"
      " {\"client_id\": \"n\", \"amount\": 1, \"ts\": 0, \"x\": 1e400},"
      " {\"client_id\": \"r\", \"amount\": 1, \"ts\": 0, \"$serde_json::private::Number\": \"1\"},"
      " {\"source\": \"A\", \"payload\": {\"source\": \"C\", \"amount\": 1, \"ts\": 0}},"
      " {\"client_id\": \"l\", \"amount\": 1, \"ts\": \"2016-12-31T23:59:60Z\"},"
      " {\"client_id\": \"g2\", \"amount\": 1, \"ts\": 0}]";
  char *out = NULL;
  CHECK_OK(ingest_submit_batch_json(h, batch, &out));
  const char *codes[] = {"invalid_text", "not_finite", "reserved_key", "conflicting_fields", "bad_timestamp"};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    char want[64];
    snprintf(want, sizeof want, "\"code\":\"%s\"", codes[i]);
    CHECK(contains(out, want));
  }
  ingest_string_free(out);
  CHECK(stat(h, "stored_events") == 2 && stat(h, "rejected") == 5);
  /* The dead letters list as JSON: nothing stored reads as infinity. */
  CHECK_OK(ingest_rejected_json(h, "{\"limit\": 100}", &out));
  CHECK(out != NULL && !contains(out, "Infinity") && !contains(out, "1e400"));
  ingest_string_free(out);
  out = SENTINEL;
  CHECK_STATUS(ingest_submit_batch_json(h, "[{\"client_id\": \"g3\", \"amount\": 1, \"ts\": 0}, {\"a\" 1}]", &out),
               INGEST_INVALID_ARGUMENT);
  CHECK(contains(ingest_last_error(), "item 1") && out == SENTINEL);
  CHECK(stat(h, "stored_events") == 2);
  ingest_close(h);
}

/* ---- the data lifecycle --------------------------------------------------- */

static void test_prune_keeps_totals_and_refuses_inside_the_window(void) {
  char path[512], archive[512];
  scratch_path(path, sizeof path, "prune.db");
  scratch_path(archive, sizeof archive, "prune.ndjson");
  remove(archive);
  IngestHandle *open_rules = NULL;
  CHECK_OK(ingest_open(path, NULL, &open_rules));
  expect_outcome(open_rules, SEED_A, "accepted");
  char *before = NULL;
  CHECK_OK(ingest_aggregate_json(open_rules, "{\"group_by\": \"month\"}", &before));
  char *report = SENTINEL;
  /* Without max_age a retry of a removed event would count again: refused. */
  CHECK_STATUS(ingest_prune_json(open_rules, "{\"before\": \"2025-01-01\"}", &report), INGEST_INVALID_ARGUMENT);
  CHECK(contains(ingest_last_error(), "max_age") && report == SENTINEL);
  ingest_close(open_rules);

  IngestHandle *h = NULL;
  CHECK_OK(ingest_open(path, "{\"max_age\": \"30d\"}", &h));
  CHECK_STATUS(ingest_prune_json(h, "{\"before\": \"2999-01-01\"}", &report), INGEST_INVALID_ARGUMENT);
  CHECK(contains(ingest_last_error(), "inside the acceptance window"));
  CHECK_STATUS(ingest_prune_json(h, "{\"archive\": \"x\"}", &report), INGEST_INVALID_ARGUMENT);
  CHECK_STATUS(ingest_prune_json(NULL, "{}", &report), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_prune_json(h, NULL, &report), INGEST_NULL_POINTER);
  CHECK_STATUS(ingest_prune_json(h, "{\"before\": \"2025-01-01\"}", NULL), INGEST_NULL_POINTER);
  CHECK(report == SENTINEL);

  char request[700];
  snprintf(request, sizeof request, "{\"before\": \"2025-01-01\", \"archive\": \"%s\"}", archive);
  CHECK_OK(ingest_prune_json(h, request, &report));
  CHECK(json_number(report, "events") == 1);
  ingest_string_free(report);
  CHECK(stat(h, "stored_events") == 0);
  /* The rollups stay: the month total is the same. */
  char *after = NULL;
  CHECK_OK(ingest_aggregate_json(h, "{\"group_by\": \"month\"}", &after));
  CHECK(json_number(after, "count") == json_number(before, "count") && json_number(after, "count") == 1);
  CHECK(json_number(after, "sum") == json_number(before, "sum"));
  ingest_string_free(before);
  ingest_string_free(after);
  /* Sent again, it is too old: never counted twice. */
  expect_outcome(h, SEED_A, "rejected");
  FILE *f = fopen(archive, "r");
  CHECK(f != NULL);
  if (f) {
    char line[4096];
    CHECK(fgets(line, sizeof line, f) != NULL && contains(line, "\"kind\":\"event\""));
    fclose(f);
  }
  ingest_close(h);
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(scratch, sizeof scratch, "%s/ingest-c-tests-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(scratch) == NULL) {
    perror("mkdtemp");
    return 2;
  }
  const struct {
    const char *name;
    test_fn fn;
  } tests[] = {
      TEST(test_version_and_status_names),
      TEST(test_null_is_a_noop_for_close_and_free),
      TEST(test_last_error_is_cleared_by_a_success),
      TEST(test_last_error_is_per_thread),
      TEST(test_open_memory_and_file),
      TEST(test_open_null_arguments),
      TEST(test_open_invalid_utf8),
      TEST(test_open_invalid_rules),
      TEST(test_open_with_rules),
      TEST(test_open_with_options),
      TEST(test_open_unopenable_path),
      TEST(test_open_corrupt_file),
      TEST(test_submit_seed_outcomes),
      TEST(test_submit_errors),
      TEST(test_submit_batch),
      TEST(test_hostile_items_are_rejected_alone),
      TEST(test_prune_keeps_totals_and_refuses_inside_the_window),
      TEST(test_check_stores_nothing),
      TEST(test_submit_fields),
      TEST(test_utf8_text_round_trips),
      TEST(test_event_id_dedup_key),
      TEST(test_attributes_are_kept),
      TEST(test_large_batch),
      TEST(test_aggregate),
      TEST(test_aggregate_bad_queries),
      TEST(test_events_listing),
      TEST(test_rejected_listing),
      TEST(test_stats_and_rules),
      TEST(test_reprocess_rejected),
      TEST(test_failure_before_insert),
      TEST(test_failure_after_insert),
      TEST(test_failure_after_commit),
      TEST(test_failure_aggregate),
      TEST(test_failure_counts_and_disarm),
      TEST(test_fault_matrix),
      TEST(test_exact_one_client_cannot_erase_anothers_amounts),
      TEST(test_exact_every_view_gives_the_sum_rounded_once),
      TEST(test_exact_no_amount_makes_a_total_infinite),
      TEST(test_threads_share_one_handle),
      TEST(test_threads_with_own_handles_share_one_file),
      TEST(test_processes_share_one_file),
      TEST(test_hostile_writers_never_fail_honest_ones),
      TEST(test_postgres_by_url),
      TEST(test_handles_share_one_postgres_database),
  };
  int passed = 0, failed = 0;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    current_failures = 0;
    tests[i].fn();
    if (current_failures == 0) {
      passed++;
      printf("ok   %s\n", tests[i].name);
    } else {
      failed++;
      printf("FAIL %s (%d checks)\n", tests[i].name, current_failures);
    }
    fflush(stdout);
  }
  remove_scratch();
  printf("c-tests: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
