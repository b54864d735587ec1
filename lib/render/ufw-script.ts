/**
 * Render one node's rule set into the script that converges its ufw to it.
 *
 * Converging, not resetting: every rule we add carries a `cdktf-k3s-kilo:<hash>` comment. A run
 * adds the wanted rules whose tag is missing, deletes rules carrying our prefix whose tag is no
 * longer wanted (a removed peer loses access), and never touches a rule without our prefix (the
 * operator's own). The hash covers the rule's words after Terraform has filled in every value, so
 * a peer whose address changes gets a new rule and its old one is deleted.
 */
import { readFileSync } from "fs";
import { join } from "path";
import { LateValues } from "./late-values";
import { scriptHeader, shq, shqLiteral } from "./shell";
import { FIREWALL_DEFAULTS, FirewallCluster, FirewallDefaults, NodeRuleSet, ruleWords, TAG_PREFIX } from "./firewall-rules";

/** ufw's policy words for iptables targets, as written in /etc/default/ufw. */
const POLICY_TARGET: Record<string, string> = { deny: "DROP", allow: "ACCEPT", reject: "REJECT" };

/** Make sure ufw is installed (Debian/Ubuntu) and run it untranslated from sbin: both paths start so. */
const UFW_PREAMBLE = [
    "# ufw and iptables live in sbin, which a non-login SSH session may not have on its PATH.",
    "PATH=/usr/local/sbin:/usr/sbin:/sbin:$PATH",
    "# ufw's messages are parsed below; keep them untranslated.",
    "LC_ALL=C",
    "export PATH LC_ALL",
    "",
    "if ! command -v ufw >/dev/null 2>&1; then",
    "  if command -v apt-get >/dev/null 2>&1; then",
    "    log \"installing ufw\"",
    "    DEBIAN_FRONTEND=noninteractive",
    "    export DEBIAN_FRONTEND",
    "    timeout 600 apt-get update -q >/dev/null || fail \"apt-get update failed or took longer than 10 minutes\"",
    "    timeout 600 apt-get install -y -q ufw >/dev/null || fail \"could not install ufw with apt-get\"",
    "  else",
    "    fail \"ufw is not installed and this host has no apt-get: PeerFirewall supports Debian and Ubuntu hosts. Install ufw with this system's package manager and deploy again, or leave this host out of PeerFirewall's nodes\"",
    "  fi",
    "fi",
    "command -v ufw >/dev/null 2>&1 || fail \"ufw is still missing after installing it\"",
    "",
];

/**
 * The per-rule path: one `ufw` process per missing rule and per stale rule (140-180 ms each, docs/benchmarks.md). Kept
 * as the baseline the batched converge is measured and compared against (bench, host tests). It
 * converges ufw's rules and policies only: the raw-table guard (ufw-converge.py) is the batched
 * path's, which is what PeerFirewall deploys.
 */
export function renderFirewallScript(set: NodeRuleSet, late: LateValues): string {
  const d = set.defaults;
  return [
    scriptHeader(`converge the host firewall (ufw) of node ${set.node.replace(/[^A-Za-z0-9_.-]/g, "?")} to its peer set`),
    ...UFW_PREAMBLE,
    `TAG_PREFIX=${shqLiteral(TAG_PREFIX)}`,
    "# The rules ufw holds, active or not: one `ufw ...` line per rule, ours ending in our tag.",
    "added=$(ufw show added) || fail \"could not list ufw's rules (ufw show added)\"",
    "wanted=''",
    "changes=0",
    "",
    "# want WORDS...: make sure the rule `ufw WORDS` exists, tagged with a hash of WORDS.",
    "want() {",
    "  spec=\"$*\"",
    "  tag=\"${TAG_PREFIX}$(printf '%s' \"$spec\" | sha256sum | cut -c1-16)\"",
    "  wanted=\"$wanted $tag\"",
    "  case \"$added\" in",
    "    *\"'$tag'\"*) return 0 ;;",
    "  esac",
    "  ufw \"$@\" comment \"$tag\" >/dev/null || fail \"ufw refused the rule: ufw $spec\"",
    "  log \"added: ufw $spec\"",
    "  changes=$((changes + 1))",
    "}",
    "",
    "# In order: SSH comes first and every rule exists before ufw is enabled, so enabling it",
    "# cannot cut the session running this script.",
    ...set.rules.map((r) => `want ${ruleWords(r).map((w) => shq(w, late)).join(" ")}`),
    "",
    "# Delete our rules that are no longer wanted. Lines without our prefix are the operator's.",
    "set -f",
    "while IFS= read -r line; do",
    "  case \"$line\" in",
    "    \"ufw \"*\" comment '${TAG_PREFIX}\"*\"'\") ;;",
    "    *) continue ;;",
    "  esac",
    "  tag=${line##* comment \\'}",
    "  tag=${tag%\\'}",
    "  case \" $wanted \" in",
    "    *\" $tag \"*) continue ;;",
    "  esac",
    "  rule=${line#ufw }",
    "  rule=${rule% comment \\'*}",
    "  # ufw printed these words itself (addresses, ports, keywords): split them, never eval them.",
    "  # shellcheck disable=SC2086",
    "  case \"$rule\" in",
    "    \"route \"*) ufw route delete ${rule#route } </dev/null >/dev/null || fail \"could not delete stale rule: ufw $rule\" ;;",
    "    *) ufw delete $rule </dev/null >/dev/null || fail \"could not delete stale rule: ufw $rule\" ;;",
    "  esac",
    "  log \"deleted stale rule: ufw $rule\"",
    "  changes=$((changes + 1))",
    "done <<EOF",
    "$added",
    "EOF",
    "set +f",
    "",
    ...SET_DEFAULT_FUNCTION.slice(0, -1),
    ...defaultsBody(d, ""),
    "",
    "if ! ufw status | grep -q '^Status: active'; then",
    "  ufw --force enable >/dev/null || fail \"could not enable ufw\"",
    "  log \"ufw enabled\"",
    "  changes=$((changes + 1))",
    "fi",
    "ufw status | grep -q '^Status: active' || fail \"ufw is not active after enabling it\"",
    "log \"firewall converged ($changes change(s))\"",
    "",
  ].join("\n");
}

/**
 * The batched converge, shared by every node: the text is the same for all of them (PeerFirewall
 * emits it once, as a Terraform local), and only the rule data appended by renderConvergeCall
 * differs. ufw's own Python modules merge the node's tagged rules into ufw's rules files and the
 * result is applied once (ufw-converge.py says how); default policies and enabling go through the
 * `ufw` command as on the per-rule path, only when they differ.
 */
export function renderConvergeProgram(): string {
  return [
    scriptHeader("converge the host firewall (ufw) to this node's rule set, given at the end of this script"),
    ...UFW_PREAMBLE,
    "ufw_bin=$(command -v ufw)",
    "# The interpreter ufw runs with (its #! line) is the one that has ufw's Python modules.",
    "ufw_py=$(sed -n '1s/^#![[:space:]]*\\([^[:space:]]*\\).*/\\1/p' \"$ufw_bin\")",
    "if [ ! -x \"${ufw_py:-/nonexistent}\" ]; then",
    "  ufw_py=$(command -v python3) || fail \"ufw's Python interpreter was not found (looked at the first line of $ufw_bin, then for python3)\"",
    "fi",
    "CONVERGE_PY=$(cat <<'CDKTF_K3S_KILO_PY'",
    CONVERGE_PY_TEXT().replace(/\n+$/, ""),
    "CDKTF_K3S_KILO_PY",
    ")",
    "",
    ...SET_DEFAULT_FUNCTION,
    "# converge_firewall: converge ufw to the rules (JSON, see ufw-converge.py) read on stdin.",
    "converge_firewall() {",
    "  # The program reports its own errors (with the rule or the file at fault) and changes nothing then;",
    "  # its last line of output is the number of rules it added or deleted.",
    "  # -I (isolated): no cwd or script directory on sys.path, no PYTHON* variables, no user site.",
  "  if ! out=$(\"$ufw_py\" -I -c \"$CONVERGE_PY\" \"$ufw_bin\" \"${FIREWALL_SHARED_SOURCES:-[]}\"); then",
    "    [ -z \"${out:-}\" ] || printf '%s\\n' \"$out\"",
    "    exit 1",
    "  fi",
    "  [ -z \"$(printf '%s\\n' \"$out\" | sed '$d')\" ] || printf '%s\\n' \"$out\" | sed '$d'",
    "  changes=$(printf '%s\\n' \"$out\" | tail -n 1)",
    ...defaultsBody(FIREWALL_DEFAULTS, "  "),
    "  if ! grep -q '^ENABLED=yes' /etc/ufw/ufw.conf; then",
    "    ufw --force enable >/dev/null || fail \"could not enable ufw\"",
    "    log \"ufw enabled\"",
    "    changes=$((changes + 1))",
    "    # What `ufw status` would check, without its cost: ufw keeps ENABLED=yes only after starting,",
    "    # and its user chains are loaded.",
    "    if ! grep -q '^ENABLED=yes' /etc/ufw/ufw.conf || ! iptables -n -L ufw-user-input >/dev/null 2>&1; then",
    "      fail \"ufw is not active after enabling it\"",
    "    fi",
    "    # Enabling ran the guard's hook, which never fails ufw and whose message the ufw command does",
    "    # not print: load the guard once more here, where a failure fails the step.",
    "    if [ -x /etc/ufw/cdktf-k3s-kilo-guard.init ] && ! guard_out=$(/etc/ufw/cdktf-k3s-kilo-guard.init start 2>&1); then",
    "      fail \"ufw is enabled, but the guard did not load (/etc/ufw/cdktf-k3s-kilo-guard.init start): $guard_out\"",
    "    fi",
    "  fi",
    "  log \"firewall converged ($changes change(s))\"",
    "}",
    "",
  ].join("\n");
}

/** The program ufw-converge.py, shipped next to this file (read once, when first rendered). */
let convergePy: string | undefined;
function CONVERGE_PY_TEXT(): string {
  convergePy ??= readFileSync(join(__dirname, "ufw-converge.py"), "utf8");
  return convergePy;
}

const SET_DEFAULT_FUNCTION = [
  "# Default policies. Incoming and routed must be closed: deny, or reject when the operator chose it;",
  "# changed only when open (each change reloads ufw). Outgoing is the operator's and stays as set.",
  "close_default() {",
  "  if ! grep -Eq \"^DEFAULT_$1_POLICY=\\\"($2|REJECT)\\\"\" /etc/default/ufw; then",
  "    ufw default \"$3\" \"$4\" >/dev/null || fail \"could not set ufw's default $4 policy\"",
  "    log \"default policy: $3 $4\"",
  "    changes=$((changes + 1))",
  "  fi",
  "}",
  "warn_outgoing() {",
  "  log \"warning: ufw's default outgoing policy is $1. PeerFirewall leaves it as you set it and adds no outgoing rules: allow out at least\" \\",
  "    \"WireGuard (51820/udp or your wireguardPort), the API (6443/tcp), the kubelet (10250/tcp) and etcd (2379-2380/tcp) to the other nodes,\" \\",
  "    \"and DNS and HTTPS for the installer and images, or the cluster cannot form\" >&2",
  "}",
  "",
];

/**
 * The default policies: incoming and routed closed; outgoing left as the operator set it, with a
 * warning on stderr (Terraform shows it) when it is not allow, since no outgoing rule is added.
 */
function defaultsBody(d: FirewallDefaults, indent: string): string[] {
  return [
    `close_default INPUT ${POLICY_TARGET[d.incoming]} ${d.incoming} incoming`,
    `close_default FORWARD ${POLICY_TARGET[d.routed]} ${d.routed} routed`,
    "case $(grep '^DEFAULT_OUTPUT_POLICY=' /etc/default/ufw) in",
    "  *'\"ACCEPT\"') ;;",
    "  *'\"REJECT\"') warn_outgoing reject ;;",
    "  *) warn_outgoing deny ;;",
    "esac",
  ].map((l) => indent + l);
}

/** One word of a rule as a JSON string; a Terraform value is encoded by Terraform (jsonencode). */
function jsonWord(word: string, late: LateValues): string {
  return late.isLate(word) ? `${late.jsonencode(word)}` : JSON.stringify(word);
}

/**
 * One node's rules as compact JSON for the converge program: runs of rules that differ only in
 * their source become one entry whose source is an index into `sources`, and a node's identical
 * source lists (its peers' addresses, for WireGuard, kubelet and the API) are written once.
 */
export function renderRuleData(set: NodeRuleSet, late: LateValues, shared: string[] = []): string {
  const json = (w: string) => jsonWord(w, late);
  const words = set.rules.map(ruleWords);
  const sources: string[][] = [];
  const sourceIndex = new Map<string, number>();
  const entries: string[] = [];
  // A rule's words with its source left out: rules with the same template differ only in source.
  const templates = words.map((w) => {
    const f = w.indexOf("from") + 1;
    return JSON.stringify([...w.slice(0, f), null, ...w.slice(f + 1)]);
  });
  for (let i = 0; i < words.length;) {
    const w = words[i];
    const f = w.indexOf("from") + 1;
    const key = templates[i];
    let j = i + 1;
    while (j < words.length && templates[j] === key) j++;
    if (j - i === 1) {
      entries.push(`[${w.map(json).join(",")}]`);
    } else {
      const list = words.slice(i, j).map((x) => x[f]);
      const listKey = JSON.stringify(list);
      let n = sourceIndex.get(listKey);
      if (n === undefined) {
        n = sources.length;
        sources.push(list);
        sourceIndex.set(listKey, n);
      }
      entries.push(`[${[...w.slice(0, f).map(json), String(n), ...w.slice(f + 1).map(json)].join(",")}]`);
    }
    i = j;
  }
  const sourceText = (l: string[]) => {
    const except = skippedIndices(shared, l);
    return except !== undefined ? `{"shared":[${except.join(",")}]}` : `[${l.map(json).join(",")}]`;
  };
  const guard = `{"ranges":[${set.guard.ranges.map(json).join(",")}],"interfaces":[${set.guard.interfaces.map(json).join(",")}]}`;
  return `{"sources":[${sources.map(sourceText).join(",")}],"rules":[${entries.join(",")}],"guard":${guard}}`;
}

/**
 * When `list` is `shared` with a few entries left out (a node's peers: every node but itself),
 * the indices left out; otherwise undefined. Lets every node's data point into one list.
 */
function skippedIndices(shared: string[], list: string[]): number[] | undefined {
  if (shared.length === 0 || list.length < 2) return undefined;
  const skipped: number[] = [];
  let j = 0;
  for (let i = 0; i < shared.length; i++) {
    if (j < list.length && shared[i] === list[j]) j++;
    else skipped.push(i);
  }
  return j === list.length && skipped.length <= list.length ? skipped : undefined;
}

/**
 * The source list the nodes' data can point into (see renderRuleData): every node's addresses, in
 * the cluster's order, so a node's peers are this list without its own.
 */
export function sharedSources(cluster: FirewallCluster): string[] {
  return [...new Set(cluster.nodes.flatMap((n) => (n.privateAddress !== undefined ? [n.address, n.privateAddress] : [n.address])))];
}

/**
 * The shared source list as a script line (part of the shared Terraform value): a quoted
 * here-document the converge program reads.
 */
export function renderSharedSources(shared: string[], late: LateValues): string {
  return [
    "FIREWALL_SHARED_SOURCES=$(cat <<'CDKTF_K3S_KILO_SOURCES'",
    `[${shared.map((w) => jsonWord(w, late)).join(",")}]`,
    "CDKTF_K3S_KILO_SOURCES",
    ")",
    "",
  ].join("\n");
}

/**
 * The node's part of the batched script, run after renderConvergeProgram's text: its rules as a
 * quoted here-document. A value from Terraform is JSON-encoded, so it holds no newline and cannot
 * end the here-document or reach the shell.
 */
export function renderConvergeCall(set: NodeRuleSet, late: LateValues, shared: string[] = []): string {
  return [
    `# the rules of node ${set.node.replace(/[^A-Za-z0-9_./-]/g, "?")}`,
    "converge_firewall <<'CDKTF_K3S_KILO_RULES'",
    renderRuleData(set, late, shared),
    "CDKTF_K3S_KILO_RULES",
    "",
  ].join("\n");
}

/** The whole batched script of one node (what Terraform runs: the shared program, then the call). */
export function renderBatchedFirewallScript(set: NodeRuleSet, late: LateValues, shared: string[] = []): string {
  return renderConvergeProgram() + "\n" + (shared.length ? renderSharedSources(shared, late) + "\n" : "") + renderConvergeCall(set, late, shared);
}
