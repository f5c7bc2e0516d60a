#include "hint.hpp"

#include <cstring>

namespace rr {

const char *state_name(NodeState s)
{
    switch (s) {
    case NodeState::unknown: return "unknown";
    case NodeState::healthy: return "healthy";
    case NodeState::lagging: return "lagging";
    case NodeState::down: return "down";
    case NodeState::promoted: return "promoted";
    case NodeState::self: return "self";
    case NodeState::foreign: return "foreign";
    case NodeState::diverged: return "diverged";
    case NodeState::stale: return "stale";
    case NodeState::disabled: return "disabled";
    }
    return "unknown";
}

void copy_str(char *dst, std::size_t cap, const char *src) noexcept
{
    if (cap == 0)
        return;
    if (src == nullptr) {
        dst[0] = '\0';
        return;
    }
    std::size_t n = std::strlen(src);
    if (n >= cap)
        n = cap - 1;
    std::memcpy(dst, src, n);
    dst[n] = '\0';
}

} // namespace rr
