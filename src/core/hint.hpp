// Types shared by the worker, shared memory and the SQL functions.
// C++-only: no PostgreSQL headers, so routing and lag logic can be built and
// reasoned about without the server. Everything here is trivially copyable
// because it lives in shared memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "states.hpp"

namespace rr {

// Timestamps are PostgreSQL TimestampTz values: microseconds since 2000-01-01.
using Micros = int64_t;
using Lsn = uint64_t;

constexpr std::size_t kNameLen = 64;      // NAMEDATALEN
constexpr std::size_t kHostLen = 256;
constexpr std::size_t kErrorLen = 256;
constexpr std::size_t kMaxNodesHard = 256; // shared-memory capacity ceiling
constexpr std::size_t kMaxPools = 4096;    // pgbouncer pools over all nodes
constexpr std::size_t kMaxSlots = 128;



// Client connections on a node, by state (pg_stat_activity).
struct PoolCounts {
    int32_t active;
    int32_t idle;
    int32_t idle_in_xact;
    int32_t waiting;   // waiting on a lock
    int32_t reserved;  // superuser_reserved_connections (+ reserved_connections)
};

struct NodeHint {
    int32_t node_id;
    int32_t weight;
    int32_t port;
    NodeState state;
    bool enabled;
    bool in_recovery;
    bool replay_paused;
    bool has_result;       // at least one poll has succeeded
    Lsn receive_lsn;
    Lsn replay_lsn;
    int64_t lag_bytes;     // -1 when unknown
    Micros lag;            // replay lag, -1 when unknown
    Micros last_replay_ts; // 0 when the replica never replayed a transaction
    Micros last_poll;      // last attempt finished (success or failure)
    Micros last_success;   // 0 = never
    Micros state_since;
    uint64_t system_id;
    int32_t timeline;
    int32_t connections;
    int32_t max_connections;
    PoolCounts pool;
    uint32_t failures;
    uint32_t good_streak;  // consecutive polls that looked healthy (flap damping)
    bool has_bouncer;          // a pgbouncer admin conninfo is registered
    bool bouncer_ok;           // its last SHOW POOLS succeeded
    Micros bouncer_last_success;
    char bouncer_error[kErrorLen];     // consecutive failed polls
    char name[kNameLen];
    char host[kHostLen];
    char zone[kNameLen];
    char error[kErrorLen];
    char slot_name[kNameLen];  // WAL receiver's slot, to match pg_stat_replication
    char app_name[kNameLen];   // WAL receiver's application_name, the fallback match
    // Members (1.2): what the member's role is, found each poll.
    Lsn current_lsn;           // out of recovery: pg_current_wal_lsn(); else 0
    int32_t sender_port;       // in recovery: its WAL receiver's upstream; 0 = none
    bool is_local;             // the entry is this very server
    bool may_lead;             // its connection string was set by a superuser: it may be elected primary
    char sender_host[kHostLen];
    // Poll timing (rto.hpp) and the age of the figures (issue #12).
    Micros poll_since;     // start of the poll in flight, 0 = none
    Micros rto;            // how long a poll may take before the replica is slow (0 = not judged)
    Micros srtt;           // smoothed poll round trip, 0 = no sample yet
    bool slow;             // the poll in flight is overdue: left out of routing until it answers
    Micros lag_at;         // when `lag` / `replay_lsn` were true: the last good poll's start (0 = unknown)
    Lsn primary_lsn;       // the primary's WAL write position at lag_at
    Micros next_try;       // failing replica backed off: next poll not before this (0 = next tick)
    Micros lag_bound;      // `lag` as an upper bound (LsnHistory::lag_bound), -1 when unknown
};

// One pool of a pgbouncer in front of a node (SHOW POOLS).
struct PoolRow {
    int32_t node_id;  // 0 = the primary
    int32_t cl_active;
    int32_t cl_waiting;
    int32_t sv_active;
    int32_t sv_idle;
    int32_t sv_used;
    Micros maxwait;
    char database[kNameLen];
    char user[kNameLen];
    char pool_mode[16];
};

// A replication slot on the primary, as the worker tracks it: PostgreSQL 15
// has no inactive_since, so the worker remembers when it saw it go inactive.
struct SlotTrack {
    char name[kNameLen];
    bool active;
    Micros inactive_since;  // 0 while active
};

static_assert(std::is_trivially_copyable_v<PoolRow>, "PoolRow lives in shared memory");
static_assert(std::is_trivially_copyable_v<SlotTrack>, "SlotTrack lives in shared memory");
static_assert(std::is_trivially_copyable_v<NodeHint>, "NodeHint lives in shared memory");
static_assert(std::is_standard_layout_v<NodeHint>, "NodeHint lives in shared memory");

// Copy a C string into a fixed buffer, always terminated, as valid UTF-8
// without control characters: invalid bytes and control characters become
// '?', and a cut falls between characters. Everything published (shared
// memory, the hint table, logs) comes through here, remote text included.
void copy_str(char *dst, std::size_t cap, const char *src) noexcept;

} // namespace rr
