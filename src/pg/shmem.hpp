// The shared memory replica_router keeps, behind one API: the worker
// publishes into it (shmem_publish, the worker_* calls below), backends read
// copies out of it (shmem_copy_out, shmem_read). One LWLock guards the tables;
// the round-robin ticket, the registry generation and the worker's counters
// are atomics, so readers never take the lock exclusively and counting a poll
// takes no lock at all. Nothing allocates while the lock is held.
#pragma once

extern "C" {
#include "postgres.h"

#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
}

#include "members.hpp"
#include "routing.hpp"

#include <boost/container/static_vector.hpp>

#include <cstring>
#include <type_traits>
#include <utility>

namespace rr {

// A table whose capacity is fixed when the segment is created (from
// replica_router.max_replicas): the rows follow SharedState in the segment.
template <typename T>
class ShmTable {
public:
    void init(T *rows, std::size_t capacity) noexcept
    {
        rows_ = rows;
        capacity_ = capacity;
        size_ = 0;
    }
    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return capacity_; }
    T *data() noexcept { return rows_; }
    const T *data() const noexcept { return rows_; }
    T &operator[](std::size_t i) noexcept { return rows_[i]; }
    const T &operator[](std::size_t i) const noexcept { return rows_[i]; }
    const T *begin() const noexcept { return rows_; }
    const T *end() const noexcept { return rows_ + size_; }
    void clear() noexcept { size_ = 0; }
    // Copies min(n, capacity) rows in; returns how many.
    std::size_t assign(const T *rows, std::size_t n) noexcept
    {
        size_ = n < capacity_ ? n : capacity_;
        if (size_ > 0)
            std::memcpy(static_cast<void *>(rows_), rows, sizeof(T) * size_);
        return size_;
    }

private:
    T *rows_ = nullptr;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

struct WorkerStats {
    int32_t pid;
    Micros started_at;
    Micros last_round_start;
    Micros last_round_duration;
    Micros last_error_at;
    char last_error[kErrorLen];
    char registry_problem[kErrorLen];  // the last registry or routes read failed or was cut; "" when clean
};
static_assert(std::is_trivially_copyable_v<WorkerStats>);

// Counted without the lock.
enum class Counter { rounds, polls, poll_failures, hint_writes, write_failures, count_ };
constexpr std::size_t kCounters = static_cast<std::size_t>(Counter::count_);

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

using PoolTable = boost::container::static_vector<PoolRow, kMaxPools>;
using SlotTable = boost::container::static_vector<SlotTrack, kMaxSlots>;
using RouteTable = boost::container::static_vector<RouteRow, kMaxRoutes>;

struct SharedState {
    LWLock *lock;
    Latch *worker_latch;            // set by backends after registry changes
    pg_atomic_uint64 ticket;        // round-robin position
    pg_atomic_uint32 generation;    // bumped at commit of a registry change
    pg_atomic_uint32 loaded_generation; // the generation the worker has published
    pg_atomic_uint64 counters[kCounters];
    bool hints_ready;               // the worker has filled `nodes` from the registry
    bool routes_ready;              // `routes` mirrors replica_router.routes
    uint64_t primary_system_id;
    WorkerStats stats;
    PrimaryStats primary;
    ElectedPrimary elected;
    ShmTable<NodeHint> nodes;       // max_replicas rows
    PoolTable pools;
    SlotTable slots;
    RouteTable routes;
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

// Runs fn(const SharedState &) under the shared lock and returns its
// result: the one way backends read the tables in place (recommend(), the
// hot path, copies nothing). fn is noexcept (checked here) and neither
// allocates nor calls PostgreSQL.
template <typename Fn>
auto shmem_read(Fn &&fn) -> decltype(fn(std::declval<const SharedState &>()))
{
    static_assert(noexcept(fn(std::declval<const SharedState &>())), "a shared-memory reader must be noexcept");
    SharedState *s = shmem_require();
    LWLockAcquire(s->lock, LW_SHARED);
    if constexpr (std::is_void_v<decltype(fn(*s))>) {
        fn(*static_cast<const SharedState *>(s));
        LWLockRelease(s->lock);
    } else {
        auto result = fn(*static_cast<const SharedState *>(s));
        LWLockRelease(s->lock);
        return result;
    }
}

// The round-robin position for the next answer.
inline uint64_t shmem_next_ticket()
{
    return pg_atomic_fetch_add_u64(&shmem_require()->ticket, 1);
}

// The worker's figures as worker_status() shows them.
struct WorkerStatus {
    WorkerStats stats;
    uint64_t counters[kCounters];
};
WorkerStatus shmem_worker_status();
ElectedPrimary shmem_elected(bool *ready);

// After this backend changed the registry or routes, waits (briefly) until
// the worker has published them, so the session reads its own changes.
void await_own_changes();
void note_own_change(uint32_t generation);
// A registry change committed: bump the generation and wake the worker.
void shmem_registry_changed();

// --- the worker's side ----------------------------------------------------
// Everything one publish() puts in shared memory, prepared by the worker
// outside the lock (the pools already cut to what fits, with the nodes'
// pgbouncer_error saying so).
struct Publication {
    const NodeHint *nodes;
    std::size_t n;
    const PoolRow *pools;
    std::size_t npools;
    const RouteRow *routes;
    std::size_t nroutes;
    bool hints_ready;
    bool routes_ready;
    PrimaryStats primary;
    ElectedPrimary elected;
    uint32_t generation;  // the registry generation these hints reflect
};
void shmem_publish(const Publication &p);
// Nothing published (a standby's worker that does not observe).
void shmem_unpublish();
void shmem_worker_started(Latch *latch, Micros now);
void shmem_worker_exiting();
void shmem_count(Counter c);
void shmem_round_started(Micros now);
void shmem_round_finished(Micros duration);
void shmem_record_error(const char *msg);
void shmem_set_registry_problem(const char *problem);  // "" when clean; else also the last error
uint32_t shmem_generation();
uint64_t shmem_system_id();
// Replication slots as the worker last saw them; an inactive slot keeps the
// time it was first seen inactive.
void shmem_publish_slots(SlotTrack *seen, std::size_t n, Micros now);

} // namespace rr
