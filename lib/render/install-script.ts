/**
 * The script that installs or reconfigures K3s on a node. It runs after the config has been
 * uploaded to the staging directory, and is safe to run again: an unchanged fingerprint of
 * (version, the install script's content, config) with a running service changes nothing and
 * restarts nothing.
 *
 * The install script is fetched once per (URL, pinned sha256) and kept in the state directory,
 * so a re-run needs no network and the fingerprint covers the bytes that actually ran; a
 * `file://` script is copied on every run (it is local, and its content may change).
 */
import { createHash } from "crypto";
import { LateValues } from "./late-values";
import { joinScript, nodeReadyFunction, ScriptParts, scriptParts, shq, STAGING_DIR, STATE_DIR, WAIT_FOR_FUNCTION } from "./shell";

export interface InstallSettings {
  readonly role: "server" | "agent";
  /** The Kubernetes node name; the install waits until this Node exists. */
  readonly nodeName: string;
  readonly version: string;
  /** Where the official install script comes from (https:// or file://). */
  readonly installScriptUrl: string;
  /** sha256 the install script must have, checked on the host before it runs. */
  readonly installScriptSha256?: string;
  /** Use the k3s binary already at /usr/local/bin/k3s (INSTALL_K3S_SKIP_DOWNLOAD). */
  readonly skipDownload: boolean;
  readonly installWireguardTools: boolean;
  /** Upper bound for the readiness wait, in seconds. */
  readonly readyTimeoutSeconds: number;
}

export const CONFIG_PATH = "/etc/rancher/k3s/config.yaml";
export const STAGED_CONFIG = `${STAGING_DIR}/k3s-config.yaml`;

export function serviceName(role: "server" | "agent"): string {
  return role === "server" ? "k3s" : "k3s-agent";
}

/**
 * The lines that decide whether K3s restarts on a host: what the fingerprint covers and when an
 * unchanged one is enough. Their digest is part of an agent's rollout inputs
 * (RESTART_DECISION_DIGEST), so a release that changes them drains agents as a restart needs.
 */
const RESTART_DECISION = [
  "installer_sha256=$(sha256sum \"$INSTALLER\" | cut -d' ' -f1)",
  "fingerprint=$( { printf '%s\\n' \"$K3S_VERSION\" \"$installer_sha256\" \"$SKIP_DOWNLOAD\" \"$SERVICE\"; cat \"$CONFIG\"; } | sha256sum | cut -d' ' -f1)",
  "if [ -x /usr/local/bin/k3s ] && [ -f \"$FINGERPRINT_FILE\" ] && [ \"$(cat \"$FINGERPRINT_FILE\")\" = \"$fingerprint\" ] && service_running; then",
];

/** Digest of RESTART_DECISION (see there). */
export const RESTART_DECISION_DIGEST = createHash("sha256").update(RESTART_DECISION.join("\n")).digest("hex").slice(0, 16);

export function renderInstallScript(s: InstallSettings, late: LateValues): string {
  return joinScript(installScriptParts(s, late));
}

/**
 * The install script split for sharing: the node's version, installer, timeout and name are
 * parameters; the program depends only on the role and installWireguardTools.
 */
export function installScriptParts(s: InstallSettings, late: LateValues): ScriptParts {
  const service = serviceName(s.role);
  return scriptParts(`install or reconfigure the K3s ${s.role} on this host`, [
    `K3S_VERSION=${shq(s.version, late)}`,
    `INSTALLER_URL=${shq(s.installScriptUrl, late)}`,
    `INSTALLER_SHA256=${shq((s.installScriptSha256 ?? "").toLowerCase(), late)}`,
    `SKIP_DOWNLOAD=${s.skipDownload ? "true" : "false"}`,
    `READY_TIMEOUT=${Math.floor(s.readyTimeoutSeconds)}`,
    `NODE_NAME=${shq(s.nodeName, late)}`,
  ], [
    `INSTALLER=${STATE_DIR}/k3s-install.sh`,
    `ROLE=${s.role}`,
    `SERVICE=${service}`,
    `STAGED=${STAGED_CONFIG}`,
    `CONFIG=${CONFIG_PATH}`,
    `FINGERPRINT_FILE=${STATE_DIR}/${service}.sha256`,
    "# The uploaded config holds the tokens: it goes when this script ends, whether it succeeded,",
    "# failed or was interrupted (a failed step is re-run in full, upload included).",
    "trap 'rm -f \"$STAGED\"' EXIT",
    "trap 'exit 1' HUP INT TERM",
    "",
    "# A URL from a Terraform value is checked here, before anything changes: no credentials, no",
    "# spaces or control characters (it goes into curl's config). Messages show it without its query.",
    "url_authority=${INSTALLER_URL#*://}",
    "url_authority=${url_authority%%[/?#]*}",
    "case \"$url_authority\" in",
    "  *@*) fail \"install.scriptUrl carries credentials (user:password or a token before the @ of ${url_authority##*@}): they would reach this host's files and curl's error messages; serve the script from a URL that needs no credentials, or copy it to the hosts and use a file:// URL; nothing was changed\" ;;",
    "esac",
    "URL_SHOWN=$INSTALLER_URL",
    "case \"$INSTALLER_URL\" in",
    "  *[[:space:]]*|*[[:cntrl:]]*) fail \"install.scriptUrl contains a space or control character; nothing was changed\" ;;",
    "  *[?#]*) URL_SHOWN=\"${INSTALLER_URL%%[?#]*} (query not shown)\" ;;",
    "esac",
    "",
    WAIT_FOR_FUNCTION,
    "service_running() {",
    "  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then",
    "    systemctl is-active --quiet \"$SERVICE\"",
    "  elif command -v rc-service >/dev/null 2>&1; then",
    "    rc-service \"$SERVICE\" status >/dev/null 2>&1",
    "  else",
    "    pgrep -f \"k3s ${ROLE}\" >/dev/null 2>&1",
    "  fi",
    "}",
    "",
    ...versionStepCheck(),
    ...(s.role === "server" ? [
      "# A restart of a server that was Ready must end with it Ready again before the next server goes.",
      nodeReadyFunction("timeout 10 /usr/local/bin/k3s kubectl"),
      "was_ready=false",
      "if [ -x /usr/local/bin/k3s ] && service_running && node_ready \"$NODE_NAME\"; then",
      "  was_ready=true",
      "fi",
      "",
    ] : []),
    ...(s.installWireguardTools ? [
      "# Kilo needs the WireGuard tools on every node.",
      "if ! command -v wg >/dev/null 2>&1; then",
      "  if command -v apt-get >/dev/null 2>&1; then",
      "    log \"installing wireguard-tools\"",
      "    export DEBIAN_FRONTEND=noninteractive",
      "    timeout 600 apt-get update -q || fail \"apt-get update failed or took longer than 10 minutes\"",
      "    timeout 600 apt-get install -y -q wireguard-tools || fail \"could not install wireguard-tools with apt-get\"",
      "  else",
      "    fail \"the WireGuard tools (wg) are missing and this host has no apt-get; install wireguard-tools with its package manager (dnf, zypper, apk, ...) and deploy again\"",
      "  fi",
      "fi",
      "",
    ] : []),
    "# Move the uploaded config into place: root-owned, 0600, replaced atomically.",
    "if [ -f \"$STAGED\" ]; then",
    "  install -d -m 0755 /etc/rancher/k3s",
    "  if ! cmp -s \"$STAGED\" \"$CONFIG\"; then",
    "    install -m 0600 -o root -g root \"$STAGED\" \"$CONFIG.new\"",
    "    mv -f \"$CONFIG.new\" \"$CONFIG\"",
    "    log \"updated $CONFIG\"",
    "  fi",
    "  rm -f \"$STAGED\"",
    "fi",
    "[ -f \"$CONFIG\" ] || fail \"$CONFIG is missing: the upload step did not run\"",
    "chmod 0600 \"$CONFIG\"",
    "chown root:root \"$CONFIG\"",
    "",
    "# The install script: fetched once per (URL, pinned sha256), checked, kept beside the fingerprint.",
    "fetch_installer() {",
    "  rm -f \"$INSTALLER.new\"",
    "  case \"$INSTALLER_URL\" in",
    "    file://*) cp \"${INSTALLER_URL#file://}\" \"$INSTALLER.new\" || fail \"the install script ${INSTALLER_URL#file://} is not on this host\" ;;",
    "    *)",
    "      command -v curl >/dev/null 2>&1 || fail \"curl is needed to download the K3s install script; install curl\"",
    "      # The URL goes in on stdin as curl config, not argv: every local user can read a command line.",
    "      printf 'url = \"%s\"\\n' \"$(printf '%s' \"$INSTALLER_URL\" | sed 's/[\\\\\"]/\\\\&/g')\" |",
    "        curl --config - --fail --silent --show-error --location --proto '=https' --connect-timeout 20 --max-time 300 \\",
    "        --retry 3 -o \"$INSTALLER.new\" || fail \"could not download the K3s install script from $URL_SHOWN\"",
    "      ;;",
    "  esac",
    "  if [ -n \"$INSTALLER_SHA256\" ]; then",
    "    got=$(sha256sum \"$INSTALLER.new\" | cut -d' ' -f1)",
    "    if [ \"$got\" != \"$INSTALLER_SHA256\" ]; then",
    "      rm -f \"$INSTALLER.new\"",
    "      fail \"the K3s install script from $URL_SHOWN has sha256 $got, not the pinned $INSTALLER_SHA256; nothing was run\"",
    "    fi",
    "  fi",
    "  mv -f \"$INSTALLER.new\" \"$INSTALLER\"",
    "  printf '%s %s\\n' \"$INSTALLER_URL\" \"$INSTALLER_SHA256\" > \"$INSTALLER.source\"",
    "}",
    "case \"$INSTALLER_URL\" in",
    "  file://*) fetch_installer ;;",
    "  *)",
    "    if [ ! -s \"$INSTALLER\" ] || [ \"$(cat \"$INSTALLER.source\" 2>/dev/null)\" != \"$INSTALLER_URL $INSTALLER_SHA256\" ]; then",
    "      fetch_installer",
    "    elif [ -n \"$INSTALLER_SHA256\" ] && [ \"$(sha256sum \"$INSTALLER\" | cut -d' ' -f1)\" != \"$INSTALLER_SHA256\" ]; then",
    "      fetch_installer  # the kept copy changed: fetch and check it again",
    "    fi",
    "    ;;",
    "esac",
    ...RESTART_DECISION,
    "  log \"K3s $K3S_VERSION ($SERVICE) already runs with this configuration; nothing to change\"",
    "else",
    "  log \"installing K3s $K3S_VERSION as $SERVICE (install script sha256 $installer_sha256)\"",
    "  rm -f \"$FINGERPRINT_FILE\"",
    "  if [ \"$SKIP_DOWNLOAD\" = true ]; then",
    "    [ -x /usr/local/bin/k3s ] || fail \"skipDownload is set but /usr/local/bin/k3s is not on this host; copy the $K3S_VERSION binary there first\"",
    "    export INSTALL_K3S_SKIP_DOWNLOAD=true",
    "  fi",
    "  # K3s's installer restarts the service only when its binary, unit or env file changed",
    "  # (install.sh, service_enable_and_start); a changed config.yaml needs the restart as well.",
    "  export INSTALL_K3S_FORCE_RESTART=true",
    "  # The token stays in the config file: nothing secret goes into the environment or argv.",
    `  INSTALL_K3S_VERSION="$K3S_VERSION" INSTALL_K3S_EXEC="$ROLE" timeout 900 sh "$INSTALLER" || fail "the K3s install script failed"`,
    "  write_fingerprint=1",
    "fi",
    "",
    ...(s.role === "server" ? [
      "wait_for \"$READY_TIMEOUT\" \"the K3s API server to report ready (k3s kubectl get --raw=/readyz)\" \\",
      "  timeout 10 /usr/local/bin/k3s kubectl get --raw=/readyz",
      "server_files_ready() { [ -s /var/lib/rancher/k3s/server/tls/server-ca.crt ] && [ -s /etc/rancher/k3s/k3s.yaml ]; }",
      "wait_for \"$READY_TIMEOUT\" \"the cluster CA and admin kubeconfig\" server_files_ready",
      "chmod 0600 /etc/rancher/k3s/k3s.yaml",
      "wait_for \"$READY_TIMEOUT\" \"node $NODE_NAME to register\" \\",
      "  timeout 10 /usr/local/bin/k3s kubectl get node \"$NODE_NAME\"",
      "log \"K3s API server is ready\"",
      "if [ \"$was_ready\" = true ]; then",
      "  wait_for \"$READY_TIMEOUT\" \"node $NODE_NAME to be Ready again\" node_ready \"$NODE_NAME\"",
      "  log \"node $NODE_NAME is Ready\"",
      "fi",
    ] : [
      "wait_for \"$READY_TIMEOUT\" \"the agent to join its server (kubelet credentials in /var/lib/rancher/k3s/agent)\" \\",
      "  test -s /var/lib/rancher/k3s/agent/kubelet.kubeconfig",
      "# Node annotations (KiloMesh) need the Node object: wait, with the node's own credentials.",
      "wait_for \"$READY_TIMEOUT\" \"node $NODE_NAME to register with its server\" \\",
      "  timeout 10 /usr/local/bin/k3s kubectl get node \"$NODE_NAME\" --kubeconfig /var/lib/rancher/k3s/agent/kubelet.kubeconfig",
      "log \"K3s agent has joined its server\"",
    ]),
    "# Recorded only once K3s is ready, so a failed run is retried in full next time.",
    "if [ \"${write_fingerprint:-0}\" = 1 ]; then printf '%s\\n' \"$fingerprint\" > \"$FINGERPRINT_FILE\"; fi",
    "",
  ].join("\n"));
}

/**
 * Refuse, before anything changes, a K3s upgrade that skips a minor release: Kubernetes supports
 * upgrading one minor version at a time. The running version comes from `k3s --version`; a
 * binary that does not report one (or a first install) is not checked.
 */
export function versionStepCheck(): string[] {
  return [
    "# One minor version at a time: v1.30 -> v1.31 -> v1.32, never v1.30 -> v1.32.",
    "minor_of() { printf '%s\\n' \"$1\" | sed -n 's/^v\\{0,1\\}\\([0-9][0-9]*\\)\\.\\([0-9][0-9]*\\)\\..*/\\1 \\2/p' | head -n 1; }",
    "if [ -x /usr/local/bin/k3s ]; then",
    "  running=$(/usr/local/bin/k3s --version 2>/dev/null | sed -n 's/^k3s version \\(v[^ ]*\\).*/\\1/p' | head -n 1 || true)",
    "  from=$(minor_of \"$running\"); to=$(minor_of \"$K3S_VERSION\")",
    "  if [ -n \"$from\" ] && [ -n \"$to\" ]; then",
    "    # shellcheck disable=SC2086 # split \"major minor\" into words on purpose",
    "    set -- $from $to",
    "    if [ \"$1\" -ne \"$3\" ] || [ \"$4\" -gt $(( $2 + 1 )) ]; then",
    "      fail \"this host runs K3s $running; $K3S_VERSION skips a minor release. Upgrade one minor version at a time (to v$1.$(( $2 + 1 )) first) and deploy again; nothing was changed\"",
    "    fi",
    "  fi",
    "fi",
    "",
  ];
}
