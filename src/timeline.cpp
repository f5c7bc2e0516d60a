#include "pg.hpp"

extern "C" {
#include "access/timeline.h"
#include "nodes/pg_list.h"
}

#include "timeline.hpp"

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

void timeline_refresh(TimelineHistory &h)
{
    uint32_t tli = current_timeline();
    if (tli == h.current)
        return;
    h.current = tli;
    h.count = 0;
    h.complete = false;
    if (tli <= 1) {
        h.complete = true;  // the first timeline has no history file
        return;
    }
    MemoryContext caller = CurrentMemoryContext;
    PG_TRY();
    {
        List *history = readTimeLineHistory(tli);
        ListCell *lc;
        foreach (lc, history) {
            auto *e = static_cast<TimeLineHistoryEntry *>(lfirst(lc));
            if (e->tli == tli || h.count >= kMaxTimelines)
                continue;
            h.steps[h.count++] = TimelineStep{e->tli, e->end};
        }
        list_free_deep(history);
        h.complete = h.count < kMaxTimelines;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller);
        ErrorData *edata = CopyErrorData();
        FlushErrorState();
        ereport(LOG, (errmsg("replica_router worker could not read the history of timeline %u: %s", tli,
                             edata->message),
                      errdetail("Replicas on older timelines are not checked against it.")));
        FreeErrorData(edata);
        h.count = 0;
    }
    PG_END_TRY();
    MemoryContextSwitchTo(caller);
}

} // namespace rr
