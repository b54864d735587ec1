/**
 * Destroy-time scripts: take an agent out of the cluster (run on its server), and remove K3s and
 * Kilo's leftovers from a host (run on the host). Both tolerate work already done, so a destroy
 * that failed halfway can simply run again.
 */
import { LateValues } from "./late-values";
import { scriptHeader, shq, shqLiteral, STATE_DIR } from "./shell";

/** Drain an agent (bounded) and delete its Node object. Runs on the server. */
export function renderDrainScript(nodeName: string, drainTimeoutSeconds: number, late: LateValues): string {
  const t = Math.floor(drainTimeoutSeconds);
  return [
    scriptHeader("drain a node and remove it from the cluster"),
    `NODE=${shq(nodeName, late)}`,
    "if [ ! -x /usr/local/bin/k3s ]; then",
    "  log \"K3s is not installed on this server; nothing to drain\"",
    "  exit 0",
    "fi",
    "if ! timeout 30 /usr/local/bin/k3s kubectl get node \"$NODE\" >/dev/null 2>&1; then",
    "  log \"node $NODE is not in the cluster; nothing to drain\"",
    "  exit 0",
    "fi",
    "log \"draining $NODE\"",
    "# A drain that cannot finish (the last node, a PodDisruptionBudget) must not block the destroy.",
    `if ! timeout ${t + 30} /usr/local/bin/k3s kubectl drain "$NODE" --ignore-daemonsets --delete-emptydir-data --force --timeout=${t}s; then`,
    `  log "warning: $NODE did not drain within ${t}s; deleting it anyway"`,
    "fi",
    "timeout 60 /usr/local/bin/k3s kubectl delete node \"$NODE\" --ignore-not-found",
    "log \"removed node $NODE from the cluster\"",
    "",
  ].join("\n");
}

/**
 * Selects Kilo's iptables rules from `iptables-save -t TABLE` output and prints what removes them,
 * as iptables-restore commands: `-D` for every rule in another chain that jumps (or goes) to a
 * KILO-* chain or carries Kilo's comment marker ("Kilo: …", which kg puts on every rule it adds:
 * squat/kilo pkg/mesh/routes.go, pkg/encapsulation/ipip.go), then `-F` and `-X` for every KILO-*
 * chain. Quoted text (comments) is blanked before the jump is looked for, so an operator rule whose
 * comment merely mentions KILO- is not selected.
 */
export const KILO_RULES_AWK = [
  "function unquoted(s) { gsub(/\"([^\"\\\\]|\\\\.)*\"/, \"\\\"\\\"\", s); return s }",
  "/^:KILO-[A-Za-z0-9_.-]+ / { chains[++n] = substr($1, 2); next }",
  "/^-A / {",
  "  u = unquoted($0); split(u, w, \" \")",
  "  if (w[2] ~ /^KILO-/) next",
  "  if (u ~ / -[jg] KILO-[A-Za-z0-9_.-]+( |$)/ || index($0, \"--comment \\\"Kilo: \") > 0) { sub(/^-A /, \"-D \"); print }",
  "}",
  "END { for (i = 1; i <= n; i++) print \"-F \" chains[i]; for (i = 1; i <= n; i++) print \"-X \" chains[i] }",
].join("\n");

const KILO_IPTABLES_CLEANUP = [
  "# Kilo's iptables rules only: the deletions go to iptables-restore --noflush, which leaves",
  "# every other rule and chain of the table as it is (an operator rule that mentions KILO- stays).",
  "# shellcheck disable=SC2016 # an awk program: its $ fields are awk's, not the shell's",
  `KILO_RULES_AWK=${shqLiteral(KILO_RULES_AWK)}`,
  "for tool in iptables ip6tables; do",
  "  command -v \"$tool-save\" >/dev/null 2>&1 || continue",
  "  for table in filter nat mangle raw; do",
  "    saved=$(\"$tool-save\" -t \"$table\" 2>/dev/null) || continue",
  "    removal=$(printf '%s\\n' \"$saved\" | awk \"$KILO_RULES_AWK\")",
  "    [ -n \"$removal\" ] || continue",
  "    if ! printf '*%s\\n%s\\nCOMMIT\\n' \"$table\" \"$removal\" | timeout 60 \"$tool-restore\" --noflush; then",
  "      log \"warning: could not remove Kilo's $tool rules from the $table table\"",
  "    fi",
  "  done",
  "done",
];

/**
 * PeerFirewall's guard (ufw-converge.py, converge_guard): its hook in ufw's before.init, its files
 * and its raw-table chain and jumps. ufw's tagged rules stay: they keep the host closed.
 */
const GUARD_CLEANUP = [
  "# PeerFirewall's guard: the hook in before.init, its files, the raw-table chain and its jumps.",
  "if [ -f /etc/ufw/before.init ] && grep -q '^# BEGIN cdktf-k3s-kilo guard' /etc/ufw/before.init; then",
  "  sed -i '/^# BEGIN cdktf-k3s-kilo guard/,/^# END cdktf-k3s-kilo guard$/d' /etc/ufw/before.init || log \"warning: could not remove the guard's hook from /etc/ufw/before.init\"",
  "  # Made executable for the hook: back to ufw's mode when what is left is ufw's template.",
  "  if [ -f /usr/share/ufw/before.init ] && cmp -s /etc/ufw/before.init /usr/share/ufw/before.init; then chmod 0640 /etc/ufw/before.init; fi",
  "fi",
  "rm -f /etc/ufw/cdktf-k3s-kilo-guard.init /etc/ufw/cdktf-k3s-kilo-guard.rules /etc/ufw/cdktf-k3s-kilo-guard6.rules",
  "for tool in iptables ip6tables; do",
  "  command -v \"$tool\" >/dev/null 2>&1 || continue",
  "  n=0",
  "  while [ \"$n\" -lt 100 ] && \"$tool\" -w 10 -t raw -D PREROUTING -j cdktf-k3s-kilo-guard 2>/dev/null; do n=$((n + 1)); done",
  "  if \"$tool\" -w 10 -t raw -n -L cdktf-k3s-kilo-guard >/dev/null 2>&1; then",
  "    { \"$tool\" -w 10 -t raw -F cdktf-k3s-kilo-guard && \"$tool\" -w 10 -t raw -X cdktf-k3s-kilo-guard; } || log \"warning: could not remove the guard's $tool chain\"",
  "  fi",
  "done",
];

/** Uninstall K3s and remove what Kilo leaves behind. Runs on the node itself. */
export function renderUninstallScript(role: "server" | "agent"): string {
  const uninstaller = role === "server" ? "/usr/local/bin/k3s-uninstall.sh" : "/usr/local/bin/k3s-agent-uninstall.sh";
  return [
    scriptHeader(`uninstall the K3s ${role} and Kilo's leftovers from this host`),
    `if [ -x ${uninstaller} ]; then`,
    `  log "running ${uninstaller}"`,
    `  timeout 600 ${uninstaller} || fail "${uninstaller} failed"`,
    "else",
    "  log \"K3s is not installed; nothing to uninstall\"",
    "fi",
    "# K3s's uninstaller does not know about Kilo: its interfaces, iptables chains and files stay.",
    "for link in kilo0 kube-bridge; do",
    "  if ip link show \"$link\" >/dev/null 2>&1; then",
    "    ip link delete \"$link\" || log \"warning: could not delete interface $link\"",
    "  fi",
    "done",
    "# tunl0 is left alone: it is the kernel's IPIP fallback device, which cannot be deleted while the",
    "# ipip module is loaded, and its addresses may be the operator's as well as Kilo's.",
    ...KILO_IPTABLES_CLEANUP,
    ...GUARD_CLEANUP,
    "rm -rf /var/lib/kilo",
    "rm -f /etc/cni/net.d/10-kilo.conflist",
    "# Our own state goes too: fingerprints, the kept install script, the rollout lock and records",
    "# (servers), and a config upload whose install never ran (it holds the tokens).",
    `rm -rf ${STATE_DIR}`,
    `log "K3s ${role} and Kilo removed from this host"`,
    "",
  ].join("\n");
}
