# Monitoring on a real cluster: a primary with the extension preloaded, two
# streaming standbys on physical replication slots (s1 behind a real
# pgbouncer, s2 plain), and the replica_router_check command.
#
#   (c) pgbouncer's pools appear with the clients opened through it, and
#       waiting clients warn;
#   (b) filling a replica's connections raises pool severity to warning, then
#       critical;
#   (d) paused replay under ongoing writes raises lag severity to warning,
#       then critical, and resuming clears it;
#   (a) a stopped standby's slot goes inactive and the WAL it retains grows
#       through warning to critical;
#   (e) the check command's exit codes follow each of these (0, 1, 2), and it
#       exits 3 when it cannot connect, the extension is missing or the
#       arguments are bad;
#   (f) metrics() is well-formed Prometheus text.
#
# Waits are deadline-bounded polls; nothing sleeps to synchronise.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use RRTest qw(wait_until track);

my $t_start = time;

###############################################################################
# Cluster: primary, s1 and s2 on slots s1 and s2 (listening on 127.0.0.1 too,
# for pgbouncer)
###############################################################################
my $rr = RRTest->new(
	standbys => [qw(s1 s2)],
	slots => 1,
	register => 0,
	conf => q{
listen_addresses = '127.0.0.1'
log_min_messages = 'info'
});
my $primary = $rr->primary;
my ($s1, $s2) = map { $rr->standby($_) } qw(s1 s2);
my $user = $rr->{user};
$rr->q('CREATE TABLE t (i integer)');

my %code = (ok => 0, warning => 1, critical => 2);

# Runs a check against the primary and asserts its exit code and line.
sub check_is
{
	my ($args, $rc_want, $like, $name) = @_;
	my ($rc, $out, $err) = $rr->check(@$args);
	is($rc, $rc_want, "check @$args exits $rc_want: $name") or diag("output: $out\nstderr: $err");
	like($out, $like, "check @$args: status line ($out)") if defined $like;
	is($err, '', "check @$args: nothing on stderr") if $err ne '';
	return $out;
}

###############################################################################
# pgbouncer in front of s1
###############################################################################
my $bouncer = RRTest::PgBouncer->new(
	databases => [ s1db => "host=127.0.0.1 port=${\ $s1->port} dbname=postgres" ],
	settings => { pool_mode => 'transaction', default_pool_size => 2, max_client_conn => 50 });
my $bouncer_db = $bouncer->connstr('s1db');
my $bouncer_admin = $bouncer->admin;
ok(defined $bouncer->wait_up(10), 'pgbouncer is up');

$rr->q("SELECT replica_router.add_replica('s1', '${\ $rr->conninfo($s1, '127.0.0.1')}', pgbouncer => '$bouncer_admin')");
$rr->q("SELECT replica_router.add_replica('s2', '${\ $rr->conninfo($s2, '127.0.0.1')}')");
ok(defined $rr->wait_for(15, "SELECT count(*) = 2 FROM replica_router.status WHERE role = 'replica' AND state = 'healthy'"),
	'both standbys are registered and healthy');

###############################################################################
# At rest: every view ok, slots matched, every check OK
###############################################################################
ok(defined $rr->wait_for(10, "SELECT string_agg(node || ':' || coalesce(matched_by, '-') || ':' || severity, ' ' ORDER BY node)"
			. " FROM replica_router.lag", 's1:slot:ok s2:slot:ok'),
	'lag: both replicas matched to pg_stat_replication by their slot, severity ok');
is( $rr->q("SELECT string_agg(node || ':' || walsender_state || ':' || sync_state || ':' || (sent_lsn IS NOT NULL)"
			. " || ':' || (receive_lsn IS NOT NULL), ' ' ORDER BY node) FROM replica_router.lag"),
	's1:streaming:async:true:true s2:streaming:async:true:true',
	'lag: the primary\'s figures (walsender state, sync state, sent LSN) beside the worker\'s (receive LSN)');
is( $rr->q("SELECT string_agg(slot_name || ':' || slot_type || ':' || active || ':' || replica || ':' || severity, ' '"
			. " ORDER BY slot_name) FROM replica_router.slot_health"),
	's1:physical:true:s1:ok s2:physical:true:s2:ok',
	'slot_health: two active physical slots, each with its replica');
ok(defined $rr->wait_for(10, "SELECT pgbouncer_ok FROM replica_router.pool_state WHERE node = 's1'"),
	'pool_state: the worker reaches s1\'s pgbouncer');
is( $rr->q("SELECT string_agg(node || ':' || role || ':' || (pgbouncer_ok IS NULL) || ':' || severity, ' ' ORDER BY node)"
			. " FROM replica_router.pool_state"),
	'primary:primary:true:ok s1:replica:false:ok s2:replica:true:ok',
	'pool_state: the primary and both replicas, only s1 with a pgbouncer');
is($rr->q('SELECT severity FROM replica_router.health'), 'ok', 'health: ok');

check_is(['lag'], 0, qr/^REPLICA_ROUTER LAG OK - 2 replicas, max lag \d[\d.]*s \(s[12]\) \| s1=[\d.]+s;5;30;0 s2=[\d.]+s;5;30;0$/,
	'lag at rest');
check_is(['slots'], 0, qr/^REPLICA_ROUTER SLOTS OK - 2 slots, .* \| s1=\d+B;1073741824;10737418240;0 s2=\d+B;1073741824;10737418240;0$/,
	'slots at rest');
check_is(['pools'], 0, qr/^REPLICA_ROUTER POOLS OK - 3 nodes, busiest .* \| primary=[\d.]+%;80;90;0;100 s1=[\d.]+%;80;90;0;100 s1_cl_waiting=0;;;0 s2=[\d.]+%;80;90;0;100$/,
	'pools at rest');
check_is(['health'], 0, qr/^REPLICA_ROUTER HEALTH OK - 2\/2 replicas healthy, .*worker alive \| healthy_replicas=2;;;0;2 registered_replicas=2;;;0 /,
	'health at rest');

# Connects like psql: -h/-p/-U and the PG* environment.
{
	my ($rc, $out) = RRTest::check_command('-h', '127.0.0.1', '-p', $primary->port, '-U', $user, '-d', 'postgres', 'health');
	is($rc, 0, "check -h -p -U -d dbname health: OK ($out)");
	local $ENV{PGHOST} = '127.0.0.1';
	local $ENV{PGPORT} = $primary->port;
	local $ENV{PGDATABASE} = 'postgres';
	($rc, $out) = RRTest::check_command('--timeout', '5s', 'lag');
	is($rc, 0, "check with PGHOST/PGPORT/PGDATABASE: OK ($out)");
}

# A monitoring role: pg_monitor is enough. The views are granted to PUBLIC, so
# a role without it should do as well.
$rr->q('CREATE ROLE rr_monitor LOGIN IN ROLE pg_monitor; CREATE ROLE rr_plain LOGIN');
for my $c (qw(lag slots pools health))
{
	my ($rc, $out) = RRTest::check_command('-h', $primary->host, '-p', $primary->port, '-U', 'rr_monitor', '-d', 'postgres', $c);
	is($rc, 0, "check $c as a pg_monitor member: OK ($out)");
}
{
	# Everything is granted to PUBLIC: a role with no other rights reads it all.
	my ($rc, $out) = RRTest::check_command('-h', $primary->host, '-p', $primary->port, '-U', 'rr_plain', '-d', 'postgres', 'health');
	is($rc, 0, "check health as a role with PUBLIC's rights only: OK ($out)");
	my $plain = $primary->safe_psql('postgres',
		"SELECT (SELECT count(*) FROM (SELECT * FROM replica_router.pool_state) p)"
		  . " + (SELECT count(*) FROM (SELECT * FROM replica_router.health) h)"
		  . " + (SELECT count(*) FROM (SELECT replica_router.metrics()) m)",
		extra_params => [ '-U', 'rr_plain' ]);
	ok($plain >= 3, "pool_state, health and metrics() are readable by a plain role ($plain rows)");
}

###############################################################################
# (f) metrics() is well-formed Prometheus text
###############################################################################
sub metrics_ok
{
	my ($when) = @_;
	my $text = $rr->q('SELECT replica_router.metrics()');
	is($rr->q("SELECT right(replica_router.metrics(), 1) = E'\\n'"), 't', "metrics ($when): ends with a newline");
	my (@bad, %help, %type, %series, %done, $current);
	my $samples = 0;
	for my $line (split /\n/, $text)
	{
		if ($line =~ /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S/)
		{
			push @bad, "HELP twice for $1" if $help{$1}++;
			push @bad, "family $1 comes back after others" if $done{$1};
			$done{$current} = 1 if defined $current && $current ne $1;
			$current = $1;
			next;
		}
		if ($line =~ /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/)
		{
			push @bad, "TYPE twice for $1" if $type{$1}++;
			push @bad, "TYPE for $1 before its HELP" unless $help{$1};
			next;
		}
		if ($line =~ /^#/)
		{
			push @bad, "unexpected comment: $line";
			next;
		}
		if ($line !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eE]+(NaN)?$/)
		{
			push @bad, "malformed sample: $line";
			next;
		}
		my ($name, $labels, $value) = $line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/;
		$samples++;
		push @bad, "sample of $name before its HELP and TYPE" unless $help{$name} && $type{$name};
		push @bad, "sample of $name outside its family" unless defined $current && $current eq $name;
		my @pairs;
		if (defined $labels)
		{
			my $rest = $labels;
			while ($rest =~ s/^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)//)
			{
				push @pairs, "$1=$2";
			}
			push @bad, "malformed labels: $line" if $rest ne '';
		}
		my $key = join ',', $name, sort @pairs;
		push @bad, "duplicate series: $line" if $series{$key}++;
		push @bad, "not a number: $line" unless $value =~ /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
	}
	is(join("\n", @bad), '', "metrics ($when): $samples samples, HELP and TYPE before each family, no duplicates");
	return $text;
}

{
	my $m = metrics_ok('at rest');
	for my $want (
		'replica_router_replica_lag_seconds{node="s1"} ',
		'replica_router_replica_up{node="s2"} 1',
		'replica_router_replica_severity{node="s1"} 0',
		'replica_router_slot_retained_bytes{slot="s1",replica="s1"} ',
		'replica_router_slot_active{slot="s2",replica="s2"} 1',
		'replica_router_node_connection_utilisation_ratio{node="s1",role="replica"} ',
		'replica_router_pgbouncer_waiting_clients{node="s1",role="replica"} 0',
		'replica_router_worker_up 1',
		'replica_router_cluster_severity 0')
	{
		ok(index($m, "\n$want") >= 0, "metrics at rest: has [$want]");
	}
}

###############################################################################
# (c) pgbouncer pools with the clients opened through it
###############################################################################
my @through = map { RRTest::Session->new($bouncer_db) } 1 .. 2;
$_->q('BEGIN; SELECT 1') for @through;    # each holds a server connection
ok( defined $rr->wait_for(10,
		"SELECT cl_active >= 2 AND sv_active >= 2 AND pool_mode = 'transaction'"
		  . " FROM replica_router.pgbouncer_pools WHERE node = 's1' AND database = 's1db'"),
	'pgbouncer_pools: s1db shows the two clients in transactions (cl_active, sv_active >= 2)');
note('pgbouncer_pools: ' . $rr->q("SELECT string_agg(format('%s %s/%s cl_active=%s cl_waiting=%s sv_active=%s sv_idle=%s sv_used=%s mode=%s',"
			. " node, database, \"user\", cl_active, cl_waiting, sv_active, sv_idle, sv_used, pool_mode), '; ')"
			. " FROM replica_router.pgbouncer_pools"));
is( $rr->q("SELECT cl_active >= 2 AND sv_active >= 2 AND cl_waiting = 0 AND pool_mode LIKE '%transaction%'"
			. " AND pgbouncer_ok AND severity = 'ok' FROM replica_router.pool_state WHERE node = 's1'"),
	't', 'pool_state: s1 sums its pgbouncer pools (cl_active, sv_active), severity ok');

# A third client has to wait: the pool has two server connections, both busy.
my ($w_out, $w_err) = ('', '');
my $waiter = IPC::Run::start([ 'psql', '-XAtq', '-d', $bouncer_db, '-c', 'SELECT 42' ],
	'>', \$w_out, '2>', \$w_err, IPC::Run::timeout(60));
track($waiter);
ok( defined $rr->wait_for(10,
		"SELECT cl_waiting >= 1 AND maxwait > '0' FROM replica_router.pgbouncer_pools WHERE node = 's1' AND database = 's1db'"),
	'pgbouncer_pools: a waiting client (cl_waiting >= 1, maxwait > 0)');
is($rr->q("SELECT cl_waiting >= 1 AND severity = 'warning' FROM replica_router.pool_state WHERE node = 's1'"),
	't', 'pool_state: waiting clients make s1 warn');
check_is(['pools'], 1, qr/^REPLICA_ROUTER POOLS WARNING - s1 \d+ clients? waiting in pgbouncer \| .* s1_cl_waiting=[1-9]\d*;;;0 /,
	'a client waits in pgbouncer');
check_is(['health'], 1, qr/^REPLICA_ROUTER HEALTH WARNING - pool s1 warning; /, 'pgbouncer waiting clients');
{
	my $m = metrics_ok('pgbouncer waiting');
	like($m, qr/^replica_router_pgbouncer_waiting_clients\{node="s1",role="replica"\} [1-9]/m, 'metrics: waiting clients of s1');
}

$_->q('COMMIT') for @through;
$waiter->finish;
is($w_out, "42\n", 'the waiting client gets its answer once the transactions end');
ok(defined $rr->wait_for(10, "SELECT cl_waiting = 0 AND severity = 'ok' FROM replica_router.pool_state WHERE node = 's1'"),
	'pool_state: s1 back to ok when nobody waits');
check_is(['pools'], 0, qr/^REPLICA_ROUTER POOLS OK/, 'nobody waits any more');

###############################################################################
# (b) filling s2's connections: warning, then critical
###############################################################################
{
	my $base = $rr->q("SELECT connections FROM replica_router.pool_state WHERE node = 's2'");
	my $usable = $rr->q("SELECT usable_connections FROM replica_router.pool_state WHERE node = 's2'");
	is($usable, 7, 's2: 7 usable connections (max_connections 10, 3 reserved for superusers)');
	my (@sessions, @seen);
	my $mismatch = '';
	while (@sessions < 9)
	{
		push @sessions, $s2->background_psql('postgres');
		my $want = $base + @sessions;
		$rr->wait_for(10, "SELECT connections FROM replica_router.pool_state WHERE node = 's2'", $want)
		  or last;
		my ($pct, $sev) = split /\|/,
		  $rr->q("SELECT utilisation_pct, severity FROM replica_router.pool_state WHERE node = 's2'");
		my $expect = 100 * $want / $usable >= 90 ? 'critical' : 100 * $want / $usable >= 80 ? 'warning' : 'ok';
		$mismatch .= "$want connections: $sev, expected $expect; " if $sev ne $expect;
		my ($rc, $out) = $rr->check('pools');
		$mismatch .= "$want connections: check exit $rc, expected $code{$sev} ($out); " if $rc != $code{$sev};
		push @seen, "$want=$pct%:$sev:$rc";
		if ($sev eq 'warning')
		{
			my ($rc2, $out2) = $rr->check('pools', '--warning', '95', '--critical', '99');
			$mismatch .= "at $pct% --warning 95: exit $rc2 ($out2); " if $rc2 != 0;
			($rc2, $out2) = $rr->check('pools', '-w', '50', '-c', "$pct%");
			$mismatch .= "at $pct% --critical $pct%: exit $rc2 ($out2); " if $rc2 != 2;
			like($out, qr/^REPLICA_ROUTER POOLS WARNING - s2 $want\/7 connections \([\d.]+%, warning 80%\) \| /,
				"check pools names s2 and the warning threshold ($out)");
		}
		if ($sev eq 'critical')
		{
			like($out, qr/^REPLICA_ROUTER POOLS CRITICAL - s2 $want\/7 connections \([\d.]+%, critical 90%\) \| .* s2=[\d.]+%;80;90;0;100$/,
				"check pools names s2 and the critical threshold ($out)");
			last;
		}
	}
	diag('filling s2: ' . join(' ', @seen));
	like(join(' ', map { (split /:/)[1] } @seen), qr/^(ok )*(warning )+critical$/,
		'pool severity of s2 goes ok -> warning -> critical as its connections fill up');
	is($mismatch, '', 'at every step the view\'s severity follows the 80/90 % thresholds and the check exit code follows the view');
	check_is(['health'], 2, qr/^REPLICA_ROUTER HEALTH CRITICAL - pool s2 critical; /, 's2 full');
	is($rr->q("SELECT severity FROM replica_router.pool_state WHERE node <> 's2' AND severity <> 'ok'"), '',
		'the other nodes stay ok');
	$_->quit for @sessions;
	ok(defined $rr->wait_for(10, "SELECT severity FROM replica_router.pool_state WHERE node = 's2'", 'ok'),
		'pool_state: s2 back to ok when the sessions close');
	check_is(['pools'], 0, qr/^REPLICA_ROUTER POOLS OK/, 's2 free again');
}

###############################################################################
# (d) paused replay on s1 under ongoing writes: warning, then critical
###############################################################################
$rr->set_conf('replica_router.lag_warning' => '1s', 'replica_router.lag_critical' => '3s');
my ($wr_out, $wr_err) = ('', '');
my $writer = IPC::Run::start(
	[
		'psql', '-XAtq', '-d', $primary->connstr('postgres') . ' application_name=rr_writer', '-c',
		q{DO $$BEGIN FOR i IN 1..2000 LOOP INSERT INTO t VALUES (i); COMMIT; PERFORM pg_sleep(0.02); END LOOP; END$$}
	],
	'>', \$wr_out, '2>', \$wr_err, IPC::Run::timeout(120));
track($writer);
ok(defined $rr->wait_for(10, "SELECT count(*) > 10 FROM t"), 'a writer inserts on the primary');
check_is(['lag'], 0, qr/^REPLICA_ROUTER LAG OK - .* \| s1=[\d.]+s;1;3;0 s2=[\d.]+s;1;3;0$/,
	'writes flowing, replay running (thresholds 1s/3s from the settings)');
{
	$s1->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
	my $t0 = time;
	my (@sev, @rc, %first, $paused_warning_line, $critical_line, $override);
	my $done = wait_until(
		20,
		sub {
			my ($sev, $lag) = split /\|/,
			  $rr->q("SELECT severity, replay_lag_seconds FROM replica_router.lag WHERE node = 's1'");
			my ($rc, $out) = $rr->check('lag');
			push @sev, $sev unless @sev && $sev[-1] eq $sev;
			push @rc, $rc unless @rc && $rc[-1] == $rc;
			$first{$sev} //= sprintf('%.2fs after the pause (lag %ss)', time - $t0, $lag);
			$paused_warning_line //= $out if $rc == 1;
			if ($rc == 1 && !defined $override)
			{
				my ($rc2, $out2) = $rr->check('lag', '--warning', '1min', '--critical', '2min');
				$override = "$rc2 $out2";
			}
			$critical_line = $out if $rc == 2;
			return $sev eq 'critical' && $rc == 2;
		},
		0.02);
	ok(defined $done, 'paused replay: lag severity of s1 reaches critical');
	diag("paused replay on s1: severity $_ first seen $first{$_}") for grep { $first{$_} } qw(ok warning critical);
	like(join(' ', @sev), qr/^(ok )?warning critical$/, 'lag view: warning (replay paused) then critical (lag >= 3s)')
	  or diag('severities seen: ' . join(' ', @sev));
	like(join(' ', @rc), qr/^(0 )?1 2$/, 'check lag: exit 1, then 2');
	like($paused_warning_line // '', qr/^REPLICA_ROUTER LAG WARNING - s1 (replay paused, lag [\d.]+s|lag [\d.]+s \(warning 1s\), replay paused) \| /,
		"check lag while paused: WARNING names the pause (${\ ($paused_warning_line // '')})");
	like($critical_line // '', qr/^REPLICA_ROUTER LAG CRITICAL - s1 lag [\d.]+s \(critical 3s\), replay paused \| s1=[\d.]+s;1;3;0 s2=[\d.]+s;1;3;0$/,
		"check lag: CRITICAL names s1, its lag and the threshold (${\ ($critical_line // '')})");
	like($override // '', qr/^1 REPLICA_ROUTER LAG WARNING - s1 replay paused.* \| s1=[\d.]+s;60;120;0 /,
		'check lag --warning 1min --critical 2min: the pause alone still warns');
	my ($rc, $out) = $rr->check('lag', '--critical', '1min');
	is($rc, 1, "check lag --critical 1min overrides lag_critical: WARNING ($out)");
	($rc, $out) = $rr->check('lag', '-w', '100ms', '-c', '500ms');
	is($rc, 2, "check lag -w 100ms -c 500ms: CRITICAL ($out)");
	is( $rr->q("SELECT replay_paused AND replay_gap_bytes > 0 AND reported_replay_lsn < flush_lsn"
				. " FROM replica_router.lag WHERE node = 's1'"),
		't',
		'lag view while paused: replay_paused, WAL received but not replayed (replay_gap_bytes > 0), the primary sees replay behind flush');
	check_is(['health'], 2, qr/^REPLICA_ROUTER HEALTH CRITICAL - lag s1 critical; 2\/2 replicas healthy, max lag [\d.]+s \(s1\)/,
		'replay paused');
	my $m = metrics_ok('replay paused');
	like($m, qr/^replica_router_replica_severity\{node="s1"\} 2$/m, 'metrics: s1 lag severity 2');
	# Prometheus' conventions: *_up is reachable (a lagging replica answers),
	# *_routable whether reads go there; the state a StateSet over every state.
	like($m, qr/^replica_router_replica_up\{node="s1"\} 1$/m, 'metrics: s1 lags critically, and is up (it answers)');
	my ($state) = $m =~ /^replica_router_replica_state\{node="s1",state="([a-z]+)"\} 1$/m;
	my $routable = $rr->q("SELECT routable::int FROM replica_router.states() WHERE state = '" . ($state // '') . "'");
	like($m, qr/^replica_router_replica_routable\{node="s1"\} $routable$/m, "metrics: routable $routable as its state ($state) is");
	my @states = split /\n/, $rr->q('SELECT state FROM replica_router.states() ORDER BY state');
	my @set = $m =~ /^replica_router_replica_state\{node="s1",state="([a-z]+)"\} [01]$/mg;
	is(join(',', sort @set), join(',', @states), 'metrics: s1 state is a StateSet over every state');
	is(scalar(() = $m =~ /^replica_router_replica_state\{node="s1",state="[a-z]+"\} 1$/mg), 1, 'metrics: one state of s1 is 1');
	like($m, qr/^replica_router_cluster_severity 2$/m, 'metrics: cluster severity 2');

	$s1->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
	ok(defined $rr->wait_for(20, "SELECT severity FROM replica_router.lag WHERE node = 's1'", 'ok'),
		'replay resumed: s1 back to ok');
	check_is(['lag'], 0, qr/^REPLICA_ROUTER LAG OK/, 'replay resumed');
}
$rr->q("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'rr_writer'");
$writer->finish;
like($wr_err, qr/canceling statement due to user request/, 'the writer ran until cancelled');

###############################################################################
# (a) a stopped standby's slot: inactive, retained WAL warning then critical
###############################################################################
$rr->set_conf('replica_router.slot_retained_warning' => '1MB', 'replica_router.slot_retained_critical' => '4MB');
check_is(['slots'], 0, qr/^REPLICA_ROUTER SLOTS OK - .* \| s1=\d+B;1048576;4194304;0 s2=\d+B;1048576;4194304;0$/,
	'thresholds 1MB/4MB, both slots active');
$s2->stop('fast');
ok( defined $rr->wait_for(10,
		"SELECT NOT active AND active_pid IS NULL AND inactive_since IS NOT NULL AND inactive_for >= '0'"
		  . " AND replica = 's2' FROM replica_router.slot_health WHERE slot_name = 's2'"),
	'slot_health: the stopped standby\'s slot is inactive, inactive_since set');
my $r0 = $rr->q("SELECT retained_bytes FROM replica_router.slot_health WHERE slot_name = 's2'");
is($rr->q("SELECT severity FROM replica_router.slot_health WHERE slot_name = 's2'"), 'ok',
	"slot s2 inactive, retaining $r0 bytes: still ok");
is($rr->q("SELECT inactive_since IS NULL AND active FROM replica_router.slot_health WHERE slot_name = 's1'"),
	't', 'slot s1 stays active');
check_is(['slots'], 0, qr/^REPLICA_ROUTER SLOTS OK/, 'slot inactive, little WAL retained');

# WAL the slot has to keep: 1.5 MB, then 3 MB more.
$rr->q("SELECT pg_logical_emit_message(false, 'replica_router_test', repeat('x', 1536 * 1024))");
ok(defined $rr->wait_for(10, "SELECT severity FROM replica_router.slot_health WHERE slot_name = 's2'", 'warning'),
	'slot_health: s2 reaches warning');
my ($r1, $reason1) = split /\|/,
  $rr->q("SELECT retained_bytes, reason FROM replica_router.slot_health WHERE slot_name = 's2'");
cmp_ok($r1, '>=', 1024 * 1024, "retained WAL over 1MB ($r1 bytes)");
cmp_ok($r1, '<', 4 * 1024 * 1024, 'and under 4MB');
is($reason1, 'retained WAL over slot_retained_warning', 'reason: retained WAL over slot_retained_warning');
check_is(['slots'], 1,
	qr/^REPLICA_ROUTER SLOTS WARNING - s2 \(replica s2\) retains \d+ kB \(warning 1MB\), inactive for [\d.]+s \| s1=\d+B;1048576;4194304;0 s2=\d+B;1048576;4194304;0$/,
	'slot retains over 1MB');
{
	my ($rc, $out) = $rr->check('slots', '--warning', '100MB', '--critical', '200MB');
	is($rc, 0, "check slots --warning 100MB --critical 200MB: OK ($out)");
	($rc, $out) = $rr->check('slots', '--warning', '512kB', '--critical', '1MB');
	is($rc, 2, "check slots --warning 512kB --critical 1MB: CRITICAL ($out)");
}

$rr->q("SELECT pg_logical_emit_message(false, 'replica_router_test', repeat('x', 3 * 1024 * 1024))");
ok(defined $rr->wait_for(10, "SELECT severity FROM replica_router.slot_health WHERE slot_name = 's2'", 'critical'),
	'slot_health: s2 reaches critical');
my ($r2, $reason2) = split /\|/,
  $rr->q("SELECT retained_bytes, reason FROM replica_router.slot_health WHERE slot_name = 's2'");
cmp_ok($r2, '>=', 4 * 1024 * 1024, "retained WAL over 4MB ($r2 bytes)");
ok($r0 < $r1 && $r1 < $r2, "retained WAL grows: $r0 -> $r1 -> $r2 bytes");
is($reason2, 'retained WAL over slot_retained_critical', 'reason: retained WAL over slot_retained_critical');
check_is(['slots'], 2,
	qr/^REPLICA_ROUTER SLOTS CRITICAL - s2 \(replica s2\) retains \d+ kB \(critical 4MB\), inactive for [\d.]+s \| s1=\d+B;1048576;4194304;0 s2=\d+B;1048576;4194304;0$/,
	'slot retains over 4MB');
{
	# The same thresholds given as options judge the same.
	my ($rc, $out) = $rr->check('slots', '-w', '1MB', '-c', '4MB');
	is($rc, 2, "check slots -w 1MB -c 4MB: CRITICAL as the settings ($out)");
	($rc, $out) = $rr->check('slots', '--warning=1GB', '--critical=10GB');
	is($rc, 0, "check slots --warning=1GB --critical=10GB: OK ($out)");
}
is($rr->q("SELECT severity FROM replica_router.slot_health WHERE slot_name = 's1'"), 'ok', 'slot s1 stays ok');
check_is(['lag'], 2, qr/^REPLICA_ROUTER LAG CRITICAL - s2 (down|stale) \(.* \| s1=[\d.]+s;1;3;0 s2=U;1;3;0$/, 's2 is stopped');
check_is(['health'], 2, qr/^REPLICA_ROUTER HEALTH CRITICAL - .*slot s2 critical.*; 1\/2 replicas healthy/, 's2 stopped');
{
	my $m = metrics_ok('s2 stopped');
	like($m, qr/^replica_router_slot_active\{slot="s2",replica="s2"\} 0$/m, 'metrics: slot s2 inactive');
	like($m, qr/^replica_router_slot_severity\{slot="s2",replica="s2"\} 2$/m, 'metrics: slot s2 severity 2');
	like($m, qr/^replica_router_slot_retained_bytes\{slot="s2",replica="s2"\} \d+$/m, 'metrics: slot s2 retained bytes');
	like($m, qr/^replica_router_replica_up\{node="s2"\} 0$/m, 'metrics: s2 down');
}

###############################################################################
# (e) UNKNOWN: cannot connect, no extension, bad arguments; no passwords shown
###############################################################################
{
	my $dead = PostgreSQL::Test::Cluster::get_free_port();
	my ($rc, $out) = RRTest::check_command('-d', "host=127.0.0.1 port=$dead dbname=postgres password=sekrit-pw connect_timeout=2", 'lag');
	is($rc, 3, 'cannot connect: exit 3');
	like($out, qr/^REPLICA_ROUTER LAG UNKNOWN - cannot connect: .*127\.0\.0\.1.*$dead/, "cannot connect: says why ($out)");
	unlike($out, qr/sekrit/, 'cannot connect: the password is not shown');
	($rc, $out) = RRTest::check_command('-h', '127.0.0.1', '-p', $dead, '--timeout', '2s', 'health');
	is($rc, 3, "cannot connect with -h -p: exit 3 ($out)");
	($rc, $out) = RRTest::check_command('-d', 'host=127.0.0.1 password sekrit-pw', 'lag');
	is($rc, 3, 'unparseable connection string: exit 3');
	unlike($out, qr/sekrit/, "unparseable connection string: the password is not shown ($out)");

	$rr->q('CREATE DATABASE noext');
	($rc, $out) = RRTest::check_command('-d', $primary->connstr('noext'), 'pools');
	is($rc, 3, 'extension missing: exit 3');
	like($out, qr/^REPLICA_ROUTER POOLS UNKNOWN - the extension replica_router is not installed in database "noext"/,
		"extension missing: says so ($out)");

	for my $bad (
		[ [], qr/no command given/ ],
		[ ['bogus'], qr/unknown command "bogus"/ ],
		[ [ 'lag', '--warning', '5 parsecs' ], qr/invalid --warning "5 parsecs"/ ],
		[ [ 'slots', '--critical', '-1GB' ], qr/invalid --critical "-1GB"/ ],
		[ [ 'pools', '--warning', '120' ], qr/invalid --warning "120"/ ],
		[ [ 'pools', '-w', '90', '-c', '80' ], qr/--warning 90 exceeds --critical 80/ ],
		[ [ 'health', '--warning', '1' ], qr/health takes no thresholds/ ],
		[ [ 'lag', '--frobnicate' ], qr/unknown option "--frobnicate"/ ],
		[ [ 'lag', '--warning' ], qr/option "--warning" needs a value/ ],
		[ [ 'lag', 'slots' ], qr/unexpected argument "slots" after the command lag/ ])
	{
		my ($args, $why) = @$bad;
		($rc, $out) = $rr->check(@$args);
		is($rc, 3, "check @$args: exit 3");
		like($out, qr/^REPLICA_ROUTER (\w+ )?UNKNOWN - .*$why/, "check @$args: says why ($out)");
	}
	my $err;
	($rc, $out, $err) = RRTest::check_command('--help');
	is($rc, 0, '--help exits 0');
	like($out, qr/^Usage:\n  replica_router_check \[connection options\] COMMAND \[--warning X\] \[--critical Y\]$/m,
		'--help prints the usage');
	note("usage:\n$out");
}

###############################################################################
# Clean-up and logs
###############################################################################
# pgbouncer goes away: s1's pool state warns.
$bouncer->stop;
ok( defined $rr->wait_for(10,
		"SELECT NOT pgbouncer_ok AND pgbouncer_error IS NOT NULL AND severity = 'warning'"
		  . " FROM replica_router.pool_state WHERE node = 's1'"),
	'pool_state: s1\'s pgbouncer unreachable (pgbouncer_ok false, error set), severity warning');
note('pgbouncer_pools rows of s1 with its pgbouncer down: '
	  . $rr->q("SELECT count(*) FROM replica_router.pgbouncer_pools WHERE node = 's1'"));
# The error is the refused reconnect, or the drop of a SHOW POOLS that was in flight.
check_is(['pools'], 1, qr/^REPLICA_ROUTER POOLS WARNING - s1 pgbouncer unreachable \(\S/ , 'pgbouncer stopped');
$rr->finish;
{
	my $log = slurp_file($primary->logfile);
	my @bad = grep { /terminated by signal|PANIC:|TRAP:|replica_router worker: .* failed/ } split /\n/, $log;
	is(join("\n", @bad), '', 'primary log: no crash, no failed worker step');
	my @errors = grep { /ERROR:/ && !/canceling statement due to user request/ }
	  split /\n/, $log;
	is(join("\n", @errors), '', 'primary log: no ERROR but the cancelled writer');
}
diag(sprintf('060_monitoring took %.1fs', time - $t_start));

done_testing();
