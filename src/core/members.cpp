#include "members.hpp"

#include <cstring>

namespace rr {

namespace {

bool loopback(const char *host) noexcept
{
    return host[0] == '/' || host[0] == '\0' || std::strcmp(host, "localhost") == 0 ||
           std::strncmp(host, "127.", 4) == 0 || std::strcmp(host, "::1") == 0;
}

bool same_endpoint(const char *sender_host, int32_t sender_port, const char *host, int32_t port) noexcept
{
    if (sender_port == 0 || sender_port != port)
        return false;
    return std::strcmp(sender_host, host) == 0 || (loopback(sender_host) && loopback(host));
}

struct Candidate {
    int index;
    bool local;
    uint32_t timeline;
    Lsn lsn;
    int followers;
};

bool better(const Candidate &a, const Candidate &b) noexcept
{
    if (a.timeline != b.timeline)
        return a.timeline > b.timeline;
    if (a.followers != b.followers)
        return a.followers > b.followers;
    if (a.local != b.local)
        return a.local;
    if (a.lsn != b.lsn)
        return a.lsn > b.lsn;
    return false;  // the earlier one stays
}

} // namespace

int upstream_of(const NodeHint *const *nodes, std::size_t n, const NodeHint &replica) noexcept
{
    if (!replica.in_recovery || replica.sender_port == 0)
        return -1;
    for (std::size_t i = 0; i < n; ++i)
        if (nodes[i] != &replica && same_endpoint(replica.sender_host, replica.sender_port, nodes[i]->host, nodes[i]->port))
            return static_cast<int>(i);
    return -1;
}

bool sender_is_local(const NodeHint &replica, int32_t local_port) noexcept
{
    return replica.in_recovery && replica.sender_port != 0 && replica.sender_port == local_port &&
           loopback(replica.sender_host);
}

PrimaryChoice choose_primary(const NodeHint *const *nodes, std::size_t n, const LocalServer &local) noexcept
{
    Candidate best{-1, false, 0, 0, -1};
    bool have = false;
    bool local_seen = false;
    auto followers_of = [&](int index, bool is_local) {
        int count = 0;
        for (std::size_t j = 0; j < n; ++j) {
            const NodeHint &r = *nodes[j];
            if (!r.enabled || !poll_ok(r) || !r.in_recovery || r.system_id != local.system_id)
                continue;
            int up = upstream_of(nodes, n, r);
            if ((index >= 0 && up == index) || (is_local && up < 0 && sender_is_local(r, local.port)))
                ++count;
        }
        return count;
    };
    auto consider = [&](const Candidate &c) {
        if (!have || better(c, best)) {
            best = c;
            have = true;
        }
    };
    for (std::size_t i = 0; i < n; ++i) {
        const NodeHint &h = *nodes[i];
        if (!h.enabled || !poll_ok(h) || h.in_recovery || h.system_id != local.system_id)
            continue;
        int idx = static_cast<int>(i);
        if (h.is_local) {
            // This very server (its figures, not the entry's): whoever
            // registered the entry, it is no stranger.
            if (local.in_recovery)
                continue;  // promoted since that poll; the next one says so
            local_seen = true;
            consider(Candidate{idx, true, local.timeline, local.lsn, followers_of(idx, true)});
        } else if (h.may_lead) {
            // A member registered by a role that is not a superuser never
            // becomes the write target: it could be a server that only claims
            // to be one of ours (the system identifier is no secret).
            consider(Candidate{idx, false, static_cast<uint32_t>(h.timeline), h.current_lsn, followers_of(idx, false)});
        }
    }
    if (!local.in_recovery && !local_seen)
        consider(Candidate{-1, true, local.timeline, local.lsn, followers_of(-1, true)});
    PrimaryChoice c;
    if (!have)
        return c;
    c.kind = best.local ? PrimaryChoice::Kind::local : PrimaryChoice::Kind::member;
    c.index = best.index;
    c.timeline = best.timeline;
    c.lsn = best.lsn;
    c.followers = best.followers;
    return c;
}

} // namespace rr
