#include "shmem.hpp"

#include <new>

namespace rr {

SharedState *shared = nullptr;

namespace {

shmem_startup_hook_type prev_startup = nullptr;
#if PG_VERSION_NUM >= 150000
shmem_request_hook_type prev_request = nullptr;
#endif

void request()
{
    RequestAddinShmemSpace(MAXALIGN(sizeof(SharedState)));
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
    void *mem = ShmemInitStruct("replica_router", sizeof(SharedState), &found);
    if (!found) {
        // Placement-new once, when the segment is created; every process then
        // uses the same bytes. Nothing here can throw (static_vector starts empty).
        auto *s = new (mem) SharedState();
        s->lock = &(GetNamedLWLockTranche("replica_router"))->lock;
        s->worker_latch = nullptr;
        pg_atomic_init_u64(&s->ticket, 0);
        pg_atomic_init_u32(&s->generation, 0);
        pg_atomic_init_u32(&s->loaded_generation, 0);
        s->hints_ready = false;
        s->primary_system_id = 0;
        s->stats = WorkerStats{};
        s->primary = PrimaryStats{};
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
        if (behind <= 0 || shared->stats.pid == 0)
            break;
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
    own_generation = 0;
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
