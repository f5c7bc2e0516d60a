# The runnable application example (examples/route_reads.py, psycopg 3) on a
# real cluster: it routes reads with a cached recommend(), reads its own
# writes with write_lsn() / min_lsn, and survives a replica that stops
# halfway through (its reads go elsewhere, the NOTIFY empties its cache).
use strict;
use warnings;

use File::Basename qw(dirname);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use RRTest qw(wait_until track);

plan skip_all => 'python3-psycopg not installed' unless system('python3', '-c', 'import psycopg') == 0;

my $rr = RRTest->new(standbys => [qw(s1 s2)], register => 0, conf => "listen_addresses = '127.0.0.1'\n");
my $primary = $rr->primary;
$rr->q("SELECT replica_router.add_replica('$_', '${\ $rr->conninfo($rr->standby($_), '127.0.0.1')}')") for qw(s1 s2);
ok(defined $rr->wait_for(15, "SELECT count(*) = 2 FROM replica_router.status WHERE role = 'replica' AND state = 'healthy'"),
	'two replicas healthy');

my $example = dirname(__FILE__) . '/../../examples/route_reads.py';
my $dsn = "host=127.0.0.1 port=${\ $primary->port} dbname=postgres user=$rr->{user}";
my ($out, $err) = ('', '');
my $t0 = time;
my $h = track(IPC::Run::start([ 'python3', $example, '--dsn', $dsn, '--requests', '400', '--pause', '0.01' ],
	'>', \$out, '2>', \$err, IPC::Run::timeout(120)));
# Once the example has made some requests: stop s1.
ok(defined wait_until(20, sub {
	$rr->q("SELECT to_regclass('example_notes') IS NOT NULL") eq 't'
	  && $rr->q('SELECT count(*) > 40 FROM example_notes') eq 't' }, 0.05),
	'the example is writing and reading');
$rr->standby('s1')->stop('immediate');
my $stopped_at = time - $t0;
$h->finish;
my $rc = $h->result(0);
note("stdout: $out");
note("stderr: $err") if $err ne '';
is($rc, 0, sprintf('the example finished (exit 0); s1 stopped %.1f s into its run', $stopped_at)) or diag("$out$err");
like($out, qr/own writes read back: (\d+)\/\1, /, "every read saw its own write ($out)");
like($out, qr/reads on replicas: [1-9]\d*/, 'reads went to replicas');
like($out, qr/cache invalidations by NOTIFY: [1-9]/, 'the worker\'s NOTIFY emptied the cache');
like($out, qr/errors: 0$/m, 'no request failed, although s1 stopped');
$rr->finish;
$rr->check_log;
done_testing();
