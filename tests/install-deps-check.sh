#!/bin/bash
# tests/install-deps.sh against stand-ins for dpkg-query and apt-get (and
# for systemctl, service and invoke-rc.d, which it must never call): which
# packages it asks for with and without --tests, that a running nginx is
# never stopped or disabled, that an nginx it installs itself is not started
# (the install's policy-rc.d denies it, and is removed afterwards, even when
# apt-get fails), and that an operator's own policy-rc.d is left alone.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP install-deps.sh installs only as root"; exit 0; fi
script=$DF_SRCDIR/tests/install-deps.sh
stubs=$T/stubs log=$T/calls
mkdir -p "$stubs"
# dpkg-query -W -f=... PKG: installed unless PKG is in $MISSING (nginx
# flavours: only those in $NGINX are installed).
cat >"$stubs/dpkg-query" <<'EOF'
#!/bin/bash
p=${!#} a=$(dpkg --print-architecture)
case $p in nginx | nginx-*) case " $NGINX " in *" $p "*) echo "install ok installed $a" ;; esac; exit 0 ;; esac
# A missing package may still be there for arm64 (cross-run.sh's twins).
case " $MISSING " in *" $p "*) echo "install ok installed arm64"; exit 0 ;; esac
echo "install ok installed $a"
EOF
# apt-get: records its arguments; an install that brings nginx-light runs
# the package's start as invoke-rc.d would: the policy first.
cat >"$stubs/apt-get" <<'EOF'
#!/bin/bash
echo "apt-get $*" >>"$CALLS"
[ "$1" = install ] || exit 0
case " $* " in
*" nginx-light "*)
  if [ -x "$DF_POLICY_RC_D" ] && { "$DF_POLICY_RC_D" nginx start; [ $? = 101 ]; }; then echo "nginx start held back" >>"$CALLS"
  else echo "nginx started" >>"$CALLS"; fi ;;
esac
exit "${APT_RC:-0}"
EOF
for s in systemctl service invoke-rc.d; do printf '#!/bin/sh\necho "%s $*" >>"$CALLS"\n' "$s" >"$stubs/$s"; done
chmod 755 "$stubs"/*

# run ARGS...: install-deps.sh with the stand-ins; its exit code in $rc.
run () {
  : >"$log"
  rc=0
  env PATH="$stubs:$PATH" CALLS="$log" DF_DPKG_QUERY="$stubs/dpkg-query" DF_APT_GET="$stubs/apt-get" \
    DF_POLICY_RC_D="$T/policy-rc.d" sh "$script" "$@" >"$T/out" 2>&1 || rc=$?
}
installed_args () { sed -n 's/^apt-get install -y -qq --no-install-recommends //p' "$log"; }
no_service_calls () { ! grep -qE '^(systemctl|service|invoke-rc.d) ' "$log"; }

# A build server: nginx-full serves its repository, one build package is missing.
MISSING="libdivsufsort-dev clang" NGINX="nginx-full" run
check "build and example only: exit 0" test "$rc" = 0
check "build and example only: installs just the missing build package" test "$(installed_args)" = libdivsufsort-dev
check "build and example only: no nginx-light beside the running nginx-full" test "$(grep -c nginx "$log")" = 0
check "build and example only: no service stopped, disabled or started" no_service_calls
check "build and example only: no policy-rc.d written" test ! -e "$T/policy-rc.d"

# A fresh machine with --tests: the test packages too, and nginx-light, not started.
MISSING="libdivsufsort-dev clang gnupg" NGINX="" run --tests
check "--tests: exit 0" test "$rc" = 0
check "--tests: the test packages and nginx-light" test "$(installed_args)" = "libdivsufsort-dev clang gnupg nginx-light"
check "--tests: the new nginx's start was held back" grep -qx "nginx start held back" "$log"
check "--tests: the policy-rc.d is gone afterwards" test ! -e "$T/policy-rc.d"
check "--tests: no service stopped, disabled or started" no_service_calls

# apt-get fails: the policy-rc.d is still removed, the failure reported.
MISSING="clang" NGINX="" APT_RC=100 run --tests
check "apt-get failing: install-deps fails" test "$rc" != 0
check "apt-get failing: the policy-rc.d is gone afterwards" test ! -e "$T/policy-rc.d"

# An operator's own policy-rc.d stays as it was (and decides for itself).
printf '#!/bin/sh\nexit 0\n' >"$T/policy-rc.d"
chmod 755 "$T/policy-rc.d"
sum=$(sha256sum <"$T/policy-rc.d")
MISSING="" NGINX="" run --tests
check "own policy-rc.d: exit 0, only nginx-light installed" test "$rc:$(installed_args)" = "0:nginx-light"
check "own policy-rc.d: left as it was" test "$(sha256sum <"$T/policy-rc.d")" = "$sum"
rm -f "$T/policy-rc.d"

# Everything present: apt-get is not even asked.
MISSING="" NGINX="nginx-light" run --tests
check "nothing missing: exit 0 and no apt-get" test "$rc:$(wc -c <"$log")" = "0:0"
run --bogus
check "an unknown argument: exit 2, one line" test "$rc:$(wc -l <"$T/out")" = "2:1"
finish
