#!/usr/bin/env bash
# Builds the Debian package and installs it on this machine for real, as
# root: checks what it put where (owners, modes, user, man page,
# completions, conffiles), that the installed config passes `txtfailover
# check` as root and as the service user, and that the installed unit passes
# `systemd-analyze verify`; reinstalls it, then removes and purges it and
# checks what is kept and what is gone. Works without a running systemd.
#
# It leaves the package purged (also when a check fails). The txtfailover
# system user stays, as Debian packages leave theirs. Run from .ci/run.
# Usage: scripts/deb-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
step() { echo "deb-test: $*"; }
fail() {
  echo "deb-test: FAILED: $*" >&2
  exit 1
}

[[ $(id -u) == 0 ]] || fail "must run as root: it installs and purges the txtfailover package"

installed() { dpkg-query -W -f='${db:Status-Status}' txtfailover 2>/dev/null || true; }
if [[ -n $(installed) && $(installed) != not-installed ]]; then
  # A real installation on a developer's machine is not ours to purge.
  [[ ${CI:-} == true ]] || fail "txtfailover is installed here ($(installed)); purge it first (dpkg -P txtfailover)"
  step "a previous run left txtfailover $(installed): purging it"
  dpkg -P txtfailover
fi

# Tools: cargo-deb, dpkg-shlibdeps (for the Depends line), man; and the
# package's own dependencies, which dpkg -i does not fetch.
if ! cargo deb --version >/dev/null 2>&1; then
  step "installing cargo-deb"
  cargo install cargo-deb --locked --quiet --version '^3.8'
fi
need=()
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v man >/dev/null || need+=(man-db)
for p in adduser ca-certificates; do
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || need+=("$p")
done
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

work=$(mktemp -d)
chmod 0755 "$work"
cleanup() {
  if [[ -n $(installed) && $(installed) != not-installed ]]; then
    echo "deb-test: purging the package after a failure" >&2
    dpkg -P txtfailover >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# owner:group mode of a path, e.g. "txtfailover:txtfailover 600".
stat_is() {
  local path=$1 want=$2 got
  [[ -e $path ]] || fail "$path is missing"
  got=$(stat -c '%U:%G %a' "$path")
  [[ $got == "$want" ]] || fail "$path is $got, expected $want"
}
present() { for p in "$@"; do [[ -e $p ]] || fail "$p is missing"; done; }
absent() { for p in "$@"; do [[ ! -e $p ]] || fail "$p is still there"; done; }

step "building the package"
t=$(date +%s)
deb=$(scripts/package-deb.sh | tail -n 1)
build_s=$(($(date +%s) - t))
[[ -f $deb ]] || fail "scripts/package-deb.sh printed no .deb path"
size=$(stat -c %s "$deb")
step "built $deb ($((size / 1024)) KiB) in ${build_s}s"
dpkg-deb --info "$deb" | sed -n 's/^ *\(Depends\|Installed-Size\):/  &/p'

# Where the unit goes depends on cargo-deb's version (/lib or /usr/lib).
unit_in_deb=$(dpkg-deb --contents "$deb" | grep -o '[^ ]*/systemd/system/txtfailover.service$' || true)
[[ -n $unit_in_deb ]] || fail "the package holds no txtfailover.service"
unit=${unit_in_deb#.}

etc=/etc/txtfailover
config=$etc/txtfailover.toml
man_page=/usr/share/man/man1/txtfailover.1.gz
bash_c=/usr/share/bash-completion/completions/txtfailover
zsh_c=/usr/share/zsh/vendor-completions/_txtfailover
fish_c=/usr/share/fish/vendor_completions.d/txtfailover.fish

step "installing"
dpkg -i "$deb"
[[ $(installed) == installed ]] || fail "dpkg says $(installed) after dpkg -i"

step "checking the installed files"
stat_is /usr/bin/txtfailover "root:root 755"
want_version="txtfailover $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
[[ $(/usr/bin/txtfailover --version) == "$want_version" ]] || fail "/usr/bin/txtfailover --version is not $want_version"
getent passwd txtfailover >/dev/null || fail "no txtfailover user"
getent group txtfailover >/dev/null || fail "no txtfailover group"
uid=$(id -u txtfailover)
((uid < 1000)) || fail "txtfailover is not a system user (uid $uid)"
shell=$(getent passwd txtfailover | cut -d: -f7)
[[ $shell == */nologin || $shell == /bin/false ]] || fail "txtfailover has a login shell ($shell)"
stat_is /var/lib/txtfailover "txtfailover:txtfailover 750"
stat_is $config "root:root 644"
stat_is $etc/zones/example.com.zone "root:root 644"
stat_is $etc/tokens "txtfailover:txtfailover 600"
stat_is "$unit" "root:root 644"
for f in $config $etc/zones/example.com.zone $etc/tokens; do
  dpkg-query -W -f='${Conffiles}\n' txtfailover | grep -q " $f " || fail "$f is not a conffile"
done
# Not enabled: the config is a sample (README: "Install from the Debian package").
absent /etc/systemd/system/multi-user.target.wants/txtfailover.service
stat_is $man_page "root:root 644"
zcat $man_page | grep -q '^\.TH txtfailover 1' || fail "$man_page is not the txtfailover(1) page"
man -aw txtfailover | grep -qx "$man_page" || fail "man -aw txtfailover does not list $man_page"
MANWIDTH=200 man -l $man_page 2>/dev/null | grep -q '^ *txtfailover *- *Authoritative DNS failover' ||
  fail "man -l $man_page does not render the NAME section"
stat_is $bash_c "root:root 644"
stat_is $zsh_c "root:root 644"
stat_is $fish_c "root:root 644"
grep -q 'complete -F _txtfailover' $bash_c || fail "$bash_c is not a bash completion"
head -n 1 $zsh_c | grep -q '^#compdef txtfailover' || fail "$zsh_c is not a zsh completion"
grep -q '^complete -c txtfailover' $fish_c || fail "$fish_c is not a fish completion"
if command -v bash >/dev/null; then
  bash -c "source $bash_c && complete -p txtfailover" >/dev/null || fail "bash cannot load $bash_c"
fi

step "txtfailover check, as root and as txtfailover"
out=$(txtfailover check --config $config 2>&1) || fail "check as root: $out"
echo "$out" | sed 's/^/  /'
runuser -u txtfailover -- txtfailover check --config $config >/dev/null 2>&1 ||
  fail "txtfailover check as the txtfailover user failed: $(runuser -u txtfailover -- txtfailover check --config $config 2>&1)"
runuser -u txtfailover -- test -w /var/lib/txtfailover || fail "the txtfailover user cannot write /var/lib/txtfailover"
# A token, as the shipped comments say to add one: the service user reads
# the 0600 file, another user does not.
txtfailover token new ci >>$etc/tokens
sed -e 's|^# \[admin\]$|[admin]|' -e 's|^# token_file = |token_file = |' $config >"$work/with-token.toml"
grep -q '^token_file = "/etc/txtfailover/tokens"' "$work/with-token.toml" || fail "the shipped config has no token_file line to uncomment"
chmod 0644 "$work/with-token.toml"
runuser -u txtfailover -- txtfailover check --config "$work/with-token.toml" >/dev/null 2>&1 ||
  fail "with token_file, check as txtfailover failed: $(runuser -u txtfailover -- txtfailover check --config "$work/with-token.toml" 2>&1)"
if runuser -u nobody -- txtfailover check --config "$work/with-token.toml" >/dev/null 2>&1; then
  fail "the user nobody could read $etc/tokens"
fi

step "systemd-analyze verify $unit"
# Without --man=no: Documentation=man:txtfailover(1) must resolve too.
said=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $said"
[[ -z $said ]] || fail "systemd-analyze verify said: $said"

step "reinstalling over itself"
dpkg -i "$deb" >/dev/null
[[ $(installed) == installed ]] || fail "dpkg says $(installed) after reinstalling"
stat_is $etc/tokens "txtfailover:txtfailover 600"
grep -q '^ci ' $etc/tokens || fail "reinstalling lost the token added to $etc/tokens"

step "dpkg -r: configuration and state are kept"
dpkg -r txtfailover
[[ $(installed) == config-files ]] || fail "dpkg says $(installed) after dpkg -r"
absent /usr/bin/txtfailover "$unit" $man_page $bash_c $zsh_c $fish_c
present $config $etc/zones/example.com.zone /var/lib/txtfailover
grep -q '^ci ' $etc/tokens || fail "dpkg -r lost $etc/tokens"
getent passwd txtfailover >/dev/null || fail "dpkg -r removed the txtfailover user"

step "dpkg -P: configuration and state are gone, the user stays"
dpkg -P txtfailover
[[ $(installed) == not-installed || -z $(installed) ]] || fail "dpkg says $(installed) after dpkg -P"
absent $etc /var/lib/txtfailover /etc/systemd/system/txtfailover.service
getent passwd txtfailover >/dev/null || fail "the txtfailover user should stay after purge"

step "installing again with the user already there, then purging"
dpkg -i "$deb" >/dev/null
stat_is $etc/tokens "txtfailover:txtfailover 600"
stat_is /var/lib/txtfailover "txtfailover:txtfailover 750"
[[ $(id -u txtfailover) == "$uid" ]] || fail "the txtfailover user's uid changed"
dpkg -P txtfailover >/dev/null
absent $etc /var/lib/txtfailover /usr/bin/txtfailover

step "OK: package ${size} bytes, built in ${build_s}s; whole test $(($(date +%s) - started))s"
