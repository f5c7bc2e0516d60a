#!/usr/bin/env bash
# Release metadata agrees with itself: META.json (PGXN Meta Spec 1.0.0) is
# valid JSON with the spec's required keys, its version is the control file's
# default_version, what it names exists; LICENSE is the PostgreSQL License
# that META.json, debian/copyright and the README name; CHANGELOG.md and
# debian/changelog have an entry for default_version. Perl (JSON::PP is in
# core perl), no server needed. Ends with "meta: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
exec perl -MJSON::PP -e '
use strict; use warnings;
my ($pass, $fail) = (0, 0);
sub check { my ($ok, $what, $why) = @_;
    if ($ok) { $pass++; print "ok - $what\n" }
    else { $fail++; print "not ok - $what", (defined $why ? ": $why" : ""), "\n" } }
sub slurp { my $f = shift; open(my $fh, "<", $f) or return undef; local $/; my $s = <$fh>; return $s }

my $control = slurp("replica_router.control") // "";
my ($default) = $control =~ /^\s*default_version\s*=\s*\x27([^\x27]+)\x27/m;
check(defined $default, "replica_router.control has a default_version");
$default //= "?";
# PGXN versions are semantic (x.y.z); the control file says x.y.
my $semver = $default =~ /^\d+\.\d+$/ ? "$default.0" : $default;

my $text = slurp("META.json");
my $meta = eval { JSON::PP->new->decode($text // "") };
check(ref $meta eq "HASH", "META.json is valid JSON (an object)", $@ || "missing");
$meta = {} unless ref $meta eq "HASH";
for my $k (qw(name abstract version maintainer license provides meta-spec)) {
    check(exists $meta->{$k}, "META.json has $k");
}
check(($meta->{"meta-spec"}{version} // "") eq "1.0.0", "META.json follows Meta Spec 1.0.0");
check(($meta->{name} // "") eq "replica_router", "META.json name is replica_router");
check(scalar(($meta->{version} // "") =~ /^\d+\.\d+\.\d+$/), "META.json version is x.y.z", $meta->{version});
check(($meta->{version} // "") eq $semver, "META.json version $semver = default_version $default", $meta->{version});
my $ext = ref $meta->{provides} eq "HASH" ? $meta->{provides}{replica_router} : undef;
check(ref $ext eq "HASH", "META.json provides replica_router");
$ext = {} unless ref $ext eq "HASH";
check(($ext->{version} // "") eq $semver, "provides.replica_router.version = $semver", $ext->{version});
for my $k (qw(file docfile)) {
    check(defined $ext->{$k} && -f $ext->{$k}, "provides.replica_router.$k exists", $ext->{$k});
}
check(($meta->{license} // "") eq "postgresql", "META.json license is postgresql", $meta->{license});
my $pg = eval { $meta->{prereqs}{runtime}{requires}{PostgreSQL} } // "";
check(scalar($pg =~ /15\.0\.0/), "META.json requires PostgreSQL 15 at runtime", $pg);

my $license = slurp("LICENSE") // "";
check($license =~ /\APostgreSQL License\b/ && $license =~ /Copyright \(c\) 2026, replica_router developers/,
      "LICENSE is the PostgreSQL License of the replica_router developers");
check(scalar((slurp("README.md") // "") =~ /\bLICENSE\b/), "README names LICENSE");
check(scalar((slurp("debian/copyright") // "") =~ /^License: PostgreSQL$/m), "debian/copyright: License: PostgreSQL");

my $changes = slurp("CHANGELOG.md") // "";
check(scalar($changes =~ /^## \Q$default\E\b/m), "CHANGELOG.md has an entry for $default");
my ($deb) = (slurp("debian/changelog") // "") =~ /^\S+ \(([^)]+)\)/;
$deb //= "?";
(my $upstream = $deb) =~ s/-[^-]+$//;
check($upstream eq $default, "debian/changelog version $deb is default_version $default");

printf "meta: %d passed, %d failed\n", $pass, $fail;
exit($fail ? 1 : 0);
'
