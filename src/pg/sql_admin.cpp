// Helpers behind the registry functions: conninfo checks and masking, the
// preload check, and waking the worker when a registry change commits.
#include "pg.hpp"

#include "conninfo.hpp"
#include "guard.hpp"
#include "shmem.hpp"

namespace rr {

namespace {

bool callback_registered = false;
bool change_pending = false;
bool hide_statement = false;  // until this transaction ends
emit_log_hook_type prev_emit_log_hook = nullptr;

// At commit the change is visible to the worker's next snapshot: only then wake it.
void on_xact(XactEvent event, void *)
{
    if (event == XACT_EVENT_COMMIT && change_pending && shared != nullptr) {
        shmem_registry_changed();
    }
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_COMMIT ||
        event == XACT_EVENT_PARALLEL_ABORT) {
        change_pending = false;
        hide_statement = false;
    }
}

void watch_xact()
{
    if (!callback_registered) {
        RegisterXactCallback(on_xact, nullptr);
        callback_registered = true;
    }
}

void mark_change()
{
    watch_xact();
    change_pending = true;
}

// An error is logged before its transaction is aborted, so the flag is still
// set when the server would add "STATEMENT: SELECT add_replica(..., 'password=...')".
void emit_log(ErrorData *edata)
{
    if (hide_statement)
        edata->hide_stmt = true;
    if (prev_emit_log_hook != nullptr)
        prev_emit_log_hook(edata);
}

} // namespace

void install_log_hook()
{
    prev_emit_log_hook = emit_log_hook;
    emit_log_hook = emit_log;
}

} // namespace rr

RR_SQL_FUNCTION(replica_router_assert_preloaded, "replica_router._assert_preloaded()")
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
RR_SQL_FUNCTION(replica_router_conninfo_error, "replica_router._conninfo_error()")
{
    char error[512];
    if (rr::conninfo_acceptable(text_to_cstring(PG_GETARG_TEXT_PP(0)), error, sizeof error))
        PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(error));
}

RR_SQL_FUNCTION(replica_router_mask_conninfo, "replica_router.mask_conninfo()")
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

RR_SQL_FUNCTION(replica_router_notify_worker, "replica_router._notify_worker()")
{
    (void) fcinfo;
    rr::mark_change();
    PG_RETURN_VOID();
}

RR_SQL_FUNCTION(replica_router_nodes_changed, "replica_router._nodes_changed()")
{
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("replica_router._nodes_changed() must be called as a trigger")));
    rr::mark_change();
    return PointerGetDatum(nullptr);
}

// Called first by the registry functions (and the registry's triggers): an
// error in this transaction is logged without its statement, which holds a
// connection string.
RR_SQL_FUNCTION(replica_router_hide_statement, "replica_router._hide_statement()")
{
    (void) fcinfo;
    rr::watch_xact();
    rr::hide_statement = true;
    PG_RETURN_VOID();
}

// The rule for connection strings set by roles that are not superusers (see
// check_unprivileged): raises the error, or returns when the current user is
// a superuser or the string keeps the rule.
RR_SQL_FUNCTION(replica_router_check_privilege, "replica_router._check_privilege()")
{
    if (PG_ARGISNULL(0) || superuser())
        PG_RETURN_VOID();
    const char *conninfo = text_to_cstring(PG_GETARG_TEXT_PP(0));
    const char *what = PG_ARGISNULL(1) ? "connection string" : text_to_cstring(PG_GETARG_TEXT_PP(1));
    const char *node = PG_ARGISNULL(2) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(2));
    char error[512] = "";
    rr::Privilege verdict = rr::unprivileged_verdict(conninfo, error, sizeof error);
    error[0] = static_cast<char>(pg_toupper(static_cast<unsigned char>(error[0])));  // a detail is a sentence
    if (verdict == rr::Privilege::password_required)
        ereport(ERROR, (errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED), errmsg("password is required"),
                        errdetail("The %s for replica \"%s\" was set by role \"%s\", which is not a superuser, and "
                                  "has no password. The worker connects as the server's operating system user and "
                                  "does not lend it its password file, service file or client certificate.",
                                  what, node, GetUserNameFromId(GetUserId(), false)),
                        errhint("Add password=... to the %s, or have a superuser register it.", what)));
    if (verdict != rr::Privilege::ok)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("permission denied for the %s of replica \"%s\"", what, node),
                        errdetail("%s.", error),
                        errhint("Have a superuser register it, or connect over TCP with a password.")));
    PG_RETURN_VOID();
}

// NULL when a role that is not a superuser may set this connection string,
// else why not (whoever the current user is).
RR_SQL_FUNCTION(replica_router_unprivileged_problem, "replica_router._unprivileged_problem()")
{
    const char *conninfo = text_to_cstring(PG_GETARG_TEXT_PP(0));
    char error[512] = "";
    if (rr::unprivileged_verdict(conninfo, error, sizeof error) == rr::Privilege::ok)
        PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(error));
}
