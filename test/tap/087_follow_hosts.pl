# replica_router follow with replicas that share a port (h2 on 127.0.0.2,
# h3 on 127.0.0.3, one port, as on separate machines), a real pgbouncer
# 1.18, several aliases and pool options:
#
#   (a) the read alias is a host list of both replicas (sorted), an extra
#       alias (--alias) routes its own operation, pool options
#       (--pool-option) reach pgbouncer (SHOW DATABASES), and two sessions
#       through the alias land on both replicas;
#   (b) --once logs neither "listening" nor "retrying", and a failing source
#       with no file yet says "not writing" (not "keeping");
#   (c) one replica stops: the alias falls back to the other alone and the
#       log says which it did; --single-host always writes one host;
#   (d) a pgbouncer user that is not in admin_users gets an error that says
#       what to fix, not only pgbouncer's "not allowed".
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use RRTest qw(wait_until run_tool track);

plan skip_all => 'pgbouncer not installed' unless RRTest::PgBouncer::available();

my $rr = RRTest->new(standbys => [], register => 0, conf => "listen_addresses = '127.0.0.1'\n");
my $primary = $rr->primary;
my $user = $rr->{user};
my $shared = PostgreSQL::Test::Cluster::get_free_port();
my %node;
for my $i (2, 3)
{
	my $s = PostgreSQL::Test::Cluster->new("h$i", port => $shared, own_host => 1);
	$s->init_from_backup($primary, 'base', has_streaming => 1);
	$s->append_conf('postgresql.conf', "listen_addresses = '127.0.0.$i'\n");
	$s->start;
	$node{"h$i"} = $s;
	$rr->q("SELECT replica_router.add_replica('h$i', 'host=127.0.0.$i port=$shared dbname=postgres user=$user')");
}
ok(defined $rr->wait_for(15, "SELECT count(*) = 2 FROM replica_router.status WHERE role = 'replica' AND state = 'healthy'"),
	"two replicas on 127.0.0.2 and 127.0.0.3, both on port $shared, healthy");
$rr->q("SELECT replica_router.set_route('report', 'replica')");

my $dir = PostgreSQL::Test::Utils::tempdir('follow');
my $include = "$dir/databases.ini";
my $source = "host=127.0.0.1 port=${\ $primary->port} dbname=postgres user=$user";
my @follow = (RRTest::tool('replica_router'), 'follow', '--source', $source, '--output', $include,
	'--dbname', 'postgres', '--alias', 'postgres_report=report', '--pool-option', 'pool_size=7');

###############################################################################
# (b) --once on a source that cannot be reached, no file yet
###############################################################################
{
	my ($rc, $out, $err) = run_tool(RRTest::tool('replica_router'), 'follow', '--once', '--output', $include,
		'--dbname', 'postgres', '--source', 'host=127.0.0.1 port=1 dbname=postgres connect_timeout=2');
	is($rc, 1, '--once, source unreachable: exit 1');
	like($err, qr/not writing \Q$include\E \(it does not exist yet\)/, "says the file is not written ($err)");
	unlike($err, qr/keeping|retrying/, 'neither "keeping" nor "retrying"');
}

###############################################################################
# (a) host list, extra alias, pool options
###############################################################################
my ($rc, $out, $err) = run_tool(@follow, '--once');
is($rc, 0, '--once writes the file') or diag($err);
unlike($err, qr/listening|retrying/, "--once logs neither listening nor retrying ($err)");
my $file = slurp_file($include);
like($file, qr/^postgres_read = host=127\.0\.0\.2,127\.0\.0\.3 port=$shared dbname=postgres pool_size=7$/m,
	'read alias: a host list of both replicas, sorted, with the pool option');
like($file, qr/^postgres_report = host=127\.0\.0\.2,127\.0\.0\.3 port=$shared dbname=postgres pool_size=7$/m,
	'--alias postgres_report=report: its own line');
like($file, qr/^postgres_write = host=127\.0\.0\.1 port=${\ $primary->port} dbname=postgres pool_size=7$/m, 'write alias');
like($file, qr/^; postgres_read -> .*host list of the 2 qualifying replicas \(they share port $shared\)/m,
	'the comment says it is a host list and why');

my $bouncer = RRTest::PgBouncer->new(include => $include, settings => { pool_mode => 'session' });
ok(defined $bouncer->wait_up(10), 'pgbouncer starts with the file');
my $dbs = `psql -XAtq -d '${\ $bouncer->admin}' -c 'SHOW DATABASES' 2>&1`;
like($dbs, qr/^postgres_read\|127\.0\.0\.2,127\.0\.0\.3\|$shared\|postgres\|[^|]*\|7\|/m, 'SHOW DATABASES: the host list and pool_size 7');
# Two sessions at once: pgbouncer opens two server connections, round-robin over the hosts.
my @sessions = map { RRTest::Session->new($bouncer->connstr('postgres_read')) } 1 .. 2;
my %addr = map { $_->q('SELECT host(inet_server_addr())') => 1 } @sessions;
is(join(',', sort keys %addr), '127.0.0.2,127.0.0.3', 'two sessions through postgres_read: one on each replica');
$_->close for @sessions;

###############################################################################
# (c) one replica stops: the other alone; --single-host
###############################################################################
my $flog = "$dir/follow.log";
my $follower = track(IPC::Run::start([ @follow, '--pgbouncer', $bouncer->admin, '--interval', '200ms' ], '>', $flog, '2>&1'));
ok(defined wait_until(10, sub { slurp_file($flog) =~ /already has/ }), 'the follower finds pgbouncer up to date')
  or diag(slurp_file($flog));
$node{h3}->stop('fast');
ok(defined wait_until(15, sub { slurp_file($include) =~ /^postgres_read = host=127\.0\.0\.2 port=$shared /m }),
	'h3 stopped: postgres_read on h2 alone') or diag(slurp_file($flog));
like(slurp_file($flog), qr/wrote .*postgres_read -> h2 127\.0\.0\.2:$shared \(replica, one host\)/, 'the log says which it did');

# While h3 is down: the check's --min-healthy, --node and Nagios ranges.
ok(defined $rr->wait_state('h3', 'down', 10), 'h3 is down');
for my $case (
	[ [qw(lag)], 2, qr/^REPLICA_ROUTER LAG CRITICAL - h3 down/ ],
	[ [qw(lag --min-healthy 1)], 1, qr/^REPLICA_ROUTER LAG WARNING - h3 down/ ],
	[ [qw(lag --min-healthy 2)], 2, qr/^REPLICA_ROUTER LAG CRITICAL - 1 healthy replicas, fewer than --min-healthy 2/ ],
	[ [qw(health --min-healthy 1)], 1, qr/^REPLICA_ROUTER HEALTH WARNING - / ],
	[ [qw(health --min-healthy 2)], 2, qr/^REPLICA_ROUTER HEALTH CRITICAL - 1 healthy replicas, fewer than --min-healthy 2/ ],
	[ [qw(lag --node h2)], 0, qr/^REPLICA_ROUTER LAG OK - 1 replica, max lag / ],
	[ [qw(lag --node h2 -w @0:1h)], 1, qr/^REPLICA_ROUTER LAG WARNING - h2 lag [\d.]+s \(warning \@0:1h\)/ ],
	[ [qw(lag --node h2 -w ~:1h -c ~:2h)], 0, qr/^REPLICA_ROUTER LAG OK .* \| h2=[\d.]+s;~:1h;~:2h;0$/ ],
	[ [qw(lag --node nosuch)], 3, qr/no replica named "nosuch"/ ],
	[ [qw(lag -w 5:x)], 3, qr/invalid --warning "5:x"/ ])
{
	my ($args, $want, $like) = @$case;
	my ($rc, $line) = $rr->check(@$args);
	is($rc, $want, "check @$args: exit $want ($line)");
	like($line, $like, "check @$args: status line");
}
ok(defined wait_until(10, sub { slurp_file($flog) =~ /reloaded \(SHOW DATABASES: postgres_read -> 127\.0\.0\.2:$shared\/postgres/ }),
	'pgbouncer reloaded and serves it');
$node{h3}->start;
ok(defined wait_until(20, sub { slurp_file($include) =~ /^postgres_read = host=127\.0\.0\.2,127\.0\.0\.3 /m }),
	'h3 back: the host list again') or diag(slurp_file($flog) . $rr->states);
$follower->signal('TERM');
$follower->finish;

($rc, $out, $err) = run_tool(@follow, '--once', '--single-host', '--output', "$dir/single.ini");
like(slurp_file("$dir/single.ini"), qr/^postgres_read = host=127\.0\.0\.[23] port=$shared dbname=postgres pool_size=7$/m,
	'--single-host: one host');

###############################################################################
# (d) a pgbouncer user that is not an admin
###############################################################################
{
	$bouncer->write_ini(settings => { pool_mode => 'session', admin_users => 'nobody', stats_users => $user });
	system('psql', '-XAtq', '-d', $bouncer->admin, '-c', 'RELOAD');
	unlink $include;    # the next --once writes, then must RELOAD
	($rc, $out, $err) = run_tool(@follow, '--once', '--pgbouncer', $bouncer->admin);
	isnt($rc, 0, 'RELOAD refused: --once fails');
	like($err, qr/(not allowed|admin access needed).*add \Q$user\E to admin_users in pgbouncer\.ini/,
		"the error says what to fix ($err)");
}

$bouncer->stop;
$rr->finish;
$rr->check_log;
done_testing();
