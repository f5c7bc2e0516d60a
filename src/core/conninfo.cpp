#include "conninfo.hpp"
#include "hint.hpp"

#include <arpa/inet.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace rr {

namespace {

struct OptionsDeleter {
    void operator()(PQconninfoOption *o) const noexcept { PQconninfoFree(o); }
};
using Options = std::unique_ptr<PQconninfoOption, OptionsDeleter>;

Options parse(const std::string &conninfo, std::string *error)
{
    char *err = nullptr;
    Options opts(PQconninfoParse(conninfo.c_str(), &err));
    if (!opts && error != nullptr) {
        *error = err != nullptr ? err : "out of memory";
        while (!error->empty() && (error->back() == '\n' || error->back() == ' '))
            error->pop_back();
    }
    if (err != nullptr)
        PQfreemem(err);
    return opts;
}

const char *value(const PQconninfoOption *opts, const char *key)
{
    for (const PQconninfoOption *o = opts; o->keyword != nullptr; ++o)
        if (std::strcmp(o->keyword, key) == 0)
            return (o->val != nullptr && o->val[0] != '\0') ? o->val : nullptr;
    return nullptr;
}

bool is_numeric_address(const std::string &h)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

std::string quote(const char *v)
{
    std::string out = "'";
    for (const char *p = v; *p; ++p) {
        if (*p == '\'' || *p == '\\')
            out += '\\';
        out += *p;
    }
    return out + "'";
}

bool is_secret(const char *keyword) { return std::strstr(keyword, "password") != nullptr; }

bool all_digits(const std::string &s)
{
    if (s.empty() || s.size() > 9)
        return false;
    for (char c : s)
        if (c < '0' || c > '9')
            return false;
    return true;
}

std::vector<std::string> split_commas(const char *v)
{
    std::vector<std::string> out;
    std::string cur;
    for (const char *p = v; *p; ++p) {
        if (*p == ',') {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += *p;
        }
    }
    out.push_back(cur);
    return out;
}

struct EnumOption {
    const char *keyword;
    const char *values[7];
};

// libpq checks these only when it connects, and says so by quoting the value.
constexpr EnumOption kEnums[] = {
    {"sslmode", {"disable", "allow", "prefer", "require", "verify-ca", "verify-full", nullptr}},
    {"gssencmode", {"disable", "prefer", "require", nullptr}},
    {"channel_binding", {"disable", "prefer", "require", nullptr}},
    {"target_session_attrs", {"any", "read-write", "read-only", "primary", "standby", "prefer-standby", nullptr}},
};

constexpr const char *kIntegers[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                                     "keepalives_count", "tcp_user_timeout", "sslcompression", "sslsni"};

// Options that make libpq read the server's files or environment, or use its
// Kerberos credentials: a superuser's to set.
constexpr const char *kPrivileged[] = {"passfile", "service", "sslcert", "sslkey", "sslrootcert", "sslcrl",
                                       "sslcrldir", "sslpassword", "krbsrvname", "gsslib", "gssdelegation"};

// Option values whose meaning libpq only learns when it connects: checked
// here so a typo fails at registration, with a message that quotes no secret.
std::string value_problem(const PQconninfoOption *o)
{
    std::string v = o->val;
    if (is_secret(o->keyword))
        return "";
    std::string lower;
    for (char c : v)
        lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (lower.find("password=") != std::string::npos)
        return std::string("the value of \"") + o->keyword +
               "\" contains \"password=\" (a missing space between two settings?)";
    if (std::strcmp(o->keyword, "port") == 0) {
        for (const std::string &p : split_commas(o->val))
            if (!p.empty() && (!all_digits(p) || std::atol(p.c_str()) < 1 || std::atol(p.c_str()) > 65535))
                return "invalid port \"" + p + "\": a port is a number from 1 to 65535";
        return "";
    }
    for (const char *k : kIntegers)
        if (std::strcmp(o->keyword, k) == 0 && !all_digits(v) && !(v.size() > 1 && v[0] == '-' && all_digits(v.substr(1))))
            return std::string("invalid value \"") + v + "\" for \"" + k + "\": an integer is required";
    for (const EnumOption &e : kEnums) {
        if (std::strcmp(o->keyword, e.keyword) != 0)
            continue;
        std::string allowed;
        for (const char *const *a = e.values; *a != nullptr; ++a) {
            if (v == *a)
                return "";
            allowed += allowed.empty() ? *a : std::string(", ") + *a;
        }
        return std::string("invalid value \"") + v + "\" for \"" + e.keyword + "\": one of " + allowed;
    }
    return "";
}

} // namespace

ConninfoCheck check_conninfo(const std::string &conninfo)
{
    ConninfoCheck r;
    std::string err;
    for (unsigned char c : conninfo)
        if (c < 0x20 || c == 0x7F) {
            r.error = "the connection string contains a control character (such as a newline or a tab)";
            return r;
        }
    Options opts = parse(conninfo, &err);
    if (!opts) {
        // libpq quotes the offending token, which may be part of a password
        // (keyword form) or of a URI's user:password@ part.
        bool secret = conninfo.find("pass") != std::string::npos ||
                      (conninfo.find("://") != std::string::npos && conninfo.find('@') != std::string::npos);
        r.error = secret ? "the connection string is malformed (details withheld because it may contain a password)"
                         : err;
        return r;
    }
    for (const PQconninfoOption *o = opts.get(); o->keyword != nullptr; ++o) {
        if (o->val == nullptr || o->val[0] == '\0')
            continue;
        if (std::string problem = value_problem(o); !problem.empty()) {
            r.error = problem;
            return r;
        }
    }
    r.ok = true;
    return r;
}

PrivilegeCheck check_unprivileged(const std::string &conninfo)
{
    PrivilegeCheck r;
    Options opts = parse(conninfo, nullptr);
    if (!opts) {
        r.verdict = Privilege::superuser_only;
        r.error = "the connection string is malformed";
        return r;
    }
    for (const char *k : kPrivileged)
        if (value(opts.get(), k) != nullptr) {
            r.verdict = Privilege::superuser_only;
            r.error = std::string("only a superuser may set \"") + k + "\" (it makes the worker use the server's own files or credentials)";
            return r;
        }
    const char *host = value(opts.get(), "host");
    const char *hostaddr = value(opts.get(), "hostaddr");
    if (host == nullptr && hostaddr == nullptr) {
        r.verdict = Privilege::superuser_only;
        r.error = "only a superuser may leave out the host (libpq then uses this server's Unix socket)";
        return r;
    }
    if (host != nullptr) {
        std::vector<std::string> hosts = split_commas(host);
        std::vector<std::string> addrs = hostaddr != nullptr ? split_commas(hostaddr) : std::vector<std::string>{};
        for (std::size_t i = 0; i < hosts.size(); ++i) {
            const std::string &h = hosts[i];
            bool has_addr = i < addrs.size() && !addrs[i].empty();
            if (h.empty() && !has_addr) {
                r.verdict = Privilege::superuser_only;
                r.error = "only a superuser may leave a host empty (libpq then uses this server's Unix socket)";
                return r;
            }
            if (!h.empty() && (h[0] == '/' || h[0] == '@')) {
                r.verdict = Privilege::superuser_only;
                r.error = "only a superuser may connect through a Unix socket directory (host \"" + h + "\")";
                return r;
            }
        }
    }
    const char *password = value(opts.get(), "password");
    if (password == nullptr) {
        r.verdict = Privilege::password_required;
        r.error = "a connection string set by a role that is not a superuser must contain a password";
    }
    return r;
}

Privilege unprivileged_verdict(const char *conninfo, char *error, std::size_t error_len) noexcept
{
    try {
        PrivilegeCheck c = check_unprivileged(conninfo);
        copy_str(error, error_len, c.error.c_str());
        return c.verdict;
    } catch (...) {
        copy_str(error, error_len, "could not check the connection string");
        return Privilege::superuser_only;
    }
}

std::string scrub_secrets(std::string message, const std::string &conninfo)
{
    Options opts = parse(conninfo, nullptr);
    if (!opts)
        return message;
    for (const PQconninfoOption *o = opts.get(); o->keyword != nullptr; ++o) {
        if (!is_secret(o->keyword) || o->val == nullptr || o->val[0] == '\0')
            continue;
        std::string secret = o->val;
        for (std::size_t at = message.find(secret); at != std::string::npos; at = message.find(secret, at + 8))
            message.replace(at, secret.size(), "********");
    }
    return message;
}

bool conninfo_acceptable(const char *conninfo, char *error, std::size_t error_len) noexcept
{
    try {
        ConninfoCheck c = check_conninfo(conninfo);
        copy_str(error, error_len, c.error.c_str());
        return c.ok;
    } catch (...) {
        copy_str(error, error_len, "could not check the connection string");
        return false;
    }
}

std::string mask_conninfo(const std::string &conninfo)
{
    Options opts = parse(conninfo, nullptr);
    if (!opts)
        return "(invalid connection string)";
    std::string out;
    for (const PQconninfoOption *o = opts.get(); o->keyword != nullptr; ++o) {
        if (o->val == nullptr || o->val[0] == '\0')
            continue;
        if (!out.empty())
            out += ' ';
        out += o->keyword;
        out += '=';
        // password, sslpassword and any future *password option.
        out += is_secret(o->keyword) ? std::string("********") : quote(o->val);
    }
    return out;
}

Endpoint conninfo_endpoint(const std::string &conninfo)
{
    Endpoint ep;
    Options opts = parse(conninfo, nullptr);
    if (!opts)
        return ep;
    const char *host = value(opts.get(), "host");
    const char *hostaddr = value(opts.get(), "hostaddr");
    const char *port = value(opts.get(), "port");
    if (host != nullptr)
        ep.host = host;
    else if (hostaddr != nullptr)
        ep.host = hostaddr;
    if (auto comma = ep.host.find(','); comma != std::string::npos)
        ep.host.resize(comma);
    if (port != nullptr) {
        ep.port = port;
        if (auto comma = ep.port.find(','); comma != std::string::npos)
            ep.port.resize(comma);
    }
    ep.needs_dns = host != nullptr && hostaddr == nullptr && std::strchr(host, ',') == nullptr &&
                   host[0] != '/' && host[0] != '@' && !is_numeric_address(host);
    return ep;
}

HostList conninfo_hosts(const std::string &conninfo)
{
    HostList hl;
    Options opts = parse(conninfo, nullptr);
    if (!opts)
        return hl;
    const char *host = value(opts.get(), "host");
    const char *hostaddr = value(opts.get(), "hostaddr");
    const char *port = value(opts.get(), "port");
    if (port != nullptr)
        hl.ports = split_commas(port);
    if (host == nullptr)
        return hl;  // hostaddr alone, or libpq's default socket: nothing to resolve
    hl.hosts = split_commas(host);
    std::vector<std::string> addrs = hostaddr != nullptr ? split_commas(hostaddr) : std::vector<std::string>{};
    // A hostaddr list that does not match the hosts is libpq's to refuse.
    if (hostaddr != nullptr && addrs.size() != hl.hosts.size())
        return hl;
    hl.hostaddrs.resize(hl.hosts.size());
    hl.needs_dns.resize(hl.hosts.size(), false);
    for (std::size_t i = 0; i < hl.hosts.size(); ++i) {
        const std::string &h = hl.hosts[i];
        if (i < addrs.size())
            hl.hostaddrs[i] = addrs[i];
        bool dns = hl.hostaddrs[i].empty() && !h.empty() && h[0] != '/' && h[0] != '@' && !is_numeric_address(h);
        hl.needs_dns[i] = dns;
        hl.any_dns = hl.any_dns || dns;
    }
    return hl;
}

} // namespace rr
