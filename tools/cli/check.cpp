// replica_router_check: a check command for cron and Nagios-style monitoring
// (Nagios, Icinga, Sensu, Zabbix external checks). Reads replica_router's
// monitoring views on the primary, prints one status line with performance
// data and exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
//
// Severities come from the views, that is from the replica_router.* threshold
// settings. --warning / --critical override the one threshold each command is
// about (lag, retained WAL, connection use); the command then judges that
// figure itself and keeps the view's other findings. Plain libpq, no server
// headers; every value goes to the server as a query parameter.
#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr const char *kProgram = "replica_router_check";
constexpr const char *kVersion = "1.0";

constexpr const char *kUsage = R"(replica_router_check: Nagios-style check of replica_router's monitoring views

Usage:
  replica_router_check [connection options] COMMAND [--warning X] [--critical Y]

Commands:
  lag      worst replay lag of the registered replicas (replica_router.lag);
           thresholds are durations: 500ms, 5s, 1min (a bare number is seconds);
           defaults: replica_router.lag_warning / lag_critical
  slots    replication slots (replica_router.slot_health); thresholds are WAL
           retained by a slot: 512MB, 1GB (a bare number is bytes); defaults:
           replica_router.slot_retained_warning / slot_retained_critical;
           inactivity, wal_status and xmin age are judged by the view
  pools    connection use per node, primary included (replica_router.pool_state);
           thresholds in percent of usable connections: 80, 90%; defaults:
           replica_router.pool_warning / pool_critical; waiting pgbouncer
           clients and an unreachable pgbouncer warn
  health   the one-row summary (replica_router.health): worst severity of lag,
           slots, pools and the worker; takes no thresholds

Options:
  -w, --warning X          warning threshold (see the commands)
  -c, --critical Y         critical threshold
  -t, --timeout DURATION   limit for connecting and for each query (default: 10s)
  -d, --dbname CONNINFO    database name or libpq connection string / URI
  -h, --host HOST          server host or socket directory
  -p, --port PORT          server port
  -U, --username USER      user name
  -V, --version            print the version and exit
  -?, --help               print this help and exit

Connection options and the PG* environment variables (PGHOST, PGPORT, PGUSER,
PGDATABASE, PGPASSWORD, PGPASSFILE, PGSERVICE, PGSSLMODE, ...) work as in psql;
a connection string given with -d wins over -h, -p and -U. The check never asks
for a password: use ~/.pgpass, PGPASSFILE or a service file.

Output: one line, "REPLICA_ROUTER <COMMAND> <STATUS> - <text> | <perfdata>".
Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (cannot connect, extension
missing, bad arguments, query failed).

Examples:
  replica_router_check -h primary.example -U monitor lag --warning 5s --critical 30s
  replica_router_check -d 'service=primary' slots --warning 1GB --critical 10GB
  replica_router_check pools --warning 80 --critical 90
  replica_router_check health
)";

enum Status { OK = 0, WARNING = 1, CRITICAL = 2, UNKNOWN = 3 };
constexpr const char *kStatusName[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

PGconn *g_conn = nullptr;
std::string g_label = "REPLICA_ROUTER";  // plus the command once known
std::vector<std::string> g_secrets;       // passwords never to print

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

// One line: newlines, other control characters and runs of blanks (from
// libpq messages, or any text the server returns) become one space.
std::string one_line(const std::string &s)
{
    std::string out;
    bool blank = false;
    for (unsigned char ch : s) {
        if (std::isspace(ch) || std::iscntrl(ch)) {
            blank = !out.empty();
            continue;
        }
        if (blank)
            out += ' ';
        blank = false;
        out += static_cast<char>(ch);
    }
    return out;
}

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

[[noreturn]] void bad_usage(const std::string &why) { unknown(why + " (see " + kProgram + " --help)"); }

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

std::string join(const std::vector<std::string> &parts, const char *sep)
{
    std::string out;
    for (const std::string &p : parts)
        out += (out.empty() ? "" : sep) + p;
    return out;
}

// ---------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------

struct Options {
    std::string command;
    std::optional<std::string> dbname, host, port, user, warning, critical;
    double timeout_s = 10;
    bool timeout_given = false;
};

std::optional<double> parse_number(const std::string &s, std::string *unit)
{
    const char *p = s.c_str();
    while (std::isspace(static_cast<unsigned char>(*p)))
        ++p;
    if (!std::isdigit(static_cast<unsigned char>(*p)) && *p != '.')
        return std::nullopt;  // no sign, no "inf", no "nan"
    char *end = nullptr;
    errno = 0;
    double v = std::strtod(p, &end);
    if (end == p || errno != 0 || !std::isfinite(v))
        return std::nullopt;
    *unit = end;
    unit->erase(0, unit->find_first_not_of(' '));
    unit->erase(unit->find_last_not_of(' ') + 1);
    std::transform(unit->begin(), unit->end(), unit->begin(), [](unsigned char ch) { return std::tolower(ch); });
    return v;
}

// Seconds from 500ms, 5s, 1.5min, 2h, 1d; a bare number is seconds.
std::optional<double> parse_duration(const std::string &s)
{
    static const struct {
        const char *unit;
        double seconds;
    } units[] = {{"", 1},     {"s", 1},     {"sec", 1},     {"us", 1e-6}, {"ms", 1e-3},
                 {"min", 60}, {"h", 3600},  {"hour", 3600}, {"d", 86400}, {"day", 86400}};
    std::string unit;
    std::optional<double> v = parse_number(s, &unit);
    if (v)
        for (const auto &u : units)
            if (unit == u.unit)
                return *v * u.seconds;
    return std::nullopt;
}

// Bytes from 512kB, 1GB, 1.5 TB (powers of 1024, as pg_size_bytes); a bare number is bytes.
std::optional<double> parse_size(const std::string &s)
{
    static const struct {
        const char *unit;
        double bytes;
    } units[] = {{"", 1},        {"b", 1},          {"bytes", 1},           {"k", 1024.0},
                 {"kb", 1024.0}, {"m", 1048576.0},  {"mb", 1048576.0},      {"g", 1073741824.0},
                 {"gb", 1073741824.0}, {"t", 1099511627776.0}, {"tb", 1099511627776.0}};
    std::string unit;
    std::optional<double> v = parse_number(s, &unit);
    if (v)
        for (const auto &u : units)
            if (unit == u.unit && *v * u.bytes < 9.0e18)
                return std::floor(*v * u.bytes);
    return std::nullopt;
}

// Percent from 80, 85.5, 90%.
std::optional<double> parse_percent(const std::string &s)
{
    std::string unit;
    std::optional<double> v = parse_number(s, &unit);
    if (v && (unit.empty() || unit == "%") && *v <= 100)
        return v;
    return std::nullopt;
}

Options parse_options(int argc, char **argv)
{
    Options o;
    struct Opt {
        char short_name;
        const char *long_name;
        std::optional<std::string> Options::*field;
    };
    static const Opt opts[] = {
        {'w', "warning", &Options::warning}, {'c', "critical", &Options::critical},
        {'d', "dbname", &Options::dbname},   {'h', "host", &Options::host},
        {'p', "port", &Options::port},       {'U', "username", &Options::user},
    };
    std::optional<std::string> timeout;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--help" || arg == "-?") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        }
        if (arg == "--version" || arg == "-V") {
            std::printf("%s %s\n", kProgram, kVersion);
            std::exit(0);
        }
        if (arg.size() < 2 || arg[0] != '-') {
            if (!o.command.empty())
                bad_usage("unexpected argument \"" + arg + "\" after the command " + o.command);
            o.command = arg;
            if (arg == "lag" || arg == "slots" || arg == "pools" || arg == "health") {
                g_label = "REPLICA_ROUTER ";
                for (char ch : arg)
                    g_label += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            }
            continue;
        }
        // --name VALUE, --name=VALUE, -x VALUE or -xVALUE
        std::optional<std::string> value;
        std::string name;
        if (arg.rfind("--", 0) == 0) {
            std::size_t eq = arg.find('=');
            name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
            if (eq != std::string::npos)
                value = arg.substr(eq + 1);
        } else {
            name = arg.substr(1, 1);
            if (arg.size() > 2)
                value = arg.substr(2);
        }
        const Opt *found = nullptr;
        for (const Opt &opt : opts)
            if (name == opt.long_name || (name.size() == 1 && name[0] == opt.short_name))
                found = &opt;
        bool is_timeout = name == "timeout" || name == "t";
        if (found == nullptr && !is_timeout)
            bad_usage("unknown option \"" + arg.substr(0, arg.find('=')) + "\"");
        if (!value) {
            if (i + 1 >= argc)
                bad_usage("option \"" + arg + "\" needs a value");
            value = argv[++i];
        }
        if (is_timeout)
            timeout = value;
        else
            o.*(found->field) = value;
    }
    if (o.command.empty())
        bad_usage("no command given: lag, slots, pools or health");
    if (o.command != "lag" && o.command != "slots" && o.command != "pools" && o.command != "health")
        bad_usage("unknown command \"" + o.command + "\": use lag, slots, pools or health");
    if (timeout) {
        std::optional<double> t = parse_duration(*timeout);
        if (!t || *t < 1 || *t > 86400)
            bad_usage("invalid --timeout \"" + *timeout + "\": a duration from 1s to 1d, e.g. 10s");
        o.timeout_s = *t;
        o.timeout_given = true;
    }
    if (o.command == "health" && (o.warning || o.critical))
        bad_usage("health takes no thresholds: it reports the views' severities");
    return o;
}

// Parses --warning / --critical for the command; empty when not given.
struct Thresholds {
    std::optional<double> warning, critical;
};

Thresholds parse_thresholds(const Options &o)
{
    Thresholds t;
    auto parse = [&](const std::optional<std::string> &arg, const char *which) -> std::optional<double> {
        if (!arg)
            return std::nullopt;
        std::optional<double> v;
        const char *expect = "";
        if (o.command == "lag")
            v = parse_duration(*arg), expect = "a duration such as 500ms, 5s or 1min";
        else if (o.command == "slots")
            v = parse_size(*arg), expect = "a size such as 512MB or 1GB";
        else
            v = parse_percent(*arg), expect = "a percentage from 0 to 100";
        if (!v)
            bad_usage(std::string("invalid --") + which + " \"" + *arg + "\": " + expect);
        return v;
    };
    t.warning = parse(o.warning, "warning");
    t.critical = parse(o.critical, "critical");
    if (t.warning && t.critical && *t.warning > *t.critical)
        bad_usage("--warning " + *o.warning + " exceeds --critical " + *o.critical);
    return t;
}

// ---------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------

bool looks_like_conninfo(const std::string &s)
{
    return s.find('=') != std::string::npos || s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0;
}

// libpq's parse errors quote pieces of the string, which may hold a password.
std::string conninfo_error(const std::string &conninfo, const char *libpq_message)
{
    std::string msg = one_line(libpq_message != nullptr ? libpq_message : "invalid syntax");
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
        char *err = nullptr;
        PQconninfoOption *parsed = PQconninfoParse(o.dbname->c_str(), &err);
        if (parsed == nullptr) {
            std::string why = conninfo_error(*o.dbname, err);
            PQfreemem(err);
            unknown(why);
        }
        for (PQconninfoOption *opt = parsed; opt->keyword != nullptr; ++opt)
            if (std::strcmp(opt->keyword, "password") == 0 && opt->val != nullptr)
                g_secrets.push_back(opt->val);
        PQconninfoFree(parsed);
    }

    // As psql: host, port and user first, so a connection string in dbname
    // overrides them; then our own settings.
    std::vector<const char *> keys, values;
    auto add = [&](const char *key, const char *value) {  // value outlives the connect
        keys.push_back(key);
        values.push_back(value);
    };
    std::string timeout = std::to_string(static_cast<long>(std::ceil(o.timeout_s)));
    if (o.host)
        add("host", o.host->c_str());
    if (o.port)
        add("port", o.port->c_str());
    if (o.user)
        add("user", o.user->c_str());
    if (!o.timeout_given && std::getenv("PGCONNECT_TIMEOUT") == nullptr)
        add("connect_timeout", timeout.c_str());  // a default the connection string may override
    if (o.dbname)
        add("dbname", o.dbname->c_str());
    if (o.timeout_given)
        add("connect_timeout", timeout.c_str());
    add("fallback_application_name", kProgram);
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

// A query's rows, read by column name.
class Rows {
public:
    explicit Rows(PGresult *res) : res_(res) {}
    ~Rows() { PQclear(res_); }
    Rows(const Rows &) = delete;
    Rows &operator=(const Rows &) = delete;

    int size() const { return PQntuples(res_); }
    const char *get(int row, const char *col) const
    {
        int c = PQfnumber(res_, col);
        return c < 0 || PQgetisnull(res_, row, c) ? nullptr : PQgetvalue(res_, row, c);
    }
    std::string text(int row, const char *col) const
    {
        const char *v = get(row, col);
        return v != nullptr ? v : "";
    }
    std::optional<double> number(int row, const char *col) const
    {
        const char *v = get(row, col);
        if (v == nullptr)
            return std::nullopt;
        return std::strtod(v, nullptr);
    }
    std::optional<bool> flag(int row, const char *col) const
    {
        const char *v = get(row, col);
        if (v == nullptr)
            return std::nullopt;
        return v[0] == 't';
    }

private:
    PGresult *res_;
};

// Runs a query with text parameters (nullopt is SQL NULL); any error is UNKNOWN.
PGresult *query(const char *sql, const std::vector<std::optional<std::string>> &params = {})
{
    std::vector<const char *> values;
    for (const auto &p : params)
        values.push_back(p ? p->c_str() : nullptr);
    PGresult *res = PQexecParams(g_conn, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                                 nullptr, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        std::string why = res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(g_conn);
        PQclear(res);
        unknown("query failed: " + one_line(why));
    }
    return res;
}

void prepare_session(const Options &o)
{
    std::string ms = std::to_string(static_cast<long long>(o.timeout_s * 1000));
    PQclear(query("SELECT pg_catalog.set_config('search_path', 'pg_catalog', false),"
                  " pg_catalog.set_config('statement_timeout', $1, false)",
                  {ms}));
    Rows ext(query("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'replica_router'"));
    if (ext.size() == 0)
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

// With thresholds given, the states whose lag counts (replica_router.states():
// healthy, lagging) are judged here as the view does (lag at or over
// critical; lag at or over warning, or replay paused); other states keep the
// view's severity.
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
    for (int i = 0; i < r.size(); ++i) {
        std::string node = r.text(i, "node"), state = r.text(i, "state");
        std::optional<double> lag = r.number(i, "replay_lag_seconds");
        double warn = r.number(i, "warn_s").value_or(0), crit = r.number(i, "crit_s").value_or(0);
        Status st = severity(r.text(i, "severity"));
        std::string text = node;
        bool streaming = r.text(i, "lag_judged") == "t";  // healthy or lagging: the lag means something
        if (!streaming)
            lag.reset();  // the view keeps the last figure of a replica it cannot reach
        if (streaming) {
            std::vector<std::string> parts;
            if (lag && *lag >= crit)
                parts.push_back("lag " + seconds_text(*lag) + " (critical " + r.text(i, "crit_text") + ")");
            else if (lag && *lag >= warn)
                parts.push_back("lag " + seconds_text(*lag) + " (warning " + r.text(i, "warn_text") + ")");
            if (r.flag(i, "replay_paused").value_or(false)) {
                parts.push_back("replay paused");
                if (lag && *lag < warn)
                    parts.push_back("lag " + seconds_text(*lag));
            }
            text += " " + (parts.empty() ? state : join(parts, ", "));
        } else {
            text += " " + state;
            if (std::string err = r.text(i, "error"); !err.empty())
                text += " (" + (err.size() > 100 ? err.substr(0, 100) + "..." : err) + ")";
        }
        items.push_back({st, node, text});
        if (lag && (!max_lag || *lag > *max_lag))
            max_lag = lag, max_node = node;
        perf.push_back(perf_label(node) + "=" + (lag ? num(*lag) + "s" : std::string("U")) + ";" + num(warn) + ";" +
                       num(crit) + ";0");
    }
    std::string ok = r.size() == 0 ? "no replicas registered"
                                   : std::to_string(r.size()) + (r.size() == 1 ? " replica" : " replicas") +
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
    for (int i = 0; i < r.size(); ++i) {
        std::string slot = r.text(i, "slot_name"), replica = r.text(i, "replica");
        std::optional<double> retained = r.number(i, "retained_bytes");
        double warn = r.number(i, "warn_b").value_or(0), crit = r.number(i, "crit_b").value_or(0);
        std::vector<std::string> parts;
        if (retained && *retained >= crit)
            parts.push_back("retains " + r.text(i, "retained") + " (critical " + r.text(i, "crit_text") + ")");
        else if (retained && *retained >= warn)
            parts.push_back("retains " + r.text(i, "retained") + " (warning " + r.text(i, "warn_text") + ")");
        // The view's reasons, but for retained WAL, judged above.
        std::string reasons = r.text(i, "reason");
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
        items.push_back({severity(r.text(i, "severity")), slot, text});
        if (retained && (!most || *retained > *most))
            most = retained, most_slot = slot, most_pretty = r.text(i, "retained");
        perf.push_back(perf_label(slot) + "=" + (retained ? num(*retained, 0) + "B" : std::string("U")) + ";" +
                       num(warn, 0) + ";" + num(crit, 0) + ";0");
    }
    std::string ok = r.size() == 0 ? "no replication slots"
                                   : std::to_string(r.size()) + (r.size() == 1 ? " slot" : " slots") +
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

[[noreturn]] void check_pools(const Options &, const Thresholds &th)
{
    Rows r(query(kPoolsQuery, {param(th.warning), param(th.critical)}));
    std::vector<Item> items;
    std::vector<std::string> perf;
    std::optional<double> busiest;
    std::string busiest_text;
    for (int i = 0; i < r.size(); ++i) {
        std::string node = r.text(i, "node");
        std::optional<double> used = r.number(i, "used_pct");
        double warn = r.number(i, "warn_pct").value_or(0), crit = r.number(i, "crit_pct").value_or(0);
        std::string counts = r.text(i, "connections") + "/" + r.text(i, "usable_connections") + " connections (" +
                             r.text(i, "utilisation_pct") + "%";
        std::vector<std::string> parts;
        if (used && *used >= crit)
            parts.push_back(counts + ", critical " + num(crit) + "%)");
        else if (used && *used >= warn)
            parts.push_back(counts + ", warning " + num(warn) + "%)");
        std::optional<double> waiting = r.number(i, "cl_waiting");
        if (waiting && *waiting > 0)
            parts.push_back(num(*waiting, 0) + (*waiting == 1 ? " client" : " clients") + " waiting in pgbouncer");
        if (!r.flag(i, "pgbouncer_ok").value_or(true)) {
            std::string err = r.text(i, "pgbouncer_error");
            parts.push_back("pgbouncer unreachable" + (err.empty() ? "" : " (" + err.substr(0, 100) + ")"));
        }
        Status st = severity(r.text(i, "severity"));
        items.push_back({st, node, node + " " + (parts.empty() ? r.text(i, "severity") : join(parts, ", "))});
        if (used && (!busiest || *used > *busiest))
            busiest = used, busiest_text = node + " " + counts + ")";
        perf.push_back(perf_label(node) + "=" + (used ? num(*used, 1) + "%" : std::string("U")) + ";" + num(warn) +
                       ";" + num(crit) + ";0;100");
        if (waiting)
            perf.push_back(perf_label(node + "_cl_waiting") + "=" + num(*waiting, 0) + ";;;0");
    }
    std::string ok = std::to_string(r.size()) + (r.size() == 1 ? " node" : " nodes") +
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
              FROM replica_router.pool_state WHERE severity <> 'ok') x) AS problems
  FROM replica_router.health h)";

[[noreturn]] void check_health(const Options &, const Thresholds &)
{
    Rows r(query(kHealthQuery));
    if (r.size() != 1)
        unknown("replica_router.health returned " + std::to_string(r.size()) + " rows");
    Status st = severity(r.text(0, "severity"));
    std::string healthy = r.text(0, "healthy_replicas"), registered = r.text(0, "registered_replicas");
    std::vector<std::string> summary{healthy + "/" + registered + " replicas healthy"};
    if (std::optional<double> lag = r.number(0, "max_lag_s"))
        summary.push_back("max lag " + seconds_text(*lag) + " (" + r.text(0, "most_lagging") + ")");
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
    if (std::string problems = r.text(0, "problems"); st != OK && !problems.empty())
        text = problems + "; " + text;

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

int main(int argc, char **argv)
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
