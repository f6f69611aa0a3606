// ingest.h from C++17: the extern "C" guards, and ownership held by
// unique_ptr with the library's own free functions. Built and run by
// `make test-c`.
// First, so that the header is shown to stand on its own in C++ too.
#include "ingest.h"

#include <cstdio>
#include <memory>
#include <string>

namespace {

struct HandleCloser {
  void operator()(IngestHandle *h) const { ingest_close(h); }
};
struct StringFree {
  void operator()(char *s) const { ingest_string_free(s); }
};
using Handle = std::unique_ptr<IngestHandle, HandleCloser>;
using String = std::unique_ptr<char, StringFree>;

// The outcome JSON of one submission, or "" with the error printed.
std::string submit(const Handle &h, const char *event) {
  char *out = nullptr;
  IngestStatus s = ingest_submit_json(h.get(), event, &out);
  if (s != INGEST_OK) {
    std::fprintf(stderr, "submit: %s: %s\n", ingest_status_name(s), ingest_last_error());
    return "";
  }
  return String(out).get();
}

}  // namespace

int main() {
  IngestHandle *raw = nullptr;
  if (ingest_open(":memory:", nullptr, &raw) != INGEST_OK) {
    std::fprintf(stderr, "open: %s\n", ingest_last_error());
    return 1;
  }
  Handle h(raw);
  const char *event = R"({"client_id": "cpp", "metric": "builds", "value": 3, "ts": "2024-05-01T12:00:00Z"})";
  std::string first = submit(h, event), again = submit(h, event);
  IngestOutcome o{};
  IngestStatus s = ingest_submit_fields(h.get(), "cpp", "builds", 3.0, 1714564800000, nullptr, &o);
  char *agg = nullptr;
  if (ingest_aggregate_json(h.get(), R"({"client_id": "cpp"})", &agg) != INGEST_OK) return 1;
  String result(agg);
  std::printf("c++17: %s | %s | fast path %d id %lld | %s\n", first.c_str(), again.c_str(), static_cast<int>(o.status),
              static_cast<long long>(o.id), result.get());
  bool ok = first.find("\"accepted\"") != std::string::npos && again.find("\"duplicate\"") != std::string::npos &&
            s == INGEST_OK && o.status == INGEST_DUPLICATE && o.id == 1 &&
            std::string(result.get()).find("\"count\":1,") != std::string::npos;
  return ok ? 0 : 1;
}
