// The same check from C++17: the header has extern "C" guards.
#include <cstring>
#include <iostream>
#include <memory>
#include <string>

#include <ingest.h>

int main() {
  IngestHandle *raw = nullptr;
  if (ingest_open(":memory:", nullptr, &raw) != INGEST_OK) {
    std::cerr << "open: " << ingest_last_error() << "\n";
    return 1;
  }
  std::unique_ptr<IngestHandle, void (*)(IngestHandle *)> h(raw, ingest_close);
  char *out = nullptr;
  if (ingest_submit_json(h.get(), R"({"client_id": "cpp", "metric": "m", "amount": 2.5, "ts": 0})", &out) != INGEST_OK) {
    std::cerr << "submit: " << ingest_last_error() << "\n";
    return 1;
  }
  std::string answer(out);
  ingest_string_free(out);
  std::cout << "C++ against libingest " << ingest_version() << " (header " << INGEST_VERSION_MAJOR << "." << INGEST_VERSION_MINOR << "): " << answer << "\n";
  return answer.find("\"accepted\"") != std::string::npos && INGEST_VERSION_MAJOR == 0 ? 0 : 1;
}
