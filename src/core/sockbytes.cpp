#include "sockbytes.hpp"

#include <netinet/in.h>
#include <linux/tcp.h>

#include <cstddef>
#include <sys/socket.h>

namespace rr {

int64_t socket_bytes_received(int fd) noexcept
{
    struct tcp_info info {};
    socklen_t len = sizeof info;
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
        return -1;
    // Kernels before 4.1 return a shorter struct without the counter.
    if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof info.tcpi_bytes_received)
        return -1;
    return static_cast<int64_t>(info.tcpi_bytes_received);
}

void limit_receive_buffer(int fd) noexcept
{
    int size = 32 * 1024;  // Linux doubles it; enough for any poll reply
    if (fd >= 0)
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

} // namespace rr
