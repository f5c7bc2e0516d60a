// From an operation and the hints to a routing decision. C++-only and
// allocation-free: recommend() runs it under the shared-memory lock, and on
// a standby over hints read from the replicated tables.
#pragma once

#include "routing.hpp"

namespace rr {

struct DecideInput {
    const char *operation;       // as given
    bool has_max_lag;
    Micros max_lag;              // the caller's, when has_max_lag
    bool has_min_lsn;
    Lsn min_lsn;
    const char *zone;            // or nullptr
    Micros now;
    Micros stale_after;
    Micros default_max_lag;      // replica_router.max_lag
    Balance default_balance;     // replica_router.balance
    bool fallback_to_primary;
    bool strict_operations;
    const RouteRow *routes;      // nullptr: built-in read/write only
    std::size_t nroutes;
    Lsn primary_lsn;             // the primary's WAL write position now; 0 = unknown (RouteRequest)
    Lsn (*primary_lsn_now)() noexcept;  // or how to read it when needed (RouteRequest)
};

enum class Outcome {
    replica,           // nodes[index]
    primary,           // the primary, with a reason
    no_replica_error,  // none qualifies and fallback is off
    unknown_operation, // strict_operations and no route
};

struct Decision {
    Outcome outcome = Outcome::primary;
    int index = -1;
    Target target = Target::primary;
    RouteRequest req;            // the request as resolved (for candidates())
    bool fallback = true;        // whether the primary backs up the replicas
    char reason[512] = "";
};

// Resolves the operation's route (target, max_lag, balance) into d.
void resolve_route(const DecideInput &in, Decision &d) noexcept;

void decide(const DecideInput &in, const NodeHint *nodes, std::size_t n, uint64_t ticket, Decision &d) noexcept;

} // namespace rr
