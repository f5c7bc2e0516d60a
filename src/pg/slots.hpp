// Tracks when each replication slot on the primary went inactive
// (PostgreSQL 15 keeps no inactive_since), straight from the slot array in
// shared memory: no SPI, no transaction.
#pragma once

#include "hint.hpp"

namespace rr {
void slots_refresh(Micros now);
}
