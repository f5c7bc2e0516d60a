#include "backoff.hpp"

namespace rr {

Micros retry_delay(uint32_t failures, Micros interval, uint64_t random, const BackoffPolicy &p) noexcept
{
    if (failures <= p.free_failures || interval <= 0)
        return 0;
    uint32_t doublings = failures - p.free_failures;  // 1, 2, ...
    Micros d = interval;
    for (uint32_t i = 0; i < doublings && d < p.cap; ++i)
        d *= 2;
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
