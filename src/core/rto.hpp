// How long a replica normally takes to answer a poll, learned as TCP learns
// its retransmission timeout (RFC 6298): a smoothed round trip plus four
// times its variation, never under a floor. A poll outstanding past that is
// overdue: the replica is `slow` and left out of routing until the answer
// arrives (no damping), while `down` stays for the real timeouts
// (query_timeout). C++-only, trivially copyable, no allocation.
#pragma once

#include "hint.hpp"

namespace rr {

class RttEstimator {
public:
    // A finished poll's round trip (on an open connection: connecting is not
    // part of a poll's normal time).
    void sample(Micros rtt) noexcept;
    // The retransmission-style timeout: srtt + max(granularity, 4 * rttvar),
    // at least `floor`, at most `ceiling`. With no sample yet: `ceiling`
    // (nothing is known, so only the real timeout judges).
    Micros rto(Micros floor, Micros ceiling) const noexcept;
    Micros srtt() const noexcept { return srtt_; }
    Micros rttvar() const noexcept { return rttvar_; }
    uint32_t samples() const noexcept { return samples_; }

    static constexpr Micros kGranularity = 1'000;  // the worker waits in milliseconds

private:
    Micros srtt_ = 0;
    Micros rttvar_ = 0;
    uint32_t samples_ = 0;
};
static_assert(std::is_trivially_copyable_v<RttEstimator>);

// True when a poll started at `since` (0: none in flight) is overdue at `now`.
constexpr bool poll_overdue(Micros since, Micros rto, Micros now) noexcept
{
    return since != 0 && rto > 0 && now - since > rto;
}

// The error text the status and lag views show: the hint's own error, with
// what the poll timing adds: a slow replica's overdue poll, a backed-off
// replica's next try ("" when there is nothing to say).
void poll_error_text(const NodeHint &h, Micros now, char *out, std::size_t out_len) noexcept;

} // namespace rr
