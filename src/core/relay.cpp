#include "relay.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rr {

namespace {

bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == EINTR; }

// Writes what it can of buf[0..*len) to fd, keeping the rest at the front.
bool drain(int fd, char *buf, std::size_t *len) noexcept
{
    while (*len > 0) {
        ssize_t n = ::send(fd, buf, *len, MSG_NOSIGNAL);
        if (n < 0)
            return would_block(errno);
        std::memmove(buf, buf + n, *len - static_cast<std::size_t>(n));
        *len -= static_cast<std::size_t>(n);
    }
    return true;
}

} // namespace

bool Relay::install(int fd) noexcept
{
    int pair[2];
    if (fd < 0 || ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0)
        return false;
    int peer = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (peer < 0 || ::dup2(pair[0], fd) < 0) {
        if (peer >= 0)
            ::close(peer);
        ::close(pair[0]);
        ::close(pair[1]);
        return false;
    }
    // dup2 clears close-on-exec on `fd`; the pair end is already nonblocking.
    (void) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    ::close(pair[0]);
    struct stat st {};
    if (::fstat(fd, &st) == 0) {
        libpq_dev_ = st.st_dev;
        libpq_ino_ = st.st_ino;
    }
    peer_ = peer;
    local_ = pair[1];
    received_ = 0;
    in_len_ = out_len_ = 0;
    return true;
}

bool Relay::serves(int fd) const noexcept
{
    struct stat st {};
    return active() && fd >= 0 && ::fstat(fd, &st) == 0 && st.st_dev == libpq_dev_ && st.st_ino == libpq_ino_;
}

void Relay::finish() noexcept
{
    if (!active())
        return;
    bool blocked = false;
    (void) push(&blocked);
    char sink[4096];
    for (int i = 0; i < 16 && ::recv(peer_, sink, sizeof sink, 0) > 0; ++i) {
    }
    close();
}

void Relay::close() noexcept
{
    if (peer_ >= 0)
        ::close(peer_);
    if (local_ >= 0)
        ::close(local_);
    peer_ = local_ = -1;
    in_len_ = out_len_ = 0;
}

bool Relay::push(bool *blocked) noexcept
{
    *blocked = false;
    for (;;) {
        if (!drain(peer_, out_, &out_len_))
            return false;
        if (out_len_ > 0) {
            *blocked = true;
            return true;
        }
        ssize_t n = ::recv(local_, out_, sizeof out_, 0);
        if (n < 0)
            return would_block(errno);
        if (n == 0)
            return true;  // libpq closed its end
        out_len_ = static_cast<std::size_t>(n);
    }
}

bool Relay::pull(int64_t limit, bool *eof) noexcept
{
    *eof = false;
    if (!drain(local_, in_, &in_len_))
        return false;
    if (in_len_ > 0)
        return true;  // libpq has not read what it has yet
    int64_t room = limit + 1 - received_;
    if (room <= 0)
        return true;
    std::size_t want = room < static_cast<int64_t>(sizeof in_) ? static_cast<std::size_t>(room) : sizeof in_;
    ssize_t n = ::recv(peer_, in_, want, 0);
    if (n < 0)
        return would_block(errno);
    if (n == 0) {
        *eof = true;
        ::shutdown(local_, SHUT_WR);  // libpq reads the end of the stream
        return true;
    }
    received_ += n;
    in_len_ = static_cast<std::size_t>(n);
    return drain(local_, in_, &in_len_);
}

} // namespace rr
