// Which node answers a request: pure functions over the shared hints.
// C++-only; called under the shared-memory lock, so nothing here allocates,
// throws or calls into PostgreSQL.
#pragma once

#include "hint.hpp"

#include <cstddef>

namespace rr {

struct ClassifyInput {
    bool enabled;
    bool polled;          // a poll has finished at least once
    bool last_poll_ok;
    bool in_recovery;
    uint64_t system_id;
    uint64_t primary_system_id;
    Micros lag;
    Micros max_lag;
};

NodeState classify(const ClassifyInput &in) noexcept;

// A healthy or lagging hint whose last success is older than stale_after is
// reported and routed as stale: the worker may have stopped.
NodeState effective_state(const NodeHint &h, Micros now, Micros stale_after) noexcept;

enum class Operation { read, write, other };

struct RouteRequest {
    Operation op = Operation::read;
    Micros max_lag = 0;      // effective threshold for this call
    bool explicit_max_lag = false;
    bool has_min_lsn = false;
    Lsn min_lsn = 0;
    Micros now = 0;
    Micros stale_after = 0;
};

// Index of the chosen replica in `nodes`, or -1 for "no replica qualifies",
// with a one-line explanation in `reason`. `ticket` spreads reads round-robin.
int choose_replica(const NodeHint *nodes, std::size_t n, const RouteRequest &req, uint64_t ticket,
                   char *reason, std::size_t reason_len) noexcept;

} // namespace rr
