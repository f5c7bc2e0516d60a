# Shared set-up and helpers for the replica_router multi-node TAP tests.
#
# RRTest->new builds a primary with the extension preloaded (fast poll
# settings) and streaming standbys registered as replicas, and keeps one
# psql session open on the primary for the many small queries the tests make
# (no psql start-up per check, so waits can poll every few milliseconds).
# Waits are deadline-bounded polls; nothing here sleeps to synchronise.
package RRTest;

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT_OK = qw(wait_until);
use Exporter 'import';

# Processes stopped with SIGSTOP by a test: continued at exit whatever
# happens, so the clusters can be torn down.
my %stopped;

END
{
	kill 'CONT', keys %stopped if %stopped;
}

# Calls $check until it returns true, at most $seconds. Returns the time it
# took, or undef on timeout. Polls every $step seconds (default 10 ms).
sub wait_until
{
	my ($seconds, $check, $step) = @_;
	$step //= 0.01;
	my $start = time;
	for (;;)
	{
		return time - $start if $check->();
		return undef if time - $start >= $seconds;
		usleep(int($step * 1e6));
	}
}

my $default_conf = q{
shared_preload_libraries = 'replica_router'
replica_router.poll_interval = '100ms'
replica_router.connect_timeout = '500ms'
replica_router.query_timeout = '500ms'
replica_router.stale_after = '2s'
replica_router.max_lag = '30s'
replica_router.heartbeat = '3600s'
max_wal_senders = 10
wal_keep_size = '64MB'
};

# new(standbys => [names], conf => extra postgresql.conf lines, register => 1)
sub new
{
	my ($class, %args) = @_;
	my $self = bless {
		standbys => {},
		order => [],
		user => scalar getpwuid($<),
	}, $class;

	my $primary = PostgreSQL::Test::Cluster->new('primary');
	$primary->init(allows_streaming => 1);
	$primary->append_conf('postgresql.conf', $default_conf . ($args{conf} // ''));
	$primary->start;
	$primary->safe_psql('postgres', 'CREATE EXTENSION replica_router');
	$primary->backup('base');
	$self->{primary} = $primary;

	for my $name (@{ $args{standbys} // [] })
	{
		$self->add_standby($name);
	}
	$self->{session} = RRTest::Session->new($primary);

	if ($args{register} // 1)
	{
		$self->register($_) for @{ $self->{order} };
		my $n = scalar @{ $self->{order} };
		$self->wait_for(15, "SELECT count(*) FILTER (WHERE state = 'healthy') = $n"
			  . " FROM replica_router.status WHERE role = 'replica'")
		  or die "the $n replicas did not become healthy: " . $self->q(
			"SELECT string_agg(node || ' ' || state || coalesce(' ' || error, ''), '; ')"
			  . " FROM replica_router.status WHERE role = 'replica'");
	}
	return $self;
}

sub primary { return $_[0]->{primary}; }
sub standby { return $_[0]->{standbys}{ $_[1] }; }

# A new streaming standby of the primary, from the base backup; started, not registered.
sub add_standby
{
	my ($self, $name) = @_;
	my $s = PostgreSQL::Test::Cluster->new($name);
	$s->init_from_backup($self->{primary}, 'base', has_streaming => 1);
	$s->start;
	$self->{standbys}{$name} = $s;
	push @{ $self->{order} }, $name;
	return $s;
}

# The libpq connection string the worker uses for a node.
sub conninfo
{
	my ($self, $node) = @_;
	return sprintf('host=%s port=%d dbname=postgres user=%s', $node->host, $node->port, $self->{user});
}

# Registers standby $name (or any node given as $node) under $name.
sub register
{
	my ($self, $name, $node) = @_;
	$node //= $self->{standbys}{$name};
	my $ci = $self->conninfo($node);
	$self->q("SELECT replica_router.add_replica('$name', '$ci')");
}

# Runs SQL in the primary session; dies on error. Returns psql's -At output.
sub q
{
	my ($self, $sql) = @_;
	my ($out, $err) = $self->{session}->run($sql);
	die "query failed: $err\nquery: $sql" if $err ne '';
	return $out;
}

# Waits (at most $seconds) until $sql returns $expected ('t' by default).
# Returns the time it took, or undef on timeout (after a diag of the last answer).
sub wait_for
{
	my ($self, $seconds, $sql, $expected) = @_;
	$expected //= 't';
	my $last = '';
	my $took = wait_until($seconds, sub { ($last = $self->q($sql)) eq $expected });
	diag("timed out after ${seconds}s waiting for [$sql] to return [$expected]; last: [$last]")
	  unless defined $took;
	return $took;
}

sub state
{
	my ($self, $node) = @_;
	return $self->q("SELECT state FROM replica_router.status WHERE node = '$node'");
}

sub wait_state
{
	my ($self, $node, $state, $seconds) = @_;
	return $self->wait_for($seconds // 10,
		"SELECT state FROM replica_router.status WHERE node = '$node'", $state);
}

# $n calls of recommend($op) in one round trip; returns the list of "node|role|reason".
sub recommend_many
{
	my ($self, $n, $op) = @_;
	$op //= 'read';
	my $sql = join "\n",
	  ("SELECT node || '|' || role || '|' || reason FROM replica_router.recommend('$op');") x $n;
	return split /\n/, $self->q($sql);
}

# Changes settings with ALTER SYSTEM and reloads; waits until this session
# sees them (the worker reloads on the same SIGHUP, at its next loop; new
# sessions read the new file).
sub set_conf
{
	my ($self, %gucs) = @_;
	for my $k (sort keys %gucs)
	{
		$self->q("ALTER SYSTEM SET $k = '$gucs{$k}'");
	}
	$self->q('SELECT pg_reload_conf()');
	for my $k (sort keys %gucs)
	{
		# Values are given as SHOW prints them ('1s', 'off').
		$self->wait_for(10, "SHOW $k", $gucs{$k}) or die "setting $k = $gucs{$k} was not applied";
	}
}

# The pids of a running node: postmaster and all its children.
sub node_pids
{
	my ($self, $node) = @_;
	my $pm = $node->{_pid} or die 'node ' . $node->name . ' is not running';
	my @kids = split /\s+/, `pgrep -P $pm`;
	return ($pm, grep { /^\d+$/ } @kids);
}

# SIGSTOPs a whole node (postmaster first, so it forks nothing new).
sub freeze
{
	my ($self, $node) = @_;
	my @pids = $self->node_pids($node);
	$stopped{$_} = 1 for @pids;
	kill 'STOP', @pids;
	return @pids;
}

sub thaw
{
	my ($self, @pids) = @_;
	kill 'CONT', reverse @pids;
	delete $stopped{$_} for @pids;
}

# SIGSTOPs single processes (e.g. the worker); thaw() continues them.
sub stop_process
{
	my ($self, @pids) = @_;
	$stopped{$_} = 1 for @pids;
	kill 'STOP', @pids;
}

# Asserts the primary's log shows no crashed or killed server process.
sub check_log
{
	my ($self) = @_;
	my $log = slurp_file($self->{primary}->logfile);
	my @bad = grep { /terminated by signal|server process .* was terminated|PANIC:|TRAP:/ }
	  split /\n/, $log;
	is(scalar(@bad), 0, 'primary log: no server process terminated by a signal')
	  or diag(join "\n", @bad);
}

sub finish
{
	my ($self) = @_;
	$self->{session}->close if $self->{session};
	delete $self->{session};
}

# A psql process kept open on a node, fed one query at a time. Unlike
# BackgroundPsql it logs nothing per query (the tests poll a lot) and applies
# its timeout per query.
package RRTest::Session;

use strict;
use warnings;
use IPC::Run;

sub new
{
	my ($class, $node) = @_;
	my $self = bless { in => '', out => '', err => '', n => 0 }, $class;
	$self->{timer} = IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default);
	$self->{run} = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=0', '-d', $node->connstr('postgres'), '-f', '-' ],
		'<', \$self->{in}, '>', \$self->{out}, '2>', \$self->{err}, $self->{timer});
	$self->run('SELECT 1');
	return $self;
}

# Returns (stdout without the trailing newline, stderr).
sub run
{
	my ($self, $sql) = @_;
	my $banner = 'rr-session-done-' . ++$self->{n};
	$self->{timer}->start($PostgreSQL::Test::Utils::timeout_default);
	$self->{in} .= "$sql\n;\n\\echo $banner\n\\warn $banner\n";
	$self->{run}->pump
	  until ($self->{out} =~ /^$banner\n/m && $self->{err} =~ /^$banner\n/m);
	my ($out, $err) = ($self->{out}, $self->{err});
	$self->{out} = $self->{err} = '';
	$out =~ s/\n?^$banner\n//m;
	$err =~ s/\n?^$banner\n//m;
	return ($out, $err);
}

sub close
{
	my ($self) = @_;
	$self->{in} .= "\\q\n";
	$self->{run}->finish;
}

1;
