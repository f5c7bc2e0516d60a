// Crossing from PostgreSQL into C++: every SQL-callable function runs its
// body through pg_guarded(). A C++ exception is caught here, its message
// copied into a plain buffer, and only after the try block has unwound (all
// destructors run) is it turned into ereport(ERROR).
#pragma once

#include "pg.hpp"

#include <exception>
#include <new>

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

} // namespace rr
