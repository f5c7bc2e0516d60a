// recommend() on a standby: no worker runs there and shared memory is empty,
// so the hints come from the tables the primary's worker writes, which
// streaming replication brings here. They are trusted only while the
// primary's heartbeat is recent (replica_router.standby_max_hint_age).
#pragma once

#include "primary.hpp"
#include "routing.hpp"

namespace rr {

struct StandbyHints {
    NodeHint *nodes = nullptr;  // palloc'd
    std::size_t n = 0;
    RouteRow *routes = nullptr; // palloc'd
    std::size_t nroutes = 0;
    PrimaryInfo primary{};
    bool fresh = false;
    Micros stale_after = 0;     // hint rows are rewritten only on change and heartbeat
    char why_not_fresh[256] = "";
};

// Reads the hints, routes and heartbeat through SPI (may ereport).
void standby_load(StandbyHints &out, Micros now);

} // namespace rr
