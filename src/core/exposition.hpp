// Prometheus text exposition of the extension's views, from the JSON document
// replica_router.snapshot() returns. One renderer for the SQL function
// metrics() and for replica_router serve's GET /metrics.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>

namespace rr {

std::string render_metrics(const nlohmann::json &snapshot);

// The snapshot's source_role: "primary" (the elected primary), "standby",
// "unelected" (out of recovery, not the primary: an old primary back on its
// old timeline) or "unknown" (not every member polled yet, or not said).
std::string source_role(const nlohmann::json &snapshot);

// Parses the document first; throws on one that is malformed.
std::string render_metrics(const char *snapshot_text);

} // namespace rr
