// The shared-memory mirror of the routing hints, read by recommend() and the
// views, written by the worker. One LWLock guards it; the round-robin ticket
// and the registry generation are atomics so readers never take it exclusively.
#pragma once

#include "pg.hpp"
#include "members.hpp"
#include "routing.hpp"

#include <boost/container/static_vector.hpp>

namespace rr {

struct WorkerStats {
    int32_t pid;
    Micros started_at;
    uint64_t rounds;
    Micros last_round_start;
    Micros last_round_duration;
    uint64_t polls;
    uint64_t poll_failures;
    uint64_t hint_writes;
    uint64_t write_failures;
    Micros last_error_at;
    char last_error[kErrorLen];
    char registry_problem[kErrorLen];  // the last registry or routes read failed or was cut; "" when clean
};
static_assert(std::is_trivially_copyable_v<WorkerStats>);

using HintTable = boost::container::static_vector<NodeHint, kMaxNodesHard>;
using PoolTable = boost::container::static_vector<PoolRow, kMaxPools>;
using SlotTable = boost::container::static_vector<SlotTrack, kMaxSlots>;

using RouteTable = boost::container::static_vector<RouteRow, kMaxRoutes>;

// The primary's own figures the worker keeps.
struct PrimaryStats {
    double wal_rate;            // bytes per second over the last few minutes
    bool has_bouncer;           // replica_router.primary_pgbouncer is set
    bool bouncer_ok;
    Micros bouncer_last_success;
    char bouncer_error[kErrorLen];
};
static_assert(std::is_trivially_copyable_v<PrimaryStats>);

// The primary as this node's worker chose it (members.hpp).
struct ElectedPrimary {
    PrimaryChoice::Kind kind;
    bool members_cover;  // a registered member has been the primary: the registry lists it
    uint32_t timeline;
    int32_t followers;
    int32_t port;
    char node[kNameLen];
    char host[kHostLen];
};
static_assert(std::is_trivially_copyable_v<ElectedPrimary>);

struct SharedState {
    LWLock *lock;
    Latch *worker_latch;            // set by backends after registry changes
    pg_atomic_uint64 ticket;        // round-robin position
    pg_atomic_uint32 generation;    // bumped at commit of a registry change
    pg_atomic_uint32 loaded_generation; // the generation the worker has published
    bool hints_ready;               // the worker has filled `nodes` from the registry
    uint64_t primary_system_id;
    WorkerStats stats;
    PrimaryStats primary;
    ElectedPrimary elected;
    HintTable nodes;
    PoolTable pools;
    SlotTable slots;
    RouteTable routes;
    bool routes_ready;  // `routes` mirrors replica_router.routes
};

extern SharedState *shared;

void shmem_install_hooks();
// Errors out when the library was not preloaded (no shared state).
SharedState *shmem_require();

// Copies a shared table (shared->nodes, ->pools, ->slots) out under the
// shared lock into palloc'd memory, empty until the worker has published.
// The memory is allocated before the lock is taken, again if the table grew
// in between: nothing allocates under the lock.
template <typename Row, typename Table>
Row *shmem_copy_out(const Table &table, std::size_t *n)
{
    SharedState *s = shmem_require();
    std::size_t room = 0;
    Row *rows = nullptr;
    for (;;) {
        LWLockAcquire(s->lock, LW_SHARED);
        std::size_t have = s->hints_ready ? table.size() : 0;
        if (rows != nullptr && have <= room) {
            if (have > 0)
                memcpy(rows, table.data(), sizeof(Row) * have);
            LWLockRelease(s->lock);
            *n = have;
            return rows;
        }
        LWLockRelease(s->lock);
        if (rows != nullptr)
            pfree(rows);
        room = have;
        rows = static_cast<Row *>(palloc(sizeof(Row) * (room > 0 ? room : 1)));
    }
}

// After this backend changed the registry or routes, waits (briefly) until
// the worker has published them, so the session reads its own changes.
void await_own_changes();
void note_own_change(uint32_t generation);

} // namespace rr
