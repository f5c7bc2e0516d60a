// libpq helpers shared by check, follow and serve: result wrappers,
// connection-string inspection, a connect that never blocks past its
// deadline. Plain libpq, no server headers.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace rr {

using Clock = std::chrono::steady_clock;

// A result, freed with it; columns by number or by name.
class Result {
  public:
    explicit Result(PGresult *res) : res_(res) {}
    ~Result() { PQclear(res_); }
    Result(const Result &) = delete;
    Result &operator=(const Result &) = delete;

    PGresult *get() const { return res_; }
    ExecStatusType status() const { return PQresultStatus(res_); }
    bool ok() const { return status() == PGRES_TUPLES_OK || status() == PGRES_COMMAND_OK; }
    int rows() const { return PQntuples(res_); }
    const char *get(int row, int col) const
    {
        return col < 0 || row >= rows() || PQgetisnull(res_, row, col) ? nullptr : PQgetvalue(res_, row, col);
    }
    const char *get(int row, const char *col) const { return get(row, PQfnumber(res_, col)); }
    template <typename C> std::string str(int row, C col) const
    {
        const char *v = get(row, col);
        return v != nullptr ? v : "";
    }
    std::optional<double> number(int row, const char *col) const;
    std::optional<bool> flag(int row, const char *col) const;
    // The error of a failed result, one line.
    std::string error() const;

  private:
    PGresult *res_;
};

// The keyword/value pairs of a connection string; nullopt with *err set when
// libpq cannot parse it.
std::optional<std::vector<std::pair<std::string, std::string>>> conninfo_values(const std::string &conninfo,
                                                                                 std::string *err = nullptr);

// host:port of a connection string, for messages (never the password).
std::string endpoint(const std::string &conninfo);

// Whether the value given as a database name is a connection string or URI.
bool looks_like_conninfo(const std::string &s);

// connect_timeout of a connection string (at least 2 s), else the default.
int connect_timeout_of(const std::string &conninfo, int default_s);

// Connection parameters in the order libpq applies them (later ones win;
// "dbname" holding a connection string is expanded in place).
struct ConnParams {
    std::vector<std::pair<std::string, std::string>> kv;
    void add(const std::string &k, const std::string &v) { kv.emplace_back(k, v); }
    // A peer that stops answering (frozen, black-holed) costs a blocked call
    // about 25 s, not the kernel's minutes: keepalives and a TCP user timeout.
    void add_dead_peer_limits()
    {
        add("keepalives", "1");
        add("keepalives_idle", "10");
        add("keepalives_interval", "5");
        add("keepalives_count", "3");
        add("tcp_user_timeout", "25000");
    }
};

// Connects without blocking past the deadline; wake_fd (or -1) readable, or
// *stop set, ends the wait early. nullptr with err on failure.
PGconn *connect_until(const ConnParams &params, Clock::time_point deadline, int wake_fd,
                      const volatile int *stop, std::string &err);

// Waits for fd to be ready (POLLIN or POLLOUT) or wake_fd readable; false on
// timeout, stop or wake.
bool wait_fd(int fd, short events, Clock::time_point deadline, int wake_fd, const volatile int *stop);

// Runs a query with text parameters (nullopt: NULL).
PGresult *exec_params(PGconn *conn, const char *sql, const std::vector<std::optional<std::string>> &params);

} // namespace rr
