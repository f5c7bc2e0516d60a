// How clients reach the primary: replica_router.primary_host/port, else this
// server's first listen address (the host name for a wildcard) and port.
#pragma once

#include <cstddef>

#include "hint.hpp"

namespace rr {

struct PrimaryInfo {
    char node[kNameLen];
    char host[kHostLen];
    int port;
};

// The primary as this server describes it (run on the primary).
PrimaryInfo local_primary();

// Where clients reach the primary now (see primary.cpp); false, with the
// reason, when no primary is reachable.
bool find_primary(Micros now, PrimaryInfo &out, char *why, std::size_t why_len);
// The same, raising SQLSTATE RR002 when none is reachable.
PrimaryInfo current_primary(Micros now);

void primary_endpoint(char *host, std::size_t host_len, int *port);
const char *primary_name();
}
