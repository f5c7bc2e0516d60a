// Output helpers shared by the subcommands (see text.hpp).
#include "text.hpp"

#include <cctype>
#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace rr {

std::string g_program = "replica_router";

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

namespace {

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

void append_escape(std::string &out, unsigned char c)
{
    switch (c) {
    case '\n':
        out += "\\n";
        break;
    case '\r':
        out += "\\r";
        break;
    case '\t':
        out += "\\t";
        break;
    default: {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        out += buf;
    }
    }
}

} // namespace

std::string escape_controls(const std::string &s)
{
    std::string out;
    for (unsigned char c : s) {
        if (is_control(c))
            append_escape(out, c);
        else
            out += static_cast<char>(c);
    }
    return out;
}

std::string quoted(const std::string &s)
{
    constexpr std::size_t kShown = 200;
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size() && i < kShown; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (is_control(c) || c >= 0x80) {
            append_escape(out, c);
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + (s.size() > kShown ? "...\"" : "\"");
}

std::string join(const std::vector<std::string> &parts, const char *sep)
{
    std::string out;
    for (const std::string &p : parts)
        out += (out.empty() ? "" : sep) + p;
    return out;
}

void say(const char *fmt, ...)
{
    char stamp[40];
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm utc{};
    gmtime_r(&ts.tv_sec, &utc);
    std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1'000'000);
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "%s %s: %s\n", stamp, g_program.c_str(), escape_controls(msg).c_str());
    std::fflush(stderr);
}

} // namespace rr
