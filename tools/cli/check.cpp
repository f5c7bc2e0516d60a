// replica_router check: a check command for cron and Nagios-style monitoring
// (Nagios, Icinga, Sensu, Zabbix external checks). Reads replica_router's
// monitoring views on the primary, prints one status line with performance
// data and exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
//
// Severities come from the views, that is from the replica_router.* threshold
// settings. --warning / --critical override the one threshold each command is
// about (lag, retained WAL, connection use); the command then judges that
// figure itself and keeps the view's other findings. A threshold is either a
// plain value (alert at or above it, as the views judge) or a Nagios range
// ("5:10", "~:10", "@5:10", "10:"), judged as Nagios plugins do. Every value
// goes to the server as a query parameter.
#include "subcommands.hpp"

#include "duration.hpp"
#include "pgconn.hpp"
#include "text.hpp"

#include <getopt.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace rr {
namespace {

constexpr const char *kUsageTemplate = R"(%1$s: Nagios-style check of replica_router's monitoring views

Usage:
  %1$s [connection options] COMMAND [--warning X] [--critical Y]

Commands:
  lag      worst replay lag of the registered replicas (replica_router.lag);
           thresholds are durations: 500ms, 5s, 1min (a bare number is seconds);
           defaults: replica_router.lag_warning / lag_critical
  slots    replication slots (replica_router.slot_health); thresholds are WAL
           retained by a slot: 512MB, 1GB (a bare number is bytes); defaults:
           replica_router.slot_retained_warning / slot_retained_critical;
           inactivity, wal_status and xmin age are judged by the view
  pools    connection use per node, primary included (replica_router.pool_state);
           thresholds in percent of usable connections: 80, 90%%; defaults:
           replica_router.pool_warning / pool_critical; waiting pgbouncer
           clients and an unreachable pgbouncer warn
  health   the one-row summary (replica_router.health): worst severity of lag,
           slots, pools and the worker; takes no thresholds

Options:
  -w, --warning X          warning threshold (see the commands)
  -c, --critical Y         critical threshold
      --node NAME          only this node (lag, pools) or the slots of this
                           replica or of this name (slots)
      --min-healthy N      lag, health: a replica that is down, stale or
                           otherwise out of rotation only warns while at least N
                           replicas are healthy; fewer than N is CRITICAL
  -t, --timeout DURATION   limit for connecting and for each query (default: 10s)
  -d, --dbname CONNINFO    database name or libpq connection string / URI
                           (default: postgres, where the extension usually is)
  -h, --host HOST          server host or socket directory
  -p, --port PORT          server port
  -U, --username USER      user name
  -V, --version            print the version and exit
  -?, --help               print this help and exit

Thresholds: a plain value alerts at or above it, as the views judge. A Nagios
range alerts outside it: "10" is 0..10, "5:" is 5 or more, "~:10" is up to 10,
"5:10" is 5..10; a leading "@" alerts inside the range instead, e.g. -w @0:2
on pools. Range ends take the command's units (-w 1s:5s for lag).

Connection options and the PG* environment variables (PGHOST, PGPORT, PGUSER,
PGDATABASE, PGPASSWORD, PGPASSFILE, PGSERVICE, PGSSLMODE, ...) work as in psql,
except that the database defaults to "postgres" rather than the user name;
a connection string given with -d wins over -h, -p and -U. The check never
asks for a password: use ~/.pgpass, PGPASSFILE or a service file.

Output: one line, "REPLICA_ROUTER <COMMAND> <STATUS> - <text> | <perfdata>".
Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (cannot connect, extension
missing, bad arguments, query failed).

Examples:
  %1$s -h primary.example -U monitor lag --warning 5s --critical 30s
  %1$s -d 'service=primary' slots --warning 1GB --critical 10GB
  %1$s pools --warning 80 --critical 90
  %1$s lag --min-healthy 2 --node r1
  %1$s health
)";

enum Status { OK = 0, WARNING = 1, CRITICAL = 2, UNKNOWN = 3 };
constexpr const char *kStatusName[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

PGconn *g_conn = nullptr;
std::string g_label = "REPLICA_ROUTER";  // plus the command once known
std::vector<std::string> g_secrets;       // passwords never to print

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

std::string redact(std::string s)
{
    for (const std::string &secret : g_secrets) {
        if (secret.size() < 4)  // too short to tell from ordinary text
            continue;
        for (std::size_t at = s.find(secret); at != std::string::npos; at = s.find(secret, at + 8))
            s.replace(at, secret.size(), "********");
    }
    return s;
}

// Nagios takes everything after the first "|" as performance data, and a
// newline as the start of long output: the text (node and slot names, the
// server's errors and reasons) keeps neither. Passwords are masked first,
// while they still read as given.
std::string status_text(const std::string &s)
{
    std::string out = one_line(redact(s));
    std::replace(out.begin(), out.end(), '|', '/');
    return out;
}

[[noreturn]] void finish(Status status, const std::string &text, const std::string &perf = "")
{
    std::string line = g_label + " " + kStatusName[status] + " - " + status_text(text);
    if (!perf.empty())
        line += " | " + status_text(perf);
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    if (g_conn != nullptr)
        PQfinish(g_conn);
    std::exit(status);
}

[[noreturn]] void unknown(const std::string &why) { finish(UNKNOWN, why); }

[[noreturn]] void bad_usage(const std::string &why) { unknown(why + " (see " + g_program + " --help)"); }

// A number without trailing zeros: 7.2, 0, 0.125.
std::string num(double v, int decimals = 3)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    std::string s = buf;
    if (s.find('.') != std::string::npos) {
        s.erase(s.find_last_not_of('0') + 1);
        if (s.back() == '.')
            s.pop_back();
    }
    return s == "-0" ? "0" : s;
}

// Nagios performance data label: quoted unless plain. A label may not hold
// "=" (it ends the label) nor "|" or control characters (see status_text).
std::string perf_label(std::string label)
{
    for (char &ch : label)
        if (ch == '=' || ch == '|' || std::iscntrl(static_cast<unsigned char>(ch)))
            ch = '_';
    bool plain = !label.empty() && std::all_of(label.begin(), label.end(), [](unsigned char ch) {
        return std::isalnum(ch) || ch == '_' || ch == '-' || ch == '.';
    });
    if (plain)
        return label;
    std::string q = "'";
    for (char ch : label)
        q += ch == '\'' ? std::string("''") : std::string(1, ch);
    return q + "'";
}

// ---------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------

struct Options {
    std::string command;
    std::optional<std::string> dbname, host, port, user, warning, critical, node;
    std::optional<int> min_healthy;
    double timeout_s = 10;
    bool timeout_given = false;
};

// Percent from 80, 85.5, 90%.
std::optional<double> parse_percent(const std::string &s)
{
    std::string t = s;
    while (!t.empty() && t.back() == ' ')
        t.pop_back();
    bool pct = !t.empty() && t.back() == '%';
    if (pct)
        t.pop_back();
    std::optional<double> v = parse_size(t);  // a plain non-negative number
    if (v && t.find_first_not_of("0123456789. ") == std::string::npos && *v <= 100) {
        return std::strtod(t.c_str(), nullptr);
    }
    return std::nullopt;
}

// A Nagios threshold range: alert when the value is outside [lo, hi], or
// inside with "@".
struct Range {
    double lo = 0, hi = std::numeric_limits<double>::infinity();
    bool inside = false;
    bool alerts(double v) const { return inside ? (v >= lo && v <= hi) : (v < lo || v > hi); }
};

bool is_range(const std::string &s)
{
    return s.find(':') != std::string::npos || (!s.empty() && (s[0] == '@' || s[0] == '~'));
}

// The command's figure from a threshold text (or a range end).
std::optional<double> parse_value(const std::string &command, const std::string &s)
{
    if (command == "lag")
        return parse_duration(s, "s");
    if (command == "slots")
        return parse_size(s);
    return parse_percent(s);
}

std::optional<Range> parse_range(const std::string &command, std::string s)
{
    Range r;
    if (!s.empty() && s[0] == '@') {
        r.inside = true;
        s.erase(0, 1);
    }
    std::size_t colon = s.find(':');
    std::string lo = colon == std::string::npos ? "" : s.substr(0, colon);
    std::string hi = colon == std::string::npos ? s : s.substr(colon + 1);
    if (lo == "~")
        r.lo = -std::numeric_limits<double>::infinity();
    else if (!lo.empty()) {
        std::optional<double> v = parse_value(command, lo);
        if (!v)
            return std::nullopt;
        r.lo = *v;
    }
    if (!hi.empty()) {
        std::optional<double> v = parse_value(command, hi);
        if (!v)
            return std::nullopt;
        r.hi = *v;
    } else if (colon == std::string::npos) {
        return std::nullopt;  // "@" or "~" alone
    }
    if (r.lo > r.hi)
        return std::nullopt;
    return r;
}

Options parse_options(int argc, char **argv)
{
    Options o;
    enum { OPT_NODE = 1000, OPT_MIN_HEALTHY };
    static const option longopts[] = {
        {"warning", required_argument, nullptr, 'w'}, {"critical", required_argument, nullptr, 'c'},
        {"dbname", required_argument, nullptr, 'd'},  {"host", required_argument, nullptr, 'h'},
        {"port", required_argument, nullptr, 'p'},    {"username", required_argument, nullptr, 'U'},
        {"timeout", required_argument, nullptr, 't'}, {"node", required_argument, nullptr, OPT_NODE},
        {"min-healthy", required_argument, nullptr, OPT_MIN_HEALTHY},
        {"version", no_argument, nullptr, 'V'},       {"help", no_argument, nullptr, '?'},
        {nullptr, 0, nullptr, 0}};
    std::optional<std::string> timeout, min_healthy;
    opterr = 0;
    optind = 1;
    for (;;) {
        int idx = -1;
        int ch = getopt_long(argc, argv, ":w:c:d:h:p:U:t:V?", longopts, &idx);
        if (ch == -1)
            break;
        std::string arg = argv[optind - 1] != nullptr ? argv[optind - 1] : "";
        switch (ch) {
        case 'w': o.warning = optarg; break;
        case 'c': o.critical = optarg; break;
        case 'd': o.dbname = optarg; break;
        case 'h': o.host = optarg; break;
        case 'p': o.port = optarg; break;
        case 'U': o.user = optarg; break;
        case 't': timeout = optarg; break;
        case OPT_NODE: o.node = optarg; break;
        case OPT_MIN_HEALTHY: min_healthy = optarg; break;
        case 'V':
            print_version();
            std::exit(0);
        case ':':
            bad_usage("option \"" + arg.substr(0, arg.find('=')) + "\" needs a value");
        case '?':
            if (optopt == '?' || arg == "--help" || arg == "-?") {
                std::printf(kUsageTemplate, g_program.c_str());
                std::exit(0);
            }
            bad_usage("unknown option \"" + (optopt != 0 ? std::string("-") + static_cast<char>(optopt) : arg.substr(0, arg.find('='))) + "\"");
        default:
            bad_usage("unknown option \"" + arg + "\"");
        }
    }
    for (int i = optind; i < argc; ++i) {
        std::string arg = argv[i];
        if (!o.command.empty())
            bad_usage("unexpected argument \"" + arg + "\" after the command " + o.command);
        o.command = arg;
        if (arg == "lag" || arg == "slots" || arg == "pools" || arg == "health") {
            g_label = "REPLICA_ROUTER ";
            for (char ch : arg)
                g_label += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        }
    }
    if (o.command.empty())
        bad_usage("no command given: lag, slots, pools or health");
    if (o.command != "lag" && o.command != "slots" && o.command != "pools" && o.command != "health")
        bad_usage("unknown command \"" + o.command + "\": use lag, slots, pools or health");
    if (timeout) {
        std::optional<double> t = parse_duration(*timeout, "s");
        if (!t || *t < 1 || *t > 86400)
            bad_usage("invalid --timeout \"" + *timeout + "\": a duration from 1s to 1d, e.g. 10s");
        o.timeout_s = *t;
        o.timeout_given = true;
    }
    if (min_healthy) {
        char *end = nullptr;
        long n = std::strtol(min_healthy->c_str(), &end, 10);
        if (min_healthy->empty() || *end != '\0' || n < 0 || n > 10000)
            bad_usage("invalid --min-healthy \"" + *min_healthy + "\": a number of replicas, 0 to 10000");
        if (o.command != "lag" && o.command != "health")
            bad_usage("--min-healthy applies to lag and health");
        o.min_healthy = static_cast<int>(n);
    }
    if (o.node && o.command == "health")
        bad_usage("health takes no --node: use lag --node or pools --node");
    if (o.command == "health" && (o.warning || o.critical))
        bad_usage("health takes no thresholds: it reports the views' severities");
    return o;
}

// --warning / --critical for the command: a plain threshold (judged by the
// query, at or above), or a Nagios range (judged here; the query then gets
// a threshold it never reaches, so only the view's other findings count).
struct Thresholds {
    std::optional<double> warning, critical;
    std::optional<Range> warn_range, crit_range;
    bool ranges() const { return warn_range || crit_range; }
};

Thresholds parse_thresholds(const Options &o)
{
    Thresholds t;
    const char *expect = o.command == "lag"     ? "a duration such as 500ms, 5s or 1min, or a Nagios range"
                         : o.command == "slots" ? "a size such as 512MB or 1GB, or a Nagios range"
                                                : "a percentage from 0 to 100, or a Nagios range";
    auto parse = [&](const std::optional<std::string> &arg, const char *which, std::optional<double> *value,
                     std::optional<Range> *range) {
        if (!arg)
            return;
        if (is_range(*arg)) {
            *range = parse_range(o.command, *arg);
            if (!*range)
                bad_usage(std::string("invalid --") + which + " \"" + *arg + "\": " + expect);
            return;
        }
        *value = parse_value(o.command, *arg);
        if (!*value)
            bad_usage(std::string("invalid --") + which + " \"" + *arg + "\": " + expect);
    };
    parse(o.warning, "warning", &t.warning, &t.warn_range);
    parse(o.critical, "critical", &t.critical, &t.crit_range);
    if ((t.warning && t.crit_range) || (t.warn_range && t.critical))
        bad_usage("give both thresholds as plain values or both as Nagios ranges");
    if (t.warning && t.critical && *t.warning > *t.critical)
        bad_usage("--warning " + *o.warning + " exceeds --critical " + *o.critical);
    if (t.ranges()) {
        // The query judges against thresholds it never reaches; ranges are judged here.
        double never = o.command == "slots" ? 9.0e18 : 1.0e300;
        t.warning = never;
        t.critical = never;
    }
    return t;
}

// Status from the ranges (when given) for a figure.
Status range_status(const Thresholds &t, double v)
{
    if (t.crit_range && t.crit_range->alerts(v))
        return CRITICAL;
    if (t.warn_range && t.warn_range->alerts(v))
        return WARNING;
    return OK;
}

// ---------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------

// libpq's parse errors quote pieces of the string, which may hold a password.
std::string conninfo_error(const std::string &conninfo, const std::string &libpq_message)
{
    std::string msg = libpq_message.empty() ? "invalid syntax" : libpq_message;
    std::string lower = conninfo;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (lower.find("pass") != std::string::npos || lower.find('@') != std::string::npos) {
        // Keep one-character pieces ("=", "]"): they cannot give a password away.
        std::string safe;
        for (std::size_t at = 0; at < msg.size();) {
            std::size_t open = msg.find('"', at), close = open == std::string::npos ? open : msg.find('"', open + 1);
            if (close == std::string::npos) {
                safe += msg.substr(at);
                break;
            }
            safe += msg.substr(at, open - at) + (close - open == 2 ? msg.substr(open, 3) : "\"...\"");
            at = close + 1;
        }
        msg = safe;
    }
    return "invalid connection string given with --dbname: " + msg;
}

void connect(const Options &o)
{
    if (const char *pw = std::getenv("PGPASSWORD"))
        g_secrets.push_back(pw);
    if (o.dbname && looks_like_conninfo(*o.dbname)) {
        std::string err;
        auto kv = conninfo_values(*o.dbname, &err);
        if (!kv)
            unknown(conninfo_error(*o.dbname, err));
        for (const auto &[k, v] : *kv)
            if (k == "password")
                g_secrets.push_back(v);
    }

    // As psql: host, port and user first, so a connection string in dbname
    // overrides them; then our own settings.
    ConnParams params;
    std::string timeout = std::to_string(static_cast<long>(std::ceil(o.timeout_s)));
    if (o.host)
        params.add("host", *o.host);
    if (o.port)
        params.add("port", *o.port);
    if (o.user)
        params.add("user", *o.user);
    if (!o.timeout_given && std::getenv("PGCONNECT_TIMEOUT") == nullptr)
        params.add("connect_timeout", timeout);  // a default the connection string may override
    params.add_dead_peer_limits();  // a frozen server: statement_timeout alone would never fire
    if (o.dbname)
        params.add("dbname", *o.dbname);
    else if (std::getenv("PGDATABASE") == nullptr && std::getenv("PGSERVICE") == nullptr)
        params.add("dbname", "postgres");  // libpq's default (the user name) is rarely where the extension is
    if (o.timeout_given)
        params.add("connect_timeout", timeout);
    params.add("fallback_application_name", "replica_router check");

    g_conn = nullptr;
    std::vector<const char *> keys, values;
    for (const auto &[k, v] : params.kv) {
        keys.push_back(k.c_str());
        values.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    g_conn = PQconnectdbParams(keys.data(), values.data(), 1);
    if (g_conn == nullptr)
        unknown("cannot connect: out of memory");
    if (const char *pw = PQpass(g_conn); pw != nullptr && *pw != '\0')
        g_secrets.push_back(pw);
    if (PQstatus(g_conn) != CONNECTION_OK)
        unknown("cannot connect: " + one_line(PQerrorMessage(g_conn)));
}

// Runs a query with text parameters (nullopt is SQL NULL); any error is UNKNOWN.
PGresult *query(const char *sql, const std::vector<std::optional<std::string>> &params = {})
{
    PGresult *res = exec_params(g_conn, sql, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        std::string why = res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(g_conn);
        PQclear(res);
        unknown("query failed: " + one_line(why));
    }
    return res;
}

using Rows = Result;

void prepare_session(const Options &o)
{
    std::string ms = std::to_string(static_cast<long long>(o.timeout_s * 1000));
    PQclear(query("SELECT pg_catalog.set_config('search_path', 'pg_catalog', false),"
                  " pg_catalog.set_config('statement_timeout', $1, false)",
                  {ms}));
    Rows ext(query("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'replica_router'"));
    if (ext.rows() == 0)
        unknown(std::string("the extension replica_router is not installed in database \"") + PQdb(g_conn) +
                "\" on " + (PQhost(g_conn) != nullptr ? PQhost(g_conn) : "?") + ":" +
                (PQport(g_conn) != nullptr ? PQport(g_conn) : "?"));
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

Status severity(const std::string &s)
{
    if (s == "ok")
        return OK;
    if (s == "warning")
        return WARNING;
    if (s == "critical")
        return CRITICAL;
    return UNKNOWN;
}

// A finding about one node or slot.
struct Item {
    Status status;
    std::string name;
    std::string text;
};

// Exits with the worst status, naming the items that are not OK (worst first).
[[noreturn]] void report(std::vector<Item> items, const std::string &ok_text, const std::vector<std::string> &perf)
{
    std::stable_sort(items.begin(), items.end(), [](const Item &a, const Item &b) {
        return a.status != b.status ? a.status > b.status : a.name < b.name;
    });
    Status worst = items.empty() ? OK : items.front().status;
    std::vector<std::string> bad;
    for (const Item &it : items)
        if (it.status != OK)
            bad.push_back(it.text);
    finish(worst, worst == OK ? ok_text : join(bad, ", "), join(perf, " "));
}

std::optional<std::string> param(const std::optional<double> &v)
{
    if (!v)
        return std::nullopt;
    return num(*v, 6);
}

std::string seconds_text(double s) { return num(s, s < 10 ? 2 : 1) + "s"; }

constexpr const char *kLagQuery = R"(
WITH t AS (
    SELECT coalesce($1::float8, extract(epoch FROM replica_router._ms_setting('replica_router.lag_warning'))::float8) AS warn_s,
           coalesce($2::float8, extract(epoch FROM replica_router._ms_setting('replica_router.lag_critical'))::float8) AS crit_s,
           coalesce($3, current_setting('replica_router.lag_warning')) AS warn_text,
           coalesce($4, current_setting('replica_router.lag_critical')) AS crit_text)
SELECT l.node, l.state, l.replay_lag_seconds, l.replay_paused, l.error, t.*, s.lag_judged,
       CASE WHEN s.lag_judged AND ($1 IS NOT NULL OR $2 IS NOT NULL)
            THEN CASE WHEN l.replay_lag_seconds >= t.crit_s THEN 'critical'
                      WHEN l.replay_lag_seconds >= t.warn_s OR l.replay_paused THEN 'warning'
                      ELSE 'ok' END
            ELSE l.severity END AS severity
  FROM replica_router.lag l CROSS JOIN t
  JOIN replica_router.states() s ON s.state = l.state
 ORDER BY l.node)";

[[noreturn]] void check_lag(const Options &o, const Thresholds &th)
{
    Rows r(query(kLagQuery, {param(th.warning), param(th.critical), o.warning, o.critical}));
    std::vector<Item> items;
    std::vector<std::string> perf;
    std::optional<double> max_lag;
    std::string max_node;
    int healthy = 0, shown = 0;
    for (int i = 0; i < r.rows(); ++i)
        if (r.str(i, "state") == "healthy")
            ++healthy;
    for (int i = 0; i < r.rows(); ++i) {
        std::string node = r.str(i, "node"), state = r.str(i, "state");
        if (o.node && node != *o.node)
            continue;
        ++shown;
        std::optional<double> lag = r.number(i, "replay_lag_seconds");
        double warn = r.number(i, "warn_s").value_or(0), crit = r.number(i, "crit_s").value_or(0);
        Status st = severity(r.str(i, "severity"));
        std::string text = node;
        bool streaming = r.str(i, "lag_judged") == "t";  // healthy or lagging: the lag means something
        if (!streaming)
            lag.reset();  // the view keeps the last figure of a replica it cannot reach
        if (streaming) {
            std::vector<std::string> parts;
            Status by_range = th.ranges() && lag ? range_status(th, *lag) : OK;
            if (by_range != OK)
                parts.push_back("lag " + seconds_text(*lag) + " (" + (by_range == CRITICAL ? "critical " + *o.critical : "warning " + *o.warning) + ")");
            else if (lag && *lag >= crit)
                parts.push_back("lag " + seconds_text(*lag) + " (critical " + r.str(i, "crit_text") + ")");
            else if (lag && *lag >= warn)
                parts.push_back("lag " + seconds_text(*lag) + " (warning " + r.str(i, "warn_text") + ")");
            st = std::max(st, by_range);
            if (r.flag(i, "replay_paused").value_or(false)) {
                parts.push_back("replay paused");
                if (lag && *lag < warn && by_range == OK)
                    parts.push_back("lag " + seconds_text(*lag));
            }
            text += " " + (parts.empty() ? state : join(parts, ", "));
        } else {
            text += " " + state;
            if (std::string err = r.str(i, "error"); !err.empty())
                text += " (" + (err.size() > 100 ? err.substr(0, 100) + "..." : err) + ")";
            // Out of rotation, but enough others serve: a warning, not a page.
            if (o.min_healthy && st == CRITICAL && healthy >= *o.min_healthy)
                st = WARNING;
        }
        items.push_back({st, node, text});
        if (lag && (!max_lag || *lag > *max_lag))
            max_lag = lag, max_node = node;
        std::string w = th.ranges() ? o.warning.value_or("") : num(warn), c = th.ranges() ? o.critical.value_or("") : num(crit);
        perf.push_back(perf_label(node) + "=" + (lag ? num(*lag) + "s" : std::string("U")) + ";" + w + ";" + c + ";0");
    }
    if (o.node && shown == 0)
        unknown("no replica named \"" + *o.node + "\" is registered");
    if (o.min_healthy) {
        if (healthy < *o.min_healthy)
            items.push_back({CRITICAL, "", std::to_string(healthy) + " healthy replicas, fewer than --min-healthy " +
                                               std::to_string(*o.min_healthy)});
        perf.push_back("healthy_replicas=" + std::to_string(healthy) + ";;" + std::to_string(*o.min_healthy) + ":;0");
    }
    std::string ok = shown == 0 ? "no replicas registered"
                                : std::to_string(shown) + (shown == 1 ? " replica" : " replicas") +
                                      ", max lag " + (max_lag ? seconds_text(*max_lag) + " (" + max_node + ")" : "unknown");
    report(items, ok, perf);
}

// With thresholds given, retained WAL is judged against them and the view's
// other findings are judged as the view does (wal_status, inactivity, xmin age).
constexpr const char *kSlotsQuery = R"(
WITH t AS (
    SELECT coalesce($1::int8, pg_size_bytes(current_setting('replica_router.slot_retained_warning'))) AS warn_b,
           coalesce($2::int8, pg_size_bytes(current_setting('replica_router.slot_retained_critical'))) AS crit_b,
           coalesce($3, current_setting('replica_router.slot_retained_warning')) AS warn_text,
           coalesce($4, current_setting('replica_router.slot_retained_critical')) AS crit_text)
SELECT s.slot_name, s.replica, s.active, s.wal_status, s.retained_bytes, s.retained, s.reason,
       extract(epoch FROM s.inactive_for) AS inactive_s, t.*,
       CASE WHEN $1 IS NULL AND $2 IS NULL THEN s.severity ELSE replica_router._worst(
            CASE WHEN s.wal_status IN ('lost', 'unreserved') THEN 'critical' WHEN s.wal_status = 'extended' THEN 'warning' END,
            CASE WHEN s.retained_bytes >= t.crit_b THEN 'critical' WHEN s.retained_bytes >= t.warn_b THEN 'warning' END,
            CASE WHEN s.inactive_for >= replica_router._ms_setting('replica_router.slot_inactive_critical') THEN 'critical'
                 WHEN s.inactive_for >= replica_router._ms_setting('replica_router.slot_inactive_warning') THEN 'warning' END,
            CASE WHEN greatest(s.xmin_age, s.catalog_xmin_age) >= current_setting('replica_router.slot_xmin_age_critical')::integer THEN 'critical'
                 WHEN greatest(s.xmin_age, s.catalog_xmin_age) >= current_setting('replica_router.slot_xmin_age_warning')::integer THEN 'warning' END)
       END AS severity
  FROM replica_router.slot_health s CROSS JOIN t
 ORDER BY s.slot_name)";

[[noreturn]] void check_slots(const Options &o, const Thresholds &th)
{
    Rows r(query(kSlotsQuery, {param(th.warning), param(th.critical), o.warning, o.critical}));
    std::vector<Item> items;
    std::vector<std::string> perf;
    std::optional<double> most;
    std::string most_slot, most_pretty;
    int shown = 0;
    for (int i = 0; i < r.rows(); ++i) {
        std::string slot = r.str(i, "slot_name"), replica = r.str(i, "replica");
        if (o.node && *o.node != slot && *o.node != replica)
            continue;
        ++shown;
        std::optional<double> retained = r.number(i, "retained_bytes");
        double warn = r.number(i, "warn_b").value_or(0), crit = r.number(i, "crit_b").value_or(0);
        std::vector<std::string> parts;
        Status by_range = th.ranges() && retained ? range_status(th, *retained) : OK;
        if (by_range != OK)
            parts.push_back("retains " + r.str(i, "retained") + " (" +
                            (by_range == CRITICAL ? "critical " + *o.critical : "warning " + *o.warning) + ")");
        else if (retained && *retained >= crit)
            parts.push_back("retains " + r.str(i, "retained") + " (critical " + r.str(i, "crit_text") + ")");
        else if (retained && *retained >= warn)
            parts.push_back("retains " + r.str(i, "retained") + " (warning " + r.str(i, "warn_text") + ")");
        // The view's reasons, but for retained WAL, judged above.
        std::string reasons = r.str(i, "reason");
        for (std::size_t at = 0; at < reasons.size();) {
            std::size_t end = reasons.find("; ", at);
            std::string piece = reasons.substr(at, end == std::string::npos ? std::string::npos : end - at);
            if (!piece.empty() && piece.rfind("retained WAL over", 0) != 0)
                parts.push_back(piece);
            at = end == std::string::npos ? reasons.size() : end + 2;
        }
        if (!r.flag(i, "active").value_or(true))
            if (std::optional<double> idle = r.number(i, "inactive_s"))
                parts.push_back("inactive for " + seconds_text(*idle));
        std::string text = slot + (replica.empty() ? "" : " (replica " + replica + ")");
        if (!parts.empty())
            text += " " + join(parts, ", ");
        items.push_back({std::max(severity(r.str(i, "severity")), by_range), slot, text});
        if (retained && (!most || *retained > *most))
            most = retained, most_slot = slot, most_pretty = r.str(i, "retained");
        perf.push_back(perf_label(slot) + "=" + (retained ? num(*retained, 0) + "B" : std::string("U")) + ";" +
                       (th.ranges() ? o.warning.value_or("") : num(warn, 0)) + ";" +
                       (th.ranges() ? o.critical.value_or("") : num(crit, 0)) + ";0");
    }
    if (o.node && shown == 0)
        unknown("no replication slot named \"" + *o.node + "\" or used by a replica of that name");
    std::string ok = shown == 0 ? "no replication slots"
                                   : std::to_string(shown) + (shown == 1 ? " slot" : " slots") +
                                         ", most retained " + (most ? most_pretty + " (" + most_slot + ")" : "unknown");
    report(items, ok, perf);
}

// With thresholds given, connection use is judged against them; waiting
// pgbouncer clients and an unreachable pgbouncer warn, as in the view.
constexpr const char *kPoolsQuery = R"(
WITH t AS (
    SELECT coalesce($1::float8, current_setting('replica_router.pool_warning')::float8) AS warn_pct,
           coalesce($2::float8, current_setting('replica_router.pool_critical')::float8) AS crit_pct),
     p AS (SELECT p.*, 100.0 * p.connections / nullif(p.usable_connections, 0) AS used_pct
             FROM replica_router.pool_state p)
SELECT p.node, p.role, p.state, p.connections, p.usable_connections, p.used_pct, p.utilisation_pct,
       p.cl_waiting, p.pgbouncer_ok, p.pgbouncer_error, t.*,
       CASE WHEN $1 IS NULL AND $2 IS NULL THEN p.severity ELSE replica_router._worst(
            CASE WHEN p.used_pct >= t.crit_pct THEN 'critical' WHEN p.used_pct >= t.warn_pct THEN 'warning' END,
            CASE WHEN p.cl_waiting > 0 THEN 'warning' END,
            CASE WHEN NOT p.pgbouncer_ok THEN 'warning' END)
       END AS severity
  FROM p CROSS JOIN t
 ORDER BY p.role <> 'primary', p.node)";

[[noreturn]] void check_pools(const Options &o, const Thresholds &th)
{
    Rows r(query(kPoolsQuery, {param(th.warning), param(th.critical)}));
    std::vector<Item> items;
    std::vector<std::string> perf;
    std::optional<double> busiest;
    std::string busiest_text;
    int shown = 0;
    for (int i = 0; i < r.rows(); ++i) {
        std::string node = r.str(i, "node");
        if (o.node && node != *o.node)
            continue;
        ++shown;
        std::optional<double> used = r.number(i, "used_pct");
        double warn = r.number(i, "warn_pct").value_or(0), crit = r.number(i, "crit_pct").value_or(0);
        std::string counts = r.str(i, "connections") + "/" + r.str(i, "usable_connections") + " connections (" +
                             r.str(i, "utilisation_pct") + "%";
        std::vector<std::string> parts;
        Status by_range = th.ranges() && used ? range_status(th, *used) : OK;
        if (by_range != OK)
            parts.push_back(counts + ", " + (by_range == CRITICAL ? "critical " + *o.critical : "warning " + *o.warning) + ")");
        else if (used && *used >= crit)
            parts.push_back(counts + ", critical " + num(crit) + "%)");
        else if (used && *used >= warn)
            parts.push_back(counts + ", warning " + num(warn) + "%)");
        std::optional<double> waiting = r.number(i, "cl_waiting");
        if (waiting && *waiting > 0)
            parts.push_back(num(*waiting, 0) + (*waiting == 1 ? " client" : " clients") + " waiting in pgbouncer");
        if (!r.flag(i, "pgbouncer_ok").value_or(true)) {
            std::string err = r.str(i, "pgbouncer_error");
            parts.push_back("pgbouncer unreachable" + (err.empty() ? "" : " (" + err.substr(0, 100) + ")"));
        }
        Status st = std::max(severity(r.str(i, "severity")), by_range);
        items.push_back({st, node, node + " " + (parts.empty() ? r.str(i, "severity") : join(parts, ", "))});
        if (used && (!busiest || *used > *busiest))
            busiest = used, busiest_text = node + " " + counts + ")";
        perf.push_back(perf_label(node) + "=" + (used ? num(*used, 1) + "%" : std::string("U")) + ";" +
                       (th.ranges() ? o.warning.value_or("") : num(warn)) + ";" +
                       (th.ranges() ? o.critical.value_or("") : num(crit)) + ";0;100");
        if (waiting)
            perf.push_back(perf_label(node + "_cl_waiting") + "=" + num(*waiting, 0) + ";;;0");
    }
    if (o.node && shown == 0)
        unknown("no node named \"" + *o.node + "\"");
    std::string ok = std::to_string(shown) + (shown == 1 ? " node" : " nodes") +
                     (busiest ? ", busiest " + busiest_text : "");
    report(items, ok, perf);
}

constexpr const char *kHealthQuery = R"(
SELECT h.severity, h.healthy_replicas, h.registered_replicas, h.most_lagging, h.worker_alive, h.worker_pid,
       extract(epoch FROM h.max_replay_lag) AS max_lag_s,
       extract(epoch FROM h.last_round_age) AS round_age_s,
       extract(epoch FROM h.last_round_duration) AS round_s,
       (SELECT string_agg(what, ', ' ORDER BY bad DESC, what) FROM (
            SELECT 'lag ' || node || ' ' || severity AS what, severity = 'critical' AS bad
              FROM replica_router.lag WHERE severity <> 'ok'
            UNION ALL
            SELECT 'slot ' || slot_name || ' ' || severity, severity = 'critical'
              FROM replica_router.slot_health WHERE severity <> 'ok'
            UNION ALL
            SELECT 'pool ' || node || ' ' || severity, severity = 'critical'
              FROM replica_router.pool_state WHERE severity <> 'ok') x) AS problems,
       -- critical findings other than replicas out of rotation (for --min-healthy)
       (SELECT count(*) FROM replica_router.lag l JOIN replica_router.states() s ON s.state = l.state
         WHERE l.severity = 'critical' AND s.lag_judged)
       + (SELECT count(*) FROM replica_router.slot_health WHERE severity = 'critical')
       + (SELECT count(*) FROM replica_router.pool_state WHERE severity = 'critical')
       + CASE WHEN h.worker_alive AND h.registry_problem IS NULL THEN 0 ELSE 1 END AS other_critical
  FROM replica_router.health h)";

[[noreturn]] void check_health(const Options &o, const Thresholds &)
{
    Rows r(query(kHealthQuery));
    if (r.rows() != 1)
        unknown("replica_router.health returned " + std::to_string(r.rows()) + " rows");
    Status st = severity(r.str(0, "severity"));
    std::string healthy = r.str(0, "healthy_replicas"), registered = r.str(0, "registered_replicas");
    std::vector<std::string> summary{healthy + "/" + registered + " replicas healthy"};
    if (std::optional<double> lag = r.number(0, "max_lag_s"))
        summary.push_back("max lag " + seconds_text(*lag) + " (" + r.str(0, "most_lagging") + ")");
    // now() is the transaction's start: a round begun since reads as a little negative.
    std::optional<double> age = r.number(0, "round_age_s");
    if (age && *age < 0)
        age = 0.0;
    if (r.flag(0, "worker_alive").value_or(false))
        summary.push_back("worker alive");
    else if (r.get(0, "worker_pid") == nullptr)
        summary.push_back("worker not running");
    else
        summary.push_back("worker stalled" + (age ? " (last round " + seconds_text(*age) + " ago)" : ""));
    std::string text = join(summary, ", ");
    if (std::string problems = r.str(0, "problems"); st != OK && !problems.empty())
        text = problems + "; " + text;
    if (o.min_healthy) {
        int n = std::atoi(healthy.c_str());
        if (n < *o.min_healthy) {
            st = CRITICAL;
            text = healthy + " healthy replicas, fewer than --min-healthy " + std::to_string(*o.min_healthy) + "; " + text;
        } else if (st == CRITICAL && r.number(0, "other_critical").value_or(1) == 0) {
            st = WARNING;  // only replicas out of rotation, and enough others serve
        }
    }

    std::vector<std::string> perf{"healthy_replicas=" + healthy + ";;;0;" + registered,
                                  "registered_replicas=" + registered + ";;;0"};
    if (std::optional<double> lag = r.number(0, "max_lag_s"))
        perf.push_back("max_lag=" + num(*lag) + "s;;;0");
    if (age)
        perf.push_back("last_round_age=" + num(*age) + "s;;;0");
    if (std::optional<double> d = r.number(0, "round_s"))
        perf.push_back("last_round_duration=" + num(*d, 6) + "s;;;0");
    finish(st, text, join(perf, " "));
}

} // namespace

int check_main(int argc, char **argv)
{
    Options o = parse_options(argc, argv);
    Thresholds th = parse_thresholds(o);
    connect(o);
    prepare_session(o);
    if (o.command == "lag")
        check_lag(o, th);
    if (o.command == "slots")
        check_slots(o, th);
    if (o.command == "pools")
        check_pools(o, th);
    check_health(o, th);
}

} // namespace rr
