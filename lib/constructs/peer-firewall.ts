/**
 * PeerFirewall: a ufw firewall on every node, computed from the cluster's membership. Each node
 * lets in its peers on the ports their roles need, the admin networks on SSH (and the API on
 * servers), and nothing else. The rules are data (rulesFor) before they are shell.
 */
import { Annotations, Aspects, Fn, ITerraformDependable, TerraformLocal, TerraformStack } from "cdktf";
import { Construct } from "constructs";
import { createTimeConnection } from "./connection";
import * as ipaddr from "ipaddr.js";
import * as v from "./validate";
import {
  DEFAULT_KILO_SUBNET, DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, DEFAULT_WIREGUARD_PORT,
  FirewallCluster, FirewallNode, FirewallRule, NodeFirewallRule, nodeRuleSet, NodeRuleSet, Protocol, ruleSetText,
} from "../render/firewall-rules";
import { renderConvergeCall, renderConvergeProgram, renderSharedSources, sharedSources } from "../render/ufw-script";
import { CDKTF_LATE_VALUES } from "./late-values";
import { TerraformData, fingerprint, listSome, terraformLiteral } from "./internal";
import { missingMembers, serversOf } from "./cluster-checks";
import { reportAtSynth } from "./synth-output";
import { K3sNode, NodeRole } from "./k3s-node";
import { K3sServer } from "./k3s-server";
import { KiloMesh, KiloPeers, MeshGranularity } from "./kilo-mesh";

export { FirewallRule, NodeFirewallRule, Protocol, RuleAction, TrafficDirection } from "../render/firewall-rules";

/**
 * Settings of a PeerFirewall.
 */
export interface PeerFirewallProps {
  /**
   * The cluster to firewall: this server and every agent that joins it (K3sServer.clusterNodes).
   * Create the PeerFirewall after the agents.
   * @default - the servers among `nodes`
   */
  readonly server?: K3sServer;
  /**
   * The nodes to firewall (servers and agents). Each one gets a firewall that lets in the others.
   * Leaving out a member of their clusters is an error: it would get no firewall, and its peers
   * would drop its traffic.
   * @default - the whole cluster of `server`
   */
  readonly nodes?: K3sNode[];
  /**
   * Networks the cluster is administered from: SSH (rate-limited) on every node and the
   * Kubernetes API on servers. Include the address of the machine running `cdktf deploy`,
   * or later steps cannot reach the hosts over SSH.
   * @default - none: SSH is open to anywhere (rate-limited) and a synth warning says so
   */
  readonly adminCidrs?: string[];
  /**
   * More networks allowed to reach the Kubernetes API (6443/tcp on servers), and nothing else.
   * @default - none
   */
  readonly apiCidrs?: string[];
  /**
   * Kilo's WireGuard port (kg `--port`).
   * @default 51820
   */
  readonly wireguardPort?: number;
  /**
   * The pod network.
   * @default - the clusterCidr of the first K3sServer among `nodes`, else "10.42.0.0/16"
   */
  readonly podCidr?: string;
  /**
   * The service network.
   * @default - the serviceCidr of the first K3sServer among `nodes`, else "10.43.0.0/16"
   */
  readonly serviceCidr?: string;
  /**
   * The subnet Kilo gives the nodes' WireGuard interfaces (kg `--subnet`).
   * @default "10.4.0.0/16"
   */
  readonly kiloSubnet?: string;
  /**
   * More ports to open on every node (an ingress controller's hostPort, a monitoring agent).
   * @default - none
   */
  readonly extraRules?: FirewallRule[];
  /**
   * Rate-limit SSH from the admin networks and bastions too (ufw `limit`: a source's 6th new
   * connection within 30 seconds is refused until the window passes). Off by default because a
   * deploy opens one SSH connection per provisioner — more through a bastion — and each refused
   * retry renews the block, so a rate-limited admin network fails its own deploys. The admin
   * networks are yours and narrow; SSH open to anywhere (no adminCidrs) is always rate-limited.
   * @default false
   */
  readonly rateLimitSsh?: boolean;
  /**
   * Re-run every node's firewall step on every apply, so that `cdktf deploy` repairs drift: ufw
   * disabled by hand, a rule of this construct deleted, the guard unloaded. The step's trigger then
   * holds Terraform's `timestamp()` besides the digest of the node's rules. Each run prints
   * `firewall converged (N change(s))`, with a line per repair, so N > 0 shows the drift it found.
   * Costs: every plan lists every firewall step as replaced (no SSH during the plan), and every
   * apply opens one SSH session per node and runs the converge there (docs/firewall.md, "Drift",
   * gives the time measured). Without it a firewall step runs only when its node's rules change;
   * to repair one node on demand, replace its step (`terraform apply -replace=<its address>` in
   * the stack's directory under cdktf.out).
   * @default false
   */
  readonly convergeOnEveryApply?: boolean;
}

/**
 * A host firewall (ufw) on every node, allowing only cluster peers and the admin networks.
 *
 * One step per node converges its ufw: missing rules are added, rules this construct added
 * earlier but no longer wants are deleted, the operator's own rules are left alone. Each node's
 * firewall is up before K3s is installed there; changing the peer set or the admin networks
 * re-runs the firewalls only, never a K3s install.
 */
export class PeerFirewall extends Construct {
  /** The nodes this firewall covers (decommissioned agents left out). */
  public readonly nodes: K3sNode[];
  /** The admin networks (SSH, and the API on servers). */
  public readonly adminCidrs: string[];
  private readonly sets = new Map<K3sNode, NodeRuleSet>();
  private readonly steps = new Map<K3sNode, TerraformData>();
  private readonly settings: FirewallCluster;

  constructor(scope: Construct, id: string, props: PeerFirewallProps) {
    super(scope, id);
    // A decommissioned node gets no firewall step and is no longer anyone's peer.
    const listed = props.nodes ?? (props.server instanceof K3sServer ? props.server.clusterNodes : []);
    this.nodes = [...new Set(listed.filter((n) => n instanceof K3sNode && !n.decommissioned))];
    this.node.addValidation({ validate: () => this.validateProps(props) });
    reportAtSynth(this);
    if (props.kiloSubnet !== undefined) for (const n of this.nodes) n._useKiloSubnet(props.kiloSubnet, `PeerFirewall ${this.node.path}'s kiloSubnet`);
    if (!props.adminCidrs || props.adminCidrs.length === 0) {
      Annotations.of(this).addWarning(
        `PeerFirewall "${this.node.path}": no adminCidrs, so SSH (22/tcp, rate-limited) stays open to the whole Internet on every node. ` +
        "Set adminCidrs to the networks you administer the cluster from, including the machine running cdktf deploy.");
    }
    this.adminCidrs = [...(props.adminCidrs ?? [])];
    this.warnAboutWideSources(props);
    // Counted at synth, once every agent of the cluster exists.
    Aspects.of(this).add({
      visit: (c) => {
        if (c !== this) return;
        for (const w of [...this.rateLimitFindings(props).warnings, ...this.ipipWarnings()]) Annotations.of(this).addWarning(w);
      },
    });
    for (const n of this.nodes) {
      const s = n.host?.ssh;
      const b = s?.bastion?.host;
      if (b === undefined || s?.host === undefined || v.isToken(s.host) || v.checkIp(s.host) || !ipaddr.parse(s.host).range().match(/private|uniqueLocal/)) continue;
      // Allowed from the bastion's private address only when it is a node on the same network (same location).
      const bastionNode = this.nodes.find((o) => o.host.address === b && o.host.privateAddress !== undefined &&
        n.host.location !== undefined && n.host.location !== "" && o.host.location === n.host.location);
      if (bastionNode) continue;
      Annotations.of(this).addWarning(`PeerFirewall "${this.node.path}": ${n.node.path} is reached at the private address ${s.host} through bastion ${b}. ` +
        `Its firewall lets SSH in from the admin networks and from ${b} only; the bastion's address on the private network is unknown here. ` +
        "If the bastion reaches it from a private address, add that address to adminCidrs, or make the bastion a node with privateAddress and the same location");
    }

    const server = this.nodes.find((n): n is K3sServer => n instanceof K3sServer);
    const cluster: FirewallCluster = this.settings = {
      nodes: this.nodes.map((n) => this.describe(n)),
      adminCidrs: props.adminCidrs ?? [],
      apiCidrs: props.apiCidrs ?? [],
      wireguardPort: props.wireguardPort ?? DEFAULT_WIREGUARD_PORT,
      podCidr: props.podCidr ?? server?.clusterCidr ?? DEFAULT_POD_CIDR,
      serviceCidr: props.serviceCidr ?? server?.serviceCidr ?? DEFAULT_SERVICE_CIDR,
      kiloSubnet: props.kiloSubnet ?? DEFAULT_KILO_SUBNET,
      extraRules: props.extraRules ?? [],
      rateLimitSsh: props.rateLimitSsh ?? false,
    };

    for (const n of this.nodes) this.sets.set(n, nodeRuleSet(cluster, n.node.path));
    // The converge program is the same on every node: one Terraform local holds it, with the
    // cluster's peer addresses, and each node's step adds only its rules (compact JSON pointing
    // into that list). Keeps the configuration and plans small.
    const shared = sharedSources(cluster);
    const program = this.nodes.length > 0
      ? new TerraformLocal(this, "converge-program", terraformLiteral(renderConvergeProgram() + "\n" + renderSharedSources(shared, CDKTF_LATE_VALUES)))
      : undefined;
    for (const n of this.nodes) {
      const set = this.sets.get(n)!;
      // Terraform's built-in terraform_data: the step needs no provider.
      const step = new TerraformData(this, stepId(n), {
        // A digest of this node's rules and nothing else: no keys, no addresses in clear, and no
        // K3s settings, so only a change to this node's rules re-runs it.
        // With convergeOnEveryApply, also a value that changes on every apply (timestamp() is
        // only known then), so the step is replaced, and re-run, on each one.
        triggersReplace: props.convergeOnEveryApply === true
          ? { ...fingerprint(ruleSetText(set)), run: Fn.timestamp() }
          : fingerprint(ruleSetText(set)),
      });
      step.connection = createTimeConnection(n.host);
      step.provisioners = [{ type: "remote-exec", inline: [program!.asString, terraformLiteral(renderConvergeCall(set, CDKTF_LATE_VALUES, shared))] }];
      this.steps.set(n, step);
      // Ordering only: the firewall is up before K3s listens; a firewall change never re-installs.
      // Not across stacks, which is refused (stackMismatch): the edge would make cdktf fail first,
      // on a circular dependency between the stacks, before that message could be given.
      if (n.stack === TerraformStack.of(this)) n.addInstallPrerequisite(step);
    }
  }

  /**
   * The ufw rules of one node, in the order they are applied (SSH first). Default policies
   * are deny incoming and deny routed on every node (reject, when you set it, is kept); the outgoing policy stays as you set it.
   */
  public rulesFor(node: K3sNode): NodeFirewallRule[] {
    const set = this.sets.get(node);
    if (!set) throw new Error(`PeerFirewall "${this.node.path}": ${node.node.path} is not one of its nodes`);
    return set.rules.map((r) => ({ ...r }));
  }

  /** @internal The cluster as the rules are computed from it (the report command recomputes them). */
  public get _settings(): FirewallCluster {
    return this.settings;
  }

  /** The step that converges `node`'s firewall; depend on it to run after the firewall is up. */
  public firewallOf(node: K3sNode): ITerraformDependable {
    const step = this.steps.get(node);
    if (!step) throw new Error(`PeerFirewall "${this.node.path}": ${node.node.path} is not one of its nodes`);
    return step;
  }

  private describe(n: K3sNode): FirewallNode {
    const h = n.host;
    const sshFrom: string[] = [];
    const bastion = h.ssh?.bastion?.host;
    if (bastion !== undefined) {
      sshFrom.push(bastion);
      // A bastion that is itself a node may reach this one from its private address (on a shared network).
      for (const other of this.nodes) {
        const oh = other.host;
        const sameNetwork = h.location !== undefined && h.location !== "" && oh.location === h.location;
        if (other !== n && oh.address === bastion && oh.privateAddress !== undefined && sameNetwork) sshFrom.push(oh.privateAddress);
      }
    }
    // The SSH ports other nodes reach this one on as their bastion.
    const bastionPorts = this.nodes
      .map((o) => o.host?.ssh?.bastion)
      .filter((b) => b !== undefined && b.host === h.address)
      .map((b) => b!.port ?? 22);
    return {
      name: n.node.path,
      bastionPorts,
      role: n.role === NodeRole.SERVER ? "server" : "agent",
      address: h.address,
      privateAddress: h.privateAddress,
      location: h.location,
      sshPort: h.ssh?.port,
      sshFrom,
    };
  }

  /** The node list against the clusters it touches, other firewalls over the same nodes, and settings Kilo and K3s must share. */
  private clusterErrors(props: PeerFirewallProps, where: string): string[] {
    const servers = serversOf([...this.nodes, ...(props.server instanceof K3sServer ? [props.server] : [])]);
    const errors = missingMembers(where, servers, this.nodes, props.nodes === undefined, "PeerFirewall");
    const mine = new Set(this.nodes);
    for (const other of this.node.root.node.findAll()) {
      if (!(other instanceof PeerFirewall) || other === this) continue;
      const shared = other.nodes.filter((n) => mine.has(n));
      if (shared.length) {
        errors.push(`${where}: nodes: ${shared.map((n) => n.node.path).join(", ")} also covered by PeerFirewall ${other.node.path}; ` +
          "two firewalls on one host share one rule tag and delete each other's rules on every converge. Use one PeerFirewall per cluster");
      }
    }
    const c = this.settings;
    const differ = (field: string, mine: unknown, theirs: unknown, owner: string, theirField: string) => {
      const malformed = typeof mine === "string" && v.checkCidr(mine) !== undefined; // reported on its own
      if (mine !== undefined && theirs !== undefined && !v.isToken(mine) && !v.isToken(theirs) && !malformed && mine !== theirs) {
        errors.push(`${where}: ${field}: ${mine} differs from ${owner}'s ${theirField} ${theirs}; they must agree: leave ${field} out or set both to the same value`);
      }
    };
    for (const server of servers) {
      differ("podCidr", props.podCidr, server.clusterCidr, server.node.path, "clusterCidr");
      differ("serviceCidr", props.serviceCidr, server.serviceCidr, server.node.path, "serviceCidr");
    }
    for (const mesh of this.node.root.node.findAll()) {
      if (!(mesh instanceof KiloMesh) || !servers.includes(mesh.server)) continue;
      differ("wireguardPort", c.wireguardPort, mesh.wireguardPort, `KiloMesh ${mesh.node.path}`, "wireguardPort");
      // A wireguardSubnet the mesh itself refuses (malformed, or overlapping the pod or service
      // network) is the mesh's error, not this firewall's.
      const meshSubnet = mesh.wireguardSubnet;
      const meshRefused = v.isToken(meshSubnet) || v.checkCidr(meshSubnet) !== undefined ||
        [mesh.server.clusterCidr, mesh.server.serviceCidr].some((net) => !v.isToken(net) && !v.checkCidr(net) && v.overlaps(net, meshSubnet));
      if (meshRefused) continue;
      const encap = this.unencapsulatedLocations(mesh);
      if (encap) {
        errors.push(`${where}: KiloMesh ${mesh.node.path}'s extraArgs "${encap}" with MeshGranularity.LOCATION: kg then routes pod traffic between nodes of one location ` +
          "unencapsulated over their private network, and this firewall drops the pod, service and mesh ranges on every interface but lo, kilo0, kube-bridge and tunl0 " +
          "(the guard against neighbours that route those ranges to a node). Remove the flag: Kilo's default, --encapsulate=always, carries that traffic in tunl0");
      }
      if (props.kiloSubnet === undefined) {
        if (meshSubnet !== c.kiloSubnet) {
          errors.push(`${where}: kiloSubnet: not set, so Kilo's default ${c.kiloSubnet}, but KiloMesh ${mesh.node.path}'s wireguardSubnet is ${meshSubnet}; ` +
            `set kiloSubnet: "${meshSubnet}" so the firewall lets the mesh's traffic in`);
        }
      } else {
        differ("kiloSubnet", c.kiloSubnet, meshSubnet, `KiloMesh ${mesh.node.path}`, "wireguardSubnet");
      }
    }
    errors.push(...this.peersClaimingAdminNetworks(servers, where));
    return errors;
  }

  /**
   * Kilo peers of these clusters whose allowed IPs overlap an admin network: the peer's traffic
   * would pass for the admins' on every node (SSH, the API).
   */
  private peersClaimingAdminNetworks(servers: K3sNode[], where: string): string[] {
    const admin = this.adminCidrs.filter((c) => !v.isToken(c) && !v.checkCidr(c));
    const errors: string[] = [];
    for (const peers of this.node.root.node.findAll()) {
      if (!(peers instanceof KiloPeers) || !(peers.mesh instanceof KiloMesh) || !servers.includes(peers.mesh.server)) continue;
      peers.peers.forEach((p, i) => {
        const allowed = v.isToken(p.allowedIps) ? [] : p.allowedIps ?? [];
        for (const cidr of allowed.filter((c) => !v.isToken(c) && !v.checkCidr(c))) {
          for (const net of admin.filter((a) => v.overlaps(cidr, a))) {
            const name = p.name && !v.isToken(p.name) ? ` ("${p.name}")` : "";
            errors.push(`${where}: adminCidrs: ${net} overlaps the allowedIps ${cidr} of KiloPeers ${peers.node.path} peers[${i}]${name}; ` +
              "the peer's traffic would pass for the admin network's. Give the peer its own mesh range, such as 10.5.0.1/32, or narrow adminCidrs");
          }
        }
      });
    }
    return errors;
  }

  /**
   * A kg `--encapsulate` other than `always` (Kilo's default) on a location mesh, as written, or
   * undefined. A value from a Terraform token counts as the worst it could be.
   */
  private unencapsulatedLocations(mesh: KiloMesh): string | undefined {
    if (mesh.meshGranularity !== MeshGranularity.LOCATION) return undefined;
    for (const arg of mesh._extraArgs) {
      const shape = v.literalShape(arg);
      if (!/^--?encapsulate(=|$)/.test(shape)) continue;
      const value = shape.includes("=") ? shape.slice(shape.indexOf("=") + 1) : "";
      if (value !== "always") return v.showShape(shape);
    }
    return undefined;
  }

  /**
   * A firewall and the nodes it covers share one stack: each node's install depends on its
   * firewall step. Advice that synthesizes: with the nodes in two stacks, moving the firewall to
   * either leaves the stacks depending on each other (a circular dependency), so the nodes move to
   * the stack of their cluster's first server (where K3sAgent wants agents anyway), and the
   * firewall with them.
   */
  private stackMismatch(): string | undefined {
    const stack = TerraformStack.of(this);
    const stacks = [...new Set(this.nodes.map((n) => n.stack))];
    if (stacks.length === 0 || (stacks.length === 1 && stacks[0] === stack)) return undefined;
    const name = (s: TerraformStack) => `"${s.node.id}"`;
    if (stacks.length === 1) {
      return `every node it covers is in stack ${name(stacks[0])} but this firewall is in ${name(stack)}: create the firewall in stack ${name(stacks[0])}, beside its nodes`;
    }
    const root = this.nodes.find((n): n is K3sServer => n instanceof K3sServer)?.clusterRoot;
    const target = root?.stack ?? stacks[0];
    const where = stacks.map((s) => `${name(s)} (${this.nodes.filter((n) => n.stack === s).map((n) => n.node.path).join(", ")})`).join(" and ");
    const move = this.nodes.filter((n) => n.stack !== target).map((n) => n.node.path);
    return `its nodes are in ${stacks.length} stacks, ${where}, but a firewall and the nodes it covers must share one: each node's install waits for its firewall step, ` +
      "so moving the firewall to either stack makes the two depend on each other (a circular dependency). " +
      `Create ${move.join(", ")} in stack ${name(target)}${root ? `, the stack of ${root.node.path} (an agent belongs in its server's stack)` : ""}` +
      (stack === target ? "" : `, and this firewall there too`);
  }

  /**
   * A location mesh carries pod traffic between nodes of one location in IPIP, which Kilo accepts
   * from those nodes' private addresses. IPIP has no authentication: a neighbour on that private
   * network who forges a node's address gets packets onto tunl0, past the guard.
   */
  private ipipWarnings(): string[] {
    const servers = serversOf(this.nodes);
    const warnings: string[] = [];
    for (const mesh of this.node.root.node.findAll()) {
      if (!(mesh instanceof KiloMesh) || !servers.includes(mesh.server) || mesh.meshGranularity !== MeshGranularity.LOCATION) continue;
      const count = new Map<string, number>();
      for (const n of this.nodes) {
        const l = n.host?.location;
        if (typeof l === "string" && l !== "" && !v.isToken(l)) count.set(l, (count.get(l) ?? 0) + 1);
      }
      const shared = [...count].filter(([, k]) => k > 1).map(([l]) => `"${l}"`);
      if (shared.length === 0) continue;
      warnings.push(`PeerFirewall "${this.node.path}": KiloMesh ${mesh.node.path} uses MeshGranularity.LOCATION, so nodes of one location (${shared.join(", ")}) ` +
        "exchange pod and Service traffic in IPIP over their private network, which Kilo accepts by source address alone. A machine on that network that forges a node's " +
        "private address can reach pods, ClusterIPs and NodePorts past this firewall's guard. Use MeshGranularity.FULL (every node its own WireGuard peer) " +
        "unless you trust every machine on the locations' private networks");
    }
    return warnings;
  }

  /** Ports PeerFirewall opens only to certain sources: [first, last, protocol, what, to whom]. */
  private guardedPorts(props: PeerFirewallProps): Array<[number, number, Protocol, string, string]> {
    const sshPorts = [...new Set([22, ...this.nodes.map((n) => n.host?.ssh?.port).filter((p): p is number => typeof p === "number" && !v.isToken(p))])];
    const wg = props.wireguardPort !== undefined && !v.isToken(props.wireguardPort) ? props.wireguardPort : DEFAULT_WIREGUARD_PORT;
    return [
      ...sshPorts.map((p): [number, number, Protocol, string, string] => [p, p, Protocol.TCP, "SSH", "the admin networks (adminCidrs)"]),
      [6443, 6443, Protocol.TCP, "the Kubernetes API", "the nodes, adminCidrs and apiCidrs"],
      [10250, 10250, Protocol.TCP, "the kubelet API", "the other nodes"],
      [2379, 2380, Protocol.TCP, "etcd", "the other servers"],
      [wg, wg, Protocol.UDP, "Kilo's WireGuard", "the other nodes"],
    ];
  }

  private warnAboutWideSources(props: PeerFirewallProps): void {
    const where = `PeerFirewall "${this.node.path}"`;
    const opens: Record<string, string> = {
      adminCidrs: "SSH on every node and the Kubernetes API on servers are open to it",
      apiCidrs: "the Kubernetes API (6443/tcp on servers) is open to it",
    };
    for (const [field, list] of [["adminCidrs", props.adminCidrs], ["apiCidrs", props.apiCidrs]] as const) {
      (list ?? []).forEach((c, i) => {
        const w = v.wideCidrWarning(c);
        if (w) Annotations.of(this).addWarning(`${where}: ${field}[${i}]: ${w}: ${opens[field]}. List the networks you administer from instead.`);
      });
    }
    // A private address is allowed only from peers with the same location (see sharePrivateNetwork).
    const privateWithoutLocation = this.nodes.filter((n) => n.host?.privateAddress !== undefined && (n.host.location === undefined || n.host.location === ""));
    if (privateWithoutLocation.length > 0 && this.nodes.filter((n) => n.host?.privateAddress !== undefined).length > 1) {
      Annotations.of(this).addWarning(`${where}: ${listSome(privateWithoutLocation.map((n) => n.node.path))} ` +
        "have host.privateAddress but no host.location. A node's private address is allowed only on the firewalls of nodes with the same location " +
        "(they share that private network); give nodes on one private network the same host.location.");
    }
  }

  /**
   * SSH to a cluster's first server rate-limited by this firewall (no adminCidrs, or rateLimitSsh)
   * meets the rolling-restart steps: every agent's install opens a session there before and one
   * after, all agents at once on a fresh deploy, and ufw's `limit` refuses a source's 6th new
   * connection within 30 s (and each refused retry renews the block). With 5 agents the fetch and
   * the agents' first steps alone make 6 at once: an error (a bench run on real hosts failed so).
   * With fewer it depends on how fast the installs finish (with 3 or 4, the after steps within
   * 30 s make 6 or more): a warning. Not counted: a first server that is also other nodes'
   * bastion relays their sessions too.
   */
  private rateLimitFindings(props: PeerFirewallProps): { errors: string[]; warnings: string[] } {
    const out = { errors: [] as string[], warnings: [] as string[] };
    const noAdmin = (props.adminCidrs ?? []).length === 0;
    if (!noAdmin && props.rateLimitSsh !== true) return out;
    const field = noAdmin ? "adminCidrs" : "rateLimitSsh";
    const why = noAdmin ? "no adminCidrs are given, so SSH from anywhere is rate-limited" : "true rate-limits SSH from the admin networks";
    const mine = new Set<K3sNode>(this.nodes);
    for (const root of new Set(this.nodes.filter((n): n is K3sServer => n instanceof K3sServer).map((s) => s.clusterRoot))) {
      if (!mine.has(root)) continue;
      const agents = root.clusterNodes.filter((n) => n.role === NodeRole.AGENT && !n.decommissioned).length;
      if (agents === 0) continue;
      const text = `PeerFirewall "${this.node.path}": ${field}: ${why}, and each of the ${agents} agent(s) of ${root.node.path} opens an SSH session ` +
        `on that first server before and after its install (drain and uncordon: ${5 + 2 * agents} sessions there in a fresh deploy, its own 5 included, the agents' first ones all at once). ` +
        "ufw refuses a source's 6th new connection within 30 s and every refused retry renews the block";
      const fix = `Set adminCidrs to the networks you deploy from${noAdmin ? "" : " and leave rateLimitSsh off"}`;
      if (agents >= 5) out.errors.push(`${text}, so the deploy would fail half-way. ${fix}`);
      else out.warnings.push(`${text}; the deploy fails when ${agents >= 3 ? "the installs finish within 30 s of each other, which is likely" : "they come too close together"}. ${fix}.`);
    }
    return out;
  }

  private validateProps(props: PeerFirewallProps): string[] {
    const errors: string[] = [...this.rateLimitFindings(props).errors];
    const where = `PeerFirewall "${this.node.path}"`;
    const err = (field: string, msg: string | undefined) => { if (msg) errors.push(`${where}: ${field}: ${msg}`); };
    const given = props.nodes ?? (props.server instanceof K3sServer ? props.server.clusterNodes : []);
    if (props.server !== undefined && !(props.server instanceof K3sServer)) err("server", "pass the K3sServer of the cluster");
    if (given.length === 0) errors.push(`${where}: nodes: give the cluster's server (server: every agent that joins it is covered) or every K3sServer and K3sAgent of the cluster`);
    given.forEach((n, i) => {
      if (!(n instanceof K3sNode)) err(`nodes[${i}]`, "not a K3sServer or K3sAgent construct");
    });
    if (new Set(given).size !== given.length) err("nodes", "a node is listed more than once; list each node once");
    err("nodes", this.stackMismatch());
    for (const n of this.nodes) {
      const a = n.host?.address;
      // An address that is neither an IP nor a DNS name is already reported by its node.
      if (a !== undefined && !v.isToken(a) && v.checkIp(a) && !v.checkAddress(a)) {
        err("nodes", `${n.node.path} has host.address "${a}", a DNS name: ufw rules need IP addresses, so give the node's public IP (or a Terraform token that resolves to it)`);
      }
      const b = n.host?.ssh?.bastion?.host;
      if (b !== undefined && !v.isToken(b) && v.checkIp(b) && !v.checkAddress(b)) {
        err("nodes", `${n.node.path} is reached through bastion "${b}", a DNS name: give the bastion's IP so SSH from it can be allowed`);
      }
    }
    errors.push(...this.clusterErrors(props, where));
    (props.adminCidrs ?? []).forEach((c, i) => err(`adminCidrs[${i}]`, v.checkCidr(c)));
    (props.apiCidrs ?? []).forEach((c, i) => err(`apiCidrs[${i}]`, v.checkCidr(c)));
    if (props.wireguardPort !== undefined) err("wireguardPort", v.checkPort(props.wireguardPort));
    if (props.podCidr !== undefined) err("podCidr", v.checkCidr(props.podCidr));
    if (props.serviceCidr !== undefined) err("serviceCidr", v.checkCidr(props.serviceCidr));
    if (props.kiloSubnet !== undefined) err("kiloSubnet", v.checkCidr(props.kiloSubnet));
    (props.extraRules ?? []).forEach((r, i) => {
      const f = `extraRules[${i}]`;
      err(`${f}.port`, v.checkPort(r.port));
      if (r.endPort !== undefined) {
        err(`${f}.endPort`, v.checkPort(r.endPort));
        if (!v.isToken(r.endPort) && !v.isToken(r.port) && r.endPort < r.port) {
          err(`${f}.endPort`, `${r.endPort} is below port ${r.port}; a range runs from port up to endPort`);
        }
        if ((r.protocol ?? Protocol.TCP) === Protocol.ANY && r.endPort !== r.port) {
          err(`${f}.protocol`, "ufw needs a protocol for a port range: use Protocol.TCP or Protocol.UDP (add one rule per protocol)");
        }
      }
      if (r.protocol !== undefined && !Object.values(Protocol).includes(r.protocol)) {
        err(`${f}.protocol`, `"${r.protocol}" is not a Protocol; use Protocol.TCP, Protocol.UDP or Protocol.ANY`);
      }
      (r.from ?? []).forEach((s, j) => {
        if (v.checkIp(s) && v.checkCidr(s)) err(`${f}.from[${j}]`, `"${s}" is neither an IP address nor a CIDR block such as 198.51.100.0/24`);
      });
      const fromAnywhere = (r.from ?? []).length === 0 || (r.from ?? []).some((s) => !v.isToken(s) && /\/0$/.test(s));
      if (fromAnywhere && !v.isToken(r.port) && (r.endPort === undefined || !v.isToken(r.endPort))) {
        for (const [lo, hi, proto, what, fix] of this.guardedPorts(props)) {
          const protocol = r.protocol ?? Protocol.TCP;
          const sameProto = protocol === Protocol.ANY || protocol === proto;
          if (sameProto && r.port <= hi && (r.endPort ?? r.port) >= lo) {
            err(f, `opens ${lo === hi ? lo : `${lo}-${hi}`}/${proto} (${what}) to anywhere, which PeerFirewall keeps to ${fix}. Remove the rule, or give it from: [...] networks`);
          }
        }
      }
    });
    return errors;
  }
}

/** A readable, stable id per node: its path below the stack ("server", "workers-agent-0"). */
function stepId(n: K3sNode): string {
  return n.node.scopes.slice(n.node.scopes.indexOf(n.stack) + 1).map((s) => s.node.id).join("-");
}
