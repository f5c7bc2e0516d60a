# A small hostile PostgreSQL server for the TAP tests: speaks enough of the
# v3 wire protocol (on 127.0.0.1, a free port) to get a libpq client past
# start-up, then misbehaves as its mode says.
#
#   my $fake = FakePg->start(mode => 'trust', record => "$dir/trust.rec");
#   ... $fake->port ... $fake->queries ... $fake->stop;
#
# Modes (every mode answers SSLRequest and GSSENCRequest with 'N'):
#   password      AuthenticationCleartextPassword; records the password it
#                 gets, answers FATAL (28P01) and closes.
#   trust         AuthenticationOk without asking for a password, the usual
#                 ParameterStatus / BackendKeyData / ReadyForQuery; answers
#                 every simple Query plausibly (the replica_router poll query
#                 with an 18-column row, SHOW POOLS with one pool, anything
#                 else with one row of one column).
#   notify_flood  as trust, but from the first Query on streams
#                 NotificationResponse messages as fast as the peer reads them,
#                 before the answer to each query (during the query) and
#                 between queries (idle), and still answers every query.
#                 With answer_first => 1 the first answer goes out at once,
#                 so the flood starts on an idle connection.
#   big_row       as trust, but answers a Query with one column and one
#                 DataRow whose field is `big_bytes` long (500 MB), streamed.
#   many_rows     as trust, but answers a Query with pgbouncer's SHOW POOLS
#                 columns and `rows` (1,000,000) DataRows.
#   startup_notice  AuthenticationOk, then a NoticeResponse whose message is
#                 `big_bytes` long (500 MB), streamed, before the rest of the
#                 start-up (libpq takes long 'N' messages while it connects);
#                 then as trust.
#   startup_notify  AuthenticationOk, then NotificationResponse messages
#                 without end instead of ReadyForQuery (never connected).
#   bad_utf8      answers the StartupMessage with an ErrorResponse (FATAL)
#                 whose message holds invalid UTF-8, control characters, a
#                 '|' and, after a newline, a forged log line (marker
#                 FakePg::FORGED); then closes.
#
# What it saw goes to the `record` file, one line per event, appended by
# every connection: "<kind>\t<text>" with kind startup, password or query
# (backslash, tab, CR and LF in the text escaped as \\, \t, \r, \n).
#
# Process model: start() binds the listening socket, then forks a listener
# (in its own process group) that forks one child per connection. Every
# child ends at the first write error (EPIPE, ECONNRESET), when the peer
# closes, after `duration` seconds or `max_bytes` sent; the listener itself
# after `lifetime` seconds; stop() (and DESTROY) kill the whole group.
# Children leave with POSIX::_exit, so no END block of the test (which
# would stop its clusters) runs in them. Only core Perl modules.
package FakePg;

use strict;
use warnings;

use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Socket qw(SOL_SOCKET SO_SNDBUF);
use Time::HiRes qw(time);

use constant FORGED => 'LOG:  forged-by-fakepg: replica is healthy';

my %modes = map { $_ => 1 } qw(password trust notify_flood big_row many_rows bad_utf8 startup_notice startup_notify);

# start(mode => ..., record => $file, duration => 60 (s, per connection),
#       max_bytes => 2 GB (per connection), big_bytes => 500 MB,
#       rows => 1e6, answer_first => 0, lifetime => 600 (s, the listener),
#       system_identifier => '...', lsn => '0/3000000' (for the poll answer))
sub start
{
	my ($class, %o) = @_;
	die "FakePg: unknown mode '" . ($o{mode} // '') . "'" unless $modes{ $o{mode} // '' };
	die 'FakePg: record => file is required' unless defined $o{record};
	my $self = bless {
		mode => $o{mode},
		record => $o{record},
		duration => $o{duration} // 60,
		max_bytes => $o{max_bytes} // 2 * 1024**3,
		big_bytes => $o{big_bytes} // 500 * 1024**2,
		rows => $o{rows} // 1_000_000,
		lifetime => $o{lifetime} // 600,
		answer_first => $o{answer_first} // 0,
		system_identifier => $o{system_identifier} // '7000000000000000001',
		lsn => $o{lsn} // '0/3000000',
		owner => $$,
	}, $class;
	# Create (or truncate) the record file, so it exists even if nothing came.
	open my $fh, '>', $self->{record} or die "FakePg: $self->{record}: $!";
	close $fh;

	my $listen = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => 0,
		Listen => 128,
		ReuseAddr => 1,
		Proto => 'tcp') or die "FakePg: listen: $!";
	$self->{port} = $listen->sockport;

	my $pid = fork;
	die "FakePg: fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		my $rc = 0;
		eval {
			POSIX::setpgid(0, 0);
			$self->_listener($listen);
			1;
		} or $rc = 1;
		POSIX::_exit($rc);
	}
	close $listen;
	# The listener makes itself a group leader; do it from here too, so that
	# stop() can kill the group even if it is called at once.
	POSIX::setpgid($pid, $pid);
	$self->{pid} = $pid;
	return $self;
}

sub port { return $_[0]->{port}; }
sub pid { return $_[0]->{pid}; }
sub mode { return $_[0]->{mode}; }

# The recorded events of one kind, in order, unescaped.
sub records
{
	my ($self, $kind) = @_;
	open my $fh, '<', $self->{record} or return ();
	my @out;
	while (my $line = <$fh>)
	{
		chomp $line;
		my ($k, $text) = split /\t/, $line, 2;
		next unless defined $text && $k eq $kind;
		$text =~ s/\\(.)/$1 eq 'n' ? "\n" : $1 eq 'r' ? "\r" : $1 eq 't' ? "\t" : $1/ge;
		push @out, $text;
	}
	close $fh;
	return @out;
}
sub passwords { return $_[0]->records('password'); }
sub queries { return $_[0]->records('query'); }
sub startups { return $_[0]->records('startup'); }

# Kills the listener and every connection child (its process group).
sub stop
{
	my ($self) = @_;
	my $pid = delete $self->{pid};
	return unless $pid && $$ == $self->{owner};
	kill 'TERM', -$pid;
	kill 'TERM', $pid;
	my $deadline = time + 5;
	while (time < $deadline)
	{
		my $r = waitpid($pid, POSIX::WNOHANG());
		last if $r == $pid || $r == -1;
		select(undef, undef, undef, 0.02);
	}
	kill 'KILL', -$pid;
	kill 'KILL', $pid;
	waitpid($pid, 0);
	return;
}

sub DESTROY
{
	my ($self) = @_;
	local ($?, $!, $@);
	$self->stop if $self->{pid};
}

###############################################################################
# Server side (runs in the forked children only)
###############################################################################

sub _listener
{
	my ($self, $listen) = @_;
	$SIG{PIPE} = 'IGNORE';
	$SIG{CHLD} = 'DEFAULT';
	$SIG{TERM} = sub { POSIX::_exit(0) };
	$SIG{INT} = sub { POSIX::_exit(0) };
	my $end = time + $self->{lifetime};
	my $sel = IO::Select->new($listen);
	my %kids;
	while (time < $end)
	{
		# Reap finished connection children.
		while ((my $k = waitpid(-1, POSIX::WNOHANG())) > 0) { delete $kids{$k}; }
		next unless $sel->can_read(0.2);
		my $sock = $listen->accept or next;
		my $pid = fork;
		if (!defined $pid)
		{
			close $sock;
			next;
		}
		if ($pid == 0)
		{
			close $listen;
			eval { $self->_connection($sock); 1 };
			POSIX::_exit(0);
		}
		$kids{$pid} = 1;
		close $sock;
	}
	kill 'KILL', keys %kids if %kids;
	return;
}

sub _record
{
	my ($self, $kind, $text) = @_;
	$text =~ s/([\\\t\r\n])/$1 eq "\n" ? '\\n' : $1 eq "\r" ? '\\r' : $1 eq "\t" ? '\\t' : '\\\\'/ge;
	# One write per line on an O_APPEND file: lines of concurrent
	# connections do not interleave.
	if (open my $fh, '>>', $self->{record})
	{
		syswrite $fh, "$kind\t$text\n";
		close $fh;
	}
	return;
}

# --- protocol messages -------------------------------------------------------

sub _msg { my ($type, $body) = @_; return $type . pack('N', 4 + length $body) . $body; }

sub _auth_ok { return _msg('R', pack('N', 0)); }

sub _ready { return _msg('Z', 'I'); }

sub _error
{
	my ($severity, $code, $message) = @_;
	return _msg('E', "S$severity\0V$severity\0C$code\0M$message\0\0");
}

sub _welcome
{
	my ($self, $params) = @_;
	return _auth_ok() . $self->_params_ready($params);
}

# What follows AuthenticationOk: ParameterStatus, BackendKeyData, ReadyForQuery.
sub _params_ready
{
	my ($self, $params) = @_;
	my $out = '';
	my %ps = (
		server_version => '15.0',
		server_encoding => 'UTF8',
		client_encoding => 'UTF8',
		DateStyle => 'ISO, MDY',
		IntervalStyle => 'postgres',
		integer_datetimes => 'on',
		standard_conforming_strings => 'on',
		TimeZone => 'UTC',
		is_superuser => 'off',
		session_authorization => $params->{user} // 'x',
		application_name => $params->{application_name} // '',
		default_transaction_read_only => 'off',
		in_hot_standby => 'on',
	);
	$out .= _msg('S', "$_\0$ps{$_}\0") for sort keys %ps;
	$out .= _msg('K', pack('NN', $$, int(rand(2**31))));
	return $out . _ready();
}

# RowDescription: a list of [name, type oid].
sub _row_description
{
	my (@cols) = @_;
	my $body = pack('n', scalar @cols);
	$body .= $_->[0] . "\0" . pack('NnNnNn', 0, 0, $_->[1], -1 & 0xffff, 0xffffffff, 0) for @cols;
	return _msg('T', $body);
}

sub _data_row
{
	my (@vals) = @_;
	my $body = pack('n', scalar @vals);
	for my $v (@vals)
	{
		$body .= defined $v ? pack('N', length $v) . $v : pack('N', 0xffffffff);
	}
	return _msg('D', $body);
}

sub _complete { return _msg('C', "$_[0]\0"); }

my @pool_cols = qw(database user cl_active cl_waiting sv_active sv_idle sv_used sv_tested sv_login maxwait
  maxwait_us pool_mode);

sub _pool_row
{
	my ($db) = @_;
	return _data_row($db, 'fake', '0', '0', '0', '0', '0', '0', '0', '0', '0', 'session');
}

# A plausible answer to any query.
sub _answer
{
	my ($self, $sql) = @_;
	if ($sql =~ /pg_is_in_recovery/)
	{
		# replica_router's poll query: 21 columns, one row (a standby in
		# recovery, streaming nothing, on timeline 1).
		my @cols = (
			[ in_recovery => 16 ], [ receive_lsn => 20 ], [ replay_lsn => 20 ], [ replay_ts => 20 ],
			[ replay_paused => 16 ], [ system_identifier => 20 ], [ timeline => 23 ], [ connections => 20 ],
			[ max_connections => 23 ], [ active => 20 ], [ idle => 20 ], [ idle_in_xact => 20 ],
			[ waiting => 20 ], [ reserved => 23 ], [ slot_name => 25 ], [ application_name => 25 ],
			[ receiver_tli => 23 ], [ started_at => 20 ], [ current_lsn => 20 ], [ sender_host => 25 ],
			[ sender_port => 23 ]);
		# LSNs as the poll query returns them: bytes since 0/0.
		my ($hi, $lo) = map { hex } split m{/}, $self->{lsn};
		my $lsn = $hi * 4294967296 + $lo;
		my @vals = ('t', $lsn, $lsn, undef, 'f', $self->{system_identifier}, '1', '1', '100',
			'0', '1', '0', '0', '3', undef, 'fakepg', undef, '1000000000000000', undef, undef, undef);
		return _row_description(@cols) . _data_row(@vals) . _complete('SELECT 1') . _ready();
	}
	if ($sql =~ /^\s*SHOW\s+POOLS/i)
	{
		return _row_description(map { [ $_ => 25 ] } @pool_cols) . _pool_row('fakedb')
		  . _complete('SHOW') . _ready();
	}
	return _row_description([ '?column?' => 23 ]) . _data_row('1') . _complete('SELECT 1') . _ready();
}

# --- buffered, nonblocking connection ---------------------------------------

sub _connection
{
	my ($self, $sock) = @_;
	$SIG{PIPE} = 'IGNORE';
	$SIG{TERM} = sub { POSIX::_exit(0) };
	$sock->blocking(0);
	setsockopt($sock, SOL_SOCKET, SO_SNDBUF, 1024 * 1024);
	my $c = {
		sock => $sock,
		fd => fileno($sock),
		in => '',
		out => '',
		off => 0,
		closed => 0,
		sent => 0,
		deadline => time + $self->{duration},
		max_bytes => $self->{max_bytes},
	};
	my $params = $self->_startup($c) or return;
	my $mode = $self->{mode};
	if ($mode eq 'bad_utf8')
	{
		my $msg = "hostile \xff\xfe bytes, a lone \xc3 here, control \x01 and \x1b[31mred\x1b[0m"
		  . " | pipe\r\n" . FORGED . "\n";
		_queue($c, _error('FATAL', '28000', $msg));
		_flush($c);
		return;
	}
	if ($mode eq 'password')
	{
		_queue($c, _msg('R', pack('N', 3)));
		my ($type, $body) = _wait_msg($c);
		return unless defined $type;
		if ($type eq 'p')
		{
			(my $pw = $body) =~ s/\0.*\z//s;
			$self->_record(password => $pw);
		}
		_queue($c, _error('FATAL', '28P01', qq{password authentication failed for user "$params->{user}"}));
		_flush($c);
		return;
	}
	if ($mode eq 'startup_notify')
	{
		# Authenticated, then notifications instead of ReadyForQuery.
		_queue($c, _auth_ok());
		_stream($c, sub { _notify_block() });
		return;
	}
	if ($mode eq 'startup_notice')
	{
		# Authenticated, then one NoticeResponse of big_bytes before the
		# rest of the start-up; a trust server afterwards.
		my ($pre, $post) = ("SNOTICE\0VNOTICE\0C00000\0M", "\0\0");
		_queue($c, _auth_ok() . 'N' . pack('N', 4 + length($pre) + $self->{big_bytes} + length($post)) . $pre);
		_stream_bytes($c, $self->{big_bytes}) or return;
		_queue($c, $post . $self->_params_ready($params));
	}
	else
	{
		_queue($c, $self->_welcome($params));
	}
	return $self->_flood($c) if $mode eq 'notify_flood';
	for (;;)
	{
		my ($type, $body) = _wait_msg($c);
		return if !defined $type || $type eq 'X';
		next unless $type eq 'Q';
		(my $sql = $body) =~ s/\0.*\z//s;
		$self->_record(query => $sql);
		if ($mode eq 'big_row') { $self->_big_row($c) or return; }
		elsif ($mode eq 'many_rows') { $self->_many_rows($c) or return; }
		else { _queue($c, $self->_answer($sql)); }
		_flush($c) or return;
	}
}

# Reads the start-up packet(s): answers SSLRequest / GSSENCRequest with 'N',
# returns the StartupMessage's parameters (undef if the peer went away).
sub _startup
{
	my ($self, $c) = @_;
	for (;;)
	{
		_pump_until($c, sub { length($c->{in}) >= 4 && length($c->{in}) >= unpack('N', $c->{in}) }) or return;
		my $len = unpack('N', $c->{in});
		return if $len < 8 || $len > 10000;
		my $packet = substr($c->{in}, 0, $len, '');
		my $code = unpack('N', substr($packet, 4, 4));
		if ($code == 80877103 || $code == 80877104)    # SSLRequest, GSSENCRequest
		{
			_queue($c, 'N');
			_flush($c) or return;
			next;
		}
		return if $code != 196608;                     # CancelRequest or an unknown protocol
		my @kv = split /\0/, substr($packet, 8);
		my %params;
		while (@kv >= 2)
		{
			my ($k, $v) = splice(@kv, 0, 2);
			$params{$k} = $v;
		}
		$self->_record(startup => join ' ', map { "$_=$params{$_}" } sort keys %params);
		return \%params;
	}
}

sub _queue { $_[0]->{out} .= $_[1]; return; }

sub _pending { return length($_[0]->{out}) - $_[0]->{off}; }

# One select() round: reads what is there, writes what it can. Returns false
# once the connection is over (peer closed, write error, deadline, volume).
sub _pump
{
	my ($c, $timeout) = @_;
	return 0 if $c->{closed};
	if (time >= $c->{deadline} || $c->{sent} >= $c->{max_bytes})
	{
		$c->{closed} = 1;
		return 0;
	}
	my $rin = '';
	vec($rin, $c->{fd}, 1) = 1;
	my $win = _pending($c) > 0 ? $rin : undef;
	my $left = $c->{deadline} - time;
	$timeout = $left if $timeout > $left;
	$timeout = 0 if $timeout < 0;
	my ($rout, $wout) = ($rin, $win);
	my $n = select($rout, $wout, undef, $timeout);
	return 1 if $n <= 0;    # timeout or EINTR
	if (vec($rout, $c->{fd}, 1))
	{
		my $r = sysread($c->{sock}, my $buf, 65536);
		if (defined $r)
		{
			if ($r == 0)
			{
				$c->{closed} = 1;
				return 0;
			}
			$c->{in} .= $buf;
		}
		elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR)
		{
			$c->{closed} = 1;    # ECONNRESET and the like
			return 0;
		}
	}
	if (defined $wout && vec($wout, $c->{fd}, 1))
	{
		my $w = syswrite($c->{sock}, $c->{out}, _pending($c), $c->{off});
		if (defined $w)
		{
			$c->{off} += $w;
			$c->{sent} += $w;
			if ($c->{off} >= length $c->{out})
			{
				$c->{out} = '';
				$c->{off} = 0;
			}
		}
		elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR)
		{
			$c->{closed} = 1;    # EPIPE, ECONNRESET
			return 0;
		}
	}
	return 1;
}

sub _pump_until
{
	my ($c, $done) = @_;
	until ($done->())
	{
		_pump($c, 0.5) or return 0;
	}
	return 1;
}

sub _flush { my ($c) = @_; return _pump_until($c, sub { _pending($c) == 0 }); }

# Takes one complete message from the input buffer: (type, body), or ().
sub _take_msg
{
	my ($c) = @_;
	return () if length($c->{in}) < 5;
	my $len = unpack('N', substr($c->{in}, 1, 4));
	if ($len < 4 || $len > 64 * 1024 * 1024)
	{
		$c->{closed} = 1;
		return ();
	}
	return () if length($c->{in}) < 1 + $len;
	my $type = substr($c->{in}, 0, 1);
	my $body = substr($c->{in}, 5, $len - 4);
	substr($c->{in}, 0, 1 + $len, '');
	return ($type, $body);
}

# Writes what is queued and waits for the next message; () when over.
sub _wait_msg
{
	my ($c) = @_;
	for (;;)
	{
		my @m = _take_msg($c);
		return @m if @m;
		return () if $c->{closed};
		_pump($c, 0.5) or return ();
	}
}

# Keeps the output buffer at least $low bytes full from $refill->() (which
# returns the next piece, or undef when there is nothing more) while the
# peer reads; returns false when the connection is over.
sub _stream
{
	my ($c, $refill, $low) = @_;
	$low //= 1024 * 1024;
	for (;;)
	{
		while (_pending($c) < $low)
		{
			my $piece = $refill->();
			last unless defined $piece;
			if ($c->{off} > 0)
			{
				substr($c->{out}, 0, $c->{off}, '');
				$c->{off} = 0;
			}
			$c->{out} .= $piece;
		}
		return 1 if _pending($c) == 0;
		_pump($c, 0.5) or return 0;
	}
}

sub _big_row
{
	my ($self, $c) = @_;
	my $n = $self->{big_bytes};
	_queue($c, _row_description([ big => 25 ]));
	# DataRow: the header claims the whole field up front.
	_queue($c, 'D' . pack('N', 4 + 2 + 4 + $n) . pack('n', 1) . pack('N', $n));
	_stream_bytes($c, $n) or return 0;
	_queue($c, _complete('SELECT 1') . _ready());
	return 1;
}

# Streams $n bytes of 'x' (a field or message text: no NUL).
sub _stream_bytes
{
	my ($c, $n) = @_;
	my $chunk = 'x' x (1024 * 1024);
	my $left = $n;
	return _stream(
		$c,
		sub {
			return undef if $left <= 0;
			my $piece = $left >= length $chunk ? $chunk : substr($chunk, 0, $left);
			$left -= length $piece;
			return $piece;
		});
}

# 256 NotificationResponse messages with 1000-byte payloads.
my $notify_block;
sub _notify_block
{
	$notify_block //= join '',
	  map { _msg('A', pack('N', 4242) . "replica_router_flood\0" . ('n' x 1000) . "\0") } 1 .. 256;
	return $notify_block;
}

sub _many_rows
{
	my ($self, $c) = @_;
	my $left = $self->{rows};
	my $per = 1000;
	my $block = join '', map { _pool_row("db$_") } 1 .. $per;
	_queue($c, _row_description(map { [ $_ => 25 ] } @pool_cols));
	_stream(
		$c,
		sub {
			return undef if $left <= 0;
			if ($left >= $per)
			{
				$left -= $per;
				return $block;
			}
			my $piece = join '', map { _pool_row("db$_") } 1 .. $left;
			$left = 0;
			return $piece;
		}) or return 0;
	_queue($c, _complete('SHOW') . _ready());
	return 1;
}

# notify_flood: after the first Query, notifications without pause; each
# Query is answered after at least one more block of notifications, so they
# arrive while the query runs as well as while the connection is idle.
sub _flood
{
	my ($self, $c) = @_;
	my @queue;
	until (@queue)
	{
		my ($type, $body) = _wait_msg($c);
		return if !defined $type || $type eq 'X';
		next unless $type eq 'Q';
		(my $sql = $body) =~ s/\0.*\z//s;
		$self->_record(query => $sql);
		push @queue, $sql;
	}
	my $block = _notify_block();
	# answer_first: the first answer goes out before any notification, so
	# the flood meets an idle connection.
	my $blocks_since = $self->{answer_first} ? 1 : 0;
	for (;;)
	{
		while (_pending($c) < 1024 * 1024)
		{
			if ($c->{off} > 0)
			{
				substr($c->{out}, 0, $c->{off}, '');
				$c->{off} = 0;
			}
			if (@queue && $blocks_since >= 1)
			{
				$c->{out} .= $self->_answer(shift @queue);
				$blocks_since = 0;
			}
			else
			{
				$c->{out} .= $block;
				$blocks_since++;
			}
		}
		_pump($c, 0.5) or return;
		while (my ($t, $b) = _take_msg($c))
		{
			return if $t eq 'X';
			next unless $t eq 'Q';
			(my $sql = $b) =~ s/\0.*\z//s;
			$self->_record(query => $sql);
			push @queue, $sql;
		}
		return if $c->{closed};
	}
}

1;
