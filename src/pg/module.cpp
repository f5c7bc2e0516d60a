// Library entry: settings, shared memory and the background worker.
#include "pg.hpp"

#include "guc.hpp"
#include "shmem.hpp"

extern "C" {
PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

namespace rr {
void install_log_hook();  // sql_admin.cpp
}

void _PG_init(void)
{
    // Loaded by a backend, not at server start: the settings a view reads are
    // defined, the PGC_POSTMASTER ones are not (defining one now is FATAL for
    // the session). Every entry point then raises an ERROR with a hint
    // (shmem_require, _assert_preloaded).
    rr_define_gucs(process_shared_preload_libraries_in_progress);
    if (!process_shared_preload_libraries_in_progress)
        return;
    rr::shmem_install_hooks();
    rr::install_log_hook();

    BackgroundWorker worker;
    memset(&worker, 0, sizeof worker);
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    // Every node runs the worker: on a hot standby as an observer that polls
    // the members and answers from its own shared memory, writing nothing;
    // the same process starts writing hints once its server is promoted.
    worker.bgw_start_time = BgWorkerStart_ConsistentState;
    worker.bgw_restart_time = 1;
    snprintf(worker.bgw_library_name, BGW_MAXLEN, "replica_router");
    snprintf(worker.bgw_function_name, BGW_MAXLEN, "replica_router_worker_main");
    snprintf(worker.bgw_name, BGW_MAXLEN, "replica_router worker");
    snprintf(worker.bgw_type, BGW_MAXLEN, "replica_router worker");
    RegisterBackgroundWorker(&worker);
}
