// libpq helpers shared by the subcommands (see pgconn.hpp).
#include "pgconn.hpp"

#include "text.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace rr {

std::optional<double> Result::number(int row, const char *col) const
{
    const char *v = get(row, col);
    if (v == nullptr)
        return std::nullopt;
    return std::strtod(v, nullptr);
}

std::optional<bool> Result::flag(int row, const char *col) const
{
    const char *v = get(row, col);
    if (v == nullptr)
        return std::nullopt;
    return v[0] == 't';
}

std::string Result::error() const
{
    if (res_ == nullptr)
        return "out of memory";
    std::string msg = one_line(PQresultErrorMessage(res_));
    return msg.empty() ? "unknown error" : msg;
}

std::optional<std::vector<std::pair<std::string, std::string>>> conninfo_values(const std::string &conninfo,
                                                                                 std::string *err)
{
    char *errmsg = nullptr;
    PQconninfoOption *opts = PQconninfoParse(conninfo.c_str(), &errmsg);
    if (opts == nullptr) {
        if (err != nullptr)
            *err = one_line(errmsg != nullptr ? errmsg : "out of memory");
        PQfreemem(errmsg);
        return std::nullopt;
    }
    std::vector<std::pair<std::string, std::string>> out;
    for (PQconninfoOption *o = opts; o->keyword != nullptr; ++o)
        if (o->val != nullptr)
            out.emplace_back(o->keyword, o->val);
    PQconninfoFree(opts);
    return out;
}

std::string endpoint(const std::string &conninfo)
{
    std::string host = "default host", port;
    if (auto kv = conninfo_values(conninfo)) {
        for (const auto &[k, v] : *kv) {
            if (v.empty())
                continue;
            if (k == "host" || (k == "hostaddr" && host == "default host"))
                host = v;
            else if (k == "port")
                port = v;
        }
    }
    return port.empty() ? host : host + ":" + port;
}

bool looks_like_conninfo(const std::string &s)
{
    return s.find('=') != std::string::npos || s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0;
}

int connect_timeout_of(const std::string &conninfo, int default_s)
{
    int timeout = default_s;
    if (auto kv = conninfo_values(conninfo))
        for (const auto &[k, v] : *kv)
            if (k == "connect_timeout" && std::atoi(v.c_str()) > 0)
                timeout = std::max(2, std::atoi(v.c_str()));
    return timeout;
}

bool wait_fd(int fd, short events, Clock::time_point deadline, int wake_fd, const volatile int *stop)
{
    for (;;) {
        if (stop != nullptr && *stop)
            return false;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0)
            return false;
        pollfd p[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
        int rc = poll(p, 2, static_cast<int>(std::min<long long>(left, 1000)));
        if (rc < 0 && errno != EINTR)
            return false;
        if (rc > 0 && p[0].revents != 0)
            return true;
        if (rc > 0 && p[1].revents != 0)
            return false;
    }
}

PGconn *connect_until(const ConnParams &params, Clock::time_point deadline, int wake_fd, const volatile int *stop,
                      std::string &err)
{
    std::vector<const char *> keys, vals;
    for (const auto &[k, v] : params.kv) {
        keys.push_back(k.c_str());
        vals.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    vals.push_back(nullptr);
    PGconn *conn = PQconnectStartParams(keys.data(), vals.data(), 1);
    if (conn == nullptr) {
        err = "out of memory";
        return nullptr;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(conn) != CONNECTION_BAD) {
        if (st == PGRES_POLLING_OK)
            return conn;
        if (st == PGRES_POLLING_FAILED)
            break;
        if (!wait_fd(PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline, wake_fd, stop)) {
            err = stop != nullptr && *stop ? "stopping" : "timeout expired";
            PQfinish(conn);
            return nullptr;
        }
        st = PQconnectPoll(conn);
    }
    err = one_line(PQerrorMessage(conn));
    if (err.empty())
        err = "unknown error";
    PQfinish(conn);
    return nullptr;
}

PGresult *exec_params(PGconn *conn, const char *sql, const std::vector<std::optional<std::string>> &params)
{
    std::vector<const char *> values;
    for (const auto &p : params)
        values.push_back(p ? p->c_str() : nullptr);
    return PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0);
}

} // namespace rr
