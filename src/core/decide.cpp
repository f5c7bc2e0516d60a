#include "decide.hpp"

#include <cstdio>
#include <cstring>

namespace rr {

void resolve_route(const DecideInput &in, Decision &d) noexcept
{
    const RouteRow *route = nullptr;
    RouteRow builtin{};
    for (std::size_t i = 0; i < in.nroutes; ++i)
        if (std::strcmp(in.routes[i].operation, in.operation) == 0)
            route = &in.routes[i];
    if (route == nullptr && in.routes == nullptr) {
        // Routes not loaded yet: the defaults every installation starts with.
        builtin.max_lag = -1;
        if (std::strcmp(in.operation, "read") == 0) {
            builtin.target = Target::replica;
            route = &builtin;
        } else if (std::strcmp(in.operation, "write") == 0) {
            builtin.target = Target::primary;
            route = &builtin;
        }
    }

    RouteRequest &req = d.req;
    req.now = in.now;
    req.stale_after = in.stale_after;
    req.has_min_lsn = in.has_min_lsn;
    req.min_lsn = in.min_lsn;
    req.zone = in.zone;
    req.primary_lsn = in.primary_lsn;
    req.primary_lsn_now = in.primary_lsn_now;
    if (route == nullptr) {
        d.target = Target::primary;
        d.outcome = in.strict_operations ? Outcome::unknown_operation : Outcome::primary;
        std::snprintf(d.reason, sizeof d.reason, "unknown operation \"%.64s\": routed to the primary for safety",
                      in.operation);
        return;
    }
    d.target = route->target;
    req.balance = route->has_balance ? route->balance : in.default_balance;
    req.explicit_max_lag = in.has_max_lag || route->max_lag >= 0;
    req.max_lag = in.has_max_lag ? in.max_lag : route->max_lag >= 0 ? route->max_lag : in.default_max_lag;
    d.fallback = route->target == Target::any || in.fallback_to_primary;
    if (route->target == Target::primary) {
        d.outcome = Outcome::primary;
        std::snprintf(d.reason, sizeof d.reason, "operation \"%.64s\" routes to the primary", in.operation);
    }
}

void decide(const DecideInput &in, const NodeHint *nodes, std::size_t n, uint64_t ticket, Decision &d) noexcept
{
    resolve_route(in, d);
    if (d.target == Target::primary)
        return;
    d.index = choose_replica(nodes, n, d.req, ticket, d.reason, sizeof d.reason);
    if (d.index >= 0)
        d.outcome = Outcome::replica;
    else
        d.outcome = d.fallback ? Outcome::primary : Outcome::no_replica_error;
}

} // namespace rr
