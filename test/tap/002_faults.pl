# Faults on a real cluster: a primary with replica_router preloaded and two
# streaming standbys s1 and s2.
#   - s1 stopped: down within a second, out of rotation; back after restart
#   - s1 hung (SIGSTOP on its postmaster and all children): down by timeout,
#     while s2 keeps being polled on schedule; healthy again after SIGCONT
#   - an independent cluster registered as a replica: foreign, excluded
#   - s2 promoted: promoted, excluded
#   - every replica excluded: reads go to the primary with the reasons, or
#     fail with SQLSTATE RR001 when fallback_to_primary is off
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
pass('primary and two streaming standbys registered, both healthy');

sub read_nodes
{
	my ($n) = @_;
	my %count;
	$count{ (split /\|/)[0] }++ for $rr->recommend_many($n, 'read');
	return \%count;
}

# When the worker last changed $node's state (epoch seconds, its clock).
sub state_since
{
	my ($node) = @_;
	return $rr->q("SELECT extract(epoch FROM state_since) FROM replica_router._hints() WHERE node = '$node'");
}

my %measured;

###############################################################################
# 3. A stopped standby is down quickly and out of rotation
###############################################################################
{
	my $t_begin = time;
	$s1->stop('fast');
	my $t_stopped = time;
	my $seen = $rr->wait_state('s1', 'down', 5);
	ok(defined $seen, 's1 stopped: down');
	my $since = state_since('s1');
	# The worker notices when the server closes its idle connection, which
	# can be before pg_ctl returns: count that as 0.
	my $detect = $since - $t_stopped;
	$detect = 0 if $detect < 0;
	$measured{stopped} = $detect;
	note(sprintf('stopped standby: marked down %.0f ms after pg_ctl stop returned'
			. ' (%.0f ms after it was called; the test saw it after %.0f ms)',
			1000 * $detect, 1000 * ($since - $t_begin), 1000 * ($seen // -1)));
	cmp_ok($detect, '<', 1.0, 'stopped standby detected as down in under 1 s');
	cmp_ok($seen // 99, '<', 1.0, 'the down state was visible in status within 1 s of the stop');

	my $count = read_nodes(20);
	is($count->{s1} // 0, 0, 'down s1 never recommended (20 calls)');
	is($count->{s2} // 0, 20, 'all reads go to s2');
	like($rr->q("SELECT error FROM replica_router.status WHERE node = 's1'"),
		qr/\S/, 's1 down: status shows the error: ' . $rr->q("SELECT error FROM replica_router.status WHERE node = 's1'"));

	$s1->start;
	my $back = $rr->wait_state('s1', 'healthy', 10);
	ok(defined $back, 's1 restarted: healthy again');
	note(sprintf('s1 healthy %.2f s after it was restarted', $back // -1));
	$count = read_nodes(10);
	is(join(',', map { "$_=" . ($count->{$_} // 0) } qw(s1 s2)), 's1=5,s2=5',
		's1 back in rotation');
}

###############################################################################
# 4. A hung standby (SIGSTOP) is down by timeout; the other keeps its schedule
###############################################################################
{
	my $poll_before = $rr->q("SELECT last_poll FROM replica_router.status WHERE node = 's2'");
	my @pids = $rr->freeze($s1);
	my $t_frozen = time;
	note('SIGSTOPped s1: pids ' . join(' ', @pids));

	my $seen = $rr->wait_state('s1', 'down', 5);
	ok(defined $seen, 's1 hung: down');
	my $detect = state_since('s1') - $t_frozen;
	$measured{hung} = $detect;
	note(sprintf('hung standby: marked down %.0f ms after SIGSTOP (query_timeout 500 ms, poll_interval 100 ms)',
			1000 * $detect));
	cmp_ok($detect, '<', 1.5, 'hung standby detected as down in under 1.5 s (query_timeout + poll_interval + slack)');
	like($rr->q("SELECT error FROM replica_router.status WHERE node = 's1'"),
		qr/timeout/, 'hung s1: the error is a timeout: ' . $rr->q("SELECT error FROM replica_router.status WHERE node = 's1'"));

	# While s1 stays hung (more connect and query timeouts), sample s2's last
	# poll: it must advance every time, and never be more than a few poll
	# intervals old.
	my (@polls, @ages);
	my $prev = $poll_before;
	my $advancing = 1;
	for my $i (1 .. 10)
	{
		usleep(250_000);
		my ($poll, $age, $state) = split /\|/, $rr->q(
			"SELECT last_poll, extract(epoch FROM clock_timestamp() - last_poll), state"
			  . " FROM replica_router.status WHERE node = 's2'");
		$advancing &&= $rr->q("SELECT '$poll'::timestamptz > '$prev'::timestamptz") eq 't'
		  && $state eq 'healthy';
		push @ages, sprintf('%.0f', $age * 1000);
		$prev = $poll;
	}
	note('s2 last_poll age (ms) while s1 hung: ' . join(' ', @ages));
	ok($advancing, 's2: last_poll advanced at every one of 10 samples over 2.5 s, s2 healthy throughout');
	my @late = grep { $_ > 400 } @ages;
	is(scalar(@late), 0, 's2 polled on schedule while s1 hung (last_poll never older than 400 ms)');
	is($rr->state('s1'), 'down', 's1 still down after 2.5 s hung (not stale, not healthy)');
	my $count = read_nodes(20);
	is($count->{s1} // 0, 0, 'hung s1 never recommended (20 calls)');
	is($count->{s2} // 0, 20, 'all reads go to s2 while s1 hung');
	my $rounds = $rr->q('SELECT rounds FROM replica_router.worker_status()');
	ok(defined $rr->wait_for(2, 'SELECT rounds >= ' . ($rounds + 5) . ' FROM replica_router.worker_status()'),
		'the worker keeps starting rounds while s1 hangs');

	$rr->thaw(@pids);
	my $back = $rr->wait_state('s1', 'healthy', 15);
	ok(defined $back, 's1 continued (SIGCONT): healthy again');
	note(sprintf('s1 healthy %.2f s after SIGCONT', $back // -1));
	$count = read_nodes(10);
	is(join(',', map { "$_=" . ($count->{$_} // 0) } qw(s1 s2)), 's1=5,s2=5', 's1 back in rotation after the hang');
}

###############################################################################
# An independent cluster (another system identifier) registered as a replica
###############################################################################
{
	my $other = PostgreSQL::Test::Cluster->new('other');
	$other->init;
	$other->start;
	$rr->register('other', $other);
	ok(defined $rr->wait_state('other', 'foreign', 5), 'an unrelated cluster is foreign');
	my $count = read_nodes(10);
	is(join(',', map { "$_=" . ($count->{$_} // 0) } qw(other s1 s2)), 'other=0,s1=5,s2=5',
		'the foreign node is never recommended');
	$rr->q("SELECT replica_router.remove_replica('other')");
	$other->stop;
}

###############################################################################
# 5. A promoted standby is excluded
###############################################################################
{
	$s2->promote;
	ok(defined $rr->wait_state('s2', 'promoted', 5), 's2 promoted: promoted');
	my $count = read_nodes(10);
	is(join(',', map { "$_=" . ($count->{$_} // 0) } qw(s1 s2)), 's1=10,s2=0',
		'promoted s2 never recommended; reads go to s1');
}

###############################################################################
# 6. Every replica excluded: the primary with the reason, or RR001
###############################################################################
{
	$s1->stop('fast');
	ok(defined $rr->wait_state('s1', 'down', 5), 's1 stopped: down');

	my ($node, $role, $reason) = split /\|/, ($rr->recommend_many(1, 'read'))[0];
	is("$node|$role", 'primary|primary', 'no replica qualifies: recommend(read) returns the primary');
	like($reason, qr/no replica qualifies/, "the reason says no replica qualifies: $reason");
	like($reason, qr/s1 down/, 'the reason names s1 as down');
	like($reason, qr/s2 promoted/, 'the reason names s2 as promoted');
	is( $rr->q("SELECT port FROM replica_router.recommend('read')"),
		$primary->port, 'the fallback answer carries the primary\'s port');

	$rr->set_conf('replica_router.fallback_to_primary' => 'off');
	my ($rc, $out, $err) = $primary->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT * FROM replica_router.recommend('read');");
	isnt($rc, 0, 'fallback_to_primary off: recommend(read) fails');
	like($err, qr/ERROR:  RR001: no replica qualifies for this read/, 'fallback_to_primary off: SQLSTATE RR001');
	like($err, qr/DETAIL:  no replica qualifies: .*s1 down/, 'the error detail gives the reasons');
	($rc, $out, $err) = $primary->psql('postgres', q{
DO $$
BEGIN
    PERFORM replica_router.recommend('read');
    RAISE NOTICE 'no error';
EXCEPTION WHEN SQLSTATE 'RR001' THEN
    RAISE NOTICE 'caught RR001';
END
$$;});
	like($err, qr/NOTICE:  caught RR001/, 'a DO block catches SQLSTATE RR001');
	is( $primary->safe_psql('postgres', "SELECT role FROM replica_router.recommend('write')"),
		'primary', 'writes still route to the primary with fallback off');

	$rr->set_conf('replica_router.fallback_to_primary' => 'on');
	is($rr->q("SELECT role FROM replica_router.recommend('read')"), 'primary',
		'fallback_to_primary back on: the primary again');
}

note(sprintf('detection times: stopped %.0f ms, hung %.0f ms', 1000 * $measured{stopped}, 1000 * $measured{hung}));
$rr->finish;
$rr->check_log;
done_testing();
