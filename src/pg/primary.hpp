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

void primary_endpoint(char *host, std::size_t host_len, int *port);
const char *primary_name();
}
