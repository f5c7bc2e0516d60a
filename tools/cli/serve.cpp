// replica_router serve: an HTTP API over the extension's views, for
// Prometheus (/metrics), load balancers (/primary, /replica, /read,
// /node/NAME/replica, as Patroni's REST API serves HAProxy), people (/, a
// status page) and programs (/health, /stats, /lag, /pool-stats,
// /recommend). HTTP by cpp-httplib; answers from a snapshot refreshed by
// one thread (serve_snapshot.cpp), at most one interval old, and 503 once
// it is older than stale_after.
#include "subcommands.hpp"

#include "duration.hpp"
#include "exposition.hpp"
#include "serve_snapshot.hpp"
#include "text.hpp"

#include <getopt.h>
#include <httplib.h>
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <string>

namespace rr {

std::string render_page(const Snapshot &snap, const LagHistory &history, double age, double stale_after);  // serve_page.cpp
std::string render_no_data_page(const std::string &error);  // serve_page.cpp

namespace {

using nlohmann::json;

constexpr const char *kUsageTemplate = R"(%1$s: HTTP API over replica_router's views, for Prometheus, load balancers and people

Usage:
  %1$s --source CONNINFO [--listen ADDRESS] [--port PORT] [options]

Options:
  --source CONNINFO       where to read the views: libpq connection string; with several
                          hosts (host=pg1,pg2,pg3) the primary is chosen
                          (target_session_attrs=read-write unless the string sets it)
  --listen ADDRESS        address to bind (default: 127.0.0.1, loopback only)
  --port PORT             port (default: 9188; 0: any free port, printed at start)
  --interval DURATION     re-read the views at least this often (default: 500ms);
                          the worker's NOTIFY on every state change re-reads at once
  --stale-after DURATION  answer 503 once the data is older than this (default: the
                          source's replica_router.stale_after)
  --threads N             HTTP worker threads, the connections served at once; an idle
                          keep-alive connection holds one for up to 2s (default: 16)
  -V, --version           print the version and exit
  -?, --help              show this help and exit

Endpoints (GET; the load-balancer checks also HEAD and OPTIONS):
  /metrics                       Prometheus text exposition
  /health /stats /lag /pool-stats JSON: the health row, every node, lag, connections and pools
  /recommend?operation=&max_lag=&min_lsn=&zone=   recommend() as JSON (cached one interval)
  /primary                       200 when the source is the primary and the data is fresh
  /replica?max_lag=              200 when at least one replica qualifies
  /read?max_lag=                 200 when a replica qualifies, or the primary as fallback
  /node/NAME/replica?max_lag=    200 only when replica NAME qualifies (for HAProxy checks)
  /node/NAME/primary             200 only when NAME is the primary
  /                              status page
Every answer carries its data's age (header Age and X-Replica-Router-Data-Age, JSON
field data_age_seconds); bad parameters get 400 with the reason; every endpoint
answers 503 once the data is older than stale_after. A replica qualifies when it is
healthy (lag within replica_router.max_lag) and, with max_lag=, its lag is at most
that; max_lag= also admits a lagging replica whose lag is within it.
)";

// 1-63 of A-Z a-z 0-9 _ - . starting with a letter or digit: the extension's
// rule for node names and zones, and enough for operations.
bool plain_name(const std::string &s)
{
    if (s.empty() || s.size() > 63 || !std::isalnum(static_cast<unsigned char>(s[0])))
        return false;
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '-' || c == '.'; });
}

bool lsn_text(const std::string &s)
{
    static const std::regex re("^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$");
    return std::regex_match(s, re);
}

struct Server {
    Source &src;

    // The parameters of a request, checked: only those named, each at most once.
    bool params(const httplib::Request &req, httplib::Response &res, std::initializer_list<const char *> allowed)
    {
        for (const auto &[k, v] : req.params) {
            bool ok = std::any_of(allowed.begin(), allowed.end(), [&](const char *a) { return k == a; });
            if (!ok)
                return bad(res, "unknown parameter " + rr::quoted(k) + (allowed.size() ? "" : ": this endpoint takes none"));
            if (req.get_param_value_count(k) > 1)
                return bad(res, "parameter " + rr::quoted(k) + " given more than once");
        }
        return true;
    }

    bool bad(httplib::Response &res, const std::string &why)
    {
        res.status = 400;
        res.set_content(json{{"error", why}}.dump() + "\n", "application/json");
        return false;
    }

    // max_lag=: seconds, or nullopt when absent; false (400 sent) when invalid.
    bool max_lag(const httplib::Request &req, httplib::Response &res, std::optional<double> &out)
    {
        if (!req.has_param("max_lag"))
            return true;
        std::string v = req.get_param_value("max_lag");
        out = parse_duration(v, "s");
        if (!out || *out > 365 * 86400.0)
            return bad(res, "invalid max_lag " + rr::quoted(v) + ": a duration from 0 to 365d, e.g. 500ms, 5s, 1min");
        return true;
    }

    // A request that takes no parameters: the snapshot, or nullptr with the
    // answer set (400 for a parameter, 503 for no or old data).
    std::shared_ptr<const Snapshot> plain_get(const httplib::Request &req, httplib::Response &res, double &age)
    {
        return params(req, res, {}) ? fresh(res, age) : nullptr;
    }

    // The snapshot, or 503 (none yet, or older than stale_after).
    std::shared_ptr<const Snapshot> fresh(httplib::Response &res, double &age)
    {
        auto snap = src.latest();
        if (!snap) {
            res.status = 503;
            std::string err = src.last_error();
            res.set_content(json{{"error", "no data yet" + (err.empty() ? std::string() : ": " + err)}}.dump() + "\n",
                            "application/json");
            return nullptr;
        }
        age = std::chrono::duration<double>(Clock::now() - snap->fetched).count();
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3f", age);
        res.set_header("X-Replica-Router-Data-Age", buf);
        res.set_header("Age", std::to_string(static_cast<long long>(age)));
        res.set_header("Cache-Control", "no-store");
        if (age > src.stale_after()) {
            res.status = 503;
            std::string err = src.last_error();
            char why[160];
            std::snprintf(why, sizeof why, "the data is %.1fs old, older than stale_after (%.1fs)", age, src.stale_after());
            res.set_content(json{{"error", std::string(why) + (err.empty() ? "" : "; last error: " + err)},
                                 {"data_age_seconds", age}}
                                .dump() + "\n",
                            "application/json");
            return nullptr;
        }
        return snap;
    }

    void send(httplib::Response &res, int status, json body, double age)
    {
        body["data_age_seconds"] = std::round(age * 1000) / 1000;
        res.status = status;
        res.set_content(body.dump() + "\n", "application/json");
    }

    static const json *find_node(const Snapshot &s, const std::string &name)
    {
        for (const auto &n : s.data["nodes"])
            if (n.value("node", "") == name)
                return &n;
        return nullptr;
    }

    // Whether a replica qualifies for reads, and why (not).
    static bool qualifies(const json &n, std::optional<double> max_lag, std::string &why)
    {
        std::string name = n.value("node", ""), state = n.value("state", "");
        double lag = n["lag_seconds"].is_number() ? n["lag_seconds"].get<double>() : NAN;
        char lag_text[64];
        std::snprintf(lag_text, sizeof lag_text, "%.3fs", lag);
        if (n.value("role", "") != "replica") {
            why = name + " is the primary, not a replica";
            return false;
        }
        bool healthy = state == "healthy", lagging = state == "lagging";
        if (!healthy && !(lagging && max_lag)) {
            why = name + " is " + state + (lagging ? " (lag over replica_router.max_lag)" : "");
            if (auto e = n.find("error"); e != n.end() && e->is_string())
                why += ": " + one_line(e->get<std::string>()).substr(0, 200);
            return false;
        }
        if (max_lag && !(lag <= *max_lag)) {
            why = name + " lags " + lag_text + ", more than max_lag " + format_duration(*max_lag);
            return false;
        }
        why = name + " is a " + state + " replica, lag " + lag_text +
              (max_lag ? " within max_lag " + format_duration(*max_lag) : " within replica_router.max_lag");
        return true;
    }

    // /node/NAME/replica and /node/NAME/primary
    void node_check(const httplib::Request &req, httplib::Response &res, const std::string &name, bool want_primary)
    {
        if (!plain_name(name)) {
            bad(res, "invalid node name " + rr::quoted(name));
            return;
        }
        std::optional<double> ml;
        if (!params(req, res, {"max_lag"}) || !max_lag(req, res, ml))
            return;
        double age = 0;
        auto snap = fresh(res, age);
        if (!snap)
            return;
        const json *n = find_node(*snap, name);
        if (n == nullptr) {
            send(res, 404, {{"ok", false}, {"node", name}, {"reason", "no node named " + name + " is registered"}}, age);
            return;
        }
        std::string why;
        bool ok;
        if (want_primary) {
            // The primary row, or a registered member that is now the primary
            // (state primary), as a worker out of recovery sees it: an
            // unelected old primary's worker names the real one too.
            ok = (n->value("role", "") == "primary" || n->value("state", "") == "primary") &&
                 source_role(snap->data) != "standby";
            why = ok ? name + " is the primary" : name + " is not the primary";
        } else {
            ok = qualifies(*n, ml, why);
        }
        send(res, ok ? 200 : 503, {{"ok", ok}, {"node", name}, {"state", n->value("state", "")}, {"reason", why}}, age);
    }

    // /replica and /read
    void cluster_check(const httplib::Request &req, httplib::Response &res, bool read)
    {
        std::optional<double> ml;
        if (!params(req, res, {"max_lag"}) || !max_lag(req, res, ml))
            return;
        double age = 0;
        auto snap = fresh(res, age);
        if (!snap)
            return;
        json good = json::array(), others = json::array();
        const json *primary = nullptr;
        for (const auto &n : snap->data["nodes"]) {
            if (n.value("role", "") == "primary") {
                primary = &n;
                continue;
            }
            std::string why;
            (qualifies(n, ml, why) ? good : others).push_back(why);
        }
        if (!good.empty()) {
            send(res, 200, {{"ok", true}, {"target", "replica"}, {"reason", good[0]}, {"qualified", good}, {"left_out", others}}, age);
            return;
        }
        bool fallback = read && primary != nullptr && source_role(snap->data) == "primary" &&
                        snap->data["settings"].value("fallback_to_primary", true);
        if (fallback) {
            send(res, 200, {{"ok", true}, {"target", "primary"}, {"node", primary->value("node", "")},
                            {"reason", "no replica qualifies: the primary, as fallback"}, {"left_out", others}}, age);
            return;
        }
        send(res, 503, {{"ok", false}, {"reason", "no replica qualifies"}, {"left_out", others}}, age);
    }

    void primary_check(const httplib::Request &req, httplib::Response &res)
    {
        double age = 0;
        auto snap = plain_get(req, res, age);
        if (!snap)
            return;
        std::string role = source_role(snap->data);
        bool ok = role == "primary";
        json body{{"ok", ok}};
        for (const auto &n : snap->data["nodes"])
            if (ok && n.value("role", "") == "primary") {
                body["node"] = n.value("node", "");
                body["host"] = n["host"];
                body["port"] = n["port"];
            }
        body["reason"] = ok                    ? "the source is the primary"
                         : role == "unelected" ? "the source is out of recovery but not the primary the members elect"
                         : role == "unknown"   ? "the source's worker has not polled every member yet"
                                               : "the source is a standby: no primary reached";
        send(res, ok ? 200 : 503, body, age);
    }

    // JSON views: the snapshot's pieces.
    void view(const httplib::Request &req, httplib::Response &res, const std::string &which)
    {
        double age = 0;
        auto snap = plain_get(req, res, age);
        if (!snap)
            return;
        const json &d = snap->data;
        json body{{"fetched_at", snap->fetched_unix}, {"version", d["version"]}, {"source_role", source_role(d)}};
        if (which == "health") {
            body["health"] = d["health"];
            body["worker"] = d["worker"];
        } else if (which == "stats") {
            body["nodes"] = d["nodes"];
            body["worker"] = d["worker"];
        } else if (which == "lag") {
            json rows = json::array();
            for (const auto &n : d["nodes"])
                if (n.value("role", "") == "replica")
                    rows.push_back({{"node", n["node"]}, {"state", n["state"]}, {"lag_seconds", n["lag_seconds"]},
                                    {"lag_bytes", n["lag_bytes"]}, {"receive_gap_bytes", n["receive_gap_bytes"]},
                                    {"replay_gap_bytes", n["replay_gap_bytes"]}, {"replay_paused", n["replay_paused"]},
                                    {"severity", n["lag_severity"]}, {"replay_lsn", n["replay_lsn"]}});
            body["replicas"] = rows;
            body["slots"] = d["slots"];
        } else {
            json rows = json::array();
            for (const auto &n : d["nodes"])
                rows.push_back({{"node", n["node"]}, {"role", n["role"]}, {"connections", n["connections"]},
                                {"max_connections", n["max_connections"]}, {"pool", n["pool"]}});
            body["nodes"] = rows;
            body["pgbouncer_pools"] = d["pgbouncer_pools"];
        }
        send(res, 200, body, age);
    }

    void recommend(const httplib::Request &req, httplib::Response &res)
    {
        if (!params(req, res, {"operation", "max_lag", "min_lsn", "zone"}))
            return;
        std::string op = req.has_param("operation") ? req.get_param_value("operation") : "read";
        if (!plain_name(op)) {
            bad(res, "invalid operation " + rr::quoted(op));
            return;
        }
        std::optional<double> ml;
        if (!max_lag(req, res, ml))
            return;
        std::optional<std::string> ml_text, lsn, zone;
        if (ml) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "%.6f seconds", *ml);
            ml_text = buf;
        }
        if (req.has_param("min_lsn")) {
            lsn = req.get_param_value("min_lsn");
            if (!lsn_text(*lsn)) {
                bad(res, "invalid min_lsn " + rr::quoted(*lsn) + ": a WAL position such as 0/3000148");
                return;
            }
        }
        if (req.has_param("zone")) {
            zone = req.get_param_value("zone");
            if (!plain_name(*zone)) {
                bad(res, "invalid zone " + rr::quoted(*zone));
                return;
            }
        }
        double snap_age = 0;
        if (!fresh(res, snap_age))
            return;
        json answer;
        std::string err;
        double age = 0;
        if (!src.recommend(op, ml_text, lsn, zone, answer, err, age)) {
            // RR001: no replica qualifies and fallback_to_primary is off.
            bool none = err.rfind("RR001", 0) == 0;
            bool input = err.rfind("22", 0) == 0 || err.rfind("42704", 0) == 0;
            res.status = none ? 503 : input ? 400 : 502;
            res.set_content(json{{"error", err}}.dump() + "\n", "application/json");
            return;
        }
        answer["operation"] = op;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3f", age);
        res.set_header("X-Replica-Router-Data-Age", buf);
        res.set_header("Age", std::to_string(static_cast<long long>(age)));
        send(res, 200, answer, age);
    }

    void metrics(const httplib::Request &req, httplib::Response &res)
    {
        double age = 0;
        auto snap = plain_get(req, res, age);
        if (!snap)
            return;
        char tail[768];
        std::snprintf(tail, sizeof tail,
                      "# HELP replica_router_snapshot_timestamp_seconds When serve last read the views (UNIX time)\n"
                      "# TYPE replica_router_snapshot_timestamp_seconds gauge\nreplica_router_snapshot_timestamp_seconds %.3f\n"
                      "# HELP replica_router_snapshot_age_seconds Age of the data served (serve re-reads every interval)\n"
                      "# TYPE replica_router_snapshot_age_seconds gauge\nreplica_router_snapshot_age_seconds %.3f\n"
                      "# HELP replica_router_serve_refreshes_total Snapshots read since serve started\n"
                      "# TYPE replica_router_serve_refreshes_total counter\nreplica_router_serve_refreshes_total %lld\n",
                      snap->fetched_unix, age, src.refreshes());
        res.set_content(snap->metrics + tail, "text/plain; version=0.0.4; charset=utf-8");
    }

    void page(const httplib::Request &req, httplib::Response &res)
    {
        if (!params(req, res, {}))
            return;
        auto snap = src.latest();
        if (!snap) {
            res.status = 503;
            res.set_content(render_no_data_page(src.last_error()), "text/html; charset=utf-8");
            return;
        }
        double age = std::chrono::duration<double>(Clock::now() - snap->fetched).count();
        res.status = age > src.stale_after() ? 503 : 200;
        res.set_header("Cache-Control", "no-store");
        res.set_content(render_page(*snap, src.history(), age, src.stale_after()), "text/html; charset=utf-8");
    }
};

[[noreturn]] void usage_error(const std::string &why)
{
    std::fprintf(stderr, "%s: %s\nTry \"%s --help\" for more information.\n", g_program.c_str(),
                 escape_controls(why).c_str(), g_program.c_str());
    std::exit(2);
}

// The value of --NAME, an integer from lo to hi, else a usage error saying so.
long integer_option(const char *name, const char *value, long lo, long hi)
{
    char *end = nullptr;
    long v = std::strtol(value, &end, 10);
    if (*value == '\0' || *end != '\0' || v < lo || v > hi)
        usage_error(std::string("invalid --") + name + " \"" + value + "\": " + std::to_string(lo) + " to " +
                    std::to_string(hi));
    return v;
}

// The value of --NAME, a duration from min_s to max_s seconds, else a usage
// error with `range` (how the range is written for people).
double duration_option(const char *name, const char *value, double min_s, double max_s, const char *range)
{
    auto v = parse_duration(value, "ms");
    if (!v || *v < min_s || *v > max_s)
        usage_error(std::string("invalid --") + name + " \"" + value + "\": " + range);
    return *v;
}

ServeOptions parse_options(int argc, char **argv)
{
    ServeOptions o;
    enum { SOURCE = 1000, LISTEN, PORT, INTERVAL, STALE, THREADS };
    static const option longopts[] = {
        {"source", required_argument, nullptr, SOURCE}, {"listen", required_argument, nullptr, LISTEN},
        {"port", required_argument, nullptr, PORT},     {"interval", required_argument, nullptr, INTERVAL},
        {"stale-after", required_argument, nullptr, STALE}, {"threads", required_argument, nullptr, THREADS},
        {"version", no_argument, nullptr, 'V'},         {"help", no_argument, nullptr, '?'},
        {nullptr, 0, nullptr, 0}};
    opterr = 0;
    optind = 1;
    for (;;) {
        int ch = getopt_long(argc, argv, ":V?", longopts, nullptr);
        if (ch == -1)
            break;
        std::string arg = argv[optind - 1] != nullptr ? argv[optind - 1] : "";
        switch (ch) {
        case SOURCE: o.source = optarg; break;
        case LISTEN: o.listen = optarg; break;
        case PORT: o.port = static_cast<int>(integer_option("port", optarg, 0, 65535)); break;
        case INTERVAL:
            o.interval_s = duration_option("interval", optarg, 0.01, 3600, "a duration from 10ms to 1h, e.g. 500ms");
            break;
        case STALE:
            o.stale_after_s = duration_option("stale-after", optarg, 0.1, 86400, "a duration from 100ms to 1d, e.g. 3s");
            break;
        case THREADS: o.threads = static_cast<int>(integer_option("threads", optarg, 1, 256)); break;
        case 'V':
            print_version();
            std::exit(0);
        case ':':
            usage_error("option " + arg.substr(0, arg.find('=')) + " needs a value");
        default:
            if (optopt == '?' || arg == "--help" || arg == "-?") {
                std::printf(kUsageTemplate, g_program.c_str());
                std::exit(0);
            }
            usage_error("unknown option \"" + (optopt != 0 ? std::string("-") + static_cast<char>(optopt) : arg.substr(0, arg.find('='))) + "\"");
        }
    }
    if (optind < argc)
        usage_error(std::string("unexpected argument \"") + argv[optind] + "\"");
    if (o.source.empty())
        usage_error("--source is required");
    std::string err;
    if (!conninfo_values(o.source, &err))
        usage_error("invalid connection string: " + err);
    return o;
}

} // namespace

int serve_main(int argc, char **argv)
{
    ServeOptions o = parse_options(argc, argv);
    // SIGTERM / SIGINT are taken by one thread (sigwait) that stops the
    // server; every other thread has them blocked.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    signal(SIGPIPE, SIG_IGN);

    Source src(o);
    httplib::Server http;
    Server s{src};
    int threads = o.threads;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // Peers are untrusted: small requests, short timeouts, bounded keep-alive.
    http.set_payload_max_length(4096);
    http.set_read_timeout(5, 0);
    http.set_write_timeout(5, 0);
    // cpp-httplib gives each connection a pool thread for as long as it
    // lives: idle keep-alive clients hold threads, so they are let go soon.
    http.set_keep_alive_timeout(2);
    http.set_keep_alive_max_count(1000);
    http.set_tcp_nodelay(true);  // small answers: no 40 ms delayed-ACK stall per request

    auto both = [&](const std::string &path, httplib::Server::Handler h) {
        http.Get(path, h);  // HEAD is answered by the GET handler, without the body
        http.Options(path, h);
    };
    using Req = httplib::Request;
    using Res = httplib::Response;
    both("/primary", [&](const Req &q, Res &r) { s.primary_check(q, r); });
    both("/replica", [&](const Req &q, Res &r) { s.cluster_check(q, r, false); });
    both("/read", [&](const Req &q, Res &r) { s.cluster_check(q, r, true); });
    both(R"(/node/([^/]+)/replica)", [&](const Req &q, Res &r) { s.node_check(q, r, q.matches[1], false); });
    both(R"(/node/([^/]+)/primary)", [&](const Req &q, Res &r) { s.node_check(q, r, q.matches[1], true); });
    http.Get("/metrics", [&](const Req &q, Res &r) { s.metrics(q, r); });
    for (const char *v : {"health", "stats", "lag", "pool-stats"})
        http.Get(std::string("/") + v, [&s, v](const Req &q, Res &r) { s.view(q, r, v); });
    http.Get("/recommend", [&](const Req &q, Res &r) { s.recommend(q, r); });
    http.Get("/", [&](const Req &q, Res &r) { s.page(q, r); });
    http.set_error_handler([](const Req &, Res &r) {
        if (r.body.empty())
            r.set_content(json{{"error", r.status == 404 ? std::string("no such endpoint: see replica_router serve --help")
                                                         : "HTTP status " + std::to_string(r.status)}}.dump() + "\n",
                          "application/json");
    });
    http.set_exception_handler([](const Req &, Res &r, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception &e) {
            what += std::string(": ") + e.what();
        } catch (...) {
        }
        r.status = 500;
        r.set_content(json{{"error", what}}.dump() + "\n", "application/json");
    });

    int port = o.port;
    if (port == 0)
        port = http.bind_to_any_port(o.listen);
    else if (!http.bind_to_port(o.listen, port))
        port = -1;
    if (port <= 0) {
        say("cannot listen on %s:%d: %s", o.listen.c_str(), o.port, std::strerror(errno));
        return 1;
    }
    src.start();
    std::thread waiter([&] {
        int sig = 0;
        sigwait(&sigs, &sig);
        http.stop();
    });
    say("listening on http://%s:%d/ for %s (interval %s)", o.listen.find(':') != std::string::npos ? ("[" + o.listen + "]").c_str() : o.listen.c_str(),
        port, endpoint(o.source).c_str(), format_duration(o.interval_s).c_str());
    bool ok = http.listen_after_bind();
    if (!ok)
        say("the HTTP server stopped with an error");
    src.stop();
    // The waiter may still wait: wake it.
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
    say("stopping");
    return 0;
}

} // namespace rr
