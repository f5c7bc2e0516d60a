// Reads the primary's own timeline history (pg_wal/*.history) so the worker
// can tell a replica that follows another primary from one that follows us.
#pragma once

#include "routing.hpp"

namespace rr {

// Brings `h` up to the server's current timeline; rereads the history file
// only when the timeline changed. An unreadable history is logged once and
// leaves `h.complete` false (then only newer timelines are judged).
void timeline_refresh(TimelineHistory &h);

}
