#include "routing.hpp"

#include <cstdio>
#include <cstring>
#include <initializer_list>

namespace rr {

void default_primary_host(const char *listen_addresses, const char *hostname, char *out, std::size_t out_len) noexcept
{
    char first[kHostLen] = "";
    const char *p = listen_addresses != nullptr ? listen_addresses : "";
    while (*p == ' ')
        ++p;
    std::size_t i = 0;
    while (p[i] != '\0' && p[i] != ',' && p[i] != ' ' && i + 1 < sizeof first) {
        first[i] = p[i];
        ++i;
    }
    first[i] = '\0';
    bool wildcard = std::strcmp(first, "*") == 0 || std::strcmp(first, "0.0.0.0") == 0 || std::strcmp(first, "::") == 0;
    if (first[0] == '\0')
        copy_str(out, out_len, "localhost");
    else if (!wildcard)
        copy_str(out, out_len, first);
    else
        copy_str(out, out_len, hostname != nullptr && hostname[0] != '\0' ? hostname : "localhost");
}

bool parse_timeline_history(const char *text, uint32_t current, TimelineHistory &h) noexcept
{
    h.current = current;
    h.count = 0;
    h.complete = false;
    uint32_t last = 0;
    for (const char *line = text; line != nullptr && *line != '\0';) {
        const char *next = std::strchr(line, '\n');
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            ++p;
        line = next != nullptr ? next + 1 : nullptr;
        if (*p == '\n' || *p == '\0' || *p == '#')
            continue;
        unsigned tli = 0, hi = 0, lo = 0;
        if (std::sscanf(p, "%u\t%X/%X", &tli, &hi, &lo) != 3 || tli <= last || tli >= current ||
            h.count >= kMaxTimelines) {
            h.count = 0;
            return false;
        }
        h.steps[h.count++] = TimelineStep{tli, (static_cast<Lsn>(hi) << 32) | lo};
        last = tli;
    }
    h.complete = true;
    return true;
}

bool off_history(const TimelineHistory &h, uint32_t tli, bool streaming, Lsn lsn, char *why,
                 std::size_t why_len) noexcept
{
    if (h.current == 0 || tli == 0 || tli == h.current)
        return false;
    if (tli > h.current) {
        std::snprintf(why, why_len, "on timeline %u, newer than the primary's timeline %u: it follows another primary",
                      tli, h.current);
        return true;
    }
    if (!streaming || !h.complete)
        return false;
    for (int i = 0; i < h.count; ++i) {
        const TimelineStep &s = h.steps[i];
        if (s.tli != tli)
            continue;
        if (lsn <= s.end)
            return false;  // still on the primary's past: it will follow the switch
        // No LSN of the replica's in the text: it moves, and a changed
        // error is a hint write.
        std::snprintf(why, why_len,
                      "on timeline %u past %X/%X, where the primary left that timeline: it follows another primary",
                      tli, static_cast<unsigned>(s.end >> 32), static_cast<unsigned>(s.end));
        return true;
    }
    std::snprintf(why, why_len, "on timeline %u, which is not in the primary's history (timeline %u)", tli, h.current);
    return true;
}

const char *target_name(Target t)
{
    switch (t) {
    case Target::primary: return "primary";
    case Target::replica: return "replica";
    case Target::any: return "any";
    }
    return "primary";
}

const char *balance_name(Balance b)
{
    switch (b) {
    case Balance::round_robin: return "round_robin";
    case Balance::weighted: return "weighted";
    case Balance::least_lag: return "least_lag";
    case Balance::least_connections: return "least_connections";
    }
    return "round_robin";
}

bool parse_target(const char *s, Target *out)
{
    for (Target t : {Target::primary, Target::replica, Target::any})
        if (std::strcmp(s, target_name(t)) == 0) {
            *out = t;
            return true;
        }
    return false;
}

bool parse_balance(const char *s, Balance *out)
{
    for (Balance b : {Balance::round_robin, Balance::weighted, Balance::least_lag, Balance::least_connections})
        if (std::strcmp(s, balance_name(b)) == 0) {
            *out = b;
            return true;
        }
    return false;
}

namespace {

void format_lag(char *buf, std::size_t len, Micros lag)
{
    std::snprintf(buf, len, "%.1fs", static_cast<double>(lag) / 1e6);
}

// Share of usable connection slots in use; unknown counts as full.
double utilisation(const NodeHint &h)
{
    int usable = h.max_connections - h.pool.reserved;
    return usable > 0 ? static_cast<double>(h.connections) / usable : 1.0;
}

bool in_zone(const NodeHint &h, const char *zone)
{
    return zone != nullptr && std::strcmp(h.zone, zone) == 0;
}

// Orders order[0..count) in place by the balancing rule.
void order_by(const NodeHint *nodes, int *order, std::size_t count, Balance balance, uint64_t ticket)
{
    if (count < 2)
        return;
    // Rotate first: ties under least_lag / least_connections then share the load too.
    std::size_t shift = static_cast<std::size_t>(ticket % count);
    int tmp[kMaxNodesHard];
    for (std::size_t i = 0; i < count; ++i)
        tmp[i] = order[(i + shift) % count];
    std::memcpy(order, tmp, count * sizeof(int));

    auto better = [&](int a, int b) -> bool {
        switch (balance) {
        case Balance::least_lag:
            return nodes[a].lag < nodes[b].lag;
        case Balance::least_connections:
            return utilisation(nodes[a]) < utilisation(nodes[b]);
        case Balance::weighted:
            return nodes[a].weight > nodes[b].weight;
        case Balance::round_robin:
            return false;
        }
        return false;
    };
    // Stable insertion sort: at most a few hundred entries, usually two.
    for (std::size_t i = 1; i < count; ++i) {
        int v = order[i];
        std::size_t j = i;
        while (j > 0 && better(v, order[j - 1])) {
            order[j] = order[j - 1];
            --j;
        }
        order[j] = v;
    }

    if (balance == Balance::weighted) {
        // Pick the first by weight: ticket spread over the total weight with a
        // multiplicative hash, so any run of `total` tickets splits exactly.
        uint64_t total = 0;
        for (std::size_t i = 0; i < count; ++i)
            total += static_cast<uint64_t>(nodes[order[i]].weight);
        if (total == 0)
            return;
        uint64_t point = (ticket * 2654435761ULL) % total;
        for (std::size_t i = 0; i < count; ++i) {
            uint64_t w = static_cast<uint64_t>(nodes[order[i]].weight);
            if (point < w) {
                int chosen = order[i];
                std::memmove(order + 1, order, i * sizeof(int));
                order[0] = chosen;
                return;
            }
            point -= w;
        }
    }
}

const char *balance_phrase(Balance b)
{
    switch (b) {
    case Balance::round_robin: return "round-robin";
    case Balance::weighted: return "weighted";
    case Balance::least_lag: return "least lag";
    case Balance::least_connections: return "least connections";
    }
    return "round-robin";
}

} // namespace

void describe_choice(const NodeHint &h, const RouteRequest &req, char *out, std::size_t out_len) noexcept
{
    NodeState s = effective_state(h, req.now, req.stale_after);
    if (s == NodeState::healthy && !h.replay_paused) {
        std::snprintf(out, out_len, "healthy replica");
        return;
    }
    char lag[32], max[32], ago[32];
    format_lag(lag, sizeof lag, h.lag < 0 ? 0 : h.lag);
    format_lag(max, sizeof max, req.max_lag);
    Micros age = h.lag_at != 0 && req.now > h.lag_at ? req.now - h.lag_at : 0;
    format_lag(ago, sizeof ago, age);
    std::snprintf(out, out_len, "%s replica within %smax_lag %s (lag %s at a poll %s ago%s)", state_name(s),
                  s == NodeState::lagging ? "the requested " : "", max, lag, ago,
                  h.replay_paused ? ", replay paused" : "");
}

bool qualifies(const NodeHint &h, const RouteRequest &req, char *why, std::size_t why_len) noexcept
{
    NodeState s = effective_state(h, req.now, req.stale_after);
    bool up = s == NodeState::healthy || (s == NodeState::lagging && req.explicit_max_lag);
    if (!up) {
        if (s == NodeState::lagging) {
            char lag[32];
            format_lag(lag, sizeof lag, h.lag);
            std::snprintf(why, why_len, "lagging (%s)", lag);
        } else if (s == NodeState::slow) {
            Micros out = h.poll_since != 0 && req.now > h.poll_since ? req.now - h.poll_since : 0;
            Micros over = out > h.rto ? out - h.rto : 0;
            std::snprintf(why, why_len, "slow: poll overdue by %lld ms (unanswered for %lld ms, limit %lld ms)",
                          static_cast<long long>(over / 1000), static_cast<long long>(out / 1000),
                          static_cast<long long>(h.rto / 1000));
        } else {
            std::snprintf(why, why_len, "%s", state_name(s));
        }
        return false;
    }
    if (h.weight <= 0) {
        std::snprintf(why, why_len, "drained (weight 0)");
        return false;
    }
    if (h.lag > req.max_lag) {
        char lag[32], max[32];
        format_lag(lag, sizeof lag, h.lag);
        format_lag(max, sizeof max, req.max_lag);
        std::snprintf(why, why_len, "lag %s over %s", lag, max);
        return false;
    }
    // The lag is as of the last good poll; replay may have stopped right
    // after it. Unless the replica had replayed past everything the primary
    // has written since, the poll's age counts as lag.
    // The lag's upper bound when the worker gave one (lag is an estimate
    // that can be short by up to a poll interval).
    Micros age = h.lag_at != 0 && req.now > h.lag_at ? req.now - h.lag_at : 0;
    Micros seen = h.lag_at != 0 && h.lag_bound > h.lag ? h.lag_bound : h.lag;
    auto has_all = [&h, &req]() noexcept {
        Lsn primary = req.primary_lsn != 0 ? req.primary_lsn : req.primary_lsn_now ? req.primary_lsn_now() : 0;
        return primary != 0 && h.replay_lsn >= primary;
    };
    if (seen >= 0 && seen + age > req.max_lag && !has_all()) {
        char lag[32], ago[32], max[32];
        format_lag(lag, sizeof lag, seen);
        format_lag(ago, sizeof ago, age);
        format_lag(max, sizeof max, req.max_lag);
        std::snprintf(why, why_len, "lag %s at a poll %s ago: over %s", lag, ago, max);
        return false;
    }
    if (req.has_min_lsn && h.replay_lsn < req.min_lsn) {
        std::snprintf(why, why_len, "replayed only to %X/%X", static_cast<unsigned>(h.replay_lsn >> 32),
                      static_cast<unsigned>(h.replay_lsn));
        return false;
    }
    return true;
}

std::size_t rank_replicas(const NodeHint *nodes, std::size_t n, const RouteRequest &req, uint64_t ticket,
                          int *order, char *reason, std::size_t reason_len) noexcept
{
    char why[96];
    std::size_t in = 0, count = 0;
    // Preferred zone first, then the rest; each part ordered on its own.
    for (int pass = 0; pass < 2; ++pass) {
        std::size_t start = count;
        for (std::size_t i = 0; i < n && count < kMaxNodesHard; ++i) {
            bool zone_match = in_zone(nodes[i], req.zone);
            if ((pass == 0) != zone_match || !qualifies(nodes[i], req, why, sizeof why))
                continue;
            order[count++] = static_cast<int>(i);
        }
        order_by(nodes, order + start, count - start, req.balance, ticket);
        if (pass == 0)
            in = count;
    }

    if (reason_len == 0)
        return count;  // the caller wants the order only
    if (count > 0) {
        const char *how = balance_phrase(req.balance);
        char what[192];
        describe_choice(nodes[order[0]], req, what, sizeof what);
        if (req.zone == nullptr)
            std::snprintf(reason, reason_len, "%s, %s among %zu", what, how, count);
        else if (in > 0)
            std::snprintf(reason, reason_len, "%s in zone %s, %s among %zu", what, req.zone, how, in);
        else
            std::snprintf(reason, reason_len, "no qualified replica in zone %s; %s, %s among %zu", req.zone, what,
                          how, count);
        return count;
    }

    std::size_t used = 0;
    int head = std::snprintf(reason, reason_len, "no replica qualifies: ");
    used = head > 0 && static_cast<std::size_t>(head) < reason_len ? static_cast<std::size_t>(head) : 0;
    std::size_t start = used;
    if (n == 0) {
        std::snprintf(reason + used, reason_len - used, "none registered");
        return 0;
    }
    for (std::size_t i = 0; i < n; ++i) {
        qualifies(nodes[i], req, why, sizeof why);
        if (used + 1 >= reason_len)
            break;
        int w = std::snprintf(reason + used, reason_len - used, "%s%s %s", used > start ? ", " : "", nodes[i].name,
                              why);
        if (w > 0)
            used = used + static_cast<std::size_t>(w) < reason_len ? used + static_cast<std::size_t>(w) : reason_len - 1;
    }
    return 0;
}

int choose_replica(const NodeHint *nodes, std::size_t n, const RouteRequest &req, uint64_t ticket, char *reason,
                   std::size_t reason_len) noexcept
{
    int order[kMaxNodesHard];
    std::size_t count = rank_replicas(nodes, n, req, ticket, order, reason, reason_len);
    return count > 0 ? order[0] : -1;
}

} // namespace rr
