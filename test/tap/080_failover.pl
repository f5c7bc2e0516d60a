# Every node routes, and failover needs no registry edit. A primary p and two
# streaming standbys s1, s2, all three preloaded (so a worker runs on each:
# on the standbys as an observer), all three registered as members with
# add_node(). No registry function is called after the start.
#
#   a. live answers on every node: the standbys' workers poll every member;
#      recommend('write') names p everywhere, reads go to s1/s2
#   b. a registry change on the primary reaches the observers once replayed
#   c. the primary stops (immediate): standbys keep answering reads from live
#      polls; writes raise RR002 "no primary is reachable", never p
#   d. s1 promoted (pg_ctl promote), s2 re-pointed at it (primary_conninfo +
#      reload): on s1 and s2 recommend('write') names s1; reads reach s2 once
#      it streams from s1
#   e. split brain: the old primary restarted as a primary on its old
#      timeline: never recommended, critical, writes name s1 on every node
#      (p's own worker included)
#   f. the old primary rewound (pg_rewind) and started as a standby of s1: a
#      healthy replica on every node
#   g. (during c and d) the check command, the follower and serve, given every
#      member as a multi-host source, answer from whichever member is up:
#      during the outage the follower keeps its file (no primary is
#      reachable); after the promotion it points writes at s1 and reads at
#      s2. serve reads the primary only: during the outage it answers from
#      p's last snapshot until that is older than stale_after, then 503;
#      after the promotion it reconnects to s1 by itself. A child process
#      samples serve all along: no answer names a standby the primary.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use POSIX ();
use RRTest qw(wait_until);

my @figures;
my $rr = RRTest->new(
	standbys => [qw(s1 s2)],
	register => 0,
	conf => "wal_log_hints = on\n");
my $p = $rr->primary;
my ($s1, $s2) = ($rr->standby('s1'), $rr->standby('s2'));
my %node = (p => $p, s1 => $s1, s2 => $s2);
my %name_of_port = map { $node{$_}->port => $_ } keys %node;

$rr->q("SELECT replica_router.add_node('$_', '" . $rr->conninfo($node{$_}) . "')") for qw(p s1 s2);

# One value from $node; undef when the query fails (a stopped server, RR002).
sub ask
{
	my ($n, $sql) = @_;
	my ($rc, $out, $err) = $n->psql('postgres', $sql, on_error_stop => 1);
	return $rc == 0 ? $out : undef;
}

# The member states as $n's worker sees them: "p=primary,s1=healthy,...".
sub view_of
{
	my ($n) = @_;
	return ask($n, "SELECT string_agg(node || '=' || state, ',' ORDER BY node) FROM replica_router.status"
		  . " WHERE node IN ('p', 's1', 's2')") // '';
}

sub wait_view
{
	my ($n, $want, $seconds) = @_;
	my $last = '';
	my $took = wait_until($seconds // 20, sub { ($last = view_of($n)) eq $want }, 0.02);
	diag('on ' . $n->name . ": waited for [$want], last [$last]") unless defined $took;
	return $took;
}

# Which member recommend($op) names on $n (by port), or "error: <sqlstate>".
sub named
{
	my ($n, $op) = @_;
	my ($rc, $out, $err) =
	  $n->psql('postgres', "\\set VERBOSITY verbose\nSELECT port FROM replica_router.recommend('$op')");
	if ($rc != 0)
	{
		return $err =~ /ERROR:  (\w{5}):/ ? "error: $1" : "error: $err";
	}
	return $name_of_port{$out} // "port $out";
}

sub wait_named
{
	my ($n, $op, $want, $seconds) = @_;
	my $last = '';
	my $took = wait_until($seconds // 20, sub { ($last = named($n, $op)) eq $want }, 0.02);
	diag('on ' . $n->name . ": recommend('$op') waited for [$want], last [$last]") unless defined $took;
	return $took;
}

###############################################################################
# a. Live answers on every node
###############################################################################
for my $n ($p, $s1, $s2)
{
	ok(defined wait_view($n, 'p=primary,s1=healthy,s2=healthy'),
		'on ' . $n->name . ': p is the primary (found by polling), s1 and s2 healthy');
	is(named($n, 'write'), 'p', 'on ' . $n->name . ': recommend(write) names p');
	like(named($n, 'read'), qr/^s[12]$/, 'on ' . $n->name . ': recommend(read) names a standby');
}
ok(ask($s1, 'SELECT pid IS NOT NULL FROM replica_router.worker_status()') eq 't',
	'a worker runs on the standby s1');
is(ask($s1, "SELECT role || ' ' || state FROM replica_router.status WHERE node = 's1'"), 'replica healthy',
	"on s1, status shows s1's own row as a healthy replica");
is(ask($s1, "SELECT count(*) FROM replica_router.status WHERE role = 'primary'"), '1',
	'on s1, status has one primary row (p), not s1');
# pool_state: one row per member; the primary's counts are its polled ones
# (never a standby's own counts under p's name).
for my $n ($p, $s1)
{
	ok(defined wait_until(10, sub {
		(ask($n, "SELECT string_agg(node || ':' || role || ':' || (connections IS NOT NULL), ',' ORDER BY node)"
			  . " FROM replica_router.pool_state") // '') eq 'p:primary:true,s1:replica:true,s2:replica:true' }, 0.1),
		'on ' . $n->name . ': pool_state has one row per member, p as the primary with its polled counts');
}
# The primary member without a pgbouncer of its own shows the one
# replica_router.primary_pgbouncer names (here one nobody listens on).
$p->append_conf('postgresql.conf', "replica_router.primary_pgbouncer = 'host=127.0.0.1 port=1 dbname=pgbouncer connect_timeout=1'");
$p->reload;
ok(defined wait_until(20, sub {
	(ask($p, "SELECT pgbouncer_ok IS FALSE AND pgbouncer_error IS NOT NULL FROM replica_router.pool_state WHERE node = 'p'") // '') eq 't' }, 0.1),
	"on primary: pool_state's p row reports primary_pgbouncer (unreachable)");
$p->adjust_conf('postgresql.conf', 'replica_router.primary_pgbouncer', "''");
$p->reload;

# observe = off on s2: nothing polled there, and still one row per member
# (the primary's from the replicated heartbeat, not also an unknown one).
$s2->append_conf('postgresql.conf', 'replica_router.observe = off');
$s2->reload;
ok(defined wait_until(10, sub { (ask($s2, 'SELECT count(*) FROM replica_router._hints()') // '') eq '0' }, 0.1),
	'observe = off on s2: its worker publishes no polls');
is(ask($s2, "SELECT string_agg(v || ':' || n, ',' ORDER BY v) FROM (SELECT 'status' v, count(*) n FROM replica_router.status WHERE node = 'p'"
	  . " UNION ALL SELECT 'pool_state', count(*) FROM replica_router.pool_state WHERE node = 'p') x"),
	'pool_state:1,status:1', 'observe = off on s2: p has one row in status and in pool_state');
$s2->adjust_conf('postgresql.conf', 'replica_router.observe', 'on');
$s2->reload;
ok(defined wait_view($s2, 'p=primary,s1=healthy,s2=healthy'), 'observe = on again on s2: its live view is back');
is(ask($s1, 'SELECT hint_writes FROM replica_router.worker_status()'), '0',
	'the observer on s1 writes nothing');
like(ask($s1, "SELECT reason FROM replica_router.recommend('read')"), qr/healthy replica/,
	'on s1, the read answer comes from live polls');

###############################################################################
# b. A registry change reaches the observers once replayed
###############################################################################
{
	my $t0 = time;
	$rr->q("SELECT replica_router.alter_node('s2', weight => 7)");
	for my $n ($s1, $s2)
	{
		my $took = wait_until(10,
			sub { (ask($n, "SELECT weight FROM replica_router._hints() WHERE node = 's2'") // '') eq '7' }, 0.01);
		ok(defined $took, 'registry change (weight) reached the worker on ' . $n->name);
	}
	push @figures, sprintf('registry change in the observers\' shared memory %.3f s after the commit', time - $t0);
	my ($rc, $out, $err) = $s1->psql('postgres', "SELECT replica_router.alter_node('s2', weight => 9)");
	like($err, qr/the replica_router registry can only be changed on the primary/,
		'a registry change on a standby says to run it on the primary');
}

# Every member, as a multi-host libpq source for the client programs.
my $members = sprintf('host=%s port=%s dbname=postgres', join(',', map { $node{$_}->host } qw(p s1 s2)),
	join(',', map { $node{$_}->port } qw(p s1 s2)));
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $cli = RRTest::tool('replica_router');

# follow --once from every member: (exit code, stderr, the file's aliases).
sub follow_once
{
	my ($file) = @_;
	my ($rc, $out, $err) = RRTest::run_tool($cli, 'follow', '--source', $members, '--dbname', 'app',
		'--output', $file, '--once');
	my $content = -e $file ? slurp_file($file) : '';
	my %port = $content =~ /^(app_\w+) = host=\S+ port=(\d+)/mg;
	return ($rc, $err, { map { $_ => $name_of_port{ $port{$_} } // "port $port{$_}" } keys %port });
}

# g. serve, given every member (and a password, which its log must not show):
# with several hosts it reads only a read-write one, so it has to find s1 by
# reconnecting after the promotion.
my $secret = "rr-serve-secret-$$";
my $serve = RRTest::Serve->new("$members password=$secret", '--interval', '100ms');

# serve's answer to GET $path, in short: /primary as "status:node" ("200:p",
# "503:-"), /metrics as "source_role:the nodes labelled role=primary"
# ("primary:p"), or the series it gives twice, or its status; any other path
# as its status.
sub serve_says
{
	my ($path) = @_;
	my ($st, $body) = $serve->get($path);
	return "$st:" . ($body =~ /"node":"([^"]+)"/ ? $1 : '-') if $path eq '/primary';
	return $st if $path ne '/metrics' || $st != 200;
	my %seen;
	my @twice = grep { $seen{$_}++ } $body =~ /^(\w+\{.*\}) /mg;
	return "twice:" . join(',', @twice) if @twice;    # as the primary once was, being a member (add_node)
	my ($source) = $body =~ /^replica_router_info\{.*source_role="(\w+)"/m;
	my %primary = map { $_ => 1 } $body =~ /\{node="([^"]+)",role="primary"/g;
	return ($source // '?') . ':' . join(',', sort keys %primary);
}

sub wait_serve
{
	my ($path, $want, $seconds) = @_;
	my $last = '';
	my $took = wait_until($seconds, sub { ($last = serve_says($path)) eq $want }, 0.02);
	diag("serve: $path waited for [$want], last [$last]\n" . $serve->log) unless defined $took;
	return $took;
}

# A child process samples serve every 25 ms until killed, one line "time
# /primary /node/s1/primary /metrics" each: "never" then covers every moment
# of the outage and the promotion, not only those the assertions look at.
sub watch_serve
{
	my ($file) = @_;
	my $parent = $$;
	my $pid = fork // die "fork: $!";
	return $pid if $pid;
	$serve->close_http;    # a connection of its own, not the parent's
	open my $fh, '>', $file or POSIX::_exit(1);
	$fh->autoflush(1);
	my $until = time + 300;    # should the parent die unnoticed
	while (getppid() == $parent && time < $until)
	{
		print $fh join(' ', sprintf('%.3f', time), map { serve_says($_) } '/primary', '/node/s1/primary', '/metrics'),
		  "\n";
		Time::HiRes::usleep(25_000);
	}
	POSIX::_exit(0);    # no END blocks: they would stop the clusters
}

# Stops the child; notes serve's answers in order (each with how many samples
# in a row gave it); returns the samples, [time, /primary, /node/s1/primary,
# /metrics] each.
sub stop_watching
{
	my ($pid, $file) = @_;
	my $read = sub { map { [ split / / ] } split /\n/, slurp_file($file) };
	# The test's waits may end before the child's next sample: let it see s1 answer.
	wait_until(10, sub { grep { $_->[2] == 200 } $read->() });
	kill 'TERM', $pid;
	waitpid($pid, 0);
	my @samples = $read->();
	my @runs;
	for my $answer (map { "@$_[1 .. 3]" } @samples)
	{
		@runs && $runs[-1][0] eq $answer ? $runs[-1][1]++ : push @runs, [ $answer, 1 ];
	}
	note("serve's answers (/primary /node/s1/primary /metrics) in order:\n  "
		  . join("\n  ", map { "$_->[0] x$_->[1]" } @runs));
	return @samples;
}

ok(defined wait_serve('/primary', '200:p', 20), 'serve, given every member, answers /primary 200 naming p');
is(serve_says('/node/p/primary'), 200, 'serve: /node/p/primary 200');
is(serve_says('/metrics'), 'primary:p', 'serve: /metrics from a primary source, p alone role="primary", each series once');
my $watch_file = "$tmp/serve-samples";
my $watcher = watch_serve($watch_file);

###############################################################################
# c. The primary stops: reads go on from live polls, writes say no primary
###############################################################################
{
	$rr->finish;
	my $t0 = time;
	$p->stop('immediate');
	for my $n ($s1, $s2)
	{
		my $took = wait_named($n, 'write', 'error: RR002', 10);
		ok(defined $took, 'primary down: recommend(write) on ' . $n->name . ' raises RR002');
		push @figures, sprintf('primary down: RR002 on %s %.3f s after the stop', $n->name, time - $t0);
		my @reads = map { named($n, 'read') } 1 .. 10;
		is(join(',', grep { !/^s[12]$/ } @reads), '',
			'primary down: reads on ' . $n->name . ' keep naming the standbys');
	}
	my ($rc, $out, $err) = $s1->psql('postgres', "SELECT * FROM replica_router.recommend('write')");
	like($err, qr/no primary is reachable/, 'the error says no primary is reachable');
	like(view_of($s1), qr/^p=down,/, 'on s1, p is down');

	# g. The client programs during the outage.
	my ($crc, $cout) = RRTest::run_tool($cli, 'check', '-d', $members, 'lag', '--node', 's2');
	is($crc, 0, "check, given every member, answers from a standby while p is down: $cout");
	like($cout, qr/^REPLICA_ROUTER LAG OK/, 'the check says OK for s2');
	my ($frc, $ferr, $aliases) = follow_once("$tmp/outage.ini");
	isnt($frc, 0, 'follow --once during the outage fails: no primary to point writes at');
	like($ferr, qr/no primary is reachable/, 'the follower says no primary is reachable');
	ok(!-e "$tmp/outage.ini", 'the follower writes no file naming the dead primary');

	# serve reaches no read-write member: p's last snapshot until stale_after (2s), then 503.
	my $took = wait_serve('/primary', '503:-', 20);
	ok(defined $took, 'primary down: serve answers /primary 503 once its data is older than stale_after');
	cmp_ok(time - $t0, '>=', 1.0, 'not before the data is old');
	push @figures, sprintf('primary down: serve 503 (stale_after 2s) %.3f s after the stop', time - $t0);
	like(($serve->get('/primary'))[1], qr/older than stale_after \(2\.0s\); last error: .*read-only/,
		'the body says how old the data is and why it is not newer');
	is(serve_says('/metrics'), 503, 'serve: /metrics 503 too');
}

###############################################################################
# d. s1 promoted, s2 re-pointed: writes to s1 everywhere, reads to s2
###############################################################################
{
	my $t0 = time;
	$s1->promote;
	my $promoted = time;
	for my $n ($s1, $s2)
	{
		my $took = wait_named($n, 'write', 's1', 20);
		ok(defined $took, 'after promotion: recommend(write) on ' . $n->name . ' names s1, no registry edit');
		push @figures, sprintf('failover: %s names s1 for writes %.3f s after pg_ctl promote returned',
			$n->name, time - $promoted);
	}
	$s2->enable_streaming($s1);
	$s2->reload;
	for my $n ($s1, $s2)
	{
		ok(defined wait_view($n, 'p=down,s1=primary,s2=healthy', 30),
			'on ' . $n->name . ': s1 primary, s2 healthy once it streams from s1');
		ok(defined wait_named($n, 'read', 's2', 10), 'on ' . $n->name . ': reads go to s2');
	}
	push @figures, sprintf('failover: s2 routed for reads %.3f s after the promotion', time - $t0);
	ok( defined wait_until(10,
			sub { (ask($s1, 'SELECT hint_writes > 0 FROM replica_router.worker_status()') // '') eq 't' }),
		'the same worker on s1 writes hints once promoted');
	# Once replayed: s1 may have written it a moment ago.
	ok(defined wait_until(10, sub { (ask($s2, 'SELECT primary_node FROM replica_router.heartbeat') // '') eq 's1' }),
		"s1's heartbeat replicated to s2 names s1");

	# g. The client programs after the failover, still given p first.
	my ($frc, $ferr, $aliases) = follow_once("$tmp/after.ini");
	is($frc, 0, 'follow --once from every member after the failover') or diag($ferr);
	is(join(',', map { "$_=$aliases->{$_}" } sort keys %$aliases), 'app_read=s2,app_write=s1',
		'the follower points writes at s1 and reads at s2');
	my ($crc, $cout) = RRTest::run_tool($cli, 'check', '-d', $members, 'lag', '--node', 's2');
	is($crc, 0, "check from every member after the failover: $cout");

	# g. serve, reconnected to s1 by itself.
	ok(defined wait_serve('/node/s1/primary', 200, 20), 'after promotion: serve answers /node/s1/primary 200');
	is(serve_says('/primary'), '200:s1', 'serve: /primary 200 naming s1');
	is(serve_says('/node/p/primary'), 503, 'serve: /node/p/primary 503');
	ok(defined wait_serve('/node/s2/replica?max_lag=5s', 200, 30), 'serve: /node/s2/replica?max_lag=5s 200');
	ok(defined wait_serve('/metrics', 'primary:s1', 10), 'serve: /metrics has s1 alone role="primary", each series once');

	my @samples = stop_watching($watcher, $watch_file);
	# Who may be named the primary when: p until serve first said 503 (its
	# data stale), nobody then, s1 once pg_ctl promote was called.
	my ($stale) = map { $_->[0] } grep { $_->[1] =~ /^503/ } @samples;
	ok(defined $stale && @samples >= 40, sprintf('serve sampled %d times, 503 during the outage', scalar @samples));
	my @wrong = grep {
		my ($t, $primary, $s1, $metrics) = @$_;
		my $may = $t >= $t0 ? 's1' : $t < ($stale // 9**9**9) ? 'p' : '';
		my @named = ($primary =~ /^200:(.+)/, $s1 == 200 ? 's1' : (), $metrics =~ /^primary:(.+)/ ? split(/,/, $1) : ());
		$metrics !~ /^(503$|primary:)/ || grep { $_ ne $may } @named;
	} @samples;
	is(join("\n", map { "@$_" } @wrong), '',
		'serve named p the primary until its data was stale, then nobody, then s1; never a standby');
	my ($first) = grep { $_->[0] >= $t0 && $_->[2] == 200 } @samples;
	push @figures, sprintf('failover: serve /node/s1/primary 200 %.3f s after pg_ctl promote was called'
		  . ' (it returned after %.3f s)', $first->[0] - $t0, $promoted - $t0) if $first;

	$serve->stop;
	unlike($serve->log, qr/\Q$secret\E|password/i, 'serve logs no password');
}

###############################################################################
# e. Split brain: the old primary restarted as a primary
###############################################################################
{
	$p->start;
	for my $n ($s1, $s2, $p)
	{
		ok(defined wait_view($n, 'p=promoted,s1=primary,s2=healthy', 20),
			'split brain, on ' . $n->name . ': p (old timeline) promoted, s1 stays the primary');
		is(named($n, 'write'), 's1', 'split brain, on ' . $n->name . ': writes name s1');
		my @reads = map { named($n, 'read') } 1 .. 10;
		is(join(',', grep { $_ ne 's2' } @reads), '', 'split brain, on ' . $n->name . ': reads never reach p');
	}
	is(ask($s1, "SELECT severity FROM replica_router.lag WHERE node = 'p'"), 'critical',
		'split brain: p is critical');
	like(ask($s1, "SELECT error FROM replica_router.status WHERE node = 'p'"),
		qr/out of recovery on timeline 1, but the primary is s1 \(timeline 2/, 'split brain: the error says why');

	# Writable is not elected: p's own snapshot says so, its metrics never
	# page, and a serve reading p alone fails /primary but names s1.
	is(join(',', map { ask($_, "SELECT replica_router.snapshot() ->> 'source_role'") // '?' } $p, $s1, $s2),
		'unelected,primary,standby', 'split brain: snapshot() source_role on p, s1, s2');
	like(ask($p, 'SELECT replica_router.metrics()'), qr/^replica_router_source_is_primary 0$/m,
		'split brain: metrics() on p: source_is_primary 0');
	my $on_p = RRTest::Serve->new($rr->conninfo($p) . " password=$secret", '--interval', '100ms');
	my $said = '';
	# Waits for serve's first snapshot of p (before it, every answer is 503 "no data yet").
	ok(defined wait_until(20, sub { $said = join ' ', ($on_p->get('/primary'))[0 .. 1]; $said =~ /not the primary the members elect/ }, 0.1),
		'split brain: serve reading p answers /primary 503, p is not the elected primary') or diag($said);
	like($said, qr/^503 /, '... with status 503');
	is(($on_p->get('/node/s1/primary'))[0], 200, 'split brain: serve reading p: /node/s1/primary 200 (p\'s worker names s1)');
	is(($on_p->get('/node/p/primary'))[0], 503, 'split brain: serve reading p: /node/p/primary 503');
	$on_p->stop;
}

###############################################################################
# f. The old primary rewound and started as a standby of s1
###############################################################################
{
	$p->stop('fast');
	# pg_rewind copies the source's configuration files: keep p's own.
	my $conf = slurp_file($p->data_dir . '/postgresql.conf');
	my ($stdout, $stderr);
	my $ok = IPC::Run::run(
		[
			'pg_rewind', '--target-pgdata', $p->data_dir,
			'--source-server', $s1->connstr('postgres')
		],
		'>', \$stdout, '2>', \$stderr);
	ok($ok, 'pg_rewind of the old primary from s1') or diag($stderr);
	open(my $fh, '>', $p->data_dir . '/postgresql.conf') or die $!;
	print $fh $conf;
	close $fh;
	$p->enable_streaming($s1);
	$p->start;
	for my $n ($s1, $s2, $p)
	{
		ok(defined wait_view($n, 'p=healthy,s1=primary,s2=healthy', 30),
			'rewound, on ' . $n->name . ': p is a healthy replica of s1');
	}
	is(named($p, 'write'), 's1', 'on p, now a standby: writes name s1');
}

for my $n ($p, $s1, $s2)
{
	my @bad = grep { /terminated by signal|PANIC:|TRAP:/ } split /\n/, slurp_file($n->logfile);
	is(scalar(@bad), 0, 'log of ' . $n->name . ': no process terminated by a signal') or diag(join "\n", @bad);
}
note("figures:\n  " . join("\n  ", @figures));
done_testing();
