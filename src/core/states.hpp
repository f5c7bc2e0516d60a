// A replica's routing states: names, severities, whether reads go there.
// The one table every other place reads (the worker, shared memory, the
// hint table, SQL through replica_router.states(), the check command through
// SQL). C++-only, no dependencies: it lives in shared memory and in SQL.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rr {

enum class NodeState : uint8_t {
    unknown = 0,
    healthy,
    lagging,
    down,
    promoted,
    self,
    foreign,
    diverged,
    stale,
    disabled,
    primary,
    slow,  // judged when read, like stale: a poll is overdue (rto.hpp)
};
constexpr std::size_t kStateCount = 12;

enum class Severity : uint8_t { ok, warning, critical };

struct StateInfo {
    NodeState state;
    const char *name;
    Severity severity;  // of the state itself; healthy and lagging are then judged by their lag
    bool lag_judged;    // severity also depends on replay lag (lag_warning, lag_critical)
    bool routable;      // recommend() may send reads there (lagging: only within a caller's max_lag)
    bool reachable;     // its last poll answered in time (Prometheus' *_up)
    const char *meaning;
};

// Indexed by NodeState.
inline constexpr StateInfo kStates[kStateCount] = {
    {NodeState::unknown, "unknown", Severity::warning, false, false, false, "registered, not polled yet"},
    {NodeState::healthy, "healthy", Severity::ok, true, true, true, "in recovery, same cluster, replay lag within max_lag"},
    {NodeState::lagging, "lagging", Severity::ok, true, false, true,
     "replay lag over max_lag; routed only when the caller or route allows that lag"},
    {NodeState::down, "down", Severity::critical, false, false, false, "cannot connect or answer within the timeouts"},
    {NodeState::promoted, "promoted", Severity::critical, false, false, true, "not in recovery any more"},
    {NodeState::self, "self", Severity::warning, false, false, true,
     "not reported since 1.2 (the primary's own entry is primary); 1.1: the entry is this server"},
    {NodeState::foreign, "foreign", Severity::critical, false, false, true, "a replica of another cluster"},
    {NodeState::diverged, "diverged", Severity::critical, false, false, true,
     "in recovery, but off the primary's timeline history"},
    {NodeState::stale, "stale", Severity::critical, false, false, false, "no successful poll for stale_after"},
    {NodeState::disabled, "disabled", Severity::ok, false, false, false, "enabled = false in the registry"},
    {NodeState::primary, "primary", Severity::ok, false, false, true,
     "the member writes go to: out of recovery, on the newest timeline, followed by the others"},
    {NodeState::slow, "slow", Severity::warning, true, false, false,
     "healthy or lagging, but its poll is overdue beyond its usual round trip; routed again once it answers"},
};

constexpr const StateInfo &state_info(NodeState s) noexcept
{
    return kStates[static_cast<std::size_t>(s) < kStateCount ? static_cast<std::size_t>(s) : 0];
}
constexpr const char *state_name(NodeState s) noexcept { return state_info(s).name; }
const char *severity_name(Severity s) noexcept;
// False (and *out unchanged) for a name that is no state.
bool parse_state(const char *name, NodeState *out) noexcept;

} // namespace rr
