# Shared set-up and helpers for the replica_router multi-node TAP tests
# (every test/tap/*.pl uses it).
#
# RRTest->new builds a primary with the extension preloaded (fast poll
# settings) and streaming standbys registered as replicas, and keeps one
# psql session open on the primary for the many small queries the tests make
# (no psql start-up per check, so waits can poll every few milliseconds).
# Waits are deadline-bounded polls; nothing here sleeps to synchronise.
#
# Also here: RRTest::Session (a psql kept open on a node or any connection
# string), RRTest::PgBouncer (a pgbouncer on 127.0.0.1 for a test), tool()
# and run_tool() for the client programs, and track() for processes a test
# starts, which are stopped at exit whatever happens.
package RRTest;

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Spec;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT_OK = qw(wait_until tool run_tool track);
use Exporter 'import';

# The source tree (test/tap/../..), for the client programs built in it.
my $root = File::Spec->rel2abs(dirname(__FILE__) . '/../..');

# Processes stopped with SIGSTOP by a test: continued at exit whatever
# happens, so the clusters can be torn down. Processes started by a test
# (track()) are killed at exit. This END block runs before the one of
# PostgreSQL::Test::Cluster (loaded first), which stops the clusters.
my %stopped;
my @tracked;

END
{
	local $?;    # keep the test's exit status
	kill 'CONT', keys %stopped if %stopped;
	for my $h (@tracked)
	{
		eval { $h->kill_kill if $h->pumpable; };
	}
}

# Registers an IPC::Run harness to be killed at exit if it still runs;
# returns it.
sub track
{
	my ($h) = @_;
	push @tracked, $h;
	return $h;
}

# A client program (replica_router_check, replica_router_follower): the one
# built in this tree (make), else the installed one (PATH).
sub tool
{
	my ($name) = @_;
	my $built = "$root/tools/$name";
	return -x $built ? $built : $name;
}

# Runs a command (120 s at most); returns (exit code, stdout, stderr). A
# command that overruns is killed and returns 124, as timeout(1) does (one failed check, not a
# test file that dies).
sub run_tool
{
	my (@cmd) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(\@cmd, '<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(120));
	if (!eval { $h->finish; 1 })
	{
		$h->kill_kill;
		return (124, $out, $err . "\n(killed: $@)");
	}
	return ($h->result(0), $out, $err);
}

# Runs replica_router_check with @args; returns (exit code, its status line
# without the newline, stderr).
sub check_command
{
	my (@args) = @_;
	my ($rc, $out, $err) = run_tool(tool('replica_router_check'), @args);
	chomp $out;
	return ($rc, $out, $err);
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
# A live replica's poll delayed past 100 ms on a loaded test machine would
# make it slow for a moment and flake tests about other things; 055_slow.pl
# tests slow replicas at the default floor.
replica_router.slow_poll_floor = '300ms'
replica_router.stale_after = '2s'
replica_router.max_lag = '30s'
replica_router.heartbeat = '3600s'
max_wal_senders = 10
wal_keep_size = '64MB'
};

# new(standbys => [names], conf => extra postgresql.conf lines (after the
# defaults above, so they may override them), register => 1 (add_replica and
# wait until healthy), slots => 0 (1: each standby streams from a physical
# replication slot named after it), extension => 1 (0: no CREATE EXTENSION,
# for a test that runs it itself; then register must be 0))
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
	$primary->safe_psql('postgres', 'CREATE EXTENSION replica_router') if $args{extension} // 1;
	$primary->backup('base');
	$self->{primary} = $primary;

	for my $name (@{ $args{standbys} // [] })
	{
		$self->add_standby($name, slot => $args{slots});
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

# A new streaming standby of the primary, from the base backup; started, not
# registered. slot => 1: on a physical replication slot named after it.
sub add_standby
{
	my ($self, $name, %opt) = @_;
	my $s = PostgreSQL::Test::Cluster->new($name);
	$s->init_from_backup($self->{primary}, 'base', has_streaming => 1);
	if ($opt{slot})
	{
		$self->{primary}->safe_psql('postgres', "SELECT pg_create_physical_replication_slot('$name')");
		$s->append_conf('postgresql.conf', "primary_slot_name = '$name'\n");
	}
	$s->start;
	$self->{standbys}{$name} = $s;
	push @{ $self->{order} }, $name;
	return $s;
}

# The libpq connection string the worker uses for a node: over its socket
# directory, or over TCP to $host (e.g. 127.0.0.1) when given.
sub conninfo
{
	my ($self, $node, $host) = @_;
	return sprintf('host=%s port=%d dbname=postgres user=%s', $host // $node->host, $node->port, $self->{user});
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

# The registered replicas and their states: "s1=healthy,s2=down" (by name).
sub states
{
	my ($self) = @_;
	return $self->q("SELECT coalesce(string_agg(node || '=' || state, ',' ORDER BY node), '')"
		  . " FROM replica_router.status WHERE role = 'replica'");
}

# The worker's pid ('' when none runs).
sub worker_pid
{
	my ($self) = @_;
	return $self->q('SELECT pid FROM replica_router.worker_status()');
}

# Waits (at most $seconds, default 10) until the worker has started $n more
# rounds than now; returns the time it took, or undef.
sub wait_rounds
{
	my ($self, $n, $seconds) = @_;
	my $rounds = $self->q('SELECT rounds FROM replica_router.worker_status()');
	return $self->wait_for($seconds // 10,
		'SELECT rounds >= ' . ($rounds + $n) . ' FROM replica_router.worker_status()');
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

# $n calls of recommend($op): how many named each node, { node => count }.
sub read_counts
{
	my ($self, $n, $op) = @_;
	my %count;
	$count{ (split /\|/)[0] }++ for $self->recommend_many($n, $op);
	return \%count;
}

# "a=N,b=M" for the nodes named, from read_counts() (0 for a node not named).
sub split_of
{
	my ($count, @nodes) = @_;
	return join(',', map { "$_=" . ($count->{$_} // 0) } @nodes);
}

# Runs replica_router_check against the primary's database 'postgres':
# returns (exit code, status line, stderr).
sub check
{
	my ($self, @args) = @_;
	return check_command('-d', $self->{primary}->connstr('postgres'), @args);
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

# A new session on the primary (after finish(), e.g. across a restart).
sub reopen
{
	my ($self) = @_;
	$self->finish;
	$self->{session} = RRTest::Session->new($self->{primary});
	return $self;
}

# A psql process kept open on a node (database postgres) or on any
# connection string (e.g. through a pgbouncer), fed one query at a time.
# Unlike BackgroundPsql it logs nothing per query (the tests poll a lot) and
# applies its timeout per query. Killed at exit if still open.
package RRTest::Session;

use strict;
use warnings;
use IPC::Run;

sub new
{
	my ($class, $node) = @_;
	my $connstr = ref $node ? $node->connstr('postgres') : $node;
	my $self = bless { in => '', out => '', err => '', n => 0 }, $class;
	$self->{timer} = IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default);
	$self->{run} = RRTest::track(IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=0', '-d', $connstr, '-f', '-' ],
		'<', \$self->{in}, '>', \$self->{out}, '2>', \$self->{err}, $self->{timer}));
	my ($out, $err) = $self->run('SELECT 1');
	die "psql session on [$connstr] failed: $err" if $out ne '1';
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

# Like RRTest::q: dies on an error, returns stdout.
sub q
{
	my ($self, $sql) = @_;
	my ($out, $err) = $self->run($sql);
	die "query failed: $err\nquery: $sql" if $err ne '';
	return $out;
}

sub close
{
	my ($self) = @_;
	$self->{in} .= "\\q\n";
	$self->{run}->finish;
}

# A pgbouncer on 127.0.0.1 (a free port, no Unix socket, trust, the OS user
# as admin), its files in a temporary directory; started at once, killed at
# exit if still running.
#
#   RRTest::PgBouncer->new(
#       databases => [ alias => 'host=... port=... dbname=...', ... ],
#       settings  => { pool_mode => 'transaction', ... },   # [pgbouncer] lines
#       include   => $file,                                 # %include last
#       users     => [ 'pgbouncer', ... ],                  # more auth_file users
#       port      => $port)                                 # default: a free one
#
# $b->port, ->admin (its console), ->connstr($alias), ->dir, ->ini, ->logfile;
# ->wait_up($seconds) (the console answers SHOW VERSION: the time it took, or
# undef); ->write_ini(settings => {...}) rewrites its file (e.g. before a
# RELOAD); ->stop (SIGINT, waits for the exit).
package RRTest::PgBouncer;

use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

our $binary = '/usr/sbin/pgbouncer';

sub available { return -x $binary; }

sub new
{
	my ($class, %o) = @_;
	my $self = bless {
		dir => PostgreSQL::Test::Utils::tempdir('pgbouncer'),
		port => $o{port} // PostgreSQL::Test::Cluster::get_free_port(),
		user => scalar getpwuid($<),
		databases => $o{databases} // [],
		settings => $o{settings} // {},
		include => $o{include},
		users => $o{users} // [],
		out => '',
		err => '',
	}, $class;
	open my $fh, '>', "$self->{dir}/userlist.txt" or die $!;
	print $fh qq{"$_" ""\n} for ($self->{user}, @{ $self->{users} });
	close $fh;
	$self->write_ini;
	$self->{run} = RRTest::track(IPC::Run::start([ $binary, $self->ini ],
		'<', \undef, '>', \$self->{out}, '2>', \$self->{err}));
	return $self;
}

sub port { return $_[0]->{port}; }
sub dir { return $_[0]->{dir}; }
sub ini { return "$_[0]->{dir}/pgbouncer.ini"; }
sub logfile { return "$_[0]->{dir}/pgbouncer.log"; }
sub connstr { return "host=127.0.0.1 port=$_[0]->{port} dbname=$_[1] user=$_[0]->{user}"; }
sub admin { return $_[0]->connstr('pgbouncer'); }

# Writes the configuration file: the settings given to new(), or these.
sub write_ini
{
	my ($self, %o) = @_;
	my %set = (
		listen_addr => '127.0.0.1',
		listen_port => $self->{port},
		unix_socket_dir => '',
		auth_type => 'trust',
		auth_file => "$self->{dir}/userlist.txt",
		admin_users => $self->{user},
		logfile => $self->logfile,
		pidfile => "$self->{dir}/pgbouncer.pid");
	my @keys = qw(listen_addr listen_port unix_socket_dir auth_type auth_file admin_users logfile pidfile);
	my $settings = $o{settings} // $self->{settings};
	for my $k (sort keys %$settings)
	{
		push @keys, $k unless exists $set{$k};
		$set{$k} = $settings->{$k};
	}
	my $text = '';
	my @db = @{ $self->{databases} };
	if (@db)
	{
		$text .= "[databases]\n";
		while (my ($alias, $conninfo) = splice(@db, 0, 2))
		{
			$text .= "$alias = $conninfo\n";
		}
		$text .= "\n";
	}
	$text .= "[pgbouncer]\n" . join('', map { "$_ = $set{$_}\n" } @keys);
	$text .= "%include $self->{include}\n" if defined $self->{include};
	open my $fh, '>', $self->ini or die $!;
	print $fh $text;
	close $fh;
}

sub wait_up
{
	my ($self, $seconds) = @_;
	my $admin = $self->admin . ' connect_timeout=2';
	return RRTest::wait_until(
		$seconds,
		sub {
			my ($rc, $out) = RRTest::run_tool('psql', '-XAtq', '-d', $admin, '-c', 'SHOW VERSION');
			return $out =~ /PgBouncer/;
		},
		0.05);
}

sub stop
{
	my ($self) = @_;
	return unless $self->{run} && $self->{run}->pumpable;
	$self->{run}->signal('INT');
	$self->{run}->finish;
}

# "replica_router serve" for a test: on 127.0.0.1 and a free port, reading
# the views through $conninfo; started at once, killed at exit.
#
#   my $serve = RRTest::Serve->new($conninfo, '--interval', '200ms');
#   $serve->wait_up(10);                     # /health answers 200 (time taken or undef)
#   my ($status, $body, $headers) = $serve->get('/health');   # also ->request('HEAD', ...)
#   $serve->json('/stats')                   # the decoded body (dies unless JSON)
package RRTest::Serve;

use strict;
use warnings;
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

sub new
{
	my ($class, $conninfo, @args) = @_;
	my $self = bless {
		port => PostgreSQL::Test::Cluster::get_free_port(),
		log => PostgreSQL::Test::Utils::tempdir('serve') . '/serve.log',
		http => HTTP::Tiny->new(keep_alive => 1, timeout => 10),
	}, $class;
	open my $fh, '>', $self->{log} or die $!;
	$self->{run} = RRTest::track(IPC::Run::start(
		[ RRTest::tool('replica_router'), 'serve', '--source', $conninfo, '--port', $self->{port}, @args ],
		'<', \undef, '>', $fh, '2>', $fh));
	close $fh;
	return $self;
}

sub port { return $_[0]->{port}; }
sub url { return "http://127.0.0.1:$_[0]->{port}$_[1]"; }
sub log { return PostgreSQL::Test::Utils::slurp_file($_[0]->{log}); }

# Returns (status, body, headers).
sub request
{
	my ($self, $method, $path) = @_;
	my $r = $self->{http}->request($method, $self->url($path));
	my $body = $r->{content} // '';
	chomp $body;
	return ($r->{status}, $body, $r->{headers} // {});
}

sub get { my ($self, $path) = @_; return $self->request('GET', $path); }

# Drops the kept-alive connection (serve gives each connection a thread while it lives).
sub close_http { $_[0]->{http} = HTTP::Tiny->new(keep_alive => 1, timeout => 10); }

sub json
{
	my ($self, $path) = @_;
	my ($status, $body) = $self->get($path);
	my $j = eval { JSON::PP->new->decode($body) };
	die "GET $path: $status, not JSON: $body" unless $j;
	return wantarray ? ($status, $j) : $j;
}

sub wait_up
{
	my ($self, $seconds) = @_;
	return RRTest::wait_until($seconds, sub { ($self->get('/health'))[0] == 200 }, 0.05);
}

sub stop
{
	my ($self) = @_;
	return unless $self->{run} && $self->{run}->pumpable;
	$self->{run}->signal('TERM');
	$self->{run}->finish;
}

1;

