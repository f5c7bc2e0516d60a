// replica_router: one client program for the replica_router extension, with
// the subcommands check (Nagios-style), follow (keeps pgbouncer pointed at
// the recommended nodes) and serve (an HTTP API for Prometheus and load
// balancers). Installed under the old names replica_router_check and
// replica_router_follower too (symlinks): invoked so, it is that subcommand.
#include "subcommands.hpp"
#include "text.hpp"

#include <cstdio>
#include <cstring>
#include <string>

#ifndef RR_VERSION
#error "RR_VERSION (replica_router.control's default_version) must be defined by the build"
#endif

namespace rr {

void print_version() { std::printf("replica_router %s\n", RR_VERSION); }

} // namespace rr

namespace {

constexpr const char *kUsage = R"(replica_router: client program for the replica_router PostgreSQL extension

Usage:
  replica_router check [connection options] COMMAND [--warning X] [--critical Y]
  replica_router follow --source CONNINFO --output FILE --dbname NAME [options]
  replica_router serve --source CONNINFO [--listen ADDRESS] [--port PORT] [options]
  replica_router --version
  replica_router SUBCOMMAND --help

Subcommands:
  check    Nagios-style check of the monitoring views (lag, slots, pools, health):
           one status line, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
  follow   keep a pgbouncer [databases] include file pointed at the nodes
           replica_router recommends, and RELOAD pgbouncer when it changes
  serve    HTTP API: /metrics for Prometheus, /primary, /replica, /read and
           /node/NAME/replica for HAProxy checks, /health, /stats, /lag,
           /pool-stats, /recommend, and a status page at /

Durations everywhere are PostgreSQL's: 250ms, 5s, 1.5min, 2h, 1d.
replica_router_check and replica_router_follower are the same program under
its old names (as "replica_router check" and "replica_router follow").
)";

std::string base_name(const char *path)
{
    const char *slash = std::strrchr(path, '/');
    return slash != nullptr ? slash + 1 : path;
}

} // namespace

int main(int argc, char **argv)
{
    std::string self = base_name(argv[0] != nullptr ? argv[0] : "replica_router");
    if (self == "replica_router_check") {
        rr::g_program = self;
        return rr::check_main(argc, argv);
    }
    if (self == "replica_router_follower") {
        rr::g_program = self;
        return rr::follow_main(argc, argv);
    }
    if (argc < 2) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    std::string sub = argv[1];
    if (sub == "--help" || sub == "-?" || sub == "help") {
        std::fputs(kUsage, stdout);
        return 0;
    }
    if (sub == "--version" || sub == "-V") {
        rr::print_version();
        return 0;
    }
    rr::g_program = "replica_router " + sub;
    // The subcommand's argv: its name in argv[0], its options after.
    if (sub == "check")
        return rr::check_main(argc - 1, argv + 1);
    if (sub == "follow")
        return rr::follow_main(argc - 1, argv + 1);
    if (sub == "serve")
        return rr::serve_main(argc - 1, argv + 1);
    std::fprintf(stderr, "replica_router: unknown subcommand \"%s\": use check, follow or serve (see replica_router --help)\n",
                 rr::escape_controls(sub).c_str());
    return 2;
}
