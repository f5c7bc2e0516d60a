#include "pg.hpp"

#include "guc.hpp"
#include "shmem.hpp"

#include <algorithm>
#include <new>

namespace rr {

SharedState *shared = nullptr;

namespace {

shmem_startup_hook_type prev_startup = nullptr;
#if PG_VERSION_NUM >= 150000
shmem_request_hook_type prev_request = nullptr;
#endif

// The hint table holds max_replicas rows (set at server start), after the
// fixed part.
std::size_t node_capacity()
{
    return static_cast<std::size_t>(rr_max_replicas > 0 ? rr_max_replicas : 1);
}

std::size_t segment_size()
{
    return add_size(MAXALIGN(sizeof(SharedState)), mul_size(node_capacity(), sizeof(NodeHint)));
}

void request()
{
    RequestAddinShmemSpace(segment_size());
    RequestNamedLWLockTranche("replica_router", 1);
}

#if PG_VERSION_NUM >= 150000
void request_hook()
{
    if (prev_request)
        prev_request();
    request();
}
#endif

void startup_hook()
{
    if (prev_startup)
        prev_startup();

    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    void *mem = ShmemInitStruct("replica_router", segment_size(), &found);
    if (!found) {
        // Placement-new once, when the segment is created; every process then
        // uses the same bytes (mapped at the same address: the rows pointer
        // holds). Nothing here can throw (the tables start empty).
        auto *s = new (mem) SharedState();
        s->lock = &(GetNamedLWLockTranche("replica_router"))->lock;
        s->worker_latch = nullptr;
        pg_atomic_init_u64(&s->ticket, 0);
        pg_atomic_init_u32(&s->generation, 0);
        pg_atomic_init_u32(&s->loaded_generation, 0);
        for (pg_atomic_uint64 &c : s->counters)
            pg_atomic_init_u64(&c, 0);
        s->hints_ready = false;
        s->routes_ready = false;
        s->primary_system_id = 0;
        s->stats = WorkerStats{};
        s->primary = PrimaryStats{};
        s->elected = ElectedPrimary{};
        s->nodes.init(reinterpret_cast<NodeHint *>(static_cast<char *>(mem) + MAXALIGN(sizeof(SharedState))),
                      node_capacity());
    }
    shared = static_cast<SharedState *>(mem);
    LWLockRelease(AddinShmemInitLock);
}

} // namespace

void shmem_install_hooks()
{
#if PG_VERSION_NUM >= 150000
    prev_request = shmem_request_hook;
    shmem_request_hook = request_hook;
#else
    request();
#endif
    prev_startup = shmem_startup_hook;
    shmem_startup_hook = startup_hook;
}

namespace {
uint32_t own_generation = 0;  // 0: this backend has nothing pending
}

void note_own_change(uint32_t generation)
{
    own_generation = generation;
}

void await_own_changes()
{
    if (own_generation == 0 || shared == nullptr)
        return;
    // Generations wrap: compare by difference.
    for (int i = 0; i < 200; ++i) {
        int32 behind = static_cast<int32>(own_generation - pg_atomic_read_u32(&shared->loaded_generation));
        if (behind <= 0 || shared->worker_latch == nullptr)
            break;
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
    own_generation = 0;
}

void shmem_registry_changed()
{
    if (shared == nullptr)
        return;
    note_own_change(pg_atomic_add_fetch_u32(&shared->generation, 1));
    Latch *latch = shared->worker_latch;
    if (latch != nullptr)
        SetLatch(latch);
}

WorkerStatus shmem_worker_status()
{
    SharedState *s = shmem_require();
    WorkerStatus w;
    LWLockAcquire(s->lock, LW_SHARED);
    w.stats = s->stats;
    LWLockRelease(s->lock);
    for (std::size_t i = 0; i < kCounters; ++i)
        w.counters[i] = pg_atomic_read_u64(&s->counters[i]);
    return w;
}

ElectedPrimary shmem_elected(bool *ready)
{
    SharedState *s = shmem_require();
    LWLockAcquire(s->lock, LW_SHARED);
    *ready = s->hints_ready;
    ElectedPrimary e = s->elected;
    LWLockRelease(s->lock);
    return e;
}

// --- the worker's side ----------------------------------------------------

void shmem_publish(const Publication &p)
{
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    shared->nodes.assign(p.nodes, p.n);
    shared->pools.assign(p.pools, p.pools + std::min(p.npools, shared->pools.capacity()));
    shared->routes.assign(p.routes, p.routes + std::min(p.nroutes, shared->routes.capacity()));
    shared->primary = p.primary;
    shared->elected = p.elected;
    shared->routes_ready = p.routes_ready;
    shared->hints_ready = p.hints_ready;
    LWLockRelease(shared->lock);
    pg_atomic_write_u32(&shared->loaded_generation, p.generation);
}

void shmem_unpublish()
{
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    shared->hints_ready = false;
    shared->routes_ready = false;
    shared->nodes.clear();
    shared->pools.clear();
    shared->elected = ElectedPrimary{};
    LWLockRelease(shared->lock);
}

void shmem_worker_started(Latch *latch, Micros now)
{
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    shared->worker_latch = latch;
    shared->primary_system_id = GetSystemIdentifier();
    shared->stats = WorkerStats{};
    shared->stats.pid = MyProcPid;
    shared->stats.started_at = now;
    LWLockRelease(shared->lock);
    for (pg_atomic_uint64 &c : shared->counters)
        pg_atomic_write_u64(&c, 0);
}

void shmem_worker_exiting()
{
    if (shared == nullptr)
        return;
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    shared->worker_latch = nullptr;
    shared->stats.pid = 0;
    LWLockRelease(shared->lock);
}

void shmem_count(Counter c)
{
    pg_atomic_fetch_add_u64(&shared->counters[static_cast<std::size_t>(c)], 1);
}

void shmem_round_started(Micros now)
{
    shmem_count(Counter::rounds);
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    shared->stats.last_round_start = now;
    LWLockRelease(shared->lock);
}

void shmem_round_finished(Micros duration)
{
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    shared->stats.last_round_duration = duration;
    LWLockRelease(shared->lock);
}

void shmem_record_error(const char *msg)
{
    Micros now = GetCurrentTimestamp();
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    shared->stats.last_error_at = now;
    copy_str(shared->stats.last_error, sizeof shared->stats.last_error, msg);
    LWLockRelease(shared->lock);
}

void shmem_set_registry_problem(const char *problem)
{
    Micros now = GetCurrentTimestamp();
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    copy_str(shared->stats.registry_problem, sizeof shared->stats.registry_problem, problem);
    if (problem[0] != '\0') {
        shared->stats.last_error_at = now;
        copy_str(shared->stats.last_error, sizeof shared->stats.last_error, problem);
    }
    LWLockRelease(shared->lock);
}

uint32_t shmem_generation()
{
    return pg_atomic_read_u32(&shared->generation);
}

uint64_t shmem_system_id()
{
    return shared->primary_system_id;  // set once, when the worker starts
}

void shmem_publish_slots(SlotTrack *seen, std::size_t n, Micros now)
{
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    for (std::size_t i = 0; i < n; ++i) {
        if (seen[i].active)
            continue;
        // Inactive: keep the time we first saw it so, else it starts now.
        seen[i].inactive_since = now;
        for (const SlotTrack &old : shared->slots)
            if (!old.active && old.inactive_since != 0 && std::strcmp(old.name, seen[i].name) == 0)
                seen[i].inactive_since = old.inactive_since;
    }
    shared->slots.assign(seen, seen + std::min(n, shared->slots.capacity()));
    LWLockRelease(shared->lock);
}

SharedState *shmem_require()
{
    if (shared == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("replica_router must be loaded via shared_preload_libraries"),
                        errhint("Add replica_router to shared_preload_libraries in postgresql.conf and restart the server.")));
    return shared;
}

} // namespace rr
