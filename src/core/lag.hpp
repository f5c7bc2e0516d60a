// Replay lag in seconds from a history of the primary's WAL position.
// C++-only. A replica's lag is how long ago the primary first passed the
// replica's replay LSN; a replica that has replayed everything the primary had
// has zero lag, however long the primary has been idle.
#pragma once

#include "hint.hpp"

#include <array>
#include <cstddef>

namespace rr {

class LsnHistory {
public:
    // Record the primary's position at time `now`. A sample is kept only when
    // the position moved, so an idle primary does not push history out.
    void record(Micros now, Lsn primary_lsn) noexcept;

    // Lag of a replica that had replayed up to `replay` when polled at
    // `polled_at`, against the primary position `primary_at_poll` sampled just
    // before the poll. `last_replay_ts` (0 if unknown) bounds the estimate when
    // the replay position is older than the whole history.
    Micros lag(Lsn replay, Lsn primary_at_poll, Micros polled_at, Micros last_replay_ts) const noexcept;

    // The same, as an upper bound (issue #12: max_lag as a guarantee): from
    // the last time the primary was seen at or before `replay`, so the
    // replica has replayed everything the primary had written `polled_at -
    // result` earlier. lag() estimates, this errs by up to one sample
    // interval the other way.
    Micros lag_bound(Lsn replay, Lsn primary_at_poll, Micros polled_at, Micros last_replay_ts) const noexcept;

    // WAL generated per second over the last `window` (or the history held,
    // if shorter), up to `now` when the primary was at `current`.
    double rate(Micros now, Lsn current, Micros window) const noexcept;

    std::size_t size() const noexcept { return count_; }

private:
    struct Sample {
        Lsn lsn;
        Micros first_seen;
        Micros last_seen;  // the last record() at this position
    };
    static constexpr std::size_t kCapacity = 4096;
    std::array<Sample, kCapacity> ring_{};
    std::size_t head_ = 0;  // index of the oldest sample
    std::size_t count_ = 0;

    const Sample &at(std::size_t i) const noexcept { return ring_[(head_ + i) % kCapacity]; }
    // Index of the first sample past `replay` (count_ when none is).
    std::size_t first_past(Lsn replay) const noexcept;
};

} // namespace rr
