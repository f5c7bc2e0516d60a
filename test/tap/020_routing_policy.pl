# Routing policy on a real cluster: a primary with the extension preloaded and
# two streaming standbys (s1 in zone eu, s2 in zone us). Covers operation
# classes, read-your-writes under continuous writes, weighted / drained /
# least-lag balancing, zones, flap damping, candidates() and
# connection_string(), NOTIFY on state changes, recommend() on a standby, and
# the pgbouncer follower in front of a real pgbouncer.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use JSON::PP;
use Time::HiRes qw(time);
use RRTest qw(wait_until tool run_tool track);

###############################################################################
# Cluster: everything on 127.0.0.1 too, so that pgbouncer and
# inet_server_port() see TCP ports; the heartbeat every second for the
# standby's hint age.
###############################################################################
my $rr = RRTest->new(
	standbys => [qw(s1 s2)],
	register => 0,
	conf => q{
listen_addresses = '127.0.0.1'
replica_router.recovery_polls = 3
replica_router.heartbeat = '1s'
replica_router.standby_max_hint_age = '3s'
});
my $primary = $rr->primary;
my ($s1, $s2) = ($rr->standby('s1'), $rr->standby('s2'));
my %standby = (s1 => $s1, s2 => $s2);
my %port_of = (s1 => $s1->port, s2 => $s2->port);
my %name_of = reverse %port_of;

$rr->q(qq{
SELECT replica_router.add_replica('s1', 'host=127.0.0.1 port=${\ $s1->port} dbname=postgres', zone => 'eu');
SELECT replica_router.add_replica('s2', 'host=127.0.0.1 port=${\ $s2->port} dbname=postgres', zone => 'us')});
ok(defined $rr->wait_for(15, "SELECT count(*) = 2 FROM replica_router.status WHERE role = 'replica' AND state = 'healthy'"),
	'primary and two standbys, both healthy')
  or die 'replicas did not become healthy';

###############################################################################
# (a) Operation classes
###############################################################################
$rr->q(q{
SELECT replica_router.set_route('dashboard_query', 'replica', max_lag => '2s');
SELECT replica_router.set_route('user_login', 'primary');
});
is( $rr->q("SELECT role, max_lag FROM replica_router.recommend('dashboard_query') r,"
		  . " replica_router.routes WHERE operation = 'dashboard_query'"),
	'replica|00:00:02',
	'dashboard_query (replica, max_lag 2s) goes to a replica');
like(
	$rr->q("SELECT role || ': ' || reason FROM replica_router.recommend('user_login')"),
	qr/^primary: operation "user_login" routes to the primary/,
	'user_login goes to the primary');
is($rr->q("SELECT role FROM replica_router.recommend('read')"),
	'replica', 'the default read route goes to a replica');
is($rr->q("SELECT role FROM replica_router.recommend('write')"),
	'primary', 'the default write route goes to the primary');
like(
	$rr->q("SELECT role || ': ' || reason FROM replica_router.recommend('no_such_operation')"),
	qr/^primary: unknown operation "no_such_operation": routed to the primary for safety/,
	'an unknown operation goes to the primary, saying why');
{
	my ($rc, $out, $err) = $primary->psql('postgres',
		"SET replica_router.strict_operations = on;\n\\set VERBOSITY verbose\n"
		  . "SELECT * FROM replica_router.recommend('no_such_operation');");
	isnt($rc, 0, 'strict_operations: an unknown operation fails');
	like($err, qr/ERROR:  42704: unknown operation "no_such_operation"/,
		'strict_operations: SQLSTATE 42704');
	is( $rr->q("BEGIN; SET LOCAL replica_router.strict_operations = on;"
			  . " SELECT role FROM replica_router.recommend('dashboard_query'); COMMIT"),
		'replica',
		'strict_operations: known operations still route');
}

###############################################################################
# (f) candidates() and connection_string() with both replicas healthy
###############################################################################
{
	my $rows = $rr->q("SELECT rank, node, role, qualified FROM replica_router.candidates('read') ORDER BY rank NULLS LAST, node");
	my @r = split /\n/, $rows;
	is(scalar @r, 3, 'candidates(read): three nodes');
	like($r[0], qr/^1\|s[12]\|replica\|t$/, 'candidates(read): a replica ranks first');
	like($r[1], qr/^2\|s[12]\|replica\|t$/, 'candidates(read): the other replica second');
	is($r[2], '3|primary|primary|t', 'candidates(read): the primary last, as fallback');
	my $cs = $rr->q("SELECT replica_router.connection_string('read')");
	my $pp = $primary->port;
	like($cs, qr/^host=127\.0\.0\.1,127\.0\.0\.1,127\.0\.0\.1 port=(\d+),(\d+),$pp$/,
		"connection_string(read): libpq multi-host list, the primary last ($cs)");
	my @ports = $cs =~ /port=(\d+),(\d+),/;
	is(join(',', sort @ports), join(',', sort(values %port_of)), 'connection_string(read): both replicas');
	is( $rr->q("SELECT replica_router.connection_string('user_login')"),
		"host=127.0.0.1 port=$pp",
		'connection_string(user_login): the primary only');
}

###############################################################################
# (c) Balancing
###############################################################################
$rr->q(q{
SELECT replica_router.alter_replica('s1', weight => 100);
SELECT replica_router.alter_replica('s2', weight => 300)});
# "s1=N s2=M": where $n calls of recommend($op) went. One call per row:
# recommend() in the select list is evaluated for each row (a LATERAL call
# that does not depend on the row runs only once).
sub split_of_calls
{
	my ($op, $n) = @_;
	return $rr->q(qq{
SELECT string_agg(node || '=' || n, ' ' ORDER BY node)
  FROM (SELECT node, count(*) AS n
          FROM (SELECT (replica_router.recommend('$op')).node FROM generate_series(1, $n)) c
         GROUP BY node) s});
}

$rr->set_conf('replica_router.balance' => 'weighted');
{
	my $split = split_of_calls('read', 10000);
	my %n = $split =~ /(\w+)=(\d+)/g;
	my $total = ($n{s1} // 0) + ($n{s2} // 0);
	is($total, 10000, "weighted: all 10000 reads went to replicas ($split)");
	my $pct1 = 100 * ($n{s1} // 0) / 10000;
	my $pct2 = 100 * ($n{s2} // 0) / 10000;
	diag(sprintf('weighted split over 10000 calls, weights 100/300: s1 %.2f%%, s2 %.2f%%', $pct1, $pct2));
	ok(abs($pct1 - 25) <= 3 && abs($pct2 - 75) <= 3,
		sprintf('weighted: 100/300 splits %.1f/%.1f, within 3 points of 25/75', $pct1, $pct2));

	my $lateral = $rr->q("SELECT count(DISTINCT r.node) FROM generate_series(1, 1000) g, LATERAL replica_router.recommend('read') r");
	note("a LATERAL recommend() independent of the row gives $lateral distinct node(s) over 1000 rows");
}

# A route may choose its balancing on its own.
$rr->set_conf('replica_router.balance' => 'round_robin');
$rr->q("SELECT replica_router.set_route('weighted_read', 'replica', balance => 'weighted')");
{
	my $split = split_of_calls('weighted_read', 4000);
	my %n = $split =~ /(\w+)=(\d+)/g;
	ok(abs(($n{s1} // 0) / 40 - 25) <= 3, "route balance => weighted: 1:3 split ($split)");
	$split = $rr->q(q{
SELECT string_agg(node || '=' || n, ' ' ORDER BY node)
  FROM (SELECT node, count(*) AS n
          FROM (SELECT (replica_router.recommend('read')).node FROM generate_series(1, 1000)) c
         GROUP BY node) s});
	is($split, 's1=500 s2=500', 'round_robin (default) splits evenly regardless of weights');
}

# Weight 0 drains a node: never recommended, listed with the reason.
$rr->q("SELECT replica_router.alter_replica('s1', weight => 0)");
is( $rr->q("SELECT string_agg(DISTINCT n, ',') FROM (SELECT (replica_router.recommend(op)).node AS n"
		  . " FROM generate_series(1, 1000), unnest(ARRAY['read', 'weighted_read', 'dashboard_query']) op) c"),
	's2', 'weight 0 drains s1: 3000 calls, never recommended');
is( $rr->q("SELECT coalesce(rank::text, '-') || '|' || qualified || '|' || reason FROM replica_router.candidates('read') WHERE node = 's1'"),
	'-|false|drained (weight 0)', 'candidates() names the drained node with the reason');
$rr->q("SELECT replica_router.alter_replica('s1', weight => 100)");

# least_lag: pause replay on s2 while the primary writes.
$rr->q("SELECT replica_router.set_route('fresh_read', 'replica', balance => 'least_lag')");
$s2->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$rr->q('CREATE TABLE lagger AS SELECT g FROM generate_series(1, 1000) g');
$rr->wait_for(15, q{
SELECT s2.lag > s1.lag + interval '300ms' AND s1.state = 'healthy' AND s2.state = 'healthy'
  FROM replica_router.status s1, replica_router.status s2 WHERE s1.node = 's1' AND s2.node = 's2'})
  or die 's2 did not fall behind s1';
is( $rr->q("SELECT string_agg(DISTINCT n, ',') FROM (SELECT (replica_router.recommend('fresh_read')).node AS n FROM generate_series(1, 500)) c"),
	's1', 'least_lag: 500 calls all go to s1 while s2 replays nothing');
is( $rr->q("SELECT string_agg(node || ':' || rank, ',' ORDER BY rank) FROM replica_router.candidates('fresh_read') WHERE role = 'replica'"),
	's1:1,s2:2', 'least_lag: s2 still qualifies, ranked after s1');
$s2->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$primary->wait_for_catchup($s2, 'replay');
$rr->wait_for(15, "SELECT count(*) = 2 FROM replica_router.status WHERE role = 'replica' AND state = 'healthy' AND lag_bytes = 0")
  or die 'replicas did not catch up';

###############################################################################
# (b) Read-your-writes under continuous writes
###############################################################################
$rr->q(q{
CREATE TABLE load (id bigserial PRIMARY KEY, v double precision);
CREATE TABLE ryw (id bigserial PRIMARY KEY, v integer NOT NULL);
});
$primary->wait_for_catchup($s1, 'replay');
$primary->wait_for_catchup($s2, 'replay');
{
	my $script = PostgreSQL::Test::Utils::tempdir() . '/load.sql';
	open my $fh, '>', $script or die $!;
	print $fh "INSERT INTO load (v) VALUES (random());\n";
	close $fh;
	my ($pgb_out, $pgb_err) = ('', '');
	my $pgbench = IPC::Run::start(
		[
			'pgbench', '-n', '-h', $primary->host, '-p', $primary->port, '-c', '2', '-j', '1', '-T', '120',
			'-R', '400', '-f', $script, 'postgres'
		],
		'>', \$pgb_out, '2>', \$pgb_err);
	$rr->wait_for(15, 'SELECT count(*) > 100 FROM load')
	  or die "pgbench wrote nothing: $pgb_err";

	my %session = (s1 => RRTest::Session->new($s1), s2 => RRTest::Session->new($s2));
	my ($checked, $on_primary, $missing, $chased) = (0, 0, 0, 0);
	my @misses;
	for my $i (1 .. 200)
	{
		# write_lsn() after the commit: what a client passes on to its next read.
		my $id = $rr->q("INSERT INTO ryw (v) VALUES ($i) RETURNING id");
		my $lsn = $rr->q('SELECT replica_router.write_lsn()');
		my $rec = sub { $rr->q("SELECT node, role FROM replica_router.recommend('read', min_lsn => '$lsn')") };
		my ($node, $role) = split /\|/, $rec->();
		if ($role eq 'primary' && $i % 4 == 0)
		{
			# Every 4th write: wait for a replica to qualify, to be sure
			# the replica path is exercised, not only the fallback.
			wait_until(10, sub { ($node, $role) = split /\|/, $rec->(); $role eq 'replica' });
			$chased++;
		}
		if ($role eq 'primary')
		{
			$on_primary++;
			next;
		}
		$checked++;
		my ($seen, $err) = $session{$node}->run("SELECT count(*) FROM ryw WHERE id = $id");
		if ($seen ne '1' || $err ne '')
		{
			$missing++;
			push @misses, "row $id (written at $lsn) not visible on $node: [$seen] $err";
		}
	}
	$_->close for values %session;
	$pgbench->kill_kill;
	is($missing, 0, 'read-your-writes: every row is visible on the replica recommended for its min_lsn')
	  or diag(join "\n", @misses[0 .. ($#misses < 9 ? $#misses : 9)]);
	cmp_ok($checked, '>=', 50, "read-your-writes: $checked of 200 reads went to a replica and saw their row");
	diag("read-your-writes under pgbench load: $checked reads on replicas, $on_primary on the primary (fallback)");
	cmp_ok($rr->q('SELECT count(*) FROM load'), '>', 500,
		'the background write load ran throughout');
}
$primary->wait_for_catchup($s1, 'replay');
$primary->wait_for_catchup($s2, 'replay');

###############################################################################
# (g) push, (d) zones, (f) candidates while s1 is down, (e) flap damping
###############################################################################
$rr->wait_for(15, "SELECT count(*) = 2 FROM replica_router.status WHERE role = 'replica' AND state = 'healthy'")
  or die 'replicas not healthy';
is( $rr->q("SELECT string_agg(DISTINCT n, ',') FROM (SELECT (replica_router.recommend('read', zone => 'eu')).node AS n FROM generate_series(1, 200)) c"),
	's1', 'zone eu: 200 calls all go to s1 (in eu)');
like($rr->q("SELECT reason FROM replica_router.recommend('read', zone => 'eu')"),
	qr/^healthy replica in zone eu/, 'zone eu: the reason names the zone');
is( $rr->q("SELECT string_agg(DISTINCT n, ',') FROM (SELECT (replica_router.recommend('read', zone => 'us')).node AS n FROM generate_series(1, 200)) c"),
	's2', 'zone us: all go to s2');

my $listener = RRTest::Session->new($primary);
$listener->run('LISTEN replica_router');

# Samples s1's hint every few milliseconds, in the background, until s1 has
# been down and is healthy again.
$rr->q('CREATE TABLE damp_samples (t timestamptz, state text, last_success timestamptz, state_since timestamptz)');
my ($smp_out, $smp_err) = ('', '');
my $sampler = IPC::Run::start(
	[
		'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $primary->connstr('postgres'), '-c', q{
DO $$
DECLARE seen_down boolean := false; st text;
BEGIN
    FOR i IN 1 .. 20000 LOOP
        INSERT INTO damp_samples
        SELECT clock_timestamp(), h.state, h.last_success, h.state_since
          FROM replica_router._hints() h WHERE h.node = 's1'
        RETURNING state INTO st;
        seen_down := seen_down OR st = 'down';
        EXIT WHEN seen_down AND st = 'healthy';
        PERFORM pg_sleep(0.003);
    END LOOP;
END $$}
	],
	'>', \$smp_out, '2>', \$smp_err);

$s1->stop('fast');
my $down_after = wait_until(10, sub { $rr->state('s1') eq 'down' });
ok(defined $down_after, 's1 is down once stopped');
diag(sprintf('s1 marked down %.0f ms after pg_ctl stop returned', 1000 * ($down_after // -1)));

# (g) the NOTIFY payload
{
	my $payload;
	wait_until(
		10,
		sub {
			my ($out) = $listener->run('SELECT 1');
			for my $line (split /\n/, $out)
			{
				next unless $line =~ /^Asynchronous notification "replica_router" with payload "(.*)" received/;
				my $p = eval { decode_json($1) };
				$payload = $p if $p && $p->{node} eq 's1' && $p->{new_state} eq 'down';
			}
			return defined $payload;
		});
	ok(defined $payload, 'LISTEN replica_router: a notification for s1 going down');
	is(join(',', map { $payload->{$_} // 'null' } qw(node old_state new_state)),
		's1,healthy,down', 'the JSON payload has node, old_state and new_state');
	ok(exists $payload->{lag_seconds} && exists $payload->{at}, 'the payload also carries lag and time');
}

# (d) zone fallback
is($rr->q("SELECT node || '|' || reason FROM replica_router.recommend('read', zone => 'eu')"),
	's2|no qualified replica in zone eu; healthy replica, round-robin among 1',
	'zone eu with s1 down: falls back to s2, saying so');

# (f) candidates while s1 is down
is( $rr->q("SELECT string_agg(coalesce(rank::text, '-') || ':' || node || ':' || qualified || ':' || state, ' ' ORDER BY rank NULLS LAST)"
		  . " FROM replica_router.candidates('read')"),
	'1:s2:true:healthy 2:primary:true:primary -:s1:false:down',
	'candidates(read): s2 ranked, the primary as fallback, s1 left out');
is($rr->q("SELECT reason FROM replica_router.candidates('read') WHERE node = 's1'"),
	'down', 'candidates(read): the reason s1 was left out');
is( $rr->q("SELECT replica_router.connection_string('read')"),
	"host=127.0.0.1,127.0.0.1 port=${\ $s2->port},${\ $primary->port}",
	'connection_string(read): s2 then the primary');

# (e) flap damping: back only after recovery_polls good polls
$s1->start;
my $healthy_after = wait_until(20, sub { $rr->state('s1') eq 'healthy' });
ok(defined $healthy_after, 's1 is healthy again after its restart');
$sampler->finish;
is($smp_err, '', 'the sampler ran without error');
{
	my ($good_while_down, $good_polls, $damping_ms, $samples) = split /\|/, $rr->q(q{
WITH d AS (SELECT max(state_since) AS down_since FROM damp_samples WHERE state = 'down'),
     good AS (SELECT s.* FROM damp_samples s, d WHERE s.state = 'down' AND s.last_success > d.down_since),
     back AS (SELECT min(s.state_since) AS at FROM damp_samples s, d WHERE s.state = 'healthy' AND s.t > d.down_since)
SELECT (SELECT count(*) FROM good),
       (SELECT count(DISTINCT last_success) FROM good),
       round(extract(epoch FROM (SELECT at FROM back) - (SELECT min(last_success) FROM good)) * 1000),
       (SELECT count(*) FROM damp_samples)});
	cmp_ok($good_while_down, '>', 0,
		"damping: s1 answered polls yet stayed down for a while ($good_while_down of $samples samples)");
	# Each good poll moves last_success; with recovery_polls = 3 the third
	# one readmits s1, so two good polls are seen while it is still down.
	is($good_polls, 2, 'damping: readmitted at the third consecutive good poll (recovery_polls = 3)');
	diag(sprintf('flap damping: first good poll to healthy %s ms (recovery_polls 3, poll_interval 100ms);'
		  . ' pg_ctl start returned to healthy %.0f ms', $damping_ms // '?', 1000 * ($healthy_after // -1)));
}
{
	my $payload;
	wait_until(
		10,
		sub {
			my ($out) = $listener->run('SELECT 1');
			for my $line (split /\n/, $out)
			{
				next unless $line =~ /with payload "(.*)" received/;
				my $p = eval { decode_json($1) };
				$payload = $p if $p && $p->{node} eq 's1' && $p->{new_state} eq 'healthy';
			}
			return defined $payload;
		});
	is(join(',', map { $payload->{$_} // 'null' } qw(node old_state new_state)),
		's1,down,healthy', 'LISTEN: s1 back from down to healthy, in one notification');
}
$listener->close;

###############################################################################
# (h) hints on a standby
###############################################################################
$primary->wait_for_catchup($s2, 'replay');
$s2->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM replica_router.routing_hints WHERE state = 'healthy'")
  or die 'the hints did not replicate';
{
	my ($role, $reason) = split /\|/, $s2->safe_psql('postgres', "SELECT role, reason FROM replica_router.recommend('read')");
	is($role, 'replica', "recommend() on a standby answers a replica from its own worker's polls ($reason)");
	is($s2->safe_psql('postgres', "SELECT role FROM replica_router.recommend('user_login')"),
		'primary', 'recommend() on a standby follows the replicated routes');
	is( $s2->safe_psql('postgres', "SELECT host || ':' || port FROM replica_router.recommend('write')"),
		"127.0.0.1:${\ $primary->port}",
		'recommend(write) on a standby names the primary its worker found');

	# Switched off on the standby: still the primary, never the standby itself.
	$s2->append_conf('postgresql.conf', 'replica_router.enabled = off');
	$s2->reload;
	$s2->poll_query_until('postgres', "SELECT current_setting('replica_router.enabled') = 'off'")
	  or die 'the standby did not reload';
	is( $s2->safe_psql('postgres', "SELECT role || '|' || host || ':' || port || '|' || reason FROM replica_router.recommend('read')"),
		"primary|127.0.0.1:${\ $primary->port}|replica_router.enabled is off",
		'enabled = off on a standby: recommend() names the primary from the heartbeat');
	$s2->append_conf('postgresql.conf', 'replica_router.enabled = on');
	$s2->reload;
	$s2->poll_query_until('postgres', "SELECT current_setting('replica_router.enabled') = 'on'")
	  or die 'the standby did not reload';
}

# The follower reads a standby too (polling).
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $follower_bin = tool('replica_router_follower');
my @follow_s2 = ($follower_bin, '--source', $s2->connstr('postgres'), '--dbname', 'app');
{
	my $file = "$tmp/from_standby.ini";
	my ($rc, $out, $err) = run_tool(@follow_s2, '--output', $file, '--once');
	is($rc, 0, 'follower --once from a standby succeeds') or diag($err);
	my $content = slurp_file($file);
	like($content, qr/^app_read = host=127\.0\.0\.1 port=(\d+) dbname=app$/m, 'follower from a standby: read alias');
	my ($p) = $content =~ /^app_read = host=\S+ port=(\d+)/m;
	ok(defined $p && defined $name_of{$p}, 'follower from a standby: the read alias is a replica');
	like($content, qr/^app_write = host=127\.0\.0\.1 port=${\ $primary->port} dbname=app$/m,
		'follower from a standby: write alias at the primary');
}

# replica_router.observe = off on s2: its worker stops polling and s2 answers
# from the replicated hints, as 1.1 did. Then stop the heartbeat (hint writes)
# and wait past standby_max_hint_age (3s).
$s2->append_conf('postgresql.conf', 'replica_router.observe = off');
$s2->reload;
ok( defined wait_until(10,
		sub { $s2->safe_psql('postgres', "SELECT count(*) FROM replica_router._hints()") eq '0' }),
	'observe = off: the worker on s2 stops publishing its own polls');
like($s2->safe_psql('postgres', "SELECT reason FROM replica_router.recommend('read')"), qr/healthy replica/,
	'observe = off: s2 answers from the replicated hints');
$rr->set_conf('replica_router.heartbeat' => '1h');
{
	my $reason;
	my $took = wait_until(
		30,
		sub {
			my ($role, $r) = split /\|/, $s2->safe_psql('postgres', "SELECT role, reason FROM replica_router.recommend('read')");
			$reason = $r;
			return $role eq 'primary' && $r =~ /too old/;
		},
		0.1);
	ok(defined $took, "old hints on a standby are refused: the primary, with a reason ($reason)");
	like($reason, qr/^no replica qualifies: the hints on this standby are too old \(last heartbeat \d+ s ago\)$/,
		'the reason says the hints are too old');

	my $file = "$tmp/stale.ini";
	my ($rc, $out, $err) = run_tool(@follow_s2, '--output', $file, '--once');
	isnt($rc, 0, 'follower --once fails on a standby with old hints');
	like($err, qr/too old/, 'follower: says the hints are too old');
	ok(!-e $file, 'follower: writes no file from old hints');
}
# Lowering the heartbeat again must bring the standby's hints back soon.
$rr->set_conf('replica_router.heartbeat' => '1s');
{
	my $took = wait_until(
		15, sub { $s2->safe_psql('postgres', "SELECT role FROM replica_router.recommend('read')") eq 'replica' }, 0.1);
	ok(defined $took, 'after the heartbeat is lowered back to 1s, the standby trusts its hints again');
	if (!defined $took)
	{
		diag('primary: heartbeat setting and age of the last heartbeat: '
			  . $rr->q("SELECT current_setting('replica_router.heartbeat') || ', ' || (now() - primary_time) FROM replica_router.heartbeat"));
		# Restart the worker so the rest of the test has a heartbeat.
		$rr->q('SELECT pg_terminate_backend(pid) FROM replica_router.worker_status()');
		$s2->poll_query_until('postgres', "SELECT role = 'replica' FROM replica_router.recommend('read')")
		  or die 'the standby never trusted its hints again';
	}
}

# Observing again: s2's worker polls and publishes its own view.
$s2->append_conf('postgresql.conf', 'replica_router.observe = on');
$s2->reload;
ok( defined wait_until(10,
		sub { $s2->safe_psql('postgres', "SELECT count(*) FILTER (WHERE state = 'healthy') FROM replica_router._hints()") eq '2' }),
	'observe = on again: s2 polls both replicas itself');

###############################################################################
# (i) the follower in front of a real pgbouncer
###############################################################################
SKIP:
{
	skip 'pgbouncer is not installed', 1 unless RRTest::PgBouncer::available();

	my $include = "$tmp/replica_router.ini";
	my $follower_log = "$tmp/follower.log";
	my @follower = (
		$follower_bin, '--source', "host=127.0.0.1 port=${\ $primary->port} dbname=postgres",
		'--output', $include, '--dbname', 'postgres', '--interval', '500ms');

	# pgbouncer needs the file at start: write it once first.
	my ($rc, $out, $err) = run_tool(@follower, '--once');
	is($rc, 0, 'follower --once writes the first file') or diag($err);
	unlike($err, qr/password/i, 'follower output names no password');
	my $first = slurp_file($include);
	like($first, qr/^\[databases\]$/m, 'the file has a [databases] section');
	like($first, qr/^; .*\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/m, 'the header has the time');
	like($first, qr/^; postgres_read -> s[12] \(replica\), operation read: healthy replica/m,
		'the header has the reason');
	my ($read_port) = $first =~ /^postgres_read = host=127\.0\.0\.1 port=(\d+) dbname=postgres$/m;
	ok(defined $read_port && defined $name_of{$read_port}, 'postgres_read points at a replica');
	like($first, qr/^postgres_write = host=127\.0\.0\.1 port=${\ $primary->port} dbname=postgres$/m,
		'postgres_write points at the primary');

	my $bouncer = RRTest::PgBouncer->new(
		include => $include,
		settings => {
			unix_socket_dir => PostgreSQL::Test::Utils::tempdir_short(),
			pool_mode => 'session',
			server_login_retry => 1,
			server_connect_timeout => 2
		});
	my $admin = $bouncer->admin;

	my $via = sub {
		my ($alias) = @_;
		my ($o, $e) = ('', '');
		my $ok = eval {
			IPC::Run::run(
				[ 'psql', '-XAtq', '-d', $bouncer->connstr($alias) . ' connect_timeout=3', '-c', 'SELECT inet_server_port()' ],
				'>', \$o, '2>', \$e, IPC::Run::timeout(10));
		};
		chomp $o;
		return $ok ? $o : undef;
	};
	ok(defined wait_until(10, sub { defined $via->('postgres_write') }), 'pgbouncer is up');

	my $flog;
	open $flog, '>', $follower_log or die $!;
	my $follower = track(IPC::Run::start([ @follower, '--pgbouncer', $admin ], '>', $flog, '2>', $flog));
	# pgbouncer already serves what the file (written by --once) says: no
	# RELOAD at start-up, only a line saying so.
	ok(defined wait_until(10, sub { slurp_file($follower_log) =~ /pgbouncer at \S+ already has .*\n(.*\n)*.*connected to the source/ }),
		'the follower connects, listens and finds pgbouncer up to date');
	unlike(slurp_file($follower_log), qr/reloaded/, 'no RELOAD at start-up for an unchanged file');
	like(slurp_file($follower_log), qr/connected to the source at 127\.0\.0\.1:\d+ \(primary\): listening/,
		'the follower listens on the primary');

	is($via->('postgres_read'), $read_port, 'postgres_read lands on the replica the file names');
	is($via->('postgres_write'), $primary->port, 'postgres_write lands on the primary');

	# Stop the replica the read alias points at.
	my $victim = $standby{ $name_of{$read_port} };
	my $other = $victim == $s1 ? $s2 : $s1;
	my $t0 = time;
	$victim->stop('fast');
	my ($switched, $failures) = (undef, 0);
	wait_until(
		20,
		sub {
			my $p = $via->('postgres_read');
			$failures++ unless defined $p;
			$switched = time - $t0 if defined $p && $p == $other->port;
			return defined $switched;
		});
	ok(defined $switched, sprintf('postgres_read moves to %s after %s stops', $other->name, $victim->name));
	diag(sprintf('follower switch: postgres_read on the other replica %.2f s after the stop (%d failed connections before)',
			$switched // -1, $failures));
	cmp_ok($switched // 99, '<', 5, 'the switch takes less than 5 seconds');
	my $good = 0;
	for (1 .. 20)
	{
		my $p = $via->('postgres_read');
		$good++ if defined $p && $p == $other->port;
	}
	is($good, 20, 'after the switch: 20 consecutive connections through postgres_read, all on the other replica');
	like(slurp_file($include), qr/^postgres_read = host=127\.0\.0\.1 port=${\ $other->port} dbname=postgres$/m,
		'the file names the other replica');

	# Bring the stopped replica back: the follower stays where it is (no
	# rewrite, no reload) because its replica still qualifies.
	my $before = slurp_file($include);
	my @st = stat $include;
	$victim->start;
	$rr->wait_for(15, "SELECT state = 'healthy' FROM replica_router.status WHERE node = '${\ $victim->name}'")
	  or die 'the stopped replica did not come back';
	# Wait until the follower has read the routing (on the NOTIFY, then on a
	# periodic re-check) well after the replica was readmitted.
	my $wrote = () = slurp_file($follower_log) =~ /wrote /g;
	$rr->wait_for(10, qq{
SELECT a.query_start > h.state_since + interval '600ms'
  FROM pg_stat_activity a, replica_router._hints() h
 WHERE a.application_name = 'replica_router_follower' AND h.node = '${\ $victim->name}'})
	  or die 'the follower did not read the routing again';
	is(slurp_file($include), $before, 'the readmitted replica does not move the read alias (sticky)');
	is((stat $include)[1], $st[1], 'the file was not replaced (same inode)');
	is(scalar(() = slurp_file($follower_log) =~ /wrote /g), $wrote, 'no rewrite while nothing changed');
	is(scalar(() = slurp_file($follower_log) =~ /pgbouncer at \S+ reloaded/g),
		1, 'RELOAD sent once: for the switch');

	# The source goes away: the last good file stays.
	$rr->finish;
	$primary->stop('fast');
	ok(defined wait_until(15, sub { slurp_file($follower_log) =~ /keeping \Q$include\E as it is/ }),
		'the follower notices the source is gone and keeps the file');
	is(slurp_file($include), $before, 'the file is unchanged while the source is unreachable');
	like(slurp_file($include), qr/^postgres_read = .*\n^postgres_write = /m, 'and still names both aliases');
	{
		my ($rc, $o, $e) = run_tool(@follower, '--once');
		isnt($rc, 0, 'follower --once fails when the source is unreachable');
		like($e, qr/source 127\.0\.0\.1:\d+: .*keeping/, 'with one clear line');
		is(slurp_file($include), $before, 'and leaves the file alone');
	}
	is($via->('postgres_read'), $other->port, 'reads through pgbouncer still work with the primary down');

	$follower->signal('TERM');
	ok($follower->finish, 'the follower exits cleanly on SIGTERM');
	like(slurp_file($follower_log), qr/stopping$/m, 'and says so');
	unlike(slurp_file($follower_log), qr/password/i, 'the follower log names no password');
	close $flog;
	note("follower log:\n" . slurp_file($follower_log));

	$bouncer->stop;
}

$rr->check_log;
$rr->finish;
done_testing();
