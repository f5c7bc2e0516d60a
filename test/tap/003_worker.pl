# The polling worker on a real cluster: a primary with replica_router
# preloaded (heartbeat 2 s) and two streaming standbys s1 and s2.
#   - idle cluster: routing_hints gets no more writes than the heartbeat
#     asks for, counted in the WAL (pg_walinspect) and in pg_stat_user_tables
#   - worker stopped (SIGSTOP): hints go stale after stale_after, reads go
#     to the primary; continued: healthy again
#   - worker terminated (SIGTERM): restarted with a new pid, reads go to a
#     replica again within a few seconds
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use RRTest qw(wait_until);

my $heartbeat = 2;
my $rr = RRTest->new(standbys => [qw(s1 s2)], conf => "replica_router.heartbeat = '${heartbeat}s'\n");
my $primary = $rr->primary;
my $replicas = 2;
is($rr->states, 's1=healthy,s2=healthy', 'primary and two streaming standbys registered, both healthy');

# Last line of a multi-statement answer.
sub last_line { my @l = split /\n/, $_[0]; return $l[-1] // ''; }

# Inserts plus updates of routing_hints as the statistics system shows them.
sub stat_writes
{
	return last_line($rr->q(
		"SELECT pg_stat_clear_snapshot();"
		  . " SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables"
		  . " WHERE relid = 'replica_router.routing_hints'::regclass"));
}

###############################################################################
# 10. Idle cluster: no more hint writes than the heartbeat
###############################################################################
{
	$rr->q('CREATE EXTENSION pg_walinspect');
	my $filenode = $rr->q("SELECT pg_relation_filenode('replica_router.routing_hints')");
	# Tuple writes (insert, update, HOT update) to routing_hints in a WAL range.
	my $wal_writes = sub {
		my ($from, $to) = @_;
		return $rr->q(
			"SELECT count(*) FROM pg_get_wal_records_info('$from', '$to')"
			  . " WHERE resource_manager = 'Heap' AND record_type ~ '^(INSERT|UPDATE|HOT_UPDATE)'"
			  . " AND block_ref ~ 'rel [0-9]+/[0-9]+/$filenode '");
	};

	# Settled: both healthy and at least one heartbeat written since.
	my $writes0 = $rr->q('SELECT hint_writes FROM replica_router.worker_status()');
	ok(defined $rr->wait_for(2 * $heartbeat + 2,
			"SELECT hint_writes > $writes0 FROM replica_router.worker_status()"),
		'the worker writes hints on its heartbeat');

	my $t1 = time;
	my $lsn1 = $rr->q('SELECT pg_current_wal_flush_lsn()');
	my $stat1 = stat_writes();
	my $hw1 = $rr->q('SELECT hint_writes FROM replica_router.worker_status()');
	# The observation window: nothing else writes meanwhile.
	usleep(8_000_000);
	my $t2 = time;
	my $lsn2 = $rr->q('SELECT pg_current_wal_flush_lsn()');
	my $stat2 = stat_writes();
	my $hw2 = $rr->q('SELECT hint_writes FROM replica_router.worker_status()');

	my $window = $t2 - $t1;
	my $bound = int(($window / $heartbeat + 2) * $replicas);
	my $floor = (int($window / $heartbeat) - 2) * $replicas;
	my $wal = $wal_writes->($lsn1, $lsn2);
	my $stats = $stat2 - $stat1;
	note(sprintf('idle %.1f s, heartbeat %d s, %d replicas: %d row writes in the WAL, %d in pg_stat_user_tables,'
			. ' %d hint write transactions (worker_status); bound %d',
			$window, $heartbeat, $replicas, $wal, $stats, $hw2 - $hw1, $bound));
	cmp_ok($wal, '<=', $bound, "idle: routing_hints row writes (WAL) <= (W/heartbeat + 2) x replicas = $bound");
	cmp_ok($wal, '>=', $floor, "idle: the heartbeat does rewrite the hints (>= $floor row writes)");
	# No upper bound on $stats: the worker's table counts reach the statistics
	# lazily (at most once a second, and whatever was pending before the
	# window may land inside it), so they are noted, while the WAL count
	# above and the transaction count below are exact.
	cmp_ok($hw2 - $hw1, '<=', int($window / $heartbeat) + 2, 'idle: hint write transactions <= W/heartbeat + 2');

	# The statistics must show those writes (they are flushed lazily, so allow
	# a few seconds): else monitoring, and autovacuum, never see them.
	my $caught_up = $rr->wait_for(5, 'SELECT n_tup_ins + n_tup_upd >= '
		  . ($stat1 + $wal)
		  . " FROM pg_stat_user_tables WHERE relid = 'replica_router.routing_hints'::regclass");
	ok(defined $caught_up,
		"pg_stat_user_tables shows the worker's hint writes while it runs (>= $wal more within 5 s)")
	  or diag('routing_hints n_tup_ins + n_tup_upd: ' . stat_writes() . " (was $stat1 at the window start;"
		  . " the WAL shows $wal row writes in the window)");
}

###############################################################################
# A stopped (SIGSTOP) worker: its hints go stale, reads go to the primary
###############################################################################
{
	my $pid = $rr->worker_pid;
	$rr->stop_process($pid);
	my $stale = $rr->wait_for(5, "SELECT string_agg(state, ',' ORDER BY node) FROM replica_router.status"
		  . " WHERE role = 'replica'", 'stale,stale');
	ok(defined $stale, 'worker stopped: both replicas stale');
	note(sprintf('hints stale %.2f s after the worker was stopped (stale_after 2 s)', $stale // -1));
	cmp_ok($stale // 0, '>=', 1.5, 'not stale before stale_after (2 s) has nearly passed');
	my ($node, $role, $reason) = split /\|/, ($rr->recommend_many(1, 'read'))[0];
	is("$node|$role", 'primary|primary', 'stale hints: reads go to the primary');
	like($reason, qr/s1 stale.*s2 stale/, "the reason says why: $reason");
	ok(defined $rr->wait_for(3, 'SELECT NOT worker_alive FROM replica_router.health'),
		'replica_router.health: worker_alive false');

	$rr->thaw($pid);
	ok( defined $rr->wait_for(5, "SELECT string_agg(state, ',' ORDER BY node) FROM replica_router.status"
			  . " WHERE role = 'replica'", 'healthy,healthy'),
		'worker continued: both replicas healthy again');
	is($rr->q("SELECT role FROM replica_router.recommend('read')"), 'replica', 'reads go to a replica again');
	is($rr->worker_pid, $pid, 'the same worker');
}

###############################################################################
# 9. The worker restarts after SIGTERM
###############################################################################
{
	my $pid = $rr->worker_pid;
	my $stat_before = stat_writes();
	is($rr->q("SELECT pg_terminate_backend($pid)"), 't', "SIGTERM to the worker (pid $pid)");
	my $t0 = time;
	my $new_pid;
	my $restarted = wait_until(10, sub { $new_pid = $rr->worker_pid; $new_pid ne '' && $new_pid ne $pid });
	ok(defined $restarted, 'a new worker starts');
	isnt($new_pid, $pid, "new worker pid $new_pid");
	note(sprintf('new worker %.2f s after SIGTERM (bgw_restart_time 1 s)', $restarted // -1));
	my $routed = $rr->wait_for(10, "SELECT role FROM replica_router.recommend('read')", 'replica');
	ok(defined $routed, 'recommend(read) returns a replica again');
	note(sprintf('reads routed to a replica again %.2f s after SIGTERM', time - $t0));
	cmp_ok(time - $t0, '<', 5, 'reads routed to a replica within 5 s of SIGTERM');
	ok( defined $rr->wait_for(5, "SELECT worker_pid = $new_pid FROM replica_router.heartbeat"),
		'the new worker writes the heartbeat');
	ok( defined $rr->wait_for(5, "SELECT string_agg(state, ',' ORDER BY node) FROM replica_router.status"
			  . " WHERE role = 'replica'", 'healthy,healthy'),
		'both replicas healthy under the new worker');
	ok($primary->log_contains(qr/replica_router worker started/), 'the log shows the worker start');
	note('routing_hints n_tup_ins + n_tup_upd: ' . $stat_before . ' before the worker exited, '
		  . stat_writes() . ' after (a worker flushes its table statistics when it exits)');
}

$rr->finish;
$rr->check_log;
done_testing();
