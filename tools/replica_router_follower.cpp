// Placeholder until the pgbouncer follower lands; see README.
#include <cstdio>
int main() { std::fputs("replica_router_follower: not implemented yet\n", stderr); return 1; }
