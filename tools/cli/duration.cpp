// PostgreSQL-style durations and sizes (see duration.hpp).
#include "duration.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace rr {

namespace {

// The number and the unit after it; nullopt when the text is not a plain
// non-negative finite number followed by an optional unit.
std::optional<double> split_number(const std::string &s, std::string *unit)
{
    std::size_t i = s.find_first_not_of(' ');
    if (i == std::string::npos || !(std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.'))
        return std::nullopt;  // no sign, no "inf", no "nan"
    const char *p = s.c_str() + i;
    char *end = nullptr;
    errno = 0;
    double v = std::strtod(p, &end);
    if (end == p || errno != 0 || !std::isfinite(v))
        return std::nullopt;
    *unit = end;
    unit->erase(0, unit->find_first_not_of(' '));
    unit->erase(unit->find_last_not_of(' ') + 1);
    // strtod reads hexadecimal and exponents: PostgreSQL's GUC parser takes
    // exponents too, but a hex number is no duration.
    if (std::string(p, static_cast<const char *>(end)).find_first_of("xX") != std::string::npos)
        return std::nullopt;
    return v;
}

} // namespace

std::optional<double> parse_duration(const std::string &s, const char *default_unit)
{
    static const struct {
        const char *unit;
        double seconds;
    } units[] = {{"us", 1e-6}, {"ms", 1e-3}, {"s", 1}, {"min", 60}, {"h", 3600}, {"d", 86400}};
    std::string unit;
    std::optional<double> v = split_number(s, &unit);
    if (!v)
        return std::nullopt;
    if (unit.empty())
        unit = default_unit;
    for (const auto &u : units)
        if (unit == u.unit)
            return *v * u.seconds;
    return std::nullopt;
}

std::optional<double> parse_size(const std::string &s)
{
    static const struct {
        const char *unit;
        double bytes;
    } units[] = {{"", 1},         {"b", 1},         {"bytes", 1},         {"kb", 1024.0},
                 {"mb", 1048576.0}, {"gb", 1073741824.0}, {"tb", 1099511627776.0}, {"pb", 1125899906842624.0}};
    std::string unit;
    std::optional<double> v = split_number(s, &unit);
    if (!v)
        return std::nullopt;
    std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char ch) { return std::tolower(ch); });
    for (const auto &u : units)
        if (unit == u.unit && *v * u.bytes < 9.0e18)
            return std::floor(*v * u.bytes);
    return std::nullopt;
}

std::string format_duration(double seconds)
{
    char buf[64];
    if (seconds < 1)
        std::snprintf(buf, sizeof buf, "%.0fms", seconds * 1000);
    else if (seconds < 120)
        std::snprintf(buf, sizeof buf, "%.3gs", seconds);
    else
        std::snprintf(buf, sizeof buf, "%.3gmin", seconds / 60);
    return buf;
}

} // namespace rr
