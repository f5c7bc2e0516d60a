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
#   g. (during c and d) the check command and the follower, given every member
#      as a multi-host source, answer from whichever member is up: during the
#      outage the follower keeps its file (no primary is reachable); after
#      the promotion it points writes at s1 and reads at s2
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
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
	is(ask($s2, "SELECT primary_node FROM replica_router.heartbeat"), 's1',
		"s1's heartbeat replicated to s2 names s1");

	# g. The client programs after the failover, still given p first.
	my ($frc, $ferr, $aliases) = follow_once("$tmp/after.ini");
	is($frc, 0, 'follow --once from every member after the failover') or diag($ferr);
	is(join(',', map { "$_=$aliases->{$_}" } sort keys %$aliases), 'app_read=s2,app_write=s1',
		'the follower points writes at s1 and reads at s2');
	my ($crc, $cout) = RRTest::run_tool($cli, 'check', '-d', $members, 'lag', '--node', 's2');
	is($crc, 0, "check from every member after the failover: $cout");
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
