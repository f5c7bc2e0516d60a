// Which member is the primary. The registry lists the cluster's members;
// their roles are found by polling, never registered: the primary is the
// member out of recovery on the newest timeline that the others stream from.
// Members are passed as pointers (the worker's own records, not copied).
// Every node's worker runs the same choice over its own polls, so every node
// names the same primary without talking to the others. C++-only.
#pragma once

#include "hint.hpp"

namespace rr {

// This server, as the worker sees it without polling itself.
struct LocalServer {
    bool in_recovery = true;
    uint32_t timeline = 0;
    Lsn lsn = 0;               // out of recovery: its WAL write position
    uint64_t system_id = 0;
    int32_t port = 0;
};

struct PrimaryChoice {
    enum class Kind : uint8_t { none, local, member };
    Kind kind = Kind::none;
    int index = -1;            // the member entry (also for local, when registered); -1 = none
    uint32_t timeline = 0;
    Lsn lsn = 0;               // its WAL position as last seen
    int followers = 0;         // members streaming from it
};

// The member `replica` streams from (its WAL receiver's sender host and
// port), or -1. A sender given as a socket directory or a loopback address
// matches a member on the same port: one machine, one port, one server.
int upstream_of(const NodeHint *const *nodes, std::size_t n, const NodeHint &replica) noexcept;

// True when the sender (host, port) names this server.
bool sender_is_local(const NodeHint &replica, int32_t local_port) noexcept;

// Among the members whose last poll succeeded, of this cluster, out of
// recovery, and this server when it is out of recovery: the newest
// timeline, then the most followers, then this server, then the newest WAL
// position, then the first registered.
PrimaryChoice choose_primary(const NodeHint *const *nodes, std::size_t n, const LocalServer &local) noexcept;

// The member answered its last poll (it was reachable then).
inline bool poll_ok(const NodeHint &h) noexcept { return h.has_result && h.failures == 0; }

} // namespace rr
