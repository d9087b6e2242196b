#!/bin/bash
# The systemd guest's scenario (xtask/src/systemdvm.rs): run as root by
# podsig-scenario.service once the guest has booted, with systemd as pid 1. Every fact the
# host checks is a "PODSIG-VM systemd …" line on the serial console; the host reads nothing
# else, so a line that is missing is a failure there, not here.

M="PODSIG-VM systemd"
say() { echo "$M $*"; }
up() { cut -d' ' -f1 /proc/uptime; }
P=/usr/local/bin/podsig
UNITS="podsig-term.service podsig-noterm.service podsig-alone.service"
say boot-s "$(up)"
say kernel "$(uname -r)"
say systemd-version "$(systemctl --version | head -1)"
say pid1 "$(cat /proc/1/comm)"

# Each step waits for systemd, and systemd under TCG is slow: poll, but never forever.
active() { systemctl show -p ActiveState --value "$1"; }
wait_state() { # UNIT STATE...
  local u=$1 s i
  shift
  for i in $(seq 300); do
    s=$(active "$u")
    for want in "$@"; do [ "$s" = "$want" ] && return 0; done
    sleep 0.1
  done
  say timeout "$u is $s, waited for $*"
  return 1
}
mainpid() { systemctl show -p MainPID --value "$1"; }

# --- The units ---------------------------------------------------------------------------
mkdir -p /usr/local/lib/podsig
cat > /usr/local/lib/podsig/term <<'EOF'
#!/bin/bash
# Handles SIGTERM: exits at once (wait returns on the signal, unlike a foreground sleep).
trap 'exit 0' TERM
while :; do sleep 1 & wait $!; done
EOF
cat > /usr/local/lib/podsig/noterm <<'EOF'
#!/bin/bash
# Ignores SIGTERM (its sleeps inherit that): only systemd's SIGKILL ends it.
trap '' TERM
while :; do sleep 1; done
EOF
cp /usr/local/lib/podsig/term /usr/local/lib/podsig/alone
chmod 755 /usr/local/lib/podsig/*
cat > /etc/systemd/system/podsig-term.service <<'EOF'
[Unit]
Description=podsig test: handles SIGTERM
[Service]
ExecStart=/usr/local/lib/podsig/term
EOF
cat > /etc/systemd/system/podsig-noterm.service <<'EOF'
[Unit]
Description=podsig test: ignores SIGTERM
[Service]
ExecStart=/usr/local/lib/podsig/noterm
TimeoutStopSec=2
EOF
cat > /etc/systemd/system/podsig-alone.service <<'EOF'
[Unit]
Description=podsig test: stopped by systemd itself
[Service]
ExecStart=/usr/local/lib/podsig/alone
RuntimeMaxSec=2
EOF
systemctl daemon-reload
systemctl start podsig-term.service podsig-noterm.service
say units-started "$(up)"

# --- alice, who logged in ----------------------------------------------------------------
useradd -m -u 1000 -s /bin/bash alice
echo 'alice ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/alice
chmod 440 /etc/sudoers.d/alice
# A login without sshd: the write pam_loginuid makes, by a root shell that then becomes
# alice on a terminal of her own (script(1) gives her a pty, as sshd would). Each call is a
# new login: the kernel gives every loginuid write a new audit session.
# as_alice STEP COMMAND: alice types COMMAND.
as_alice() {
  local step=$1
  shift
  cat > /home/alice/step <<EOF
say() { echo "$M \$*"; }
say $step login uid=\$(id -u) loginuid=\$(cat /proc/self/loginuid) session=\$(cat /proc/self/sessionid) tty=\$(tty)
$*
say $step rc \$?
EOF
  chown alice /home/alice/step
  bash -c 'echo 1000 > /proc/self/loginuid || exit 97
    exec setpriv --reuid=1000 --regid=1000 --init-groups script -qefc "bash /home/alice/step" /dev/null' \
    </dev/null
  local rc=$?
  [ $rc = 0 ] || say "$step" as-alice-rc $rc
}

# --- podsig, watching the units and recording -------------------------------------------
# wait_attached PID ERRFILE: until podsig says it is attached, or exits.
wait_attached() {
  local i
  for i in $(seq 1500); do
    grep -q "podsig: attached" "$2" && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}
# A short stop window: podsig says "systemd acted on its own" only once it has captured
# requests for a whole window before the signal, and the alone unit is stopped after that.
WINDOW=10
$P watch --unit podsig-term.service --unit podsig-noterm.service --unit podsig-alone.service -o json \
  --stop-window ${WINDOW}s >/tmp/watch.out 2>/tmp/watch.err &
W=$!
if wait_attached $W /tmp/watch.err; then
  say watch-mode unit
else
  # A podsig without --unit (before issue 26 lands): node mode sees the same signals, so the
  # rest still runs end to end; the host fails the row on the fields --unit brings.
  wait $W
  say watch-unit-rc $?
  while read -r l; do say watch-unit-err "$l"; done </tmp/watch.err
  say watch-mode all
  $P watch --all -o json --stop-window ${WINDOW}s >/tmp/watch.out 2>/tmp/watch.err &
  W=$!
  wait_attached $W /tmp/watch.err || say watch-not-attached
fi
$P record --history /tmp/h.db --stop-window ${WINDOW}s >/tmp/record.out 2>/tmp/record.err &
R=$!
wait_attached $R /tmp/record.err || say record-not-attached
say attached-s "$(up)"

# --- The busy client ---------------------------------------------------------------------
# Talks to systemd all along, over the system bus and the private socket, naming the very
# units that are stopped, and never asks for a stop: it must never be named as a requester.
cat > /usr/local/bin/podsig-busy <<'EOF'
#!/bin/bash
n=0
while [ ! -e /run/podsig-busy.stop ]; do
  for u in podsig-term.service podsig-noterm.service podsig-alone.service; do
    busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager \
      GetUnit s "$u" >/dev/null 2>&1
    systemctl status "$u" --no-pager >/dev/null 2>&1
    n=$((n + 2))
  done
  busctl get-property org.freedesktop.systemd1 /org/freedesktop/systemd1/unit/podsig_2dterm_2eservice \
    org.freedesktop.systemd1.Unit ActiveState >/dev/null 2>&1
  systemctl list-units --no-pager >/dev/null 2>&1
  n=$((n + 2))
  echo $n >/run/podsig-busy.count
done
EOF
chmod 755 /usr/local/bin/podsig-busy
/usr/local/bin/podsig-busy &
B=$!
say busy-pid $B

# --- The actions -------------------------------------------------------------------------
# Each step names the main process systemd signals ("STEP target PID"): the host finds the
# records by it.
# systemd stops the alone unit by itself 2 s after this start, in the middle of alice's
# first step: a StartUnit that names it, and a StopUnit of another unit, both close by.
sleep $((WINDOW + 1))
systemctl start podsig-alone.service
say alone target "$(mainpid podsig-alone.service)"
T=$(mainpid podsig-term.service)
say stop target $T
say stop start-s "$(up)"
as_alice stop "sudo sh -c 'echo \"$M identity uid=\$(id -u) loginuid=\$(cat /proc/self/loginuid) session=\$(cat /proc/self/sessionid)\"'; bash -c 'sudo systemctl stop podsig-term.service'"
wait_state podsig-term.service inactive failed
say stop state "$(active podsig-term.service)"

systemctl start podsig-term.service
T=$(mainpid podsig-term.service)
say restart target $T
as_alice restart "bash -c 'sudo systemctl restart podsig-term.service'"
wait_state podsig-term.service active
say restart state "$(active podsig-term.service)" new-pid "$(mainpid podsig-term.service)"

T=$(mainpid podsig-term.service)
say kill target $T
as_alice kill "bash -c 'sudo systemctl kill -s KILL podsig-term.service'"
wait_state podsig-term.service inactive failed
say kill state "$(active podsig-term.service)"

T=$(mainpid podsig-noterm.service)
NT=$T
say busctl target $T
s0=$(up)
as_alice busctl "sudo busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager StopUnit ss podsig-noterm.service replace"
wait_state podsig-noterm.service inactive failed
say busctl state "$(active podsig-noterm.service)" stopped-in-s "$(awk -v a="$s0" -v b="$(up)" 'BEGIN { print b - a }')"

wait_state podsig-alone.service inactive failed
say alone state "$(active podsig-alone.service)" result "$(systemctl show -p Result --value podsig-alone.service)"

# --- Done: stop the busy client, podsig, then ask why -----------------------------------
touch /run/podsig-busy.stop
wait $B
say busy-calls "$(cat /run/podsig-busy.count 2>/dev/null)"
# Records of the last signals may still be in flight: give the watch a moment.
sleep 2
kill -INT $W $R
wait $W
say watch-rc $?
wait $R
say record-rc $?
say actions-done-s "$(up)"
while read -r l; do say watch-err "$l"; done </tmp/watch.err
while read -r l; do say out "$l"; done </tmp/watch.out
while read -r l; do say record-err "$l"; done </tmp/record.err
$P why --history /tmp/h.db --unit podsig-noterm.service -o json >/tmp/why.out 2>/tmp/why.err
rc=$?
say why-rc $rc
if [ $rc = 2 ] && grep -q -- "--unit" /tmp/why.err; then
  # A podsig without --unit: the same question by pid, so the history is still exercised.
  while read -r l; do say why-unit-err "$l"; done </tmp/why.err
  say why-mode pid
  $P why --history /tmp/h.db --pid "$NT" -o json >/tmp/why.out 2>/tmp/why.err
  say why-rc $?
else
  say why-mode unit
fi
while read -r l; do say why-err "$l"; done </tmp/why.err
say why "$(tr -d '\n' </tmp/why.out)"
say done "$(up)"
