# The command-line tools against hostile values and forged notifications:
#
#   (F13) replica_router_check keeps "|" (Nagios' performance data separator)
#         and control characters out of its status text, whatever the views
#         or the server's errors hold;
#   (F8)  the follower refuses hosts pgbouncer's configuration cannot carry
#         (keeps the last good file, fails in --once mode), escapes control
#         characters in its log, and reports a RELOAD that pgbouncer did not
#         apply (checked with SHOW DATABASES) as a failure;
#   (F15) the follower acts only on notifications sent by the worker's
#         backend: a NOTIFY replica_router from any other session is ignored,
#         a real state change and a restarted worker's notifications are not.
#
# The tools call only functions and views in schema replica_router, so the
# hostile values come from a scratch database whose schema replica_router
# holds stand-ins returning them (the check also wants the extension's row in
# pg_extension: the real extension is created there, its schema renamed).
# Waits are deadline-bounded polls; nothing sleeps to synchronise.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use RRTest qw(wait_until);

my $t_start = time;
my $user = getpwuid($<);

my $check_bin = RRTest::tool('replica_router_check');
my $follower_bin = RRTest::tool('replica_router_follower');

my $rr = RRTest->new(standbys => ['s1']);
my $primary = $rr->primary;
my $s1 = $rr->standby('s1');
my $tmp = PostgreSQL::Test::Utils::tempdir();

sub run_tool { return RRTest::run_tool(@_); }

# Lines of the follower's log that it did not write: each of its lines starts
# with a time stamp and its name, and the hostile values forge lines stamped
# 2099.
sub forged_lines
{
	my ($log) = @_;
	return grep { /^2099-/ || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z replica_router_follower: / } split /\n/, $log;
}

###############################################################################
# The scratch database: stand-ins for what the tools read
###############################################################################
$rr->q('CREATE DATABASE hostile');
$primary->safe_psql('hostile', q{
CREATE EXTENSION replica_router;
ALTER SCHEMA replica_router RENAME TO replica_router_real;
CREATE SCHEMA replica_router;

-- What the follower reads: recommend('write'), candidates(op), heartbeat,
-- worker_status(); the rows come from fake_nodes.
CREATE TABLE fake_nodes (node text, host text, port integer, role text, rank integer, reason text);
INSERT INTO fake_nodes VALUES ('p1', '127.0.0.1', 5001, 'primary', NULL, 'the primary'),
                              ('r1', '127.0.0.1', 5002, 'replica', 1, 'healthy replica');
CREATE TABLE replica_router.heartbeat (primary_time timestamptz);
CREATE FUNCTION replica_router.recommend(operation text DEFAULT 'read',
    OUT node text, OUT host text, OUT port integer, OUT role text, OUT reason text)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT f.node, f.host, f.port, f.role, f.reason INTO node, host, port, role, reason
      FROM public.fake_nodes f WHERE f.role = 'primary';
END$$;
CREATE FUNCTION replica_router.candidates(operation text DEFAULT 'read',
    OUT rank integer, OUT node text, OUT host text, OUT port integer, OUT role text,
    OUT qualified boolean, OUT reason text)
RETURNS SETOF record LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT f.rank, f.node, f.host, f.port, f.role, true, f.reason
                   FROM public.fake_nodes f WHERE f.rank IS NOT NULL ORDER BY f.rank;
END$$;
CREATE FUNCTION replica_router.worker_status(OUT pid integer)
LANGUAGE plpgsql AS $$ BEGIN pid := NULL; END$$;

-- What the check reads: the four views (tables here) and two helpers.
CREATE FUNCTION replica_router._ms_setting(name text) RETURNS interval
LANGUAGE plpgsql AS $$ BEGIN RETURN current_setting(name)::interval; END$$;
CREATE FUNCTION replica_router._worst(VARIADIC s text[]) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN CASE WHEN 'critical' = ANY (s) THEN 'critical' WHEN 'warning' = ANY (s) THEN 'warning' ELSE 'ok' END;
END$$;
CREATE FUNCTION replica_router.states(OUT state text, OUT severity text, OUT lag_judged boolean,
    OUT routable boolean, OUT meaning text) RETURNS SETOF record
LANGUAGE sql AS $$ VALUES ('healthy', 'ok', true, true, ''), ('lagging', 'ok', true, false, ''),
    ('down', 'critical', false, false, '') $$;
CREATE TABLE replica_router.lag (node text, state text, replay_lag_seconds float8, replay_paused boolean,
    error text, severity text);
INSERT INTO replica_router.lag VALUES
    ('r|1', 'down', NULL, false,
     'connection refused | injected=99s;1;2;0' || chr(10) || 'forged long output' || chr(27) || '[2J', 'critical'),
    ('r2', 'healthy', 0.5, false, NULL, 'ok');
CREATE TABLE replica_router.slot_health (slot_name text, replica text, active boolean, wal_status text,
    retained_bytes int8, retained text, reason text, inactive_for interval, xmin_age integer,
    catalog_xmin_age integer, severity text);
INSERT INTO replica_router.slot_health VALUES
    ('s|1', 'r|1', false, 'reserved', 100, '100 bytes',
     'wal_status lost | slot_perf=1' || chr(13) || chr(10) || 'second' || chr(7), '1 s', 0, 0, 'critical');
CREATE TABLE replica_router.pool_state (node text, role text, state text, connections integer,
    usable_connections integer, utilisation_pct numeric, cl_waiting integer, pgbouncer_ok boolean,
    pgbouncer_error text, severity text);
INSERT INTO replica_router.pool_state VALUES
    ('n|1', 'replica', 'healthy', 1, 10, 10, 0, false,
     'refused | pool_perf=1' || chr(10) || 'forged' || chr(1), 'warning');
CREATE TABLE replica_router.health (severity text, healthy_replicas integer, registered_replicas integer,
    most_lagging text, worker_alive boolean, worker_pid integer, max_replay_lag interval,
    last_round_age interval, last_round_duration interval, registry_problem text);
INSERT INTO replica_router.health VALUES
    ('critical', 1, 2, 'r2|evil=1', true, 1, '0.5 s', '1 s', '0.1 s', NULL);
});
my $hostile = $primary->connstr('hostile');

###############################################################################
# (F13) the check: one status line, one "|" (its own), no control characters
###############################################################################
{
	my %want = (
		lag => qr/^REPLICA_ROUTER LAG CRITICAL - r\/1 down \(connection refused \/ injected=99s;1;2;0 forged long output \[2J\) \| r2=0\.5s;5;30;0 r_1=U;5;30;0$/,
		slots => qr/^REPLICA_ROUTER SLOTS CRITICAL - s\/1 \(replica r\/1\) wal_status lost \/ slot_perf=1 second ?, inactive for 1s \| s_1=100B;\d+;\d+;0$/,
		pools => qr/^REPLICA_ROUTER POOLS WARNING - n\/1 pgbouncer unreachable \(refused \/ pool_perf=1 forged ?\) \| n_1=10(\.0)?%;80;90;0;100 n_1_cl_waiting=0;;;0$/,
		health => qr/^REPLICA_ROUTER HEALTH CRITICAL - lag r\/1 critical, slot s\/1 critical, pool n\/1 warning; 1\/2 replicas healthy, max lag 0\.5s \(r2\/evil=1\), worker alive \| healthy_replicas=1;;;0;2 /);
	for my $command (qw(lag slots pools health))
	{
		my ($rc, $out, $err) = run_tool($check_bin, '-d', $hostile, $command);
		chomp $out;
		my $bars = () = $out =~ /\|/g;
		ok($out !~ /[\x00-\x1f\x7f]/ && $bars == 1,
			"check $command: one line, no control characters, one \"|\" (before its performance data)")
		  or diag("exit $rc, output: " . join('\n', split /\n/, $out) . "\nstderr: $err");
		like($out, $want{$command}, "check $command: \"|\" in names and texts from the server shown as \"/\" ($out)");
	}

	# An error message from the server: UNKNOWN has no performance data, so no "|" at all.
	my ($rc, $out) = run_tool($check_bin, '-d', $primary->connstr('no|such') . ' connect_timeout=10', 'health');
	chomp $out;
	ok($rc == 3 && $out =~ /^REPLICA_ROUTER HEALTH UNKNOWN - cannot connect: .*"no\/such"/ && $out !~ /\|/,
		"check with the server's error naming a database \"no|such\": UNKNOWN, no \"|\" ($out)");
}

###############################################################################
# (F8) the follower before a real pgbouncer, fed hostile hosts
###############################################################################
my $include = "$tmp/hostile.ini";
my $bport = PostgreSQL::Test::Cluster::get_free_port();
my $admin = "host=127.0.0.1 port=$bport dbname=pgbouncer user=$user connect_timeout=10";
my @follow = ($follower_bin, '--source', $hostile, '--output', $include, '--dbname', 'app');

sub follow_once
{
	my ($rc, undef, $err) = run_tool(@follow, '--once', '--pgbouncer', $admin, @_);
	return ($rc, $err);
}

sub fake
{
	my ($sql) = @_;
	$primary->safe_psql('hostile', $sql);
}

# Where pgbouncer's alias points, as SHOW DATABASES says: host:port/database.
sub bouncer_has
{
	my ($alias) = @_;
	my ($rc, $out, $err) = run_tool('psql', '-XAtq', '-F', ' ', '-d', $admin, '-c', 'SHOW DATABASES');
	for my $line (split /\n/, $out)
	{
		my ($name, $host, $port, $db) = split / /, $line;
		return "$host:$port/$db" if $name eq $alias;
	}
	return undef;
}

my $pgbouncer_ini = "$tmp/pgbouncer.ini";
sub write_pgbouncer_ini
{
	my ($extra) = @_;
	open my $fh, '>', "$tmp/userlist.txt" or die $!;
	print $fh qq{"$user" ""\n};
	close $fh;
	open $fh, '>', $pgbouncer_ini or die $!;
	print $fh <<"EOF";
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $tmp/userlist.txt
admin_users = $user
logfile = $tmp/pgbouncer.log
pidfile = $tmp/pgbouncer.pid
${\ ($extra // '')}
%include $include
EOF
	close $fh;
}

SKIP:
{
	skip 'pgbouncer is not installed', 1 unless -x '/usr/sbin/pgbouncer';

	# pgbouncer needs the file at start: written once first (no --pgbouncer).
	my ($rc, undef, $err) = run_tool(@follow, '--once');
	die "the follower could not write the first file: $err" if $rc != 0;
	write_pgbouncer_ini();
	my $bouncer = IPC::Run::start([ '/usr/sbin/pgbouncer', $pgbouncer_ini ], '>', \my $b_out, '2>', \my $b_err);
	RRTest::track($bouncer);
	wait_until(10, sub { defined bouncer_has('app_read') }, 0.05)
	  or die "pgbouncer did not start: $b_err";

	# Hosts pgbouncer takes as they are: written, reloaded, and pgbouncer checked.
	for my $host ('::1', '/var/run/postgresql', 'db-1.example.com')
	{
		fake("UPDATE fake_nodes SET host = '$host' WHERE node = 'r1'");
		($rc, $err) = follow_once();
		ok( $rc == 0
			  && $err =~ /pgbouncer at 127\.0\.0\.1:$bport reloaded \(SHOW DATABASES: app_read -> \Q$host\E:5002\/app, app_write -> 127\.0\.0\.1:5001\/app\)$/m,
			"host $host: written, and the reload checked with SHOW DATABASES")
		  or diag("exit $rc: $err");
	}
	fake(q{UPDATE fake_nodes SET host = '127.0.0.1' WHERE node = 'r1'});
	($rc, $err) = follow_once();
	die "the follower could not go back to 127.0.0.1: $err" if $rc != 0;

	# Hosts it cannot carry: refused with one line, the file and pgbouncer unchanged.
	my $forged = '2099-01-01T00:00:00.000Z replica_router_follower: pgbouncer at 127.0.0.1:1 reloaded';
	for my $case (
		[ 'r1', "'10.0.0.9' || chr(10) || '$forged'", "10.0.0.9\\n$forged", 'a newline and a forged log line' ],
		[ 'r1', q{'db1' || chr(13) || 'x'}, 'db1\\rx', 'a carriage return' ],
		[ 'r1', q{'db1' || chr(27) || '[2J'}, 'db1\\x1b[2J', 'an escape sequence' ],
		[ 'r1', q{'db 1'}, 'db 1', 'a blank' ],
		[ 'r1', q{'db''1'}, "db'1", 'a quote' ],
		[ 'r1', q{'db1 dbname=evil'}, 'db1 dbname=evil', 'a second parameter' ],
		[ 'r1', q{'db1,db2'}, 'db1,db2', 'a comma (two hosts)' ],
		[ 'p1', q{'db1;x'}, 'db1;x', 'a semicolon, for the write alias' ])
	{
		my ($node, $sql, $shown, $what) = @$case;
		my $alias = $node eq 'p1' ? 'app_write' : 'app_read';
		my ($file_before, $bouncer_before) = (slurp_file($include), bouncer_has($alias));
		fake("UPDATE fake_nodes SET host = $sql WHERE node = '$node'");
		($rc, $err) = follow_once();
		ok( $rc != 0
			  && $err =~ /: source \S+: refusing host \Q"$shown"\E of node "$node" for $alias: .*; keeping \Q$include\E as it is$/m,
			"a host with $what: --once fails and says why, with the host escaped")
		  or diag("exit $rc: $err");
		ok(slurp_file($include) eq $file_before && bouncer_has($alias) eq $bouncer_before,
			"a host with $what: the file and pgbouncer are unchanged");
		if ($shown =~ /\\n/)
		{
			my @forged = forged_lines($err);
			is(join("\n", @forged), '', 'a host with a newline: no forged line in the log');
		}
		fake("UPDATE fake_nodes SET host = '127.0.0.1' WHERE node = '$node'");
	}

	# Control characters in a node name (comment lines, log lines): escaped.
	fake(qq{UPDATE fake_nodes SET node = 'r1' || chr(10) || '$forged' || chr(27) || '[2J', port = 5006 WHERE node = 'r1'});
	($rc, $err) = follow_once();
	my $file = slurp_file($include);
	my @bad_lines = grep { !/^(; [^\x00-\x1f\x7f]*|\[databases\]|app_(read|write) = host=\S+ port=\d+ dbname=app)$/ }
	  split /\n/, $file;
	ok( $rc == 0
		  && $err =~ /wrote \Q$include\E: app_read -> r1\\n\Q$forged\E\\x1b\[2J 127\.0\.0\.1:5006 /
		  && !forged_lines($err) && !@bad_lines,
		'a node name with a newline and an escape sequence: escaped in the log and the file\'s comments')
	  or diag("exit $rc: $err\nfile:\n$file");
	fake(q{UPDATE fake_nodes SET node = 'r1' WHERE port = 5006});

	# A RELOAD pgbouncer does not apply (its own configuration is broken: it
	# logs the error, keeps the old databases and answers RELOAD as usual).
	write_pgbouncer_ini('bogus_setting = 1');
	fake(q{UPDATE fake_nodes SET port = 5003 WHERE node = 'r1'});
	($rc, $err) = follow_once();
	ok( $rc != 0
		  && $err =~ /pgbouncer 127\.0\.0\.1:$bport: reload failed: pgbouncer has app_read -> 127\.0\.0\.1:5006\/app, \Q$include\E has 127\.0\.0\.1:5003\/app: it did not load the file/
		  && $err !~ /reloaded/,
		'--once: a RELOAD pgbouncer did not apply is a failure (exit 1, "reload failed")')
	  or diag("exit $rc: $err");

	# The long-running follower: reports it, retries, and succeeds once
	# pgbouncer's configuration is fixed.
	my $follower_log = "$tmp/follower.log";
	open my $flog, '>', $follower_log or die $!;
	my $follower = IPC::Run::start([ @follow, '--pgbouncer', $admin, '--interval', '200ms' ], '>', $flog, '2>', $flog);
	RRTest::track($follower);
	ok( defined wait_until(30, sub { slurp_file($follower_log) =~ /reload failed: pgbouncer has app_read -> 127\.0\.0\.1:5006\/app/ })
		  && slurp_file($follower_log) !~ /reloaded/,
		'the follower reports the RELOAD pgbouncer did not apply, and not "reloaded"')
	  or diag(slurp_file($follower_log));
	write_pgbouncer_ini();
	ok( defined wait_until(30, sub { slurp_file($follower_log) =~ /reloaded \(SHOW DATABASES: app_read -> 127\.0\.0\.1:5003\/app, / })
		  && bouncer_has('app_read') eq '127.0.0.1:5003/app',
		'pgbouncer\'s configuration fixed: the retried RELOAD applies, and is checked')
	  or diag(slurp_file($follower_log));

	# A hostile host while it runs: one refusal line, then on as soon as the host is good.
	my $before = slurp_file($include);
	fake("UPDATE fake_nodes SET host = '10.0.0.9' || chr(10) || '$forged' WHERE node = 'r1'");
	my $shown = "10.0.0.9\\n$forged";
	ok( defined wait_until(15, sub { slurp_file($follower_log) =~ /refusing host \Q"$shown"\E of node "r1" for app_read: .*; retrying in / }),
		'the running follower refuses the host, with one line')
	  or diag(slurp_file($follower_log));
	is(slurp_file($include), $before, 'and keeps the file');
	fake(q{UPDATE fake_nodes SET host = '127.0.0.1', port = 5007 WHERE node = 'r1'});
	ok( defined wait_until(30, sub { slurp_file($follower_log) =~ /reloaded \(SHOW DATABASES: app_read -> 127\.0\.0\.1:5007\/app, / }),
		'a good host again: written and reloaded')
	  or diag(slurp_file($follower_log));
	my @refusals = slurp_file($follower_log) =~ /(refusing host)/g;
	my @forged = forged_lines(slurp_file($follower_log));
	ok(@refusals == 1 && !@forged, 'the refusal was logged once, and no line of the log is forged')
	  or diag(slurp_file($follower_log));
	$follower->signal('TERM');
	$follower->finish;
	close $flog;
	note("follower log:\n" . slurp_file($follower_log));

	$bouncer->signal('INT');
	$bouncer->finish;
}

###############################################################################
# (F15) forged notifications on the real primary
###############################################################################
{
	$rr->q('CREATE ROLE mallory LOGIN');
	my $out_file = "$tmp/f15.ini";
	my $follower_log = "$tmp/f15.log";
	my ($pport, $sport) = ($primary->port, $s1->port);
	open my $flog, '>', $follower_log or die $!;
	# A long --interval: only notifications make it read the routing again.
	my $follower = IPC::Run::start(
		[
			$follower_bin, '--source', $primary->connstr('postgres'), '--output', $out_file,
			'--dbname', 'app', '--interval', '10min'
		],
		'>', $flog, '2>', $flog);
	RRTest::track($follower);
	my $read_port = sub { my ($p) = slurp_file($out_file) =~ /^app_read = host=\S+ port=(\d+) /m; $p // '' };
	# The [databases] lines (the comments have the time).
	my $body = sub { join "\n", grep { !/^;/ } split /\n/, slurp_file($out_file) };
	wait_until(15, sub { -e $out_file && $read_port->() eq $sport })
	  or die "the follower did not point app_read at s1:\n" . slurp_file($follower_log);

	# Tampered with by hand: a refresh would put it right.
	my $tampered = slurp_file($out_file) =~ s/^(app_read = host=\S+) port=\d+/$1 port=1/mr;
	my $tamper = sub { open my $fh, '>', $out_file or die $!; print $fh $tampered; close $fh; };
	$tamper->();

	my $worker = $rr->q('SELECT pid FROM replica_router.worker_status()');
	my $payload = sprintf('{"node" : "s1", "old_state" : "healthy", "new_state" : "down", "lag_seconds" : null, '
		  . '"lag_bytes" : null, "at" : "2099-01-01T00:00:00+00", "worker_pid" : %d}', $worker);
	my $mallory = $primary->safe_psql('postgres', "SELECT pg_backend_pid(); NOTIFY replica_router, '$payload'",
		extra_params => [ '-U', 'mallory' ]);
	ok( defined wait_until(15, sub { slurp_file($follower_log) =~
				  /ignored a notification on channel replica_router from backend PID $mallory \(not the replica_router worker\)/ }),
		"a NOTIFY from another session (PID $mallory, payload naming the worker's PID $worker): ignored, with a line")
	  or diag(slurp_file($follower_log));
	is(slurp_file($out_file), $tampered, 'the forged notification made the follower read nothing (the file stays as tampered)');

	# A real state change: the worker's notification moves the alias.
	$s1->stop('fast');
	ok( defined wait_until(20, sub { $read_port->() eq $pport })
		  && slurp_file($follower_log) =~ /the replica_router worker is backend PID $worker$/m,
		'the worker\'s notification (PID known from worker_status()) moves app_read to the primary when s1 stops')
	  or diag(slurp_file($follower_log));

	# A restarted worker has a new PID: its notifications count as soon as it
	# sends them (at start, for every node).
	$tampered = slurp_file($out_file) =~ s/^(app_read = host=\S+) port=\d+/$1 port=1/mr;
	my $good = $body->();
	$tamper->();
	$rr->q("SELECT pg_terminate_backend($worker)");
	my $new_worker = '';
	wait_until(30, sub { ($new_worker = $rr->q('SELECT pid FROM replica_router.worker_status()')) =~ /^\d+$/ && $new_worker ne $worker })
	  or die 'the worker did not restart';
	ok( defined wait_until(30, sub { $body->() eq $good })
		  && slurp_file($follower_log) =~ /the replica_router worker is backend PID $new_worker$/m,
		"a restarted worker (PID $new_worker): its notification is followed, the file put right")
	  or diag(slurp_file($follower_log));

	$follower->signal('TERM');
	$follower->finish;
	close $flog;
	note("follower log:\n" . slurp_file($follower_log));
}

$rr->finish;
diag(sprintf('072_tools_security took %.1fs', time - $t_start));
done_testing();
