// The per-replica state machine. A finished poll is read as one event; one
// declarative table says where each event leads from each state, with the
// two rules that slow a replica down: hysteresis (a lagging replica leaves
// only once clearly under max_lag) and damping (a replica that was bad comes
// back only after recovery_polls good polls in a row). Staleness is judged
// when hints are read (effective_state). C++-only.
#pragma once

#include "hint.hpp"

namespace rr {

// What one poll showed.
enum class Event : uint8_t {
    disabled,      // enabled = false in the registry
    not_polled,    // registered, no poll finished yet
    poll_failed,   // could not connect or answer within the timeouts
    foreign,       // another cluster's system identifier
    promoted,      // out of recovery, and not the member chosen as the primary
    elected,       // out of recovery, the member chosen as the primary (see members.hpp)
    diverged,      // in recovery, off the primary's timeline history
    over_max_lag,  // in recovery, lag > max_lag
    near_max_lag,  // in recovery, max_lag - hysteresis <= lag <= max_lag, lag > 0
    caught_up,     // in recovery, under max_lag - hysteresis (or no lag)
};
constexpr std::size_t kEventCount = 10;
const char *event_name(Event e) noexcept;

// Whether a transition waits for recovery_polls good polls (see kDampedFrom).
enum class Rule : uint8_t { always, damped };

struct Transition {
    Event event;
    uint32_t from;  // bit set of NodeStates this row applies to
    NodeState to;
    Rule rule;
};

constexpr uint32_t state_bit(NodeState s) { return 1u << static_cast<unsigned>(s); }
constexpr uint32_t kAnyState = ~0u;
// A replica in one of these states returns to healthy only after damping.
constexpr uint32_t kDampedFrom = state_bit(NodeState::down) | state_bit(NodeState::lagging) |
                                 state_bit(NodeState::promoted) | state_bit(NodeState::self) | state_bit(NodeState::primary) |
                                 state_bit(NodeState::foreign) | state_bit(NodeState::diverged);

// The first row matching (event, current state) applies.
inline constexpr Transition kTransitions[] = {
    {Event::disabled, kAnyState, NodeState::disabled, Rule::always},
    {Event::not_polled, kAnyState, NodeState::unknown, Rule::always},
    {Event::poll_failed, kAnyState, NodeState::down, Rule::always},
    {Event::foreign, kAnyState, NodeState::foreign, Rule::always},
    {Event::promoted, kAnyState, NodeState::promoted, Rule::always},
    {Event::elected, kAnyState, NodeState::primary, Rule::always},
    {Event::diverged, kAnyState, NodeState::diverged, Rule::always},
    {Event::over_max_lag, kAnyState, NodeState::lagging, Rule::always},
    // Hysteresis: near the limit a lagging replica stays lagging ...
    {Event::near_max_lag, state_bit(NodeState::lagging), NodeState::lagging, Rule::always},
    // ... and any other counts as caught up.
    {Event::near_max_lag, kAnyState, NodeState::healthy, Rule::damped},
    {Event::caught_up, kAnyState, NodeState::healthy, Rule::damped},
};

// Where `event` leads from `from`, before damping.
NodeState target(NodeState from, Event event) noexcept;
// Where `event` leads from `from` after damping, `streak` being the good
// polls in a row including this one and `needed` recovery_polls.
NodeState step(NodeState from, Event event, uint32_t streak, uint32_t needed) noexcept;

// What a poll showed, as the worker sees it.
struct ClassifyInput {
    bool enabled;
    bool polled;          // a poll has finished at least once
    bool last_poll_ok;
    bool in_recovery;
    uint64_t system_id;
    uint64_t primary_system_id;
    Micros lag;
    Micros max_lag;
    Micros hysteresis;    // a lagging replica stays lagging until lag < max_lag - hysteresis
    bool diverged;        // off the primary's timeline history (see off_history)
    bool elected;         // the member chosen as the primary (choose_primary)
};
Event event_of(const ClassifyInput &in) noexcept;

// A healthy or lagging hint whose last success is older than stale_after is
// reported and routed as stale: the worker may have stopped.
NodeState effective_state(const NodeHint &h, Micros now, Micros stale_after) noexcept;

} // namespace rr
