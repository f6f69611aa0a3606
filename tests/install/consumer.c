/* A program built against an installed libingest: found with pkg-config
 * (or CMake's find_package), run with the installed shared library. It
 * checks the header's version against the library's, stores the original
 * design's event twice, and reads the total back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ingest.h>

int main(void) {
  char header[32];
  snprintf(header, sizeof header, "%d.%d.%d", INGEST_VERSION_MAJOR, INGEST_VERSION_MINOR, INGEST_VERSION_PATCH);
  if (strcmp(header, ingest_version()) != 0) {
    fprintf(stderr, "version: header %s, library %s\n", header, ingest_version());
    return 1;
  }
  IngestHandle *h = NULL;
  if (ingest_open(":memory:", NULL, &h) != INGEST_OK) {
    fprintf(stderr, "open: %s\n", ingest_last_error());
    return 1;
  }
  const char *event =
      "{\"source\": \"clientA\", \"payload\": {\"metric\": \"sales\", \"value\": 1200, \"timestamp\": \"2024-01-01\"}}";
  char *out = NULL;
  int ok = 1;
  for (int i = 0; i < 2; i++) {
    ok &= ingest_submit_json(h, event, &out) == INGEST_OK && strstr(out, i ? "duplicate" : "accepted") != NULL;
    ingest_string_free(out);
    out = NULL;
  }
  ok &= ingest_aggregate_json(h, "{\"metric\": \"sales\"}", &out) == INGEST_OK && strstr(out, "\"count\":1") != NULL;
  printf("libingest %s: %s\n", ingest_version(), out ? out : ingest_last_error());
  ingest_string_free(out);
  ingest_close(h);
  return ok ? 0 : 1;
}
