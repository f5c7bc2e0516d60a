// The shared-memory mirror of the routing hints, read by recommend() and the
// views, written by the worker. One LWLock guards it; the round-robin ticket
// and the registry generation are atomics so readers never take it exclusively.
#pragma once

#include "pg.hpp"

#include <boost/container/static_vector.hpp>

namespace rr {

struct WorkerStats {
    int32_t pid;
    Micros started_at;
    uint64_t rounds;
    Micros last_round_start;
    Micros last_round_duration;
    uint64_t polls;
    uint64_t poll_failures;
    uint64_t hint_writes;
    uint64_t write_failures;
    Micros last_error_at;
    char last_error[kErrorLen];
};
static_assert(std::is_trivially_copyable_v<WorkerStats>);

using HintTable = boost::container::static_vector<NodeHint, kMaxNodesHard>;

struct SharedState {
    LWLock *lock;
    Latch *worker_latch;            // set by backends after registry changes
    pg_atomic_uint64 ticket;        // round-robin position
    pg_atomic_uint32 generation;    // bumped at commit of a registry change
    bool hints_ready;               // the worker has filled `nodes` from the registry
    uint64_t primary_system_id;
    WorkerStats stats;
    HintTable nodes;
};

extern SharedState *shared;

void shmem_install_hooks();
// Errors out when the library was not preloaded (no shared state).
SharedState *shmem_require();

} // namespace rr
