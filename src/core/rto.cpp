#include "rto.hpp"

#include <cstdio>

namespace rr {

void RttEstimator::sample(Micros rtt) noexcept
{
    if (rtt < 0)
        rtt = 0;
    if (samples_ == 0) {
        srtt_ = rtt;
        rttvar_ = rtt / 2;
    } else {
        // RFC 6298 2.3: beta = 1/4, alpha = 1/8; rttvar first, with the old srtt.
        Micros diff = srtt_ > rtt ? srtt_ - rtt : rtt - srtt_;
        rttvar_ = rttvar_ - rttvar_ / 4 + diff / 4;
        srtt_ = srtt_ - srtt_ / 8 + rtt / 8;
    }
    if (samples_ < UINT32_MAX)
        ++samples_;
}

Micros RttEstimator::rto(Micros floor, Micros ceiling) const noexcept
{
    if (samples_ == 0)
        return ceiling;
    Micros var = 4 * rttvar_;
    Micros r = srtt_ + (var > kGranularity ? var : kGranularity);
    if (r < floor)
        r = floor;
    if (ceiling > 0 && r > ceiling)
        r = ceiling;
    return r;
}

void poll_error_text(const NodeHint &h, Micros now, char *out, std::size_t out_len) noexcept
{
    if (out_len == 0)
        return;
    out[0] = '\0';
    int used = 0;
    auto add = [&](const char *fmt, auto... args) {
        if (used < 0 || static_cast<std::size_t>(used) >= out_len)
            return;
        int w = std::snprintf(out + used, out_len - static_cast<std::size_t>(used), fmt, args...);
        if (w > 0)
            used += w;
    };
    if (h.slow && h.poll_since != 0) {
        Micros out_for = now > h.poll_since ? now - h.poll_since : 0;
        Micros over = out_for > h.rto ? out_for - h.rto : 0;
        add("slow: poll overdue by %lld ms (unanswered for %lld ms, limit %lld ms from a smoothed round trip of "
            "%.1f ms); left out of routing until it answers",
            static_cast<long long>(over / 1000), static_cast<long long>(out_for / 1000),
            static_cast<long long>(h.rto / 1000), static_cast<double>(h.srtt) / 1000.0);
    }
    if (h.error[0] != '\0')
        add("%s%s", used > 0 ? "; " : "", h.error);
    if (h.next_try > now)
        add("%s%u failures in a row: next try in %.1f s", used > 0 ? "; " : "", h.failures,
            static_cast<double>(h.next_try - now) / 1e6);
}

} // namespace rr
