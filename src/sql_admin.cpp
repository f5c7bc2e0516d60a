// Helpers behind the registry functions: conninfo checks and masking, the
// preload check, and waking the worker when a registry change commits.
#include "pg.hpp"

#include "conninfo.hpp"
#include "guard.hpp"
#include "shmem.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(replica_router_assert_preloaded);
PG_FUNCTION_INFO_V1(replica_router_conninfo_error);
PG_FUNCTION_INFO_V1(replica_router_mask_conninfo);
PG_FUNCTION_INFO_V1(replica_router_notify_worker);
PG_FUNCTION_INFO_V1(replica_router_nodes_changed);
}

namespace rr {

namespace {

bool callback_registered = false;
bool change_pending = false;

// At commit the change is visible to the worker's next snapshot: only then wake it.
void on_xact(XactEvent event, void *)
{
    if (event == XACT_EVENT_COMMIT && change_pending && shared != nullptr) {
        note_own_change(pg_atomic_add_fetch_u32(&shared->generation, 1));
        Latch *latch = shared->worker_latch;
        if (latch != nullptr)
            SetLatch(latch);
    }
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_COMMIT ||
        event == XACT_EVENT_PARALLEL_ABORT)
        change_pending = false;
}

void mark_change()
{
    if (!callback_registered) {
        RegisterXactCallback(on_xact, nullptr);
        callback_registered = true;
    }
    change_pending = true;
}

} // namespace

} // namespace rr

extern "C" Datum replica_router_assert_preloaded(PG_FUNCTION_ARGS)
{
    (void) fcinfo;
    if (rr::shared == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("replica_router must be loaded via shared_preload_libraries"),
                        errhint("Add replica_router to shared_preload_libraries in postgresql.conf, restart the "
                                "server, then run CREATE EXTENSION again.")));
    PG_RETURN_VOID();
}

// NULL when libpq accepts the connection string, else its complaint (without secrets).
extern "C" Datum replica_router_conninfo_error(PG_FUNCTION_ARGS)
{
    char error[512];
    if (rr::conninfo_acceptable(text_to_cstring(PG_GETARG_TEXT_PP(0)), error, sizeof error))
        PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(error));
}

extern "C" Datum replica_router_mask_conninfo(PG_FUNCTION_ARGS)
{
    const char *conninfo = text_to_cstring(PG_GETARG_TEXT_PP(0));
    char *out = nullptr;
    bool oom = false;
    try {
        std::string masked = rr::mask_conninfo(conninfo);
        out = static_cast<char *>(MemoryContextAllocExtended(CurrentMemoryContext, masked.size() + 1,
                                                             MCXT_ALLOC_NO_OOM));
        if (out != nullptr)
            memcpy(out, masked.c_str(), masked.size() + 1);
        else
            oom = true;
    } catch (...) {
        oom = true;
    }
    if (oom)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    PG_RETURN_TEXT_P(cstring_to_text(out));
}

extern "C" Datum replica_router_notify_worker(PG_FUNCTION_ARGS)
{
    (void) fcinfo;
    rr::mark_change();
    PG_RETURN_VOID();
}

extern "C" Datum replica_router_nodes_changed(PG_FUNCTION_ARGS)
{
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("replica_router._nodes_changed() must be called as a trigger")));
    rr::mark_change();
    return PointerGetDatum(nullptr);
}
