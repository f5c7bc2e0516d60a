#include "conninfo.hpp"
#include "hint.hpp"

#include <arpa/inet.h>
#include <libpq-fe.h>

#include <cstring>
#include <memory>

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

} // namespace

ConninfoCheck check_conninfo(const std::string &conninfo)
{
    ConninfoCheck r;
    std::string err;
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
    r.ok = true;
    return r;
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
        out += std::strstr(o->keyword, "password") != nullptr ? std::string("********") : quote(o->val);
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

} // namespace rr
