/**
 * The cluster report as data and text: who the nodes are, which WireGuard tunnels Kilo will build
 * between them, and who may reach which port on whom. No cdktf here: the construct layer
 * (constructs/cluster-report.ts) collects the data from an app, these functions turn it into
 * Markdown, Graphviz DOT and Mermaid.
 *
 * The firewall matrix is read from the very rule lists PeerFirewall renders into ufw commands
 * (NodeFirewallRule, from nodeRuleSet), so the report and the firewall cannot disagree.
 *
 * How Kilo lays out the mesh (squat/kilo docs/topology.md, pkg/mesh/topology.go):
 * - nodes are grouped into segments: with `full` granularity every node is its own segment, with
 *   `location` the nodes of one location share a segment (the location annotation wins over the
 *   topology.kubernetes.io/region label);
 * - every segment has one leader: the first node (by name) annotated as leader whose endpoint is a
 *   public address, else the first annotated leader, else the first node with a public endpoint,
 *   else the first node;
 * - the leaders of every two segments hold one WireGuard tunnel; inside a segment, traffic goes to
 *   the leader unencrypted (IP-in-IP);
 * - segments are sorted by their key ("location:<name>" or "node:<name>") and their leaders get
 *   WireGuard addresses from the Kilo subnet in that order (.1, .2, …);
 * - a node with a persistent keepalive sends keepalives to all its peers, which keeps NAT mappings
 *   open so peers can reach a node behind NAT.
 */
import * as ipaddr from "ipaddr.js";
import { FirewallCluster, NodeFirewallRule, nodeRuleSet, TrafficDirection } from "./firewall-rules";

/** A node as the report shows it. Every string is display text (tokens already resolved). */
export interface ReportNode {
  /** Kubernetes node name. */
  readonly name: string;
  readonly role: "server" | "agent";
  /** Public address (or the Terraform expression that will give it). */
  readonly address: string;
  readonly privateAddress?: string;
  /** Effective Kilo location (annotation, else the region label). */
  readonly location?: string;
  /** False for 1:1 NAT: Kilo is told the endpoint (force-endpoint). */
  readonly publicAddressOnInterface: boolean;
  /** Behind a NAT that forwards nothing in (home, IoT). */
  readonly behindNat: boolean;
  /** Keepalive seconds Kilo uses on this node (its persistent-keepalive annotation). */
  readonly persistentKeepalive?: number;
  /** Annotated as its location's leader. */
  readonly leader?: boolean;
  /** SSH jump host, if any. */
  readonly sshVia?: string;
}

export type ReportGranularity = "full" | "location";

export interface ReportMesh {
  readonly granularity: ReportGranularity;
  readonly wireguardPort: number;
  readonly wireguardSubnet: string;
}

/** One node's firewall rules, exactly as PeerFirewall renders them. */
export interface ReportFirewall {
  readonly node: string;
  readonly rules: NodeFirewallRule[];
}

export interface ClusterReportData {
  readonly title: string;
  readonly nodes: ReportNode[];
  /** Absent when the app has no KiloMesh. */
  readonly mesh?: ReportMesh;
  /** Empty when the app has no PeerFirewall. */
  readonly firewalls: ReportFirewall[];
}

/** A cluster as a synthesized stack carries it for the report command (see embeddedReport). */
export interface EmbeddedClusterReport {
  readonly version: 1;
  readonly title: string;
  readonly nodes: ReportNode[];
  readonly mesh?: ReportMesh;
  /** The PeerFirewall's inputs (node names are construct paths); rules are recomputed from them. */
  readonly firewall?: FirewallCluster;
  /** Construct path → Kubernetes node name, for the firewall's nodes. */
  readonly nodeNames?: { [path: string]: string };
}

/** The report data of an embedded cluster: the firewall's rules recomputed with nodeRuleSet, as PeerFirewall does. */
export function expandEmbeddedReport(e: EmbeddedClusterReport, title?: string): ClusterReportData {
  const firewalls: ReportFirewall[] = (e.firewall?.nodes ?? []).map((n) => ({
    node: e.nodeNames?.[n.name] ?? n.name,
    rules: nodeRuleSet(e.firewall!, n.name).rules,
  }));
  return { title: title ?? e.title, nodes: e.nodes, firewalls, ...(e.mesh ? { mesh: e.mesh } : {}) };
}

/** A group of nodes behind one WireGuard identity. */
export interface MeshSegment {
  /** Kilo's key: "node:<name>" or "location:<location>". */
  readonly key: string;
  readonly members: string[];
  readonly leader: string;
  /** The leader's WireGuard address, when the subnet is known at synth. */
  readonly wireguardIp?: string;
}

/** One WireGuard tunnel, between two segment leaders. */
export interface MeshTunnel {
  readonly a: string;
  readonly b: string;
  /** Nodes at either end that send keepalives on this tunnel. */
  readonly keepaliveFrom: string[];
  /** Set when neither end can be reached first (both behind NAT). */
  readonly warning?: string;
}

/** One "who may reach what" fact, from one incoming rule. */
export interface MatrixEntry {
  /** The node whose firewall holds the rule. */
  readonly to: string;
  /** A node name, or the source network text ("anywhere" when the rule has no source). */
  readonly from: string;
  readonly fromNode: boolean;
  /** "22/tcp", "2379:2380/tcp", "all/any". */
  readonly port: string;
  readonly purpose: string;
  /** "allow" or "limit" (rate-limited). */
  readonly action: string;
  /** Interface the rule is bound to (kilo0, kube-bridge), if any. */
  readonly via?: string;
  /** The rule's description. */
  readonly description: string;
}

const nameOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Whether Kilo would treat the node's endpoint as public (pkg/mesh/ip.go isPublic). */
function endpointIsPublic(n: ReportNode): boolean {
  // Behind NAT the interface address Kilo finds is a private one; the public address belongs to
  // the router. Every other node's endpoint is its public address (forced for 1:1 NAT).
  if (n.behindNat) return false;
  if (!ipaddr.isValid(n.address)) return true; // an expression known after apply: a public address by the model
  const ip = ipaddr.parse(n.address);
  if (ip.kind() === "ipv4") {
    const [o1, o2] = (ip as ipaddr.IPv4).octets;
    return !(o1 === 10 || (o1 === 172 && (o2 & 0xf0) === 0x10) || (o1 === 192 && o2 === 168));
  }
  const [p1] = (ip as ipaddr.IPv6).parts;
  return (p1 & 0xff00) !== 0xfd00;
}

/** The segments Kilo builds, sorted as Kilo sorts them, with their leaders and WireGuard IPs. */
export function meshSegments(data: ClusterReportData): MeshSegment[] {
  const mesh = data.mesh;
  if (!mesh) return [];
  const groups = new Map<string, ReportNode[]>();
  for (const n of data.nodes) {
    const key = mesh.granularity === "full" ? `node:${n.name}` : `location:${n.location ?? ""}`;
    groups.set(key, [...(groups.get(key) ?? []), n]);
  }
  const keys = [...groups.keys()].sort(nameOrder);
  let next: number[] | undefined;
  let bits = 0;
  if (ipaddr.isValidCIDR(mesh.wireguardSubnet)) {
    const [net, prefix] = ipaddr.parseCIDR(mesh.wireguardSubnet);
    next = net.toByteArray();
    bits = prefix;
  }
  return keys.map((key) => {
    const members = [...groups.get(key)!].sort((x, y) => nameOrder(x.name, y.name));
    const leader = findLeader(members);
    let wireguardIp: string | undefined;
    if (next) {
      for (let i = next.length - 1; i >= 0; i--) { next[i] = (next[i] + 1) & 0xff; if (next[i] !== 0) break; }
      const addr = ipaddr.fromByteArray(next);
      wireguardIp = addr.match(ipaddr.parseCIDR(mesh.wireguardSubnet)) ? `${addr.toString()}/${bits}` : undefined;
    }
    return { key, members: members.map((m) => m.name), leader: leader.name, wireguardIp };
  });
}

function findLeader(nodes: ReportNode[]): ReportNode {
  const leaders = nodes.filter((n) => n.leader);
  return leaders.find(endpointIsPublic) ?? leaders[0] ?? nodes.find(endpointIsPublic) ?? nodes[0];
}

/** Every WireGuard tunnel: one per pair of segments, between their leaders. */
export function meshTunnels(data: ClusterReportData): MeshTunnel[] {
  const segments = meshSegments(data);
  const byName = new Map(data.nodes.map((n) => [n.name, n]));
  const tunnels: MeshTunnel[] = [];
  for (let i = 0; i < segments.length; i++) {
    for (let j = i + 1; j < segments.length; j++) {
      const a = byName.get(segments[i].leader)!;
      const b = byName.get(segments[j].leader)!;
      const keepaliveFrom = [a, b].filter((n) => (n.persistentKeepalive ?? 0) > 0).map((n) => n.name);
      const warning = a.behindNat && b.behindNat
        ? `both ${a.name} and ${b.name} are behind NAT: neither can be reached first, so this tunnel may never come up`
        : [a, b].some((n) => n.behindNat && !((n.persistentKeepalive ?? 0) > 0))
          ? "a node behind NAT without keepalive: the tunnel comes up only when it sends first"
          : undefined;
      tunnels.push({ a: a.name, b: b.name, keepaliveFrom, ...(warning ? { warning } : {}) });
    }
  }
  return tunnels;
}

/** Node names by every address their packets may come from. */
function addressIndex(nodes: ReportNode[]): Map<string, string> {
  const index = new Map<string, string>();
  for (const n of nodes) {
    index.set(n.address, n.name);
    if (n.privateAddress !== undefined) index.set(n.privateAddress, n.name);
  }
  return index;
}

/**
 * Who may reach which port on whom: one entry per incoming rule, with the source named after the
 * node it belongs to when the rule's source is a node's address. Routed (forwarding) rules are
 * left out; see routedRules().
 */
export function firewallMatrix(data: ClusterReportData): MatrixEntry[] {
  const index = addressIndex(data.nodes);
  const entries: MatrixEntry[] = [];
  for (const fw of data.firewalls) {
    for (const r of fw.rules) {
      if (r.direction !== TrafficDirection.INCOMING) continue;
      const node = r.from !== undefined ? index.get(r.from) : undefined;
      entries.push({
        to: fw.node,
        from: node ?? r.from ?? "anywhere",
        fromNode: node !== undefined,
        port: `${r.port ?? "all"}/${r.protocol}`,
        purpose: r.purpose,
        action: r.action,
        ...(r.inInterface !== undefined ? { via: r.inInterface } : {}),
        description: r.description,
      });
    }
  }
  return entries;
}

/** The forwarding rules (pod traffic through kube-bridge and kilo0), per node. */
export function routedRules(data: ClusterReportData): Array<{ node: string; rule: NodeFirewallRule }> {
  return data.firewalls.flatMap((fw) => fw.rules
    .filter((r) => r.direction === TrafficDirection.ROUTED)
    .map((rule) => ({ node: fw.node, rule })));
}

/** Ports (with "(limited)" for rate-limited ones) that `from` may reach on `to`, sorted, deduplicated. */
export function allowedPorts(entries: MatrixEntry[], from: string, to: string): string[] {
  const ports = new Set<string>();
  for (const e of entries) {
    if (e.from === from && e.to === to && e.via === undefined) ports.add(e.action === "limit" ? `${e.port} (limited)` : e.port);
  }
  return [...ports].sort(portOrder);
}

function portOrder(a: string, b: string): number {
  const na = parseInt(a, 10);
  const nb = parseInt(b, 10);
  return na !== nb && !isNaN(na) && !isNaN(nb) ? na - nb : nameOrder(a, b);
}

/** Sources of the matrix's rows: nodes first (in cluster order), then networks. */
function matrixSources(data: ClusterReportData, entries: MatrixEntry[]): string[] {
  const networks = [...new Set(entries.filter((e) => !e.fromNode && e.via === undefined).map((e) => e.from))];
  return [...data.nodes.map((n) => n.name), ...networks];
}

// ---------------------------------------------------------------------------------------------
// Markdown

function md(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/([*_`<>[\]])/g, "\\$1");
}

function natText(n: ReportNode): string {
  const parts: string[] = [];
  if (!n.publicAddressOnInterface) parts.push("1:1 NAT (endpoint forced)");
  if (n.behindNat) parts.push("behind NAT");
  if ((n.persistentKeepalive ?? 0) > 0) parts.push(`keepalive ${n.persistentKeepalive}s`);
  return parts.length ? parts.join(", ") : "none";
}

/** The whole report as Markdown, with the Mermaid diagram embedded. */
export function renderMarkdown(data: ClusterReportData): string {
  const out: string[] = [];
  const segments = meshSegments(data);
  const tunnels = meshTunnels(data);
  const entries = firewallMatrix(data);
  const segmentOf = new Map(segments.flatMap((s) => s.members.map((m) => [m, s] as const)));

  out.push(`# ${md(data.title)}`, "");
  out.push("Written by cdktf-k3s-kilo when the app was synthesized, from the same data the resources are rendered from. " +
    "Addresses in `${…}` are Terraform expressions, known after apply.", "");

  out.push("## Nodes", "");
  out.push("| node | role | location | public address | private address | NAT | WireGuard |");
  out.push("| --- | --- | --- | --- | --- | --- | --- |");
  for (const n of data.nodes) {
    const s = segmentOf.get(n.name);
    const wg = !s ? "—" : s.leader === n.name ? (s.wireguardIp ?? "leader") : `via ${s.leader} (same location)`;
    const where = n.location ?? "—";
    out.push(`| ${md(n.name)} | ${n.role} | ${md(where)} | \`${n.address}\` | ${n.privateAddress !== undefined ? `\`${n.privateAddress}\`` : "—"} | ${natText(n)} | ${md(wg)} |`);
  }
  out.push("");

  if (data.mesh) {
    const m = data.mesh;
    out.push(`## WireGuard mesh (Kilo, ${m.granularity} granularity)`, "");
    out.push(`UDP ${m.wireguardPort}, WireGuard addresses from ${m.wireguardSubnet}. ` +
      `${segments.length} segment${segments.length === 1 ? "" : "s"}, ${tunnels.length} tunnel${tunnels.length === 1 ? "" : "s"}` +
      (m.granularity === "full" ? " — every pair of nodes, all node-to-node traffic encrypted." :
        " — between location leaders only; traffic inside a location is not encrypted."), "");
    out.push("| tunnel | keepalive | note |", "| --- | --- | --- |");
    for (const t of tunnels) {
      out.push(`| ${md(t.a)} ↔ ${md(t.b)} | ${t.keepaliveFrom.length ? `from ${t.keepaliveFrom.map(md).join(", ")}` : "—"} | ${t.warning ? md(t.warning) : ""} |`);
    }
    if (m.granularity === "location") {
      out.push("", "| location | members | leader |", "| --- | --- | --- |");
      for (const s of segments) out.push(`| ${md(s.key)} | ${s.members.map(md).join(", ")} | ${md(s.leader)} |`);
    }
    out.push("");
  }

  if (data.firewalls.length) {
    const targets = data.firewalls.map((f) => f.node);
    out.push("## Firewall (ufw)", "");
    out.push("Default on every node: deny incoming, deny routed; outgoing as set on the host (ufw's default: allow). " +
      "Rows: where traffic comes from; columns: the node it goes to; cells: the ports it may reach " +
      "(\"limited\": ufw rate limit). Empty: nothing.", "");
    out.push(`| from \\ to | ${targets.map(md).join(" | ")} |`, `| --- |${targets.map(() => " --- |").join("")}`);
    for (const src of matrixSources(data, entries)) {
      const cells = targets.map((t) => allowedPorts(entries, src, t).join(", "));
      if (cells.every((c) => c === "")) continue;
      out.push(`| ${md(src)} | ${cells.map((c) => md(c)).join(" | ")} |`);
    }
    out.push("");
    const bound = entries.filter((e) => e.via !== undefined);
    if (bound.length) {
      out.push("Cluster-internal traffic, accepted only on Kilo's interfaces (on every node):", "");
      const seen = new Set<string>();
      for (const e of bound) {
        const line = `- on \`${e.via}\` from \`${e.from}\`: ${md(e.description)}`;
        if (!seen.has(line)) { seen.add(line); out.push(line); }
      }
      out.push("");
    }
    const routed = routedRules(data);
    if (routed.length) {
      out.push("Forwarded (routed) traffic allowed on every node:", "");
      const seen = new Set<string>();
      for (const { rule } of routed) {
        const line = `- in on \`${rule.inInterface ?? "any"}\` from \`${rule.from ?? "any"}\`: ${md(rule.description)}`;
        if (!seen.has(line)) { seen.add(line); out.push(line); }
      }
      out.push("");
    }
  }

  out.push("## Diagram", "", "```mermaid", renderMermaid(data), "```", "");
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Graphviz DOT

const FONT = "DejaVu Sans";
const TUNNEL_PENWIDTH = 1.4;
const KEEPALIVE_PENWIDTH = 4;

function dotString(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")}"`;
}

function html(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function dotId(prefix: string, i: number): string {
  return `${prefix}${i}`;
}

/**
 * A Terraform expression shortened for a box: `${google_compute_instance.gcp.network_interface[0]
 * .access_config[0].nat_ip}` becomes `gcp….nat_ip (after apply)`; literal addresses are kept.
 */
export function shortAddress(text: string, max = 24): string {
  const m = /^\$\{(.*)\}$/s.exec(text);
  if (!m) return text;
  const expr = m[1];
  const ref = /^(?:data\.)?[a-z0-9_]+\.([A-Za-z0-9_-]+)\.(.+)$/.exec(expr);
  let short: string;
  if (ref) {
    const attr = ref[2].split(".").pop()!;
    short = ref[2] === attr ? `${ref[1]}.${attr}` : `${ref[1]}….${attr}`;
  } else {
    short = expr;
  }
  if (short.length > max) short = `${short.slice(0, max - 1)}…`;
  return `${short} (after apply)`;
}

function nodeLines(n: ReportNode, segment: MeshSegment | undefined): string[] {
  const lines = [`${n.name} (${n.role})`];
  if (n.location !== undefined) lines.push(n.location);
  lines.push(shortAddress(n.address));
  if (n.privateAddress !== undefined) lines.push(`private ${shortAddress(n.privateAddress)}`);
  const nat = natText(n);
  if (nat !== "none") lines.push(nat);
  if (segment?.leader === n.name && segment.wireguardIp) lines.push(`wg ${segment.wireguardIp}`);
  return lines;
}

/**
 * The report as a Graphviz graph: nodes (boxes; servers bold, nodes behind NAT dashed), WireGuard
 * tunnels (green; bold where keepalives are sent), unencrypted in-location links (dashed), a
 * legend, and the firewall matrix as a table (the same cells as the Markdown's).
 */
export function renderDot(data: ClusterReportData): string {
  const segments = meshSegments(data);
  const tunnels = meshTunnels(data);
  const entries = firewallMatrix(data);
  const segmentOf = new Map(segments.flatMap((s) => s.members.map((m) => [m, s] as const)));
  const id = new Map(data.nodes.map((n, i) => [n.name, dotId("n", i)]));
  const out: string[] = [];
  // Laid out by circo (as Kilo's own `kgctl graph | circo`): the nodes on a circle, the tunnels
  // as chords; the firewall table is a separate component placed beside it.
  out.push("digraph cluster_report {");
  // DejaVu Sans: installed on most Linux desktops, and Graphviz (viz.js included) has its metrics, so
  // boxes are sized for the font the picture is drawn in. Helvetica is missing on Linux, where a
  // wider fallback overflowed the boxes; where DejaVu is missing, the fallbacks are narrower.
  // The two components (mesh, table) are packed side by side, top-aligned.
  out.push(`  graph [label=${dotString(data.title)}, labelloc=t, fontname="${FONT}", fontsize=18, pad=0.3, mindist=1.4, layout=circo, pack=24, packmode="array_t2"];`);
  out.push(`  node [shape=box, style="rounded,filled", fillcolor="#f4f7fb", fontname="${FONT}", fontsize=11, margin="0.15,0.08"];`);
  out.push(`  edge [fontname="${FONT}", fontsize=9, arrowhead=none];`);
  data.nodes.forEach((n) => {
    const server = n.role === "server";
    out.push(`  ${id.get(n.name)} [label=${dotString(nodeLines(n, segmentOf.get(n.name)).join("\n"))}` +
      `${server ? ", penwidth=2, fillcolor=\"#e3ecfa\"" : ""}${n.behindNat ? ", style=\"rounded,filled,dashed\"" : ""}];`);
  });
  for (const t of tunnels) {
    // Keepalive tunnels are thicker: an explicit penwidth would override style=bold, so the width itself differs.
    const attrs = [`color="${t.warning ? "#c03030" : "#2a7a2a"}"`, `penwidth=${t.keepaliveFrom.length ? KEEPALIVE_PENWIDTH : TUNNEL_PENWIDTH}`];
    if (t.keepaliveFrom.length) attrs.push(`tooltip=${dotString(`keepalive from ${t.keepaliveFrom.join(", ")}`)}`);
    if (t.warning) attrs.push(`label=${dotString("!")}`, `tooltip=${dotString(t.warning)}`);
    out.push(`  ${id.get(t.a)} -> ${id.get(t.b)} [${attrs.join(", ")}];`);
  }
  for (const s of segments) {
    for (const m of s.members) {
      if (m !== s.leader) out.push(`  ${id.get(m)} -> ${id.get(s.leader)} [style=dashed, color="#c07000", tooltip="same location, not encrypted"];`);
    }
  }
  const networks = [...new Set(entries.filter((e) => !e.fromNode && e.via === undefined).map((e) => e.from))];
  const legend: string[] = [];
  if (data.mesh) {
    legend.push(`<tr><td align="left"><font color="#2a7a2a"><b>━━</b></font></td><td align="left">WireGuard tunnel, ${data.mesh.wireguardPort}/udp (${data.mesh.granularity} mesh, ${tunnels.length} tunnels)</td></tr>`);
    if (tunnels.some((t) => t.keepaliveFrom.length)) {
      legend.push(`<tr><td align="left"><font color="#2a7a2a" point-size="16"><b>━</b></font></td><td align="left">thick: keepalives from ${html([...new Set(tunnels.flatMap((t) => t.keepaliveFrom))].join(", "))} (behind NAT, dashed box)</td></tr>`);
    }
    if (segments.some((s) => s.members.length > 1)) legend.push(`<tr><td align="left"><font color="#c07000"><b>- -</b></font></td><td align="left">same location: to the leader, not encrypted</td></tr>`);
  }
  if (data.firewalls.length) {
    const targets = data.firewalls.map((f) => f.node);
    const rows: string[] = [];
    rows.push(`<tr><td colspan="${targets.length + 1}"><b>firewall (ufw): who may reach which port on whom</b></td></tr>`);
    rows.push(`<tr><td><i>from \\ to</i></td>${targets.map((t) => `<td><b>${html(t)}</b></td>`).join("")}</tr>`);
    for (const src of matrixSources(data, entries)) {
      const cells = targets.map((t) => allowedPorts(entries, src, t));
      if (cells.every((c) => c.length === 0)) continue;
      const label = networks.includes(src) && src === "anywhere" ? "the Internet" : shortAddress(src);
      rows.push(`<tr><td align="left"><b>${html(label)}</b></td>${cells.map((c) => `<td>${c.length ? c.map((x) => html(x).replace(" (limited)", "<br/>(limited)")).join("<br/>") : "·"}</td>`).join("")}</tr>`);
    }
    rows.push(`<tr><td colspan="${targets.length + 1}" align="left">everything else: denied (default deny incoming and routed)</td></tr>`);
    // The legend under the table, in it: one block beside the mesh instead of a third one.
    if (legend.length) {
      rows.push(`<tr><td colspan="${targets.length + 1}" align="left" border="0"><table align="left" border="0" cellspacing="0" cellpadding="3">${legend.join("")}</table></td></tr>`);
    }
    out.push(`  matrix [shape=plaintext, style="", label=<<table border="0" cellborder="1" cellspacing="0" cellpadding="6">${rows.join("")}</table>>];`);
  }
  if (legend.length && !data.firewalls.length) {
    out.push(`  legend [shape=plaintext, style="", label=<<table border="0" cellspacing="0" cellpadding="3">${legend.join("")}</table>>];`);
  }
  out.push("}");
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// Mermaid

function mermaidText(text: string): string {
  return text.replace(/"/g, "#quot;").replace(/</g, "#lt;").replace(/>/g, "#gt;");
}

/**
 * A Mermaid flowchart of nodes, WireGuard tunnels (solid, both ways) and admin access (dotted),
 * which GitHub and most Markdown previews render inside the report.
 */
export function renderMermaid(data: ClusterReportData): string {
  const segments = meshSegments(data);
  const tunnels = meshTunnels(data);
  const entries = firewallMatrix(data);
  const segmentOf = new Map(segments.flatMap((s) => s.members.map((m) => [m, s] as const)));
  const id = new Map(data.nodes.map((n, i) => [n.name, dotId("n", i)]));
  const out = ["flowchart LR"];
  for (const n of data.nodes) {
    out.push(`  ${id.get(n.name)}["${nodeLines(n, segmentOf.get(n.name)).map(mermaidText).join("<br/>")}"]`);
  }
  for (const t of tunnels) {
    out.push(t.keepaliveFrom.length
      ? `  ${id.get(t.a)} <-- "keepalive from ${mermaidText(t.keepaliveFrom.join(", "))}" --> ${id.get(t.b)}`
      : `  ${id.get(t.a)} <--> ${id.get(t.b)}`);
  }
  for (const s of segments) {
    for (const m of s.members) if (m !== s.leader) out.push(`  ${id.get(m)} -. "same location, not encrypted" .- ${id.get(s.leader)}`);
  }
  const networks = [...new Set(entries.filter((e) => !e.fromNode && e.via === undefined).map((e) => e.from))];
  networks.forEach((net, i) => {
    out.push(`  net${i}[/"${mermaidText(net === "anywhere" ? "the Internet" : net)}"/]`);
    for (const n of data.nodes) {
      const ports = allowedPorts(entries, net, n.name);
      if (ports.length) out.push(`  net${i} -. "${mermaidText(ports.join(", "))}" .-> ${id.get(n.name)}`);
    }
  });
  return out.join("\n");
}
