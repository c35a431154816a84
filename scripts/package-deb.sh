#!/usr/bin/env bash
# Builds the Debian package: the release binary, then the files it generates
# (man page, shell completions) and the /etc config derived from the repo's
# config/txtfailover.toml, all into target/assets/, then `cargo deb`.
# Prints the .deb's path as the last line of its output.
#
# Needs cargo-deb (`cargo install cargo-deb --locked`) and dpkg-dev.
# Usage: scripts/package-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "package-deb: $*" >&2
  exit 1
}

cargo deb --version >/dev/null 2>&1 || die "cargo-deb is missing: cargo install cargo-deb --locked"

cargo build --release --locked
bin=target/release/txtfailover
assets=target/assets
rm -rf "$assets"
mkdir -p "$assets/completions"

# -n: no name or time stamp in the gzip header, so the same page gives the
# same bytes.
"$bin" man | gzip -9n >"$assets/txtfailover.1.gz"
"$bin" completions bash >"$assets/completions/txtfailover"
"$bin" completions zsh >"$assets/completions/_txtfailover"
"$bin" completions fish >"$assets/completions/txtfailover.fish"

# The installed config is the repo's, with its paths made absolute for
# /etc/txtfailover and /var/lib/txtfailover, and DNS on port 53 (loopback
# still): one source, so the package cannot drift from what the tests check.
src=config/txtfailover.toml
out=$assets/txtfailover.toml
{
  echo "# Installed by the txtfailover Debian package from the repository's"
  echo "# $src: edit it here; dpkg keeps your changes on upgrade."
  echo "# The aliases and checks below are examples: replace them before"
  echo "# 'systemctl enable --now txtfailover'; 'txtfailover check' validates."
  echo "#"
  sed -e 's|"127\.0\.0\.1:5353"|"127.0.0.1:53"|' \
    -e 's|"\.\./state"|"/var/lib/txtfailover"|' \
    -e 's|"\.\./zones/|"/etc/txtfailover/zones/|' \
    -e 's|"\.\./keys/|"/etc/txtfailover/keys/|' \
    "$src"
  cat <<'EOF'

# Admin API (README.md, "Admin API"): read-only on 127.0.0.1:8053 unless
# [admin] says otherwise. Changes (overrides, reload, external checks) need
# a token:  txtfailover token new alice >> /etc/txtfailover/tokens
# and then:
# [admin]
# token_file = "/etc/txtfailover/tokens"
EOF
} >"$out"
# Each rewrite must have matched: a changed repo config fails here rather
# than shipping a relative path or the wrong port.
grep -q '^listen = \["127\.0\.0\.1:53"\]' "$out" || die "$src: the [server] listen line was not rewritten"
grep -q '^state_dir = "/var/lib/txtfailover"' "$out" || die "$src: state_dir was not rewritten"
grep -q '^file = "/etc/txtfailover/zones/' "$out" || die "$src: the zone file path was not rewritten"
if grep -n '"\.\./' "$out"; then die "$src: a relative path is left (above)"; fi

# cargo deb prints the path on stdout, warnings on stderr.
deb=$(cargo deb --no-build --locked --output target/debian | tail -n 1)
[[ $deb == *.deb && -f $deb ]] || die "cargo deb did not report a .deb"
echo "$deb"
