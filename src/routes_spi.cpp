#include "pg.hpp"

#include "routes_spi.hpp"

namespace rr {

int spi_count_routes()
{
    int rc = SPI_execute("SELECT count(*)::int4 FROM replica_router.routes", true, 0);
    if (rc != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "counting replica_router.routes failed: %s", SPI_result_code_string(rc));
    bool isnull;
    return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

int spi_read_routes(RouteRow *out, int cap)
{
    int rc = SPI_execute("SELECT operation, target, coalesce(balance, ''),"
                         " coalesce((extract(epoch FROM max_lag) * 1000000)::int8, -1)"
                         " FROM replica_router.routes ORDER BY operation",
                         true, 0);
    if (rc != SPI_OK_SELECT)
        elog(ERROR, "reading replica_router.routes failed: %s", SPI_result_code_string(rc));
    int n = 0;
    for (uint64 i = 0; i < SPI_processed && n < cap; ++i) {
        HeapTuple tup = SPI_tuptable->vals[i];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bool isnull;
        RouteRow &row = out[n];
        copy_str(row.operation, sizeof row.operation, SPI_getvalue(tup, desc, 1));
        if (!parse_target(SPI_getvalue(tup, desc, 2), &row.target))
            continue;
        row.has_balance = parse_balance(SPI_getvalue(tup, desc, 3), &row.balance);
        row.max_lag = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
        ++n;
    }
    return n;
}

} // namespace rr
