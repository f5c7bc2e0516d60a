// Unit tests for the C++-only parts: lag history, classification, routing,
// connection-string handling. No server needed. Prints one line per failed
// check and a closing "unit: N passed, N failed".
#include "backoff.hpp"
#include "conninfo.hpp"
#include "dns_notify.hpp"
#include "lag.hpp"
#include "members.hpp"
#include "poller.hpp"
#include "routing.hpp"
#include "relay.hpp"
#include "rto.hpp"
#include "state_machine.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

int passed = 0, failed = 0;

void check(bool ok, const char *what, int line)
{
    if (ok) {
        ++passed;
    } else {
        ++failed;
        std::printf("FAIL line %d: %s\n", line, what);
    }
}
#define CHECK(x) check((x), #x, __LINE__)

using namespace rr;

constexpr Micros S = 1'000'000;

NodeHint replica(const char *name, NodeState st, Micros lag, Lsn replay, Micros last_success)
{
    NodeHint h{};
    copy_str(h.name, sizeof h.name, name);
    h.state = st;
    h.lag = lag;
    h.replay_lsn = replay;
    h.last_success = last_success;
    h.enabled = true;
    h.has_result = true;
    h.weight = 100;
    h.max_connections = 100;
    return h;
}

void lag_tests()
{
    LsnHistory h;
    // Caught up: zero lag however long the primary has been idle.
    h.record(0, 1000);
    CHECK(h.lag(1000, 1000, 100 * S, 0) == 0);
    CHECK(h.lag(2000, 1000, 100 * S, 0) == 0);

    // The primary passed LSN 1500 when it was first seen at 2000 (t = 10 s).
    h.record(10 * S, 2000);
    h.record(11 * S, 2000); // idle: not a new sample
    CHECK(h.size() == 2);
    h.record(20 * S, 3000);
    CHECK(h.lag(1500, 3000, 25 * S, 0) == 15 * S);
    CHECK(h.lag(2000, 3000, 25 * S, 0) == 5 * S);
    CHECK(h.lag(2999, 3000, 25 * S, 0) == 5 * S);
    CHECK(h.lag(3000, 3000, 25 * S, 0) == 0);
    // As an upper bound: from the last time the primary was seen at or
    // before the replay position (1000 until 0 s, 2000 until 11 s).
    CHECK(h.lag_bound(1500, 3000, 25 * S, 0) == 25 * S);
    CHECK(h.lag_bound(2000, 3000, 25 * S, 0) == 14 * S);
    CHECK(h.lag_bound(2999, 3000, 25 * S, 0) == 14 * S);
    CHECK(h.lag_bound(3000, 3000, 25 * S, 0) == 0);
    CHECK(h.lag_bound(2000, 3000, 25 * S, 0) >= h.lag(2000, 3000, 25 * S, 0));

    // Older than the whole history: bounded by the oldest sample, or the
    // replica's own last replayed commit when that is older.
    CHECK(h.lag(10, 3000, 25 * S, 0) == 25 * S);
    LsnHistory fresh;
    fresh.record(100 * S, 5000);
    CHECK(fresh.lag(10, 5000, 100 * S, 40 * S) == 60 * S);

    // The ring keeps working past its capacity.
    LsnHistory big;
    for (int i = 1; i <= 10000; ++i)
        big.record(i * S, static_cast<Lsn>(i) * 100);
    CHECK(big.size() == 4096);
    CHECK(big.lag(999950, 1000000, 10000 * S, 0) == 0);
    CHECK(big.lag(999900, 1000000, 10000 * S, 0) == 0);
    CHECK(big.lag(999899, 1000000, 10000 * S, 0) == 1 * S);
}

void classify_tests()
{
    // What a poll showed, as one event.
    ClassifyInput in{true, true, true, true, 42, 42, 0, 30 * S, 6 * S, false, false};
    CHECK(event_of(in) == Event::caught_up);
    in.lag = 31 * S;
    CHECK(event_of(in) == Event::over_max_lag);
    in.lag = 29 * S;
    CHECK(event_of(in) == Event::near_max_lag);
    in.lag = 24 * S;
    CHECK(event_of(in) == Event::near_max_lag);
    in.lag = 23 * S;
    CHECK(event_of(in) == Event::caught_up);
    in.lag = 0;
    in.diverged = true;
    CHECK(event_of(in) == Event::diverged);
    in.in_recovery = false;
    CHECK(event_of(in) == Event::promoted);
    in.elected = true;
    CHECK(event_of(in) == Event::elected);
    in.elected = false;
    in.system_id = 7;
    CHECK(event_of(in) == Event::foreign);
    in.last_poll_ok = false;
    CHECK(event_of(in) == Event::poll_failed);
    in.polled = false;
    CHECK(event_of(in) == Event::not_polled);
    in.enabled = false;
    CHECK(event_of(in) == Event::disabled);
    // max_lag 0: any lag is over it; none is caught up.
    ClassifyInput zero{true, true, true, true, 42, 42, 0, 0, 0, false, false};
    CHECK(event_of(zero) == Event::caught_up);
    zero.lag = 1;
    CHECK(event_of(zero) == Event::over_max_lag);

    // Every state x event pair, undamped (streak >= needed) and damped (streak 0).
    using N = NodeState;
    using E = Event;
    const N all[] = {N::unknown, N::healthy, N::lagging, N::down, N::promoted, N::self,
                     N::foreign, N::diverged, N::stale, N::disabled, N::primary};
    for (N from : all) {
        bool bad = from == N::down || from == N::lagging || from == N::promoted || from == N::self ||
                   from == N::foreign || from == N::diverged || from == N::primary;
        CHECK(step(from, E::disabled, 9, 3) == N::disabled);
        CHECK(step(from, E::not_polled, 9, 3) == N::unknown);
        CHECK(step(from, E::poll_failed, 0, 3) == N::down);
        CHECK(step(from, E::foreign, 0, 3) == N::foreign);
        CHECK(step(from, E::promoted, 0, 3) == N::promoted);
        CHECK(step(from, E::elected, 0, 3) == N::primary);
        CHECK(step(from, E::diverged, 0, 3) == N::diverged);
        CHECK(step(from, E::over_max_lag, 0, 3) == N::lagging);
        CHECK(step(from, E::caught_up, 3, 3) == N::healthy);
        CHECK(step(from, E::caught_up, 2, 3) == (bad ? from : N::healthy));
        CHECK(step(from, E::near_max_lag, 3, 3) == (from == N::lagging ? N::lagging : N::healthy));
        CHECK(step(from, E::near_max_lag, 1, 3) == (from == N::lagging ? N::lagging : bad ? from : N::healthy));
        CHECK(target(from, E::caught_up) == N::healthy);
    }
    // Every event has a row for every state.
    for (std::size_t e = 0; e < kEventCount; ++e)
        for (N from : all) {
            bool found = false;
            for (const Transition &t : kTransitions)
                found = found || (t.event == static_cast<E>(e) && (t.from & state_bit(from)) != 0);
            CHECK(found);
        }

    // A replica that flaps every poll never gets its streak up.
    NodeState st = NodeState::down;
    uint32_t streak = 0;
    bool ever_healthy = false;
    for (int i = 0; i < 20; ++i) {
        Event ev = i % 2 == 0 ? Event::caught_up : Event::poll_failed;
        streak = target(st, ev) == NodeState::healthy ? streak + 1 : 0;
        st = step(st, ev, streak, 3);
        ever_healthy = ever_healthy || st == NodeState::healthy;
    }
    CHECK(!ever_healthy);

    // The table of states: names round-trip, severities as documented.
    for (N s : all) {
        NodeState back = N::unknown;
        CHECK(parse_state(state_name(s), &back) && back == s);
        CHECK(state_info(s).state == s);
    }
    CHECK(!parse_state("nonsense", &st));
    CHECK(std::strcmp(severity_name(state_info(N::down).severity), "critical") == 0);
    CHECK(state_info(N::self).severity == Severity::warning);
    CHECK(state_info(N::healthy).routable && !state_info(N::lagging).routable);
    CHECK(state_info(N::lagging).lag_judged && !state_info(N::down).lag_judged);

    NodeHint h = replica("a", NodeState::healthy, 0, 0, 10 * S);
    CHECK(effective_state(h, 12 * S, 3 * S) == NodeState::healthy);
    CHECK(effective_state(h, 14 * S, 3 * S) == NodeState::stale);
    h.state = NodeState::down;
    CHECK(effective_state(h, 14 * S, 3 * S) == NodeState::down);
}

void timeline_tests()
{
    char why[256] = "";
    // The primary is on timeline 3; it left 1 at 0/3000000 and 2 at 0/5000000.
    TimelineHistory h;
    h.current = 3;
    h.complete = true;
    h.count = 2;
    h.steps[0] = TimelineStep{2, 0x5000000};
    h.steps[1] = TimelineStep{1, 0x3000000};
    CHECK(!off_history(h, 3, true, 0x9000000, why, sizeof why));
    CHECK(!off_history(h, 0, true, 0x9000000, why, sizeof why));   // timeline not reported
    CHECK(!off_history(h, 2, true, 0x5000000, why, sizeof why));   // at the switch point: will follow
    CHECK(!off_history(h, 1, true, 0x2000000, why, sizeof why));
    CHECK(off_history(h, 2, true, 0x5000001, why, sizeof why));    // past it: another primary's WAL
    CHECK(std::strcmp(why, "on timeline 2 past 0/5000000, where the primary left that timeline: it follows another "
                      "primary") == 0);
    CHECK(off_history(h, 4, false, 0x100, why, sizeof why));       // newer: always off
    CHECK(std::strstr(why, "timeline 4, newer than the primary's timeline 3") != nullptr);
    // Without a WAL receiver the reported timeline may be an old restartpoint's.
    CHECK(!off_history(h, 2, false, 0x9000000, why, sizeof why));
    // A timeline the primary never had.
    h.steps[0].tli = 7;
    CHECK(off_history(h, 2, true, 0x100, why, sizeof why));
    CHECK(std::strstr(why, "not in the primary's history") != nullptr);
    // The history file's text, as PostgreSQL writes it.
    TimelineHistory parsed;
    CHECK(parse_timeline_history("1\t0/3000000\tno recovery target specified\n\n"
                                 "2\t0/5000000\tat restore point \"x\"\n",
                                 3, parsed));
    CHECK(parsed.complete && parsed.count == 2 && parsed.current == 3);
    CHECK(parsed.steps[1].tli == 2 && parsed.steps[1].end == 0x5000000);
    CHECK(parse_timeline_history("# comment\n  1\tA/B0000000\treason", 2, parsed));
    CHECK(parsed.count == 1 && parsed.steps[0].end == ((Lsn{0xA} << 32) | 0xB0000000));
    CHECK(!parse_timeline_history("1\t0/3000000\n1\t0/4000000\n", 3, parsed));   // not ascending
    CHECK(!parsed.complete && parsed.count == 0);
    CHECK(!parse_timeline_history("1\tgarbage\n", 3, parsed));
    CHECK(!parse_timeline_history("3\t0/3000000\n", 3, parsed));                 // not older than current
    CHECK(parse_timeline_history("", 2, parsed) && parsed.count == 0);

    // History unknown: older timelines are not judged, newer ones still are.
    TimelineHistory unknown;
    CHECK(!off_history(unknown, 5, true, 0x100, why, sizeof why));
    unknown.current = 3;
    CHECK(!off_history(unknown, 1, true, 0x9000000, why, sizeof why));
    CHECK(off_history(unknown, 4, true, 0x100, why, sizeof why));
}

void primary_host_tests()
{
    char h[kHostLen];
    default_primary_host("10.0.0.1, 127.0.0.1", "db1", h, sizeof h);
    CHECK(std::strcmp(h, "10.0.0.1") == 0);
    default_primary_host("*", "db1", h, sizeof h);
    CHECK(std::strcmp(h, "db1") == 0);
    default_primary_host(" 0.0.0.0,::", "db1", h, sizeof h);
    CHECK(std::strcmp(h, "db1") == 0);
    default_primary_host("*", "", h, sizeof h);
    CHECK(std::strcmp(h, "localhost") == 0);
    default_primary_host("", "db1", h, sizeof h);   // unix sockets only
    CHECK(std::strcmp(h, "localhost") == 0);
    default_primary_host(nullptr, "db1", h, sizeof h);
    CHECK(std::strcmp(h, "localhost") == 0);
}

void routing_tests()
{
    Micros now = 100 * S;
    std::vector<NodeHint> nodes = {
        replica("r1", NodeState::healthy, 0, 5000, now),
        replica("r2", NodeState::lagging, 40 * S, 1000, now),
        replica("r3", NodeState::healthy, 1 * S, 4000, now),
        replica("r4", NodeState::down, -1, 0, now - 50 * S),
    };
    RouteRequest req;
    req.max_lag = 30 * S;
    req.now = now;
    req.stale_after = 3 * S;
    char reason[512];

    // Round-robin over the two healthy replicas.
    int a = choose_replica(nodes.data(), nodes.size(), req, 0, reason, sizeof reason);
    int b = choose_replica(nodes.data(), nodes.size(), req, 1, reason, sizeof reason);
    int c = choose_replica(nodes.data(), nodes.size(), req, 2, reason, sizeof reason);
    CHECK(a == 0 && b == 2 && c == 0);
    CHECK(std::strstr(reason, "round-robin among 2") != nullptr);

    // min_lsn excludes r3, which has not replayed far enough.
    req.has_min_lsn = true;
    req.min_lsn = 4500;
    CHECK(choose_replica(nodes.data(), nodes.size(), req, 1, reason, sizeof reason) == 0);
    req.min_lsn = 6000;
    CHECK(choose_replica(nodes.data(), nodes.size(), req, 1, reason, sizeof reason) == -1);
    CHECK(std::strstr(reason, "r1 replayed only to") != nullptr);
    CHECK(std::strstr(reason, "r2 lagging (40.0s)") != nullptr);
    CHECK(std::strstr(reason, "r4 down") != nullptr);
    req.has_min_lsn = false;

    // A per-call max_lag: tighter excludes r3, looser admits the lagging r2.
    req.max_lag = S / 2;
    req.explicit_max_lag = true;
    CHECK(choose_replica(nodes.data(), nodes.size(), req, 1, reason, sizeof reason) == 0);
    req.max_lag = 60 * S;
    int seen_r2 = 0;
    for (uint64_t t = 0; t < 3; ++t)
        seen_r2 += choose_replica(nodes.data(), nodes.size(), req, t, reason, sizeof reason) == 1;
    CHECK(seen_r2 == 1);

    // A stale hint (worker gone quiet) is never chosen.
    req.max_lag = 30 * S;
    req.explicit_max_lag = false;
    req.now = now + 10 * S;
    CHECK(choose_replica(nodes.data(), nodes.size(), req, 0, reason, sizeof reason) == -1);
    CHECK(std::strstr(reason, "r1 stale") != nullptr);

    // Nothing registered.
    CHECK(choose_replica(nullptr, 0, req, 0, reason, sizeof reason) == -1);
    CHECK(std::strstr(reason, "none registered") != nullptr);

    // A tiny reason buffer is truncated, never overrun.
    char tiny[8];
    std::memset(tiny, 'x', sizeof tiny);
    choose_replica(nodes.data(), nodes.size(), req, 0, tiny, sizeof tiny);
    CHECK(std::memchr(tiny, '\0', sizeof tiny) != nullptr);
}

void balancing_tests()
{
    Micros now = 100 * S;
    std::vector<NodeHint> nodes = {
        replica("a", NodeState::healthy, 2 * S, 5000, now),
        replica("b", NodeState::healthy, 1 * S, 5000, now),
        replica("c", NodeState::healthy, 3 * S, 5000, now),
    };
    nodes[0].weight = 100;
    nodes[1].weight = 300;
    nodes[2].weight = 0;  // drained
    nodes[0].connections = 50;
    nodes[1].connections = 80;
    copy_str(nodes[1].zone, sizeof nodes[1].zone, "eu");
    RouteRequest req;
    req.max_lag = 30 * S;
    req.now = now;
    req.stale_after = 3 * S;
    char reason[512];

    // Weighted: 10 000 calls split 1:3 within 2 %, the drained node never.
    req.balance = Balance::weighted;
    int counts[3] = {0, 0, 0};
    for (uint64_t t = 0; t < 10000; ++t)
        counts[choose_replica(nodes.data(), nodes.size(), req, t, reason, sizeof reason)]++;
    CHECK(counts[2] == 0);
    CHECK(counts[0] > 2300 && counts[0] < 2700);
    CHECK(counts[1] > 7300 && counts[1] < 7700);

    // Least lag and least connections.
    req.balance = Balance::least_lag;
    for (uint64_t t = 0; t < 4; ++t)
        CHECK(choose_replica(nodes.data(), nodes.size(), req, t, reason, sizeof reason) == 1);
    CHECK(std::strstr(reason, "least lag") != nullptr);
    req.balance = Balance::least_connections;
    for (uint64_t t = 0; t < 4; ++t)
        CHECK(choose_replica(nodes.data(), nodes.size(), req, t, reason, sizeof reason) == 0);

    // Zones: the zone's replica first, others when the zone has none.
    req.balance = Balance::round_robin;
    req.zone = "eu";
    for (uint64_t t = 0; t < 4; ++t)
        CHECK(choose_replica(nodes.data(), nodes.size(), req, t, reason, sizeof reason) == 1);
    CHECK(std::strstr(reason, "in zone eu") != nullptr);
    int order[8];
    CHECK(rank_replicas(nodes.data(), nodes.size(), req, 0, order, reason, sizeof reason) == 2);
    CHECK(order[0] == 1 && order[1] == 0);
    nodes[1].state = NodeState::down;
    CHECK(choose_replica(nodes.data(), nodes.size(), req, 0, reason, sizeof reason) == 0);
    CHECK(std::strstr(reason, "no qualified replica in zone eu") != nullptr);

    // Names round-trip.
    Balance b;
    Target tg;
    CHECK(parse_balance("least_connections", &b) && b == Balance::least_connections);
    CHECK(!parse_balance("random", &b));
    CHECK(parse_target("any", &tg) && tg == Target::any);
    CHECK(!parse_target("standby", &tg));
}

void conninfo_tests()
{
    CHECK(check_conninfo("host=127.0.0.1 port=5432 dbname=postgres").ok);
    CHECK(!check_conninfo("host=a port").ok);
    CHECK(!check_conninfo("nonsense=1").ok);
    ConninfoCheck bad = check_conninfo("password=s3cr3t oops");
    CHECK(!bad.ok && bad.error.find("s3cr3t") == std::string::npos && bad.error.find("oops") == std::string::npos);

    CHECK(check_conninfo("postgresql://rr:S3cr%zz@db1/x").error.find("S3cr") == std::string::npos);
    CHECK(check_conninfo("postgresql://rr:S3cret@[10.0.0.9/x").error.find("S3cret") == std::string::npos);
    CHECK(mask_conninfo("host=db1 sslpassword=k3y").find("k3y") == std::string::npos);
    std::string masked = mask_conninfo("host=db1 password=s3cr3t user=rr");
    CHECK(masked.find("s3cr3t") == std::string::npos);
    CHECK(masked.find("password=********") != std::string::npos);
    CHECK(masked.find("host='db1'") != std::string::npos);
    CHECK(mask_conninfo("postgresql://rr:s3cr3t@db1:5433/postgres").find("s3cr3t") == std::string::npos);
    CHECK(mask_conninfo("password=x y").find("x") == std::string::npos);

    Endpoint e = conninfo_endpoint("host=db1.example port=5433");
    CHECK(e.host == "db1.example" && e.port == "5433" && e.needs_dns);
    CHECK(!conninfo_endpoint("host=127.0.0.1").needs_dns);
    CHECK(!conninfo_endpoint("host=::1").needs_dns);
    CHECK(!conninfo_endpoint("host=/tmp").needs_dns);
    CHECK(!conninfo_endpoint("host=db1 hostaddr=10.0.0.1").needs_dns);
    CHECK(!conninfo_endpoint("host=a,b port=1,2").needs_dns);
    CHECK(conninfo_endpoint("host=a,b port=1,2").host == "a");
    CHECK(conninfo_endpoint("postgresql://db2:6000/x").port == "6000");
}

} // namespace

// The rules for connection strings set by roles that are not superusers,
// typo checks, secret scrubbing, and the text that reaches shared memory.
void security_tests()
{
    CHECK(check_unprivileged("host=10.0.0.1 password=x").verdict == Privilege::ok);
    CHECK(check_unprivileged("hostaddr=10.0.0.1 password=x").verdict == Privilege::ok);
    CHECK(check_unprivileged("host=10.0.0.1").verdict == Privilege::password_required);
    CHECK(check_unprivileged("host=10.0.0.1 password=''").verdict == Privilege::password_required);
    CHECK(check_unprivileged("host=/tmp password=x").verdict == Privilege::superuser_only);
    CHECK(check_unprivileged("host=@abs password=x").verdict == Privilege::superuser_only);
    CHECK(check_unprivileged("host=a,/tmp password=x").verdict == Privilege::superuser_only);
    CHECK(check_unprivileged("host=a, password=x").verdict == Privilege::superuser_only);
    CHECK(check_unprivileged("host=a, hostaddr=10.0.0.1,10.0.0.2 password=x").verdict == Privilege::ok);
    CHECK(check_unprivileged("port=5432 password=x").verdict == Privilege::superuser_only);
    for (const char *k : {"passfile", "service", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslcrldir",
                          "sslpassword", "krbsrvname", "gsslib"}) {
        std::string c = std::string("host=a password=x ") + k + "=v";
        CHECK(check_unprivileged(c).verdict == Privilege::superuser_only);
    }
    CHECK(check_unprivileged("postgresql://u:pw@10.0.0.1/db").verdict == Privilege::ok);
    CHECK(check_unprivileged("postgresql:///db?host=/tmp&password=x").verdict == Privilege::superuser_only);

    CHECK(!check_conninfo("host=a port=57402password=secret").ok);
    CHECK(check_conninfo("host=a port=57402password=secret").error.find("secret") == std::string::npos);
    CHECK(!check_conninfo("host=a port=0").ok);
    CHECK(!check_conninfo("host=a port=65536").ok);
    CHECK(check_conninfo("host=a,b port=5432,5433").ok);
    CHECK(check_conninfo("host=a,b port=5432,").ok);
    CHECK(!check_conninfo("host=a sslmode=verify").ok);
    CHECK(check_conninfo("host=a sslmode=verify-full target_session_attrs=prefer-standby").ok);
    CHECK(!check_conninfo("host=a connect_timeout=2s").ok);
    CHECK(check_conninfo("host=a connect_timeout=2 keepalives=1").ok);
    CHECK(!check_conninfo("host='a\nb'").ok);
    CHECK(!check_conninfo("host=a\tport=1").ok);
    CHECK(check_conninfo("host=a password=xpassword=y").ok);  // a password may say anything

    CHECK(scrub_secrets("invalid port \"1password=s3cr3t\"", "host=a port=1 password=s3cr3t") ==
          "invalid port \"1password=********\"");
    CHECK(scrub_secrets("no secret here", "host=a") == "no secret here");

    char buf[8];
    copy_str(buf, sizeof buf, "ab\xff\xfe\x01" "c");
    CHECK(std::string(buf) == "ab???c");
    copy_str(buf, sizeof buf, "abcdef\xc3\xa9");  // 'é' does not fit whole: cut before it
    CHECK(std::string(buf) == "abcdef");
    copy_str(buf, sizeof buf, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    CHECK(std::string(buf) == "\xc3\xa9\xc3\xa9\xc3\xa9");
    copy_str(buf, sizeof buf, "\xc3");  // a lone lead byte
    CHECK(std::string(buf) == "?");
    copy_str(buf, sizeof buf, "\xed\xa0\x80");  // a UTF-16 surrogate
    CHECK(std::string(buf) == "???");
    copy_str(buf, sizeof buf, "a\xc2\x85" "b");  // C1 control (NEL)
    CHECK(std::string(buf) == "a?b");
}

// The relay between libpq's descriptor and the peer: bytes pass both ways,
// the peer's only up to the limit (plus the one read ahead that shows it).
void relay_tests()
{
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) == 0);
    int peer = pair[0], libpq_fd = pair[1];
    Relay r;
    CHECK(r.install(libpq_fd));
    CHECK(r.active() && r.peer_fd() != libpq_fd);
    char buf[256];
    std::memset(buf, 'x', sizeof buf);
    CHECK(write(peer, buf, 100) == 100);
    bool eof = false;
    CHECK(r.pull(50, &eof) && !eof);
    CHECK(r.received() == 51);
    CHECK(read(libpq_fd, buf, sizeof buf) == 51);
    CHECK(r.pull(50, &eof) && r.received() == 51);  // nothing more past the limit
    CHECK(r.pull(1000, &eof) && r.received() == 100);
    CHECK(read(libpq_fd, buf, sizeof buf) == 49);
    CHECK(write(libpq_fd, "query", 5) == 5);
    bool blocked = true;
    CHECK(r.push(&blocked) && !blocked);
    CHECK(read(peer, buf, sizeof buf) == 5 && std::memcmp(buf, "query", 5) == 0);
    close(peer);
    CHECK(r.pull(1000, &eof) && eof);
    CHECK(read(libpq_fd, buf, sizeof buf) == 0);  // libpq sees the end too
    r.close();
    close(libpq_fd);
}

// Which hosts libpq would resolve itself (blocking): names without a hostaddr.
void host_list_tests()
{
    HostList h = conninfo_hosts("host=db1.example port=5433");
    CHECK(h.any_dns && h.hosts.size() == 1 && h.needs_dns[0] && h.ports.size() == 1 && h.ports[0] == "5433");
    CHECK(!conninfo_hosts("host=127.0.0.1").any_dns);
    CHECK(!conninfo_hosts("host=::1").any_dns);
    CHECK(!conninfo_hosts("host=/tmp").any_dns);
    CHECK(!conninfo_hosts("host=@abstract").any_dns);
    CHECK(!conninfo_hosts("hostaddr=10.0.0.1").any_dns);
    CHECK(!conninfo_hosts("dbname=x").any_dns);
    CHECK(!conninfo_hosts("host=db1 hostaddr=10.0.0.1").any_dns);
    h = conninfo_hosts("host=a,127.0.0.1,/tmp,b port=1,2,3,4");
    CHECK(h.any_dns && h.hosts.size() == 4 && h.hostaddrs.size() == 4 && h.ports.size() == 4);
    CHECK(h.needs_dns[0] && !h.needs_dns[1] && !h.needs_dns[2] && h.needs_dns[3]);
    h = conninfo_hosts("host=a,b hostaddr=10.0.0.1,");  // b has no address: it needs DNS
    CHECK(h.any_dns && !h.needs_dns[0] && h.needs_dns[1] && h.hostaddrs[0] == "10.0.0.1" && h.hostaddrs[1].empty());
    h = conninfo_hosts("host=a,b hostaddr=10.0.0.1");  // mismatched: libpq's to refuse
    CHECK(!h.any_dns);
    h = conninfo_hosts("postgresql://db1:5432,db2:5433/x");
    CHECK(h.any_dns && h.hosts.size() == 2 && h.ports.size() == 2 && h.ports[1] == "5433");
    CHECK(!conninfo_hosts("host='unterminated").any_dns);
}

Micros wall_us()
{
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// Drives a poller the way the worker does (its socket, the DNS notifier, its
// deadline) until a poll finishes; false if that took longer than `limit`.
// Counts the wake-ups while a lookup was pending in *dns_wakeups.
bool drive(Poller &p, Micros limit, int *dns_wakeups)
{
    Micros until = wall_us() + limit;
    while (wall_us() < until) {
        Micros now = wall_us();
        struct pollfd fds[2];
        int n = 0;
        fds[n++] = pollfd{dns_notify::fd(), POLLIN, 0};
        if (p.wants() != Wants::nothing)
            fds[n++] = pollfd{p.socket(), static_cast<short>(p.wants() == Wants::read ? POLLIN : POLLOUT), 0};
        Micros d = p.deadline() != 0 ? p.deadline() : until;
        int timeout = static_cast<int>(std::max<Micros>(0, std::min(d, until) - now) / 1000 + 1);
        bool resolving = p.resolving();
        ::poll(fds, n, timeout);
        if (resolving)
            ++*dns_wakeups;
        dns_notify::drain();
        if (p.advance(wall_us()))
            return true;
    }
    return false;
}

// Host names are resolved asynchronously and the worker hears of it through
// one eventfd, not a timer; lists of hosts are resolved too, and a host that
// does not resolve is left out as libpq would skip it.
void dns_tests()
{
    CHECK(dns_notify::open() >= 0);
    CHECK(dns_notify::open() == dns_notify::fd());
    CHECK(dns_notify::event() != nullptr);
    CHECK(!dns_notify::drain());
    PollSettings s;
    s.connect_timeout = 10 * S;
    s.query_timeout = 1 * S;

    {
        Poller p("host=localhost port=1 dbname=x user=x", FdBudget{});
        uint64_t gen = p.socket_generation();
        Micros now = wall_us();
        CHECK(!p.start(now, s));
        CHECK(p.resolving() && p.wants() == Wants::nothing);
        CHECK(p.deadline() == now + s.connect_timeout);  // no short recheck timer
        int wakeups = 0;
        CHECK(drive(p, 10 * S, &wakeups));
        CHECK(!p.result().ok);
        CHECK(p.result().error.find("resolv") == std::string::npos);  // it got as far as connecting
        CHECK(wakeups <= 2);
        CHECK(p.socket_generation() != gen);  // it had a socket, and it is gone
        CHECK(p.socket() == -1);
    }
    {
        Poller p("host=does-not-exist.invalid port=1 dbname=x user=x", FdBudget{});
        CHECK(!p.start(wall_us(), s));
        int wakeups = 0;
        CHECK(drive(p, 10 * S, &wakeups));
        CHECK(p.result().error.find("could not resolve host name \"does-not-exist.invalid\"") == 0);
        CHECK(wakeups <= 2);
    }
    for (const char *multi : {"host=does-not-exist.invalid,localhost port=1 dbname=x user=x",
                              "host=does-not-exist.invalid,localhost port=5,1 dbname=x user=x",
                              "host=localhost,127.0.0.1 port=1 dbname=x user=x"}) {
        Poller p(multi, FdBudget{});
        CHECK(!p.start(wall_us(), s));
        CHECK(p.resolving());
        int wakeups = 0;
        CHECK(drive(p, 10 * S, &wakeups));
        const std::string &e = p.result().error;
        // Refused by localhost: libpq took the hostaddr list (a mismatch
        // would say "could not match"), and resolved nothing itself.
        CHECK(e.find("could not match") == std::string::npos && e.find("resolv") == std::string::npos);
        CHECK(e.find("refused") != std::string::npos || e.find("127.0.0.1") != std::string::npos);
        if (e.find("refused") == std::string::npos)
            std::printf("note: %s -> %s\n", multi, e.c_str());
    }
    {
        Poller p("host=does-not-exist.invalid,also-not.invalid port=1 dbname=x user=x", FdBudget{});
        CHECK(!p.start(wall_us(), s));
        int wakeups = 0;
        CHECK(drive(p, 10 * S, &wakeups));
        CHECK(p.result().error.find("could not resolve host name \"does-not-exist.invalid\"") == 0);
    }
    {
        // A socket directory and numeric addresses need no lookup.
        Poller p("host=/nonexistent-dir port=1 dbname=x user=x", FdBudget{});
        bool done = p.start(wall_us(), s);
        CHECK(!p.resolving());
        int wakeups = 0;
        CHECK(done || drive(p, 5 * S, &wakeups));
        CHECK(wakeups == 0);
    }
    {
        // A lookup cancelled by a disconnect must not leave anything behind
        // (ASan checks the parked request is freed once it finishes).
        Poller p("host=localhost port=1 dbname=x user=x", FdBudget{});
        CHECK(!p.start(wall_us(), s));
        p.disconnect();
        CHECK(!p.resolving() && p.deadline() == 0);
    }
}

// Members: which one is the primary.
NodeHint member(const char *name, bool in_recovery, int32_t port, uint32_t tli, Lsn lsn)
{
    NodeHint h = replica(name, NodeState::healthy, 0, 0, 1);
    h.in_recovery = in_recovery;
    copy_str(h.host, sizeof h.host, "127.0.0.1");
    h.port = port;
    h.timeline = static_cast<int32_t>(tli);
    h.current_lsn = in_recovery ? 0 : lsn;
    h.system_id = 42;
    h.may_lead = true;
    return h;
}

void streams_from(NodeHint &r, const char *host, int32_t port)
{
    copy_str(r.sender_host, sizeof r.sender_host, host);
    r.sender_port = port;
}

void member_tests()
{
    LocalServer standby;  // a standby's worker: in recovery
    standby.system_id = 42;
    standby.port = 5434;
    NodeHint a = member("a", false, 5432, 1, 100), b = member("b", true, 5433, 1, 0), c = member("c", true, 5434, 1, 0);
    streams_from(b, "127.0.0.1", 5432);
    streams_from(c, "/tmp/sockets", 5432);  // a socket directory: same machine, matched by port
    const NodeHint *m[] = {&a, &b, &c};
    CHECK(upstream_of(m, 3, b) == 0 && upstream_of(m, 3, c) == 0 && upstream_of(m, 3, a) == -1);
    PrimaryChoice p = choose_primary(m, 3, standby);
    CHECK(p.kind == PrimaryChoice::Kind::member && p.index == 0 && p.followers == 2 && p.timeline == 1);

    // a down: no primary (never a dead member).
    a.failures = 1;
    CHECK(choose_primary(m, 3, standby).kind == PrimaryChoice::Kind::none);
    // b promoted (timeline 2), c re-pointed to it: b, even with a back on timeline 1 (split brain).
    b.in_recovery = false;
    b.timeline = 2;
    b.current_lsn = 90;
    streams_from(c, "127.0.0.1", 5433);
    p = choose_primary(m, 3, standby);
    CHECK(p.kind == PrimaryChoice::Kind::member && p.index == 1 && p.followers == 1);
    a.failures = 0;
    p = choose_primary(m, 3, standby);
    CHECK(p.index == 1 && p.timeline == 2);
    // Another cluster's server out of recovery never qualifies.
    b.system_id = 7;
    p = choose_primary(m, 3, standby);
    CHECK(p.index == 0);
    b.system_id = 42;
    // Disabled members never qualify.
    b.enabled = false;
    CHECK(choose_primary(m, 3, standby).index == 0);
    b.enabled = true;
    // Registered by a role that is not a superuser: never the primary.
    b.may_lead = false;
    CHECK(choose_primary(m, 3, standby).index == 0);
    b.may_lead = true;

    // On the same timeline, the one the replicas follow wins, whatever its LSN.
    NodeHint x = member("x", false, 6000, 3, 10), y = member("y", false, 6001, 3, 500), r = member("r", true, 6002, 3, 0);
    streams_from(r, "127.0.0.1", 6000);
    const NodeHint *m2[] = {&x, &y, &r};
    CHECK(choose_primary(m2, 3, standby).index == 0);
    // No followers: the newest WAL position.
    r.sender_port = 0;
    CHECK(choose_primary(m2, 3, standby).index == 1);

    // This server out of recovery, not registered: a candidate like the others.
    LocalServer primary;
    primary.in_recovery = false;
    primary.system_id = 42;
    primary.port = 6005;
    primary.timeline = 3;
    primary.lsn = 1;
    streams_from(r, "/var/run/postgresql", 6005);
    p = choose_primary(m2, 3, primary);
    CHECK(p.kind == PrimaryChoice::Kind::local && p.index == -1 && p.followers == 1);
    // Registered (the entry is this server): the entry's index, this server's figures.
    x.is_local = true;
    x.port = 6005;
    streams_from(r, "127.0.0.1", 6005);
    p = choose_primary(m2, 3, primary);
    CHECK(p.kind == PrimaryChoice::Kind::local && p.index == 0 && p.lsn == 1);
    // The entry that is this server keeps its name whoever registered it.
    x.may_lead = false;
    p = choose_primary(m2, 3, primary);
    CHECK(p.kind == PrimaryChoice::Kind::local && p.index == 0);
    x.may_lead = true;
    // A newer timeline elsewhere wins over this server (this server is the old primary).
    y.timeline = 4;
    p = choose_primary(m2, 3, primary);
    CHECK(p.kind == PrimaryChoice::Kind::member && p.index == 1);
    CHECK(sender_is_local(r, 6005) && !sender_is_local(r, 6006));
}

// Issue #12: slow replicas (RTO), max_lag at answer time, back-off, reasons.
void rto_tests()
{
    constexpr Micros MS = 1'000;
    RttEstimator e;
    // Nothing learned yet: only the real timeout judges.
    CHECK(e.rto(100 * MS, 1000 * MS) == 1000 * MS);
    e.sample(2 * MS);
    CHECK(e.srtt() == 2 * MS && e.rttvar() == 1 * MS);
    // 2 + 4 x 1 = 6 ms, raised to the floor.
    CHECK(e.rto(100 * MS, 1000 * MS) == 100 * MS);
    CHECK(e.rto(1 * MS, 1000 * MS) == 6 * MS);
    // Steady 2 ms answers: the variation decays, the RTO tends to srtt + granularity.
    for (int i = 0; i < 200; ++i)
        e.sample(2 * MS);
    CHECK(e.srtt() == 2 * MS);
    CHECK(e.rto(0, 1000 * MS) <= 3 * MS + RttEstimator::kGranularity);
    // A jittery replica (1 and 41 ms alternating) earns a larger RTO than its mean.
    RttEstimator j;
    for (int i = 0; i < 200; ++i)
        j.sample((i % 2 == 0 ? 1 : 41) * MS);
    CHECK(j.rto(0, 1000 * MS) > 60 * MS);
    CHECK(j.rto(0, 1000 * MS) < 150 * MS);
    // Never above the ceiling (query_timeout: past it the replica is down).
    RttEstimator big;
    big.sample(900 * MS);
    CHECK(big.rto(100 * MS, 1000 * MS) == 1000 * MS);
    // A negative sample (clock step) counts as 0.
    RttEstimator neg;
    neg.sample(-5 * MS);
    CHECK(neg.srtt() == 0);
    // Overdue only strictly past the RTO, and only with a poll in flight.
    CHECK(!poll_overdue(0, 100 * MS, 10 * S));
    CHECK(!poll_overdue(1 * S, 100 * MS, 1 * S + 100 * MS));
    CHECK(poll_overdue(1 * S, 100 * MS, 1 * S + 101 * MS));
    CHECK(!poll_overdue(1 * S, 0, 5 * S));  // rto 0: not judged

    // A slow replica is left out, with a reason saying by how much, and is
    // routed again the moment its answer clears the flag (no damping).
    NodeHint h = replica("r1", NodeState::healthy, 0, 100, 10 * S);
    h.poll_since = 10 * S;
    h.rto = 100 * MS;
    h.srtt = 2 * MS;
    h.slow = true;
    RouteRequest req;
    req.max_lag = 30 * S;
    req.now = 10 * S + 250 * MS;
    req.stale_after = 3 * S;
    char why[128];
    CHECK(effective_state(h, req.now, req.stale_after) == NodeState::slow);
    CHECK(!qualifies(h, req, why, sizeof why));
    CHECK(std::strcmp(why, "slow: poll overdue by 150 ms (unanswered for 250 ms, limit 100 ms)") == 0);
    char text[512];
    poll_error_text(h, req.now, text, sizeof text);
    CHECK(std::strstr(text, "slow: poll overdue by 150 ms") == text);
    CHECK(std::strstr(text, "left out of routing until it answers") != nullptr);
    h.slow = false;
    h.poll_since = 0;
    CHECK(qualifies(h, req, why, sizeof why));
    // Stale wins over slow; slow never hides down.
    h.slow = true;
    CHECK(effective_state(h, 20 * S, 3 * S) == NodeState::stale);
    h.state = NodeState::down;
    CHECK(effective_state(h, req.now, req.stale_after) == NodeState::down);
    CHECK(std::strcmp(state_name(NodeState::slow), "slow") == 0);
    CHECK(!state_info(NodeState::slow).routable);
}

void backoff_tests()
{
    constexpr Micros I = 250'000;  // poll interval
    // Failing for less than the cap (10 s): retried at the poll interval, so
    // a replica that restarts or was briefly away is readmitted promptly.
    CHECK(retry_delay(1, 0, I, 12345) == 0);
    CHECK(retry_delay(3, 20 * S, I, 12345) == 0);  // the first three failures always
    CHECK(retry_delay(39, 9 * S, I, 12345) == 0);
    // Then about half the time it has been failing, with jitter in [d/2, d],
    // never under the interval, at most the cap.
    for (uint64_t r : {0ULL, 1ULL, 77777ULL, ~0ULL}) {
        Micros d12 = retry_delay(45, 12 * S, I, r);
        CHECK(d12 >= 3 * S && d12 <= 6 * S);
        Micros d60 = retry_delay(60, 60 * S, I, r);
        CHECK(d60 >= 5 * S && d60 <= 10 * S);
        BackoffPolicy p2;
        p2.cap = 2 * S;
        Micros d3 = retry_delay(12, 3 * S, I, r, p2);
        CHECK(d3 >= 1 * S / 2 && d3 <= 3 * S / 2);
        Micros d100 = retry_delay(400, 100 * S, I, r, p2);
        CHECK(d100 >= 1 * S && d100 <= 2 * S);
    }
    // Jitter actually spreads.
    CHECK(retry_delay(80, 30 * S, I, 0) != retry_delay(80, 30 * S, I, 999'999'937ULL));
    // A cap at or below the poll interval: no back-off at all.
    BackoffPolicy none;
    none.cap = I;
    CHECK(retry_delay(100, 100 * S, I, 5, none) == 0);
    // The status text names the next try.
    NodeHint h = replica("r1", NodeState::down, -1, 0, 0);
    copy_str(h.error, sizeof h.error, "FATAL: password authentication failed");
    h.failures = 7;
    h.next_try = 100 * S + 4'500'000;
    char text[512];
    poll_error_text(h, 100 * S, text, sizeof text);
    CHECK(std::strcmp(text, "FATAL: password authentication failed; 7 failures in a row: next try in 4.5 s") == 0);
    poll_error_text(h, 105 * S, text, sizeof text);
    CHECK(std::strcmp(text, "FATAL: password authentication failed") == 0);
}

void max_lag_guarantee_tests()
{
    // Replay paused just after a poll that saw lag 0: the poll's age counts.
    NodeHint h = replica("r1", NodeState::healthy, 0, 1000, 10 * S);
    h.lag_at = 10 * S;
    h.primary_lsn = 1000;
    RouteRequest req;
    req.max_lag = 1 * S;
    req.explicit_max_lag = true;
    req.stale_after = 30 * S;
    req.primary_lsn = 2000;  // the primary wrote since
    char why[128];
    req.now = 10 * S + 900'000;
    CHECK(qualifies(h, req, why, sizeof why));
    req.now = 11 * S + 1;
    CHECK(!qualifies(h, req, why, sizeof why));
    CHECK(std::strcmp(why, "lag 0.0s at a poll 1.0s ago: over 1.0s") == 0);
    // Lag seen plus age: 0.6 s + 0.5 s > 1 s.
    h.lag = 600'000;
    req.now = 10 * S + 500'000;
    CHECK(!qualifies(h, req, why, sizeof why));
    req.now = 10 * S + 300'000;
    CHECK(qualifies(h, req, why, sizeof why));
    // An idle primary: a replica that had replayed everything it has written
    // qualifies however old the poll.
    h.lag = 0;
    req.primary_lsn = 1000;
    req.now = 50 * S;
    req.stale_after = 100 * S;
    CHECK(qualifies(h, req, why, sizeof why));
    // The lag's upper bound counts when the worker gave one (lag 0.3 s,
    // bound 0.6 s: 0.6 + 0.5 > 1).
    h.lag = 300'000;
    h.lag_bound = 600'000;
    h.lag_at = 50 * S;
    req.primary_lsn = 2000;
    req.now = 50 * S + 500'000;
    CHECK(!qualifies(h, req, why, sizeof why));
    CHECK(std::strcmp(why, "lag 0.6s at a poll 0.5s ago: over 1.0s") == 0);
    h.lag = 0;
    h.lag_bound = 0;
    h.lag_at = 10 * S;
    req.primary_lsn = 1000;
    req.now = 50 * S;
    // Unknown primary position (a standby): the age counts.
    req.primary_lsn = 0;
    CHECK(!qualifies(h, req, why, sizeof why));
    // Hints without a poll time (replicated rows): judged by the lag alone.
    h.lag_at = 0;
    CHECK(qualifies(h, req, why, sizeof why));
    // min_lsn against the replay position seen, never the receive position.
    h.lag_at = 10 * S;
    h.receive_lsn = 5000;
    req.primary_lsn = 1000;
    req.has_min_lsn = true;
    req.min_lsn = 1001;
    CHECK(!qualifies(h, req, why, sizeof why));
    CHECK(std::strcmp(why, "replayed only to 0/3E8") == 0);
    req.min_lsn = 1000;
    CHECK(qualifies(h, req, why, sizeof why));
}

void reason_tests()
{
    // The 1.1 report: max_lag 5min picked a replay-paused lagging replica
    // "healthy replica, round-robin among 1". The reason says what it is.
    std::vector<NodeHint> nodes = {replica("r1", NodeState::lagging, 42 * S, 1000, 100 * S),
                                   replica("r2", NodeState::down, -1, 0, 0)};
    nodes[0].replay_paused = true;
    nodes[0].lag_at = 100 * S - 200'000;
    RouteRequest req;
    req.max_lag = 300 * S;
    req.explicit_max_lag = true;
    req.now = 100 * S;
    req.stale_after = 3 * S;
    char reason[512];
    CHECK(choose_replica(nodes.data(), nodes.size(), req, 0, reason, sizeof reason) == 0);
    CHECK(std::strcmp(reason, "lagging replica within the requested max_lag 300.0s (lag 42.0s at a poll 0.2s ago, "
                              "replay paused), round-robin among 1") == 0);
    // A healthy, replaying replica keeps the short reason.
    nodes[0] = replica("r1", NodeState::healthy, 0, 1000, 100 * S);
    CHECK(choose_replica(nodes.data(), nodes.size(), req, 0, reason, sizeof reason) == 0);
    CHECK(std::strcmp(reason, "healthy replica, round-robin among 1") == 0);
    // Healthy but paused: said too.
    nodes[0].replay_paused = true;
    CHECK(choose_replica(nodes.data(), nodes.size(), req, 0, reason, sizeof reason) == 0);
    CHECK(std::strstr(reason, "healthy replica within max_lag 300.0s (lag 0.0s") == reason);
    CHECK(std::strstr(reason, "replay paused), round-robin among 1") != nullptr);
}

int main()
{
    lag_tests();
    classify_tests();
    timeline_tests();
    primary_host_tests();
    routing_tests();
    balancing_tests();
    conninfo_tests();
    security_tests();
    relay_tests();
    host_list_tests();
    dns_tests();
    member_tests();
    rto_tests();
    backoff_tests();
    max_lag_guarantee_tests();
    reason_tests();
    std::printf("unit: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
