#include "pg.hpp"

#include "guc.hpp"
#include "primary.hpp"
#include "postmaster/postmaster.h"

#include <cstring>

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
    // First entry of listen_addresses, unless it is a wildcard.
    const char *listen = GetConfigOption("listen_addresses", true, false);
    char first[kHostLen] = "";
    if (listen != nullptr) {
        std::size_t i = 0;
        while (*listen == ' ')
            ++listen;
        while (listen[i] != '\0' && listen[i] != ',' && listen[i] != ' ' && i + 1 < sizeof first) {
            first[i] = listen[i];
            ++i;
        }
        first[i] = '\0';
    }
    if (first[0] == '\0' || std::strcmp(first, "*") == 0 || std::strcmp(first, "0.0.0.0") == 0 ||
        std::strcmp(first, "::") == 0)
        copy_str(host, host_len, "localhost");
    else
        copy_str(host, host_len, first);
}

} // namespace rr
