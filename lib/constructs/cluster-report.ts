/**
 * ClusterReport: what an app is about to build, as a picture and a table a person can read —
 * nodes, the WireGuard tunnels Kilo will build, and who may reach which port on whom — collected
 * from the constructs themselves and written next to cdktf.out.
 */
import { mkdirSync, writeFileSync } from "fs";
import { join } from "path";
import { DefaultTokenResolver, StringConcat, TerraformStack, Token, Tokenization } from "cdktf";
import { IConstruct } from "constructs";
import * as annotations from "@cdktf/provider-kubernetes/lib/annotations";
import { FirewallCluster } from "../render/firewall-rules";
import {
  ClusterReportData, EmbeddedClusterReport, firewallMatrix, meshTunnels, renderDot, renderMarkdown, renderMermaid, ReportFirewall, ReportNode,
} from "../render/cluster-report";
import { ANNOTATION_LEADER, ANNOTATION_PERSISTENT_KEEPALIVE } from "../render/kilo-manifests";
import { K3sNode, NodeRole } from "./k3s-node";
import { K3sServer } from "./k3s-server";
import { KiloMesh, MeshGranularity } from "./kilo-mesh";
import { PeerFirewall } from "./peer-firewall";

/** Options of a cluster report. */
export interface ClusterReportOptions {
  /**
   * The report's title.
   * @default "Cluster report"
   */
  readonly title?: string;
}

/** The file names ClusterReport.writeTo writes. */
export const CLUSTER_REPORT_FILES = { markdown: "cluster-report.md", dot: "cluster-report.dot" };

/** Display text of a value that may hold Terraform tokens: `${digitalocean_droplet.a.ipv4_address}`. */
function display(scope: IConstruct, value: string): string {
  if (!Token.isUnresolved(value)) return value;
  try {
    const resolved = Tokenization.resolve(value, {
      scope: TerraformStack.of(scope),
      resolver: new DefaultTokenResolver(new StringConcat()),
      preparing: false,
    });
    return typeof resolved === "string" ? resolved : JSON.stringify(resolved);
  } catch {
    return "(known after apply)";
  }
}

function displayAll<T>(scope: IConstruct, value: T): T {
  if (typeof value === "string") return display(scope, value) as unknown as T;
  if (Array.isArray(value)) return value.map((v) => displayAll(scope, v)) as unknown as T;
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = displayAll(scope, v);
    return out as T;
  }
  return value;
}

/**
 * Collect the report's data from every K3sServer, K3sAgent, PeerFirewall and KiloMesh under
 * `scope`. Firewall rules are PeerFirewall.rulesFor(node), the lists its ufw scripts are rendered
 * from; keepalives and leaders are read from the node annotations KiloMesh creates.
 */
export function collectReportData(scope: IConstruct, options: ClusterReportOptions = {}, server?: K3sServer, withRules = true): ClusterReportData {
  const all = scope.node.findAll();
  // With a server: its cluster only (the nodes, the firewalls over them, its mesh).
  const members = server ? new Set<K3sNode>(server.clusterNodes.filter((n) => !n.decommissioned)) : undefined;
  const nodes = all.filter((c): c is K3sNode => c instanceof K3sNode && (!members || members.has(c)));
  const firewalls = all.filter((c): c is PeerFirewall => c instanceof PeerFirewall && (!members || c.nodes.some((n) => members.has(n))));
  const meshes = all.filter((c): c is KiloMesh => c instanceof KiloMesh && (!server || c.server === server));
  if (meshes.length > 1) {
    throw new Error(`ClusterReport: found ${meshes.length} KiloMesh constructs under ${scope.node.path || "the app"}; report one cluster at a time (pass the scope that holds it)`);
  }
  const mesh = meshes[0];

  // What KiloMesh annotates each node with, by node name.
  const nodeAnnotations = new Map<string, Record<string, string>>();
  for (const c of mesh ? mesh.node.findAll() : []) {
    if (c instanceof annotations.Annotations) {
      const name = c.metadataInput?.name;
      if (typeof name === "string") nodeAnnotations.set(name, { ...(c.annotationsInput ?? {}) });
    }
  }

  const reportNodes: ReportNode[] = nodes.map((n) => {
    const h = n.host;
    const a = nodeAnnotations.get(n.nodeName) ?? {};
    const keepalive = a[ANNOTATION_PERSISTENT_KEEPALIVE];
    const location = h.location ?? n.labels["topology.kubernetes.io/region"];
    const node: ReportNode = {
      name: n.nodeName,
      role: n.role === NodeRole.SERVER ? "server" : "agent",
      address: display(n, h.address),
      publicAddressOnInterface: h.publicAddressOnInterface !== false,
      behindNat: h.behindNat === true,
      leader: a[ANNOTATION_LEADER] !== undefined,
      ...(h.privateAddress !== undefined ? { privateAddress: display(n, h.privateAddress) } : {}),
      ...(location !== undefined ? { location: display(n, location) } : {}),
      ...(keepalive !== undefined && !Token.isUnresolved(keepalive) ? { persistentKeepalive: Number(keepalive) } : {}),
      ...(h.ssh?.bastion?.host !== undefined ? { sshVia: display(n, h.ssh.bastion.host) } : {}),
    };
    return node;
  });

  const names = new Map(nodes.map((n) => [n, n.nodeName]));
  const fwData: ReportFirewall[] = [];
  for (const fw of withRules ? firewalls : []) {
    for (const n of fw.nodes) {
      // Addresses in the rules are resolved exactly as the nodes' addresses above, so a rule's
      // source still matches the node it came from.
      fwData.push({ node: names.get(n) ?? n.nodeName, rules: displayAll(n, fw.rulesFor(n)) });
    }
  }

  return {
    title: options.title ?? "Cluster report",
    nodes: reportNodes,
    firewalls: fwData,
    ...(mesh ? {
      mesh: {
        granularity: mesh.meshGranularity === MeshGranularity.LOCATION ? "location" : "full",
        wireguardPort: mesh.wireguardPort,
        wireguardSubnet: mesh.wireguardSubnet,
      },
    } : {}),
  };
}

/**
 * What a synthesized stack carries for `cdktf-k3s-kilo-report` (under "//" in cdk.tf.json, which
 * Terraform ignores): the cluster of `server` with its firewall's inputs rather than its rules, so
 * the size grows with the nodes, not their square; the command recomputes the rules from them with
 * the same function PeerFirewall uses.
 */
export function embeddedReport(server: K3sServer): EmbeddedClusterReport {
  // Without the rules (N² of them): the command recomputes them from the firewall's inputs.
  const data = collectReportData(server.node.root, { title: `Cluster of ${server.node.path}` }, server, false);
  const fw = server.node.root.node.findAll().find((c): c is PeerFirewall => c instanceof PeerFirewall && c.nodes.includes(server));
  let firewall: FirewallCluster | undefined;
  const nodeNames: { [path: string]: string } = {};
  if (fw) {
    firewall = displayAll(fw, fw._settings);
    for (const n of fw.nodes) nodeNames[n.node.path] = n.nodeName;
  }
  return { version: 1, title: data.title, nodes: data.nodes, ...(data.mesh ? { mesh: data.mesh } : {}), ...(firewall ? { firewall, nodeNames } : {}) };
}

/** The key under "//" in cdk.tf.json that holds embedded reports, by server path. */
export const EMBEDDED_REPORT_KEY = "cdktf-k3s-kilo";

/**
 * A report of the cluster an app describes: its nodes (role, location, public address,
 * NAT and keepalive), the WireGuard tunnels Kilo builds for the chosen mesh granularity, and the
 * firewall matrix (who may reach which port on whom), computed from the same rule lists
 * PeerFirewall renders. Markdown (with a Mermaid diagram) and Graphviz DOT; turn the DOT into
 * SVG with `dot -Tsvg` or any Graphviz build.
 *
 * @example
 * app.synth();
 * ClusterReport.of(app).writeTo("cdktf.out");
 */
export class ClusterReport {
  /** Build the report of every node, firewall and mesh under `scope` (an App or a stack). */
  public static of(scope: IConstruct, options: ClusterReportOptions = {}): ClusterReport {
    return new ClusterReport(collectReportData(scope, options));
  }

  /** The report as Markdown, with a Mermaid diagram GitHub and most editors render. */
  public readonly markdown: string;
  /** The diagram as a Graphviz graph. */
  public readonly dot: string;
  /** The diagram as a Mermaid flowchart. */
  public readonly mermaid: string;
  /** How many WireGuard tunnels Kilo will build. */
  public readonly tunnelCount: number;
  /** How many (source, port, node) allowances the firewalls hold for incoming traffic. */
  public readonly firewallEntryCount: number;

  private constructor(data: ClusterReportData) {
    this.markdown = renderMarkdown(data);
    this.dot = renderDot(data);
    this.mermaid = renderMermaid(data);
    this.tunnelCount = meshTunnels(data).length;
    this.firewallEntryCount = firewallMatrix(data).length;
  }

  /**
   * Write `cluster-report.md` and `cluster-report.dot` into `directory` (created if missing).
   * @returns the paths written
   */
  public writeTo(directory: string): string[] {
    mkdirSync(directory, { recursive: true });
    const md = join(directory, CLUSTER_REPORT_FILES.markdown);
    const dot = join(directory, CLUSTER_REPORT_FILES.dot);
    writeFileSync(md, this.markdown);
    writeFileSync(dot, this.dot);
    return [md, dot];
  }
}
