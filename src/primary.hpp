// How clients reach the primary: replica_router.primary_host/port, else this
// server's first listen address (or localhost) and port.
#pragma once

#include <cstddef>

namespace rr {
void primary_endpoint(char *host, std::size_t host_len, int *port);
}
