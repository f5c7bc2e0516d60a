#include "pg.hpp"

#include "replication/slot.h"
#include "shmem.hpp"
#include "slots.hpp"

#include <cstring>

namespace rr {

void slots_refresh(Micros now)
{
    static SlotTrack seen[kMaxSlots];
    int n = 0;

    LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
    for (int i = 0; i < max_replication_slots && n < static_cast<int>(kMaxSlots); ++i) {
        ReplicationSlot *slot = &ReplicationSlotCtl->replication_slots[i];
        SpinLockAcquire(&slot->mutex);
        bool in_use = slot->in_use;
        bool active = slot->active_pid != 0;
        char name[NAMEDATALEN];
        memcpy(name, NameStr(slot->data.name), NAMEDATALEN);
        SpinLockRelease(&slot->mutex);
        if (!in_use)
            continue;
        SlotTrack &t = seen[n++];
        copy_str(t.name, sizeof t.name, name);
        t.active = active;
        t.inactive_since = 0;
    }
    LWLockRelease(ReplicationSlotControlLock);

    shmem_publish_slots(seen, static_cast<std::size_t>(n), now);
}

} // namespace rr
