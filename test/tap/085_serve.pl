# replica_router serve against a real cluster: a primary and two streaming
# standbys on 127.0.0.1, serve reading the views through a multi-host
# connection string whose first host is a standby (serve must find the
# primary).
#
#   (a) every endpoint answers, with the data's age (header and JSON) within
#       one interval, and the JSON says what the views say;
#   (b) /metrics follows the conventions (info, _up vs _routable, a StateSet
#       of every state, zone label, HELP/TYPE for every family);
#   (c) load-balancer checks: /primary, /node/NAME/replica, /replica, /read,
#       with HEAD and OPTIONS; pausing replay on s1 fails s1's check with
#       max_lag=1s (the body says why) while s2's and /replica pass;
#   (d) /recommend with each parameter; bad parameters are 400 with a
#       reason, unknown endpoints 404;
#   (e) the data's age stays under one interval while the primary is busy,
#       and once serve cannot read (primary frozen) every answer turns 503
#       after stale_after, saying how old the data is;
#   (f) request rate for /node/s2/replica and /recommend (printed).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use File::Basename qw(dirname);
use File::Spec;
use Time::HiRes qw(time);
use RRTest qw(wait_until);

my $rr = RRTest->new(
	standbys => [qw(s1 s2)],
	register => 0,
	conf => "listen_addresses = '127.0.0.1'\n");
my $primary = $rr->primary;
my ($s1, $s2) = map { $rr->standby($_) } qw(s1 s2);
$rr->q("SELECT replica_router.add_replica('$_', '${\ $rr->conninfo($rr->standby($_), '127.0.0.1')}', zone => 'z$_')")
  for qw(s1 s2);
ok(defined $rr->wait_for(15, "SELECT count(*) = 2 FROM replica_router.status WHERE role = 'replica' AND state = 'healthy'"),
	'two replicas registered (zones zs1, zs2) and healthy');
$rr->q('CREATE TABLE t (i integer)');

# A standby first: serve must pick the primary (target_session_attrs=read-write).
my $source = sprintf('host=127.0.0.1,127.0.0.1 port=%d,%d dbname=postgres user=%s',
	$s1->port, $primary->port, $rr->{user});
my $serve = RRTest::Serve->new($source, '--interval', '200ms', '--stale-after', '1500ms');
ok(defined $serve->wait_up(15), 'serve answers /health') or diag($serve->log);
like($serve->log, qr/listening on http:\/\/127\.0\.0\.1:\d+\//, 'serve says where it listens');

###############################################################################
# (a) JSON endpoints and the data's age
###############################################################################
{
	my ($status, $body, $h) = $serve->get('/health');
	my $j = JSON::PP->new->decode($body);
	is($status, 200, '/health: 200');
	is($j->{health}{severity}, 'ok', '/health: severity ok');
	is($j->{source_role}, 'primary', '/health: read from the primary, though a standby was listed first');
	is($j->{version}, '1.2', '/health: the extension version');
	ok(defined $h->{age} && defined $h->{'x-replica-router-data-age'}, 'headers Age and X-Replica-Router-Data-Age');
	# Typically 0.2 s (the interval); a loaded 2-core machine delays refreshes.
	cmp_ok($j->{data_age_seconds}, '<=', 1.2, "data_age_seconds ($j->{data_age_seconds}) within the interval (200ms) and slack");

	my $stats = $serve->json('/stats');
	is(join(',', map { "$_->{node}:$_->{role}:$_->{state}" } @{ $stats->{nodes} }),
		'primary:primary:primary,s1:replica:healthy,s2:replica:healthy', '/stats: every node, the primary first');
	my $lag = $serve->json('/lag');
	is(scalar @{ $lag->{replicas} }, 2, '/lag: both replicas');
	ok(exists $lag->{replicas}[0]{receive_gap_bytes}, '/lag: receive and replay gaps');
	my $pools = $serve->json('/pool-stats');
	ok((grep { $_->{node} eq 'primary' && $_->{connections} >= 1 } @{ $pools->{nodes} }), '/pool-stats: connections per node');

	# The age over several reads: never more than the interval plus slack.
	my $worst = 0;
	for (1 .. 20)
	{
		my $a = $serve->json('/health')->{data_age_seconds};
		$worst = $a if $a > $worst;
		Time::HiRes::usleep(30_000);
	}
	cmp_ok($worst, '<', 1.2, "over 20 reads in 0.6 s the data was at most ${worst}s old (interval 200ms, below stale_after)");
}

###############################################################################
# (b) /metrics
###############################################################################
{
	my ($status, $m, $h) = $serve->get('/metrics');
	is($status, 200, '/metrics: 200');
	like($h->{'content-type'}, qr{^text/plain; version=0\.0\.4}, '/metrics: Prometheus text content type');
	like($m, qr/^replica_router_info\{version="1\.2",source_role="primary"\} 1$/m, 'replica_router_info{version}');
	like($m, qr/^replica_router_replica_up\{node="s1",zone="zs1"\} 1$/m, 'replica_up: reachable, with the zone label');
	like($m, qr/^replica_router_replica_routable\{node="s2",zone="zs2"\} 1$/m, 'replica_routable');
	my @states = $m =~ /^replica_router_replica_state\{node="s1",state="(\w+)"\} [01]$/mg;
	cmp_ok(scalar @states, '>=', 10, 'replica_state is a StateSet: one series per state (' . join(',', @states) . ')');
	is(scalar(() = $m =~ /^replica_router_replica_state\{node="s1",state="\w+"\} 1$/mg), 1, 'StateSet: exactly one state is 1');
	like($m, qr/^replica_router_node_max_connections\{node="primary",role="primary"\} \d+$/m, 'node_max_connections (no zone: no empty label)');
	like($m, qr/^replica_router_replica_last_success_timestamp_seconds\{node="s1",zone="zs1"\} \d{10}/m, 'last success as a timestamp');
	like($m, qr/^replica_router_snapshot_age_seconds [\d.]+$/m, 'the data age as a metric');
	unlike($m, qr/pool_lock_waiting/, 'no unit-less names (pool_lock_waiting is now node_lock_waiting_connections)');
	# Every sample's family has HELP and TYPE.
	my %typed = map { $_ => 1 } $m =~ /^# TYPE (\w+) /mg;
	my @untyped = grep { !$typed{$_} } map { /^(\w+)/ ? $1 : () } grep { !/^#/ } split /\n/, $m;
	is(scalar @untyped, 0, 'every sample has a TYPE line') or diag("@untyped");

	# One renderer: the SQL function metrics() gives the same families as
	# serve (serve adds only its own snapshot_* and serve_* series).
	my $families = sub { my %f = map { $_ => 1 } $_[0] =~ /^# TYPE (\w+) /mg; return join ',', sort keys %f; };
	(my $serve_own = $families->($m)) =~ s/(^|,)replica_router_(snapshot|serve)_\w+//g;
	$serve_own =~ s/^,//;
	is($families->($rr->q('SELECT replica_router.metrics()')), $serve_own, "SQL metrics() and serve's /metrics: the same families");

	# On a standby: its own observer's live view, marked as not a primary's.
	my $sm;
	wait_until(30, sub { $sm = $s1->safe_psql('postgres', 'SELECT replica_router.metrics()'); $sm =~ /^replica_router_replica_up\{node="s2",zone="zs2"\} 1$/m }, 0.1)
	  or diag($sm);
	like($sm, qr/^replica_router_info\{version="1\.2",source_role="standby"\} 1$/m, 'metrics() on a standby: source_role="standby"');
	like($sm, qr/^replica_router_source_is_primary 0$/m, 'metrics() on a standby: source_is_primary 0');
	like($sm, qr/^replica_router_replica_up\{node="s2",zone="zs2"\} 1$/m, 'metrics() on a standby: its live view of s2');
	unlike($sm, qr/node="s[12]",role="primary"/, 'metrics() on a standby: no standby labelled primary');
}

###############################################################################
# (c) Load-balancer checks
###############################################################################
{
	my @r = $serve->get('/primary');
	is($r[0], 200, '/primary: 200 (the source is the primary)');
	like($r[1], qr/"node":"primary"/, '/primary: names the primary');
	is(($serve->request('HEAD', '/primary'))[0], 200, 'HEAD /primary: 200');
	is(($serve->request('HEAD', '/primary'))[1], '', 'HEAD /primary: no body');
	is(($serve->request('OPTIONS', '/primary'))[0], 200, 'OPTIONS /primary: 200');
	is(($serve->get('/node/s1/replica'))[0], 200, '/node/s1/replica: 200');
	is(($serve->request('OPTIONS', '/node/s2/replica?max_lag=1s'))[0], 200, 'OPTIONS /node/s2/replica?max_lag=1s: 200');
	is(($serve->get('/node/s1/primary'))[0], 503, '/node/s1/primary: 503 (a replica)');
	is(($serve->get('/node/primary/primary'))[0], 200, '/node/primary/primary: 200');
	my ($st, $body) = $serve->get('/node/nosuch/replica');
	is($st, 404, '/node/nosuch/replica: 404');
	like($body, qr/no node named nosuch/, '... saying so');

	# Pause replay on s1 under writes: its check fails at max_lag=1s.
	$s1->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
	my $last = '';
	my $took = wait_until(15, sub {
		$rr->q('INSERT INTO t VALUES (1)');
		my ($s, $b) = $serve->get('/node/s1/replica?max_lag=1s');
		$last = $b;
		return $s == 503;
	}, 0.1);
	ok(defined $took, 's1 paused: /node/s1/replica?max_lag=1s turns 503') or diag($last);
	like($last, qr/s1 lags [\d.]+s, more than max_lag 1s/, "the body says why ($last)");
	# s2 may be judged slow for a moment on a loaded machine: poll for it.
	my $s2_ok = wait_until(10, sub { ($serve->get('/node/s2/replica?max_lag=1s'))[0] == 200 }, 0.1);
	ok(defined $s2_ok, 's2 still passes');
	my $rep;
	wait_until(10, sub { $rep = $serve->json('/replica?max_lag=1s'); @{ $rep->{qualified} // [] } == 1 }, 0.1);
	is($rep->{target}, 'replica', '/replica?max_lag=1s: 200, a replica qualifies');
	is(scalar @{ $rep->{qualified} }, 1, '... one of them (s2)');
	is(($serve->get('/node/s1/replica?max_lag=1h'))[0], 200, '/node/s1/replica?max_lag=1h: 200 (lagging, within the caller\'s max_lag)');
	$s1->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
}

###############################################################################
# (d) /recommend, bad parameters
###############################################################################
{
	my $r = $serve->json('/recommend');
	is($r->{role}, 'replica', '/recommend: a replica');
	like($r->{connection_string}, qr/^host=/, '/recommend: with the connection string');
	is($serve->json('/recommend?operation=write')->{role}, 'primary', '/recommend?operation=write: the primary');
	like($serve->json('/recommend?zone=zs2&max_lag=1h')->{node}, qr/^s2$/, '/recommend?zone=zs2: s2');
	is($serve->json('/recommend?min_lsn=FFFFFFFF/0')->{role}, 'primary', '/recommend?min_lsn=FFFFFFFF/0: no replica got there, the primary');
	for my $bad (
		[ '/recommend?max_lag=soon', qr/invalid max_lag/ ],
		[ '/recommend?max_lag=-1s', qr/invalid max_lag/ ],
		[ '/recommend?min_lsn=0/x', qr/invalid min_lsn/ ],
		[ '/recommend?operation=%0aevil', qr/invalid operation/ ],
		[ '/recommend?zone=a%20b', qr/invalid zone/ ],
		[ '/recommend?frobnicate=1', qr/unknown parameter/ ],
		[ '/replica?max_lag=1s&max_lag=2s', qr/more than once/ ],
		[ '/node/a%0ab/replica', qr/invalid node name/ ],
		[ '/health?x=1', qr/takes none/ ])
	{
		my ($st, $b) = $serve->get($bad->[0]);
		is($st, 400, "$bad->[0]: 400");
		like($b, $bad->[1], "$bad->[0]: says why ($b)");
	}
	is(($serve->get('/nowhere'))[0], 404, 'unknown endpoint: 404');
	is(($serve->request('POST', '/primary'))[0] >= 400, 1, 'POST /primary: refused');
}

###############################################################################
# (f) Request rate (one keep-alive client, the figure for the README)
###############################################################################
# The rate loops load both cores: a slow_poll_floor equal to query_timeout
# keeps s2 from being judged slow meanwhile (its checks then stay 200).
$rr->set_conf('replica_router.slow_poll_floor' => '500ms');
for my $path ('/node/s2/replica?max_lag=5s', '/recommend?max_lag=5s')
{
	my ($n, $ok, $t0) = (0, 0, time);
	while (time - $t0 < 1.5)
	{
		$n++;
		$ok++ if ($serve->get($path))[0] == 200;
	}
	my $rate = $n / (time - $t0);
	is($ok, $n, "$path: every answer 200");
	diag(sprintf('serve rate: %s %.0f requests/s (one keep-alive client, HTTP::Tiny)', $path, $rate));
}

# And with ApacheBench (apache2-utils), 8 concurrent keep-alive clients.
SKIP:
{
	skip 'ab (apache2-utils) not installed', 3 unless -x '/usr/bin/ab';
	$serve->close_http;    # our idle keep-alive connection would hold one of serve's threads
	for my $path ('/node/s2/replica?max_lag=5s', '/replica?max_lag=5s', '/recommend?max_lag=5s')
	{
		my ($rc, $out, $err) = RRTest::run_tool('ab', '-q', '-k', '-c', '8', '-n', '20000', $serve->url($path));
		my ($rate) = $out =~ /Requests per second:\s+([\d.]+)/;
		# ab counts answers of another length than the first as failed: the
		# data age in the body varies. Connection errors and non-2xx count.
		my ($c, $r, $x) = $out =~ /\(Connect: (\d+), Receive: (\d+), Length: \d+, Exceptions: (\d+)\)/;
		# Non-2xx: under this load on 2 cores the worker's polls of s2 can
		# run late, and the extension then judges it slow for a moment (503).
		my $bad = ($c // 0) + ($r // 0) + ($x // 0);
		my $non2xx = $out =~ /Non-2xx responses:\s+(\d+)/ ? $1 : 0;
		ok(defined $rate && $out =~ /Complete requests:\s+20000/ && $bad == 0 && $non2xx < 1000,
			"ab $path: 20000 requests answered, no connection error, under 5 % not 200 ($non2xx)") or diag("$out$err");
		diag(sprintf('serve rate: %s %.0f requests/s (ab -k -c 8; %d not 200)', $path, $rate // 0, $non2xx));
	}
}
$rr->set_conf('replica_router.slow_poll_floor' => '300ms');

###############################################################################
# (g) The status page
###############################################################################
{
	my ($st, $html) = $serve->get('/');
	is($st, 200, '/: 200');
	like($html, qr/<svg class=spark/, '/: lag sparklines');
	like($html, qr/http-equiv=refresh/, '/: refreshes itself');
	unlike($html, qr/<(script|link|img)[^>]+(src|href)=["']?https?:/i, '/: no external assets');
}

###############################################################################
# (e) Stale: serve cannot read the primary (frozen); 503 after stale_after
###############################################################################
{
	my @pids = $rr->freeze($primary);
	my $t0 = time;
	my ($st, $body) = (0, '');
	my $took = wait_until(10, sub { ($st, $body) = $serve->get('/node/s2/replica'); $st == 503 }, 0.05);
	$rr->thaw(@pids);
	ok(defined $took, sprintf('primary frozen: checks turn 503 after %.2f s (stale_after 1.5s)', $took // -1));
	cmp_ok($took // 0, '>=', 1.0, 'not before the data is old');
	like($body, qr/older than stale_after/, "the body says how old ($body)");
	ok(defined wait_until(15, sub { ($serve->get('/node/s2/replica'))[0] == 200 }, 0.1), 'thawed: 200 again');
}

###############################################################################
# (h) The status page in a real browser: a headless chromium screenshot
###############################################################################
SKIP:
{
	my ($chromium) = grep { -x } qw(/usr/bin/chromium /usr/bin/chromium-browser);
	skip 'chromium not installed', 2 unless $chromium;
	my $dir = PostgreSQL::Test::Utils::tempdir('chromium');
	my $png = "$dir/status.png";
	my ($rc, $out, $err) = RRTest::run_tool($chromium, '--headless', '--no-sandbox', '--disable-gpu',
		'--no-first-run', "--user-data-dir=$dir/profile", '--hide-scrollbars', '--window-size=1200,400',
		"--screenshot=$png", $serve->url('/'));
	ok(-s $png && -s $png > 10_000, sprintf('chromium --headless --screenshot of / (%d bytes)', -s $png // 0))
	  or diag("exit $rc: $err");
	# A PNG whose pixels are not all one colour: the table and its colours rendered.
	open my $fh, '<:raw', $png or die $!;
	read $fh, my $magic, 8;
	close $fh;
	is($magic, "\x89PNG\r\n\x1a\n", 'the screenshot is a PNG');
	# RR_SCREENSHOT_DIR=/some/dir keeps it (to look at).
	my $keep = $ENV{RR_SCREENSHOT_DIR};
	system('cp', $png, "$keep/status.png") if $keep && -d $keep;
}

###############################################################################
# (j) contrib/systemd units pass systemd-analyze verify
###############################################################################
SKIP:
{
	skip 'systemd-analyze not installed', 2 unless -x '/usr/bin/systemd-analyze';
	my $dir = PostgreSQL::Test::Utils::tempdir('units');
	my $bin = File::Spec->rel2abs(RRTest::tool('replica_router'));
	for my $unit (qw(replica-router-serve.service replica-router-follow.service))
	{
		# The units name Debian's path; here the program is the one built.
		(my $text = slurp_file(dirname(__FILE__) . "/../../contrib/systemd/$unit")) =~ s{/usr/lib/postgresql/15/bin/replica_router}{$bin}g;
		open my $fh, '>', "$dir/$unit" or die $!;
		print $fh $text;
		close $fh;
		my ($rc, $out, $err) = RRTest::run_tool('systemd-analyze', 'verify', "$dir/$unit");
		my @mine = grep { /\Q$unit\E/ } split /\n/, "$out$err";
		ok($rc == 0 && !@mine, "systemd-analyze verify $unit") or diag("exit $rc: $out$err");
	}
}

$serve->stop;
like($serve->log, qr/stopping$/m, 'serve stops on SIGTERM');
unlike($serve->log, qr/password/i, 'serve logs no password');
$rr->finish;
$rr->check_log;
done_testing();
