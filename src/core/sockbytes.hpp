// Bytes a TCP connection has received so far, as the kernel counts them
// (Linux TCP_INFO). libpq reads a whole protocol message into memory before
// anyone sees it, so this is how the worker caps what a peer can make it
// buffer. C++-only.
#pragma once

#include <cstdint>

namespace rr {
// -1 when the socket is not TCP (a Unix socket) or the kernel cannot tell.
int64_t socket_bytes_received(int fd) noexcept;

// A small receive buffer: libpq reads until the socket is empty, so what the
// kernel holds bounds what one read can take in past the worker's checks.
void limit_receive_buffer(int fd) noexcept;
} // namespace rr
