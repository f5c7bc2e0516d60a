#include "pg.hpp"

#include "guc.hpp"
#include "primary.hpp"
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

} // namespace rr
