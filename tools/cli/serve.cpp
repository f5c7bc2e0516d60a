#include "subcommands.hpp"
namespace rr { int serve_main(int, char **) { return 2; } }
