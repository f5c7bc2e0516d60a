// libpq connection strings: validation, masking of secrets, host and port.
// C++-only (libpq, no server headers).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace rr {

struct ConninfoCheck {
    bool ok = false;
    std::string error;  // libpq's complaint, never containing a secret
};

ConninfoCheck check_conninfo(const std::string &conninfo);

// check_conninfo for callers on the PostgreSQL side of the boundary: never
// throws; false with the complaint (or a fixed text) in `error`.
bool conninfo_acceptable(const char *conninfo, char *error, std::size_t error_len) noexcept;

// The rules for a connection string a role that is not a superuser set, as
// dblink and postgres_fdw apply them: the worker connects as the server's OS
// user, so such a string must bring its own password (never the server's
// .pgpass, service file or client key) and may name no server file, no
// Unix socket directory and no Kerberos setting. `code` says which rule broke.
enum class Privilege { ok, password_required, superuser_only };
struct PrivilegeCheck {
    Privilege verdict = Privilege::ok;
    std::string error;
};
PrivilegeCheck check_unprivileged(const std::string &conninfo);
// check_unprivileged for the PostgreSQL side: never throws; the reason (or a
// fixed text) in `error`.
Privilege unprivileged_verdict(const char *conninfo, char *error, std::size_t error_len) noexcept;

// `message` with every password of `conninfo` replaced by "********": libpq
// quotes option values in its errors (a mistyped "port=5432password=x").
std::string scrub_secrets(std::string message, const std::string &conninfo);

// The connection string with every password replaced by "********".
// A string libpq cannot parse comes back as a fixed placeholder, since we
// cannot tell which part of it is secret.
std::string mask_conninfo(const std::string &conninfo);

struct Endpoint {
    std::string host;  // first host or hostaddr; "" when libpq's default applies
    std::string port;  // "" when libpq's default applies
    bool needs_dns = false; // single host name with no hostaddr: resolve it ourselves
};

Endpoint conninfo_endpoint(const std::string &conninfo);

// Every host of a connection string, in order, and which of them libpq would
// resolve itself (blocking: it calls getaddrinfo synchronously). A host needs
// DNS when it is a name (not a numeric address, not a socket directory, not
// empty) and its entry of `hostaddr` is empty or absent. The caller resolves
// those and passes hostaddr with one entry per host (libpq matches the lists
// by position).
struct HostList {
    std::vector<std::string> hosts;      // host=, split at commas; empty when absent
    std::vector<std::string> hostaddrs;  // hostaddr=, one entry per host ("" = none)
    std::vector<std::string> ports;      // port=, split at commas; empty when absent
    std::vector<bool> needs_dns;         // per host
    bool any_dns = false;
};
HostList conninfo_hosts(const std::string &conninfo);

} // namespace rr
