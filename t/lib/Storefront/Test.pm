package Storefront::Test;

# A small harness that runs the real nginx binary with the storefront module
# on a temporary prefix and free loopback ports.  Core Perl only; modelled on
# nginx-tests' lib/Test/Nginx.pm:
#
#   my $t = Storefront::Test->new(workers => 2);
#   $t->import_data({experiments => [...]});     # storefrontctl import
#   $t->write_config($t->std_config(server => 'storefront_qa_override on;'));
#   $t->run;
#   my $r = $t->get('/', headers => ['X-User-Id' => 'u1']);
#   is($r->status, 200); my %echo = $r->echo;
#   $t->stop;          # QUIT, then TERM; fails if the log has alert/crit/emerg
#   done_testing;
#
# Config templates may use %%TEST_GLOBALS%% (main context: load_module, pid,
# error_log, user), %%TEST_GLOBALS_HTTP%% (http context: access log, temp
# paths), %%PORT%%, %%PORT2%%, %%PORT3%%, %%DB%%, %%MODULE%%, %%PREFIX%%.
#
# Environment: STOREFRONT_NGINX (nginx binary), STOREFRONT_MODULE (.so),
# STOREFRONT_CTL (storefrontctl), STOREFRONT_TEST_KEEP=1 keeps the prefix,
# STOREFRONT_TEST_VERBOSE=1 prints the error log on stop,
# STOREFRONT_NO_FAKETIME=1 skips the tests that move nginx's clock.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Encode ();
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(gb_fnv1a32 gb_hash gb_equal_weights gb_bucket_ranges
    gb_choose_variation gb_in_namespace gb_assign chi_square
    parse_variants parse_set_cookie json_encode json_decode repo_path);

our $REPO = abs_path(dirname(__FILE__) . '/../../..');
our $NGINX = $ENV{STOREFRONT_NGINX} // '/usr/sbin/nginx';
our $MODULE = $ENV{STOREFRONT_MODULE}
    // "$REPO/build/nginx/ngx_http_storefront_module.so";
our $CTL = $ENV{STOREFRONT_CTL} // "$REPO/build/storefrontctl";
our $why;          # why faketime_lib() found none
our $current;      # the last harness made: where a crash is looked for

my @LIVE;    # instances with a running nginx, stopped in END

sub repo_path { return "$REPO/$_[0]" }

sub new {
    my ($class, %opt) = @_;

    croak "nginx module not built ($MODULE): run make"
        unless $opt{no_module} || -f $MODULE;

    my $prefix = tempdir('sft-XXXXXXXX', TMPDIR => 1,
        CLEANUP => !$ENV{STOREFRONT_TEST_KEEP});
    # tempdir is 0700; keep it traversable in case a config sets another
    # worker user.
    chmod 0755, $prefix;

    my $self = bless {
        prefix => $prefix,
        ports  => [free_ports(3)],
        allow  => [],
        n      => 0,
    }, $class;

    mkdir $self->db_dir or croak "mkdir: $!";
    $current = $self;
    return $self;
}

sub prefix { $_[0]{prefix} }
sub port   { $_[0]{ports}[ ($_[1] // 1) - 1 ] }
sub db_dir { "$_[0]{prefix}/db" }
sub module { $MODULE }
sub ctl_path { $CTL }
sub error_log_path { "$_[0]{prefix}/error.log" }

# Ports the kernel hands out for bind(0) are free now; nginx binds them a
# moment later (a small race that is harmless on a test machine).
sub free_ports {
    my ($n) = @_;
    my (@socks, @ports);
    while (@ports < $n) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => 0, Proto => 'tcp', Listen => 1, ReuseAddr => 1)
            or croak "bind: $!";
        push @socks, $s;
        push @ports, $s->sockport;
    }
    close $_ for @socks;
    return @ports;
}

# ---- configuration ---------------------------------------------------------

sub test_globals {
    my ($self) = @_;
    my $p = $self->{prefix};
    my $g = "load_module $MODULE;\n"
        . "pid $p/nginx.pid;\n"
        . "error_log $p/error.log info;\n";

    # As root the master would drop workers to nobody, who can neither enter
    # the 0700 temp dir of the test run nor write LMDB's lock.mdb that
    # storefrontctl (run here as root) creates.  Running the workers as root
    # keeps the tests about the module, not about file ownership; the
    # README explains the ownership a real deployment needs.
    $g .= "user root;\n" if $> == 0;
    return $g;
}

sub test_globals_http {
    my ($self) = @_;
    my $p = $self->{prefix};
    return join '', map { "$_\n" }
        "access_log $p/access.log;",
        "client_body_temp_path $p/client_body_temp;",
        "proxy_temp_path $p/proxy_temp;",
        "fastcgi_temp_path $p/fastcgi_temp;",
        "uwsgi_temp_path $p/uwsgi_temp;",
        "scgi_temp_path $p/scgi_temp;";
}

sub subst {
    my ($self, $text) = @_;
    $text =~ s/%%TEST_GLOBALS%%/$self->test_globals/ge;
    $text =~ s/%%TEST_GLOBALS_HTTP%%/$self->test_globals_http/ge;
    $text =~ s/%%PORT(\d?)%%/$self->port($1 || 1)/ge;
    $text =~ s/%%DB%%/$self->db_dir/ge;
    $text =~ s/%%MODULE%%/$MODULE/g;
    $text =~ s/%%PREFIX%%/$self->{prefix}/g;
    return $text;
}

sub write_config {
    my ($self, $text, $name) = @_;
    $name //= 'nginx.conf';
    $self->{templates}{$name} = $text;
    $self->write_file($name, $self->subst($text));
    return $self;
}

# Another process took one of our ports between the probe and nginx's
# bind: take new ports and write the configs again.
sub _new_ports {
    my ($self) = @_;
    $self->{ports} = [ free_ports(3) ];
    for my $name (keys %{ $self->{templates} // {} }) {
        $self->write_file($name, $self->subst($self->{templates}{$name}));
    }
}

sub write_file {
    my ($self, $name, $content) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{prefix}/$name";
    open my $fh, '>:raw', $path or croak "$path: $!";
    print $fh $content;
    close $fh or croak "$path: $!";
    return $path;
}

sub read_file {
    my ($self, $name) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{prefix}/$name";
    open my $fh, '<:raw', $path or return undef;
    local $/;
    return scalar <$fh>;
}

# The echo upstream: a second server that answers with the storefront
# headers it received, one "name=value" line each.  $hp is the header
# prefix as an nginx variable fragment (x_storefront_).
sub echo_server {
    my ($self, %opt) = @_;
    my $hp = $opt{var_prefix} // 'x_storefront_';
    my $port = $opt{port} // '%%PORT2%%';
    return <<"EOF";
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type text/plain;
            return 200 "uid=\$http_${hp}user_id
minted=\$http_${hp}id_minted
variants=\$http_${hp}variants
status=\$http_${hp}status
spoof=\$http_${hp}spoof
injected=\$http_x_injected
cookie=\$http_cookie
uri=\$request_uri
";
        }
    }
EOF
}

# A front server with storefront on, proxying to the echo server and
# reporting the storefront variables in X-T-* response headers.
#   workers => N, http => '...', server => '...', location => '...',
#   user_id => '$http_x_user_id' (undef: no storefront_user_id),
#   listen => 'extra listen params', db => 'path' (default %%DB%%)
sub std_config {
    my ($self, %opt) = @_;
    my $workers = $opt{workers} // 1;
    my $db = $opt{db} // '%%DB%%';
    my $http = $opt{http} // '';
    my $server = $opt{server} // '';
    my $location = $opt{location} // '';
    my $listen = $opt{listen} // '';
    my $uid = exists $opt{user_id} ? $opt{user_id} : '$http_x_user_id';
    my $uid_line = defined $uid ? "storefront_user_id $uid;" : '';
    my $echo = $self->echo_server(%opt);
    return <<"EOF";
%%TEST_GLOBALS%%
worker_processes $workers;
events { worker_connections 1024; }
http {
    %%TEST_GLOBALS_HTTP%%
    large_client_header_buffers 4 32k;
    storefront_db $db;
    $http

    server {
        listen 127.0.0.1:%%PORT%% $listen;
        server_name localhost;
        storefront on;
        $uid_line
        $server

        location / {
            proxy_pass http://127.0.0.1:%%PORT2%%;
            add_header X-T-User \$storefront_user_id;
            add_header X-T-Variants \$storefront_variants;
            add_header X-T-Status \$storefront_status;
            add_header X-T-Minted \$storefront_id_minted;
            add_header X-T-Cache-Key \$storefront_cache_key;
            add_header X-T-Worker \$pid;
            $location
        }
    }

$echo
}
EOF
}

# ---- running nginx ---------------------------------------------------------

sub run {
    my ($self, %opt) = @_;
    for my $attempt (1 .. 3) {
        my $offset = -s $self->error_log_path // 0;
        my $ok = eval { $self->_run(%opt); 1 };
        return $self if $ok;
        my $e = $@;
        my $log = substr($self->read_file('error.log') // '', $offset);
        die $e unless $log =~ /Address already in use/
            && $self->{templates} && $attempt < 3;
        diag("port taken, retrying with other ports");
        $self->allow_log(qr/bind\(\) to \S+ failed \(98: Address already/,
            qr/still could not bind\(\)/);
        $self->_new_ports;
    }
}

sub _run {
    my ($self, %opt) = @_;
    my $p = $self->{prefix};
    croak "nginx already running" if $self->{pid};
    unlink "$p/nginx.pid";
    my $log_offset = -s $self->error_log_path // 0;

    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$p/stderr.log";
        open STDERR, '>&', \*STDOUT;
        no warnings 'exec';
        exec $NGINX, '-p', "$p/", '-c', "$p/nginx.conf", '-e',
            "$p/error.log", '-g', 'daemon off;';
        POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    push @LIVE, $self;

    my $deadline = time + ($opt{timeout} // 15);
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            my $status = $?;
            delete $self->{pid};
            @LIVE = grep { $_ != $self } @LIVE;
            croak sprintf("nginx exited at start (status %d):\n%s", $status,
                $self->log_tail);
        }
        my $pidtext = $self->read_file('nginx.pid') // '';
        if ($pidtext =~ /^(\d+)/ && $1 == $pid && $self->_can_connect) {
            $self->_wait_workers($opt{workers}, $log_offset);
            return $self;
        }
        sleep 0.02;
    }
    $self->_kill_hard;
    croak "nginx did not start in time:\n" . $self->log_tail;
}

sub _can_connect {
    my ($self) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $self->port, Proto => 'tcp', Timeout => 1);
    return $s ? 1 : 0;
}

# Waits until the error log shows n "start worker process" lines after the
# given offset (nginx logs them at notice level).
sub _wait_workers {
    my ($self, $n, $offset) = @_;
    return unless $n;
    my $deadline = time + 10;
    while (time < $deadline) {
        my $log = substr($self->read_file('error.log') // '', $offset // 0);
        my $started = () = $log =~ /start worker process/g;
        return 1 if $started >= $n;
        sleep 0.05;
    }
    return 0;
}

sub pid { $_[0]{pid} }

# HUP: re-reads nginx.conf.  Returns true once new workers run and the old
# ones were told to quit; false when the master refused the new config.
sub reload {
    my ($self, %opt) = @_;
    croak "nginx not running" unless $self->{pid};
    my $offset = -s $self->error_log_path // 0;
    kill 'HUP', $self->{pid};
    my $deadline = time + 10;
    while (time < $deadline) {
        my $log = substr($self->read_file('error.log') // '', $offset);
        return 0 if $log =~ /\[emerg\]/;
        if ($log =~ /start worker process/) {
            $self->_wait_workers($opt{workers} // 1, $offset);
            # old workers close their listen sockets on QUIT just after
            sleep 0.3;
            return 1;
        }
        sleep 0.05;
    }
    return 0;
}

sub restart {
    my ($self, %opt) = @_;
    $self->stop(no_check => 1);
    return $self->run(%opt);
}

sub _wait_exit {
    my ($self, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        return 1 if waitpid($self->{pid}, WNOHANG) == $self->{pid};
        sleep 0.02;
    }
    return 0;
}

sub _kill_hard {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'KILL', $self->{pid};
    waitpid($self->{pid}, 0);
    delete $self->{pid};
}

# QUIT (graceful), then TERM, then KILL.  Unless no_check, asserts that the
# error log has no [alert], [crit] or [emerg] line (see allow_log).
sub stop {
    my ($self, %opt) = @_;
    if ($self->{pid}) {
        kill 'QUIT', $self->{pid};
        unless ($self->_wait_exit(10)) {
            kill 'TERM', $self->{pid};
            unless ($self->_wait_exit(5)) {
                diag("nginx did not stop on QUIT/TERM, killing");
                $self->_kill_hard;
            }
        }
        delete $self->{pid};
        @LIVE = grep { $_ != $self } @LIVE;
    }
    diag($self->log_tail(200)) if $ENV{STOREFRONT_TEST_VERBOSE};
    $self->check_log unless $opt{no_check};
    return $self;
}

# Lines matching one of these regexps do not fail check_log.
sub allow_log {
    my ($self, @re) = @_;
    push @{ $self->{allow} }, @re;
    return $self;
}

sub bad_log_lines {
    my ($self) = @_;
    my @bad;
    for my $f ('error.log', 'stderr.log') {
        my $text = $self->read_file($f) // next;
        for my $line (split /\n/, $text) {
            # a sanitizer's report (scripts/test_asan.sh) is as bad
            next unless $line =~ /\[(?:alert|crit|emerg)\]
                                  |runtime\ error:|AddressSanitizer/x;
            next if grep { $line =~ $_ } @{ $self->{allow} };
            push @bad, $line;
        }
    }
    return @bad;
}

sub check_log {
    my ($self) = @_;
    my @bad = $self->bad_log_lines;
    ok(!@bad, 'no alert, crit, emerg or sanitizer report in the error log')
        or diag(join "\n", @bad[0 .. ($#bad < 19 ? $#bad : 19)]);
}

# What a crashed worker left in the error log (a signal, a sanitizer's
# report), to say why a request got no response.
sub crash_lines {
    my ($self) = @_;
    my $text = $self->read_file('error.log') // return '';
    my @l = grep {
        /exited on signal|AddressSanitizer|runtime error:|SUMMARY|^\s+#\d+ 0x/
    } split /\n/, $text;
    @l = @l[0 .. 29] if @l > 30;
    return @l ? "\n" . join("\n", @l) : '';
}

sub log_tail {
    my ($self, $lines) = @_;
    $lines //= 40;
    my $text = '';
    for my $f ('stderr.log', 'error.log') {
        my $c = $self->read_file($f) // next;
        my @l = split /\n/, $c;
        @l = @l[-$lines .. -1] if @l > $lines;
        $text .= "--- $f\n" . join("\n", @l) . "\n";
    }
    return $text;
}

# Error log lines (after an optional byte offset) matching a regexp.
sub log_lines {
    my ($self, $re, $offset) = @_;
    my $text = substr($self->read_file('error.log') // '', $offset // 0);
    return grep { $_ =~ $re } split /\n/, $text;
}

END {
    for my $t (@LIVE) {
        next unless $t->{pid};
        kill 'TERM', $t->{pid};
        $t->_wait_exit(5) or $t->_kill_hard;
        delete $t->{pid};
    }
}

# ---- commands --------------------------------------------------------------

# libfaketime, to move nginx's clock (Debian package faketime, installed
# when missing and root may): its path, or undef with the reason in $why.
sub faketime_lib {
    my @glob = ('/usr/lib/*/faketime/libfaketime.so.1',
        '/usr/lib64/faketime/libfaketime.so.1',
        '/usr/lib/faketime/libfaketime.so.1',
        '/usr/local/lib/faketime/libfaketime.so.1');
    $why = 'STOREFRONT_NO_FAKETIME is set';
    return undef if $ENV{STOREFRONT_NO_FAKETIME};

    my ($lib) = grep { -f } map { glob } @glob;
    return $lib if $lib;

    $why = 'libfaketime is not installed (Debian package faketime)';
    return undef if $> != 0 || !-x '/usr/bin/apt-get';

    Test::More::diag('installing the faketime package');
    local $ENV{DEBIAN_FRONTEND} = 'noninteractive';
    my ($code) = run_cmd('/usr/bin/apt-get', 'install', '-y', '-qq',
        '--no-install-recommends', 'faketime');
    if ($code != 0) {
        run_cmd('/usr/bin/apt-get', 'update', '-qq');
        run_cmd('/usr/bin/apt-get', 'install', '-y', '-qq',
            '--no-install-recommends', 'faketime');
    }
    ($lib) = grep { -f } map { glob } @glob;
    $why = 'libfaketime is not installed and cannot be installed';
    return $lib;
}

# Runs a command without a shell; returns (exit code, stdout, stderr).
# stdin is the given string or /dev/null.
sub run_cmd {
    my (@cmd) = @_;
    my $stdin;
    $stdin = ${ shift @cmd } if ref $cmd[0] eq 'SCALAR';
    my $dir = tempdir('sft-cmd-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        if (defined $stdin) {
            open my $in, '>:raw', "$dir/in" or POSIX::_exit(126);
            print $in $stdin;
            close $in;
            open STDIN, '<', "$dir/in";
        } else {
            open STDIN, '<', '/dev/null';
        }
        open STDOUT, '>', "$dir/out";
        open STDERR, '>', "$dir/err";
        no warnings 'exec';
        exec { $cmd[0] } @cmd;
        POSIX::_exit(127);
    }
    waitpid($pid, 0);
    my $code = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    my ($out, $err) = map {
        open my $fh, '<:raw', "$dir/$_" or croak "$dir/$_: $!";
        local $/;
        my $c = <$fh>;
        $c // '';
    } qw(out err);
    return ($code, $out, $err);
}

# nginx -t on nginx.conf (or on the given config text, written to a file of
# its own).  Returns (exit code, stderr+stdout text).
sub nginx_t {
    my ($self, $text) = @_;
    my $conf = "$self->{prefix}/nginx.conf";
    if (defined $text) {
        $self->{n}++;
        $conf = $self->write_file("test-$self->{n}.conf", $self->subst($text));
    }
    my ($code, $out, $err) = run_cmd($NGINX, '-t', '-p', "$self->{prefix}/",
        '-c', $conf, '-e', "$self->{prefix}/nginx-t.log");
    return ($code, $err . $out);
}

# storefrontctl --db <db_dir> ARGS...; returns (exit code, stdout, stderr).
sub ctl {
    my ($self, @args) = @_;
    my $db = $self->db_dir;
    if (@args && $args[0] eq '--db') {
        (undef, $db) = splice @args, 0, 2;
    }
    return run_cmd($CTL, '--db', $db, @args);
}

# Writes data (a Perl structure, encoded as JSON, or a string taken as it
# is) to a file and imports it.  Returns (exit code, stdout, stderr).
sub import_data {
    my ($self, $data, @args) = @_;
    $self->{n}++;
    my $file = $self->write_file("import-$self->{n}.json",
        ref $data ? json_encode($data) : $data);
    return $self->ctl('import', $file, @args);
}

# Imports and fails the test run at once when that does not work: tests
# about nginx need their data.
sub must_import {
    my ($self, $data, @args) = @_;
    my ($code, $out, $err) = $self->import_data($data, @args);
    croak "storefrontctl import failed ($code): $err$out" if $code != 0;
    return $self;
}

# ---- HTTP ------------------------------------------------------------------

# One request on a fresh connection (HTTP/1.0 style, read until close).
#   get($uri, headers => [name => value, ...], jar => \%cookies,
#       port => N, host => 'localhost')
# Returns a Storefront::Test::Response.
sub get {
    my ($self, $uri, %opt) = @_;
    my $c = Storefront::Test::Client->new($opt{port} // $self->port);
    my $r = $c->request($uri, %opt, close => 1);
    $c->close;
    return $r;
}

# A keep-alive client for many requests (reconnects when nginx closes).
sub client {
    my ($self, %opt) = @_;
    return Storefront::Test::Client->new($opt{port} // $self->port);
}

# Sends raw bytes on a fresh connection and returns the raw response.
sub http_raw {
    my ($self, $request, %opt) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $opt{port} // $self->port, Proto => 'tcp', Timeout => 5)
        or croak "connect: $!";
    binmode $s;
    $s->syswrite($request);
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $deadline = time + ($opt{timeout} // 10);
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = $s->sysread($buf, 65536, length $buf);
        last unless $n;
    }
    close $s;
    return $buf;
}

sub http_parse { Storefront::Test::Response->parse($_[1]) }

# ---- helpers: JSON, cookies, variants --------------------------------------

my $JSON = JSON::PP->new->canonical(1);

sub json_encode { $JSON->encode($_[0]) }
sub json_decode { JSON::PP->new->decode($_[0]) }

# "k1=v1;k2=v2" (the Variants header) -> { k1 => 'v1', k2 => 'v2' }
sub parse_variants {
    my ($s) = @_;
    my %v;
    for my $pair (split /;\s*/, $s // '') {
        next unless length $pair;
        my ($k, $val) = split /=/, $pair, 2;
        $v{$k} = $val;
    }
    return \%v;
}

# "name=value; Path=/; HttpOnly" -> { name, value, attrs => { lc name => v } }
sub parse_set_cookie {
    my ($s) = @_;
    my ($nv, @attrs) = split /;\s*/, $s;
    my ($name, $value) = split /=/, $nv, 2;
    my %a;
    for (@attrs) {
        my ($k, $v) = split /=/, $_, 2;
        $a{ lc $k } = $v // 1;
    }
    return { name => $name, value => $value, attrs => \%a };
}

# ---- GrowthBook reference (the oracle the module is checked against) -----

# FNV-1a 32 over the UTF-16 code units of a UTF-8 byte string.
sub gb_fnv1a32 {
    my ($bytes) = @_;
    my $chars = Encode::decode('UTF-8', $bytes, Encode::FB_DEFAULT);
    my $h = 0x811c9dc5;
    for my $cu (unpack 'v*', Encode::encode('UTF-16LE', $chars)) {
        $h ^= $cu;
        $h = ($h * 0x01000193) & 0xffffffff;
    }
    return $h;
}

sub gb_hash {
    my ($seed, $value, $version) = @_;
    $version //= 1;
    return (gb_fnv1a32($value . $seed) % 1000) / 1000 if $version == 1;
    return (gb_fnv1a32(gb_fnv1a32($seed . $value) . '') % 10000) / 10000
        if $version == 2;
    return undef;
}

sub gb_equal_weights {
    my ($n) = @_;
    return [] if $n <= 0;
    return [ map { 1 / $n } 1 .. $n ];
}

sub gb_bucket_ranges {
    my ($n, $coverage, $weights) = @_;
    $coverage //= 1;
    $coverage = 0 if $coverage < 0;
    $coverage = 1 if $coverage > 1;
    my $equal = gb_equal_weights($n);
    my $w = $weights // $equal;
    $w = $equal if @$w != $n;
    my $total = 0;
    $total += $_ for @$w;
    $w = $equal if $total < 0.99 || $total > 1.01;
    my $c = 0;
    my @r;
    for my $x (@$w) {
        my $start = $c;
        $c += $x;
        push @r, [ $start, $start + $coverage * $x ];
    }
    return \@r;
}

sub gb_choose_variation {
    my ($n, $ranges) = @_;
    for my $i (0 .. $#$ranges) {
        return $i if $n >= $ranges->[$i][0] && $n < $ranges->[$i][1];
    }
    return -1;
}

sub gb_in_namespace {
    my ($id, $ns) = @_;
    my $n = gb_hash('__' . $ns->[0], $id, 1);
    return $n >= $ns->[1] && $n < $ns->[2] ? 1 : 0;
}

# The variation index GrowthBook assigns to the user id (the experiment's
# hash attribute value) for a plain experiment (no condition, force or
# override), or -1 when the user is not in it.
sub gb_assign {
    my ($exp, $id) = @_;
    return -1 unless defined $id && length $id;
    return -1 if exists $exp->{active} && !$exp->{active};
    my $nv = @{ $exp->{variations} };
    return -1 if $nv < 2;
    return -1 if $exp->{namespace} && !gb_in_namespace($id, $exp->{namespace});
    my $n = gb_hash($exp->{seed} // $exp->{key}, $id, $exp->{hashVersion} // 1);
    return -1 unless defined $n;
    return gb_choose_variation($n,
        gb_bucket_ranges($nv, $exp->{coverage} // 1, $exp->{weights}));
}

# Pearson's chi-square statistic of observed counts against expected
# proportions.
sub chi_square {
    my ($observed, $weights) = @_;
    my $total = 0;
    $total += $_ for @$observed;
    my $x2 = 0;
    for my $i (0 .. $#$observed) {
        my $e = $total * $weights->[$i];
        $x2 += ($observed->[$i] - $e)**2 / $e;
    }
    return $x2;
}


package Storefront::Test::Client;

# A keep-alive HTTP/1.1 client on one loopback connection.

use strict;
use warnings;
use Carp qw(croak);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);

sub new {
    my ($class, $port) = @_;
    return bless { port => $port, sock => undef, buf => '' }, $class;
}

sub _connect {
    my ($self) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $self->{port}, Proto => 'tcp', Timeout => 5)
        or croak "connect to 127.0.0.1:$self->{port}: $!";
    binmode $s;
    $self->{sock} = $s;
    $self->{buf} = '';
}

sub close {
    my ($self) = @_;
    close $self->{sock} if $self->{sock};
    $self->{sock} = undef;
}

# Reads more bytes into buf; false at EOF or timeout.
sub _fill {
    my ($self, $deadline) = @_;
    my $sel = IO::Select->new($self->{sock});
    my $left = $deadline - time;
    return 0 if $left <= 0 || !$sel->can_read($left);
    my $n = $self->{sock}->sysread($self->{buf}, 65536, length $self->{buf});
    return $n ? 1 : 0;
}

# request($uri, method => 'GET', headers => [...], jar => \%cookies,
#         host => 'localhost', close => 0, body => '')
sub request {
    my ($self, $uri, %opt) = @_;
    my $method = $opt{method} // 'GET';
    my @h = ref $opt{headers} eq 'HASH' ? %{ $opt{headers} }
        : @{ $opt{headers} // [] };
    my $req = "$method $uri HTTP/1.1\r\nHost: " . ($opt{host} // 'localhost')
        . "\r\n";
    while (my ($k, $v) = splice @h, 0, 2) {
        $req .= "$k: $v\r\n";
    }
    if ($opt{jar} && %{ $opt{jar} }) {
        $req .= 'Cookie: ' . join('; ',
            map { "$_=$opt{jar}{$_}" } sort keys %{ $opt{jar} }) . "\r\n";
    }
    $req .= "Connection: close\r\n" if $opt{close};
    if (defined $opt{body}) {
        $req .= 'Content-Length: ' . length($opt{body}) . "\r\n";
    }
    $req .= "\r\n" . ($opt{body} // '');

    for my $attempt (1, 2) {
        $self->_connect unless $self->{sock};
        my $ok = $self->{sock}->syswrite($req);
        my $r = $ok ? $self->_read_response($method) : undef;
        if ($r) {
            if ($opt{jar}) {
                for my $sc ($r->headers('set-cookie')) {
                    my $c = Storefront::Test::parse_set_cookie($sc);
                    $opt{jar}{ $c->{name} } = $c->{value};
                }
            }
            $self->close
                if ($r->header('connection') // '') =~ /close/i
                || $opt{close};
            return $r;
        }
        # the server closed a kept-alive connection: retry once
        $self->close;
        croak "no response for $uri"
            . ($Storefront::Test::current
               ? $Storefront::Test::current->crash_lines : '')
            if $attempt == 2;
    }
}

sub _read_response {
    my ($self, $method) = @_;
    my $deadline = time + 15;
    my $end;
    until (($end = index $self->{buf}, "\r\n\r\n") >= 0) {
        return undef unless $self->_fill($deadline);
    }
    my $head = substr($self->{buf}, 0, $end + 4, '');
    my $r = Storefront::Test::Response->parse($head);
    return undef unless $r;

    my $body = '';
    my $te = $r->header('transfer-encoding') // '';
    my $cl = $r->header('content-length');
    if ($method eq 'HEAD' || $r->status == 204 || $r->status == 304) {
        # no body
    } elsif ($te =~ /chunked/i) {
        while (1) {
            my $i;
            until (($i = index $self->{buf}, "\r\n") >= 0) {
                return undef unless $self->_fill($deadline);
            }
            my $line = substr($self->{buf}, 0, $i + 2, '');
            my ($hex) = $line =~ /^([0-9a-fA-F]+)/;
            return undef unless defined $hex;
            my $size = hex $hex;
            while (length $self->{buf} < $size + 2) {
                return undef unless $self->_fill($deadline);
            }
            $body .= substr($self->{buf}, 0, $size, '');
            substr($self->{buf}, 0, 2, '');
            last if $size == 0;
        }
    } elsif (defined $cl) {
        while (length $self->{buf} < $cl) {
            return undef unless $self->_fill($deadline);
        }
        $body = substr($self->{buf}, 0, $cl, '');
    } else {
        1 while $self->_fill($deadline);
        $body = $self->{buf};
        $self->{buf} = '';
        $self->close;
    }
    $r->{body} = $body;
    $r->{raw} = $head . $body;
    return $r;
}


package Storefront::Test::Response;

use strict;
use warnings;

sub parse {
    my ($class, $raw) = @_;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return undef unless defined $head
        && $head =~ m{^HTTP/\d\.\d (\d{3})[^\r\n]*};
    my $self = bless { status => $1, headers => {}, order => [],
        body => $body // '', raw => $raw }, $class;
    my @lines = split /\r\n/, $head;
    shift @lines;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        push @{ $self->{headers}{ lc $k } }, $v;
        push @{ $self->{order} }, [ $k, $v ];
    }
    return $self;
}

sub status { $_[0]{status} }
sub body   { $_[0]{body} }
sub raw    { $_[0]{raw} }

# First value of a header (case-insensitive name), or undef.
sub header {
    my ($self, $name) = @_;
    my $v = $self->{headers}{ lc $name };
    return $v ? $v->[0] : undef;
}

# All values of a header.
sub headers {
    my ($self, $name) = @_;
    return @{ $self->{headers}{ lc $name } // [] };
}

# The echo server's body as a hash: uid, minted, variants, status, ...
sub echo {
    my ($self) = @_;
    my %e;
    for (split /\n/, $self->{body}) {
        my ($k, $v) = split /=/, $_, 2;
        $e{$k} = $v if defined $k;
    }
    return %e;
}

# The echoed Variants header parsed into { key => variation key }.
sub variants {
    my ($self) = @_;
    my %e = $self->echo;
    return Storefront::Test::parse_variants($e{variants});
}

1;
