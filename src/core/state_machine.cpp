#include "state_machine.hpp"

#include <cstring>

namespace rr {

const char *severity_name(Severity s) noexcept
{
    switch (s) {
    case Severity::ok: return "ok";
    case Severity::warning: return "warning";
    case Severity::critical: return "critical";
    }
    return "ok";
}

bool parse_state(const char *name, NodeState *out) noexcept
{
    if (name == nullptr)
        return false;
    for (const StateInfo &i : kStates)
        if (std::strcmp(name, i.name) == 0) {
            *out = i.state;
            return true;
        }
    return false;
}

const char *event_name(Event e) noexcept
{
    switch (e) {
    case Event::disabled: return "disabled";
    case Event::not_polled: return "not_polled";
    case Event::poll_failed: return "poll_failed";
    case Event::foreign: return "foreign";
    case Event::promoted: return "promoted";
    case Event::elected: return "elected";
    case Event::diverged: return "diverged";
    case Event::over_max_lag: return "over_max_lag";
    case Event::near_max_lag: return "near_max_lag";
    case Event::caught_up: return "caught_up";
    }
    return "?";
}

namespace {

const Transition *find(NodeState from, Event event) noexcept
{
    for (const Transition &t : kTransitions)
        if (t.event == event && (t.from & state_bit(from)) != 0)
            return &t;
    return nullptr;
}

} // namespace

NodeState target(NodeState from, Event event) noexcept
{
    const Transition *t = find(from, event);
    return t != nullptr ? t->to : from;
}

NodeState step(NodeState from, Event event, uint32_t streak, uint32_t needed) noexcept
{
    const Transition *t = find(from, event);
    if (t == nullptr)
        return from;
    if (t->rule == Rule::damped && (kDampedFrom & state_bit(from)) != 0 && streak < needed)
        return from;
    return t->to;
}

Event event_of(const ClassifyInput &in) noexcept
{
    if (!in.enabled)
        return Event::disabled;
    if (!in.polled)
        return Event::not_polled;
    if (!in.last_poll_ok)
        return Event::poll_failed;
    if (in.primary_system_id != 0 && in.system_id != in.primary_system_id)
        return Event::foreign;
    if (!in.in_recovery)
        return in.elected ? Event::elected : Event::promoted;
    if (in.diverged)
        return Event::diverged;
    if (in.lag > in.max_lag)
        return Event::over_max_lag;
    Micros exit_below = in.max_lag > in.hysteresis ? in.max_lag - in.hysteresis : 0;
    return in.lag >= exit_below && in.lag > 0 ? Event::near_max_lag : Event::caught_up;
}

NodeState effective_state(const NodeHint &h, Micros now, Micros stale_after) noexcept
{
    bool up = h.state == NodeState::healthy || h.state == NodeState::lagging;
    if (up && now - h.last_success > stale_after)
        return NodeState::stale;
    if (up && h.slow)
        return NodeState::slow;
    return h.state;
}

} // namespace rr
