#include "backoff.hpp"

namespace rr {

Micros retry_delay(uint32_t failures, Micros failing_for, Micros interval, uint64_t random,
                   const BackoffPolicy &p) noexcept
{
    if (failures <= p.free_failures || interval <= 0 || p.cap <= interval || failing_for < p.cap)
        return 0;
    Micros d = failing_for / 2;
    if (d > p.cap)
        d = p.cap;
    if (d <= interval)
        return 0;
    Micros half = d / 2;
    Micros jitter = half > 0 ? static_cast<Micros>(random % static_cast<uint64_t>(half + 1)) : 0;
    Micros delay = half + jitter;
    return delay > interval ? delay : interval;
}

} // namespace rr
