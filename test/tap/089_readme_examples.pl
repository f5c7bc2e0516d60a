# Every example in README.md, taken out of the README as printed and run (or,
# for configuration files, checked by the real tool), so that the README
# cannot drift from the product.
#
#   (a) coverage: every fenced block of README.md is named below, with what
#       the test does with it (run, validate) or why it does not; a block that
#       is not named fails the test, and so does a name whose block is gone;
#   (b) the cluster of the README: "Installing" as printed -- its settings
#       block in postgresql.conf, its pg_hba.conf line, its passfile line,
#       its SQL (the polling login, CREATE EXTENSION, add_node of three
#       members) -- and then every SQL block, the client program's help, the
#       check command, its cron line and Nagios command, the follower (once,
#       and as a service in front of a real pgbouncer), serve, the Prometheus
#       configuration and textfile cron line, the HAProxy block, the Python
#       application and its SQLAlchemy and Django snippets, and the NOTIFY
#       payload's shape.
#
# The README's world, and how it is laid on this machine. The README's hosts
# are separate machines on port 5432; here they are loopback addresses, all
# on one port P (the primary's; the standbys have their own socket
# directories, as in 087):
#
#   README                                         here
#   10.0.0.1, pg1, pg1.example, primary,           127.0.0.1:P   the primary, member db1
#     primary.example, db.example.com
#   10.0.0.2, pg2                                  127.0.0.2:P   standby db2 (also registered as r1)
#   10.0.0.3, pg3                                  127.0.0.3:P   standby db3 (also registered as r2)
#   port 5432 / 6432 / 9188 / *:5001               P / the test's pgbouncer / serve / HAProxy on 127.0.0.1, free ports
#   listen_addresses = '*'                         '127.0.0.1' (no server of a test listens beyond loopback)
#   /etc/pgbouncer/replica_router,                 directories of this test
#     /var/lib/prometheus/node-exporter
#   /etc/prometheus/replica_router.rules.yml       contrib/prometheus/replica_router.rules.yml (as its comment says)
#   /usr/lib/postgresql/15/bin/replica_router      the program built in this tree (also first in PATH)
#   the server's ~/.pgpass                         PGPASSFILE in the servers' environment
#   runuser -u postgres --, install -o postgres    dropped / the OS user (the test already runs as the server's user)
#   replica_router serve (binds 9188)              the same, with --port S (concurrent runs must not share a port)
#
# That is all localize() changes. A command without a host or port (the
# check examples, cron lines) reaches the primary as on the README's
# monitoring host: by libpq's environment (PGHOST=127.0.0.1, PGPORT=P). The
# check and HAProxy examples name the replicas r1 and r2 (10.0.0.2 and
# 10.0.0.3), the Installing section db2 and db3: both names are registered.
# The examples assume a monitoring login "monitor" (README: GRANT pg_monitor
# TO monitor) and the application's database "app": made here.
#
# Every tool it runs (pgbouncer, promtool, haproxy, python3 with psycopg,
# SQLAlchemy, Django and psycopg2) is installed by scripts/deps.sh: a missing
# one fails the test rather than skipping a block.
#
# Host names are replaced rather than resolved: the TAP tests run as an
# unprivileged user (no network namespace, no /etc/hosts of its own), and the
# 10.0.0.x addresses must never be a connection's target.
use strict;
use warnings;

use Cwd qw(getcwd);
use File::Basename qw(dirname);
use File::Spec;
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use RRTest qw(wait_until run_tool track);

my $root = File::Spec->rel2abs(dirname(__FILE__) . '/../..');
my $readme_file = "$root/README.md";
my $tool = File::Spec->rel2abs(RRTest::tool('replica_router'));
my $user = scalar getpwuid($<);
my $group = scalar getgrgid($();
my $tmp = PostgreSQL::Test::Utils::tempdir('readme');

###############################################################################
# (a) The README's blocks, and what this test does with each
###############################################################################

# Every fenced block: { lang, text, line (of the opening fence), first (its
# first non-empty line) }.
sub readme_blocks
{
	my @lines = split /\n/, slurp_file($readme_file);
	my (@blocks, $cur);
	for my $i (0 .. $#lines)
	{
		if (!$cur && $lines[$i] =~ /^```(\w*)\s*$/)
		{
			$cur = { lang => $1, line => $i + 1, text => '' };
		}
		elsif ($cur && $lines[$i] =~ /^```\s*$/)
		{
			($cur->{first}) = grep { /\S/ } split /\n/, $cur->{text};
			$cur->{first} //= '';
			push @blocks, $cur;
			undef $cur;
		}
		elsif ($cur)
		{
			$cur->{text} .= "$lines[$i]\n";
		}
	}
	BAIL_OUT("README.md: unterminated block at line $cur->{line}") if $cur;
	return @blocks;
}

# name => [ language, pattern of the block's first line, what is done with
# it: 'run' (executed as printed, after localize()), 'validate' (checked by
# the tool that reads it), or the reason it is not run ].
my @COVERAGE = (
	[ intro_recommend => 'sql', qr/^SELECT \* FROM replica_router\.recommend\('read'\);$/, 'run' ],
	[ demo => 'sh', qr{^\./scripts/demo\.sh +# builds}, 'not run: the demo and the whole suite; scripts/test.sh runs the demo (--headless) in its demo stage' ],
	[ demo_options => 'sh', qr{^\./scripts/demo\.sh --stop}, 'not run: the demo\'s own options; --headless is the suite\'s demo stage, --stop/--teardown need the demo running as root' ],
	[ package => 'sh', qr{^\./scripts/build-deb\.sh}, 'not run: builds and installs the Debian packages as root; that is the suite\'s package stage (scripts/run-package.sh)' ],
	[ from_source => 'sh', qr/^apt-get install g\+\+/, 'validate' ],
	[ settings => '', qr/^shared_preload_libraries = 'replica_router'/, 'run' ],
	[ polling_login => 'sql', qr/^CREATE ROLE replica_router LOGIN/, 'run' ],
	[ pg_hba => '', qr/^host +postgres +replica_router /, 'run' ],
	[ passfile => '', qr/^\*:5432:postgres:replica_router:/, 'run' ],
	[ register => 'sql', qr/^CREATE EXTENSION replica_router;$/, 'run' ],
	[ notify_payload => '', qr/^\{"node" : /, 'validate' ],
	[ routes => 'sql', qr/^SELECT replica_router\.set_route\(op, 'primary'\)$/, 'run' ],
	[ read_your_writes => 'sql', qr/^INSERT INTO orders \.\.\.;$/, 'run' ],
	[ alerting => 'sql', qr/^SELECT severity, healthy_replicas/, 'run' ],
	[ program_help => 'sh', qr/^replica_router --version/, 'run' ],
	[ check => 'sh', qr/^replica_router check -h primary\.example/, 'run' ],
	[ check_cron => '', qr{^# /etc/cron\.d/replica_router$}, 'run' ],
	[ nagios => '', qr/^define command \{$/, 'run' ],
	[ follow => 'sh', qr/^replica_router follow --source /, 'run' ],
	[ follow_once => 'sh', qr{^install -d -o postgres -g postgres /etc/pgbouncer/replica_router$}, 'run' ],
	[ serve => 'sh', qr/^replica_router serve --source /, 'run' ],
	[ prometheus_yml => 'yaml', qr/^# prometheus\.yml$/, 'validate' ],
	[ metrics_cron => '', qr{^# /etc/cron\.d/replica_router_metrics$}, 'run' ],
	[ haproxy => '', qr/^listen pg_read$/, 'validate' ],
	[ python_example => 'sh', qr/^psql -d postgres -c 'CREATE ROLE app LOGIN'/, 'run' ],
	[ sqlalchemy => 'python', qr/^class RoutingSession\(Session\):$/, 'run' ],
	[ django => 'python', qr/^class ReplicaRouter:$/, 'run' ],
	[ rails => 'ruby', qr/^class LsnResolver /, 'not run: Ruby on Rails is not installed here (no Ruby toolchain in the test dependencies)' ],
	[ spring => 'java', qr/^public class ReplicaRoutingDataSource /, 'not run: Spring and a JDK are not installed here' ],
	[ pgx => 'go', qr/^row := primary\.QueryRow/, 'not run: a one-line Go fragment (pgx and a Go toolchain are not installed); its SQL is recommend()\'s, run above' ],
	[ jdbc_url => 'sql', qr/^SELECT 'jdbc:postgresql:\/\/'/, 'run' ],
	[ layout => '', qr/^Makefile, CMakeLists\.txt/, 'validate' ],
);

my @blocks = readme_blocks();
my %block;    # name => block
{
	my %seen;
	for my $b (@blocks)
	{
		my @names = map { $_->[0] } grep { $_->[1] eq $b->{lang} && $b->{first} =~ $_->[2] } @COVERAGE;
		my $what = sprintf('README.md line %d (```%s, "%s")', $b->{line}, $b->{lang}, substr($b->{first}, 0, 50));
		if (@names != 1)
		{
			fail(@names ? "$what matches several names: @names" : "$what is neither run nor named in 089 (add it to \@COVERAGE)");
			next;
		}
		$seen{ $names[0] }++;
		$block{ $names[0] } = $b;
	}
	for my $c (@COVERAGE)
	{
		my $n = $seen{ $c->[0] } // 0;
		fail("block $c->[0] is named in 089 but not in README.md (any more)") if $n == 0;
		fail("block $c->[0]: $n blocks match") if $n > 1;
		note("README block $c->[0] (line $block{$c->[0]}{line}) $c->[3]") if $n && $c->[3] =~ /^not run/;
	}
	is(scalar(keys %seen), scalar(@COVERAGE), sprintf('all %d blocks of README.md are named (%d run or validated)',
		scalar(@blocks), scalar(grep { $_->[3] !~ /^not run/ } @COVERAGE)));
}

# The text of a block that is run or validated; marks it as used (checked at
# the end: a block named 'run' that the test forgot fails).
my %used;
sub block
{
	my ($name) = @_;
	my $b = $block{$name} or die "no README block $name";
	$used{$name} = 1;
	return $b->{text};
}

###############################################################################
# Substitutions (see the table at the top) and running commands
###############################################################################
my %port = (
	pgbouncer => PostgreSQL::Test::Cluster::get_free_port(),
	serve => PostgreSQL::Test::Cluster::get_free_port(),
	haproxy => PostgreSQL::Test::Cluster::get_free_port());
my %path = (
	'/etc/pgbouncer/replica_router' => "$tmp/etc-pgbouncer-replica_router",
	'/var/lib/prometheus/node-exporter' => "$tmp/node-exporter",
	'/etc/prometheus/replica_router.rules.yml' => "$root/contrib/prometheus/replica_router.rules.yml",
	'/usr/lib/postgresql/15/bin/replica_router' => $tool);
mkdir $path{'/var/lib/prometheus/node-exporter'} or die $!;
my $P;    # the cluster's port, once it exists

sub localize
{
	my ($t) = @_;
	for my $p (sort { length $b <=> length $a } keys %path)
	{
		$t =~ s/\Q$p\E/$path{$p}/g;
	}
	$t =~ s/\b(?:pg1\.example|primary\.example|db\.example\.com)\b/127.0.0.1/g;
	$t =~ s/\bhost=primary\b/host=127.0.0.1/g;
	$t =~ s/\bpg([123])\b/127.0.0.$1/g;
	$t =~ s/\b10\.0\.0\./127.0.0./g;
	$t =~ s/listen_addresses = '\*'/listen_addresses = '127.0.0.1'/g;
	$t =~ s/\*:5001\b/127.0.0.1:$port{haproxy}/g;
	$t =~ s/\b5432\b/$P/g if defined $P;
	$t =~ s/\b6432\b/$port{pgbouncer}/g;
	$t =~ s/\b9188\b/$port{serve}/g;
	$t =~ s/^runuser -u postgres -- //mg;
	$t =~ s/-o postgres -g postgres/-o $user -g $group/g;
	$t =~ s/^(replica_router serve --source .*)$/$1 --port $port{serve}/mg;
	return $t;
}

# A block's shell commands, one per entry (continuation lines joined; full-line
# comments dropped).
sub commands
{
	my ($text) = @_;
	$text =~ s/\\\n\s*/ /g;
	return grep { /\S/ && !/^\s*#/ } split /\n/, $text;
}

# The environment of the README's monitoring host: libpq's defaults reach the
# primary, the program is in PATH.
sub env
{
	return (
		PATH => dirname($tool) . ":$ENV{PATH}",
		PGHOST => '127.0.0.1',
		PGPORT => $P,
		PGUSER => $user);
}

# Runs a shell command line in the source tree (relative paths as in the
# README); returns (exit code, stdout, stderr).
sub sh
{
	my ($cmd) = @_;
	my ($out, $err) = ('', '');
	local %ENV = (%ENV, env());
	my $h = IPC::Run::start([ 'sh', '-c', $cmd ], '<', \undef, '>', \$out, '2>', \$err,
		init => sub { chdir $root or die $! }, IPC::Run::timeout(120));
	$h->finish;
	return ($h->result(0), $out, $err);
}

# Starts a long-running command (exec'd, so stopping it stops the program);
# its output goes to $log. Killed at exit if still running.
sub start_sh
{
	my ($cmd, $log) = @_;
	local %ENV = (%ENV, env());
	return track(IPC::Run::start([ 'sh', '-c', "exec $cmd" ], '<', \undef, '>', $log, '2>&1',
		init => sub { chdir $root or die $! }));
}

# Runs a SQL block in psql on the primary as a superuser, stopping at the
# first error; returns (exit code, stdout, stderr).
sub run_sql
{
	my ($sql, @psql) = @_;
	my $f = "$tmp/block.sql";
	open my $fh, '>', $f or die $!;
	print $fh $sql;
	close $fh;
	return run_tool('psql', '-X', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', $P, '-U', $user,
		'-d', 'postgres', @psql, '-f', $f);
}

sub sql_block_ok
{
	my ($name, $sql, @psql) = @_;
	my ($rc, $out, $err) = run_sql($sql // localize(block($name)), @psql);
	ok($rc == 0 && $err !~ /ERROR|FATAL/, "README $name: the SQL runs without error") or diag("exit $rc\n$out$err");
	return $out;
}

###############################################################################
# (b) The cluster, installed as "Installing into an existing cluster" says
###############################################################################

# The worker's passfile (README: ~postgres/.pgpass): the servers inherit the
# environment, so PGPASSFILE set now is the workers'. Written below, once the
# port is known (libpq reads it at each connection).
my $passfile = "$tmp/pgpass";
$ENV{PGPASSFILE} = $passfile;

# 1. Settings: the block as printed (after RRTest's test settings, so it wins).
# More connections than PostgreSQL::Test::Cluster's 10: three workers poll
# five members, and the examples connect through pgbouncer, serve, the
# follower and the applications.
my $rr = RRTest->new(standbys => [], register => 0, extension => 0,
	conf => "max_connections = 50\n\n# README.md, Installing, 1. Settings\n" . localize(block('settings')));
my $primary = $rr->primary;
$P = $primary->port;
is($rr->q('SHOW replica_router.primary_host') . ' ' . $rr->q('SHOW replica_router.database'), '127.0.0.1 postgres',
	'README settings: the primary runs with them (primary_host, database)');

# 2. pg_hba.conf, above the generic lines ("the first matching line wins"), on
# every node; the passfile line.
my $hba = localize(block('pg_hba'));
sub prepend_hba
{
	my ($node) = @_;
	my $f = $node->data_dir . '/pg_hba.conf';
	my $old = slurp_file($f);
	open my $fh, '>', $f or die $!;
	print $fh "# README.md, Installing, 2.\n$hba$old";
	close $fh;
}
prepend_hba($primary);
$primary->reload;
{
	open my $fh, '>', $passfile or die $!;
	print $fh localize(block('passfile'));
	close $fh;
	chmod 0600, $passfile;
}

# The standbys: 127.0.0.2 and 127.0.0.3 on the primary's port.
my %standby;
for my $i (2, 3)
{
	my $s = PostgreSQL::Test::Cluster->new("db$i", port => $P, own_host => 1);
	$s->init_from_backup($primary, 'base', has_streaming => 1);
	$s->append_conf('postgresql.conf', "listen_addresses = '127.0.0.$i'\n");
	prepend_hba($s);
	$s->start;
	$standby{"db$i"} = $s;
}

# The polling login, the extension and the members, as printed.
sql_block_ok('polling_login');
my $registered = sql_block_ok('register');
like($registered, qr/\bdb3\b.*\beu\b/, 'README register: add_node() answers with the node (db3 in zone eu)');
ok(defined $rr->wait_for(20, "SELECT string_agg(node || '=' || state, ',' ORDER BY node) FROM replica_router.status",
	'db1=primary,db2=healthy,db3=healthy'),
	'the members registered as printed: db1 is the primary, db2 and db3 healthy replicas (polled as replica_router, password from the passfile)');
{
	# The pg_hba.conf line is in force: without the passfile the login is refused.
	my ($rc, $out, $err) = run_tool('psql', '-XAtq', '-d', "host=127.0.0.2 port=$P dbname=postgres user=replica_router passfile=$tmp/no-passfile", '-c', 'SELECT 1');
	like($err, qr/password/, "README pg_hba.conf line: replica_router must give a password ($err)");
}

# The names other sections use (see the top), the monitoring login, the
# application's database (the Python example makes its login, app).
$rr->q("SELECT replica_router.add_node('r$_', 'host=127.0.0.${\($_ + 1)} port=$P dbname=postgres user=replica_router')") for 1, 2;
$rr->q('CREATE ROLE monitor LOGIN IN ROLE pg_monitor');
ok(defined $rr->wait_for(20, "SELECT count(*) = 4 FROM replica_router.status WHERE state = 'healthy'"), 'r1 and r2 (db2 and db3 again) healthy');

###############################################################################
# SQL blocks
###############################################################################
{
	# The first block: a query, then what it prints. Its columns are the ones printed.
	my ($sql, $printed) = block('intro_recommend') =~ /\A(.*?;)\n(.*)\z/s;
	my $out = sql_block_ok('intro_recommend', $sql);
	my ($head) = $printed =~ /^(.*\|.*)$/m;
	my $cols = sub { join ',', map { s/^\s+|\s+$//gr } split /\|/, $_[0] };
	my ($got) = $out =~ /^(.*\|.*)$/m;
	is($cols->($got // ''), $cols->($head), 'README intro: recommend() has the columns printed');
	like($out, qr/^ db[23] +\| 127\.0\.0\.[23] .*\| replica /m, 'README intro: it names a replica');
}
like(sql_block_ok('routes'), qr/^ 127\.0\.0\.[23] \| +$P$/m, 'README routes: dashboard_query goes to a replica');
{
	# "INSERT INTO orders ...;" is a placeholder: here a real insert into a table orders.
	my $sql = localize(block('read_your_writes'));
	$sql =~ s/^INSERT INTO orders \.\.\.;$/CREATE TABLE orders (id serial PRIMARY KEY); INSERT INTO orders DEFAULT VALUES;/m
	  or fail('read_your_writes: the placeholder INSERT is gone; update 089');
	like(sql_block_ok('read_your_writes', $sql), qr/\d+\/[0-9A-F]+/, 'README read-your-writes: write_lsn() and recommend(min_lsn) answer');
	$used{read_your_writes} = 1;
}
sql_block_ok('alerting');
like(sql_block_ok('jdbc_url', undef, '-At'), qr{^jdbc:postgresql://127\.0\.0\.[23]:$P,.*/app\?targetServerType=any&loadBalanceHosts=false$}m,
	'README JDBC: a URL of the ranked replicas');

###############################################################################
# Shell blocks: the program, the check command, cron and Nagios
###############################################################################
for my $cmd (commands(localize(block('program_help'))))
{
	my ($rc, $out, $err) = sh($cmd);
	ok($rc == 0 && $out =~ /\S/, "README: $cmd (exit $rc)") or diag("$out$err");
	# "--version  # replica_router 1.2: ..." prints what the comment says.
	if ($cmd =~ /--version\s+# (replica_router [\d.]+):/)
	{
		is($out, "$1\n", "README: replica_router --version prints \"$1\"");
	}
}
{
	my @cmds = commands(localize(block('check')));
	cmp_ok(scalar @cmds, '>=', 5, 'README check examples');
	for my $cmd (@cmds)
	{
		# Retried for a while: a replica judged slow for a moment on a loaded
		# machine makes health and lag warn.
		my ($rc, $out, $err);
		wait_until(20, sub { ($rc, $out, $err) = sh($cmd); $rc == 0 && $out =~ /^REPLICA_ROUTER \w+ OK - / }, 0.5);
		ok($rc == 0 && $out =~ /^REPLICA_ROUTER \w+ OK - /, "README: $cmd: OK (exit $rc)") or diag("$out$err");
	}
}
{
	# A cron line: five time fields, the user, the command (run by sh, as cron does).
	my ($line) = grep { !/^#/ } split /\n/, localize(block('check_cron'));
	my ($when, $who, $cmd) = $line =~ /^((?:\S+\s+){5})(\S+)\s+(.*)$/;
	like($when // '', qr/^\*\/5 \* \* \* \* $/, 'README check cron: every 5 minutes');
	my ($rc, $out, $err);
	wait_until(20, sub { ($rc, $out, $err) = sh($cmd); $rc == 0 && $out eq '' && $err eq '' }, 0.5);
	ok($rc == 0 && $out eq '' && $err eq '', "README check cron: prints nothing while health is OK (exit $rc)") or diag("$out$err");
}
{
	# Nagios expands $HOSTADDRESS$ and $ARG1$ (from the check_command line under it).
	my $text = localize(block('nagios'));
	my ($cmdline) = $text =~ /^\s*command_line\s+(.*)$/m;
	my ($arg1) = $text =~ /^# check_command\s+check_replica_router!(.*)$/m;
	ok(defined $cmdline && defined $arg1, 'README Nagios: a command_line and a check_command');
	$cmdline =~ s/\$HOSTADDRESS\$/127.0.0.1/g;
	$cmdline =~ s/\$ARG1\$/$arg1/g;
	my ($rc, $out, $err) = sh($cmdline);
	ok($rc == 0 && $out =~ /^REPLICA_ROUTER LAG OK - /, "README Nagios: $cmdline (exit $rc)") or diag("$out$err");
}
{
	# "From source": the packages it names exist (the suite installs them).
	# Its make / cmake lines are how scripts/test.sh built what this test runs.
	my ($apt) = grep { /^apt-get install / } commands(block('from_source'));
	my @words = split ' ', $apt // '';
	my @pkgs = grep { !/^-/ } @words[2 .. $#words];
	my @missing = grep { system("dpkg-query -W -f='\${Status}' $_ 2>/dev/null | grep -q 'install ok installed'") != 0 } @pkgs;
	ok(@pkgs >= 5 && !@missing, "README from source: the packages it names are Debian's (@pkgs)") or diag("not installed: @missing");
}

###############################################################################
# The Python application (before the follower: it makes the login app)
###############################################################################
{
	my @cmds = commands(localize(block('python_example')));
	my ($expected) = block('python_example') =~ /^# (requests: .*)$/m;
	for my $cmd (@cmds)
	{
		my ($rc, $out, $err) = sh($cmd);
		ok($rc == 0, "README: $cmd (exit $rc)") or diag("$out$err");
		next unless $cmd =~ /route_reads\.py/;
		# What it prints has the shape printed under it (the counts vary).
		(my $shape = quotemeta($expected)) =~ s/\d+/\\d+/g;
		like($out, qr/^$shape$/m, 'README Python example: prints what the README shows');
		like($out, qr/own writes read back: (\d+)\/\1, .*errors: 0$/m, '... every own write read back, no error');
	}
}
$rr->q('CREATE DATABASE app OWNER app');

###############################################################################
# The follower: --once (before pgbouncer starts), then as a service
###############################################################################
my $bouncer;
{
	my $dir = $path{'/etc/pgbouncer/replica_router'};
	my $file = "$dir/databases.ini";
	for my $cmd (commands(localize(block('follow_once'))))
	{
		if ($cmd =~ /^(?:cp |systemctl )/)
		{
			# Installs and starts a service on this machine (root, systemd);
			# the unit passes systemd-analyze verify in 085.
			note("README follow --once block, not run: $cmd");
			next;
		}
		my ($rc, $out, $err) = sh($cmd);
		ok($rc == 0, "README: $cmd (exit $rc)") or diag("$out$err");
	}
	like(-e $file ? slurp_file($file) : '', qr/^app_read = host=127\.0\.0\.[23][0-9.,]* port=$P dbname=app$/m,
		'README follow --once: the file points app_read at the replicas');

	# pgbouncer with the follower's file as its last line, as the comment says.
	my $text = block('follow');
	my ($include) = $text =~ /^# last line of pgbouncer\.ini:\s+%include (\S+)$/m;
	is(localize($include // ''), $file, 'README follow: pgbouncer includes the file the follower writes');
	$bouncer = RRTest::PgBouncer->new(include => $file, users => [qw(pgbouncer app)], port => $port{pgbouncer},
		settings => { admin_users => "$user,pgbouncer", pool_mode => 'session' });
	ok(defined $bouncer->wait_up(20), 'pgbouncer starts with the file');

	my ($cmd) = commands(localize($text));
	my $log = "$tmp/follow.log";
	my $follow = start_sh($cmd, $log);
	my $dbs = '';
	ok(defined wait_until(30, sub {
		$dbs = `psql -XAtq -d '${\ $bouncer->admin}' -c 'SHOW DATABASES' 2>&1`;
		$dbs =~ /^app_report\|127\.0\.0\.[23][^|]*\|$P\|app\|[^|]*\|20\|/m }, 0.2),
		"README follow: running, it adds app_report with pool_size 20 and pgbouncer reloads it ($cmd)")
	  or diag("$dbs\n" . slurp_file($log));
	like(slurp_file($file), qr/^app_write = host=127\.0\.0\.1 port=$P dbname=app pool_size=20$/m, '... and app_write on the primary');
	my $s = RRTest::Session->new("host=127.0.0.1 port=$port{pgbouncer} dbname=app_read user=app");
	is($s->q('SELECT pg_is_in_recovery()'), 't', 'a session through app_read lands on a replica');
	$s->close;
	$follow->signal('TERM');
	$follow->finish;
	unlike(slurp_file($log), qr/ERROR|error:/i, 'the follower logged no error') or diag(slurp_file($log));
}

###############################################################################
# serve, and what reads it: Prometheus, the textfile collector, HAProxy
###############################################################################
my $http = HTTP::Tiny->new(timeout => 10);
my $get = sub { my $r = $http->get("http://127.0.0.1:$port{serve}$_[0]"); return ($r->{status}, $r->{content} // ''); };
{
	my ($cmd) = commands(localize(block('serve')));
	my $log = "$tmp/serve.log";
	my $serve = start_sh($cmd, $log);
	my ($st, $body) = (0, '');
	ok(defined wait_until(30, sub { ($st, $body) = $get->('/health'); $st == 200 }, 0.1),
		"README serve: answers /health ($cmd)") or diag(-e $log ? slurp_file($log) : 'no log');
	is((eval { decode_json($body) } // {})->{source_role}, 'primary', '... from the primary, found among pg1,pg2,pg3');

	{
		my $yml = "$tmp/prometheus.yml";
		open my $fh, '>', $yml or die $!;
		print $fh localize(block('prometheus_yml'));
		close $fh;
		my ($rc, $out, $err) = run_tool('promtool', 'check', 'config', $yml);
		ok($rc == 0 && "$out$err" =~ /SUCCESS/, 'README prometheus.yml: promtool check config (with its rule file)') or diag("$out$err");
		my ($target) = slurp_file($yml) =~ /targets: \['([^']+)'\]/;
		is($target, "127.0.0.1:$port{serve}", '... its target is where serve listens');
	}

	{
		my ($line) = grep { !/^#/ } split /\n/, localize(block('metrics_cron'));
		my ($when, $who, $cmd) = $line =~ /^((?:\S+\s+){5})(\S+)\s+(.*)$/;
		my ($rc, $out, $err) = sh($cmd);
		my $prom = "$path{'/var/lib/prometheus/node-exporter'}/replica_router.prom";
		ok($rc == 0 && -s $prom, "README textfile cron line: writes replica_router.prom (exit $rc)") or diag("$out$err");
		like(-e $prom ? slurp_file($prom) : '', qr/^replica_router_\w+/m, '... with replica_router series');
		{
			my ($prc, $pout, $perr) = run_tool('sh', '-c', "promtool check metrics < '$prom'");
			unlike("$pout$perr", qr/error while linting|text format parsing error/i, '... that promtool can parse') or diag("$pout$perr");
		}
	}

	{
		# HAProxy: the block appended to Debian's default haproxy.cfg, checked
		# with haproxy -c; each server's health check, as HAProxy sends it, answers 200.
		my $cfg = "$tmp/haproxy.cfg";
		my $text = localize(block('haproxy'));
		open my $fh, '>', $cfg or die $!;
		print $fh slurp_file('/etc/haproxy/haproxy.cfg') . "\n$text";
		close $fh;
		{
			my ($rc, $out, $err) = run_tool('/usr/sbin/haproxy', '-c', '-f', $cfg);
			ok($rc == 0 && "$out$err" !~ /WARNING.*pg_read|pg_read.*WARNING/, 'README HAProxy: haproxy -c accepts it, no warning') or diag("$out$err");
		}
		my ($uri) = $text =~ /uri-lf (\S+)/;
		my @servers = $text =~ /^\s*server (\S+) \S+ check addr 127\.0\.0\.1 port $port{serve}$/mg;
		is(scalar @servers, 2, 'README HAProxy: two servers checked where serve listens');
		for my $srv (@servers)
		{
			(my $path = $uri) =~ s/%\[srv_name\]/$srv/;
			# Polled: the replicas may still be catching up after the earlier examples.
			my ($st, $body);
			wait_until(20, sub { ($st, $body) = $get->($path); $st == 200 }, 0.1);
			is($st, 200, "README HAProxy: the check of $srv, GET $path: 200") or diag($body);
		}
	}
	$serve->signal('TERM');
	$serve->finish;
}

###############################################################################
# The application snippets: SQLAlchemy and Django, with the example's Router
###############################################################################
my $router_dsn = "host=127.0.0.1 port=$P dbname=postgres user=app";
sub python
{
	my ($name, $harness, @args) = @_;
	my $snippet = "$tmp/$name.snippet.py";
	open my $fh, '>', $snippet or die $!;
	print $fh block($name);
	close $fh;
	# (Not named after the module it imports: python3 puts the script's directory first in sys.path.)
	open $fh, '>', "$tmp/harness_$name.py" or die $!;
	print $fh $harness;
	close $fh;
	my ($rc, $out, $err) = run_tool('python3', "$tmp/harness_$name.py", "$root/examples", $router_dsn, $snippet, @args);
	my $j = eval { decode_json($out) };
	ok($rc == 0 && $j, "README $name snippet runs (exit $rc)") or diag("$out$err");
	return $j // {};
}

{
	# The harness gives the snippet what it assumes: the example's Router, the
	# user's last write position, engines["primary"]. SQLAlchemy 1.4 (Debian
	# 12) has no psycopg 3 dialect: there the snippet's postgresql+psycopg is
	# postgresql+psycopg2, as the README says.
	my $j = python('sqlalchemy', <<'EOF', "postgresql+psycopg://app\@127.0.0.1:$P/app");
import json, sys
sys.path.insert(0, sys.argv[1])
from route_reads import Router
import sqlalchemy
from sqlalchemy import Column, Integer, Text, create_engine, func, insert, select, text
from sqlalchemy.orm import Session, declarative_base
from sqlalchemy.sql.expression import Delete, Insert, Update

router = Router(sys.argv[2])
last_lsn = [None]
def current_user_lsn():
    return last_lsn[0]
snippet = open(sys.argv[3]).read()
primary_url = sys.argv[4]
if sqlalchemy.__version__.startswith("1."):
    snippet = snippet.replace("postgresql+psycopg://", "postgresql+psycopg2://")
    primary_url = primary_url.replace("postgresql+psycopg://", "postgresql+psycopg2://")
engines = {"primary": create_engine(primary_url)}
exec(snippet)

Base = declarative_base()
class Note(Base):
    __tablename__ = "sa_notes"
    id = Column(Integer, primary_key=True)
    body = Column(Text)
Base.metadata.drop_all(engines["primary"])
Base.metadata.create_all(engines["primary"])

out = {}
with RoutingSession() as s:
    s.add(Note(body="ORM flush"))
    s.commit()
    s.execute(insert(Note).values(body="Core insert"))
    s.commit()
    last_lsn[0] = router.primary.execute("SELECT replica_router.write_lsn()::text").fetchone()[0]
    out["write_bind"] = s.get_bind(clause=insert(Note)).url.host
    out["count"] = s.execute(select(func.count()).select_from(Note)).scalar()
    s.commit()
    # A user without a recent write: any replica will do (with the write's
    # position, the primary is right until a replica has replayed it).
    last_lsn[0] = None
    out["read_in_recovery"] = s.execute(text("SELECT pg_is_in_recovery()")).scalar()
    out["read_bind"] = s.get_bind(clause=select(Note)).url.host
print(json.dumps(out))
EOF
	is($j->{write_bind}, '127.0.0.1', 'SQLAlchemy: writes bind to the primary');
	is($j->{count}, 2, 'SQLAlchemy: a read with the user\'s write position (min_lsn) sees both writes (ORM flush and Core insert)');
	ok($j->{read_in_recovery} && ($j->{read_bind} // '') =~ /^127\.0\.0\.[23]$/, 'SQLAlchemy: other reads go to a replica (' . ($j->{read_bind} // '') . ')');
}

{
	# The routers module of the snippet's settings line (app.routers) is the
	# example's Router and the snippet; DATABASES lists every registered node
	# by name, 'primary' and Django's 'default'.
	my ($routers) = block('django') =~ /DATABASE_ROUTERS = \[(.*)\]/;
	my $nodes = $rr->q(q{SELECT json_object_agg(node, json_build_array(host, port)) FROM replica_router.status});
	my $j = python('django', <<'EOF', $routers // '', $nodes, $tmp);
import json, os, sys
examples, dsn, snippet, routers, nodes, tmp = sys.argv[1:7]
proj = os.path.join(tmp, "django")
os.makedirs(os.path.join(proj, "app"), exist_ok=True)
open(os.path.join(proj, "app", "__init__.py"), "w").close()
with open(os.path.join(proj, "app", "routers.py"), "w") as f:
    f.write("import os\nfrom route_reads import Router\nrouter = Router(os.environ['RR_ROUTER_DSN'])\n\n" + open(snippet).read())
with open(os.path.join(proj, "app", "models.py"), "w") as f:
    f.write("from django.db import models\n\nclass Note(models.Model):\n    body = models.TextField()\n\n"
            "    class Meta:\n        db_table = 'example_notes'\n        managed = False\n")
sys.path[0:0] = [proj, examples]
os.environ["RR_ROUTER_DSN"] = dsn

import django
from django.conf import settings
def db(host, port):
    return {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": "app", "HOST": host, "PORT": str(port)}
dbs = {name: db(*hp) for name, hp in json.loads(nodes).items()}
dbs["default"] = dbs["primary"] = db("127.0.0.1", json.loads(nodes)["db1"][1])
settings.configure(DATABASES=dbs, DATABASE_ROUTERS=json.loads("[" + routers + "]"), INSTALLED_APPS=["app"],
                   DEFAULT_AUTO_FIELD="django.db.models.BigAutoField")
django.setup()
from django.db import connections
from app.models import Note

n = Note.objects.create(body="by Django")
qs = Note.objects.all()
out = {"write_db": n._state.db, "read_db": qs.db, "count": qs.count() > 0}
with connections[qs.db].cursor() as c:
    c.execute("SELECT pg_is_in_recovery()")
    out["read_in_recovery"] = c.fetchone()[0]
print(json.dumps(out))
EOF
	is($j->{write_db}, 'primary', 'Django: writes go to "primary"');
	like($j->{read_db} // '', qr/^(db[23]|r[12])$/, "Django: reads go to the recommended node, by its registered name ($j->{read_db})");
	ok($j->{count} && $j->{read_in_recovery}, 'Django: the read ran on a replica');
}

###############################################################################
# The NOTIFY payload: a stopped replica's notification has the keys printed
###############################################################################
{
	my ($keys) = join ',', block('notify_payload') =~ /"(\w+)" :/g;
	my $listen = RRTest::Session->new($primary);
	$listen->q('LISTEN replica_router');
	$standby{db3}->stop('immediate');
	my ($all, $payload, $be_pid) = ('', undef, undef);
	ok(defined wait_until(20, sub {
		$all .= ($listen->run('SELECT 1'))[0];
		# The notification of db3 going down (an earlier one, lagging to
		# healthy say, is not the one this waits for).
		($payload, $be_pid) = $all =~ /with payload "(\{"node" : "db3"[^}]*"new_state" : "down"[^}]*\})" received from server process with PID (\d+)/;
		defined $payload }, 0.05), 'db3 stopped: the worker notifies') or diag($all);
	my $j = eval { decode_json($payload // '') } // {};
	is(join(',', ($payload // '') =~ /"(\w+)" :/g), $keys, "README NOTIFY payload: the keys printed, in order ($keys)");
	is($j->{new_state}, 'down', '... the new state');
	ok(defined $j->{old_state} && $j->{old_state} ne 'down', "... and the state before ($j->{old_state})");
	is($j->{worker_pid}, $be_pid, '... worker_pid is the sending process (PGnotify.be_pid)');
	$listen->close;
}

###############################################################################
# The Layout block: the files it names exist
###############################################################################
{
	my @missing;
	for my $line (split /\n/, block('layout'))
	{
		next unless $line =~ /^(\S[^ ]*(?: \S+)*?)\s{2,}/ || $line =~ /^(\S+)$/;
		for my $name (split /,\s*/, $1)
		{
			push @missing, $name unless -e "$root/$name";
		}
	}
	is("@missing", '', 'README Layout: the top-level files and directories it names exist');
}

for my $c (grep { $_->[3] !~ /^not run/ } @COVERAGE)
{
	fail("README block $c->[0] is marked '$c->[3]' but the test never used it") unless $used{ $c->[0] } || !$block{ $c->[0] };
}
$bouncer->stop if $bouncer;
$rr->finish;
$rr->check_log;
done_testing();
