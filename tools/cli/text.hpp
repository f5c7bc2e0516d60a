// Text that came from elsewhere (servers, the registry, HTTP clients), made
// safe to print: one line, control characters escaped, values quoted.
#pragma once

#include <string>
#include <vector>

namespace rr {

// libpq messages end in a newline and may span lines: one line, runs of
// blanks and control characters as one space.
std::string one_line(const std::string &s);

// Control characters as \n, \t, \x01: text from the database cannot end a
// log line and forge the next.
std::string escape_controls(const std::string &s);

// A refused value for a message: quoted, with quotes, backslashes, control
// and non-ASCII bytes escaped, at most 200 bytes shown.
std::string quoted(const std::string &s);

std::string join(const std::vector<std::string> &parts, const char *sep);

// The program's name as invoked ("replica_router check", or an old name).
extern std::string g_program;

// A log line on stderr: UTC timestamp, program name, the message with its
// control characters escaped.
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

} // namespace rr
