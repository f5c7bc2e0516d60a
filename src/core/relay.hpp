// The worker between libpq and a peer, once connected. libpq reads until its
// socket is empty and grows its buffer to whatever length a message claims,
// so a cap checked around its reads cannot hold: a peer streaming one 500 MB
// row fills memory inside one call. Here libpq's descriptor becomes one end
// of a socketpair; the worker moves bytes between the peer's socket and the
// other end, and what the peer sends reaches libpq only within the cap the
// caller gives each pull. TLS passes through untouched (libpq's BIO writes to
// the same descriptor number). C++-only, no allocation, nothing throws.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rr {

class Relay {
public:
    Relay() = default;
    ~Relay() { close(); }
    Relay(const Relay &) = delete;
    Relay &operator=(const Relay &) = delete;

    // Takes over libpq's socket `fd`: the peer moves to a new descriptor and
    // `fd` becomes the socketpair's end. False (nothing changed) on failure.
    bool install(int fd) noexcept;
    void close() noexcept;
    // After PQfinish: passes on libpq's Terminate, reads what the peer had
    // still sent (a little of it: a close with unread data is a reset the
    // server logs), and closes.
    void finish() noexcept;
    bool active() const noexcept { return peer_ >= 0; }
    // Is `fd` still libpq's end of this relay? libpq closes it and opens a
    // new socket when it falls back to another host or sslmode.
    bool serves(int fd) const noexcept;
    int peer_fd() const noexcept { return peer_; }
    int64_t received() const noexcept { return received_; }

    // libpq's outgoing bytes to the peer. False on an error; `blocked` when
    // the peer's socket is full (wait until it is writable).
    bool push(bool *blocked) noexcept;
    // At most `limit` bytes from the peer to libpq (read ahead by one, so a
    // peer that sends more shows in received()). False on an error; `eof`
    // when the peer closed (libpq then sees the end too).
    bool pull(int64_t limit, bool *eof) noexcept;

private:
    int peer_ = -1;   // the TCP (or Unix) socket to the server
    int local_ = -1;  // our end of the pair; libpq has the other
    int64_t received_ = 0;
    unsigned long libpq_dev_ = 0, libpq_ino_ = 0;  // identity of libpq's end
    // Bytes read but not yet passed on (the other side was full).
    char out_[8192];
    std::size_t out_len_ = 0;
    char in_[16384];
    std::size_t in_len_ = 0;
};

} // namespace rr
