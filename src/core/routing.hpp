// Which node answers a request: pure functions over the shared hints.
// C++-only; called under the shared-memory lock, so nothing here allocates,
// throws or calls into PostgreSQL.
#pragma once

#include "hint.hpp"
#include "state_machine.hpp"

#include <cstddef>

namespace rr {

// The primary's timeline history: where it left each earlier timeline.
constexpr int kMaxTimelines = 64;
struct TimelineStep {
    uint32_t tli;
    Lsn end;  // the primary's switch point away from tli
};
struct TimelineHistory {
    uint32_t current = 0;  // 0 = not known yet
    int count = 0;         // earlier timelines in `steps`; 0 = none, or the history could not be read
    bool complete = false; // the history file was read
    TimelineStep steps[kMaxTimelines];
};

// Fills `h` for a server on timeline `current` from its history file's text
// (PostgreSQL's format: "parentTLI<tab>switchpoint<tab>reason" per line,
// blank lines and '#' comments allowed). False, with `h` marked incomplete,
// when the text does not parse or holds more than kMaxTimelines entries.
bool parse_timeline_history(const char *text, uint32_t current, TimelineHistory &h) noexcept;

// True, with the reason in `why`, when a replica whose WAL is on timeline
// `tli` up to `lsn` cannot be following the primary: it is on a newer
// timeline than the primary's, on one the primary never had, or past the
// point where the primary left its timeline. `streaming` says tli is the WAL
// receiver's; without one the replica reports its last restartpoint's
// timeline, which may be older than what it replays, so an older timeline is
// then not judged.
bool off_history(const TimelineHistory &h, uint32_t tli, bool streaming, Lsn lsn, char *why,
                 std::size_t why_len) noexcept;

// The host clients are told to reach the primary at, when primary_host is
// not set: the first listen_addresses entry; for a wildcard the machine's
// host name (clients elsewhere can resolve it; "localhost" would send them
// to themselves); with no TCP listener at all, localhost.
void default_primary_host(const char *listen_addresses, const char *hostname, char *out, std::size_t out_len) noexcept;

enum class Target : uint8_t { primary, replica, any };
enum class Balance : uint8_t { round_robin, weighted, least_lag, least_connections };

const char *target_name(Target t);
const char *balance_name(Balance b);
bool parse_target(const char *s, Target *out);
bool parse_balance(const char *s, Balance *out);

// An operation class (replica_router.routes), mirrored in shared memory.
struct RouteRow {
    char operation[kNameLen];
    Target target;
    bool has_balance;     // else the replica_router.balance setting
    Balance balance;
    Micros max_lag;       // -1: the replica_router.max_lag setting
};
static_assert(std::is_trivially_copyable_v<RouteRow>, "RouteRow lives in shared memory");
// Routes kept in shared memory; set_route() refuses more.
constexpr std::size_t kMaxRoutes = 128;

struct RouteRequest {
    Micros max_lag = 0;      // effective threshold for this call
    bool explicit_max_lag = false;
    bool has_min_lsn = false;
    Lsn min_lsn = 0;
    Micros now = 0;
    Micros stale_after = 0;
    Balance balance = Balance::round_robin;
    const char *zone = nullptr;  // preferred zone, or none
    // The primary's WAL write position now (0: unknown, e.g. on a standby),
    // or a function that reads it, asked only for a replica whose poll's
    // age would otherwise count (reading it takes a server-wide spinlock:
    // not on every call). A replica whose last seen replay position is at
    // least this has everything the primary has written, however old that poll.
    Lsn primary_lsn = 0;
    Lsn (*primary_lsn_now)() noexcept = nullptr;
};

// Does the replica qualify? If not, `why` says so in a few words.
// max_lag is a guarantee at answer time: the lag seen at the last poll plus
// that poll's age (now - lag_at) must be within it, unless the replica had
// already replayed past the primary's current position (primary_lsn); min_lsn
// is compared with the replay position the last good poll saw.
bool qualifies(const NodeHint &h, const RouteRequest &req, char *why, std::size_t why_len) noexcept;

// What was chosen and why, for a reason: "healthy replica", or for a lagging
// or replay-paused one its lag, the age of that figure and the max_lag it met.
void describe_choice(const NodeHint &h, const RouteRequest &req, char *out, std::size_t out_len) noexcept;

// Orders the qualified replicas, best first, into `order` (capacity n):
// the preferred zone first, then by the balancing rule; `ticket` rotates
// round-robin and drives the weighted pick. Returns how many qualified and
// describes the choice (or, with none, why each replica was left out);
// with reason_len 0 it only orders.
std::size_t rank_replicas(const NodeHint *nodes, std::size_t n, const RouteRequest &req, uint64_t ticket,
                          int *order, char *reason, std::size_t reason_len) noexcept;

// Index of the chosen replica, or -1 when none qualifies (reason says why).
int choose_replica(const NodeHint *nodes, std::size_t n, const RouteRequest &req, uint64_t ticket, char *reason,
                   std::size_t reason_len) noexcept;

} // namespace rr
