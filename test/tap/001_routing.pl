# Routing on a real cluster: a primary with replica_router preloaded and two
# streaming standbys s1 and s2 (a third, s3, joins later).
#   - both healthy: reads alternate between them, writes go to the primary
#   - idle primary: lag is 0 and stays 0 (it does not grow with idle time)
#   - replay paused on s1 while the primary writes: s1 lagging and never
#     recommended; replay resumed: healthy and recommended again
#   - registry changes while running: add (healthy within a second),
#     disable, re-enable, remove
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use RRTest qw(wait_until);

my $rr = RRTest->new(standbys => [qw(s1 s2)]);
my $primary = $rr->primary;
my ($s1, $s2) = map { $rr->standby($_) } qw(s1 s2);
is($rr->states, 's1=healthy,s2=healthy', 'primary and two streaming standbys registered, both healthy');

# Node names of $n recommend('read') calls.
sub read_nodes
{
	my ($n) = @_;
	return map { (split /\|/)[0] } $rr->recommend_many($n, 'read');
}

###############################################################################
# 1. Both healthy: round-robin over the two, writes to the primary
###############################################################################
{
	my @nodes = read_nodes(10);
	my %count;
	$count{$_}++ for @nodes;
	note('recommend(read) x10: ' . join(' ', @nodes));
	is(join(',', sort keys %count), 's1,s2', 'round-robin: only s1 and s2 are recommended for reads');
	ok(abs(($count{s1} // 0) - ($count{s2} // 0)) <= 1,
		"round-robin: counts within 1 (s1 $count{s1}, s2 $count{s2})");
	my $repeats = grep { $nodes[$_] eq $nodes[ $_ - 1 ] } 1 .. $#nodes;
	is($repeats, 0, 'round-robin: consecutive calls alternate');

	my ($node, $role, $reason) = split /\|/, ($rr->recommend_many(1, 'read'))[0];
	is($role, 'replica', 'recommend(read): role replica');
	like($reason, qr/healthy replica, round-robin among 2/, "recommend(read) says why: $reason");

	is( $rr->q("SELECT node || '|' || role || '|' || port FROM replica_router.recommend('write')"),
		'primary|primary|' . $primary->port,
		'recommend(write): the primary (role primary, its port)');

	my %port = map { $_ => $rr->standby($_)->port } qw(s1 s2);
	my @rows = split /\n/, $rr->q(
		"SELECT node || '|' || port FROM replica_router.recommend('read') UNION ALL "
		  . "SELECT node || '|' || port FROM replica_router.recommend('read')");
	my %seen = map { split /\|/ } @rows;
	is_deeply(\%seen, \%port, 'recommend(read) returns each replica with its own port');
}

###############################################################################
# 7. Idle primary: lag 0 for caught-up replicas, and it stays 0
###############################################################################
{
	$primary->wait_for_catchup($_, 'replay', $primary->lsn('insert')) for ($s1, $s2);
	ok( defined $rr->wait_for(5,
			"SELECT bool_and(lag_seconds = 0) FROM replica_router.status WHERE role = 'replica'"),
		'idle primary: both replicas report lag 0');

	# Observe several seconds without any commit on the primary: a lag derived
	# from the last replayed commit would now grow with the idle time.
	my $idle_start = time;
	my @samples;
	while (time - $idle_start < 3.2)
	{
		push @samples, $rr->q(
			"SELECT max(lag_seconds) FROM replica_router.status WHERE role = 'replica'");
		usleep(400_000);
	}
	note('lag samples while idle (s): ' . join(' ', @samples));
	my $idle_for = $s1->safe_psql('postgres',
		'SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())');
	cmp_ok($idle_for, '>', 2.5, "the primary committed nothing for ${idle_for}s (truly idle)");
	# WAL the primary has not flushed yet (hint-bit FPIs and pruning from
	# catalog reads) is not streamed before the WAL writer flushes it, so a
	# sample may show up to wal_writer_delay + poll_interval (0.3 s) of lag;
	# a lag that grew with idle time would be over 3 s by now.
	my @bad = grep { $_ eq '' || $_ > 1 } @samples;
	is(scalar(@bad), 0, 'idle primary: lag stays ~0 (no sample above 1 s, none null)');
	ok( defined $rr->wait_for(1, "SELECT string_agg(node || ':' || lag_seconds, ',' ORDER BY node)"
			  . " FROM replica_router.status WHERE role = 'replica'", 's1:0,s2:0'),
		'idle primary: lag still exactly 0 after the idle period');
	is($rr->q("SELECT string_agg(state, ',' ORDER BY node) FROM replica_router.status WHERE role = 'replica'"),
		'healthy,healthy', 'idle primary: both still healthy');
}

###############################################################################
# 2. Replay paused on s1 while the primary writes: lagging, never recommended
###############################################################################
{
	$rr->set_conf('replica_router.max_lag' => '1s');
	$rr->q('CREATE TABLE lag_probe (id serial PRIMARY KEY, at timestamptz DEFAULT now())');
	$primary->wait_for_catchup($_, 'replay', $primary->lsn('insert')) for ($s1, $s2);

	$s1->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
	ok( defined wait_until(5,
			sub { $s1->safe_psql('postgres', 'SELECT pg_get_wal_replay_pause_state()') eq 'paused' }),
		's1: WAL replay paused');

	# Write on the primary until the worker calls s1 lagging.
	my $became_lagging = wait_until(
		10,
		sub {
			$rr->q('INSERT INTO lag_probe DEFAULT VALUES');
			$rr->state('s1') eq 'lagging';
		},
		0.1);
	ok(defined $became_lagging, 's1 (replay paused, primary writing) becomes lagging')
	  or diag($rr->q("SELECT * FROM replica_router.status"));
	note(sprintf('s1 lagging %.2f s after the first write past its replay position', $became_lagging // -1));
	is($rr->q("SELECT replay_paused FROM replica_router._hints() WHERE node = 's1'"),
		't', 'the worker saw replay paused on s1');
	cmp_ok($rr->q("SELECT lag_seconds FROM replica_router.status WHERE node = 's1'"),
		'>', 1, 's1 lag is over max_lag (1 s)');
	is($rr->state('s2'), 'healthy', 's2 (replaying) stays healthy');

	# Many calls, with writes in between, while s1 stays lagging.
	my %count;
	my $rounds = 0;
	my $still_lagging = 1;
	for (1 .. 5)
	{
		$rr->q('INSERT INTO lag_probe DEFAULT VALUES');
		$count{$_}++ for read_nodes(20);
		$still_lagging &&= $rr->state('s1') eq 'lagging';
		$rounds += 20;
	}
	ok($still_lagging, 's1 stayed lagging throughout');
	is($count{s1} // 0, 0, "s1 never recommended while lagging ($rounds calls)");
	is($count{s2} // 0, $rounds, 'every read went to s2');
	like(
		$rr->q("SELECT reason FROM replica_router.candidates('read') WHERE node = 's1'"),
		qr/lagging/, 'candidates(read) says s1 is left out for lagging');

	$s1->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
	my $t_resume = time;
	ok(defined $rr->wait_state('s1', 'healthy', 10), 's1 healthy again after replay resumed');
	note(sprintf('s1 healthy %.2f s after replay resumed', time - $t_resume));
	cmp_ok($rr->q("SELECT lag_seconds FROM replica_router.status WHERE node = 's1'"),
		'<', 1, 's1 lag back under max_lag');
	is(RRTest::split_of($rr->read_counts(10), qw(s1 s2)), 's1=5,s2=5',
		's1 recommended again (round-robin over both)');
}

###############################################################################
# 8. Registry changes picked up while running
###############################################################################
{
	my $s3 = $rr->add_standby('s3');
	$primary->wait_for_catchup($s3, 'replay', $primary->lsn('insert'));

	my $t0 = time;
	$rr->register('s3');
	my $healthy_after = $rr->wait_state('s3', 'healthy', 5);
	ok(defined $healthy_after, 'add_replica(s3): s3 becomes healthy');
	note(sprintf('s3 healthy %.0f ms after add_replica', 1000 * (time - $t0)));
	cmp_ok(time - $t0, '<', 1.0, 'add_replica(s3): healthy within 1 s');
	is(RRTest::split_of($rr->read_counts(9), qw(s1 s2 s3)), 's1=3,s2=3,s3=3',
		'round-robin now over s1, s2 and s3');

	my $worker_conns = sub {
		$s3->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'replica_router'");
	};
	# Every node runs a worker (observers on the standbys): one connection
	# each, from the primary, s1, s2 and s3 itself.
	my $conns;
	ok(defined wait_until(10, sub { ($conns = $worker_conns->()) == 4 }),
		"each node's worker holds one connection to s3 (4 in all; last count $conns)");

	$rr->q("SELECT replica_router.alter_replica('s3', enabled => false)");
	ok(defined $rr->wait_state('s3', 'disabled', 2), 'alter_replica(enabled => false): s3 disabled');
	my $count = $rr->read_counts(20);
	is($count->{s3} // 0, 0, 'disabled s3 never recommended (20 calls)');
	is(RRTest::split_of($count, qw(s1 s2)), 's1=10,s2=10', 'reads go to s1 and s2');
	ok(defined wait_until(5, sub { $worker_conns->() == 0 }), 'every worker closed its connection to disabled s3');
	my $polls = $rr->q("SELECT last_poll FROM replica_router._hints() WHERE node = 's3'");
	ok(defined $rr->wait_rounds(3, 3), 'the worker goes on with its rounds');
	is($rr->q("SELECT last_poll FROM replica_router._hints() WHERE node = 's3'"),
		$polls, 'disabled s3 is not polled (last_poll unchanged over 3 rounds)');

	$rr->q("SELECT replica_router.alter_replica('s3', enabled => true)");
	ok(defined $rr->wait_state('s3', 'healthy', 3), 'alter_replica(enabled => true): s3 healthy again');

	$rr->q("SELECT replica_router.remove_replica('s3')");
	is($rr->q("SELECT count(*) FROM replica_router.status WHERE node = 's3'"), 0,
		'remove_replica(s3): gone from status');
	ok( defined $rr->wait_for(2, "SELECT count(*) = 0 FROM replica_router._hints() WHERE node = 's3'"),
		'remove_replica(s3): gone from the shared hints');
	is($rr->q("SELECT count(*) FROM replica_router.routing_hints WHERE node = 's3'"), 0,
		'remove_replica(s3): gone from routing_hints');
	ok(defined wait_until(5, sub { $worker_conns->() == 0 }),
		'the worker closed its connection to removed s3');
	is(RRTest::split_of($rr->read_counts(10), qw(s1 s2 s3)), 's1=5,s2=5,s3=0',
		'round-robin back over s1 and s2');
	$s3->stop;
}

$rr->finish;
$rr->check_log;
done_testing();
