#include "pg.hpp"

#include "routes_spi.hpp"

namespace rr {

int spi_count_routes()
{
    int rc = SPI_execute("SELECT pg_catalog.count(*)::pg_catalog.int4 FROM replica_router.routes", true, 0);
    if (rc != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "counting replica_router.routes failed: %s", SPI_result_code_string(rc));
    bool isnull;
    return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

Micros interval_micros(const Interval *iv)
{
    Micros days = 0, months = 0, sum = 0;
    if (__builtin_mul_overflow(static_cast<Micros>(iv->day), static_cast<Micros>(USECS_PER_DAY), &days) ||
        __builtin_mul_overflow(static_cast<Micros>(iv->month), static_cast<Micros>(DAYS_PER_MONTH * USECS_PER_DAY),
                               &months) ||
        __builtin_add_overflow(iv->time, days, &sum) || __builtin_add_overflow(sum, months, &sum)) {
        int64_t sign = iv->month != 0 ? iv->month : iv->day != 0 ? iv->day : iv->time;
        return sign < 0 ? PG_INT64_MIN : PG_INT64_MAX;
    }
    return sum;
}

int spi_read_routes(RouteRow *out, int cap, int *total)
{
    // The interval is converted here, not in SQL: arithmetic in the query
    // could overflow on a huge max_lag and fail every later read.
    int rc = SPI_execute("SELECT operation, target, coalesce(balance, ''), max_lag"
                         " FROM replica_router.routes ORDER BY operation",
                         true, 0);
    if (rc != SPI_OK_SELECT)
        elog(ERROR, "reading replica_router.routes failed: %s", SPI_result_code_string(rc));
    *total = static_cast<int>(SPI_processed);
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
        Datum lag = SPI_getbinval(tup, desc, 4, &isnull);
        row.max_lag = isnull ? -1 : interval_micros(DatumGetIntervalP(lag));
        if (row.max_lag < 0)
            row.max_lag = isnull ? -1 : 0;
        ++n;
    }
    return n;
}

} // namespace rr
