// The subcommands of replica_router; each parses its own options (argv[0]
// is the subcommand's name as the user wrote it) and returns the exit code.
#pragma once

namespace rr {

int check_main(int argc, char **argv);
int follow_main(int argc, char **argv);
int serve_main(int argc, char **argv);

// "replica_router 1.2", the extension version this program was built with.
void print_version();

} // namespace rr
