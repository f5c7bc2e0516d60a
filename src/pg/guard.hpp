// The C++ <-> PostgreSQL boundary, as one mechanism:
//
//  * RR_SQL_FUNCTION declares every SQL-callable function. Its body runs
//    inside pg_guarded(): a C++ exception is caught, its message copied into
//    a plain buffer, and only after the try block has unwound (destructors
//    run) is it raised as ereport(ERROR).
//  * pg_try() is the only PG_TRY: its body must be noexcept (checked at
//    compile time), since an exception thrown inside PG_TRY would leave
//    PG_exception_stack pointing into a dead frame.
//  * pg_call() is how C++ code (with live objects that have destructors)
//    calls into PostgreSQL: an ERROR becomes a PgError exception, so the
//    C++ frames unwind normally.
#pragma once

#include "pg.hpp"

#include <exception>
#include <new>
#include <type_traits>

namespace rr {

template <typename Fn>
Datum pg_guarded(const char *what, Fn &&body)
{
    char message[256];
    message[0] = '\0';
    bool oom = false;
    try {
        return body();
    } catch (const std::bad_alloc &) {
        oom = true;
    } catch (const std::exception &e) {
        copy_str(message, sizeof message, e.what());
    } catch (...) {
        copy_str(message, sizeof message, "unknown C++ exception");
    }
    if (oom)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory in %s", what)));
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("internal error in %s: %s", what, message)));
    pg_unreachable();
}

// Runs `body` under PG_TRY. On ERROR: the message is copied into `error`,
// the error state flushed, the caller's memory context restored, and false
// returned; the caller decides what else to undo (a transaction, say).
template <typename Body>
bool pg_try(Body &&body, char *error, std::size_t error_len)
{
    static_assert(std::is_nothrow_invocable_v<Body &>, "a PG_TRY body must be noexcept");
    MemoryContext caller = CurrentMemoryContext;
    volatile bool ok = true;
    PG_TRY();
    {
        body();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller);
        ErrorData *edata = CopyErrorData();
        FlushErrorState();
        copy_str(error, error_len, edata->message);
        FreeErrorData(edata);
        ok = false;
    }
    PG_END_TRY();
    MemoryContextSwitchTo(caller);
    return ok;
}

class PgError : public std::exception {
public:
    explicit PgError(const char *message) noexcept { copy_str(message_, sizeof message_, message); }
    const char *what() const noexcept override { return message_; }

private:
    char message_[256];
};

// Calls PostgreSQL from C++: an ERROR in `fn` is thrown as PgError.
template <typename Fn>
void pg_call(Fn &&fn)
{
    char error[256];
    if (!pg_try([&]() noexcept { fn(); }, error, sizeof error))
        throw PgError(error);
}

} // namespace rr

// Declares the SQL-callable C function `cname` (PG_FUNCTION_INFO_V1,
// extern "C"); the braces that follow are its body, run through pg_guarded.
//   RR_SQL_FUNCTION(replica_router_x, "replica_router.x()") { ... return ...; }
#define RR_SQL_FUNCTION(cname, what)                                                                              \
    extern "C" {                                                                                                  \
    PG_FUNCTION_INFO_V1(cname);                                                                                   \
    }                                                                                                             \
    static Datum cname##_body(FunctionCallInfo fcinfo);                                                           \
    extern "C" Datum cname(PG_FUNCTION_ARGS)                                                                      \
    {                                                                                                             \
        return rr::pg_guarded(what, [fcinfo]() -> Datum { return cname##_body(fcinfo); });                        \
    }                                                                                                             \
    static Datum cname##_body(FunctionCallInfo fcinfo)
