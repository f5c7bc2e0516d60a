// Prometheus text exposition of one snapshot document (replica_router.snapshot()):
// the SQL function metrics() and serve's GET /metrics both render it here, so
// the two never differ.
//
// Conventions (https://prometheus.io/docs/practices/naming/): a unit or noun
// on every name; *_up means reachable (a lagging replica that answers is up,
// *_routable says whether reads go there); states as a StateSet (one series
// per state, 1 for the current one, 0 for the others), so a state change
// never leaves a series dangling; timestamps as *_timestamp_seconds;
// counters end in _total. Labels: node, role, zone, slot, state. Read on a
// standby, the series are that node's live view (its worker observes), with
// source_is_primary 0: roles come from polling, so a standby is never
// labelled primary, and the shipped alert rules page only from a primary's
// figures.
#include "exposition.hpp"
#include "states.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <set>
#include <string>
#include <vector>

namespace rr {

namespace {

using nlohmann::json;

std::string label_value(const std::string &v)
{
    std::string out;
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string number(double v)
{
    if (std::isnan(v))
        return "NaN";
    if (std::isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    char buf[64];
    // The shortest text that reads back as the same double (0.1, not 0.10000000000000001).
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}

class Exposition {
  public:
    // Declares a family once (HELP, TYPE), then its samples.
    void family(const std::string &name, const char *type, const char *help)
    {
        out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    }
    void sample(const std::string &name, const std::vector<std::pair<std::string, std::string>> &labels, double v)
    {
        out_ += name;
        bool first = true;
        for (const auto &[k, val] : labels) {
            if (val.empty())
                continue;  // to Prometheus an empty label is no label (a node without a zone)
            out_ += (first ? "{" : ",") + k + "=\"" + label_value(val) + "\"";
            first = false;
        }
        if (!first)
            out_ += '}';
        out_ += ' ' + number(v) + '\n';
    }
    std::string take() { return std::move(out_); }

  private:
    std::string out_;
};

// A key of an object, or null: the document may come from another version
// (operator[] on a const json asserts when the key is missing).
const json &member(const json &j, const char *key)
{
    static const json none;
    if (!j.is_object())
        return none;
    auto it = j.find(key);
    return it != j.end() ? *it : none;
}

double num(const json &j, const char *key, double fallback = NAN)
{
    const json &v = member(j, key);
    return v.is_number() ? v.get<double>() : fallback;
}

std::string str(const json &j, const char *key)
{
    const json &v = member(j, key);
    return v.is_string() ? v.get<std::string>() : "";
}

bool flag(const json &j, const char *key)
{
    const json &v = member(j, key);
    return v.is_boolean() && v.get<bool>();
}

double severity(const std::string &s) { return s == "critical" ? 2 : s == "warning" ? 1 : s == "ok" ? 0 : NAN; }

// Whether a replica in this state answered its last poll in time, by the
// library's state table (a state this build does not know: no).
bool reachable(const std::string &state)
{
    for (const StateInfo &s : kStates)
        if (state == s.name)
            return s.reachable;
    return false;
}

} // namespace

namespace {

// A gauge read from one key of each row.
struct Gauge {
    const char *name, *key, *help;
};

// Per replica: reachable, routable, state (a StateSet), lag and gaps.
void render_replicas(Exposition &e, const json &d)
{
    const json &nodes = member(d, "nodes");
    std::vector<std::string> states;
    std::set<std::string> routable_states;
    if (member(d, "states").is_array())
        for (const auto &s : member(d, "states")) {
            states.push_back(str(s, "state"));
            if (flag(s, "routable"))
                routable_states.insert(str(s, "state"));
        }

    auto replicas = [&](auto fn) {
        for (const auto &n : nodes)
            if (str(n, "role") == "replica")
                fn(n);
    };
    auto node_labels = [&](const json &n) {
        return std::vector<std::pair<std::string, std::string>>{{"node", str(n, "node")}, {"zone", str(n, "zone")}};
    };

    e.family("replica_router_replica_up", "gauge", "1 when the replica answered its last poll (reachable), whatever its lag");
    replicas([&](const json &n) { e.sample("replica_router_replica_up", node_labels(n), reachable(str(n, "state")) ? 1 : 0); });
    e.family("replica_router_replica_routable", "gauge", "1 when reads may go to the replica (state healthy)");
    replicas([&](const json &n) { e.sample("replica_router_replica_routable", node_labels(n), routable_states.count(str(n, "state")) ? 1 : 0); });
    e.family("replica_router_replica_state", "gauge", "StateSet: 1 for the replica's current routing state, 0 for every other state");
    replicas([&](const json &n) {
        for (const std::string &s : states)
            e.sample("replica_router_replica_state", {{"node", str(n, "node")}, {"state", s}}, s == str(n, "state") ? 1 : 0);
    });
    static const Gauge replica_gauges[] = {
        {"replica_router_replica_lag_seconds", "lag_seconds", "Replay lag: how long ago the primary passed the replica's replay position"},
        {"replica_router_replica_lag_bytes", "lag_bytes", "Replay lag in bytes of WAL"},
        {"replica_router_replica_receive_gap_bytes", "receive_gap_bytes", "WAL the replica has not received yet (network)"},
        {"replica_router_replica_replay_gap_bytes", "replay_gap_bytes", "WAL received but not replayed yet (apply)"},
        {"replica_router_replica_last_success_timestamp_seconds", "last_success", "Last successful poll of the replica (UNIX time)"},
    };
    for (const Gauge &g : replica_gauges) {
        e.family(g.name, "gauge", g.help);
        replicas([&](const json &n) {
            double v = num(n, g.key);
            if (std::string(g.key) == "last_success" && reachable(str(n, "state")))
                v = num(n, "last_poll", v);  // the poll shown answered
            if (!std::isnan(v))
                e.sample(g.name, node_labels(n), v);
        });
    }
    e.family("replica_router_replica_replay_paused", "gauge", "1 while replay is paused on the replica");
    replicas([&](const json &n) { e.sample("replica_router_replica_replay_paused", node_labels(n), flag(n, "replay_paused") ? 1 : 0); });
    e.family("replica_router_replica_severity", "gauge", "Lag severity: 0 ok, 1 warning, 2 critical");
    replicas([&](const json &n) {
        double s = severity(str(n, "lag_severity"));
        if (!std::isnan(s))
            e.sample("replica_router_replica_severity", node_labels(n), s);
    });
}

// Per node, primary included: connections and pool use. Each family reads
// one figure of the node row or of its pool; a node without it gives no sample.
void render_nodes(Exposition &e, const json &d)
{
    const json &nodes = member(d, "nodes");
    auto all_labels = [&](const json &n) {
        return std::vector<std::pair<std::string, std::string>>{{"node", str(n, "node")}, {"role", str(n, "role")}, {"zone", str(n, "zone")}};
    };
    auto family = [&](const char *name, const char *help, auto value) {
        e.family(name, "gauge", help);
        for (const auto &n : nodes) {
            double v = value(n, member(n, "pool"));
            if (!std::isnan(v))
                e.sample(name, all_labels(n), v);
        }
    };
    family("replica_router_node_connections", "Client connections on the node",
           [](const json &n, const json &) { return num(n, "connections"); });
    family("replica_router_node_max_connections", "max_connections of the node",
           [](const json &n, const json &) { return num(n, "max_connections"); });
    // The view's percentage has one decimal: 14.3 % is 0.143, not 0.14300000000000002.
    family("replica_router_node_connection_utilisation_ratio",
           "Connections over usable connections (max_connections minus reserved), 0..1",
           [](const json &, const json &pool) { return std::round(num(pool, "utilisation_pct") * 100) / 10000; });
    family("replica_router_node_lock_waiting_connections", "Connections waiting on a lock on the node",
           [](const json &, const json &pool) { return num(pool, "waiting_on_locks"); });
    family("replica_router_pgbouncer_waiting_clients", "Clients waiting in the node's pgbouncer (cl_waiting)",
           [](const json &, const json &pool) { return num(pool, "cl_waiting"); });
    family("replica_router_pool_severity", "Connection-use severity of the node: 0 ok, 1 warning, 2 critical",
           [](const json &, const json &pool) { return severity(str(pool, "severity")); });
}

void render_slots(Exposition &e, const json &d)
{
    const json &slots = member(d, "slots");
    auto slot_labels = [&](const json &s) {
        return std::vector<std::pair<std::string, std::string>>{{"slot", str(s, "slot_name")}, {"replica", str(s, "replica")}};
    };
    static const Gauge slot_gauges[] = {
        {"replica_router_slot_retained_bytes", "retained_bytes", "WAL retained by the slot"},
        {"replica_router_slot_safe_wal_size_bytes", "safe_wal_size_bytes", "WAL that may still be written before the slot is lost (max_slot_wal_keep_size)"},
        {"replica_router_slot_time_until_lost_seconds", "time_until_lost_seconds", "At the WAL rate of the last 5 minutes, time until the slot is lost"},
        {"replica_router_slot_inactive_seconds", "inactive_seconds", "How long the slot has been inactive"},
        {"replica_router_slot_xmin_age_transactions", "xmin_age", "Age of the slot's xmin"},
    };
    e.family("replica_router_slot_active", "gauge", "1 when a walsender streams from the slot");
    if (slots.is_array())
        for (const auto &s : slots)
            e.sample("replica_router_slot_active", slot_labels(s), flag(s, "active") ? 1 : 0);
    for (const Gauge &g : slot_gauges) {
        e.family(g.name, "gauge", g.help);
        if (slots.is_array())
            for (const auto &s : slots)
                if (!std::isnan(num(s, g.key)))
                    e.sample(g.name, slot_labels(s), num(s, g.key));
    }
    e.family("replica_router_slot_wal_status", "gauge", "StateSet: 1 for the slot's wal_status");
    if (slots.is_array())
        for (const auto &s : slots)
            for (const char *st : {"reserved", "extended", "unreserved", "lost"})
                e.sample("replica_router_slot_wal_status", {{"slot", str(s, "slot_name")}, {"wal_status", st}}, str(s, "wal_status") == st ? 1 : 0);
    e.family("replica_router_slot_severity", "gauge", "Slot severity: 0 ok, 1 warning, 2 critical");
    if (slots.is_array())
        for (const auto &s : slots)
            if (!std::isnan(severity(str(s, "severity"))))
                e.sample("replica_router_slot_severity", slot_labels(s), severity(str(s, "severity")));
}

void render_worker(Exposition &e, const json &d)
{
    const json &w = member(d, "worker"), &h = member(d, "health");
    e.family("replica_router_worker_up", "gauge", "1 when the polling worker runs and started a round recently");
    e.sample("replica_router_worker_up", {}, h.is_object() && flag(h, "worker_alive") ? 1 : 0);
    if (w.is_object()) {
        e.family("replica_router_worker_rounds_total", "counter", "Rounds since the worker started");
        e.sample("replica_router_worker_rounds_total", {}, num(w, "rounds", 0));
        e.family("replica_router_worker_polls_total", "counter", "Replica polls since the worker started");
        e.sample("replica_router_worker_polls_total", {}, num(w, "polls", 0));
        e.family("replica_router_worker_poll_errors_total", "counter", "Failed polls since the worker started");
        e.sample("replica_router_worker_poll_errors_total", {}, num(w, "poll_failures", 0));
        e.family("replica_router_worker_write_errors_total", "counter", "Failed hint writes since the worker started");
        e.sample("replica_router_worker_write_errors_total", {}, num(w, "write_failures", 0));
        if (!std::isnan(num(w, "last_round_duration_seconds"))) {
            e.family("replica_router_worker_round_duration_seconds", "gauge", "Duration of the worker's last round");
            e.sample("replica_router_worker_round_duration_seconds", {}, num(w, "last_round_duration_seconds"));
        }
        if (!std::isnan(num(w, "last_round_start"))) {
            e.family("replica_router_worker_last_round_timestamp_seconds", "gauge", "Start of the worker's last round (UNIX time)");
            e.sample("replica_router_worker_last_round_timestamp_seconds", {}, num(w, "last_round_start"));
        }
    }
    if (h.is_object()) {
        e.family("replica_router_cluster_severity", "gauge", "health.severity: 0 ok, 1 warning, 2 critical");
        e.sample("replica_router_cluster_severity", {}, severity(str(h, "severity")));
        e.family("replica_router_healthy_replicas", "gauge", "Replicas in state healthy");
        e.sample("replica_router_healthy_replicas", {}, num(h, "healthy_replicas", 0));
        e.family("replica_router_registered_replicas", "gauge", "Registered replicas");
        e.sample("replica_router_registered_replicas", {}, num(h, "registered_replicas", 0));
    }
}

} // namespace

std::string source_role(const json &d)
{
    std::string role = str(d, "source_role");
    if (role == "primary" || role == "standby" || role == "unelected" || role == "unknown")
        return role;
    return "unknown";
}

std::string render_metrics(const json &d)
{
    Exposition e;
    std::string role = source_role(d);
    e.family("replica_router_info", "gauge", "Always 1: the extension version and the role of the server the figures come from (primary, standby, unelected)");
    e.sample("replica_router_info", {{"version", str(d, "version")}, {"source_role", role}}, 1);
    e.family("replica_router_source_is_primary", "gauge", "1 when the figures come from the elected primary (the shipped alert rules page only then)");
    e.sample("replica_router_source_is_primary", {}, role == "primary" ? 1 : 0);
    render_replicas(e, d);
    render_nodes(e, d);
    render_slots(e, d);
    render_worker(e, d);
    return e.take();
}

std::string render_metrics(const char *snapshot_text)
{
    json d = json::parse(snapshot_text);
    if (!d.is_object() || !member(d, "nodes").is_array())
        throw std::runtime_error("the snapshot document has no nodes");
    return render_metrics(d);
}

} // namespace rr
