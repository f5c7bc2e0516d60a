#include "routing.hpp"

#include <cstdio>
#include <cstring>

namespace rr {

NodeState classify(const ClassifyInput &in) noexcept
{
    if (!in.enabled)
        return NodeState::disabled;
    if (!in.polled)
        return NodeState::unknown;
    if (!in.last_poll_ok)
        return NodeState::down;
    if (in.primary_system_id != 0 && in.system_id != in.primary_system_id)
        return NodeState::foreign;
    if (!in.in_recovery)
        return NodeState::promoted;
    if (in.lag > in.max_lag)
        return NodeState::lagging;
    return NodeState::healthy;
}

NodeState effective_state(const NodeHint &h, Micros now, Micros stale_after) noexcept
{
    if ((h.state == NodeState::healthy || h.state == NodeState::lagging) && now - h.last_success > stale_after)
        return NodeState::stale;
    return h.state;
}

namespace {

void format_lag(char *buf, std::size_t len, Micros lag)
{
    std::snprintf(buf, len, "%.1fs", static_cast<double>(lag) / 1e6);
}

} // namespace

int choose_replica(const NodeHint *nodes, std::size_t n, const RouteRequest &req, uint64_t ticket,
                   char *reason, std::size_t reason_len) noexcept
{
    // Two passes keep this allocation-free: count, then pick the ticket-th.
    auto qualifies = [&](const NodeHint &h, char *why, std::size_t why_len) -> bool {
        NodeState s = effective_state(h, req.now, req.stale_after);
        bool up = s == NodeState::healthy || (s == NodeState::lagging && req.explicit_max_lag);
        if (!up) {
            if (s == NodeState::lagging) {
                char lag[32];
                format_lag(lag, sizeof lag, h.lag);
                std::snprintf(why, why_len, "lagging (%s)", lag);
            } else {
                std::snprintf(why, why_len, "%s", state_name(s));
            }
            return false;
        }
        if (h.lag > req.max_lag) {
            char lag[32], max[32];
            format_lag(lag, sizeof lag, h.lag);
            format_lag(max, sizeof max, req.max_lag);
            std::snprintf(why, why_len, "lag %s over %s", lag, max);
            return false;
        }
        if (req.has_min_lsn && h.replay_lsn < req.min_lsn) {
            std::snprintf(why, why_len, "replayed only to %X/%X", static_cast<unsigned>(h.replay_lsn >> 32),
                          static_cast<unsigned>(h.replay_lsn));
            return false;
        }
        return true;
    };

    char why[96];
    std::size_t count = 0;
    for (std::size_t i = 0; i < n; ++i)
        if (qualifies(nodes[i], why, sizeof why))
            ++count;

    if (count > 0) {
        std::size_t pick = static_cast<std::size_t>(ticket % count);
        for (std::size_t i = 0; i < n; ++i) {
            if (!qualifies(nodes[i], why, sizeof why))
                continue;
            if (pick-- == 0) {
                std::snprintf(reason, reason_len, "healthy replica, round-robin among %zu", count);
                return static_cast<int>(i);
            }
        }
    }

    std::size_t used = 0;
    reason[0] = '\0';
    int head = std::snprintf(reason, reason_len, "no replica qualifies: ");
    used = head > 0 && static_cast<std::size_t>(head) < reason_len ? static_cast<std::size_t>(head) : 0;
    std::size_t start = used;
    if (n == 0) {
        std::snprintf(reason + used, reason_len - used, "none registered");
        return -1;
    }
    for (std::size_t i = 0; i < n; ++i) {
        qualifies(nodes[i], why, sizeof why);
        if (used + 1 >= reason_len)
            break;
        int w = std::snprintf(reason + used, reason_len - used, "%s%s %s", used > start ? ", " : "",
                              nodes[i].name, why);
        if (w > 0)
            used = used + static_cast<std::size_t>(w) < reason_len ? used + static_cast<std::size_t>(w) : reason_len - 1;
    }
    return -1;
}

} // namespace rr
