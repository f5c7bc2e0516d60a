// Placeholder until the check command lands; see README.
#include <cstdio>
int main() { std::puts("UNKNOWN - replica_router_check is not implemented yet"); return 3; }
