# replica_router serve with its real neighbours (Debian's packages):
#
#   (a) promtool: contrib/prometheus/replica_router.rules.yml passes
#       "promtool check rules" and its unit tests "promtool test rules"
#       (one test group per alert);
#   (b) Prometheus 2.42 scrapes serve's /metrics every second with those
#       rules loaded; its query API returns replica_router series with the
#       right labels (job, instance, node, zone, version) and the rules load
#       healthy;
#   (c) HAProxy 2.6: a read frontend (TCP) over two replicas, each checked
#       with "option httpchk" against serve's /node/<name>/replica?max_lag=1s
#       (inter 200ms, fall 1, rise 2). Pausing replay on one and stopping the
#       other, the test measures how long reads through HAProxy keep reaching
#       each (printed; asserted with a generous bound).
use strict;
use warnings;

use File::Basename qw(dirname);
use File::Spec;
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use RRTest qw(wait_until track run_tool);

my $contrib = File::Spec->rel2abs(dirname(__FILE__) . '/../../contrib/prometheus');

###############################################################################
# (a) promtool
###############################################################################
{
	my ($rc, $out, $err) = run_tool('promtool', 'check', 'rules', "$contrib/replica_router.rules.yml");
	is($rc, 0, 'promtool check rules: the rules file is valid') or diag("$out$err");
	like($out . $err, qr/SUCCESS: 7 rules found/, 'promtool check rules: 7 rules');
	my $h = IPC::Run::start([ 'promtool', 'test', 'rules', 'replica_router.rules.test.yml' ],
		'>', \$out, '2>', \$err, init => sub { chdir $contrib or die $! }, IPC::Run::timeout(60));
	$h->finish;
	is($h->result(0), 0, 'promtool test rules: every alert\'s unit test passes') or diag("$out$err");
	my $tests = slurp_file("$contrib/replica_router.rules.test.yml");
	for my $alert (qw(ReplicaRouterReplicaDown ReplicaRouterReplicaLagWarning ReplicaRouterReplicaLagCritical
		ReplicaRouterSlotNearLoss ReplicaRouterPoolSaturation ReplicaRouterWorkerDown ReplicaRouterStaleData))
	{
		like($tests, qr/alertname: $alert\n/, "unit test for $alert");
	}
}

###############################################################################
# Cluster and serve
###############################################################################
my $rr = RRTest->new(
	standbys => [qw(s1 s2)],
	register => 0,
	conf => "listen_addresses = '127.0.0.1'\n");
my $primary = $rr->primary;
my ($s1, $s2) = map { $rr->standby($_) } qw(s1 s2);
$rr->q("SELECT replica_router.add_replica('$_', '${\ $rr->conninfo($rr->standby($_), '127.0.0.1')}', zone => 'eu')")
  for qw(s1 s2);
ok(defined $rr->wait_for(15, "SELECT count(*) = 2 FROM replica_router.status WHERE role = 'replica' AND state = 'healthy'"),
	'two replicas registered and healthy');
$rr->q('CREATE TABLE t (i integer)');
my $serve = RRTest::Serve->new(sprintf('host=127.0.0.1 port=%d dbname=postgres user=%s', $primary->port, $rr->{user}),
	'--interval', '100ms');
ok(defined $serve->wait_up(15), 'serve is up') or diag($serve->log);
my $http = HTTP::Tiny->new(timeout => 5);

###############################################################################
# (b) Prometheus scrapes serve
###############################################################################
SKIP:
{
	skip 'prometheus not installed', 6 unless -x '/usr/bin/prometheus';
	my $dir = PostgreSQL::Test::Utils::tempdir('prometheus');
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	open my $fh, '>', "$dir/prometheus.yml" or die $!;
	print $fh <<"EOF";
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $contrib/replica_router.rules.yml
scrape_configs:
  - job_name: replica_router
    static_configs:
      - targets: ['127.0.0.1:${\ $serve->port}']
EOF
	close $fh;
	my $plog = "$dir/prometheus.log";
	my $prom = track(IPC::Run::start(
		[ '/usr/bin/prometheus', "--config.file=$dir/prometheus.yml", "--storage.tsdb.path=$dir/data",
		  "--web.listen-address=127.0.0.1:$port" ],
		'<', \undef, '>', $plog, '2>&1'));
	my $query = sub {
		my ($q) = @_;
		my $r = $http->get("http://127.0.0.1:$port/api/v1/query?query=" . $q);
		return [] unless $r->{success};
		my $j = eval { decode_json($r->{content}) } or return [];
		return $j->{data}{result} // [];
	};
	my $series = [];
	my $took = wait_until(30, sub { $series = $query->('replica_router_replica_up'); @$series == 2 }, 0.2);
	ok(defined $took, sprintf('Prometheus has scraped replica_router_replica_up for both replicas (%.1f s)', $took // -1))
	  or diag(slurp_file($plog));
	my %by_node = map { $_->{metric}{node} => $_ } @$series;
	is(join(',', sort keys %by_node), 's1,s2', 'series per node');
	is_deeply([ map { "$_->{metric}{job}|$_->{metric}{instance}|$_->{metric}{zone}|$_->{value}[1]" } @by_node{qw(s1 s2)} ],
		[ map { "replica_router|127.0.0.1:${\ $serve->port}|eu|1" } 1 .. 2 ],
		'labels job, instance, zone; value 1 (reachable)');
	my $info = $query->('replica_router_info');
	is($info->[0]{metric}{version} // '', '1.2', 'replica_router_info{version="1.2"}');
	my $states = $query->('count(replica_router_replica_state{node="s1"})');
	cmp_ok($states->[0]{value}[1] // 0, '>=', 10, 'the StateSet: a series per state');
	# A rule's health is "unknown" until its first evaluation: poll.
	my @loaded;
	wait_until(30, sub {
		my $rules = eval { decode_json($http->get("http://127.0.0.1:$port/api/v1/rules")->{content}) } // {};
		@loaded = map { @{ $_->{rules} } } @{ $rules->{data}{groups} // [] };
		(grep { ($_->{health} // '') eq 'ok' } @loaded) == 7 }, 0.5);
	is(scalar(grep { ($_->{health} // '') eq 'ok' } @loaded), 7, 'Prometheus loaded the 7 alert rules, all evaluating ok');
	$prom->signal('TERM');
	$prom->finish;
}

###############################################################################
# (c) HAProxy over two replicas, checked through serve
###############################################################################
SKIP:
{
	skip 'haproxy not installed', 8 unless -x '/usr/sbin/haproxy';
	my $dir = PostgreSQL::Test::Utils::tempdir('haproxy');
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $sport = $serve->port;
	open my $fh, '>', "$dir/haproxy.cfg" or die $!;
	# As in the README. srv_name in uri-lf: one serve answers for every member.
	print $fh <<"EOF";
global
    log stdout format raw local0 info
defaults
    mode tcp
    log global
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout check 1s
listen pg_read
    bind 127.0.0.1:$port
    balance roundrobin
    option httpchk
    http-check send meth GET uri-lf /node/%[srv_name]/replica?max_lag=1s
    http-check expect status 200
    default-server inter 200ms fall 1 rise 2 on-marked-down shutdown-sessions
    server s1 127.0.0.1:${\ $s1->port} check port $sport
    server s2 127.0.0.1:${\ $s2->port} check port $sport
EOF
	close $fh;
	my $hlog = "$dir/haproxy.log";
	my $hap = track(IPC::Run::start([ '/usr/sbin/haproxy', '-db', '-f', "$dir/haproxy.cfg" ],
		'<', \undef, '>', $hlog, '2>&1'));
	my $conn = "host=127.0.0.1 port=$port dbname=postgres user=$rr->{user} connect_timeout=2";
	# One read through HAProxy: the port of the server it reached, or undef.
	my $read = sub {
		my ($rc, $out) = run_tool('psql', '-XAtq', '-d', $conn, '-c', 'SELECT inet_server_port()');
		chomp $out;
		return $rc == 0 && $out =~ /^\d+$/ ? $out : undef;
	};
	my %seen;
	ok(defined wait_until(15, sub { my $p = $read->(); $seen{$p}++ if defined $p; keys %seen == 2 }, 0.05),
		'reads through HAProxy reach both replicas') or diag(slurp_file($hlog));

	# Pause replay on s1 under writes: lag grows ~1 s per second; reads must
	# leave s1 once its lag passes max_lag=1s.
	$s1->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
	my $t_pause = time;
	my ($last_s1, $streak, $t_over, @timeline) = (undef, 0, undef);
	my $took = wait_until(30, sub {
		# A write, and whether serve now fails s1's check (its lag over 1s).
		$rr->q('INSERT INTO t VALUES (1)');
		my $check = ($serve->get('/node/s1/replica?max_lag=1s'))[0];
		$t_over //= time if $check == 503;
		my $t = time;
		my $p = $read->();
		push @timeline, sprintf('%.2f:%s:%s', $t - $t_pause, $check, !defined $p ? 'fail' : $p == $s1->port ? 's1' : 's2');
		if (defined $p && $p == $s1->port) { $last_s1 = $t; $streak = 0; }
		elsif (defined $p) { $streak++; }
		return $streak >= 8 && time - $t_pause > 1.5;
	}, 0.02);
	ok(defined $took, 'paused s1: reads through HAProxy leave it') or diag(slurp_file($hlog));
	diag('serve on s1: ' . ($serve->get('/node/s1/replica?max_lag=1s'))[1]);
	my $after_pause = ($last_s1 // $t_pause) - $t_pause;
	# Once serve's check for s1 fails (its lag over max_lag=1s), how long
	# HAProxy keeps sending reads there (reads alternate between the servers
	# while both are up; the loop's resolution is one iteration, printed).
	my ($after_503, $n_after) = (0, 0);
	for (@timeline)
	{
		my ($t, $check, $where) = split /:/;
		next unless defined $t_over && $t >= $t_over - $t_pause && $where eq 's1';
		$n_after++;
		$after_503 = $t - ($t_over - $t_pause);
	}
	my @steps = map { (split /:/)[0] } @timeline;
	my $step = @steps > 1 ? ($steps[-1] - $steps[0]) / $#steps : 0;
	diag(sprintf('HAProxy switch (replay paused): serve failed s1\'s check %.2f s after the pause; '
			. 'reads reaching s1 after that: %d (the last %.2f s after); last read on s1 %.2f s after the pause; loop step %.2f s',
			($t_over // $t_pause) - $t_pause, $n_after, $after_503, $after_pause, $step));
	# Typically 1.05 s (1 s of it the max_lag threshold); 1.35 s on a loaded machine.
	cmp_ok($after_pause, '<', 6, 'reads left the paused replica within 6 s of the pause (max_lag 1s)');
	cmp_ok($after_503, '<', 2, 'no read reached it later than 2 s after serve failed its check (inter 200ms; typically none)');
	like(slurp_file($hlog), qr/Server pg_read\/s1 is DOWN/, 'HAProxy logs s1 DOWN (check failed)');
	$s1->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
	ok(defined wait_until(20, sub { my $p = $read->(); defined $p && $p == $s1->port }, 0.05), 's1 resumed: back in rotation');

	# Stop s2 (immediate shutdown, signalled directly so that the reads
	# start at once rather than after pg_ctl has waited for the exit): reads
	# must stop failing or reaching it.
	my $s2_pid = $s2->{_pid};
	my $t_stop = time;
	kill 'QUIT', $s2_pid;
	my ($last_bad, $good, $reads, $bad) = (undef, 0, 0, 0);
	$took = wait_until(30, sub {
		my $t = time;    # when the read started (a refused one lasts HAProxy's retries)
		my $p = $read->();
		$reads++;
		if (!defined $p || $p == $s2->port) { $last_bad = $t; $good = 0; $bad++; }
		else { $good++; }
		return $good >= 8;
	}, 0.02);
	ok(defined $took, 'stopped s2: reads through HAProxy all reach s1');
	my $after_stop = ($last_bad // $t_stop) - $t_stop;
	diag(sprintf('HAProxy switch (replica stopped): last failed read %.2f s after the stop (%d of %d reads failed)',
			$after_stop, $bad, $reads));
	diag(join "\n", grep { /is DOWN/ && !/^\[/ } split /\n/, slurp_file($hlog));
	cmp_ok($after_stop, '<', 3, 'failed reads stop within 3 s of the stop (target 1 s)');
	like(slurp_file($hlog), qr/Server pg_read\/s2 is DOWN/, 'HAProxy logs s2 DOWN');
	$hap->signal('TERM');
	$hap->finish;
	wait_until(10, sub { !kill 0, $s2_pid });
	$s2->_update_pid(0);
}

$serve->stop;
$rr->finish;
$rr->check_log;
done_testing();
