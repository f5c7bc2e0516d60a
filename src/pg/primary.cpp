#include "pg.hpp"

#include "guc.hpp"
#include "primary.hpp"
#include "shmem.hpp"
#include "standby.hpp"
#include "routing.hpp"
#include "postmaster/postmaster.h"

#include <unistd.h>

namespace rr {

PrimaryInfo local_primary()
{
    PrimaryInfo p;
    copy_str(p.node, sizeof p.node, primary_name());
    primary_endpoint(p.host, sizeof p.host, &p.port);
    return p;
}

const char *primary_name()
{
    return rr_primary_name != nullptr ? rr_primary_name : "primary";
}

void primary_endpoint(char *host, std::size_t host_len, int *port)
{
    *port = rr_primary_port > 0 ? rr_primary_port : PostPortNumber;
    if (rr_primary_host != nullptr && rr_primary_host[0] != '\0') {
        copy_str(host, host_len, rr_primary_host);
        return;
    }
    // The host name is read once per process: recommend() runs this.
    static char hostname[kHostLen] = "";
    static bool have_hostname = false;
    if (!have_hostname) {
        if (gethostname(hostname, sizeof hostname) != 0)
            hostname[0] = '\0';
        hostname[sizeof hostname - 1] = '\0';
        have_hostname = true;
    }
    default_primary_host(GetConfigOption("listen_addresses", true, false), hostname, host, host_len);
}


// Where clients reach the primary: the member this node's worker chose
// (members.hpp); before it has published, this server when it is out of
// recovery; on a standby whose registry does not list the primary (as 1.1
// registered replicas only), the primary the replicated heartbeat names,
// while it is recent. Never the standby itself.
bool find_primary(Micros now, PrimaryInfo &out, char *why, std::size_t why_len)
{
    bool ready = false;
    ElectedPrimary e = shmem_elected(&ready);
    if (ready && e.kind != PrimaryChoice::Kind::none) {
        copy_str(out.node, sizeof out.node, e.node);
        copy_str(out.host, sizeof out.host, e.host);
        out.port = e.port;
        return true;
    }
    if (!RecoveryInProgress()) {
        // Just promoted, or before the first choice: this server, under its
        // member name when it is registered (a client that routes by name
        // must not take it for a member called "primary").
        out = local_primary();
        char name[kNameLen] = "";
        shmem_read([&name](const SharedState &s) noexcept {
            for (const NodeHint &h : s.nodes)
                if (h.is_local)
                    copy_str(name, sizeof name, h.name);
        });
        if (name[0] != '\0')
            copy_str(out.node, sizeof out.node, name);
        return true;
    }
    if (ready && e.members_cover) {
        copy_str(why, why_len, "no member answers as the primary: each one is down, in recovery, or not followed");
        return false;
    }
    StandbyHints sh;
    standby_load(sh, now);
    if (sh.fresh && sh.primary.host[0] != '\0') {
        out = sh.primary;
        return true;
    }
    snprintf(why, why_len, "no registered member is out of recovery, and %s",
             sh.fresh ? "the replicated heartbeat names no primary" : sh.why_not_fresh);
    return false;
}

PrimaryInfo current_primary(Micros now)
{
    PrimaryInfo p{};
    char why[256] = "";
    if (!find_primary(now, p, why, sizeof why))
        ereport(ERROR, (errcode(ERRCODE_RR_NO_PRIMARY), errmsg("no primary is reachable"), errdetail("%s.", why),
                        errhint("Check replica_router.status on this node. Register every member, the primary "
                                "included, with replica_router.add_node() so that a promoted one is found.")));
    return p;
}

} // namespace rr
