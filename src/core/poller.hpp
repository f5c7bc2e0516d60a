// One replica's connection and poll, as a nonblocking state machine.
// C++-only (libpq, glibc's getaddrinfo_a; no server headers). The worker owns
// one Poller per registered replica, waits on the socket it asks for, and
// calls advance() when that socket is ready or the deadline has passed.
// Nothing here blocks: host names are resolved asynchronously, connecting
// and querying use libpq's nonblocking API, and every phase has a deadline.
#pragma once

#include "hint.hpp"
#include "relay.hpp"

#include <memory>
#include <string>
#include <vector>

struct pg_conn;
struct pg_result;

namespace rr {

// What a poller asks: a replica's replication state, or a pgbouncer admin
// console's SHOW POOLS.
enum class Probe { replica, pgbouncer };

struct PollSettings {
    Micros connect_timeout = 2'000'000;
    Micros query_timeout = 1'000'000;
};

// What one poll learned, or why it failed.
struct PollResult {
    bool ok = false;
    bool lost_idle = false; // an idle connection dropped between polls
    bool in_recovery = false;
    bool replay_paused = false;
    bool has_replay_ts = false;
    Lsn receive_lsn = 0;
    Lsn replay_lsn = 0;
    Micros last_replay_ts = 0;
    uint64_t system_id = 0;
    int32_t timeline = 0;           // the WAL receiver's, else the last restartpoint's
    int32_t receiver_timeline = 0;  // the WAL receiver's; 0 = none running
    Micros started_at = 0;          // pg_postmaster_start_time()
    Lsn current_lsn = 0;            // out of recovery: pg_current_wal_lsn()
    int32_t sender_port = 0;        // in recovery: the WAL receiver's upstream (0 = none)
    char sender_host[kHostLen] = "";
    int32_t connections = 0;
    int32_t max_connections = 0;
    PoolCounts pool{};
    char slot_name[kNameLen] = "";  // the replica's WAL receiver: slot it streams from
    char app_name[kNameLen] = "";   // and the application_name the primary sees
    std::vector<PoolRow> pools;  // pgbouncer probes
    std::string host;  // as libpq connected to it
    std::string port;
    std::string error;
};

enum class Wants { nothing, read, write };

// The worker counts connections against the server's file descriptor budget.
struct FdBudget {
    bool (*acquire)() = nullptr;
    void (*release)() = nullptr;
};

class Poller {
public:
    // `trusted`: a superuser set the connection string. Otherwise it must pass
    // check_unprivileged(), connects without the server's client key and
    // passfile, and is dropped before any query unless it used its password.
    Poller(std::string conninfo, FdBudget fds, Probe probe = Probe::replica, bool trusted = true);
    ~Poller();
    Poller(const Poller &) = delete;
    Poller &operator=(const Poller &) = delete;

    const std::string &conninfo() const noexcept { return conninfo_; }
    bool trusted() const noexcept { return trusted_; }

    // Start a poll unless one is running; connects first if needed.
    // Returns true when it failed at once; the outcome is in result().
    bool start(Micros now, const PollSettings &s);
    bool busy() const noexcept;

    // Socket and event to wait for (-1 / nothing when none), and the time by
    // which advance() must be called even without an event (0 = none).
    int socket() const noexcept;
    Wants wants() const noexcept;
    Micros deadline() const noexcept { return deadline_; }
    // Changes whenever the socket the poller holds changes identity (a new
    // connection, the relay taking over, libpq moving to another address or
    // host, a disconnect), even when the descriptor number is reused. Unique
    // across pollers. A waiter that registered the socket under an older
    // generation must register it anew (epoll keys a registration by number
    // and open file: a reused or dup2'd number leaves it stale).
    uint64_t socket_generation() const noexcept { return sock_gen_; }
    // A host name lookup is in flight: advance() after dns_notify fires.
    bool resolving() const noexcept { return phase_ == Phase::resolving; }

    // Move on after a socket event or at the deadline. Returns true when a
    // poll finished or an idle connection was lost; the outcome is in result().
    bool advance(Micros now);
    const PollResult &result() const noexcept { return result_; }

    void disconnect() noexcept;

private:
    enum class Phase { idle, resolving, connecting, querying, ready };

    bool fail(std::string why);
    bool lose(std::string why);
    bool start_poll(Micros now, const PollSettings &s);
    bool step(Micros now);
    void note_socket() noexcept;
    bool begin_connect(Micros now);
    bool step_resolve(Micros now);
    bool step_connect(Micros now);
    bool step_query(Micros now);
    bool step_ready(Micros now);
    bool send_query(Micros now);
    void cancel_resolution() noexcept;

    bool parse_replica_row(const ::pg_result *res, PollResult &r);
    void parse_pools(const ::pg_result *res, PollResult &r);
    bool consume();
    bool pull(int64_t cap, std::string *why);
    bool relay_startup();
    int64_t received() const noexcept;
    std::string over_cap(int64_t cap) const;

    std::string conninfo_;
    bool trusted_;
    int64_t bytes_mark_ = -1;  // received() when the reply (or idleness) began; -1: not counted
    Relay relay_;              // between libpq and the peer once connected
    bool relay_fds_held_ = false;
    FdBudget fds_;
    Probe probe_;
    PollSettings settings_;
    Phase phase_ = Phase::idle;
    pg_conn *conn_ = nullptr;
    bool fd_held_ = false;
    // A FATAL the server sent on this connection (libpq hands errors that
    // arrive outside a query to the notice receiver); empty when none.
    char goodbye_[256] = "";
    static void notice_receiver(void *arg, const ::pg_result *res) noexcept;
    Wants wants_ = Wants::nothing;
    Micros deadline_ = 0;
    Micros connect_deadline_ = 0;
    struct Resolution;
    std::unique_ptr<Resolution> dns_;
    // Overrides for the connection string once its host names are resolved
    // (empty: none): hostaddr with one entry per host and, when some hosts
    // did not resolve, the hosts and ports that remain.
    std::string hostaddr_, host_, port_;
    int sock_fd_ = -1;  // the socket socket_generation() describes
    unsigned long sock_dev_ = 0, sock_ino_ = 0;
    uint64_t sock_gen_ = 0;
    PollResult result_;
    // The poll being read: results can arrive over several socket events
    // (the row, then ReadyForQuery), so they are gathered here.
    PollResult partial_;
    bool got_row_ = false;
};

} // namespace rr
