/**
 * The peer firewall as data: from a plain description of the cluster (who is a server, who is an
 * agent, where each one lives, which networks administer it) to the list of ufw rules each node
 * needs. No cdktf here: tests, reports and the bench read these lists before anything becomes shell.
 *
 * Where the rules come from:
 * - K3s inbound ports: 6443/tcp agents->servers, 10250/tcp kubelet between nodes, 2379-2380/tcp
 *   between servers with embedded etcd; flannel's ports are not needed with flannel off
 *   (k3s-io/docs docs/installation/requirements.md, "Inbound Rules for K3s Nodes").
 * - K3s with ufw: traffic from the pod and service networks must get past ufw before kube-proxy's
 *   rules see it (k3s-io/docs requirements.md, ufw section: `ufw allow from 10.42.0.0/16`, `from
 *   10.43.0.0/16`). We bind those allowances to Kilo's interfaces instead of "from anywhere", so a
 *   packet that claims a pod address but arrives on the public NIC is still dropped.
 * - Kilo: WireGuard on 51820/udp between nodes (squat/kilo cmd/kg `--port`); the mesh interface
 *   kilo0 (`--interface`) and the CNI bridge kube-bridge (manifests/kilo-k3s.yaml conflist).
 *   kg only adds FORWARD accept rules with `--iptables-forward-rules`, which is off by default
 *   and documented as "may break firewalls with a deny all policy" (cmd/kg/main.go;
 *   pkg/mesh/topology.go Rules()). ufw's routed policy is DROP, so without our `route allow` rules
 *   a pod's packets to another node (kube-bridge -> kilo0), from another node (kilo0 ->
 *   kube-bridge) and to the Internet (kube-bridge -> NIC, then masqueraded by KILO-NAT) are
 *   dropped in FORWARD. Replies pass through ufw's own RELATED,ESTABLISHED rules.
 * - Kilo's `--listen` (:1107, metrics/pprof/graph) gets no rule: it stays closed to the Internet;
 *   Prometheus inside the cluster still reaches it through kilo0/kube-bridge.
 */
import { createHash } from "crypto";

/** A transport protocol for a firewall rule. */
export enum Protocol {
  /** TCP. */
  TCP = "tcp",
  /** UDP. */
  UDP = "udp",
  /** Any protocol (only for rules without a port range). */
  ANY = "any",
}

/** What a rule does with matching traffic. */
export enum RuleAction {
  /** Accept. */
  ALLOW = "allow",
  /** Accept, but drop a source that opens 6 or more connections in 30 seconds (ufw `limit`). */
  LIMIT = "limit",
}

/** Which traffic a rule applies to. */
export enum TrafficDirection {
  /** Traffic addressed to the host itself (iptables INPUT). */
  INCOMING = "incoming",
  /** Traffic the host forwards, such as pod traffic crossing kube-bridge and kilo0 (iptables FORWARD, ufw `route`). */
  ROUTED = "routed",
}

/**
 * An extra port the operator opens on every node (for example an ingress controller's hostPort).
 */
export interface FirewallRule {
  /** The port, or the first port of a range. */
  readonly port: number;
  /**
   * Last port of a range (inclusive).
   * @default - a single port
   */
  readonly endPort?: number;
  /**
   * The protocol.
   * @default Protocol.TCP
   */
  readonly protocol?: Protocol;
  /**
   * Source networks (CIDR blocks or single IP addresses).
   * @default - from anywhere
   */
  readonly from?: string[];
  /**
   * Why the port is open; shown in reports.
   * @default "extra rule"
   */
  readonly description?: string;
}

/**
 * One ufw rule of one node, as computed by PeerFirewall.
 */
export interface NodeFirewallRule {
  /**
   * Why the rule exists, as a short key: ssh, wireguard, kube-apiserver, kubelet, etcd,
   * kilo-interface, kilo-forward or extra.
   */
  readonly purpose: string;
  /** A sentence saying why the rule exists. */
  readonly description: string;
  /** Allow or rate-limit. */
  readonly action: RuleAction;
  /** To the host, or forwarded through it. */
  readonly direction: TrafficDirection;
  /** The protocol. */
  readonly protocol: Protocol;
  /**
   * Destination port or range in ufw form ("22", "2379:2380").
   * @default - all ports
   */
  readonly port?: string;
  /**
   * Source address or CIDR block.
   * @default - anywhere
   */
  readonly from?: string;
  /**
   * Interface the traffic arrives on.
   * @default - any interface
   */
  readonly inInterface?: string;
  /**
   * The ufw comment that marks the rule as ours, `cdktf-k3s-kilo:<16 hex digits>` (a hash of the
   * rule). Computed on the host at apply time when the rule holds a Terraform token.
   * @default - computed at apply time
   */
  readonly tag?: string;
}

/** Every ufw comment we write starts with this; rules without it belong to the operator. */
export const TAG_PREFIX = "cdktf-k3s-kilo:";
/** Kilo's WireGuard interface (kg `--interface`). */
export const KILO_INTERFACE = "kilo0";
/** The CNI bridge in Kilo's conflist. */
export const KILO_BRIDGE = "kube-bridge";

/** Kilo's IPIP interface (squat/kilo pkg/encapsulation/ipip.go): traffic inside a location, encapsulated. */
export const KILO_TUNNEL = "tunl0";
/**
 * The interfaces that legitimately carry packets to and from the pod, service and mesh ranges:
 * loopback, Kilo's WireGuard interface, the pod bridge and Kilo's IPIP tunnel. Everything else
 * (the public and private NICs) is guarded.
 */
export const GUARD_INTERFACES = ["lo", KILO_INTERFACE, KILO_BRIDGE, KILO_TUNNEL];

export const DEFAULT_WIREGUARD_PORT = 51820;
export const DEFAULT_POD_CIDR = "10.42.0.0/16";
export const DEFAULT_SERVICE_CIDR = "10.43.0.0/16";
export const DEFAULT_KILO_SUBNET = "10.4.0.0/16";
export const API_PORT = 6443;
export const KUBELET_PORT = 10250;
export const ETCD_PORTS = "2379:2380";

/** A node as the firewall sees it. */
export interface FirewallNode {
  /** Unique name (the Kubernetes node name). */
  readonly name: string;
  readonly role: "server" | "agent";
  /** Public address peers reach it from (IP, or a Terraform token that resolves to one). */
  readonly address: string;
  /** Address on a network shared with some peers, also a source of its traffic. */
  readonly privateAddress?: string;
  /**
   * Where the node runs (host.location). Nodes with the same location share a private network
   * (Kilo's meaning of a location), so only they are allowed each other's private addresses.
   */
  readonly location?: string;
  /** The port sshd listens on. Default 22. */
  readonly sshPort?: number;
  /** Addresses SSH to this node comes from besides the admin networks (its bastion). */
  readonly sshFrom?: string[];
  /** Further SSH ports open to the admin networks: this node is other nodes' bastion on them. */
  readonly bastionPorts?: number[];
}

/** The whole cluster as the firewall sees it. */
export interface FirewallCluster {
  readonly nodes: FirewallNode[];
  /** Networks that administer the cluster: SSH and the API. Empty: SSH from anywhere. */
  readonly adminCidrs?: string[];
  /** More networks allowed to reach the API (6443) only. */
  readonly apiCidrs?: string[];
  readonly wireguardPort?: number;
  readonly podCidr?: string;
  readonly serviceCidr?: string;
  readonly kiloSubnet?: string;
  readonly extraRules?: FirewallRule[];
  /** Rate-limit SSH from the admin networks and bastions too (SSH from anywhere always is). Default false. */
  readonly rateLimitSsh?: boolean;
}

/**
 * Default policies; the same on every node. Incoming and routed are made deny unless the operator
 * closed them already (deny or reject); the outgoing policy is the operator's and is left as set.
 */
export interface FirewallDefaults {
  readonly incoming: "deny";
  readonly routed: "deny";
}

export const FIREWALL_DEFAULTS: FirewallDefaults = { incoming: "deny", routed: "deny" };

/**
 * The raw-table guard: packets addressed to, or claiming to come from, these ranges are dropped
 * before conntrack and kube-proxy's DNAT unless they arrive on one of these interfaces.
 */
export interface NodeGuard {
  /** The pod, service and Kilo networks (CIDRs, or Terraform tokens that resolve to one). */
  readonly ranges: string[];
  readonly interfaces: string[];
}

/** One node's complete firewall. */
export interface NodeRuleSet {
  readonly node: string;
  readonly defaults: FirewallDefaults;
  /** In the order they are applied: SSH first, so enabling ufw can never lock us out. */
  readonly rules: NodeFirewallRule[];
  readonly guard: NodeGuard;
}

/** cdktf's token markers, recognised without importing cdktf (this layer stays pure). */
function isTokenText(value: string | undefined): boolean {
  return value !== undefined && /\$\{TfToken\[/.test(value);
}

/**
 * The ufw arguments of a rule, unquoted: `limit proto tcp from 198.51.100.7/32 to any port 22`.
 * The shell renderer quotes them; the tag is a hash of exactly these words joined by spaces,
 * which the converge script recomputes on the host once Terraform has filled in every value.
 */
export function ruleWords(r: Omit<NodeFirewallRule, "tag">): string[] {
  const w: string[] = [];
  if (r.direction === TrafficDirection.ROUTED) w.push("route");
  w.push(r.action);
  if (r.inInterface !== undefined) w.push("in", "on", r.inInterface);
  if (r.protocol !== Protocol.ANY) w.push("proto", r.protocol);
  w.push("from", r.from ?? "any", "to", "any");
  if (r.port !== undefined) w.push("port", r.port);
  return w;
}

/** The tag of a rule whose values are all known at synth; undefined when one is a token. */
export function ruleTag(r: Omit<NodeFirewallRule, "tag">): string | undefined {
  return tagOfWords(ruleWords(r));
}

function tagOfWords(words: string[]): string | undefined {
  if (words.some(isTokenText)) return undefined;
  return TAG_PREFIX + createHash("sha256").update(words.join(" ")).digest("hex").slice(0, 16);
}

/**
 * Tags by rule text, per cluster: a peer's rule is the same text on every other node, so a
 * 200-node cluster hashes about 800 distinct rules instead of 80,000.
 */
const tagCache = new WeakMap<FirewallCluster, Map<string, string | undefined>>();

function portText(port: number, endPort?: number): string {
  return endPort !== undefined && endPort !== port ? `${port}:${endPort}` : String(port);
}

/** Every address a node's packets can come from. */
function sourcesOf(n: FirewallNode): string[] {
  return n.privateAddress !== undefined && n.privateAddress !== n.address ? [n.address, n.privateAddress] : [n.address];
}

/**
 * Whether two nodes share a private network: both declare the same location. A private address
 * (10.128.0.2 behind a 1:1 NAT, say) means something only on its own network; elsewhere the range
 * belongs to someone else and the node's packets never come from it.
 */
export function sharePrivateNetwork(a: FirewallNode, b: FirewallNode): boolean {
  return a.location !== undefined && a.location !== "" && a.location === b.location;
}

/** The addresses `n`'s packets reach `self` from: its public address, and its private one on a shared network. */
function sourcesSeenBy(n: FirewallNode, self: FirewallNode): string[] {
  return sharePrivateNetwork(n, self) ? sourcesOf(n) : [n.address];
}

/** Compute one node's rules. */
export function nodeRuleSet(cluster: FirewallCluster, nodeName: string): NodeRuleSet {
  const self = cluster.nodes.find((n) => n.name === nodeName);
  if (!self) throw new Error(`no node named "${nodeName}" in the firewall's cluster`);
  const admin = cluster.adminCidrs ?? [];
  const wgPort = cluster.wireguardPort ?? DEFAULT_WIREGUARD_PORT;
  const podCidr = cluster.podCidr ?? DEFAULT_POD_CIDR;
  const serviceCidr = cluster.serviceCidr ?? DEFAULT_SERVICE_CIDR;
  const kiloSubnet = cluster.kiloSubnet ?? DEFAULT_KILO_SUBNET;
  const selfAddresses = new Set(sourcesOf(self));
  const others = cluster.nodes.filter((n) => n.name !== self.name);
  const peerSources = (nodes: FirewallNode[]) =>
    nodes.flatMap((n) => sourcesSeenBy(n, self)).filter((a) => !selfAddresses.has(a));
  const servers = cluster.nodes.filter((n) => n.role === "server");

  const rules: NodeFirewallRule[] = [];
  const seen = new Set<string>();
  let tags = tagCache.get(cluster);
  if (tags === undefined) tagCache.set(cluster, tags = new Map());
  const add = (r: Omit<NodeFirewallRule, "tag">) => {
    const words = ruleWords(r);
    const key = words.join(" ");
    if (seen.has(key)) return; // the same source listed twice (an admin CIDR that is also a bastion)
    seen.add(key);
    let tag = tags!.get(key);
    if (tag === undefined && !tags!.has(key)) tags!.set(key, tag = tagOfWords(words));
    rules.push(tag !== undefined ? { ...r, tag } : { ...r });
  };
  const tcp = (purpose: string, description: string, port: string, sources: string[], action = RuleAction.ALLOW) => {
    for (const from of sources) {
      add({ purpose, description, action, direction: TrafficDirection.INCOMING, protocol: Protocol.TCP, port, from });
    }
  };

  // SSH first: the converge script adds rules in this order, before ufw is enabled.
  const sshPort = String(self.sshPort ?? 22);
  // ufw `limit`: a source opening its 6th connection within 30 seconds is refused for a while.
  const limitSsh = cluster.rateLimitSsh ?? false;
  const sshAction = limitSsh ? RuleAction.LIMIT : RuleAction.ALLOW;
  if (admin.length === 0) {
    add({
      purpose: "ssh",
      description: "SSH from anywhere, rate-limited (no admin networks given)",
      action: RuleAction.LIMIT,
      direction: TrafficDirection.INCOMING,
      protocol: Protocol.TCP,
      port: sshPort,
    });
  } else {
    tcp("ssh", `SSH from the admin networks${limitSsh ? ", rate-limited" : ""}`, sshPort, admin, sshAction);
  }
  tcp("ssh", `SSH from this node's bastion${limitSsh ? ", rate-limited" : ""}`, sshPort, self.sshFrom ?? [], sshAction);
  for (const port of new Set((self.bastionPorts ?? []).map(String).filter((p) => p !== sshPort))) {
    if (admin.length === 0) add({ purpose: "ssh", description: "SSH as the other nodes' bastion, from anywhere, rate-limited", action: RuleAction.LIMIT, direction: TrafficDirection.INCOMING, protocol: Protocol.TCP, port });
    else tcp("ssh", `SSH as the other nodes' bastion, from the admin networks${limitSsh ? ", rate-limited" : ""}`, port, admin, sshAction);
  }

  for (const from of peerSources(others)) {
    add({
      purpose: "wireguard",
      description: "Kilo's WireGuard tunnels from the other nodes",
      action: RuleAction.ALLOW,
      direction: TrafficDirection.INCOMING,
      protocol: Protocol.UDP,
      port: String(wgPort),
      from,
    });
  }

  if (self.role === "server") {
    tcp("kube-apiserver", "Kubernetes API from the other nodes", String(API_PORT), peerSources(others));
    tcp("kube-apiserver", "Kubernetes API from the admin networks", String(API_PORT), admin);
    tcp("kube-apiserver", "Kubernetes API from the extra API networks", String(API_PORT), cluster.apiCidrs ?? []);
  }

  tcp("kubelet", "kubelet API from the other nodes", String(KUBELET_PORT), peerSources(others));

  if (self.role === "server" && servers.length > 1) {
    tcp("etcd", "embedded etcd between servers", ETCD_PORTS, peerSources(servers.filter((s) => s !== self)));
  }

  // Cluster-internal traffic, only on Kilo's interfaces: WireGuard authenticates every packet on
  // kilo0 against its peer's allowed IPs, and kube-bridge only carries this node's pods.
  const internal: Array<[string, string, string]> = [
    [KILO_INTERFACE, podCidr, "pods on other nodes, through the mesh"],
    [KILO_INTERFACE, serviceCidr, "the service network, through the mesh"],
    [KILO_INTERFACE, kiloSubnet, "other nodes' mesh addresses"],
    [KILO_BRIDGE, podCidr, "this node's pods"],
    [KILO_BRIDGE, serviceCidr, "the service network, from this node's pods"],
  ];
  for (const [iface, from, who] of internal) {
    add({
      purpose: "kilo-interface",
      description: `to this host from ${who} (${iface})`,
      action: RuleAction.ALLOW,
      direction: TrafficDirection.INCOMING,
      protocol: Protocol.ANY,
      inInterface: iface,
      from,
    });
  }
  const forwarded: Array<[string, string, string]> = [
    [KILO_BRIDGE, podCidr, "this node's pods to other pods, the mesh and the Internet"],
    [KILO_INTERFACE, podCidr, "pods on other nodes to this node's pods"],
    [KILO_INTERFACE, kiloSubnet, "other nodes (mesh addresses) to this node's pods"],
  ];
  for (const [iface, from, who] of forwarded) {
    add({
      purpose: "kilo-forward",
      description: `forwarded: ${who}`,
      action: RuleAction.ALLOW,
      direction: TrafficDirection.ROUTED,
      protocol: Protocol.ANY,
      inInterface: iface,
      from,
    });
  }

  for (const x of cluster.extraRules ?? []) {
    const protocol = x.protocol ?? Protocol.TCP;
    const base = {
      purpose: "extra",
      description: x.description ?? "extra rule",
      action: RuleAction.ALLOW,
      direction: TrafficDirection.INCOMING,
      protocol,
      port: portText(x.port, x.endPort),
    };
    const sources = x.from ?? [];
    if (sources.length === 0) add(base);
    for (const from of sources) add({ ...base, from });
  }

  // kube-proxy DNATs NodePorts on kilo0's address and every ClusterIP by destination alone and
  // accepts them ahead of ufw: only a drop before its DNAT keeps a neighbour that routes these
  // ranges to the public address out (and a packet claiming one of them as its source, too).
  const guard: NodeGuard = { ranges: [...new Set([podCidr, serviceCidr, kiloSubnet])], interfaces: [...GUARD_INTERFACES] };
  return { node: self.name, defaults: FIREWALL_DEFAULTS, rules, guard };
}

/** Every node's rules, in the order of `cluster.nodes`. */
export function clusterRuleSets(cluster: FirewallCluster): NodeRuleSet[] {
  return cluster.nodes.map((n) => nodeRuleSet(cluster, n.name));
}

/**
 * A canonical text of a rule set (defaults and every rule's ufw words, one per line): what the
 * firewall step's trigger digest is computed from. Token markers stay in, for fingerprint().
 */
export function ruleSetText(set: NodeRuleSet): string {
  return [
    `default ${set.defaults.incoming} incoming`,
    `default ${set.defaults.routed} routed`,
    ...set.rules.map((r) => ruleWords(r).join(" ")),
    ...set.guard.ranges.map((r) => `guard drop to or from ${r} unless in on ${set.guard.interfaces.join(" ")}`),
  ].join("\n") + "\n";
}
