// When to try a failing replica again. A replica that fails a few times in a
// row is retried at the poll interval (a replica that was healthy is
// detected and readmitted promptly); after that the wait doubles per failure
// up to a cap, with jitter so that many replicas failing together (a network
// partition, a password change) do not retry in lockstep: a replica that
// keeps refusing (wrong password, connection refused) is not hit twice a
// second, and its log does not fill with FATALs. C++-only.
#pragma once

#include "hint.hpp"

namespace rr {

struct BackoffPolicy {
    uint32_t free_failures = 3;          // failures in a row retried at the poll interval
    Micros cap = 10'000'000;             // longest wait between tries (replica_router.retry_max_interval)
};

// Delay before the next try after `failures` failures in a row (1 = the
// first), with polls every `interval`; `random` (any 64 bits) draws the
// jitter: the delay is uniform in [d/2, d] of the exponential step d.
// 0 means "at the next poll as usual".
Micros retry_delay(uint32_t failures, Micros interval, uint64_t random, const BackoffPolicy &p = {}) noexcept;

} // namespace rr
