// replica_router serve: what the server knows, refreshed by one thread that
// keeps a connection to the source, LISTENs for the worker's changes and
// re-reads the extension's views at least every interval. HTTP handlers
// read the latest snapshot without touching the database.
#pragma once

#include "pgconn.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace rr {

struct ServeOptions {
    std::string source;          // libpq connection string (several hosts: the primary is chosen)
    std::string listen = "127.0.0.1";
    int port = 9188;
    double interval_s = 0.5;     // refresh at least this often
    std::optional<double> stale_after_s;  // default: the source's replica_router.stale_after
    int threads = 16;         // concurrent connections served (one pool thread each)
};

// One reading of the views, as JSON (the server builds it; see kSnapshotQuery).
struct Snapshot {
    nlohmann::json data;
    Clock::time_point fetched;   // when it was read (steady clock)
    double fetched_unix = 0;     // the same, as a UNIX time
    std::string metrics;         // Prometheus exposition, rendered once per snapshot
};

// Lag history per replica for the status page's sparklines.
struct LagHistory {
    static constexpr std::size_t kPoints = 120;
    std::map<std::string, std::deque<double>> lag;  // node -> last kPoints lag seconds (-1: no figure)
};

class Source {
  public:
    explicit Source(const ServeOptions &o);
    ~Source();
    void start();
    void stop();

    std::shared_ptr<const Snapshot> latest() const;
    LagHistory history() const;
    double stale_after() const;     // seconds
    double interval() const { return opt_.interval_s; }
    std::string last_error() const;
    long long refreshes() const { return refreshes_.load(); }

    // recommend() on a connection of its own, answers cached for one
    // interval per parameter set. Returns the JSON answer or an error.
    bool recommend(const std::string &operation, const std::optional<std::string> &max_lag,
                   const std::optional<std::string> &min_lsn, const std::optional<std::string> &zone,
                   nlohmann::json &out, std::string &err, double &age);

  private:
    void run();
    bool refresh(std::string &err);
    bool connect(PGconn **conn, bool listen, std::string &err);

    ServeOptions opt_;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    int wake_[2] = {-1, -1};
    volatile int stop_flag_ = 0;

    mutable std::mutex mu_;  // guards snap_, history_, error_, stale_after_s_
    std::shared_ptr<const Snapshot> snap_;
    LagHistory history_;
    std::string error_;
    double stale_after_s_ = 3;
    std::atomic<long long> refreshes_{0};
    PGconn *conn_ = nullptr;  // the refresh thread's

    struct Cached {
        nlohmann::json answer;
        Clock::time_point at;
    };
    std::mutex rec_mu_;  // guards rec_conn_ and rec_cache_
    PGconn *rec_conn_ = nullptr;
    std::map<std::string, Cached> rec_cache_;
};

} // namespace rr
