#include "pg.hpp"

#include "guard.hpp"

extern "C" {
#include "access/xlog_internal.h"
}

#include "timeline.hpp"

#include <cerrno>

namespace rr {

namespace {

uint32_t current_timeline()
{
#if PG_VERSION_NUM >= 150000
    return GetWALInsertionTimeLine();
#else
    (void) RecoveryInProgress();  // sets ThisTimeLineID once recovery is over
    return ThisTimeLineID;
#endif
}

} // namespace

// The file is read and parsed here rather than with readTimeLineHistory(),
// which raises FATAL on a file it cannot read or parse: that would take the
// worker down in a restart loop for want of a check.
void timeline_refresh(TimelineHistory &h)
{
    static char text[64 * 1024];
    uint32_t tli = current_timeline();
    if (tli == h.current)
        return;
    h.current = tli;
    h.count = 0;
    h.complete = tli <= 1;  // the first timeline has no history file
    if (h.complete)
        return;

    char path[MAXPGPATH];
    snprintf(path, sizeof path, XLOGDIR "/%08X.history", tli);
    static char caught[256];
    const char *problem = nullptr;
    int saved_errno = 0;
    if (!pg_try(
            [&]() noexcept {
                FILE *f = AllocateFile(path, "r");
                if (f == nullptr) {
                    saved_errno = errno;
                    problem = "could not open it";
                    return;
                }
                size_t n = fread(text, 1, sizeof text - 1, f);
                bool whole = feof(f) != 0 && ferror(f) == 0;
                FreeFile(f);
                text[n] = '\0';
                if (!whole)
                    problem = "could not read all of it";
                else if (!parse_timeline_history(text, tli, h))
                    problem = "it does not parse";
            },
            caught, sizeof caught))
        problem = caught;
    if (problem != nullptr) {
        h.count = 0;
        h.complete = false;
        ereport(LOG, (errmsg("replica_router worker: history file \"%s\" of timeline %u: %s%s%s", path, tli, problem,
                             saved_errno != 0 ? ": " : "", saved_errno != 0 ? strerror(saved_errno) : ""),
                      errdetail("Replicas on older timelines are not checked against the primary's history.")));
    }
}

} // namespace rr
