#include "poller.hpp"

#include "conninfo.hpp"
#include "dns_notify.hpp"
#include "sockbytes.hpp"

#include <cerrno>

#include <libpq-fe.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace rr {

namespace {

// One round trip tells us everything we need about the replica. It calls the
// functions behind pg_stat_activity and pg_stat_wal_receiver, not the views:
// with the views (and their joins with the catalogs) a poll cost the standby
// 3-4 ms, without them about 0.5 ms. Every function, operator and type is
// qualified: it runs with whatever search_path the polling role has, and a
// schema someone can write on that path must not decide what it calls.
constexpr const char *kPollQuery =
    "SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,"
    // LSNs as numbers: PostgreSQL parses its own format, we read an integer.
    " (pg_catalog.pg_last_wal_receive_lsn() OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn)::pg_catalog.int8"
    "   AS receive_lsn,"
    " (pg_catalog.pg_last_wal_replay_lsn() OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn)::pg_catalog.int8"
    "   AS replay_lsn,"
    " pg_catalog.floor(EXTRACT(epoch FROM pg_catalog.pg_last_xact_replay_timestamp())"
    "                  OPERATOR(pg_catalog.*) 1000000::pg_catalog.numeric)::pg_catalog.int8 AS replay_ts,"
    " CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END"
    "   AS replay_paused,"
    " (SELECT system_identifier FROM pg_catalog.pg_control_system()) AS system_identifier,"
    // Out of recovery, the timeline WAL is written on now (the checkpoint's
    // lags a promotion until the next checkpoint completes).
    " CASE WHEN pg_catalog.pg_is_in_recovery()"
    "   THEN COALESCE((SELECT received_tli FROM pg_catalog.pg_stat_get_wal_receiver() WHERE pid IS NOT NULL),"
    "                 (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()))"
    "   ELSE pg_catalog.int4(CAST(('x' OPERATOR(pg_catalog.||) pg_catalog.substr(pg_catalog.pg_walfile_name("
    "                             pg_catalog.pg_current_wal_lsn()), 1, 8)) AS pg_catalog.\"bit\"(32)))"
    " END AS timeline,"
    " CASE WHEN NOT pg_catalog.pg_is_in_recovery()"
    "   THEN (pg_catalog.pg_current_wal_lsn() OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn)::pg_catalog.int8"
    " END AS current_lsn,"
    " w.sender_host, w.sender_port,"
    " a.total AS connections, pg_catalog.current_setting('max_connections')::pg_catalog.int4 AS max_connections,"
    " a.active, a.idle, a.idle_in_xact, a.waiting,"
    " pg_catalog.current_setting('superuser_reserved_connections')::pg_catalog.int4 OPERATOR(pg_catalog.+)"
    "   COALESCE(pg_catalog.current_setting('reserved_connections', true)::pg_catalog.int4, 0) AS reserved,"
    " w.slot_name,"
    " COALESCE(pg_catalog.substring(w.conninfo, '(?:^| )application_name=(\\S+)'),"
    "          CASE WHEN pg_catalog.current_setting('cluster_name') OPERATOR(pg_catalog.<>) ''"
    "               THEN pg_catalog.current_setting('cluster_name') END,"
    "          'walreceiver') AS application_name,"
    " w.received_tli AS receiver_tli,"
    " pg_catalog.floor(EXTRACT(epoch FROM pg_catalog.pg_postmaster_start_time())"
    "                  OPERATOR(pg_catalog.*) 1000000::pg_catalog.numeric)::pg_catalog.int8 AS started_at"
    " FROM (SELECT pg_catalog.count(*) AS total,"
    "              pg_catalog.count(*) FILTER (WHERE state OPERATOR(pg_catalog.=) 'active') AS active,"
    "              pg_catalog.count(*) FILTER (WHERE state OPERATOR(pg_catalog.=) 'idle') AS idle,"
    "              pg_catalog.count(*) FILTER (WHERE state OPERATOR(pg_catalog.~~) 'idle in transaction%') AS idle_in_xact,"
    "              pg_catalog.count(*) FILTER (WHERE wait_event_type OPERATOR(pg_catalog.=) 'Lock') AS waiting"
    "         FROM pg_catalog.pg_stat_get_activity(NULL)"
    "        WHERE backend_type OPERATOR(pg_catalog.=) 'client backend') a"
    " LEFT JOIN (SELECT * FROM pg_catalog.pg_stat_get_wal_receiver() WHERE pid IS NOT NULL) w ON true";

constexpr Micros kUnixToPgEpoch = 946'684'800LL * 1'000'000LL;
// How often to look at a pending lookup when dns_notify has no fd (otherwise
// the lookup's completion wakes the worker, and only the deadline applies).
constexpr Micros kDnsRecheck = 10'000;

// What a peer may make the worker buffer. A poll's reply is a few hundred
// bytes and SHOW POOLS about a hundred a pool; nothing is expected on an
// idle connection but a FATAL or a parameter change.
constexpr int64_t kReplicaReplyCap = 256 * 1024;
constexpr int64_t kPoolsReplyCap = 4 * 1024 * 1024;
constexpr int64_t kIdleCap = 64 * 1024;
constexpr int64_t kStartupCap = 256 * 1024;  // authentication, parameters, a notice or two

// Where libpq looks for a client certificate, key and passfile of a
// connection string a non-superuser set: a path that can never exist, so
// the server's own ~/.postgresql/postgresql.key and ~/.pgpass stay unused.
constexpr const char *kNoFile = "/dev/null/replica_router-none";


// libpq's messages end in newlines and may span lines; keep the first line.
// Source of socket_generation(): unique across pollers.
uint64_t g_socket_generation = 0;

std::string join(const std::vector<std::string> &parts)
{
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i)
        out += (i == 0 ? "" : ",") + parts[i];
    return out;
}

std::string first_line(const char *msg)
{
    std::string s = msg != nullptr ? msg : "";
    auto nl = s.find('\n');
    if (nl != std::string::npos)
        s.resize(nl);
    if (s.empty())
        s = "unknown libpq error";
    return s;
}

} // namespace

// The in-flight getaddrinfo_a() requests of one connection string: one per
// host name libpq would otherwise resolve itself, started together. glibc
// writes into them from its helper threads until each completes, so a set
// with a request that could not be cancelled is parked until it finishes and
// only then freed.
struct Poller::Resolution {
    struct Entry {
        std::string host;
        std::size_t index = 0;  // position in hosts.hosts
        struct addrinfo hints {};
        struct gaicb cb {};
    };
    HostList hosts;
    std::unique_ptr<Entry[]> entries;  // never moves: glibc holds &cb
    std::size_t count = 0;
    explicit Resolution(HostList hl) : hosts(std::move(hl))
    {
        std::size_t n = 0;
        for (bool dns : hosts.needs_dns)
            n += dns ? 1 : 0;
        entries = std::make_unique<Entry[]>(n);
        for (std::size_t i = 0; i < hosts.hosts.size(); ++i) {
            if (!hosts.needs_dns[i])
                continue;
            Entry &e = entries[count++];
            e.host = hosts.hosts[i];
            e.index = i;
            e.hints.ai_socktype = SOCK_STREAM;
            e.cb.ar_name = e.host.c_str();
            e.cb.ar_request = &e.hints;
        }
    }
    ~Resolution()
    {
        for (std::size_t i = 0; i < count; ++i)
            if (entries[i].cb.ar_result != nullptr)
                freeaddrinfo(entries[i].cb.ar_result);
    }
    // The first request still in flight, or nullptr.
    const Entry *pending()
    {
        for (std::size_t i = 0; i < count; ++i)
            if (gai_error(&entries[i].cb) == EAI_INPROGRESS)
                return &entries[i];
        return nullptr;
    }
};

namespace {
std::vector<void *> &parked()
{
    static std::vector<void *> list;
    return list;
}
} // namespace

void Poller::cancel_resolution() noexcept
{
    if (!dns_)
        return;
    bool running = false;
    for (std::size_t i = 0; i < dns_->count; ++i)
        if (gai_error(&dns_->entries[i].cb) == EAI_INPROGRESS && gai_cancel(&dns_->entries[i].cb) != EAI_CANCELED)
            running = true;
    if (running) {
        try {
            parked().push_back(dns_.release());
        } catch (...) {
            (void) dns_.release(); // leak rather than free memory glibc still writes to
        }
    }
    dns_.reset();
    // Free parked requests that have finished since.
    auto &list = parked();
    for (auto it = list.begin(); it != list.end();) {
        auto *r = static_cast<Resolution *>(*it);
        if (r->pending() == nullptr) {
            delete r;
            it = list.erase(it);
        } else {
            ++it;
        }
    }
}

Poller::Poller(std::string conninfo, FdBudget fds, Probe probe, bool trusted)
    : conninfo_(std::move(conninfo)), trusted_(trusted), fds_(fds), probe_(probe)
{
}

Poller::~Poller() { disconnect(); }

void Poller::disconnect() noexcept
{
    cancel_resolution();
    if (conn_ != nullptr) {
        // Read what the server already sent so it does not log a reset.
        PQconsumeInput(conn_);
        PQfinish(conn_);
        conn_ = nullptr;
    }
    relay_.finish();
    if (relay_fds_held_ && fds_.release != nullptr) {
        fds_.release();
        fds_.release();
    }
    relay_fds_held_ = false;
    if (fd_held_ && fds_.release != nullptr)
        fds_.release();
    fd_held_ = false;
    phase_ = Phase::idle;
    wants_ = Wants::nothing;
    deadline_ = 0;
    hostaddr_.clear();
    host_.clear();
    port_.clear();
    note_socket();
}

// Moves socket_generation() on when the socket changed identity since last
// seen. While connecting libpq may close its socket and open another (the
// next address or host, another sslmode), possibly under the same number:
// then the inode tells. Afterwards only the number can change (the relay).
void Poller::note_socket() noexcept
{
    int fd = conn_ == nullptr ? -1 : relay_.active() ? relay_.peer_fd() : PQsocket(conn_);
    if (fd == sock_fd_ && (fd < 0 || phase_ != Phase::connecting))
        return;
    unsigned long dev = 0, ino = 0;
    struct stat st {};
    if (fd >= 0 && ::fstat(fd, &st) == 0) {
        dev = st.st_dev;
        ino = st.st_ino;
    }
    if (fd == sock_fd_ && dev == sock_dev_ && ino == sock_ino_)
        return;
    sock_fd_ = fd;
    sock_dev_ = dev;
    sock_ino_ = ino;
    sock_gen_ = ++g_socket_generation;
}

bool Poller::busy() const noexcept
{
    return phase_ == Phase::resolving || phase_ == Phase::connecting || phase_ == Phase::querying;
}

int Poller::socket() const noexcept
{
    if (conn_ == nullptr || wants_ == Wants::nothing)
        return -1;
    return relay_.active() ? relay_.peer_fd() : PQsocket(conn_);
}

Wants Poller::wants() const noexcept { return socket() >= 0 ? wants_ : Wants::nothing; }

bool Poller::start(Micros now, const PollSettings &s)
{
    bool done = start_poll(now, s);
    note_socket();
    return done;
}

bool Poller::start_poll(Micros now, const PollSettings &s)
{
    if (busy())
        return false;
    settings_ = s;
    if (phase_ == Phase::ready)
        return send_query(now);
    if (!trusted_) {
        // Checked again here, not only at registration: the role that set it
        // may have lost superuser, or the row predates the rule.
        PrivilegeCheck c = check_unprivileged(conninfo_);
        if (c.verdict != Privilege::ok)
            return fail("not connecting: " + c.error);
    }
    connect_deadline_ = now + s.connect_timeout;
    hostaddr_.clear();
    host_.clear();
    port_.clear();
    // Host names (one or a list) are resolved here, asynchronously; libpq
    // then gets their addresses as hostaddr and never calls getaddrinfo on a
    // name itself, which would block the worker.
    HostList hl = conninfo_hosts(conninfo_);
    if (!hl.any_dns)
        return begin_connect(now);

    dns_ = std::make_unique<Resolution>(std::move(hl));
    std::vector<struct gaicb *> list;
    for (std::size_t i = 0; i < dns_->count; ++i)
        list.push_back(&dns_->entries[i].cb);
    // One notification when every request of the list has completed.
    if (getaddrinfo_a(GAI_NOWAIT, list.data(), static_cast<int>(list.size()), dns_notify::event()) != 0) {
        std::string host = dns_->entries[0].host;
        cancel_resolution();  // some may have been queued
        return fail("could not start resolving host name \"" + host + "\"");
    }
    phase_ = Phase::resolving;
    wants_ = Wants::nothing;
    deadline_ = dns_notify::fd() >= 0 ? connect_deadline_ : std::min(connect_deadline_, now + kDnsRecheck);
    return false;
}

bool Poller::begin_connect(Micros now)
{
    (void) now;
    if (fds_.acquire != nullptr && !fds_.acquire())
        return fail("no file descriptor available for a new connection");
    fd_held_ = true;

    char timeout_opt[64];
    std::snprintf(timeout_opt, sizeof timeout_opt, "-c statement_timeout=%lld",
                  static_cast<long long>(settings_.query_timeout / 1000));
    // Entries before dbname are defaults the registered conninfo may override;
    // hostaddr comes after it so our own resolution wins. pgbouncer's admin
    // console refuses the "options" startup parameter.
    const char *keys[12], *vals[12];
    int k = 0;
    keys[k] = "application_name", vals[k++] = "replica_router";
    if (probe_ == Probe::replica)
        keys[k] = "options", vals[k++] = timeout_opt;
    keys[k] = "dbname", vals[k++] = conninfo_.c_str();
    if (!host_.empty())
        keys[k] = "host", vals[k++] = host_.c_str();
    if (!port_.empty())
        keys[k] = "port", vals[k++] = port_.c_str();
    if (!hostaddr_.empty())
        keys[k] = "hostaddr", vals[k++] = hostaddr_.c_str();
    if (!trusted_) {
        keys[k] = "sslcert", vals[k++] = kNoFile;
        keys[k] = "sslkey", vals[k++] = kNoFile;
        keys[k] = "passfile", vals[k++] = kNoFile;
        keys[k] = "gssencmode", vals[k++] = "disable";
    }
    keys[k] = nullptr, vals[k] = nullptr;
    conn_ = PQconnectStartParams(keys, vals, 1);
    if (conn_ == nullptr)
        return fail("out of memory while starting a connection");
    if (PQstatus(conn_) == CONNECTION_BAD) {
        // Failing at once means libpq could not parse the string, and its
        // message may quote a password: say it the way check_conninfo does.
        ConninfoCheck c = check_conninfo(conninfo_);
        return fail(c.ok ? first_line(PQerrorMessage(conn_)) : c.error);
    }
    goodbye_[0] = '\0';
    PQsetNoticeReceiver(conn_, &Poller::notice_receiver, this);
    // Set before the handshake, so the window the peer sees is small from
    // the start; startup traffic counts against kStartupCap.
    limit_receive_buffer(PQsocket(conn_));
    bytes_mark_ = socket_bytes_received(PQsocket(conn_)) >= 0 ? 0 : -1;
    phase_ = Phase::connecting;
    wants_ = Wants::write; // as if PQconnectPoll had answered PGRES_POLLING_WRITING
    deadline_ = connect_deadline_;
    return false;
}

bool Poller::send_query(Micros now)
{
    if (PQsendQuery(conn_, probe_ == Probe::replica ? kPollQuery : "SHOW POOLS") == 0)
        return fail(first_line(PQerrorMessage(conn_)));
    phase_ = Phase::querying;
    partial_ = PollResult{};
    got_row_ = false;
    bytes_mark_ = received();
    deadline_ = now + settings_.query_timeout;
    int flushed = PQflush(conn_);
    if (flushed < 0)
        return fail(first_line(PQerrorMessage(conn_)));
    bool blocked = false;
    if (relay_.active() && !relay_.push(&blocked))
        return fail("could not send the poll: " + std::string(std::strerror(errno)));
    wants_ = flushed == 1 || blocked ? Wants::write : Wants::read;
    return false;
}

bool Poller::fail(std::string why)
{
    disconnect();
    result_ = PollResult{};
    result_.error = scrub_secrets(std::move(why), conninfo_);
    return true;
}

// Bytes the peer has sent: counted by the relay once connected, by the
// kernel while connecting (-1 when neither can tell).
int64_t Poller::received() const noexcept
{
    if (relay_.active())
        return relay_.received();
    return conn_ != nullptr ? socket_bytes_received(PQsocket(conn_)) : -1;
}

// Passes what the peer sent on to libpq, never more than `cap` bytes past
// bytes_mark_. False, with the reason, when the peer sent more or failed.
bool Poller::pull(int64_t cap, std::string *why)
{
    if (!relay_.active())
        return true;
    for (int i = 0; i < 8; ++i) {
        int64_t before = relay_.received();
        bool eof = false;
        if (!relay_.pull(bytes_mark_ + cap, &eof)) {
            *why = std::string("connection to the server failed: ") + std::strerror(errno);
            return false;
        }
        if (std::string big = over_cap(cap); !big.empty()) {
            *why = big;
            return false;
        }
        if (eof || relay_.received() == before)
            break;
    }
    bool blocked = false;
    if (!relay_.push(&blocked)) {  // anything libpq wrote meanwhile
        *why = std::string("connection to the server failed: ") + std::strerror(errno);
        return false;
    }
    return true;
}

// Reads what arrived and drops notifications: nobody LISTENs on a poll
// connection, so any are a peer's attempt to fill the worker's memory.
bool Poller::consume()
{
    bool ok = PQconsumeInput(conn_) != 0;
    while (PGnotify *n = PQnotifies(conn_))
        PQfreemem(n);
    return ok;
}

// Non-empty when the peer has sent more than `cap` bytes since bytes_mark_.
std::string Poller::over_cap(int64_t cap) const
{
    if (bytes_mark_ < 0)
        return "";
    int64_t now = received();
    if (now < 0 || now - bytes_mark_ <= cap)
        return "";
    const char *when = phase_ == Phase::ready       ? " on an idle connection"
                       : phase_ == Phase::connecting ? " while connecting"
                                                     : " in reply to a poll";
    return "the server sent more than " + std::to_string(cap / 1024) + " kB" + when +
           ": reply too large, connection closed";
}

bool Poller::advance(Micros now)
{
    bool done = step(now);
    note_socket();
    return done;
}

bool Poller::step(Micros now)
{
    switch (phase_) {
    case Phase::idle:
        return false;
    case Phase::resolving:
        return step_resolve(now);
    case Phase::connecting:
        return step_connect(now);
    case Phase::querying:
        return step_query(now);
    case Phase::ready:
        return step_ready(now);
    }
    return false;
}

bool Poller::step_resolve(Micros now)
{
    if (const auto *e = dns_->pending()) {
        if (now >= connect_deadline_)
            return fail("timeout resolving host name \"" + e->host + "\"");
        deadline_ = dns_notify::fd() >= 0 ? connect_deadline_ : std::min(connect_deadline_, now + kDnsRecheck);
        return false;
    }
    // Every lookup has finished. A host that did not resolve is left out,
    // as libpq skips a host it cannot resolve; none left is a failure.
    const HostList &hl = dns_->hosts;
    std::vector<std::string> addrs = hl.hostaddrs;
    std::vector<bool> keep(hl.hosts.size(), true);
    std::string first_error;
    for (std::size_t i = 0; i < dns_->count; ++i) {
        auto &e = dns_->entries[i];
        int rc = gai_error(&e.cb);
        if (rc != 0 || e.cb.ar_result == nullptr) {
            keep[e.index] = false;
            if (first_error.empty())
                first_error = "could not resolve host name \"" + e.host + "\": " + gai_strerror(rc);
            continue;
        }
        char addr[INET6_ADDRSTRLEN] = "";
        const struct addrinfo *ai = e.cb.ar_result;
        const void *raw = ai->ai_family == AF_INET6
                              ? static_cast<const void *>(&reinterpret_cast<const sockaddr_in6 *>(ai->ai_addr)->sin6_addr)
                              : static_cast<const void *>(&reinterpret_cast<const sockaddr_in *>(ai->ai_addr)->sin_addr);
        inet_ntop(ai->ai_family, raw, addr, sizeof addr);
        addrs[e.index] = addr;
    }
    std::size_t kept = static_cast<std::size_t>(std::count(keep.begin(), keep.end(), true));
    if (kept == 0)
        return fail(first_error);
    if (kept == keep.size()) {
        hostaddr_ = join(addrs);
    } else {
        std::vector<std::string> hosts, ports, kept_addrs;
        bool per_host_ports = hl.ports.size() > 1 && hl.ports.size() == hl.hosts.size();
        for (std::size_t i = 0; i < keep.size(); ++i) {
            if (!keep[i])
                continue;
            hosts.push_back(hl.hosts[i]);
            kept_addrs.push_back(addrs[i]);
            if (per_host_ports)
                ports.push_back(hl.ports[i]);
        }
        host_ = join(hosts);
        hostaddr_ = join(kept_addrs);
        port_ = join(ports);
    }
    dns_.reset();
    return begin_connect(now);
}

// The relay goes in once libpq has sent its first packet on a connected
// socket and waits for the server: from then on every byte the server sends
// passes the startup cap. A fallback to another host (or another sslmode)
// opens a new socket, and the relay follows it.
bool Poller::relay_startup()
{
    ConnStatusType st = PQstatus(conn_);
    bool awaiting = st == CONNECTION_AWAITING_RESPONSE || st == CONNECTION_SSL_STARTUP ||
                    st == CONNECTION_GSS_STARTUP;
    if (relay_.active() && !relay_.serves(PQsocket(conn_))) {
        relay_.close();  // libpq closed its end of this one
        if (relay_fds_held_ && fds_.release != nullptr) {
            fds_.release();
            fds_.release();
        }
        relay_fds_held_ = false;
        bytes_mark_ = socket_bytes_received(PQsocket(conn_)) >= 0 ? 0 : -1;
    }
    if (relay_.active() || !(awaiting || st == CONNECTION_OK))
        return true;
    if (fds_.acquire != nullptr && !(fds_.acquire() && (fds_.acquire() || (fds_.release(), false))))
        return false;
    relay_fds_held_ = true;
    bytes_mark_ = 0;
    return relay_.install(PQsocket(conn_));
}

bool Poller::step_connect(Micros now)
{
    if (now >= connect_deadline_)
        return fail("timeout connecting");
    std::string why;
    if (!pull(kStartupCap, &why))
        return fail(why);
    // Before the relay: checked before libpq reads, as well as after; one
    // read takes in what the kernel holds (limit_receive_buffer).
    if (std::string big = over_cap(kStartupCap); !big.empty())
        return fail(big);
    PostgresPollingStatusType polled = PQconnectPoll(conn_);
    while (PGnotify *n = PQnotifies(conn_))
        PQfreemem(n);
    if (polled != PGRES_POLLING_FAILED && !relay_startup())
        return fail(std::string("could not set up the connection's relay: ") + std::strerror(errno));
    bool blocked = false;
    if (relay_.active() && polled != PGRES_POLLING_FAILED && !relay_.push(&blocked))
        return fail(std::string("connection to the server failed: ") + std::strerror(errno));
    switch (polled) {
    case PGRES_POLLING_READING:
        wants_ = blocked ? Wants::write : Wants::read;
        return false;
    case PGRES_POLLING_WRITING:
        wants_ = Wants::write;
        return false;
    case PGRES_POLLING_FAILED:
        return fail(first_line(PQerrorMessage(conn_)));
    case PGRES_POLLING_OK:
        if (!trusted_ && PQconnectionUsedPassword(conn_) == 0)
            return fail("refused: the server did not ask for the password (a connection string set by a role that "
                        "is not a superuser must authenticate with its own password)");
        if (PQsetnonblocking(conn_, 1) != 0)
            return fail(first_line(PQerrorMessage(conn_)));
        return send_query(now);
    default:
        return false;
    }
}

bool Poller::step_query(Micros now)
{
    if (now >= deadline_)
        return fail("timeout waiting for an answer");
    if (wants_ == Wants::write) {
        int flushed = PQflush(conn_);
        if (flushed < 0)
            return fail(first_line(PQerrorMessage(conn_)));
        bool blocked = false;
        if (relay_.active() && !relay_.push(&blocked))
            return fail(std::string("connection to the server failed: ") + std::strerror(errno));
        wants_ = flushed == 1 || blocked ? Wants::write : Wants::read;
        return false;
    }
    int64_t cap = probe_ == Probe::replica ? kReplicaReplyCap : kPoolsReplyCap;
    std::string why;
    if (!pull(cap, &why))
        return fail(why);
    if (!consume())
        return fail(first_line(PQerrorMessage(conn_)));
    if (std::string big = over_cap(cap); !big.empty())
        return fail(big);
    // An error while libpq still waits for ReadyForQuery: the poll query
    // itself never fails, so this is a server going away (a FATAL is never
    // followed by ReadyForQuery). Waiting for the socket to close could
    // take as long as the backend's exit.
    if (PQisBusy(conn_) != 0 && PQerrorMessage(conn_)[0] != '\0')
        return fail(first_line(PQerrorMessage(conn_)));

    PollResult &r = partial_;
    bool &got_row = got_row_;
    while (PQisBusy(conn_) == 0) {
        PGresult *res = PQgetResult(conn_);
        if (res == nullptr) {
            // All results read: the poll is complete.
            if (!got_row && r.error.empty())
                r.error = "the server returned no row";
            r.ok = r.error.empty();
            if (r.ok) {
                r.host = PQhost(conn_) ? PQhost(conn_) : "";
                r.port = PQport(conn_) ? PQport(conn_) : "";
            }
            result_ = std::move(r);
            phase_ = Phase::ready;
            wants_ = Wants::read; // watch the idle connection for a drop
            deadline_ = 0;
            bytes_mark_ = received();
            if (!result_.ok) {
                std::string why = result_.error;
                return fail(why);
            }
            return true;
        }
        std::unique_ptr<PGresult, void (*)(PGresult *)> owned(res, PQclear);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            if (probe_ == Probe::replica)
                got_row = parse_replica_row(res, r) || got_row;
            else {
                parse_pools(res, r);
                got_row = true;
            }
        } else {
            r.error = first_line(PQresultErrorMessage(res));
        }
    }
    return false;
}

// Columns are found by name: a server that answers with other columns (a
// pooler, a fake) gets a clear error, not values read from the wrong place.
bool Poller::parse_replica_row(const PGresult *res, PollResult &r)
{
    static constexpr const char *kColumns[] = {
        "in_recovery", "receive_lsn", "replay_lsn", "replay_ts", "replay_paused", "system_identifier",
        "timeline", "connections", "max_connections", "active", "idle", "idle_in_xact", "waiting",
        "reserved", "slot_name", "application_name", "receiver_tli", "started_at", "current_lsn",
        "sender_host", "sender_port"};
    constexpr int kCount = sizeof kColumns / sizeof kColumns[0];
    if (PQntuples(res) != 1)
        return false;
    int col[kCount];
    for (int i = 0; i < kCount; ++i)
        if ((col[i] = PQfnumber(res, kColumns[i])) < 0) {
            r.error = std::string("the server's answer has no column \"") + kColumns[i] + "\"";
            return false;
        }
    auto text = [&](int i) -> const char * { return PQgetisnull(res, 0, col[i]) ? nullptr : PQgetvalue(res, 0, col[i]); };
    auto int_at = [&](int i) { return text(i) ? static_cast<int32_t>(std::strtol(text(i), nullptr, 10)) : 0; };
    auto int64_at = [&](int i) { return text(i) ? static_cast<int64_t>(std::strtoll(text(i), nullptr, 10)) : 0; };
    int i = 0;
    r.in_recovery = text(i) != nullptr && text(i)[0] == 't';
    r.receive_lsn = static_cast<Lsn>(int64_at(++i));
    r.replay_lsn = static_cast<Lsn>(int64_at(++i));
    if (text(++i) != nullptr) {
        r.has_replay_ts = true;
        r.last_replay_ts = int64_at(i) - kUnixToPgEpoch;
    }
    ++i;
    r.replay_paused = text(i) != nullptr && text(i)[0] == 't';
    ++i;
    r.system_id = text(i) ? static_cast<uint64_t>(std::strtoull(text(i), nullptr, 10)) : 0;
    r.timeline = int_at(++i);
    r.connections = int_at(++i);
    r.max_connections = int_at(++i);
    r.pool.active = int_at(++i);
    r.pool.idle = int_at(++i);
    r.pool.idle_in_xact = int_at(++i);
    r.pool.waiting = int_at(++i);
    r.pool.reserved = int_at(++i);
    copy_str(r.slot_name, sizeof r.slot_name, text(++i));
    copy_str(r.app_name, sizeof r.app_name, text(++i));
    r.receiver_timeline = int_at(++i);
    ++i;
    r.started_at = text(i) ? int64_at(i) - kUnixToPgEpoch : 0;
    r.current_lsn = static_cast<Lsn>(int64_at(++i));
    copy_str(r.sender_host, sizeof r.sender_host, text(++i));
    r.sender_port = int_at(++i);
    static_assert(kCount == 21);
    return ++i == kCount;
}

// SHOW POOLS columns vary across pgbouncer versions: look them up by name.
void Poller::parse_pools(const PGresult *res, PollResult &r)
{
    auto col = [&](const char *name) { return PQfnumber(res, name); };
    int c_db = col("database"), c_user = col("user"), c_cla = col("cl_active"), c_clw = col("cl_waiting"),
        c_sva = col("sv_active"), c_svi = col("sv_idle"), c_svu = col("sv_used"), c_mw = col("maxwait"),
        c_mwus = col("maxwait_us"), c_mode = col("pool_mode");
    auto text = [&](int row, int c) -> const char * {
        return c < 0 || PQgetisnull(res, row, c) ? "" : PQgetvalue(res, row, c);
    };
    auto num = [&](int row, int c) { return static_cast<int32_t>(std::strtol(text(row, c), nullptr, 10)); };
    if (PQntuples(res) > static_cast<int>(kMaxPools)) {
        r.error = "SHOW POOLS returned " + std::to_string(PQntuples(res)) + " pools: too many, replica_router keeps at most " +
                  std::to_string(kMaxPools);
        return;
    }
    for (int row = 0; row < PQntuples(res); ++row) {
        PoolRow p{};
        copy_str(p.database, sizeof p.database, text(row, c_db));
        copy_str(p.user, sizeof p.user, text(row, c_user));
        copy_str(p.pool_mode, sizeof p.pool_mode, text(row, c_mode));
        p.cl_active = num(row, c_cla);
        p.cl_waiting = num(row, c_clw);
        p.sv_active = num(row, c_sva);
        p.sv_idle = num(row, c_svi);
        p.sv_used = num(row, c_svu);
        p.maxwait = static_cast<Micros>(num(row, c_mw)) * 1'000'000 + num(row, c_mwus);
        r.pools.push_back(p);
    }
}

// A server that shuts down or terminates the backend sends a FATAL and only
// closes the socket once the backend has exited, which can take a hundred
// milliseconds or more. The FATAL is the earliest sign: act on it.
void Poller::notice_receiver(void *arg, const ::pg_result *res) noexcept
{
    auto *self = static_cast<Poller *>(arg);
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (severity == nullptr || (strcmp(severity, "FATAL") != 0 && strcmp(severity, "PANIC") != 0))
        return;
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    snprintf(self->goodbye_, sizeof self->goodbye_, "%s: %s", severity, msg != nullptr ? msg : "(no message)");
}

bool Poller::step_ready(Micros now)
{
    (void) now;
    // Nothing is expected on an idle connection: readable means the server
    // said goodbye (shutdown, terminated backend) or the connection broke.
    std::string why;
    if (!pull(kIdleCap, &why))
        return lose(why);
    bool broken = !consume() || PQstatus(conn_) == CONNECTION_BAD;
    if (goodbye_[0] != '\0')
        return lose(goodbye_);
    if (broken)
        return lose(first_line(PQerrorMessage(conn_)));
    if (PQisBusy(conn_) == 0) {
        if (PGresult *res = PQgetResult(conn_)) {
            std::string why = first_line(PQresultErrorMessage(res));
            PQclear(res);
            return lose(why);
        }
    }
    return false;
}

bool Poller::lose(std::string why)
{
    fail(std::move(why));
    result_.lost_idle = true;
    return true;
}

} // namespace rr
