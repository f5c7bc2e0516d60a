// replica_router follow (formerly replica_router_follower): keeps a pgbouncer [databases] include file pointed
// at the nodes replica_router recommends, and tells pgbouncer to reload it.
//
// Runs beside a pgbouncer. Reads the routing from a primary (LISTEN
// replica_router, woken by the worker's NOTIFY on every state change, with a
// periodic re-check) or from a standby (polling the replicated hints). Writes
// the include file atomically (temporary file in the same directory, fsync,
// rename) and sends RELOAD to pgbouncer's admin console, only when the
// [databases] lines change, and checks with SHOW DATABASES that pgbouncer
// applied it. When the hints cannot be read it keeps the last good file.
// Plain libpq, no server headers.
//
// Hints come from the database, where whoever may register a node or NOTIFY
// can put any text: the follower writes only values pgbouncer's syntax
// carries as they are, escapes control characters in what it logs, and acts
// only on the worker's own notifications.
#include "subcommands.hpp"

#include "duration.hpp"
#include "pgconn.hpp"
#include "text.hpp"

#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rr {
namespace {

constexpr const char *kUsage = R"(%1$s: points pgbouncer aliases at the nodes replica_router recommends

Usage:
  %1$s --source CONNINFO --output FILE --dbname NAME [options]

Options:
  --source CONNINFO     where to read the routing: the primary (LISTEN replica_router,
                        woken on every state change) or a standby (polled every interval)
  --pgbouncer CONNINFO  pgbouncer admin console to send RELOAD to, e.g.
                        'host=127.0.0.1 port=6432 dbname=pgbouncer user=pgbouncer';
                        without it the file is written and pgbouncer is not told
  --output FILE         the [databases] include file pgbouncer loads with %%include
  --dbname NAME         database the aliases point at
  --read-alias NAME     alias for reads (default: <dbname>_read)
  --write-alias NAME    alias for writes (default: <dbname>_write)
  --operation OP        replica_router operation for the read alias (default: read)
  --interval DURATION   polling interval on a standby, re-check interval on the
                        primary, first retry delay after an error (default: 1s;
                        PostgreSQL units: 500ms, 2s, 1min; a bare number is seconds)
  --alias NAME=OP       one more alias routed like the read alias, for operation OP
                        (repeatable), e.g. --alias app_report=analytics_report
  --pool-option KEY=VALUE  a pgbouncer database setting added to every alias line
                        (repeatable), e.g. --pool-option pool_size=20 --pool-option pool_mode=transaction
  --single-host         always one host per alias (see below)
  --once                write the file (and reload pgbouncer if it changed) once, then exit
  -V, --version         print the version and exit
  -?, --help            show this help and exit

The pgbouncer user must be in pgbouncer's admin_users (RELOAD needs it), and
pgbouncer must let it log in to the admin console: with Debian's default
auth_type = md5 put it and its password in pgbouncer's auth_file
(userlist.txt), or allow it in auth_hba_file.

When every replica that qualifies for an alias listens on the same port (e.g.
replicas on 10.0.0.2, 10.0.0.3, ... all on 5432) and there are two or more, the alias
gets all of them as a host list (host=10.0.0.2,10.0.0.3 port=5432; pgbouncer 1.18
connects to them round-robin and needs every listed host up, which is what a list of
qualifying replicas is), sorted so that a new ranking does not rewrite the file.
Otherwise (or with --single-host) the alias points at one host: the replica
candidates(OP) ranks first, and the follower stays on the replica it chose while
that replica still qualifies, so round-robin tickets do not make it flap. The log and
the file's comments say which it did. When no
replica qualifies the read alias points at the primary (as recommend() does). The
write alias points at the primary (recommend('write')).

The file is replaced only when its [databases] lines change, then pgbouncer gets
RELOAD; the reload counts as done only when SHOW DATABASES shows the aliases where the
file points. When the source is unreachable, its hints are too old (on a standby with
replica_router.observe = off: heartbeat older than standby_max_hint_age), no primary is
reachable, no node qualifies or a host
is not a plain host name, IP address or socket directory, the last good file stays as
it is; errors are retried with backoff (up to 30s). On the primary only notifications
sent by the replica_router worker's backend count. SIGTERM or SIGINT stops it.
Exit status: 0 done, 1 failure (--once), 2 bad usage.
)";

using Millis = std::chrono::milliseconds;

constexpr Millis kMaxBackoff{30'000};
constexpr int kDefaultConnectTimeoutS = 5;

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

volatile int g_stop = 0;  // sig_atomic_t is int
int g_wake[2] = {-1, -1};  // self-pipe: the signal handler wakes poll()

extern "C" void on_signal(int)
{
    int saved = errno;
    g_stop = 1;
    if (g_wake[1] >= 0)
        (void) !write(g_wake[1], "x", 1);
    errno = saved;
}

bool install_signals()
{
    if (pipe(g_wake) != 0)
        return false;
    for (int fd : g_wake) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    return true;
}

void drain_wake()
{
    char buf[64];
    while (read(g_wake[0], buf, sizeof buf) > 0) {
    }
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

struct Options {
    std::string source, pgbouncer, output, dbname, read_alias, write_alias;
    std::string operation = "read";
    Millis interval{1000};
    bool once = false;
    bool single_host = false;  // never a host list, even for replicas sharing a port
    // More read-like aliases: alias -> operation (--alias NAME=OPERATION).
    std::vector<std::pair<std::string, std::string>> extra_aliases;
    // pgbouncer per-database settings appended to every alias (--pool-option KEY=VALUE).
    std::vector<std::pair<std::string, std::string>> pool_options;
};

bool parse_interval(const std::string &s, Millis *out)
{
    std::optional<double> v = parse_duration(s, "s");
    if (!v || *v < 0.01 || *v > 3600)
        return false;
    *out = Millis(static_cast<long long>(*v * 1000));
    return true;
}

// Aliases become keys of pgbouncer's ini file: keep them plain.
bool plain_name(const std::string &s)
{
    if (s.empty() || s.size() > 63)
        return false;
    return std::all_of(s.begin(), s.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_' || c == '-' || c == '.';
    });
}

[[noreturn]] void usage_error(const char *fmt, const std::string &arg)
{
    std::fprintf(stderr, "%s: ", g_program.c_str());
    std::fprintf(stderr, fmt, escape_controls(arg).c_str());
    std::fprintf(stderr, "\nTry \"%s --help\" for more information.\n", g_program.c_str());
    std::exit(2);
}

Options parse_options(int argc, char **argv)
{
    Options o;
    std::string interval;
    enum { SOURCE = 1000, PGBOUNCER, OUTPUT, DBNAME, READ_ALIAS, WRITE_ALIAS, OPERATION, INTERVAL, ONCE, ALIAS,
           POOL_OPTION, SINGLE_HOST };
    static const option longopts[] = {
        {"source", required_argument, nullptr, SOURCE},       {"pgbouncer", required_argument, nullptr, PGBOUNCER},
        {"output", required_argument, nullptr, OUTPUT},       {"dbname", required_argument, nullptr, DBNAME},
        {"read-alias", required_argument, nullptr, READ_ALIAS}, {"write-alias", required_argument, nullptr, WRITE_ALIAS},
        {"operation", required_argument, nullptr, OPERATION}, {"interval", required_argument, nullptr, INTERVAL},
        {"once", no_argument, nullptr, ONCE},                 {"version", no_argument, nullptr, 'V'},
        {"alias", required_argument, nullptr, ALIAS},         {"pool-option", required_argument, nullptr, POOL_OPTION},
        {"single-host", no_argument, nullptr, SINGLE_HOST},
        {"help", no_argument, nullptr, '?'},                  {nullptr, 0, nullptr, 0}};
    opterr = 0;
    optind = 1;
    for (;;) {
        int ch = getopt_long(argc, argv, ":V?", longopts, nullptr);
        if (ch == -1)
            break;
        std::string arg = argv[optind - 1] != nullptr ? argv[optind - 1] : "";
        switch (ch) {
        case SOURCE: o.source = optarg; break;
        case PGBOUNCER: o.pgbouncer = optarg; break;
        case OUTPUT: o.output = optarg; break;
        case DBNAME: o.dbname = optarg; break;
        case READ_ALIAS: o.read_alias = optarg; break;
        case WRITE_ALIAS: o.write_alias = optarg; break;
        case OPERATION: o.operation = optarg; break;
        case INTERVAL: interval = optarg; break;
        case ONCE: o.once = true; break;
        case SINGLE_HOST: o.single_host = true; break;
        case ALIAS:
        case POOL_OPTION: {
            std::string v = optarg;
            std::size_t eq = v.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == v.size())
                usage_error(ch == ALIAS ? "invalid --alias \"%s\": use NAME=OPERATION" : "invalid --pool-option \"%s\": use KEY=VALUE", v);
            (ch == ALIAS ? o.extra_aliases : o.pool_options).emplace_back(v.substr(0, eq), v.substr(eq + 1));
            break;
        }
        case 'V':
            print_version();
            std::exit(0);
        case ':':
            usage_error("option %s needs a value", arg.substr(0, arg.find('=')));
        default:
            if (optopt == '?' || arg == "--help" || arg == "-?") {
                std::printf(kUsage, g_program.c_str());
                std::exit(0);
            }
            usage_error("unknown option \"%s\"", optopt != 0 ? std::string("-") + static_cast<char>(optopt)
                                                               : arg.substr(0, arg.find('=')));
        }
    }
    if (optind < argc)
        usage_error("unexpected argument \"%s\"", argv[optind]);
    if (o.source.empty())
        usage_error("%s--source is required", "");
    if (o.output.empty())
        usage_error("%s--output is required", "");
    if (o.dbname.empty())
        usage_error("%s--dbname is required", "");
    // The database name is written quoted, but no quoting carries a newline.
    if (std::any_of(o.dbname.begin(), o.dbname.end(), [](unsigned char c) { return is_control(c); }))
        usage_error("invalid --dbname \"%s\": it has control characters", o.dbname);
    if (o.read_alias.empty())
        o.read_alias = o.dbname + "_read";
    if (o.write_alias.empty())
        o.write_alias = o.dbname + "_write";
    for (const std::string *alias : {&o.read_alias, &o.write_alias})
        if (!plain_name(*alias))
            usage_error("invalid alias \"%s\": use 1 to 63 letters, digits, \"_\", \"-\" or \".\"", *alias);
    if (o.read_alias == o.write_alias)
        usage_error("the read and write aliases are both \"%s\"", o.read_alias);
    if (!plain_name(o.operation))
        usage_error("invalid operation \"%s\"", o.operation);
    for (const auto &[alias, op] : o.extra_aliases) {
        if (!plain_name(alias))
            usage_error("invalid alias \"%s\": use 1 to 63 letters, digits, \"_\", \"-\" or \".\"", alias);
        if (!plain_name(op))
            usage_error("invalid operation \"%s\"", op);
        if (alias == o.read_alias || alias == o.write_alias ||
            std::count_if(o.extra_aliases.begin(), o.extra_aliases.end(), [&](const auto &a) { return a.first == alias; }) > 1)
            usage_error("alias \"%s\" given twice", alias);
    }
    // pgbouncer's per-database settings; the connection parameters are the follower's own.
    static const char *const kPoolKeys[] = {"pool_size", "min_pool_size", "reserve_pool", "pool_mode",
                                            "max_db_connections", "connect_query", "client_encoding",
                                            "datestyle", "timezone", "auth_user", "application_name"};
    for (const auto &[key, value] : o.pool_options) {
        if (std::none_of(std::begin(kPoolKeys), std::end(kPoolKeys), [&](const char *k) { return key == k; }))
            usage_error("--pool-option \"%s\": not a pgbouncer database setting this follower passes on "
                        "(pool_size, min_pool_size, reserve_pool, pool_mode, max_db_connections, connect_query, "
                        "client_encoding, datestyle, timezone, auth_user, application_name)", key);
        if (std::any_of(value.begin(), value.end(), [](unsigned char c) { return is_control(c); }))
            usage_error("--pool-option %s: the value has control characters", key);
    }
    if (!interval.empty() && !parse_interval(interval, &o.interval))
        usage_error("invalid --interval \"%s\": use e.g. 500ms, 2s or 1min (10ms to 1h)", interval);
    for (const std::string *ci : {&o.source, &o.pgbouncer}) {
        if (ci->empty())
            continue;
        std::string msg;
        if (!conninfo_values(*ci, &msg))
            usage_error("invalid connection string: %s", msg);
    }
    return o;
}

// ---------------------------------------------------------------------------
// libpq helpers
// ---------------------------------------------------------------------------

std::string one_line_pq(const char *msg)
{
    std::string s = one_line(msg != nullptr ? msg : "");
    return s.empty() ? "unknown error" : s;
}

// Server notices and FATALs that arrive between queries: one log line each.
extern "C" void on_notice(void *what, const char *message)
{
    say("%s: %s", static_cast<const char *>(what), one_line_pq(message).c_str());
}

// Connects without blocking past the connect timeout or a stop signal.
// Defaults come first so that the caller's connection string overrides them.
PGconn *open_conn(const std::string &conninfo, bool source, const std::string &label, std::string &err)
{
    ConnParams p;
    p.add("connect_timeout", "5");
    p.add("application_name", "replica_router_follower");
    // A hung source or pgbouncer must not hang the follower.
    p.add_dead_peer_limits();
    if (source)
        p.add("options", "-c statement_timeout=5000");
    p.add("dbname", conninfo);
    auto deadline = Clock::now() + std::chrono::seconds(connect_timeout_of(conninfo, kDefaultConnectTimeoutS));
    PGconn *conn = connect_until(p, deadline, g_wake[0], &g_stop, err);
    if (conn != nullptr) {
        PQsetnonblocking(conn, 0);
        PQsetNoticeProcessor(conn, on_notice, const_cast<char *>(label.c_str()));
    }
    return conn;
}

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

struct Target {
    std::string node, host, role, reason;
    int port = 0;
    bool same_place(const Target &o) const { return host == o.host && port == o.port; }
};

// Where one read-like alias points: one target, or a host list of replicas
// sharing a port.
struct Pick {
    std::string alias, operation;
    std::vector<Target> targets;
    std::string how;  // for the log and the file's comment
};

struct Routing {
    std::vector<Pick> reads;  // the read alias first, then --alias ones
    Target write;
};

// One statement, one snapshot: whether the source is a standby, whether its
// replicated hints are fresh, the write target and every qualified node for
// the read operation, best first.
constexpr const char *kRoutingQuery =
    "SELECT s.standby, s.hints_too_old, w.node, w.host, w.port, w.role, w.reason"
    "  FROM (SELECT pg_catalog.pg_is_in_recovery() AS standby,"
    // A standby whose own worker observes answers from live polls; one that
    // does not (replica_router.observe = off) from the replicated hints,
    // trusted while the primary's heartbeat is recent.
    "               pg_catalog.pg_is_in_recovery()"
    "               AND NOT coalesce(pg_catalog.current_setting('replica_router.observe', true)::boolean"
    "                                AND (SELECT w.pid IS NOT NULL FROM replica_router.worker_status() w), false)"
    "               AND coalesce("
    "                   (SELECT pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) h.primary_time"
    "                             OPERATOR(pg_catalog.>)"
    "                           pg_catalog.current_setting('replica_router.standby_max_hint_age')::interval"
    "                      FROM replica_router.heartbeat h), true) AS hints_too_old) s"
    " CROSS JOIN replica_router.recommend('write') w";

// Every qualified node for an operation, best first.
constexpr const char *kCandidatesQuery =
    "SELECT c.rank, c.node, c.host, c.port, c.role, c.reason"
    "  FROM replica_router.candidates($1) c WHERE c.qualified ORDER BY c.rank";

class Follower {
  public:
    explicit Follower(Options o)
        : opt_(std::move(o)), source_label_("source " + endpoint(opt_.source)),
          bouncer_label_("pgbouncer " + endpoint(opt_.pgbouncer))
    {
    }
    ~Follower() { close_source(); }
    int run();

  private:
    Options opt_;
    std::string source_label_, bouncer_label_;  // for messages
    PGconn *src_ = nullptr;
    bool on_primary_ = false;  // the source is a primary (else a standby)
    bool listening_ = false;   // LISTEN replica_router on it (not with --once)
    int worker_pid_ = 0;  // the worker's backend PID on the source, 0 unknown
    std::map<std::string, Target> in_file_;  // where the file's read-like aliases point (one host)
    bool reload_pending_ = false;
    int source_failures_ = 0, bouncer_failures_ = 0;
    std::string last_source_error_, last_bouncer_error_;
    Clock::time_point next_refresh_{}, next_reload_{};

    void close_source()
    {
        if (src_ != nullptr)
            PQfinish(src_);
        src_ = nullptr;
        listening_ = false;
        on_primary_ = false;
        worker_pid_ = 0;  // the next connection may reach another primary
    }
    Millis backoff(int failures) const
    {
        Millis d = std::min(opt_.interval, Millis(1000));
        for (int i = 1; i < failures && d < kMaxBackoff; ++i)
            d *= 2;
        return std::min(d, kMaxBackoff);
    }
    bool connect_source(std::string &err);
    bool read_routing(Routing &out, std::string &err);
    bool pick_targets(const std::string &alias, const std::string &op, Pick &pick, std::string &err);
    void remember(const Routing &r);
    std::vector<std::string> all_read_aliases() const
    {
        std::vector<std::string> v{opt_.read_alias};
        for (const auto &a : opt_.extra_aliases)
            v.push_back(a.first);
        return v;
    }
    bool refresh();
    bool reload();
    void source_failed(const std::string &err);
    bool drain_notifications(bool *lost);
    bool queued_notifications();
    bool from_worker(int be_pid);
    std::string check_applied(PGconn *bouncer, std::string &seen) const;
    std::string admin_hint() const;
    void startup_check();
    std::string render_body(const Routing &r) const;
    std::string render(const Routing &r, const std::string &body) const;
};

bool Follower::connect_source(std::string &err)
{
    if (src_ != nullptr && PQstatus(src_) == CONNECTION_OK)
        return true;
    close_source();
    src_ = open_conn(opt_.source, true, source_label_, err);
    if (src_ == nullptr)
        return false;
    Result r(PQexec(src_, "SELECT pg_catalog.pg_is_in_recovery()"));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
        err = one_line_pq(PQerrorMessage(src_));
        close_source();
        return false;
    }
    on_primary_ = r.str(0, 0) == "f";
    if (on_primary_ && !opt_.once) {
        Result l(PQexec(src_, "LISTEN replica_router"));
        if (PQresultStatus(l.get()) != PGRES_COMMAND_OK) {
            err = "LISTEN failed: " + one_line_pq(PQerrorMessage(src_));
            close_source();
            return false;
        }
        listening_ = true;
    }
    if (!opt_.once)
        say("connected to the source at %s (%s): %s", endpoint(opt_.source).c_str(), on_primary_ ? "primary" : "standby",
            on_primary_ ? "listening on channel replica_router" : "polling the replicated hints");
    return true;
}

bool Follower::read_routing(Routing &out, std::string &err)
{
    Result r(PQexec(src_, kRoutingQuery));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
        err = "reading the hints failed: " + one_line_pq(PQerrorMessage(src_));
        if (PQstatus(src_) != CONNECTION_OK)
            close_source();
        return false;
    }
    if (PQntuples(r.get()) == 0) {
        err = "reading the hints returned no row";
        return false;
    }
    bool standby = r.str(0, 0) == "t";
    if (standby == on_primary_) {
        // Promoted or demoted since we connected: reconnect in the right mode.
        close_source();
        err = "the source changed role; reconnecting";
        return false;
    }
    if (r.str(0, 1) == "t") {
        err = "the hints on the source standby are too old (heartbeat older than "
              "replica_router.standby_max_hint_age)";
        return false;
    }
    out.write = Target{r.str(0, 2), r.str(0, 3), r.str(0, 5), r.str(0, 6), std::atoi(r.str(0, 4).c_str())};
    if (out.write.host.empty() || out.write.port <= 0) {
        err = "the hints do not name the primary's host and port";
        return false;
    }
    std::vector<std::pair<std::string, std::string>> aliases{{opt_.read_alias, opt_.operation}};
    aliases.insert(aliases.end(), opt_.extra_aliases.begin(), opt_.extra_aliases.end());
    for (const auto &[alias, op] : aliases) {
        Pick pick;
        if (!pick_targets(alias, op, pick, err))
            return false;
        out.reads.push_back(std::move(pick));
    }
    return true;
}

bool Follower::pick_targets(const std::string &alias, const std::string &op, Pick &pick, std::string &err)
{
    pick.alias = alias;
    pick.operation = op;
    const char *params[1] = {op.c_str()};
    Result r(PQexecParams(src_, kCandidatesQuery, 1, nullptr, params, nullptr, nullptr, 0));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
        err = "reading the candidates for " + op + " failed: " + one_line_pq(PQerrorMessage(src_));
        if (PQstatus(src_) != CONNECTION_OK)
            close_source();
        return false;
    }
    std::vector<Target> qualified;
    for (int i = 0; i < PQntuples(r.get()); ++i)
        if (!r.str(i, 2).empty() && std::atoi(r.str(i, 3).c_str()) > 0)
            qualified.push_back(Target{r.str(i, 1), r.str(i, 2), r.str(i, 4), r.str(i, 5), std::atoi(r.str(i, 3).c_str())});
    if (qualified.empty()) {
        err = "no node qualifies for operation \"" + op + "\" (and the primary is not a fallback)";
        return false;
    }
    std::vector<Target> replicas;
    for (const Target &t : qualified)
        if (t.role == "replica")
            replicas.push_back(t);
    bool same_port = replicas.size() >= 2 && std::all_of(replicas.begin(), replicas.end(),
                                                         [&](const Target &t) { return t.port == replicas[0].port; });
    if (same_port && !opt_.single_host) {
        // pgbouncer takes a host list with one port: every qualifying replica,
        // sorted, so that a new ranking alone does not rewrite the file.
        std::sort(replicas.begin(), replicas.end(), [](const Target &a, const Target &b) { return a.host < b.host; });
        pick.targets = replicas;
        pick.how = "host list of the " + std::to_string(replicas.size()) + " qualifying replicas (they share port " +
                   std::to_string(replicas[0].port) + ")";
        return true;
    }
    // One host. Sticky among replicas: keep the chosen replica while it still qualifies.
    Target best = qualified.front();
    if (auto it = in_file_.find(alias); it != in_file_.end())
        for (const Target &t : qualified)
            if (t.role == "replica" && t.same_place(it->second)) {
                best = t;
                best.reason = "the replica chosen before still qualifies (ranked first now: " + qualified.front().node + ")";
            }
    pick.targets = {best};
    pick.how = replicas.size() >= 2
                   ? (opt_.single_host ? "one host (--single-host)" : "one host: the qualifying replicas do not share a port")
                   : "one host";
    return true;
}

// "r1 (replica): reason" or "host list r1, r2: how", for the log and comments.
std::string describe(const Pick &p)
{
    if (p.targets.size() == 1)
        return p.targets[0].node + " " + p.targets[0].host + ":" + std::to_string(p.targets[0].port) + " (" +
               p.targets[0].role + ", " + p.how + "): " + p.targets[0].reason;
    std::string nodes;
    for (const Target &t : p.targets)
        nodes += (nodes.empty() ? "" : ", ") + t.node + " " + t.host;
    return nodes + " port " + std::to_string(p.targets[0].port) + " (" + p.how + ")";
}

// pgbouncer connection-string values: plain ones as they are, others quoted.
std::string ini_value(const std::string &v)
{
    bool plain = !v.empty() && std::all_of(v.begin(), v.end(), [](unsigned char c) {
        return std::isalnum(c) || std::strchr("_.-:/", c) != nullptr;
    });
    if (plain)
        return v;
    std::string q = "'";
    for (char c : v) {
        if (c == '\'')
            q += '\'';
        q += c;
    }
    return q + "'";
}

std::string comment(const std::string &s) { return escape_controls(s); }

bool ascii_alnum(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// A host pgbouncer's configuration carries as it is: a host name, an IPv4 or
// IPv6 literal, or a socket directory. Anything else (control characters,
// blanks, quotes, "=", ",", ";", "%", ...) is refused rather than quoted: a
// newline ends the line whatever the quoting (pgbouncer then rejects the
// whole file, or applies the part before it), and a comma names a second host.
bool safe_host(const std::string &h)
{
    if (h.empty() || h.size() > 255)
        return false;
    bool dir = h[0] == '/';
    return std::all_of(h.begin(), h.end(), [dir](unsigned char c) {
        return ascii_alnum(c) || c == '.' || c == '-' || c == '_' || c == (dir ? '/' : ':');
    });
}

// Why a target cannot go into the file, or "" when it can.
std::string unsafe_target(const std::string &alias, const Target &t)
{
    if (!safe_host(t.host))
        return "refusing host " + quoted(t.host) + " of node " + quoted(t.node) + " for " + alias +
               ": not a host name, IP address or socket directory that pgbouncer's configuration can carry "
               "(letters, digits, \".\", \"-\", \"_\", \":\"; \"/\" in a socket directory)";
    if (t.port < 1 || t.port > 65535)
        return "refusing port " + std::to_string(t.port) + " of node " + quoted(t.node) + " for " + alias;
    return "";
}

std::string Follower::render_body(const Routing &r) const
{
    std::string options;
    for (const auto &[key, value] : opt_.pool_options)
        options += " " + key + "=" + ini_value(value);
    auto line = [&](const std::string &alias, const std::vector<Target> &targets) {
        // A host list: each host as pgbouncer carries it (safe_host: no comma), joined.
        std::string hosts;
        for (const Target &t : targets)
            hosts += (hosts.empty() ? "" : ",") + ini_value(t.host);
        return alias + " = host=" + hosts + " port=" + std::to_string(targets.front().port) +
               " dbname=" + ini_value(opt_.dbname) + options + "\n";
    };
    std::string body = "[databases]\n";
    for (const Pick &p : r.reads)
        body += line(p.alias, p.targets);
    return body + line(opt_.write_alias, {r.write});
}

std::string Follower::render(const Routing &r, const std::string &body) const
{
    char stamp[32];
    std::time_t now = std::time(nullptr);
    tm utc{};
    gmtime_r(&now, &utc);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
    std::string s;
    s += "; Written by replica_router follow; rewritten whenever the routing changes: do not edit.\n";
    s += std::string("; ") + stamp + " from the " + (on_primary_ ? "primary" : "standby") + " at " +
         comment(endpoint(opt_.source)) + "\n";
    for (const Pick &p : r.reads) {
        if (p.targets.size() == 1)
            s += "; " + p.alias + " -> " + comment(p.targets[0].node) + " (" + comment(p.targets[0].role) +
                 "), operation " + p.operation + ": " + comment(p.targets[0].reason) + " [" + p.how + "]\n";
        else
            s += "; " + p.alias + " -> " + comment(describe(p)) + ", operation " + p.operation + "\n";
    }
    s += "; " + opt_.write_alias + " -> " + comment(r.write.node) + " (" + comment(r.write.role) + "): " +
         comment(r.write.reason) + "\n";
    return s + body;
}

// The [databases] lines of a file: what matters to pgbouncer, without comments.
std::string body_of(const std::string &path)
{
    std::ifstream in(path);
    if (!in)
        return "";
    std::string line, body;
    while (std::getline(in, line))
        if (!line.empty() && line[0] != ';' && line[0] != '#')
            body += line + "\n";
    return body;
}

// The connection parameters of an alias in an existing file, if it has one.
std::optional<std::map<std::string, std::string>> alias_params(const std::string &path, const std::string &alias)
{
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(alias + " = ", 0) != 0)
            continue;
        std::map<std::string, std::string> params;
        std::size_t i = alias.size() + 3;
        while (i < line.size()) {
            std::size_t eq = line.find('=', i);
            if (eq == std::string::npos)
                break;
            std::string key = line.substr(i, eq - i), value;
            i = eq + 1;
            if (i < line.size() && line[i] == '\'') {
                for (++i; i < line.size(); ++i) {
                    if (line[i] == '\'' && (i + 1 >= line.size() || line[i + 1] != '\''))
                        break;
                    if (line[i] == '\'')
                        ++i;
                    value += line[i];
                }
                ++i;
            } else {
                std::size_t end = line.find(' ', i);
                value = line.substr(i, end == std::string::npos ? std::string::npos : end - i);
                i = end == std::string::npos ? line.size() : end;
            }
            while (i < line.size() && line[i] == ' ')
                ++i;
            params[key] = value;
        }
        return params;
    }
    return std::nullopt;
}

// Where an alias of an existing file points (host and port), if it does.
std::optional<Target> alias_in_file(const std::string &path, const std::string &alias)
{
    auto params = alias_params(path, alias);
    if (!params)
        return std::nullopt;
    Target t;
    t.host = (*params)["host"];
    t.port = std::atoi((*params)["port"].c_str());
    if (t.host.empty() || t.port <= 0)
        return std::nullopt;
    return t;
}

bool write_atomically(const std::string &path, const std::string &content, std::string &err)
{
    auto slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    std::string tmpl = dir + "/." + base + ".XXXXXX";
    std::vector<char> tmp(tmpl.begin(), tmpl.end());
    tmp.push_back('\0');
    int fd = mkstemp(tmp.data());
    if (fd < 0) {
        err = "cannot create a temporary file in " + dir + ": " + std::strerror(errno);
        return false;
    }
    auto fail = [&](const char *what) {
        err = std::string(what) + " " + tmp.data() + ": " + std::strerror(errno);
        close(fd);
        unlink(tmp.data());
        return false;
    };
    if (fchmod(fd, 0644) != 0)
        return fail("cannot chmod");
    for (std::size_t off = 0; off < content.size();) {
        ssize_t n = write(fd, content.data() + off, content.size() - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail("cannot write");
        off += static_cast<std::size_t>(n);
    }
    if (fsync(fd) != 0)
        return fail("cannot fsync");
    if (close(fd) != 0) {
        err = std::string("cannot close ") + tmp.data() + ": " + std::strerror(errno);
        unlink(tmp.data());
        return false;
    }
    if (rename(tmp.data(), path.c_str()) != 0) {
        err = "cannot rename " + std::string(tmp.data()) + " to " + path + ": " + std::strerror(errno);
        unlink(tmp.data());
        return false;
    }
    // The rename itself must survive a crash too.
    int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return true;
}

void Follower::source_failed(const std::string &err)
{
    ++source_failures_;
    Millis wait = backoff(source_failures_);
    next_refresh_ = Clock::now() + wait;
    // Say what happens to the file: kept as it is, or (never written yet) not written.
    struct stat st {};
    std::string file = stat(opt_.output.c_str(), &st) == 0 ? "keeping " + opt_.output + " as it is"
                                                           : "not writing " + opt_.output + " (it does not exist yet)";
    if (opt_.once)
        say("source %s: %s; %s", endpoint(opt_.source).c_str(), err.c_str(), file.c_str());
    else if (err != last_source_error_ || source_failures_ == 1)
        say("source %s: %s; %s; retrying in %.1fs (then backing off up to %llds)",
            endpoint(opt_.source).c_str(), err.c_str(), file.c_str(), wait.count() / 1000.0,
            static_cast<long long>(kMaxBackoff.count() / 1000));
    last_source_error_ = err;
}

// Where the file's single-host aliases point now (for stickiness).
void Follower::remember(const Routing &r)
{
    in_file_.clear();
    for (const Pick &p : r.reads)
        if (p.targets.size() == 1)
            in_file_[p.alias] = p.targets[0];
}

// Reads the routing and rewrites the file if its [databases] lines changed.
bool Follower::refresh()
{
    std::string err;
    Routing r;
    if (!connect_source(err) || !read_routing(r, err)) {
        source_failed(err);
        return false;
    }
    // A refused value counts as a failure of the source: the last good file
    // stays, and the hints are read again with backoff.
    for (const Pick &p : r.reads)
        for (const Target &t : p.targets)
            if (err.empty())
                err = unsafe_target(p.alias, t);
    if (err.empty())
        err = unsafe_target(opt_.write_alias, r.write);
    if (!err.empty()) {
        source_failed(err);
        return false;
    }
    if (source_failures_ > 0)
        say("source %s: reading the hints again", endpoint(opt_.source).c_str());
    source_failures_ = 0;
    last_source_error_.clear();
    next_refresh_ = Clock::now() + opt_.interval;

    std::string body = render_body(r);
    if (body == body_of(opt_.output)) {
        remember(r);
        return true;
    }
    if (!write_atomically(opt_.output, render(r, body), err)) {
        if (opt_.once)
            say("cannot replace %s: %s", opt_.output.c_str(), err.c_str());
        else
            say("cannot replace %s: %s; retrying in %.1fs", opt_.output.c_str(), err.c_str(), backoff(1).count() / 1000.0);
        next_refresh_ = Clock::now() + backoff(1);
        return false;
    }
    remember(r);
    std::string reads;
    for (const Pick &p : r.reads)
        reads += p.alias + " -> " + describe(p) + ", ";
    say("wrote %s: %s%s -> %s %s:%d", opt_.output.c_str(), reads.c_str(), opt_.write_alias.c_str(),
        r.write.node.c_str(), r.write.host.c_str(), r.write.port);
    if (!opt_.pgbouncer.empty()) {
        reload_pending_ = true;
        next_reload_ = Clock::now();
    }
    return true;
}

// pgbouncer answers RELOAD with success even when it cannot load its
// configuration: it logs the error and keeps the old databases, or applies
// the lines before the bad one. Whether the aliases point where the file says
// shows in SHOW DATABASES. Returns why not, or "" (with what it saw in seen).
std::string Follower::check_applied(PGconn *bouncer, std::string &seen) const
{
    Result r(PQexec(bouncer, "SHOW DATABASES"));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK)
        return "SHOW DATABASES failed: " + one_line_pq(PQerrorMessage(bouncer));
    int name = PQfnumber(r.get(), "name"), host = PQfnumber(r.get(), "host"), port = PQfnumber(r.get(), "port"),
        db = PQfnumber(r.get(), "database");
    if (name < 0 || host < 0 || port < 0 || db < 0)
        return "SHOW DATABASES has no name, host, port and database columns";
    std::vector<std::string> aliases{opt_.read_alias, opt_.write_alias};
    for (const auto &a : opt_.extra_aliases)
        aliases.push_back(a.first);
    for (const std::string &alias : aliases) {
        auto want = alias_params(opt_.output, alias);
        if (!want)
            continue;  // not in the file (not written yet): nothing to compare
        std::string dbname = want->count("dbname") ? (*want)["dbname"] : alias;
        std::string expected = (*want)["host"] + ":" + (*want)["port"] + "/" + dbname, got;
        for (int i = 0; i < PQntuples(r.get()) && got.empty(); ++i)
            if (r.str(i, name) == alias)
                got = r.str(i, host) + ":" + r.str(i, port) + "/" + r.str(i, db);
        if (got.empty())
            return "pgbouncer has no database " + alias + " (" + opt_.output + " has " + alias + " -> " + expected +
                   "): is the file %included? see pgbouncer's log";
        if (got != expected)
            return "pgbouncer has " + alias + " -> " + got + ", " + opt_.output + " has " + expected +
                   ": it did not load the file, see pgbouncer's log";
        seen += (seen.empty() ? "" : ", ") + alias + " -> " + got;
    }
    return "";
}

// pgbouncer's own words ("not allowed", "admin access needed") do not say
// what to change: this does.
std::string Follower::admin_hint() const
{
    std::string user;
    if (auto kv = conninfo_values(opt_.pgbouncer))
        for (const auto &[k, v] : *kv)
            if (k == "user")
                user = v;
    if (user.empty())
        user = "the connecting user";
    return "pgbouncer lets only the users in its admin_users setting run RELOAD: add " + user +
           " to admin_users in pgbouncer.ini (and, with auth_type md5 or scram-sha-256, give it a password in "
           "auth_file), then reload or restart pgbouncer";
}

// At start-up: RELOAD only when pgbouncer does not already serve what the
// file says (a previous run may have stopped between writing and reloading).
void Follower::startup_check()
{
    if (opt_.pgbouncer.empty() || !alias_params(opt_.output, opt_.read_alias))
        return;
    std::string err, seen;
    PGconn *c = open_conn(opt_.pgbouncer, false, bouncer_label_, err);
    if (c == nullptr) {
        reload_pending_ = true;  // reload() reports the error, with backoff
        return;
    }
    std::string why = check_applied(c, seen);
    PQfinish(c);
    if (why.empty())
        say("pgbouncer at %s already has %s (SHOW DATABASES: %s)", endpoint(opt_.pgbouncer).c_str(),
            opt_.output.c_str(), seen.c_str());
    else
        reload_pending_ = true;
}

bool Follower::reload()
{
    std::string err, seen;
    PGconn *c = open_conn(opt_.pgbouncer, false, bouncer_label_, err);
    if (c == nullptr) {
        err = "reload failed: cannot connect: " + err;
    } else {
        Result r(PQexec(c, "RELOAD"));
        if (PQresultStatus(r.get()) != PGRES_COMMAND_OK)
            err = "reload failed: RELOAD: " + one_line_pq(PQerrorMessage(c));
        else if (std::string why = check_applied(c, seen); !why.empty())
            err = "reload failed: " + why;
        PQfinish(c);
    }
    if (err.find("not allowed") != std::string::npos || err.find("admin access needed") != std::string::npos)
        err += "; " + admin_hint();
    if (err.empty()) {
        reload_pending_ = false;
        bouncer_failures_ = 0;
        last_bouncer_error_.clear();
        std::string checked = seen.empty() ? "" : " (SHOW DATABASES: " + seen + ")";
        say("pgbouncer at %s reloaded%s", endpoint(opt_.pgbouncer).c_str(), checked.c_str());
        return true;
    }
    ++bouncer_failures_;
    Millis wait = backoff(bouncer_failures_);
    next_reload_ = Clock::now() + wait;
    if (opt_.once)
        say("pgbouncer %s: %s", endpoint(opt_.pgbouncer).c_str(), err.c_str());
    else if (err != last_bouncer_error_ || bouncer_failures_ == 1)
        say("pgbouncer %s: %s; retrying in %.1fs (then backing off up to %llds)", endpoint(opt_.pgbouncer).c_str(),
            err.c_str(), wait.count() / 1000.0, static_cast<long long>(kMaxBackoff.count() / 1000));
    last_bouncer_error_ = err;
    return false;
}

// Anyone who may connect can NOTIFY replica_router with any payload; the
// sender's backend PID, which libpq reports in be_pid, is set by the server
// and cannot be forged. So a notification counts only when the worker sent
// it. Its PID is read again when unknown and when another backend sends (the
// worker may have restarted since); anything else is ignored, with a line.
bool Follower::from_worker(int be_pid)
{
    if (be_pid == worker_pid_ && worker_pid_ != 0)
        return true;
    Result r(PQexec(src_, "SELECT pid FROM replica_router.worker_status()"));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
        say("ignored a notification on channel replica_router from backend PID %d (cannot read the worker's PID: %s)",
            be_pid, one_line_pq(PQerrorMessage(src_)).c_str());
        return false;
    }
    int pid = std::atoi(r.str(0, 0).c_str());  // NULL (0): the worker is not running
    if (pid != worker_pid_ && pid != 0)
        say("source %s: the replica_router worker is backend PID %d", endpoint(opt_.source).c_str(), pid);
    worker_pid_ = pid;
    if (be_pid == worker_pid_ && worker_pid_ != 0)
        return true;
    say("ignored a notification on channel replica_router from backend PID %d (not the replica_router worker)",
        be_pid);
    return false;
}

// Frees the notifications libpq has already read; true if the worker sent any.
bool Follower::queued_notifications()
{
    bool any = false;
    while (src_ != nullptr) {
        PGnotify *n = PQnotifies(src_);
        if (n == nullptr)
            break;
        int be_pid = n->be_pid;
        PQfreemem(n);
        if (from_worker(be_pid))
            any = true;
    }
    return any;
}

// Reads what arrived on the LISTEN connection; true if a notification came.
bool Follower::drain_notifications(bool *lost)
{
    *lost = false;
    if (src_ == nullptr)
        return false;
    if (!PQconsumeInput(src_) || PQstatus(src_) != CONNECTION_OK) {
        *lost = true;
        return false;
    }
    return queued_notifications();
}

int Follower::run()
{
    // Stay on the replica a previous run chose, while it qualifies.
    for (const std::string &alias : all_read_aliases())
        if (auto t = alias_in_file(opt_.output, alias); t && t->host.find(',') == std::string::npos)
            in_file_[alias] = *t;
    if (opt_.once) {
        bool ok = refresh();
        if (ok && reload_pending_)
            ok = reload();
        close_source();
        return ok ? 0 : 1;
    }
    say("following %s for operation %s into %s (%s, %s)", endpoint(opt_.source).c_str(), opt_.operation.c_str(),
        opt_.output.c_str(), opt_.read_alias.c_str(), opt_.write_alias.c_str());
    startup_check();
    next_refresh_ = next_reload_ = Clock::now();
    bool wake_now = true;
    while (!g_stop) {
        auto now = Clock::now();
        if (wake_now || now >= next_refresh_) {
            wake_now = false;
            queued_notifications();  // this refresh covers them
            refresh();
        }
        if (g_stop)
            break;
        if (reload_pending_ && Clock::now() >= next_reload_)
            reload();
        if (queued_notifications()) {
            // libpq read them while the refresh ran: the change may be newer
            // than what the refresh saw, and the socket will not wake us.
            wake_now = true;
            continue;
        }

        auto until = next_refresh_;
        if (reload_pending_)
            until = std::min(until, next_reload_);
        auto left = std::chrono::duration_cast<Millis>(until - Clock::now()).count();
        pollfd p[2] = {{g_wake[0], POLLIN, 0}, {listening_ && src_ != nullptr ? PQsocket(src_) : -1, POLLIN, 0}};
        int rc = poll(p, 2, static_cast<int>(std::clamp<long long>(left, 0, 3'600'000)));
        if (rc < 0 && errno != EINTR) {
            say("poll failed: %s", std::strerror(errno));
            return 1;
        }
        drain_wake();
        if (rc > 0 && p[1].revents != 0) {
            bool lost = false;
            if (drain_notifications(&lost)) {
                wake_now = true;
            } else if (lost) {
                std::string err = "lost the connection: " + one_line_pq(PQerrorMessage(src_));
                close_source();
                source_failed(err);
            }
        }
    }
    say("stopping");
    return 0;
}

} // namespace

int follow_main(int argc, char **argv)
{
    Options opt = parse_options(argc, argv);
    if (!install_signals()) {
        std::fprintf(stderr, "%s: cannot set up signal handling: %s\n", g_program.c_str(), std::strerror(errno));
        return 1;
    }
    return Follower(std::move(opt)).run();
}

} // namespace rr
