# Security on a real cluster (a primary listening on 127.0.0.1 too, one
# streaming standby s1), each finding of the red-team report against the
# worker and the SQL it runs:
#   F1  an admin member cannot make the worker poll this server as a
#       superuser: socket directories are refused, and a TCP connection
#       that did not use its password is dropped before any query
#   F3  a writable schema on the search_path hijacks nothing the worker,
#       the poll query on the replica or recommend() on the standby runs
#   F5  a row from before 1.2 (no recorded owner) naming a FIFO is never
#       opened; the worker keeps polling s1
#   F9  connection_string() quotes a host that holds a space
#   F6  a routes read that fails is reported (worker_status, health) and
#       does not hold back registry changes
#   F14 a failed registration logs no statement with the connection string
#   F15 the worker's notifications name its pid, which is the sender's
#   N1  on a node without the library preloaded, calls are an ERROR, not FATAL
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use RRTest qw(wait_until);

my $rr = RRTest->new(standbys => ['s1'], conf => "listen_addresses = '127.0.0.1'\n");
my $primary = $rr->primary;
my $s1 = $rr->standby('s1');
my $os_user = $rr->{user};
is($rr->states, 's1=healthy', 'primary and standby s1 registered, healthy');

# Runs $sql as $role in a new session; returns (exit code, stdout, stderr).
sub as_role
{
	my ($role, $sql, $node) = @_;
	$node //= $primary;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => [ '-U', $role ], on_error_stop => 1);
	return ($ret, $out, $err);
}

$rr->q('CREATE ROLE evil LOGIN IN ROLE replica_router_admin');
$rr->q('CREATE ROLE mallory LOGIN');

###############################################################################
# F1. An admin member aims the worker at this very server
###############################################################################
{
	$rr->q('CREATE SCHEMA rrapp AUTHORIZATION evil');
	my ($ret, $out, $err) = as_role('evil', q{
		CREATE FUNCTION rrapp.floor(numeric) RETURNS numeric LANGUAGE plpgsql AS $$
		BEGIN
			IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
				EXECUTE 'ALTER ROLE evil SUPERUSER';
			END IF;
			RETURN pg_catalog.floor($1);
		END $$;
		GRANT USAGE ON SCHEMA rrapp TO PUBLIC;});
	is($ret, 0, 'evil prepares a floor(numeric) that escalates when a superuser calls it') or diag($err);

	my $opts = q{options=''-c search_path=rrapp,pg_catalog''};
	($ret, $out, $err) = as_role('evil',
		sprintf(q{SELECT replica_router.add_replica('f1', 'host=%s port=%d user=%s dbname=postgres %s')},
			$primary->host, $primary->port, $os_user, $opts));
	isnt($ret, 0, 'F1: an admin member cannot register a Unix socket directory');
	like($err, qr/Unix socket directory/, 'F1: ... and is told why');

	($ret, $out, $err) = as_role('evil',
		sprintf(q{SELECT replica_router.add_replica('f1', 'host=127.0.0.1 port=%d user=%s dbname=postgres %s')},
			$primary->port, $os_user, $opts));
	like($err, qr/password is required/, 'F1: nor a TCP connection string without a password');

	# With a made-up password: the server trusts loopback and never asks for it.
	($ret, $out, $err) = as_role('evil',
		sprintf(q{SELECT replica_router.add_replica('f1', 'host=127.0.0.1 port=%d user=%s password=guess dbname=postgres %s')},
			$primary->port, $os_user, $opts));
	is($ret, 0, 'F1: with a password it is registered') or diag($err);
	ok(defined $rr->wait_state('f1', 'down', 15), 'F1: the node is down');
	like($rr->q(q{SELECT error FROM replica_router.status WHERE node = 'f1'}), qr/did not ask for the password/,
		'F1: ... because the server did not use the password');
	ok(defined $rr->wait_rounds(10, 30), 'F1: ten more rounds');
	is($rr->q(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'evil'}), 'f', 'F1: evil is not a superuser');
	# The worker retries every poll; each attempt ends before any query.
	is($rr->q(q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'replica_router'
		AND client_addr IS NOT NULL AND query <> ''}), '0',
		'F1: no session of the worker ever ran a query on this server');
	$rr->q(q{SELECT replica_router.remove_replica('f1')});
}

###############################################################################
# F3. A writable schema on the search_path (the pre-15 public default)
###############################################################################
{
	$rr->q('GRANT CREATE ON SCHEMA public TO PUBLIC');
	my ($ret, $out, $err) = as_role('mallory', q{
		CREATE SEQUENCE public.hijack_calls;
		GRANT USAGE ON SEQUENCE public.hijack_calls TO PUBLIC;
		CREATE FUNCTION public.hijack_num(numeric, integer) RETURNS numeric LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM pg_catalog.nextval('public.hijack_calls');
			IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
				EXECUTE 'ALTER ROLE mallory SUPERUSER';
			END IF;
			RETURN $1 OPERATOR(pg_catalog.*) $2;
		END $$;
		CREATE FUNCTION public.hijack_float(double precision, integer) RETURNS double precision LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM pg_catalog.nextval('public.hijack_calls');
			RETURN $1 OPERATOR(pg_catalog.*) $2;
		END $$;
		CREATE OPERATOR public.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.hijack_num);
		CREATE OPERATOR public.* (LEFTARG = double precision, RIGHTARG = integer, FUNCTION = public.hijack_float);});
	is($ret, 0, 'mallory creates operators *(numeric, integer) and *(float8, integer) in public') or diag($err);

	# A route with a lag makes the worker read an interval; a registry
	# change makes it read routes now.
	$rr->q(q{SELECT replica_router.set_route('report', 'replica', '5s')});
	$primary->wait_for_catchup($s1);
	ok(defined $rr->wait_rounds(10, 30), 'F3: ten more rounds, polls of s1 included');
	# recommend() on the standby reads the replicated hints with SPI.
	my $on_standby = $s1->safe_psql('postgres', q{SELECT role FROM replica_router.recommend('read')});
	ok($on_standby ne '', 'F3: recommend() on the standby answers');
	$rr->q('SELECT replica_router.metrics()');
	is($rr->q(q{SELECT is_called FROM public.hijack_calls}), 'f', 'F3: no hijacking operator was ever called');
	is($rr->q(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}), 'f', 'F3: mallory is not a superuser');
	is($rr->q(q{SELECT state || coalesce(' ' || error, '') FROM replica_router.status WHERE node = 's1'}), 'healthy',
		'F3: s1 stays healthy (the poll query resolves nothing in public)');
	$rr->q(q{SELECT replica_router.drop_route('report')});
}

###############################################################################
# F5. A row from before 1.2 (no recorded owner) names a FIFO
###############################################################################
{
	my $fifo = $primary->basedir . '/rootcert.fifo';
	system('mkfifo', $fifo) == 0 or die "mkfifo: $!";
	# As 1.1 left it: the owner triggers did not exist.
	$rr->q(qq{ALTER TABLE replica_router.nodes DISABLE TRIGGER USER;
		INSERT INTO replica_router.nodes (name, conninfo)
		VALUES ('f5', 'host=127.0.0.1 port=${\ $primary->port} password=x sslmode=verify-ca sslrootcert=$fifo');
		ALTER TABLE replica_router.nodes ENABLE TRIGGER USER;
		SELECT replica_router._notify_worker();});
	ok(defined $rr->wait_state('f5', 'down', 15), 'F5: the node without an owner is down');
	like($rr->q(q{SELECT error FROM replica_router.status WHERE node = 'f5'}), qr/not connecting: only a superuser may set "sslrootcert"/,
		'F5: ... not connecting, and says why');
	my $polls = $rr->q(q{SELECT last_poll FROM replica_router.status WHERE node = 's1'});
	ok(defined $rr->wait_for(10, "SELECT last_poll > '$polls' FROM replica_router.status WHERE node = 's1'"),
		'F5: the worker keeps polling s1 (it never blocked on the FIFO)');
	$rr->q(q{SELECT replica_router.remove_replica('f5')});
}

###############################################################################
# F6. A routes read that fails is reported and holds nothing back
###############################################################################
{
	my $locker = RRTest::Session->new($primary);
	$locker->run('BEGIN; LOCK TABLE replica_router.routes IN ACCESS EXCLUSIVE MODE;');
	$rr->q(q{SELECT replica_router.alter_replica('s1', enabled => false)});
	ok(defined $rr->wait_state('s1', 'disabled', 10), 'F6: a registry change applies while routes cannot be read');
	ok(defined $rr->wait_for(10, q{SELECT registry_problem ~ 'routes' FROM replica_router.worker_status()}),
		'F6: worker_status().registry_problem says the routes could not be read');
	is($rr->q(q{SELECT severity || ' ' || (registry_problem IS NOT NULL) FROM replica_router.health}), 'critical true',
		'F6: health is critical meanwhile');
	$locker->run('ROLLBACK');
	$locker->close;
	ok(defined $rr->wait_for(10, q{SELECT registry_problem IS NULL FROM replica_router.worker_status()}),
		'F6: once readable, the problem clears by itself');
	$rr->q(q{SELECT replica_router.alter_replica('s1', enabled => true)});
	ok(defined $rr->wait_state('s1', 'healthy', 15), 'F6: s1 healthy again');
}

###############################################################################
# F9. connection_string() quotes what libpq would split
###############################################################################
{
	# A host name with a space: libpq connects to hostaddr and reports the name.
	$rr->q(sprintf(q{SELECT replica_router.add_replica('f9', 'host=''127.0.0.1 sslmode=disable'' hostaddr=127.0.0.1 port=%d dbname=postgres user=%s')},
		$s1->port, $os_user));
	ok(defined $rr->wait_state('f9', 'healthy', 15), 'F9: a node whose host holds a space is healthy');
	my $cs = $rr->q(q{SELECT replica_router.connection_string('read')});
	like($cs, qr/^host='127\.0\.0\.1 sslmode=disable,127\.0\.0\.1,|^host='[^']*127\.0\.0\.1 sslmode=disable[^']*'/,
		'F9: connection_string() quotes the host list');
	unlike($cs, qr/^host=[^']/, 'F9: ... so the space cannot start a new setting');
	$rr->q(q{SELECT replica_router.remove_replica('f9')});
}

###############################################################################
# F14. A failed registration logs no statement holding a password
###############################################################################
{
	# log_statement = all (the test cluster's default) logs every statement
	# before it runs, as it would CREATE ROLE ... PASSWORD: the DBA's choice.
	# What replica_router controls is the STATEMENT line of its errors.
	$rr->set_conf(log_statement => 'none');
	my $offset = -s $primary->logfile;
	my ($ret, $out, $err) = as_role('evil', q{SELECT replica_router.add_replica('s1', 'host=10.0.0.1 password=F14s3cret')});
	like($err, qr/already exists/, 'F14: registering a name twice fails');
	($ret, $out, $err) = as_role('evil',
		q{INSERT INTO replica_router.nodes (name, conninfo) VALUES ('f14', 'host=/tmp password=F14s3cret')});
	like($err, qr/Unix socket/, 'F14: a direct INSERT that breaks the rules fails');
	# The server writes its log asynchronously to the error: wait for both errors.
	ok(wait_until(10, sub {
				my $log = slurp_file($primary->logfile, $offset);
				$log =~ /already exists/ && $log =~ /Unix socket directory/;
			}),
		'F14: both errors are in the log');
	my $log = slurp_file($primary->logfile, $offset);
	unlike($log, qr/F14s3cret/, 'F14: the log holds no statement with the password');
	$rr->set_conf(log_statement => 'all');
}

###############################################################################
# F15. Notifications: the payload names the worker, and so does the sender
###############################################################################
{
	my $listener = RRTest::Session->new($primary);
	$listener->run('LISTEN replica_router');
	as_role('mallory', q{NOTIFY replica_router, '{"node": "s1", "new_state": "down", "worker_pid": 1}'});
	$rr->q(q{SELECT replica_router.alter_replica('s1', enabled => false)});
	my %seen;
	ok(wait_until(10, sub {
				my ($o) = $listener->run('SELECT 1');
				while ($o =~ /Asynchronous notification "replica_router" with payload "(.*)" received from server process with PID (\d+)\./g)
				{
					my ($payload, $pid) = ($1, $2);
					my ($claimed) = $payload =~ /"worker_pid"\s*:\s*(\d+)/;
					$seen{ ($claimed // 0) == $pid ? 'genuine' : 'forged' }++;
				}
				return $seen{genuine};
			}),
		'F15: the worker\'s notification arrives');
	is($seen{forged} // 0, 1, 'F15: the forged one is told apart: its sender is not the worker_pid it names');
	$listener->close;
	$rr->q(q{SELECT replica_router.alter_replica('s1', enabled => true)});
	ok(defined $rr->wait_state('s1', 'healthy', 15), 'F15: s1 healthy again');
}

###############################################################################
# N1. A node where the library is not preloaded
###############################################################################
SKIP:
{
	# The sanitizer build's runtime comes in with the library: loaded in a
	# backend rather than at server start, ASan refuses to initialise.
	skip 'the ASan build can only be loaded by shared_preload_libraries', 9 if $ENV{ASAN_OPTIONS};
	my $n = PostgreSQL::Test::Cluster->new('nopreload');
	$n->init;
	$n->append_conf('postgresql.conf', "shared_preload_libraries = 'replica_router'\n");
	$n->start;
	$n->safe_psql('postgres', 'CREATE EXTENSION replica_router');
	$n->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
	$n->restart;
	my $session = RRTest::Session->new($n);
	for my $sql (q{SELECT * FROM replica_router.recommend('read')}, 'SELECT * FROM replica_router.status',
		'SELECT replica_router.metrics()', q{SELECT replica_router.add_replica('x', 'host=10.0.0.1')})
	{
		my ($out, $err) = $session->run($sql);
		like($err, qr/ERROR:  replica_router must be loaded via shared_preload_libraries/, "N1: $sql is an ERROR");
		like($err, qr/HINT:.*shared_preload_libraries/, "N1: ... with a hint");
	}
	my ($out, $err) = $session->run('SELECT 42');
	is($out, '42', 'N1: the session survives');
	$session->close;
	$n->stop;
}

$rr->check_log;
$rr->finish;
done_testing();
