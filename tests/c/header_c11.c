/* The header on its own, as strict C11: compiled by `make test-c`. */
#include "ingest.h"

/* Out-structs are filled by the library: their layout is part of the ABI. */
_Static_assert(sizeof(IngestStatus) == sizeof(int), "status is an int-sized enum");
_Static_assert(INGEST_OK == 0, "INGEST_OK is zero");

int ingest_header_compiles_as_c11(void);
int ingest_header_compiles_as_c11(void) { return INGEST_OK; }
