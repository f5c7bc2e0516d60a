// Durations and sizes as PostgreSQL writes them in postgresql.conf: one
// syntax for every option of every subcommand.
#pragma once

#include <optional>
#include <string>

namespace rr {

// Seconds from "500ms", "5s", "1.5min", "2h", "1d", "250us" (PostgreSQL's
// time units, case-sensitive as in postgresql.conf; blanks allowed between
// number and unit). A bare number is in default_unit ("s" or "ms").
// No sign, no inf/nan, nothing after the unit.
std::optional<double> parse_duration(const std::string &s, const char *default_unit = "s");

// Bytes from "512kB", "1GB", "1.5 TB" (powers of 1024 as pg_size_bytes;
// upper or lower case accepted, as pg_size_bytes); a bare number is bytes.
std::optional<double> parse_size(const std::string &s);

// A duration for people: 250ms, 1.5s, 2min.
std::string format_duration(double seconds);

} // namespace rr
