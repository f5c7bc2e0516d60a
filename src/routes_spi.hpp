// Reading replica_router.routes through SPI: shared by the worker (which
// mirrors routes into shared memory) and recommend() on a standby.
// PostgreSQL side: call inside SPI_connect(); may ereport.
#pragma once

#include "routing.hpp"

namespace rr {
// Reads at most `cap` routes into `out`; returns how many.
int spi_read_routes(RouteRow *out, int cap);
// How many rows the routes table has (an upper bound for spi_read_routes).
int spi_count_routes();
} // namespace rr
