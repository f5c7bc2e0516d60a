// libpq connection strings: validation, masking of secrets, host and port.
// C++-only (libpq, no server headers).
#pragma once

#include <cstddef>
#include <string>

namespace rr {

struct ConninfoCheck {
    bool ok = false;
    std::string error;  // libpq's complaint, never containing a secret
};

ConninfoCheck check_conninfo(const std::string &conninfo);

// check_conninfo for callers on the PostgreSQL side of the boundary: never
// throws; false with the complaint (or a fixed text) in `error`.
bool conninfo_acceptable(const char *conninfo, char *error, std::size_t error_len) noexcept;

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

} // namespace rr
