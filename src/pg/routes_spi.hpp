// Reading replica_router.routes through SPI: shared by the worker (which
// mirrors routes into shared memory) and recommend() on a standby.
// PostgreSQL side: call inside SPI_connect(); may ereport.
#pragma once

#include "pg.hpp"
#include "routing.hpp"

namespace rr {
// An interval in microseconds, saturating rather than overflowing: a huge
// interval allows any lag, a hugely negative one stays negative.
Micros interval_micros(const Interval *iv);

// Reads at most `cap` routes into `out`; returns how many, and sets *total to
// how many the table has (more than `cap` is an error for the caller to report).
int spi_read_routes(RouteRow *out, int cap, int *total);
// How many rows the routes table has (an upper bound for spi_read_routes).
int spi_count_routes();
} // namespace rr
