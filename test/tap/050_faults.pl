# Faults the worker must survive, on a real cluster: a primary with the
# extension preloaded (poll 100 ms, connect and query timeouts 500 ms) and
# two streaming standbys, s1 (kept healthy: the "good" replica) and s2.
#
#   1. s2 stopped                                            -> down in < 1 s,
#      out of rotation; back in rotation after a restart
#   2. s2 hung with SIGSTOP (postmaster and all its children) while connected
#      and idle                                              -> down (query
#      timeout) in < 1.5 s, stays down; s1 keeps being polled on schedule;
#      healthy again after SIGCONT
#   3. s2 hung with SIGSTOP while the worker connects       -> down (timeout)
#   4. a TCP port that accepts and never answers             -> down (timeout)
#   5. a refused port                                        -> down at once
#   6. wrong password (scram): down, the password nowhere; masked conninfo;
#      a non-admin cannot read replica_router.nodes
#   7. s2 at max_connections                                 -> down (too many clients)
#   8. a host name that does not resolve                     -> down, no stall
#      (where the resolver is slow, as in some sandboxes, this is also the
#      slow-lookup case: getaddrinfo_a must keep the others on schedule)
#   9. another cluster: its primary and its standby          -> foreign
#  10. a user holds ACCESS EXCLUSIVE on routing_hints while s2 stops:
#      shared memory and recommend() keep up, writes fail, then catch up
#  11. DROP EXTENSION while the worker runs: no error flood; CREATE again
#      resumes: same worker, replicas healthy, hints and heartbeat rewritten,
#      standbys route again
#  12. registry churn: no crash, no stale row, no fd leak, same worker
#  13. primary restart: worker back, registry intact
#  14. split brain: s1 promoted while the primary runs, s2 pointed at s1, s3
#      still following the primary (which is not registered: a 1.1-style
#      registry of replicas): on the old primary, s1 (newer timeline,
#      followed by s2) is the primary, s3 (streaming from the old primary)
#      diverged; reads go to s2, writes to s1; with s2 hung too every
#      replica is excluded: reads go to s1 with the reasons, or fail with
#      SQLSTATE RR001 when fallback_to_primary is off; s1 sees s3 diverged
#      (past its switch point); then the old primary stops (s3 with it): s1,
#      registered as a replica, is the primary member with nothing to edit,
#      recommends s2; s2 answers live and names s1 for writes
#
# While each fault lasts, the test samples recommend('read') and the good
# replica's last_poll every ~20 ms: the faulty node is never recommended once
# it is known bad, every answer is a good replica, and the good replica keeps
# being polled at ~poll_interval (no stall of the worker's loop).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use List::Util qw(max sum);
use Time::HiRes qw(time usleep);
use RRTest qw(wait_until);

my $rr = RRTest->new(standbys => [qw(s1 s2)]);
my $primary = $rr->primary;
my ($s1, $s2) = ($rr->standby('s1'), $rr->standby('s2'));
my $user = getpwuid($<);
is($rr->states, 's1=healthy,s2=healthy', 'primary and two streaming standbys registered, both healthy');

# Per-fault figures, printed at the end.
my @figures;

# Limits for "fast meanwhile". poll_interval is 100 ms: the good replica's
# last_poll is normally 0-110 ms old; a loop stalled by a connect or query
# timeout (500 ms) or a blocking DNS lookup would show far more.
my $max_poll_age = 0.45;
my $max_call = 0.5;

# Samples routing for at least $o{min} s and until $o{until}->(\%states) holds
# (at most $o{max} s). Each sample, one statement: recommend('read'), the age
# of the good replicas' last poll and the state of the watched nodes.
#   good  => [names] every answer must be one of these
#   bad   => [names] never recommended once a sample has shown them not healthy
sub observe
{
	my (%o) = @_;
	my @good = @{ $o{good} // ['s1'] };
	my @bad = @{ $o{bad} // [] };
	my %is_good = map { $_ => 1 } @good;
	my $list = sub { join ',', map { "'$_'" } @_ };
	my $watch = $list->(@good, @bad);
	my $sql = "SELECT r.node, r.role,"
	  . " (SELECT max(extract(epoch FROM clock_timestamp() - s.last_poll)) FROM replica_router.status s"
	  . "   WHERE s.node IN (" . $list->(@good) . ")),"
	  . " (SELECT string_agg(node || '=' || state, ',') FROM replica_router.status WHERE node IN ($watch)),"
	  . " (SELECT string_agg(extract(epoch FROM last_poll)::text, ',') FROM replica_router.status"
	  . "   WHERE node = '$good[0]')"
	  . " FROM replica_router.recommend('read') r";
	my $min = $o{min} // 0;
	my $max = $o{max} // 10;
	my $start = time;
	my %r = (samples => 0, bad_hits => 0, not_good => 0, max_age => 0, max_call => 0, took => undef);
	my (%known_bad, %answers, @polls, $last_states);
	for (;;)
	{
		my $t0 = time;
		my ($node, $role, $age, $states, $lp) = split /\|/, $rr->q($sql), -1;
		my $call = time - $t0;
		my %st = map { split /=/ } split /,/, ($states // '');
		$last_states = $states;
		$r{samples}++;
		$answers{"$node($role)"}++;
		$r{bad_hits}++ if $known_bad{$node};
		$r{not_good}++ unless $is_good{$node};
		$r{max_age} = $age if defined $age && $age ne '' && $age > $r{max_age};
		$r{max_age} = 99 if !defined $age || $age eq '';    # never polled
		$r{max_call} = $call if $call > $r{max_call};
		push @polls, $lp if defined $lp && $lp ne '' && (!@polls || $lp != $polls[-1]);
		$known_bad{$_} = 1 for grep { ($st{$_} // '') ne 'healthy' } @bad;
		my $done = $o{until} ? $o{until}->(\%st) : 1;
		$r{took} //= time - $start if $done;
		last if defined $r{took} && time - $start >= $min;
		last if time - $start >= $max;
		usleep(20_000);
	}
	my @gaps = map { $polls[$_] - $polls[ $_ - 1 ] } 1 .. $#polls;
	$r{mean_gap} = @gaps ? sum(@gaps) / @gaps : 99;
	$r{max_gap} = @gaps ? max(@gaps) : 99;
	$r{answers} = join ' ', map { "$_ x$answers{$_}" } sort keys %answers;
	$r{states} = $last_states;
	$r{seconds} = time - $start;
	return \%r;
}

# The standard assertions on an observation.
sub meanwhile_ok
{
	my ($label, $r, %o) = @_;
	note(sprintf('%s: %d samples over %.1f s; answers: %s; good replica polled every %.3f s on average'
		  . ' (max gap %.3f s, max age %.3f s); slowest sample %.3f s; last states %s',
		$label, $r->{samples}, $r->{seconds}, $r->{answers}, $r->{mean_gap}, $r->{max_gap},
		$r->{max_age}, $r->{max_call}, $r->{states} // ''));
	is($r->{bad_hits}, 0, "$label: the faulty node is never recommended");
	is($r->{not_good}, 0, "$label: every answer is a good replica ($r->{answers})");
	my $age_limit = $o{max_age} // $max_poll_age;
	cmp_ok($r->{max_age}, '<', $age_limit,
		"$label: the good replica keeps being polled (last_poll never older than ${age_limit}s)");
	cmp_ok($r->{max_call}, '<', $max_call, "$label: recommend() stays fast (slowest sample < ${max_call}s)");
}

# An until-condition for observe(): $node is in $state.
sub in_state
{
	my ($node, $state) = @_;
	return sub { ($_[0]{$node} // '') eq $state };
}

sub error_of
{
	my ($node) = @_;
	return $rr->q("SELECT coalesce(error, '') FROM replica_router.status WHERE node = '$node'");
}

# When the worker last changed $node's state (epoch seconds, its clock).
sub state_since
{
	my ($node) = @_;
	return $rr->q("SELECT extract(epoch FROM state_since) FROM replica_router._hints() WHERE node = '$node'");
}

###############################################################################
# 1. A stopped standby is down quickly and out of rotation
###############################################################################
{
	my $t_begin = time;
	$s2->stop('fast');
	my $t_stopped = time;
	my $seen = $rr->wait_state('s2', 'down', 5);
	ok(defined $seen, 's2 stopped: down');
	my $since = state_since('s2');
	# The worker notices when the server closes its idle connection, which
	# can be before pg_ctl returns: count that as 0.
	my $detect = $since - $t_stopped;
	$detect = 0 if $detect < 0;
	push @figures, sprintf('stopped standby: marked down %.0f ms after pg_ctl stop returned'
		  . ' (%.0f ms after it was called; the test saw it after %.0f ms)',
		1000 * $detect, 1000 * ($since - $t_begin), 1000 * ($seen // -1));
	cmp_ok($detect, '<', 1.0, 'stopped standby detected as down in under 1 s');
	cmp_ok($seen // 99, '<', 1.0, 'the down state was visible in status within 1 s of the stop');

	my $count = $rr->read_counts(20);
	is($count->{s2} // 0, 0, 'down s2 never recommended (20 calls)');
	is($count->{s1} // 0, 20, 'all reads go to s1');
	my $err = error_of('s2');
	like($err, qr/\S/, "s2 down: status shows the error: $err");

	$s2->start;
	my $back = $rr->wait_state('s2', 'healthy', 10);
	ok(defined $back, 's2 restarted: healthy again');
	note(sprintf('s2 healthy %.2f s after it was restarted', $back // -1));
	is(RRTest::split_of($rr->read_counts(10), qw(s1 s2)), 's1=5,s2=5', 's2 back in rotation');
}

###############################################################################
# 2. A hung standby (SIGSTOP, connected and idle) is down by timeout; the
#    other keeps its schedule
###############################################################################
{
	my $poll_before = $rr->q("SELECT last_poll FROM replica_router.status WHERE node = 's1'");
	my @pids = $rr->freeze($s2);
	my $t_frozen = time;
	note('SIGSTOPped s2: pids ' . join(' ', @pids));

	my $seen = $rr->wait_state('s2', 'down', 5);
	ok(defined $seen, 's2 hung: down');
	my $detect = state_since('s2') - $t_frozen;
	push @figures, sprintf('hung standby: marked down %.0f ms after SIGSTOP (query_timeout 500 ms,'
		  . ' poll_interval 100 ms)', 1000 * $detect);
	cmp_ok($detect, '<', 1.5, 'hung standby detected as down in under 1.5 s (query_timeout + poll_interval + slack)');
	my $err = error_of('s2');
	like($err, qr/timeout/, "hung s2: the error is a timeout: $err");

	# While s2 stays hung (more connect and query timeouts), sample s1's last
	# poll: it must advance every time, and never be more than a few poll
	# intervals old.
	my (@ages);
	my $prev = $poll_before;
	my $advancing = 1;
	for my $i (1 .. 10)
	{
		usleep(250_000);
		my ($poll, $age, $state) = split /\|/, $rr->q(
			"SELECT last_poll, extract(epoch FROM clock_timestamp() - last_poll), state"
			  . " FROM replica_router.status WHERE node = 's1'");
		$advancing &&= $rr->q("SELECT '$poll'::timestamptz > '$prev'::timestamptz") eq 't'
		  && $state eq 'healthy';
		push @ages, sprintf('%.0f', $age * 1000);
		$prev = $poll;
	}
	note('s1 last_poll age (ms) while s2 hung: ' . join(' ', @ages));
	ok($advancing, 's1: last_poll advanced at every one of 10 samples over 2.5 s, s1 healthy throughout');
	my @late = grep { $_ > 400 } @ages;
	is(scalar(@late), 0, 's1 polled on schedule while s2 hung (last_poll never older than 400 ms)');
	is($rr->state('s2'), 'down', 's2 still down after 2.5 s hung (not stale, not healthy)');
	my $count = $rr->read_counts(20);
	is($count->{s2} // 0, 0, 'hung s2 never recommended (20 calls)');
	is($count->{s1} // 0, 20, 'all reads go to s1 while s2 hung');
	ok(defined $rr->wait_rounds(5, 2), 'the worker keeps starting rounds while s2 hangs');

	$rr->thaw(@pids);
	my $back = $rr->wait_state('s2', 'healthy', 15);
	ok(defined $back, 's2 continued (SIGCONT): healthy again');
	note(sprintf('s2 healthy %.2f s after SIGCONT', $back // -1));
	is(RRTest::split_of($rr->read_counts(10), qw(s1 s2)), 's1=5,s2=5', 's2 back in rotation after the hang');
}

###############################################################################
# 3. s2 hung with SIGSTOP while the worker connects to it
###############################################################################
{
	my $ci = $rr->conninfo($s2);
	my @pids = $rr->freeze($s2);
	# A new conninfo makes the worker drop its connection and open a new one,
	# which the frozen postmaster never answers.
	my $t0 = time;
	$rr->q("SELECT replica_router.alter_replica('s2', conninfo => '$ci application_name=rr_reconnect')");
	my $r = observe(bad => ['s2'], until => in_state('s2', 'down'), min => 2, max => 8);
	ok(defined $r->{took}, 'SIGSTOP while connecting: s2 down');
	my $err = error_of('s2');
	like($err, qr/timeout connecting/, "SIGSTOP while connecting: a timeout error ($err)");
	push @figures, sprintf('SIGSTOP while connecting: down after %.2f s (%s)', $r->{took} // -1, $err);
	cmp_ok($r->{took} // 99, '<', 2, 'SIGSTOP while connecting: detected within connect_timeout + a poll');
	meanwhile_ok('SIGSTOP while connecting', $r);

	$rr->thaw(@pids);
	ok(defined $rr->wait_state('s2', 'healthy', 15), 's2 healthy again after SIGCONT');
}

###############################################################################
# 4. A TCP port that accepts and never answers
###############################################################################
my $hang_port = PostgreSQL::Test::Cluster::get_free_port();
my ($hang_out, $hang_err) = ('', '');
my $hang = IPC::Run::start(
	[
		'perl', '-MIO::Socket::INET', '-e', q{
			my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $ARGV[0],
				Listen => 64, ReuseAddr => 1, Proto => 'tcp') or die "listen: $!";
			$| = 1;
			print "listening\n";
			my @held;
			while (my $c = $s->accept) { push @held, $c; print "accepted\n"; }
		}, $hang_port
	],
	'<', \undef, '>', \$hang_out, '2>', \$hang_err);
END { $hang->kill_kill if $hang; }
wait_until(10, sub { $hang->pump_nb; $hang_out =~ /listening/ }) or die "hang listener: $hang_err";
{
	$rr->q("SELECT replica_router.add_replica('hang', 'host=127.0.0.1 port=$hang_port dbname=postgres"
		  . " user=$user')");
	my $r = observe(bad => ['hang'], good => [qw(s1 s2)], until => in_state('hang', 'down'),
		min => 2, max => 8);
	ok(defined $r->{took}, 'accept-and-hang port: down');
	my $err = error_of('hang');
	like($err, qr/timeout/, "accept-and-hang port: a timeout error ($err)");
	$hang->pump_nb;
	my $accepted = () = $hang_out =~ /accepted/g;
	cmp_ok($accepted, '>=', 2, "the listener accepted the worker's connections ($accepted) and never answered");
	push @figures, sprintf('accept-and-hang port: down after %.2f s (%s)', $r->{took} // -1, $err);
	cmp_ok($r->{took} // 99, '<', 2, 'accept-and-hang port: detected within connect_timeout + a poll');
	meanwhile_ok('accept-and-hang port', $r, good => [qw(s1 s2)]);
	$rr->q("SELECT replica_router.remove_replica('hang')");
}
$hang->kill_kill;
$hang = undef;

###############################################################################
# 5. A refused port
###############################################################################
{
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	$rr->q("SELECT replica_router.add_replica('refused', 'host=127.0.0.1 port=$port dbname=postgres user=$user')");
	my $r = observe(bad => ['refused'], good => [qw(s1 s2)], until => in_state('refused', 'down'),
		min => 1, max => 5);
	ok(defined $r->{took}, 'refused port: down');
	my $err = error_of('refused');
	like($err, qr/refused/i, "refused port: connection refused ($err)");
	push @figures, sprintf('refused port: down after %.2f s', $r->{took} // -1);
	cmp_ok($r->{took} // 99, '<', 0.5, 'refused port: down at once (< 0.5 s)');
	meanwhile_ok('refused port', $r, good => [qw(s1 s2)]);
	$rr->q("SELECT replica_router.remove_replica('refused')");
}

###############################################################################
# 6. Wrong password: down, and the password appears nowhere
###############################################################################
my $listener = $primary->background_psql('postgres');
$listener->set_query_timer_restart;  # it lives through many sections: the timeout is per query
$listener->query_safe('LISTEN replica_router');
my $notifications = '';
{
	my $right = 'Right-s3cret-4711';
	my $wrong = 'Wr0ng-s3cret-0815';
	# Statement logging (on in these clusters) would log our own statements
	# with the passwords: keep it off for those, so the log shows only what
	# the server and the extension say.
	$rr->q("SET log_statement = 'none'");
	$rr->q("SET password_encryption = 'scram-sha-256'");
	$rr->q("CREATE ROLE rr_monitor LOGIN PASSWORD '$right' IN ROLE pg_monitor");
	$rr->q('CREATE ROLE rr_plain LOGIN');
	$primary->wait_for_catchup($s2, 'replay', $primary->lsn('insert'));

	# s2 asks rr_monitor for its password; everyone else stays trusted.
	my $hba = $s2->data_dir . '/pg_hba.conf';
	my $old = slurp_file($hba);
	open my $fh, '>', $hba or die "$hba: $!";
	print $fh "local all rr_monitor scram-sha-256\nhost all rr_monitor 127.0.0.1/32 scram-sha-256\n$old";
	close $fh;
	$s2->reload;

	my $base = sprintf('host=%s port=%d dbname=postgres user=rr_monitor', $s2->host, $s2->port);
	my $bad_row = $rr->q("SELECT conninfo FROM replica_router.add_replica('pw_bad', '$base password=$wrong')");
	my $r = observe(bad => ['pw_bad'], good => [qw(s1 s2)], until => in_state('pw_bad', 'down'),
		min => 1, max => 5);
	# The same node with the right password: healthy, so scram on s2 is what refused pw_bad.
	my $good_row = $rr->q("SELECT conninfo FROM replica_router.add_replica('pw_good', '$base password=$right')");
	$rr->q('RESET log_statement');
	like($bad_row, qr/password=\*{8}/, "add_replica returns the conninfo masked ($bad_row)");
	unlike($bad_row . $good_row, qr/\Q$wrong\E|\Q$right\E/, "add_replica's result holds no password");
	ok(defined $rr->wait_state('pw_good', 'healthy', 10),
		'the right password (scram on s2) is accepted: pw_good healthy');
	ok(defined $r->{took}, 'wrong password: down');
	my $err = error_of('pw_bad');
	like($err, qr/password authentication failed for user "rr_monitor"/, "wrong password: the error says so ($err)");
	push @figures, sprintf('wrong password: down after %.2f s', $r->{took} // -1);
	meanwhile_ok('wrong password', $r, good => [qw(s1 s2)]);

	# Wait for the hint row and the NOTIFY of the state change.
	ok( defined $rr->wait_for(5, "SELECT state FROM replica_router.routing_hints WHERE node = 'pw_bad'", 'down'),
		'wrong password: routing_hints says down');
	ok( defined wait_until(5,
			sub { ($notifications .= $listener->query_safe('SELECT 1')) =~ /"node" : "pw_bad".*"new_state" : "down"/ },
			0.05),
		'wrong password: the state change was notified');

	# Everything that shows an error or a node, as an admin and as a plain user.
	my $shown = $rr->q(q{
SELECT concat_ws(E'\n',
  (SELECT string_agg(concat_ws(' ', node, state, error), E'\n') FROM replica_router.status),
  (SELECT string_agg(concat_ws(' ', node, state, error), E'\n') FROM replica_router.routing_hints),
  (SELECT string_agg(concat_ws(' ', node, state, error), E'\n') FROM replica_router.lag),
  (SELECT string_agg(concat_ws(' ', node, state, reason), E'\n') FROM replica_router.candidates('read')),
  (SELECT concat_ws(' ', last_error, last_error_at) FROM replica_router.worker_status()),
  replica_router.metrics())});
	like($shown, qr/password authentication failed/, 'the views show the authentication error');
	unlike($shown, qr/\Q$wrong\E|\Q$right\E/,
		'no password in status, routing_hints, lag, candidates, worker_status or metrics');
	my ($rc, $plain_out, $plain_err) = $primary->psql('postgres',
		"SELECT string_agg(concat_ws(' ', node, state, error), E'\\n') FROM replica_router.status",
		extra_params => [ '-U', 'rr_plain' ]);
	like($plain_out, qr/pw_bad down .*password authentication failed/, 'a plain user sees the error');
	unlike($plain_out, qr/\Q$wrong\E|\Q$right\E/, 'a plain user sees no password');
	($rc, $plain_out, $plain_err) = $primary->psql('postgres', 'SELECT conninfo FROM replica_router.nodes',
		extra_params => [ '-U', 'rr_plain' ]);
	isnt($rc, 0, 'a plain user cannot read replica_router.nodes');
	like($plain_err, qr/permission denied for table nodes/, "a plain user is refused: $plain_err");
	unlike($notifications, qr/\Q$wrong\E|\Q$right\E/, 'no password in NOTIFY payloads');
	for my $node ($primary, $s2)
	{
		my $log = slurp_file($node->logfile);
		my @lines = grep { /\Q$wrong\E|\Q$right\E/ } split /\n/, $log;
		is(scalar(@lines), 0, 'no password in the log of ' . $node->name) or diag(join "\n", @lines);
	}
	my @auth = grep { /password authentication failed for user "rr_monitor"/ } split /\n/,
	  slurp_file($s2->logfile);
	cmp_ok(scalar(@auth), '>=', 1, 's2 logged the failed authentications (the check above looked at them)');

	$rr->q("SELECT replica_router.remove_replica('pw_bad'); SELECT replica_router.remove_replica('pw_good')");
}

###############################################################################
# 7. s2 at max_connections: "too many clients"
###############################################################################
my @fillers;
{
	# Disconnect the worker, fill every slot, then let it connect again.
	$rr->q("SELECT replica_router.alter_replica('s2', enabled => false)");
	ok( defined wait_until(5, sub {
				$s2->safe_psql('postgres',
					"SELECT count(*) FROM pg_stat_activity WHERE application_name IN ('rr_reconnect', 'replica_router')") eq '0';
			}),
		'max_connections: the worker disconnected from the disabled s2');
	my $maxconn = $s2->safe_psql('postgres', 'SHOW max_connections');
	my $in_use = $s2->safe_psql('postgres',
		"SELECT count(*) - 1 FROM pg_stat_activity WHERE backend_type = 'client backend'");
	push @fillers, $s2->background_psql('postgres') for 1 .. $maxconn - $in_use;
	my ($rc, $out, $err) = $s2->psql('postgres', 'SELECT 1');
	like($err, qr/too many clients/, "s2 is full ($maxconn connections): $err");

	$rr->q("SELECT replica_router.alter_replica('s2', enabled => true)");
	my $r = observe(bad => ['s2'], until => in_state('s2', 'down'), min => 2, max => 8);
	ok(defined $r->{took}, 'max_connections: s2 down');
	my $e = error_of('s2');
	like($e, qr/too many clients/, "max_connections: the error says so ($e)");
	push @figures, sprintf('max_connections: down after %.2f s (%s)', $r->{took} // -1, $e);
	meanwhile_ok('max_connections', $r);
	is($rr->state('s1'), 'healthy', 'max_connections: s1 unaffected');

	$_->quit for @fillers;
	@fillers = ();
	ok(defined $rr->wait_state('s2', 'healthy', 10), 's2 healthy again once connections are free');
}

###############################################################################
# 8. A host name that does not resolve
###############################################################################
{
	$rr->q("SELECT replica_router.add_replica('nx', 'host=does-not-exist.invalid port=5432 dbname=postgres"
		  . " user=$user')");
	my $r = observe(bad => ['nx'], good => [qw(s1 s2)], until => in_state('nx', 'down'),
		min => 3, max => 8);
	ok(defined $r->{took}, 'unresolvable host: down');
	my $err = error_of('nx');
	like($err, qr/resolv/, "unresolvable host: the error says so ($err)");
	push @figures, sprintf('unresolvable host: down after %.2f s (%s); s1 polled every %.3f s (max gap %.3f s)',
		$r->{took} // -1, $err, $r->{mean_gap}, $r->{max_gap});
	meanwhile_ok('unresolvable host', $r, good => [qw(s1 s2)]);
	cmp_ok($r->{mean_gap}, '<', 0.15,
		sprintf('unresolvable host: s1 still polled at ~poll_interval (every %.3f s)', $r->{mean_gap}));
	my $polls = $rr->q("SELECT polls FROM replica_router.worker_status()");
	ok( defined wait_until(3, sub { $rr->q("SELECT polls FROM replica_router.worker_status()") > $polls + 5 }),
		'the worker keeps polling while nx is resolved every round');
	$rr->q("SELECT replica_router.remove_replica('nx')");
}

###############################################################################
# 9. Another cluster (another system identifier): its primary and its standby
###############################################################################
{
	my $other = PostgreSQL::Test::Cluster->new('other');
	$other->init(allows_streaming => 1);
	$other->start;
	$other->backup('other_base');
	my $other_s = PostgreSQL::Test::Cluster->new('other_s');
	$other_s->init_from_backup($other, 'other_base', has_streaming => 1);
	$other_s->start;
	# The other cluster's primary is not in recovery: foreign, not promoted.
	$rr->register('other', $other);
	$rr->register('other_s', $other_s);
	my $r = observe(
		bad => [qw(other other_s)],
		good => [qw(s1 s2)],
		until => sub { ($_[0]{other} // '') eq 'foreign' && ($_[0]{other_s} // '') eq 'foreign' },
		min => 1,
		max => 8);
	ok(defined $r->{took}, 'an unrelated cluster\'s primary and its standby are foreign');
	is($rr->state('other'), 'foreign', 'an unrelated cluster (its primary) is foreign');
	is($rr->state('other_s'), 'foreign', 'a standby of another cluster is foreign');
	push @figures, sprintf('other cluster: foreign after %.2f s', $r->{took} // -1);
	meanwhile_ok('other cluster', $r, good => [qw(s1 s2)]);
	is(RRTest::split_of($rr->read_counts(10), qw(other other_s s1 s2)), 'other=0,other_s=0,s1=5,s2=5',
		'the foreign nodes are never recommended');
	like($rr->q("SELECT reason FROM replica_router.candidates('read') WHERE node = 'other_s'"),
		qr/foreign/, 'candidates() says why other_s is left out');
	like($rr->q("SELECT reason FROM replica_router.candidates('read') WHERE node = 'other'"),
		qr/foreign/, 'candidates() says why other is left out');
	$rr->q("SELECT replica_router.remove_replica('other'); SELECT replica_router.remove_replica('other_s')");
	$other_s->stop;
	$other->stop;
}

###############################################################################
# 10. A user holds ACCESS EXCLUSIVE on routing_hints while s2 stops
###############################################################################
{
	my $wf0 = $rr->q('SELECT write_failures FROM replica_router.worker_status()');
	my $locker = $primary->background_psql('postgres');
	$locker->query_safe('BEGIN; LOCK TABLE replica_router.routing_hints IN ACCESS EXCLUSIVE MODE');
	my $t0 = time;
	$s2->stop('fast');
	my $stopped = time - $t0;
	my $r = observe(bad => ['s2'], until => in_state('s2', 'down'), min => 2.5, max => 8);
	ok(defined $r->{took}, 'table locked: s2 down in shared memory (status) anyway');
	my $took = $stopped + ($r->{took} // 99);
	cmp_ok($took, '<', 1.5, sprintf('table locked: down %.2f s after the stop began', $took));
	# Each round's hint write now waits out lock_timeout (100 ms) first.
	meanwhile_ok('table locked', $r, max_age => $max_poll_age + 0.15);
	my $wf = $rr->q('SELECT write_failures FROM replica_router.worker_status()');
	cmp_ok($wf, '>', $wf0, "table locked: the worker's writes failed ($wf0 -> $wf) instead of waiting");
	like($rr->q('SELECT last_error FROM replica_router.worker_status()'), qr/lock timeout/,
		'table locked: worker_status().last_error names the lock timeout');
	like($rr->q("SELECT node FROM replica_router.recommend('read')"), qr/^s1$/, 'table locked: recommend() says s1');

	$locker->query_safe('COMMIT');
	$locker->quit;
	my $caught = $rr->wait_for(5, "SELECT state FROM replica_router.routing_hints WHERE node = 's2'", 'down');
	ok(defined $caught, 'lock released: routing_hints catches up (s2 down)');
	push @figures, sprintf('table locked: s2 down in shared memory %.2f s after the stop began; '
		  . 'write failures %d -> %d; table caught up %.2f s after the lock went', $took, $wf0, $wf, $caught // -1);

	$s2->start;
	ok(defined $rr->wait_state('s2', 'healthy', 10), 's2 healthy again after a restart');
	ok(defined $rr->wait_for(5, "SELECT state FROM replica_router.routing_hints WHERE node = 's2'", 'healthy'),
		'routing_hints says healthy again');
}

###############################################################################
# 11. DROP EXTENSION while the worker runs, then CREATE EXTENSION again
###############################################################################
{
	my $pid = $rr->worker_pid;
	my $offset = -s $primary->logfile;
	$rr->q('DROP EXTENSION replica_router');
	my $t0 = time;
	my $noticed = wait_until(15,
		sub { slurp_file($primary->logfile, $offset) =~ /\[$pid\].*extension dropped/ }, 0.05);
	ok(defined $noticed, 'DROP EXTENSION: the worker notices');
	# Watch the worker's log lines for a few more seconds.
	wait_until(3, sub { 0 }, 0.1);
	my @lines = grep { /\[$pid\]/ } split /\n/, slurp_file($primary->logfile, $offset);
	my @errors = grep { /ERROR|WARNING|FATAL|could not|failed/ } @lines;
	note("worker log lines after DROP EXTENSION:\n" . join("\n", @lines));
	cmp_ok(scalar(@errors), '<=', 2, sprintf('DROP EXTENSION: no error flood from the worker (%d error lines,'
			  . ' %d lines in %.1f s)', scalar(@errors), scalar(@lines), time - $t0))
	  or diag(join "\n", @errors);
	my $alive = $primary->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND backend_type = 'replica_router worker'");
	is($alive, '1', 'DROP EXTENSION: the worker keeps running (waits quietly)');

	$rr->q('CREATE EXTENSION replica_router');
	my $t1 = time;
	$rr->register($_) for qw(s1 s2);
	my $back = $rr->wait_for(10,
		"SELECT count(*) FILTER (WHERE state = 'healthy') = 2 FROM replica_router.status WHERE role = 'replica'");
	ok(defined $back, 'CREATE EXTENSION again: re-registered replicas healthy');
	my $resumed = time - $t1;
	cmp_ok($resumed, '<', 5, sprintf('CREATE EXTENSION again: healthy %.2f s after re-registering', $resumed));
	is($rr->worker_pid, $pid, 'CREATE EXTENSION again: the same worker resumed');
	push @figures, sprintf('DROP EXTENSION: noticed after %.2f s, %d error lines, %d worker lines; '
		  . 'healthy %.2f s after CREATE + re-register', $noticed // -1, scalar(@errors), scalar(@lines), $resumed);
	is(join(',', sort keys %{ $rr->read_counts(10) }), 's1,s2', 'CREATE EXTENSION again: recommend() uses both replicas');
	ok( defined $rr->wait_for(5,
			"SELECT count(*) = 2 FROM replica_router.routing_hints WHERE state = 'healthy'"),
		'CREATE EXTENSION again: routing_hints written again');
	# The standbys route from the replicated hints only with a heartbeat row;
	# the new heartbeat table must not stay empty until the next heartbeat
	# (replica_router.heartbeat, an hour here, a minute by default).
	ok(defined $rr->wait_for(5, 'SELECT count(*) = 1 FROM replica_router.heartbeat'),
		'CREATE EXTENSION again: the heartbeat row is written again');
	my $on_standby = '';
	ok( defined wait_until(5, sub {
				($on_standby = $s1->safe_psql('postgres',
					"SELECT role || ': ' || reason FROM replica_router.recommend('read')")) =~ /^replica/;
			}, 0.1),
		"CREATE EXTENSION again: recommend() on a standby routes to a replica ($on_standby)");
}

###############################################################################
# 12. Registry churn
###############################################################################
sub fd_count
{
	my ($pid) = @_;
	opendir(my $dh, "/proc/$pid/fd") or return -1;
	my $n = grep { !/^\./ } readdir $dh;
	closedir $dh;
	return $n;
}
{
	my $pid = $rr->worker_pid;
	$rr->wait_for(5, "SELECT count(*) = 2 FROM replica_router.routing_hints WHERE state = 'healthy'");
	my $base_fds = fd_count($pid);
	cmp_ok($base_fds, '>', 0, "worker's open file descriptors before churn: $base_fds");
	my $offset = -s $primary->logfile;
	my @refused = map { PostgreSQL::Test::Cluster::get_free_port() } 1 .. 3;
	my %live = (s1 => $rr->conninfo($s1), s2 => $rr->conninfo($s2));
	my $n = 200;
	my $t0 = time;
	my @alive;
	for my $i (1 .. $n)
	{
		my $ci =
			$i % 3 == 0 ? $live{s1}
		  : $i % 3 == 1 ? "host=127.0.0.1 port=$refused[$i % @refused] dbname=postgres user=$user"
		  :               $live{s2};
		my $sql = "SELECT replica_router.add_replica('c$i', '$ci');";
		push @alive, "c$i";
		if (@alive > 4)
		{
			my $gone = splice(@alive, int(rand(@alive - 1)), 1);
			$sql .= "SELECT replica_router.remove_replica('$gone');";
		}
		if ($i % 10 == 0)
		{
			# Re-point a node: a live one to a refused port, or back.
			my $ci2 = $i % 20 ? $live{s1} : "host=127.0.0.1 port=$refused[0] dbname=postgres user=$user";
			$sql .= "SELECT replica_router.alter_replica('$alive[0]', conninfo => '$ci2');";
		}
		# recommend() waits until the worker has loaded this session's changes.
		$sql .= "SELECT node FROM replica_router.recommend('read');";
		$rr->q($sql);
		usleep(int(rand(30_000)));    # let some polls be in flight at the next change
	}
	$rr->q(join '', map { "SELECT replica_router.remove_replica('$_');" } @alive);
	my $churn = time - $t0;
	note(sprintf('churn: %d add/remove/alter iterations in %.1f s', $n, $churn));

	is($rr->worker_pid, $pid, 'churn: the same worker pid');
	is($rr->q('SELECT string_agg(name, \',\' ORDER BY name) FROM replica_router.nodes'), 's1,s2',
		'churn: only s1 and s2 registered');
	ok( defined $rr->wait_for(5,
			"SELECT string_agg(node, ',' ORDER BY node) FROM replica_router.routing_hints", 's1,s2'),
		'churn: routing_hints has exactly the registered nodes (no stale row)');
	is($rr->q("SELECT string_agg(node, ',' ORDER BY node) FROM replica_router._hints()"), 's1,s2',
		'churn: shared memory has exactly the registered nodes');
	my $fds;
	ok(defined wait_until(5, sub { ($fds = fd_count($pid)) <= $base_fds }, 0.05),
		"churn: the worker's open fds are back to the baseline ($base_fds -> $fds)");
	is($rr->q("SELECT string_agg(state, ',' ORDER BY node) FROM replica_router.status WHERE role = 'replica'"),
		'healthy,healthy', 'churn: s1 and s2 still healthy');
	my @lines = grep { /\[$pid\]/ } split /\n/, slurp_file($primary->logfile, $offset);
	my @other = grep { !/is now/ } @lines;
	note(sprintf('churn: %d worker log lines, %d of them not state changes', scalar(@lines), scalar(@other)));
	note(join "\n", @other[ 0 .. ($#other < 19 ? $#other : 19) ]) if @other;
	push @figures, sprintf('churn: %d iterations in %.1f s; fds %d -> %d; %d worker log lines (%d not state changes)',
		$n, $churn, $base_fds, $fds, scalar(@lines), scalar(@other));
	$rr->check_log;
}

###############################################################################
# 13. Primary restart: the worker comes back, the registry is intact
###############################################################################
$notifications .= $listener->query_safe('SELECT 1');
$listener->quit;
{
	my $registry_sql = "SELECT string_agg(concat_ws(' ', id, name, conninfo, weight, enabled, zone), E'\\n'"
	  . " ORDER BY id) FROM replica_router.nodes";
	my $before = $rr->q($registry_sql);
	my $routes_before = $rr->q("SELECT string_agg(operation || ' ' || target, ',' ORDER BY operation)"
		  . " FROM replica_router.routes");
	my $pid = $rr->worker_pid;
	$rr->finish;
	my $t0 = time;
	$primary->restart;
	$rr->reopen;
	my $up = $rr->wait_for(10, 'SELECT pid IS NOT NULL FROM replica_router.worker_status()');
	ok(defined $up, 'primary restart: the worker is running again');
	isnt($rr->worker_pid, $pid, 'primary restart: a new worker process');
	is($rr->q($registry_sql), $before, 'primary restart: the registry is intact');
	is( $rr->q("SELECT string_agg(operation || ' ' || target, ',' ORDER BY operation) FROM replica_router.routes"),
		$routes_before, 'primary restart: the routes are intact');
	my $healthy = $rr->wait_for(10,
		"SELECT count(*) FILTER (WHERE state = 'healthy') = 2 FROM replica_router.status WHERE role = 'replica'");
	ok(defined $healthy, 'primary restart: both replicas healthy again');
	push @figures, sprintf('primary restart: replicas healthy %.2f s after the restart began', time - $t0);
	my $r = observe(good => [qw(s1 s2)], min => 1);
	meanwhile_ok('after primary restart', $r, good => [qw(s1 s2)]);
}

###############################################################################
# 14. Split brain, then failover as Patroni would do it
###############################################################################
my $s3;
{
	# s3: one more standby of the primary, registered, so that both sides of
	# the split have a replica that follows the other side.
	$primary->backup('base12');
	$s3 = PostgreSQL::Test::Cluster->new('s3');
	$s3->init_from_backup($primary, 'base12', has_streaming => 1);
	$s3->start;
	$rr->register('s3', $s3);
	ok(defined $rr->wait_state('s3', 'healthy', 15), 'split brain: s3 registered and healthy');
	$primary->wait_for_catchup($_, 'replay', $primary->lsn('insert')) for ($s1, $s2, $s3);

	# s2 cascades from s1 (so it follows s1 across the promotion and never
	# sees the primary's later WAL); then s1 is promoted while the primary
	# still runs (nobody fenced it): the primary's own view.
	$s2->enable_streaming($s1);
	$s2->restart;
	$s1->wait_for_catchup($s2, 'replay', $s1->lsn('replay'));
	my $t0 = time;
	$s1->promote;
	ok(defined wait_until(10, sub { $s1->safe_psql('postgres', 'SELECT pg_is_in_recovery()') eq 'f' }),
		'split brain: s1 promoted while the primary runs');
	# The old primary's own view: s1 is on the newer timeline and s2
	# follows it, so s1 is the primary (the old primary is not registered:
	# a 1.1-style registry of replicas); s3, which streams from this server,
	# follows a server that is not the primary.
	my $seen = $rr->wait_for(15,
		"SELECT string_agg(node || '=' || role || '/' || state, ',' ORDER BY node) FROM replica_router.status",
		's1=primary/primary,s2=replica/healthy,s3=replica/diverged');
	ok(defined $seen, 'split brain, on the old primary: s1 (newer timeline, followed by s2) is the primary, s3 diverged');
	push @figures, sprintf('split brain: s3 diverged on the old primary %.2f s after the promotion began', time - $t0);
	like(error_of('s3'), qr/streams from this server, which is out of recovery but not the primary/,
		'split brain: the old primary says why s3 is left out');
	like(error_of('s1'), qr/^$/, 'split brain: s1, the primary, has no error');
	is($rr->q("SELECT port FROM replica_router.recommend('write')"), $s1->port,
		'split brain: the old primary sends writes to s1');
	my @answers = map { (split /\|/)[0] } $rr->recommend_many(20);
	is(join(',', sort keys %{ { map { $_ => 1 } @answers } }), 's2',
		'split brain: the old primary recommends only s2, which follows s1');
	like($rr->q("SELECT reason FROM replica_router.candidates('read') WHERE node = 's3'"), qr/^diverged$/,
		'split brain: candidates() says s3 diverged');
	is($rr->q("SELECT severity FROM replica_router.lag WHERE node = 's3'"), 'critical',
		'split brain: the lag view marks s3 critical');

	# Every replica excluded (s2 hung as well, SIGSTOP): the primary (s1)
	# with the reasons, or SQLSTATE RR001.
	my @s2_pids = $rr->freeze($s2);
	ok(defined $rr->wait_state('s2', 'down', 5), 's2 hung: down');
	my ($node, $role, $reason) = split /\|/, ($rr->recommend_many(1, 'read'))[0];
	is("$node|$role", 's1|primary', 'no replica qualifies: recommend(read) returns the primary, s1');
	like($reason, qr/no replica qualifies/, "the reason says no replica qualifies: $reason");
	like($reason, qr/s2 down/, 'the reason names s2 as down');
	like($reason, qr/s3 diverged/, 'the reason names s3 as diverged');
	is($rr->q("SELECT port FROM replica_router.recommend('read')"),
		$s1->port, 'the fallback answer carries the primary\'s port');

	$rr->set_conf('replica_router.fallback_to_primary' => 'off');
	my ($rc, $out, $err) = $primary->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT * FROM replica_router.recommend('read');");
	isnt($rc, 0, 'fallback_to_primary off: recommend(read) fails');
	like($err, qr/ERROR:  RR001: no replica qualifies for this read/, 'fallback_to_primary off: SQLSTATE RR001');
	like($err, qr/DETAIL:  no replica qualifies: .*s2 down/, 'the error detail gives the reasons');
	($rc, $out, $err) = $primary->psql('postgres', q{
DO $$
BEGIN
    PERFORM replica_router.recommend('read');
    RAISE NOTICE 'no error';
EXCEPTION WHEN SQLSTATE 'RR001' THEN
    RAISE NOTICE 'caught RR001';
END
$$;});
	like($err, qr/NOTICE:  caught RR001/, 'a DO block catches SQLSTATE RR001');
	is( $primary->safe_psql('postgres', "SELECT role FROM replica_router.recommend('write')"),
		'primary', 'writes still route to the primary with fallback off');
	$rr->set_conf('replica_router.fallback_to_primary' => 'on');
	is($rr->q("SELECT role FROM replica_router.recommend('read')"), 'primary',
		'fallback_to_primary back on: the primary again');
	$rr->thaw(@s2_pids);
	ok(defined $rr->wait_state('s2', 'healthy', 15), 's2 continued: healthy again, it follows s1');

	# The old primary goes on writing; s3 receives it, past the point where
	# s1 left timeline 1: s1's worker must not route to s3.
	$primary->safe_psql('postgres', 'CREATE TABLE split_brain AS SELECT 1 AS x');
	$primary->wait_for_catchup($s3, 'replay', $primary->lsn('insert'));
	my $s1q = sub { $s1->safe_psql('postgres', $_[0]) };
	my $s3_seen = wait_until(15,
		sub { $s1q->("SELECT state FROM replica_router.status WHERE node = 's3'") eq 'diverged' });
	ok(defined $s3_seen, "split brain, on s1: s3 (on timeline 1, past s1's switch point) is diverged");
	like($s1q->("SELECT error FROM replica_router.status WHERE node = 's3'"),
		qr{^on timeline 1 past [0-9A-F]+/[0-9A-F]+, where the primary left that timeline: it follows another primary$},
		'split brain, on s1: the error says where s3 left its history');
	my $s2_on_s1 = wait_until(15,
		sub { $s1q->("SELECT state FROM replica_router.status WHERE node = 's2'") eq 'healthy' });
	ok(defined $s2_on_s1, 'split brain, on s1: s2 (following s1 on timeline 2) is healthy');
	is($s1q->(join "\n", ("SELECT node FROM replica_router.recommend('read');") x 10), join("\n", ('s2') x 10),
		'split brain, on s1: recommend() names s2, never s3');

	# Failover completes: the old primary is stopped, and so is s3, which
	# followed it past s1's switch point and cannot follow s1 without
	# pg_rewind. (Left running, its WAL receiver would stop with the old
	# primary, and a replica that is not streaming is judged by its replay
	# position only, which here is ahead of s1's: see README, Limitations.)
	$rr->finish;
	$s3->stop('fast');
	$primary->stop('fast');
	$t0 = time;

	my $sa = RRTest::Session->new($s1);
	my $qa = sub {
		my ($out, $err) = $sa->run($_[0]);
		die "query on s1 failed: $err\nquery: $_[0]" if $err ne '';
		return $out;
	};
	my $up = wait_until(10, sub { $qa->('SELECT pid IS NOT NULL FROM replica_router.worker_status()') eq 't' });
	ok(defined $up, 'failover: the worker runs on the new primary (the observer, writing since the promotion)');
	my $apid = $qa->('SELECT pid FROM replica_router.worker_status()');
	is($qa->("SELECT string_agg(name, ',' ORDER BY name) FROM replica_router.nodes"), 's1,s2,s3',
		'failover: the registry replicated to the new primary (s1 itself, s2 and s3)');
	my $s2_ok = wait_until(15,
		sub { $qa->("SELECT state FROM replica_router.status WHERE node = 's2'") eq 'healthy' });
	ok(defined $s2_ok, 'failover: the new primary polls s2 (now its standby): healthy');
	ok(defined wait_until(10, sub { $qa->("SELECT state FROM replica_router.status WHERE node = 's3'") eq 'down' }),
		'failover: s3, stopped with the old primary, is down on the new primary');
	my $self_state = $qa->("SELECT role || '/' || state FROM replica_router.status WHERE node = 's1'");
	is($self_state, 'primary/primary', 'failover: the new primary, registered as s1, is the primary member');
	is($qa->("SELECT severity FROM replica_router.lag WHERE node = 's1'"), 'ok',
		'failover: its own entry is no warning: nothing to edit');
	my @nodes = map { (split /\|/)[0] } split /\n/,
	  $qa->(join "\n", ("SELECT node || '|' || role FROM replica_router.recommend('read');") x 10);
	is(join(',', sort keys %{ { map { $_ => 1 } @nodes } }), 's2',
		'failover: recommend() on the new primary returns s2, every time');
	push @figures, sprintf('failover: s2 healthy on the new primary %.2f s after the old primary stopped; s1 shows %s',
		time - $t0, $self_state);
	$sa->close;

	# On s2 (a standby), recommend() answers from its own worker's polls,
	# and the new primary's hints have replicated there too.
	my $hints = wait_until(10, sub {
			$s2->safe_psql('postgres', "SELECT (SELECT worker_pid FROM replica_router.heartbeat) = $apid"
				  . " AND (SELECT state FROM replica_router.routing_hints WHERE node = 's2') = 'healthy'") eq 't';
		});
	ok(defined $hints, "failover: the new primary's hints replicated to s2");
	is($s2->safe_psql('postgres', "SELECT node || '|' || role FROM replica_router.recommend('read')"),
		's2|replica', 'failover: recommend(read) on s2 answers s2');
	is($s2->safe_psql('postgres', "SELECT role || '|' || port FROM replica_router.recommend('write')"),
		'primary|' . $s1->port, 'failover: recommend(write) on s2 names the new primary');
}

###############################################################################
# The logs: no process terminated by a signal
###############################################################################
for my $node ($primary, $s1, $s2, $s3)
{
	my @bad = grep { /terminated by signal|PANIC:|TRAP:/ } split /\n/, slurp_file($node->logfile);
	is(scalar(@bad), 0, 'log of ' . $node->name . ': no process terminated by a signal') or diag(join "\n", @bad);
}

note("figures:\n  " . join("\n  ", @figures));
done_testing();
