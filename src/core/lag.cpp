#include "lag.hpp"

namespace rr {

void LsnHistory::record(Micros now, Lsn primary_lsn) noexcept
{
    if (count_ > 0 && at(count_ - 1).lsn >= primary_lsn) {
        Sample &last = ring_[(head_ + count_ - 1) % kCapacity];
        if (last.lsn == primary_lsn && now > last.last_seen)
            last.last_seen = now;
        return;
    }
    if (count_ == kCapacity) {
        head_ = (head_ + 1) % kCapacity;
        --count_;
    }
    ring_[(head_ + count_) % kCapacity] = Sample{primary_lsn, now, now};
    ++count_;
}

std::size_t LsnHistory::first_past(Lsn replay) const noexcept
{
    // Samples are sorted by LSN: binary search.
    std::size_t lo = 0, hi = count_;
    while (lo < hi) {
        std::size_t mid = (lo + hi) / 2;
        if (at(mid).lsn > replay)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

Micros LsnHistory::lag(Lsn replay, Lsn primary_at_poll, Micros polled_at, Micros last_replay_ts) const noexcept
{
    if (replay >= primary_at_poll)
        return 0;

    std::size_t lo = first_past(replay);

    Micros passed_at;
    if (lo == count_) {
        passed_at = polled_at; // history ends before the poll's own sample
    } else if (lo > 0) {
        passed_at = at(lo).first_seen;
    } else {
        // Older than everything we remember (or no history yet): the oldest
        // sample is a lower bound; the replica's last replayed commit may say more.
        passed_at = count_ > 0 ? at(0).first_seen : polled_at;
        if (last_replay_ts > 0 && last_replay_ts < passed_at)
            passed_at = last_replay_ts;
    }
    Micros lag = polled_at - passed_at;
    return lag > 0 ? lag : 0;
}

Micros LsnHistory::lag_bound(Lsn replay, Lsn primary_at_poll, Micros polled_at, Micros last_replay_ts) const noexcept
{
    if (replay >= primary_at_poll)
        return 0;
    std::size_t lo = first_past(replay);
    // The last time the primary is known to have been at or before `replay`.
    Micros known;
    if (lo > 0) {
        known = at(lo - 1).last_seen;
    } else {
        // Older than everything remembered: the replica's last replayed
        // commit was written when the primary was no further; without it,
        // the oldest sample is the best there is.
        known = count_ > 0 ? at(0).first_seen : polled_at;
        if (last_replay_ts > 0 && last_replay_ts < known)
            known = last_replay_ts;
    }
    Micros lag = polled_at - known;
    return lag > 0 ? lag : 0;
}

double LsnHistory::rate(Micros now, Lsn current, Micros window) const noexcept
{
    if (count_ == 0)
        return 0.0;
    Micros from = now - window;
    if (at(0).first_seen > from)
        from = at(0).first_seen;
    if (now <= from)
        return 0.0;
    // Position at `from`: the last sample first seen at or before it.
    std::size_t lo = 0, hi = count_;
    while (lo < hi) {
        std::size_t mid = (lo + hi) / 2;
        if (at(mid).first_seen <= from)
            lo = mid + 1;
        else
            hi = mid;
    }
    Lsn start = at(lo > 0 ? lo - 1 : 0).lsn;
    if (current <= start)
        return 0.0;
    return static_cast<double>(current - start) * 1e6 / static_cast<double>(now - from);
}

} // namespace rr
