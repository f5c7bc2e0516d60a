// The status page of replica_router serve (GET /): one self-contained HTML
// document (no external assets), refreshed by the browser every 2 s: every
// node with role, state, lag and a sparkline of its recent lag, connections,
// severity colours, the worker and the age of the data.
#include "exposition.hpp"
#include "serve_snapshot.hpp"

#include <cmath>
#include <cstdio>
#include <string>

namespace rr {

namespace {

using nlohmann::json;

std::string html(const std::string &s)
{
    std::string out;
    for (char c : s) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default:
            out += static_cast<unsigned char>(c) < 0x20 ? ' ' : c;
        }
    }
    return out;
}

std::string jstr(const json &j, const char *k)
{
    auto it = j.find(k);
    if (it == j.end() || it->is_null())
        return "";
    return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string fmt(const char *f, double v)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

// An inline SVG polyline of the lag history (newest right), scaled to its max.
std::string sparkline(const std::deque<double> &pts)
{
    const int w = 160, h = 28;
    double top = 0.001;
    for (double v : pts)
        top = std::max(top, v);
    std::string d;
    std::size_t n = pts.size();
    for (std::size_t i = 0; i < n; ++i) {
        double v = pts[i] < 0 ? 0 : pts[i];
        double x = n > 1 ? static_cast<double>(i) * w / (LagHistory::kPoints - 1) + (LagHistory::kPoints - n) * static_cast<double>(w) / (LagHistory::kPoints - 1) : w;
        double y = h - 2 - (v / top) * (h - 4);
        d += fmt("%.1f", x) + "," + fmt("%.1f", y) + " ";
    }
    return "<svg class=spark width=" + std::to_string(w) + " height=" + std::to_string(h) + " viewBox='0 0 " +
           std::to_string(w) + " " + std::to_string(h) + "'><polyline fill=none stroke='#2563eb' stroke-width=1.5 points='" + d +
           "'/></svg><span class=max>max " + fmt("%.2fs", top) + "</span>";
}

std::string state_class(const std::string &state, const std::string &severity)
{
    if (severity == "critical" || state == "down" || state == "diverged" || state == "foreign" || state == "promoted" || state == "stale")
        return "crit";
    if (severity == "warning" || state == "lagging" || state == "unknown" || state == "self" || state == "slow")
        return "warn";
    if (state == "disabled")
        return "off";
    return "ok";
}

} // namespace

std::string render_page(const Snapshot &snap, const LagHistory &history, double age, double stale_after)
{
    const json &d = snap.data;
    const json &h = d["health"];
    std::string sev = h.is_object() ? jstr(h, "severity") : "";
    std::string out = R"(<!doctype html><html lang=en><head><meta charset=utf-8>
<meta http-equiv=refresh content=2><title>replica_router</title><style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#111;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em} .meta{color:#555;margin-bottom:1em}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0002}
th,td{padding:.35em .7em;border-bottom:1px solid #e5e5e5;text-align:left;vertical-align:middle}
th{background:#f0f0f0;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{background:#dcfce7}.warn{background:#fef3c7}.crit{background:#fee2e2}.off{background:#eee;color:#777}
.badge{display:inline-block;padding:.1em .6em;border-radius:1em;font-weight:600}
.spark{vertical-align:middle}.max{color:#777;font-size:.85em;margin-left:.4em}
.err{color:#991b1b;font-size:.85em;max-width:30em}
</style></head><body>
)";
    out += "<h1>replica_router <span class='badge " + state_class("", sev) + "'>" + html(sev.empty() ? "unknown" : sev) + "</span></h1>";
    out += "<div class=meta>extension " + html(jstr(d, "version")) + " · source is " +
           (source_role(d) == "primary" ? std::string("the primary")
            : source_role(d) == "standby" ? std::string("a <b>standby</b> (its own live view)")
                                          : std::string("<b class=err>not the elected primary</b>")) +
           " · data " + fmt("%.1fs", age) + " old" + (age > stale_after ? " <b class=err>(stale)</b>" : "") + " · worker " +
           (h.is_object() && h.value("worker_alive", false) ? "alive" : "<b class=err>not running</b>") + " · " +
           html(jstr(h, "healthy_replicas")) + "/" + html(jstr(h, "registered_replicas")) + " replicas healthy</div>\n";
    out += "<table><tr><th>node</th><th>role</th><th>state</th><th>zone</th><th>host</th><th>lag</th><th>lag (last " +
           std::to_string(LagHistory::kPoints) + " reads)</th><th>lag bytes</th><th>connections</th><th>last poll</th><th>error</th></tr>\n";
    for (const auto &n : d["nodes"]) {
        std::string node = jstr(n, "node"), role = jstr(n, "role"), state = jstr(n, "state");
        std::string cls = role == "primary" ? "ok" : state_class(state, jstr(n, "lag_severity"));
        out += "<tr><td><b>" + html(node) + "</b></td><td>" + html(role) + "</td><td class=" + cls + ">" + html(state) +
               "</td><td>" + html(jstr(n, "zone")) + "</td><td>" + html(jstr(n, "host")) + ":" + html(jstr(n, "port")) + "</td>";
        out += "<td class=num>" + (n["lag_seconds"].is_number() ? fmt("%.3fs", n["lag_seconds"].get<double>()) : std::string("–")) + "</td><td>";
        if (auto it = history.lag.find(node); it != history.lag.end() && role == "replica")
            out += sparkline(it->second);
        out += "</td><td class=num>" + html(jstr(n, "lag_bytes")) + "</td><td class=num>" + html(jstr(n, "connections")) +
               " / " + html(jstr(n, "max_connections")) + "</td>";
        double last = n["last_poll"].is_number() ? n["last_poll"].get<double>() : NAN;
        out += "<td class=num>" + (std::isnan(last) ? std::string("–") : fmt("%.1fs ago", std::max(0.0, snap.fetched_unix - last))) + "</td>";
        out += "<td class=err>" + html(jstr(n, "error").substr(0, 300)) + "</td></tr>\n";
    }
    out += "</table>\n<p class=meta>JSON: <a href=/health>/health</a> <a href=/stats>/stats</a> <a href=/lag>/lag</a> "
           "<a href=/pool-stats>/pool-stats</a> <a href=/recommend>/recommend</a> · <a href=/metrics>/metrics</a></p></body></html>\n";
    return out;
}

// Before the first snapshot: the error (libpq's or the server's text) escaped.
std::string render_no_data_page(const std::string &error)
{
    return "<!doctype html><title>replica_router</title><p>No data yet: " + html(error) + "</p>";
}

} // namespace rr
