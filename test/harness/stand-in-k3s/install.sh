#!/bin/sh
# STAND-IN for the K3s install script (https://get.k3s.io), used by cdktf-k3s-kilo's real-host tests
# because K3s cannot be downloaded there. It is not K3s. See README.md next to this file.
set -eu
REC=/var/lib/k3s-stand-in
HERE=/run/cdktf-lab/stand-in
mkdir -p "$REC"
chmod 0700 "$REC"
now() { date +%s%3N; }
event() { printf '%s %s\n' "$(now)" "$*" >> "$REC/events.log"; }

# Record this run: arguments and the whole environment (tests check no secret is in either).
n=$(find "$REC" -maxdepth 1 -name 'install-env-*' | wc -l)
env > "$REC/install-env-$n"
event "install role=${INSTALL_K3S_EXEC:-} version=${INSTALL_K3S_VERSION:-} skip_download=${INSTALL_K3S_SKIP_DOWNLOAD:-false} args=$*"

case "${INSTALL_K3S_EXEC:-}" in
  agent*) ROLE=agent ;;
  server*|"") if [ -n "${K3S_URL:-}" ]; then ROLE=agent; else ROLE=server; fi ;;
  *) ROLE=server ;;
esac
[ -n "${INSTALL_K3S_VERSION:-}" ] || { echo "stand-in installer: INSTALL_K3S_VERSION is not set (versions must be pinned)" >&2; exit 1; }

if [ "${INSTALL_K3S_SKIP_DOWNLOAD:-false}" = true ]; then
  [ -x /usr/local/bin/k3s ] || { echo "stand-in installer: INSTALL_K3S_SKIP_DOWNLOAD set but /usr/local/bin/k3s missing" >&2; exit 1; }
else
  install -m 0755 "$HERE/k3s" /usr/local/bin/k3s
fi
echo "$INSTALL_K3S_VERSION" > "$REC/version"

# Fault injection for tests: fail midway (binary in place, service not started), once.
if [ -f "$REC/fail-once" ]; then
  rm -f "$REC/fail-once"
  event "install-failed (injected fault)"
  echo "stand-in installer: injected failure midway through the install" >&2
  exit 1
fi

if [ "$ROLE" = server ]; then
  UNINSTALL=/usr/local/bin/k3s-uninstall.sh
else
  UNINSTALL=/usr/local/bin/k3s-agent-uninstall.sh
fi
cat > "$UNINSTALL" <<UNINSTALL_EOF
#!/bin/sh
# STAND-IN for K3s's $UNINSTALL
set -eu
printf '%s %s\n' "\$(date +%s%3N)" "uninstall role=$ROLE" >> $REC/events.log
if [ -f /run/k3s-stand-in.pid ]; then kill "\$(cat /run/k3s-stand-in.pid)" 2>/dev/null || true; rm -f /run/k3s-stand-in.pid; fi
pkill -f '^/bin/sh /usr/local/bin/k3s (server|agent)' 2>/dev/null || true
rm -rf /etc/rancher/k3s /var/lib/rancher/k3s /usr/local/bin/k3s
rm -f /usr/local/bin/kubectl /usr/local/bin/crictl /usr/local/bin/ctr
rm -f "\$0"
UNINSTALL_EOF
chmod 0755 "$UNINSTALL"

# (Re)start the service, as the real installer restarts the systemd unit.
if [ -f /run/k3s-stand-in.pid ]; then
  old=$(cat /run/k3s-stand-in.pid)
  kill "$old" 2>/dev/null || true
  i=0; while kill -0 "$old" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  rm -f /run/k3s-stand-in.pid
fi
rm -f "$REC/ready" "$REC/failed"
setsid /usr/local/bin/k3s "$ROLE" </dev/null >>"$REC/service.log" 2>&1 &
echo $! > /run/k3s-stand-in.pid
# Like `systemctl start` for K3s's notify unit: wait until the service says it started, or failed.
i=0
while [ ! -f "$REC/ready" ] && [ ! -f "$REC/failed" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
if [ ! -f "$REC/ready" ]; then
  echo "stand-in installer: the k3s $ROLE service failed to start: $(tail -n 3 "$REC/service.log" 2>/dev/null)" >&2
  exit 1
fi
echo "[stand-in] k3s $ROLE $INSTALL_K3S_VERSION installed and started"
