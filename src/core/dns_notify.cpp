#include "dns_notify.hpp"

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace rr::dns_notify {

namespace {

std::atomic<int> g_fd{-1};
static_assert(std::atomic<int>::is_always_lock_free, "the callback reads g_fd without a lock");
struct sigevent g_event;

// Runs on a thread glibc creates for the notification, with every signal
// unblocked (glibc's gai_start_notify_thread): block them at once, so the
// server's signals (SIGURG for latches, SIGTERM, SIGHUP) go to the worker's
// own thread, then only write to the eventfd. Async-signal-safe calls only:
// no PostgreSQL, no allocation, no locks.
void on_done(union sigval) noexcept
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    int saved = errno;
    int fd = g_fd.load(std::memory_order_relaxed);
    if (fd >= 0) {
        uint64_t one = 1;
        ssize_t n = ::write(fd, &one, sizeof one);  // EAGAIN: the counter is already set
        (void) n;
    }
    errno = saved;
}

} // namespace

int open() noexcept
{
    int fd = g_fd.load(std::memory_order_relaxed);
    if (fd >= 0)
        return fd;
    fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -1;
    std::memset(&g_event, 0, sizeof g_event);
    g_event.sigev_notify = SIGEV_THREAD;
    g_event.sigev_notify_function = &on_done;
    g_event.sigev_notify_attributes = nullptr;
    g_fd.store(fd, std::memory_order_release);
    return fd;
}

int fd() noexcept { return g_fd.load(std::memory_order_acquire); }

struct sigevent *event() noexcept { return fd() >= 0 ? &g_event : nullptr; }

bool drain() noexcept
{
    int fd = g_fd.load(std::memory_order_acquire);
    if (fd < 0)
        return false;
    uint64_t count = 0;
    return ::read(fd, &count, sizeof count) == static_cast<ssize_t>(sizeof count) && count > 0;
}

} // namespace rr::dns_notify
