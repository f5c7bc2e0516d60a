// How the worker learns that a getaddrinfo_a() lookup finished without
// polling for it: every lookup is started with a SIGEV_THREAD notification
// whose callback writes to one eventfd, and the worker waits on that fd with
// its sockets. One fd serves every poller; when it fires, the worker looks at
// each pending lookup (gai_error) and drains the fd. C++-only, no server
// headers.
#pragma once

#include <signal.h>

namespace rr::dns_notify {

// Opens the process-wide eventfd once (later calls return the same fd).
// -1 when it cannot be opened: lookups are then checked on a short timer.
// It stays open for the life of the process, since a lookup that could not be
// cancelled may still complete and write to it.
int open() noexcept;
// The eventfd, or -1 when open() has not succeeded.
int fd() noexcept;
// The notification to pass to getaddrinfo_a(), or nullptr without an fd.
struct sigevent *event() noexcept;
// Empties the eventfd; true when a completion had been signalled.
bool drain() noexcept;

} // namespace rr::dns_notify
