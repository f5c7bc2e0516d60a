// replica_router.metrics(): the views as Prometheus text, rendered by the
// same code as replica_router serve's /metrics (src/core/exposition.cpp).
#include "pg.hpp"

#include "exposition.hpp"
#include "guard.hpp"

#include <string>

namespace rr {

namespace {

// snapshot()'s document, copied into the caller's memory context. Plain C
// over SPI with no C++ object alive: an ERROR in the views (the library not
// preloaded, say) reaches the client as raised, with its SQLSTATE and hint.
char *read_snapshot()
{
    MemoryContext caller = CurrentMemoryContext;
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    int rc = SPI_execute("SELECT replica_router.snapshot()::pg_catalog.text", true, 1);
    if (rc != SPI_OK_SELECT)
        elog(ERROR, "SELECT replica_router.snapshot() failed: %s", SPI_result_code_string(rc));
    if (SPI_processed != 1)
        elog(ERROR, "replica_router.snapshot() returned no row");
    char *text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    char *copy = text != nullptr ? MemoryContextStrdup(caller, text) : nullptr;
    SPI_finish();
    if (copy == nullptr)
        elog(ERROR, "replica_router.snapshot() returned NULL");
    return copy;
}

} // namespace

} // namespace rr

RR_SQL_FUNCTION(replica_router_metrics, "replica_router.metrics()")
{
    const char *document = rr::read_snapshot();
    std::string text = rr::render_metrics(document);
    Datum result = 0;
    rr::pg_call([&] { result = PointerGetDatum(cstring_to_text_with_len(text.data(), static_cast<int>(text.size()))); });
    return result;
}
