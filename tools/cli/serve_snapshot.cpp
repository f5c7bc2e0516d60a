// The refresh thread of replica_router serve (see serve_snapshot.hpp).
#include "serve_snapshot.hpp"

#include "exposition.hpp"
#include "text.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace rr {

namespace {

// Every view in one statement, one snapshot, built as JSON by the server
// (the extension's snapshot(), 1.2 and later; durations as seconds,
// timestamps as UNIX times).
constexpr const char *kSnapshotQuery = "SELECT replica_router.snapshot()::pg_catalog.text";

constexpr std::size_t kMaxSnapshotBytes = 16u << 20;  // a registry of 256 nodes is far below
constexpr std::size_t kMaxCachedAnswers = 1024;

void drain(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

} // namespace

Source::Source(const ServeOptions &o) : opt_(o)
{
    if (pipe(wake_) == 0)
        for (int fd : wake_) {
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
    if (opt_.stale_after_s)
        stale_after_s_ = *opt_.stale_after_s;
}

Source::~Source()
{
    stop();
    if (conn_ != nullptr)
        PQfinish(conn_);
    if (rec_conn_ != nullptr)
        PQfinish(rec_conn_);
    for (int fd : wake_)
        if (fd >= 0)
            close(fd);
}

void Source::start() { thread_ = std::thread([this] { run(); }); }

void Source::stop()
{
    stop_ = true;
    stop_flag_ = 1;
    if (wake_[1] >= 0)
        (void) !write(wake_[1], "x", 1);
    if (thread_.joinable())
        thread_.join();
}

std::shared_ptr<const Snapshot> Source::latest() const
{
    std::lock_guard<std::mutex> g(mu_);
    return snap_;
}

LagHistory Source::history() const
{
    std::lock_guard<std::mutex> g(mu_);
    return history_;
}

double Source::stale_after() const
{
    std::lock_guard<std::mutex> g(mu_);
    return stale_after_s_;
}

std::string Source::last_error() const
{
    std::lock_guard<std::mutex> g(mu_);
    return error_;
}

bool Source::connect(PGconn **conn, bool listen, std::string &err)
{
    if (*conn != nullptr && PQstatus(*conn) == CONNECTION_OK)
        return true;
    if (*conn != nullptr)
        PQfinish(*conn);
    *conn = nullptr;
    ConnParams p;
    p.add("connect_timeout", "5");
    // Several hosts: the primary (a standby's views are its own observer's,
    // and its /primary check must not answer for the cluster), unless the
    // string says otherwise.
    p.add("target_session_attrs", "read-write");
    p.add("application_name", "replica_router serve");
    p.add("options", "-c statement_timeout=5000 -c search_path=pg_catalog");
    p.add_dead_peer_limits();
    p.add("dbname", opt_.source);
    auto deadline = Clock::now() + std::chrono::seconds(connect_timeout_of(opt_.source, 5));
    *conn = connect_until(p, deadline, wake_[0], &stop_flag_, err);
    if (*conn == nullptr)
        return false;
    if (listen) {
        Result r(PQexec(*conn, "LISTEN replica_router"));
        if (!r.ok()) {
            err = "LISTEN failed: " + r.error();
            PQfinish(*conn);
            *conn = nullptr;
            return false;
        }
    }
    return true;
}

bool Source::refresh(std::string &err)
{
    if (!connect(&conn_, true, err))
        return false;
    Result r(PQexec(conn_, kSnapshotQuery));
    if (r.status() != PGRES_TUPLES_OK || r.rows() != 1) {
        err = "reading the views failed: " + (r.get() != nullptr ? r.error() : one_line(PQerrorMessage(conn_)));
        if (PQstatus(conn_) != CONNECTION_OK) {
            PQfinish(conn_);
            conn_ = nullptr;
        }
        return false;
    }
    const char *text = r.get(0, 0);
    if (text == nullptr || std::strlen(text) > kMaxSnapshotBytes) {
        err = "the views' answer is empty or too large";
        return false;
    }
    auto snap = std::make_shared<Snapshot>();
    try {
        snap->data = nlohmann::json::parse(text);
    } catch (const std::exception &e) {
        err = std::string("cannot parse the views' answer: ") + e.what();
        return false;
    }
    if (!snap->data.is_object() || !snap->data["nodes"].is_array()) {
        err = "the views' answer has no nodes";
        return false;
    }
    snap->fetched = Clock::now();
    snap->fetched_unix =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    snap->metrics = render_metrics(snap->data);
    std::lock_guard<std::mutex> g(mu_);
    if (!opt_.stale_after_s && snap->data["settings"]["stale_after"].is_number())
        stale_after_s_ = std::max(0.1, snap->data["settings"]["stale_after"].get<double>());
    for (const auto &n : snap->data["nodes"]) {
        if (n.value("role", "") != "replica" || !n["node"].is_string())
            continue;
        auto &h = history_.lag[n["node"].get<std::string>()];
        h.push_back(n["lag_seconds"].is_number() ? n["lag_seconds"].get<double>() : -1);
        while (h.size() > LagHistory::kPoints)
            h.pop_front();
    }
    // Forget nodes no longer registered (the registry may hold 256; names change).
    for (auto it = history_.lag.begin(); it != history_.lag.end();) {
        bool known = std::any_of(snap->data["nodes"].begin(), snap->data["nodes"].end(),
                                 [&](const auto &n) { return n.value("node", "") == it->first; });
        it = known ? std::next(it) : history_.lag.erase(it);
    }
    snap_ = std::move(snap);
    error_.clear();
    ++refreshes_;
    return true;
}

void Source::run()
{
    using namespace std::chrono;
    auto interval = duration_cast<milliseconds>(duration<double>(opt_.interval_s));
    int failures = 0;
    std::string last_err;
    while (!stop_) {
        std::string err;
        auto started = Clock::now();
        if (refresh(err)) {
            if (failures > 0)
                say("source %s: reading the views again", endpoint(opt_.source).c_str());
            failures = 0;
            last_err.clear();
        } else {
            ++failures;
            {
                std::lock_guard<std::mutex> g(mu_);
                error_ = err;
            }
            if (err != last_err)
                say("source %s: %s; serving the last answer while it is younger than stale_after",
                    endpoint(opt_.source).c_str(), err.c_str());
            last_err = err;
        }
        // Wait for the interval, a notification (refresh at once, at most
        // one refresh per 20 ms whoever NOTIFYs), or stop. After failures,
        // back off, but retry at least every second (or every interval, if
        // longer): a promoted member is found within about a second, and one
        // connection attempt per second is nothing to the members.
        auto cap = std::max(milliseconds(1000), interval);
        auto wait = failures == 0 ? interval : std::min(cap, interval * (1 << std::min(failures, 4)));
        auto deadline = started + wait;
        bool notified = false;
        while (!stop_ && !notified) {
            auto left = duration_cast<milliseconds>(deadline - Clock::now()).count();
            if (left <= 0)
                break;
            int sock = conn_ != nullptr ? PQsocket(conn_) : -1;
            pollfd p[2] = {{wake_[0], POLLIN, 0}, {sock, POLLIN, 0}};
            int rc = poll(p, 2, static_cast<int>(left));
            drain(wake_[0]);
            if (rc > 0 && sock >= 0 && p[1].revents != 0) {
                if (!PQconsumeInput(conn_)) {
                    break;  // lost: the next refresh reconnects
                }
                while (PGnotify *n = PQnotifies(conn_)) {
                    notified = true;
                    PQfreemem(n);
                }
            }
        }
        if (notified) {
            auto since = Clock::now() - started;
            if (since < milliseconds(20))
                std::this_thread::sleep_for(milliseconds(20) - since);
        }
    }
}

bool Source::recommend(const std::string &operation, const std::optional<std::string> &max_lag,
                       const std::optional<std::string> &min_lsn, const std::optional<std::string> &zone,
                       nlohmann::json &out, std::string &err, double &age)
{
    std::string key = operation + '\x1f' + max_lag.value_or("\x1e") + '\x1f' + min_lsn.value_or("\x1e") + '\x1f' +
                      zone.value_or("\x1e");
    std::lock_guard<std::mutex> g(rec_mu_);
    auto now = Clock::now();
    auto interval = std::chrono::duration<double>(opt_.interval_s);
    if (auto it = rec_cache_.find(key); it != rec_cache_.end() && now - it->second.at < interval) {
        out = it->second.answer;
        age = std::chrono::duration<double>(now - it->second.at).count();
        return true;
    }
    if (!connect(&rec_conn_, false, err))
        return false;
    static const char *sql =
        "SELECT pg_catalog.json_build_object('node', r.node, 'host', r.host, 'port', r.port, 'role', r.role,"
        " 'replay_lag_seconds', extract(epoch FROM r.replay_lag), 'lag_bytes', r.lag_bytes, 'reason', r.reason,"
        " 'connection_string', replica_router.connection_string($1, $2::interval, $3::pg_lsn, $4))::text"
        " FROM replica_router.recommend($1, $2::interval, $3::pg_lsn, $4) r";
    Result r(exec_params(rec_conn_, sql, {operation, max_lag, min_lsn, zone}));
    if (r.status() != PGRES_TUPLES_OK || r.rows() != 1) {
        err = r.get() != nullptr ? r.error() : one_line(PQerrorMessage(rec_conn_));
        if (const char *state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE))
            err = std::string(state) + ": " + err;
        if (PQstatus(rec_conn_) != CONNECTION_OK) {
            PQfinish(rec_conn_);
            rec_conn_ = nullptr;
        }
        return false;
    }
    try {
        out = nlohmann::json::parse(r.str(0, 0));
    } catch (const std::exception &e) {
        err = std::string("cannot parse the answer: ") + e.what();
        return false;
    }
    if (rec_cache_.size() >= kMaxCachedAnswers)
        rec_cache_.clear();  // many distinct min_lsn values: start over rather than grow
    rec_cache_[key] = Cached{out, now};
    age = 0;
    return true;
}

} // namespace rr
