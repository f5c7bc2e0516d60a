# Issue #12: hung replicas out of routing in a few hundred ms (slow), max_lag
# held at answer time, back-off for failing replicas, and the 1.1 findings
# (reasons, health.most_lagging, lag.receive_gap_bytes). A primary and two
# standbys at the extension's default poll_interval (250 ms) and
# slow_poll_floor (100 ms); query_timeout 3 s so that a hung replica stays
# slow (not down) long enough to look at.
#
#   1. s2 hung (SIGSTOP): out of routing while slow, before any timeout; the
#      reason and status say the poll is overdue; SIGCONT before the timeout:
#      routed again at once (no damping, although recovery_polls = 20)
#   2. read load (pgbench -S) on both standbys: live replicas are (almost)
#      never judged slow (the tight figure, zero over 60 s, is bench/detection's)
#   3. replay paused just after a poll (poll_interval 3 s): with max_lag 1 s
#      the replica is out about 1 s after that poll, without a new poll
#   4. the reason for a lagging, replay-paused replica says so
#   5. a stopped replica: no gaps in the lag view; backed off once it has been
#      failing for retry_max_interval (2 s here; status shows the next try),
#      readmitted after its restart;
#      health.most_lagging empty while every lag is 0
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time usleep);
use RRTest qw(wait_until);

my $rr = RRTest->new(
	standbys => [qw(s1 s2)],
	conf => q{
replica_router.poll_interval = '250ms'
replica_router.slow_poll_floor = '100ms'
replica_router.connect_timeout = '2s'
replica_router.query_timeout = '3s'
replica_router.stale_after = '30s'
replica_router.recovery_polls = 20
replica_router.retry_max_interval = '2s'
});
my $primary = $rr->primary;
my ($s1, $s2) = ($rr->standby('s1'), $rr->standby('s2'));
is($rr->states, 's1=healthy,s2=healthy', 'two standbys, healthy');
my @figures;

# Qualification and state of a node, and the reason candidates() gives.
sub cand
{
	my ($node) = @_;
	my ($q, $state, $reason) = split /\|/,
	  $rr->q("SELECT qualified, state, reason FROM replica_router.candidates() WHERE node = '$node'"), -1;
	return ($q eq 't', $state, $reason);
}

# Lets the RTOs settle on a few polls.
$rr->wait_rounds(8);

###############################################################################
# 1. Hung: slow, out of routing before the query timeout; back at once
###############################################################################
{
	my @pids = $rr->freeze($s2);
	my $t0 = time;
	my ($q, $state, $reason);
	my $took = wait_until(10, sub { ($q, $state, $reason) = cand('s2'); !$q }, 0.005);
	ok(defined $took, 'hung s2 left out of routing');
	is($state, 'slow', "hung s2 left out as slow, before the query timeout (3 s) made it down");
	like($reason, qr/^slow: poll overdue by \d+ ms \(unanswered for \d+ ms, limit \d+ ms\)$/,
		"candidates() says why: $reason");
	# Typically 0.34 s; under the 3 s query timeout either way.
	cmp_ok($took // 99, '<', 2.5, sprintf('hung s2 out of routing in %.0f ms (poll 250 ms + RTO >= 100 ms; bound 2.5 s)',
		1000 * ($took // 99)));
	push @figures, sprintf('hung: out of routing %.0f ms after SIGSTOP', 1000 * ($took // -1));
	my $err = $rr->q("SELECT error FROM replica_router.status WHERE node = 's2'");
	like($err, qr/^slow: poll overdue by \d+ ms .*left out of routing until it answers$/, "status.error: $err");
	my %count = %{ $rr->read_counts(20) };
	is($count{s2} // 0, 0, 'slow s2 never recommended (20 calls)');
	is($rr->q("SELECT severity FROM replica_router.lag WHERE node = 's2'"), 'warning', 'slow: lag.severity warning');
	is($rr->q("SELECT routable FROM replica_router.states() WHERE state = 'slow'"), 'f', 'states(): slow is not routable');

	$rr->thaw(@pids);
	my $t1 = time;
	my $back = wait_until(5, sub { ($q, $state, $reason) = cand('s2'); $q }, 0.005);
	ok(defined $back, 's2 answered after SIGCONT: routed again');
	cmp_ok($back // 99, '<', 1.0,
		sprintf('back in %.0f ms: no damping (recovery_polls = 20 would take 5 s)', 1000 * ($back // 99)));
	is($state, 'healthy', 's2 healthy, never down');
	push @figures, sprintf('hung then continued: routed again %.0f ms after SIGCONT', 1000 * ($back // -1));
	like(slurp_file($primary->logfile), qr/replica "s2" is slow: poll unanswered for \d+ ms/, 'the worker logged the slow spell');
}

###############################################################################
# 2. Read load on the standbys: live replicas stay routed
###############################################################################
{
	$primary->command_ok([ 'pgbench', '-i', '-s', '1', '-q', '-h', $primary->host, '-p', $primary->port, 'postgres' ],
		'pgbench -i');
	$primary->wait_for_catchup($_, 'replay', $primary->lsn('insert')) for ($s1, $s2);
	$rr->wait_for(10, "SELECT count(*) = 2 FROM replica_router.status WHERE role = 'replica' AND state = 'healthy'");
	my $log_off = -s $primary->logfile;
	my @load = map {
		IPC::Run::start([ 'pgbench', '-n', '-S', '-c', '4', '-j', '2', '-T', '12', '-h', $_->host, '-p', $_->port,
			'postgres' ], '>', '/dev/null', '2>', '/dev/null')
	} ($s1, $s2);
	usleep(1_000_000);
	my ($samples, $out) = (0, 0);
	my $end = time + 10;
	while (time < $end)
	{
		my $n = $rr->q("SELECT count(*) FROM replica_router.candidates() WHERE role = 'replica' AND NOT qualified");
		$samples++;
		$out += $n;
		usleep(20_000);
	}
	$_->finish for @load;
	my @slow = grep { /is slow:/ } split /\n/, substr(slurp_file($primary->logfile), $log_off);
	note("slow spells under load: " . scalar(@slow) . "\n" . join("\n", @slow));
	push @figures, sprintf('read load (pgbench -S -c 4 on each standby, 10 s): %d slow spells, %d of %d samples with a replica left out',
		scalar(@slow), $out, $samples);
	cmp_ok($out, '<=', $samples * 0.05, "under read load live replicas stay routed ($out of $samples samples out; bound 5%)");
}

###############################################################################
# 3. max_lag at answer time: replay paused just after a poll
###############################################################################
{
	$rr->set_conf('replica_router.poll_interval' => '3s');
	$rr->wait_rounds(2, 15);
	$rr->q("CREATE TABLE IF NOT EXISTS rr_guarantee (i int)");
	$primary->wait_for_catchup($s1, 'replay', $primary->lsn('insert'));
	# Just after a poll of s1: its last_poll moves.
	my $lp = $rr->q("SELECT last_poll FROM replica_router.status WHERE node = 's1'");
	wait_until(10, sub { $rr->q("SELECT last_poll <> '$lp' FROM replica_router.status WHERE node = 's1'") eq 't' }, 0.005)
	  // die 's1 not polled';
	my $t_poll = time;
	$s1->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
	$rr->q('INSERT INTO rr_guarantee VALUES (1)');    # WAL s1 does not replay
	my $lp1 = $rr->q("SELECT last_poll FROM replica_router.status WHERE node = 's1'");
	my $sql = "SELECT c.qualified, c.reason, s.last_poll = '$lp1',"
	  . " extract(epoch FROM clock_timestamp() - s.last_poll)"
	  . " FROM replica_router.candidates('read', max_lag => '1s') c JOIN replica_router.status s USING (node)"
	  . " WHERE c.node = 's1'";
	my ($q, $reason, $same, $age);
	my $violations = 0;
	my $took = wait_until(
		5,
		sub {
			($q, $reason, $same, $age) = split /\|/, $rr->q($sql), -1;
			# Qualified must mean: the poll is under max_lag old.
			$violations++ if $q eq 't' && $age > 1.0;
			$q eq 'f';
		},
		0.005);
	ok(defined $took, 'replay paused after a poll: s1 left out for max_lag 1s');
	is($same, 't', 'left out before the next poll (poll_interval 3 s): the poll\'s age counted');
	like($reason, qr/^lag \d+\.\ds at a poll 1\.\ds ago: over 1\.0s$/, "the reason says so: $reason");
	is($violations, 0, 'never qualified with a poll older than max_lag');
	my $out_at = time - $t_poll;
	cmp_ok($out_at, '<', 2.0, sprintf('out %.2f s after the poll (max_lag 1 s; bound 2 s)', $out_at));
	push @figures, sprintf('replay paused just after a poll: out of routing (max_lag 1 s) %.2f s after that poll', $out_at);
	is($rr->q("SELECT qualified FROM replica_router.candidates('read', max_lag => '10min') WHERE node = 's1'"),
		't', 'within a larger max_lag the same replica qualifies');
}

###############################################################################
# 4. The reason says what was chosen: a lagging, replay-paused replica
###############################################################################
{
	$rr->set_conf('replica_router.poll_interval' => '250ms', 'replica_router.max_lag' => '1s');
	$rr->q("INSERT INTO rr_guarantee VALUES (2)");
	$rr->wait_state('s1', 'lagging', 10) // fail('s1 lagging');
	$rr->q("SELECT replica_router.alter_replica('s2', enabled => false)");
	my ($node, $reason) = split /\|/,
	  $rr->q("SELECT node, reason FROM replica_router.recommend('read', max_lag => '5min')");
	is($node, 's1', 'max_lag 5min: the lagging replica is recommended');
	like($reason, qr/^lagging replica within the requested max_lag 300\.0s \(lag \d+\.\ds at a poll \d+\.\ds ago, replay paused\), round-robin among 1$/,
		"the reason says lagging and replay paused: $reason");
	$rr->q("SELECT replica_router.alter_replica('s2', enabled => true)");
	$s1->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
	$rr->set_conf('replica_router.max_lag' => '30s', 'replica_router.recovery_polls' => '3');
	$rr->wait_for(15, "SELECT count(*) = 2 FROM replica_router.status WHERE role = 'replica' AND state = 'healthy'");
}

###############################################################################
# 5. A stopped replica: no gaps, backed off, readmitted; most_lagging
###############################################################################
{
	$rr->wait_for(10, "SELECT most_lagging IS NULL AND max_replay_lag = '0' FROM replica_router.health")
	  or diag($rr->q('SELECT max_replay_lag, most_lagging FROM replica_router.health'));
	is($rr->q("SELECT coalesce(most_lagging, '<none>') FROM replica_router.health"), '<none>',
		'health.most_lagging names no replica while every lag is 0');

	$s2->stop('fast');
	$rr->wait_state('s2', 'down', 5);
	is($rr->q("SELECT lag_bytes IS NULL AND receive_gap_bytes IS NULL AND replay_gap_bytes IS NULL"
		  . " FROM replica_router.lag WHERE node = 's2'"), 't', 'down s2: lag_bytes, receive_gap_bytes, replay_gap_bytes NULL');
	my $shown = $rr->wait_for(10, "SELECT error ~ 'failures in a row: next try in [0-9.]+ s' FROM replica_router.status WHERE node = 's2'");
	ok(defined $shown, 'status shows the next try of the backed-off replica: '
		  . $rr->q("SELECT error FROM replica_router.status WHERE node = 's2'"));
	my $f0 = $rr->q("SELECT failures FROM replica_router._hints() WHERE node = 's2'");
	my $t0 = time;
	usleep(6_000_000);
	my $tries = $rr->q("SELECT failures FROM replica_router._hints() WHERE node = 's2'") - $f0;
	my $span = time - $t0;
	# Without back-off: one try per 250 ms poll, about 4 a second.
	cmp_ok($tries, '<', $span * 4 * 0.5, sprintf('backed off: %d tries in %.1f s (every poll would be %d)', $tries, $span, $span * 4));
	push @figures, sprintf('stopped replica: %d tries in %.1f s with back-off (%d without)', $tries, $span, $span * 4);
	$s2->start;
	my $back = $rr->wait_state('s2', 'healthy', 40);
	ok(defined $back, sprintf('s2 restarted: healthy again after %.1f s (back-off at most 2 s here)', $back // -1));
}

note("figures:\n" . join("\n", @figures));
$rr->check_log;
$rr->finish;
done_testing();
