# Hostile peers: what a malicious replica, pgbouncer, or a host an admin
# registers, can do to the worker, on a real cluster (a primary with the
# extension preloaded, poll 100 ms, timeouts 500 ms, and one streaming
# standby s1, the control: it must stay healthy and keep being polled
# whatever the hostile node does). The hostile nodes are FakePg servers.
#
#   a) conninfo rules for a non-superuser member of replica_router_admin:
#      a password is required (2F003); parameters that read the server's
#      files or environment, and socket-directory / missing hosts, are
#      refused (42501); a direct INSERT into nodes fails; a superuser may
#      still register all of them
#   b) password exfiltration: with a passfile on the server (PGPASSFILE in
#      the postmaster's environment, as good as ~postgres/.pgpass), an
#      admin's registrations must never make the worker send its password
#      ('server-secret') to a fake server asking for one
#   c) a server that does not ask for the admin's password (trust) is
#      refused: down, an error about the password, and no query sent
#   d) memory: a NotificationResponse flood (from the first query on, and
#      from the first idle moment on), a 500 MB DataRow, a 1,000,000-row
#      SHOW POOLS, and (beyond the red-team report) the same kinds of flood
#      during start-up: a 500 MB NoticeResponse, notifications instead of
#      ReadyForQuery. Each keeps the worker's anonymous RSS within 64 MB of
#      its baseline, fails the node (or its pgbouncer) with a size error,
#      and s1 stays healthy and polled meanwhile
#   e) an ErrorResponse with invalid UTF-8, control characters and a
#      forged log line: the error shown is valid UTF-8 without control
#      characters, readable under client_encoding LATIN1, and the server
#      log holds no forged line and none of the peer's raw control bytes
use strict;
use warnings;

use Encode ();
use List::Util qw(sum);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use FakePg;
use RRTest qw(wait_until);

# A UTF8 database, so that the server checks what the worker hands it and
# client_encoding conversions mean something (PostgreSQL::Test::Utils
# deletes LC_ALL; initdb takes the encoding from LC_CTYPE).
$ENV{LC_CTYPE} = 'C.UTF-8';
$ENV{LANG} = 'C.UTF-8';
# b) needs a server-side passfile. The servers inherit this process's
# environment (pg_ctl start), so PGPASSFILE names it for every libpq
# connection the primary's worker makes, exactly as ~postgres/.pgpass would
# (same libpq lookup, a file we own). Writing the real ~/.pgpass of the OS
# user would also feed 'server-secret' to any other test run by that user
# at the same time.
my $tmp = PostgreSQL::Test::Utils::tempdir('hostile');
my $passfile = "$tmp/pgpass";
$ENV{PGPASSFILE} = $passfile;
delete $ENV{PGSERVICEFILE};
END { unlink $passfile if defined $passfile; }

my $rr = RRTest->new(standbys => ['s1']);
my $primary = $rr->primary;
is($rr->states, 's1=healthy', 'primary and standby s1 registered, s1 healthy');
is($rr->q('SHOW server_encoding'), 'UTF8', 'the database is UTF8');
my @fakes;    # stopped at the end whatever happens
END { $_->stop for grep { defined } @fakes; }

# Figures for the closing note.
my @figures;

sub lit { my ($s) = @_; $s =~ s/'/''/g; return "'$s'"; }

sub fake
{
	my (%o) = @_;
	my $f = FakePg->start(record => "$tmp/$o{mode}.rec", %o);
	push @fakes, $f;
	return $f;
}


# Removes nodes (as superuser) if they exist.
sub drop_nodes
{
	my (@names) = @_;
	$rr->q('SELECT replica_router.remove_replica(name) FROM replica_router.nodes WHERE name IN ('
		  . join(',', map { lit($_) } @names) . ')');
}

###############################################################################
# The admin: a LOGIN role, member of replica_router_admin, not a superuser
###############################################################################
$rr->q('CREATE ROLE rr_admin LOGIN NOSUPERUSER');
$rr->q('GRANT replica_router_admin TO rr_admin');

# Runs SQL as rr_admin; returns (exit code, stdout, stderr, SQLSTATE or '').
sub as_admin
{
	my ($sql) = @_;
	my ($rc, $out, $err) = $primary->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', 'rr_admin' ]);
	my ($code) = ($err // '') =~ /ERROR:\s+([0-9A-Z]{5}):/;
	return ($rc, $out, $err, $code // '');
}

# as_admin() must fail with one of @codes (any code when none is given).
sub admin_refused
{
	my ($label, $sql, @codes) = @_;
	my ($rc, $out, $err, $code) = as_admin($sql);
	my $ok = $rc != 0 && (!@codes || grep { $_ eq $code } @codes);
	ok($ok, "$label: refused" . (@codes ? ' with ' . join(' or ', @codes) : '') . " (got: $code)")
	  or diag("exit $rc; stdout: $out; stderr: $err");
	return $ok;
}

###############################################################################
# a) conninfo rules for a non-superuser admin
###############################################################################
my $refused = PostgreSQL::Test::Cluster::get_free_port();
my $base = "host=127.0.0.1 port=$refused user=x dbname=postgres";
{
	admin_refused('a) admin, no password',
		"SELECT replica_router.add_replica('evil', " . lit($base) . ')', '2F003');
	drop_nodes('evil');
	# libpq takes an empty password for none, and then reads the passfile.
	admin_refused("a) admin, empty password (password='')",
		"SELECT replica_router.add_replica('evil', " . lit("$base password=''") . ')', '2F003');
	drop_nodes('evil');
	admin_refused('a) admin, a pgbouncer conninfo without a password',
		"SELECT replica_router.add_replica('evil', " . lit("$base password=adminpw")
		  . ', pgbouncer => ' . lit("host=127.0.0.1 port=$refused user=x dbname=pgbouncer") . ')', '2F003');
	drop_nodes('evil');
	admin_refused('a) admin, direct INSERT INTO replica_router.nodes',
		"INSERT INTO replica_router.nodes (name, conninfo) VALUES ('evil', " . lit($base) . ')');
	drop_nodes('evil');

	# What an admin may do: a TCP host and a password.
	my ($rc, $out, $err) = as_admin("SELECT name FROM replica_router.add_replica('adm_ok', "
		  . lit("$base password=adminpw") . ')');
	is($rc, 0, 'a) admin, TCP host with a password: registered') or diag($err);
	admin_refused('a) admin, alter_replica to a conninfo without a password',
		"SELECT replica_router.alter_replica('adm_ok', conninfo => " . lit($base) . ')', '2F003');
	admin_refused('a) admin, alter_replica to a socket-directory pgbouncer',
		"SELECT replica_router.alter_replica('adm_ok', pgbouncer => "
		  . lit('host=/tmp port=6432 user=x dbname=pgbouncer password=adminpw') . ')', '42501');
	($rc, $out, $err) = as_admin("SELECT replica_router.remove_replica('adm_ok')");
	is($rc, 0, 'a) admin may remove its node') or diag($err);
	drop_nodes('adm_ok');

	# Parameters that read the server's files or environment, and hosts
	# that are the server's own sockets (or none: the default socket).
	my @server_side = (
		'passfile=/tmp/rr071_passfile', 'service=rr071_service',
		'sslcert=/etc/ssl/certs/ssl-cert-snakeoil.pem', 'sslkey=/etc/ssl/private/ssl-cert-snakeoil.key',
		'sslrootcert=/etc/ssl/certs/ca-certificates.crt', 'sslcrl=/tmp/rr071.crl',
		'sslcrldir=/tmp', 'sslpassword=x', 'krbsrvname=postgres', 'gsslib=gssapi');
	for my $param (@server_side)
	{
		my $ci = "$base password=adminpw $param";
		# A parameter this libpq does not know is refused by the parser
		# already (22023): gsslib exists only in Windows builds.
		my $known = $rr->q('SELECT replica_router._conninfo_error(' . lit($ci) . ') IS NULL') eq 't';
		note("a) $param: unknown to this libpq, 22023 accepted too") unless $known;
		admin_refused("a) admin, $param",
			"SELECT replica_router.add_replica('evil', " . lit($ci) . ')', '42501', $known ? () : '22023');
		drop_nodes('evil');
	}
	my @hosts = (
		[ 'host=/tmp (socket directory)', 'host=/tmp port=5432 user=x dbname=postgres password=adminpw' ],
		[ 'host=@abstract (abstract socket)', 'host=@rr071 port=5432 user=x dbname=postgres password=adminpw' ],
		[ 'no host (the default socket)', 'port=5432 user=x dbname=postgres password=adminpw' ],
		[ 'a socket directory second in a host list',
			"host=127.0.0.1,/tmp port=$refused,5432 user=x dbname=postgres password=adminpw" ],
		[ 'a URI with passfile', "postgresql://x:adminpw\@127.0.0.1:$refused/postgres?passfile=/tmp/rr071_passfile" ],
	);
	for my $h (@hosts)
	{
		admin_refused("a) admin, $h->[0]", "SELECT replica_router.add_replica('evil', " . lit($h->[1]) . ')', '42501');
		drop_nodes('evil');
	}
	admin_refused('a) admin, a socket-directory pgbouncer',
		"SELECT replica_router.add_replica('evil', " . lit("$base password=adminpw")
		  . ', pgbouncer => ' . lit('host=/tmp port=6432 user=x dbname=pgbouncer password=adminpw') . ')', '42501');
	drop_nodes('evil');

	# A superuser may still register all of that.
	my ($src, $sout, $serr) = $primary->psql('postgres',
		"SELECT replica_router.add_replica('su_nopw', " . lit($base) . ");\n"
		  . "SELECT replica_router.add_replica('su_sock', 'host=/tmp port=$refused user=x dbname=postgres');\n"
		  . "SELECT replica_router.add_replica('su_files', "
		  . lit("$base passfile=/tmp/rr071_passfile sslcert=/etc/ssl/certs/ssl-cert-snakeoil.pem krbsrvname=postgres")
		  . ', pgbouncer => ' . lit('host=/tmp port=6432 user=x dbname=pgbouncer') . ');');
	is($src, 0, 'a) a superuser may register no password, a socket directory, server-side files') or diag($serr);
	drop_nodes(qw(su_nopw su_sock su_files));
}

###############################################################################
# b) password exfiltration through the server's passfile
###############################################################################
{
	open my $fh, '>', $passfile or die "$passfile: $!";
	print $fh "*:*:*:*:server-secret\n";
	close $fh;
	chmod 0600, $passfile;

	my $pw = fake(mode => 'password');
	my $port = $pw->port;
	my $target = "host=127.0.0.1 port=$port user=x dbname=postgres";
	# Registrations an attacker would try; each is refused by (a)'s rules
	# now, and each would make libpq read the passfile if it got through.
	my %tried;
	for my $try (
		[ leak_nopw => "SELECT replica_router.add_replica('leak_nopw', " . lit($target) . ')' ],
		[ leak_empty => "SELECT replica_router.add_replica('leak_empty', " . lit("$target password=''") . ')' ],
		[ leak_pgb => "SELECT replica_router.add_replica('leak_pgb', " . lit("$base password=adminpw")
			  . ', pgbouncer => ' . lit("host=127.0.0.1 port=$port user=x dbname=pgbouncer") . ')' ])
	{
		my ($rc, $out, $err, $code) = as_admin($try->[1]);
		$tried{ $try->[0] } = $rc == 0 ? 'registered' : "refused ($code)";
	}
	note('b) attempts without a usable password: ' . join(', ', map { "$_ $tried{$_}" } sort keys %tried));
	my ($rc, $out, $err) = as_admin("SELECT name FROM replica_router.add_replica('pw_admin', "
		  . lit("$target password=adminpw") . ')');
	is($rc, 0, 'b) admin registers the password-asking server with password=adminpw') or diag($err);

	my $took = wait_until(20, sub { grep { $_ eq 'adminpw' } $pw->passwords }, 0.05);
	ok(defined $took, 'b) the fake server received the registered password (adminpw)');
	# Give every registration above a few dozen polls to leak, unless one did.
	wait_until(3, sub { grep { $_ eq 'server-secret' } $pw->passwords }, 0.1);
	my @got = $pw->passwords;
	my %n;
	$n{$_}++ for @got;
	note('b) passwords received: ' . join(', ', map { "'$_' x$n{$_}" } sort keys %n));
	push @figures, 'b) passwords the fake server received: ' . join(', ', map { "'$_' x$n{$_}" } sort keys %n);
	is(scalar(grep { $_ eq 'server-secret' } @got), 0, "b) the server's passfile password never reached the fake server");
	is(scalar(grep { $_ ne 'adminpw' } @got), 0, 'b) the fake server only ever received adminpw');
	drop_nodes(qw(leak_nopw leak_empty leak_pgb pw_admin));
	$pw->stop;
	unlink $passfile;
}

###############################################################################
# c) a server that does not ask for the registered password
###############################################################################
{
	my $trust = fake(mode => 'trust');
	my ($rc, $out, $err) = as_admin("SELECT name FROM replica_router.add_replica('trusty', "
		  . lit('host=127.0.0.1 port=' . $trust->port . ' user=x dbname=postgres password=adminpw') . ')');
	is($rc, 0, 'c) admin registers the trust server with a password') or diag($err);
	my $connected = wait_until(15, sub { scalar $trust->startups }, 0.05);
	ok(defined $connected, 'c) the worker connected to the trust server');
	my $down = $rr->wait_state('trusty', 'down', 15);
	ok(defined $down, 'c) the node is down');
	my $error = $rr->q("SELECT coalesce(error, '') FROM replica_router.status WHERE node = 'trusty'");
	like($error, qr/password/i, "c) the error is about the password ($error)");
	my @queries = $trust->queries;
	is(scalar(@queries), 0, 'c) no query was sent to the server that did not use the password')
	  or diag('queries received: ' . scalar(@queries) . ', first: ' . substr($queries[0], 0, 80));
	push @figures, sprintf('c) trust server: %d connections, %d queries received; state %s; error: %s',
		scalar($trust->startups), scalar(@queries),
		$rr->q("SELECT state FROM replica_router.status WHERE node = 'trusty'"), $error);
	drop_nodes('trusty');
	$trust->stop;
}

###############################################################################
# d) memory: floods stay bounded, s1 stays healthy and polled
###############################################################################
my $size_error = qr/too large|too many|exceed/i;
my $rss_limit_kb = 64 * 1024;

sub proc_kb
{
	my ($pid, $field) = @_;
	open my $fh, '<', "/proc/$pid/status" or return undef;
	while (<$fh>) { return $1 if /^\Q$field\E:\s+(\d+)\s+kB/; }
	return undef;
}

my $initial_anon;

# A worker whose heap an earlier case bloated (glibc keeps freed memory that
# is not at the top of the heap) would hide the next case's growth: restart
# it (the postmaster starts it again after bgw_restart_time, 1 s).
sub fresh_worker
{
	my $pid = $rr->worker_pid;
	my $anon = proc_kb($pid, 'RssAnon') // 0;
	$initial_anon //= $anon;
	return if $anon <= $initial_anon + 16 * 1024;
	note(sprintf('restarting the worker for a clean baseline: RssAnon %.1f MB (it started the floods at %.1f MB)',
		$anon / 1024, $initial_anon / 1024));
	$rr->q("SELECT pg_terminate_backend($pid)");
	wait_until(20, sub { my $p = $rr->worker_pid; $p ne '' && $p != $pid }, 0.05)
	  or die 'the worker did not come back';
	$rr->wait_state('s1', 'healthy', 20) or die 's1 not healthy after the worker restart';
	return;
}

# One flood. %o: label, mode, fake (extra FakePg options), register (SQL),
# node (name to remove), hostile (SQL giving "state|error"), done (sub on
# (state, error): the expected failure).
sub flood
{
	my (%o) = @_;
	my $label = $o{label};
	fresh_worker();
	my $f = fake(mode => $o{mode}, %{ $o{fake} // {} });
	my $pid = $rr->worker_pid;
	my @base;
	for (1 .. 5)
	{
		push @base, proc_kb($pid, 'RssAnon');
		usleep(100_000);
	}
	@base = sort { $a <=> $b } @base;
	my $baseline = $base[2];
	my $base_rss = proc_kb($pid, 'VmRSS');
	$rr->q($o{register} =~ s/\bPORT\b/$f->port/ger);

	my $sql = "SELECT s.state, extract(epoch FROM s.last_poll), extract(epoch FROM clock_timestamp() - s.last_poll),"
	  . " h.* FROM replica_router.status s LEFT JOIN ($o{hostile}) h ON true WHERE s.node = 's1'";
	my ($peak, $peak_rss, $samples, $max_age, %s1_bad) = ($baseline, $base_rss, 0, 0);
	my ($first_poll, $last_poll, $hit, $last_state, $last_error);
	my $t0 = time;
	while (time - $t0 < 10)
	{
		my $anon = proc_kb($pid, 'RssAnon');
		my $rss = proc_kb($pid, 'VmRSS');
		last unless defined $anon;    # the worker is gone: the pid check below fails
		$peak = $anon if $anon > $peak;
		$peak_rss = $rss if defined $rss && $rss > $peak_rss;
		my ($st, $lp, $age, $hstate, $herror) = split /\|/, $rr->q($sql), 5;
		$samples++;
		$s1_bad{$st}++ if $st ne 'healthy';
		$age = 99 if !defined $age || $age eq '';
		$max_age = $age if $age > $max_age;
		$first_poll //= $lp;
		$last_poll = $lp;
		($last_state, $last_error) = ($hstate // '', $herror // '');
		$hit //= time - $t0 if $o{done}->($last_state, $last_error);
		usleep(100_000);
	}
	# Not seen failing yet: give it a little longer (a loaded machine).
	unless (defined $hit)
	{
		wait_until(10, sub {
			my ($hstate, $herror) = split /\|/, $rr->q("SELECT h.* FROM ($o{hostile}) h"), 2;
			($last_state, $last_error) = ($hstate // '', $herror // '');
			$o{done}->($last_state, $last_error);
		}, 0.1) and $hit = time - $t0;
	}
	my $growth = $peak - $baseline;
	my $s1_bad = sum(0, values %s1_bad);
	my $s1_states = join(', ', map { "$_ x$s1_bad{$_}" } sort keys %s1_bad) || 'none';
	my $fig = sprintf('%s: worker RssAnon baseline %.1f MB, peak %.1f MB, growth %.1f MB (VmRSS %.1f -> peak %.1f MB);'
		  . ' %d samples; %s %s, error: %s; s1 not healthy in %d samples (%s), last_poll max age %.2f s',
		$label, $baseline / 1024, $peak / 1024, $growth / 1024, $base_rss / 1024, $peak_rss / 1024, $samples,
		defined $hit ? sprintf('failed as expected after %.1f s;', $hit) : 'never failed as expected;',
		"last state $last_state", $last_error, $s1_bad, $s1_states, $max_age);
	note($fig);
	push @figures, $fig;
	cmp_ok($growth, '<', $rss_limit_kb,
		sprintf('%s: worker RssAnon growth %.1f MB stays under 64 MB', $label, $growth / 1024));
	ok(defined $hit, "$label: $o{expect} ($last_state: $last_error)");
	is($s1_bad, 0, "$label: s1 stays healthy in every sample (other states: $s1_states)");
	cmp_ok($max_age, '<', 2, "$label: s1 keeps being polled (last_poll never older than 2 s)");
	cmp_ok($last_poll // 0, '>', $first_poll // 0, "$label: s1's last_poll advanced");
	is($rr->worker_pid, $pid, "$label: the same worker runs (no crash, no restart)");
	$rr->q("SELECT replica_router.remove_replica('$o{node}')");
	$f->stop;
	return;
}

my $down_with_size = sub { $_[0] eq 'down' && $_[1] =~ $size_error };
my $state_error = sub {
	my ($node) = @_;
	return "SELECT state, coalesce(error, '') FROM replica_router.status WHERE node = '$node'";
};

flood(
	label => 'd) notification flood',
	mode => 'notify_flood',
	fake => { duration => 60, max_bytes => 2 * 1024**3 },
	register => "SELECT replica_router.add_replica('flood', 'host=127.0.0.1 port=PORT user=x dbname=postgres')",
	node => 'flood',
	hostile => $state_error->('flood'),
	done => $down_with_size,
	expect => 'the node is down with a size-limit error');

flood(
	label => 'd) notification flood on an idle connection',
	mode => 'notify_flood',
	fake => { duration => 60, max_bytes => 2 * 1024**3, answer_first => 1 },
	register => "SELECT replica_router.add_replica('idleflood', 'host=127.0.0.1 port=PORT user=x dbname=postgres')",
	node => 'idleflood',
	hostile => $state_error->('idleflood'),
	done => $down_with_size,
	expect => 'the node is down with a size-limit error');

flood(
	label => 'd) 500 MB DataRow',
	mode => 'big_row',
	fake => { duration => 60, big_bytes => 500 * 1024**2 },
	register => "SELECT replica_router.add_replica('bigrow', 'host=127.0.0.1 port=PORT user=x dbname=postgres')",
	node => 'bigrow',
	hostile => $state_error->('bigrow'),
	done => $down_with_size,
	expect => 'the node is down with a size-limit error');

# Beyond the report: the same two attacks before the connection is ready
# (libpq accepts long NoticeResponse and NotificationResponse messages
# between AuthenticationOk and ReadyForQuery).
flood(
	label => 'd) 500 MB NoticeResponse during start-up',
	mode => 'startup_notice',
	fake => { duration => 60, big_bytes => 500 * 1024**2 },
	register => "SELECT replica_router.add_replica('bignotice', 'host=127.0.0.1 port=PORT user=x dbname=postgres')",
	node => 'bignotice',
	hostile => $state_error->('bignotice'),
	done => $down_with_size,
	expect => 'the node is down with a size-limit error');

flood(
	label => 'd) notification flood during start-up',
	mode => 'startup_notify',
	fake => { duration => 60, max_bytes => 2 * 1024**3 },
	register => "SELECT replica_router.add_replica('startflood', 'host=127.0.0.1 port=PORT user=x dbname=postgres')",
	node => 'startflood',
	hostile => $state_error->('startflood'),
	done => $down_with_size,
	expect => 'the node is down with a size-limit error');

flood(
	label => 'd) SHOW POOLS with 1,000,000 rows',
	mode => 'many_rows',
	fake => { duration => 60, rows => 1_000_000 },
	register => "SELECT replica_router.add_replica('pools', " . lit($rr->conninfo($rr->standby('s1')))
	  . ", pgbouncer => 'host=127.0.0.1 port=PORT user=x dbname=pgbouncer')",
	node => 'pools',
	hostile => "SELECT coalesce(state, ''), coalesce(pgbouncer_error, '') FROM replica_router.pool_state"
	  . " WHERE node = 'pools'",
	done => sub { $_[1] =~ $size_error },
	expect => "the node's pgbouncer_error is a size-limit error");

###############################################################################
# e) an error message with invalid UTF-8, control characters, a forged line
###############################################################################
{
	my $bad = fake(mode => 'bad_utf8');
	my $offset = -s $primary->logfile;
	$rr->q("SELECT replica_router.add_replica('bad_utf8', 'host=127.0.0.1 port=" . $bad->port
		  . " user=x dbname=postgres')");
	ok(defined $rr->wait_state('bad_utf8', 'down', 15), 'e) the node is down');
	ok(defined wait_until(10, sub { scalar $bad->startups }, 0.05), 'e) the worker reached the fake server');
	my $hint_down = $rr->wait_for(10, "SELECT state FROM replica_router.routing_hints WHERE node = 'bad_utf8'",
		'down');
	ok(defined $hint_down, 'e) routing_hints says down (the hint was written)');

	for my $src ([ status => 'replica_router.status' ], [ routing_hints => 'replica_router.routing_hints' ])
	{
		# The raw bytes (textsend: no conversion between UTF8 and UTF8), not
		# psql's output: psql drops invalid multibyte sequences when it prints.
		my ($hex, $err) = $rr->{session}->run(
			"SELECT encode(textsend(coalesce(error, '')), 'hex') FROM $src->[1] WHERE node = 'bad_utf8'");
		my $raw = pack('H*', $hex);
		(my $shown = $raw) =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
		note("e) $src->[0].error: $shown");
		is($err, '', "e) reading $src->[0].error raises no error") or diag($err);
		isnt($raw, '', "e) $src->[0].error is not empty");
		ok(eval { Encode::decode('UTF-8', my $copy = $raw, Encode::FB_CROAK); 1 },
			"e) $src->[0].error is valid UTF-8 ($shown)");
		unlike($raw, qr/[\x00-\x1f\x7f]/, "e) $src->[0].error has no control characters");
		push @figures, "e) $src->[0].error: $shown" if $src->[0] eq 'status';
	}
	my ($out, $err) = $rr->{session}->run("SET client_encoding = 'LATIN1';\n"
		  . "SELECT coalesce(error, '') FROM replica_router.status WHERE node = 'bad_utf8';\n"
		  . "SELECT coalesce(error, '') FROM replica_router.routing_hints WHERE node = 'bad_utf8';\n"
		  . "SELECT string_agg(coalesce(error, ''), ',') FROM replica_router.lag;\n"
		  . 'RESET client_encoding;');
	is($err, '', 'e) under client_encoding LATIN1, status, routing_hints and lag read without an encoding error')
	  or diag($err);
	is($rr->q('SHOW client_encoding'), 'UTF8', 'e) client_encoding back to UTF8');

	my $log = slurp_file($primary->logfile, $offset);
	my @forged = grep { /^LOG:  forged/ } split /\n/, $log;
	is(scalar(@forged), 0, 'e) the server log has no forged line') or diag(join "\n", @forged);
	my @raw = grep { /[\x01\x1b]/ } split /\n/, $log;
	is(scalar(@raw), 0, "e) the server log has no raw escape or \\x01 from the peer's message")
	  or diag(join "\n", map { s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ger } @raw);
	drop_nodes('bad_utf8');
	$bad->stop;
}

###############################################################################
# The end: s1 still healthy, no crash, the same worker
###############################################################################
is($rr->state('s1'), 'healthy', 's1 is healthy at the end');
$rr->check_log;
$rr->finish;
note("figures:\n  " . join("\n  ", @figures));
done_testing();
