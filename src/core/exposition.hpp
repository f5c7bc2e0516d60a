// Prometheus text exposition of the extension's views, from the JSON document
// replica_router.snapshot() returns. One renderer for the SQL function
// metrics() and for replica_router serve's GET /metrics.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>

namespace rr {

std::string render_metrics(const nlohmann::json &snapshot);

// Parses the document first; throws on one that is malformed.
std::string render_metrics(const char *snapshot_text);

} // namespace rr
