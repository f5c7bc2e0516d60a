// When to try a failing replica again. A replica that has been failing for
// less than the cap (retry_max_interval, 10 s) is retried at the poll
// interval: a replica that was healthy is marked down at its first failure,
// and one that restarts or comes back after a short outage is readmitted as
// promptly as before. One that keeps failing (wrong password, connection
// refused, a host gone for good) is then retried after a pause of about half
// the time it has been failing (retries spaced geometrically, as exponential
// back-off), with jitter so that many replicas failing together do not retry
// in lockstep, and never more than the cap apart: its server no longer logs a
// FATAL twice a second. C++-only.
#pragma once

#include "hint.hpp"

namespace rr {

struct BackoffPolicy {
    uint32_t free_failures = 3;   // failures in a row always retried at the poll interval
    Micros cap = 10'000'000;      // replica_router.retry_max_interval: grace period and longest pause
};

// Delay before the next try of a replica that has failed `failures` times in
// a row, for `failing_for` since its first failure, polled every `interval`;
// `random` (any 64 bits) draws the jitter: uniform in [d/2, d] of
// d = min(failing_for / 2, cap), never under the interval. 0 means "at the
// next poll as usual".
Micros retry_delay(uint32_t failures, Micros failing_for, Micros interval, uint64_t random,
                   const BackoffPolicy &p = {}) noexcept;

} // namespace rr
