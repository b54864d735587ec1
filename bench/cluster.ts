/**
 * The clusters the benchmark synthesizes: N nodes, 1 or 3 servers, a PeerFirewall over all of
 * them and Kilo in a second stack, built the way examples/article-cluster/main.ts builds one.
 *
 * "3 servers": one HA cluster: server-1 and server-2 join server-0 (embedded etcd), the agents
 * are spread over the three round-robin, ONE PeerFirewall over every node (API and etcd rules
 * between the servers) and ONE KiloMesh for the whole cluster in one mesh stack.
 *
 * Variants are the change scenarios of the change-impact columns: each is the base cluster with
 * one thing changed, synthesized separately and diffed against the base.
 */
import { App, TerraformStack } from "cdktf";
import { K3sAgent, K3sInstallOptions, K3sNode, K3sServer, KiloMesh, PeerFirewall, SshConnection } from "../lib";

export type Variant =
  | "base"
  /** (a) one more agent. */
  | "add-agent"
  /**
   * (b) one agent fewer, the documented way: `decommission: true` on agent-1 (from the middle, so
   * the others keep their ids), which drops its resources (count = 0, destroy-time cleanup runs)
   * and takes it out of every firewall and the mesh. Deleting the construct afterwards changes
   * nothing more.
   */
  | "remove-agent"
  /** (c) a second admin network. */
  | "admin-cidrs"
  /** (d) every node's K3s version bumped (a cluster upgrade). */
  | "k3s-version"
  /** (d') only the server's K3s version (the first server's, with 3 servers). */
  | "k3s-version-server"
  /** (e) a Kilo option: the WireGuard MTU. */
  | "kilo-option"
  /** Not a change scenario: the cluster without its PeerFirewall, to time the rest apart. */
  | "no-firewall";

export const VARIANTS: Variant[] = ["add-agent", "remove-agent", "admin-cidrs", "k3s-version", "k3s-version-server", "kilo-option"];

export interface ClusterSpec {
  /** Nodes in total, servers included. */
  readonly nodes: number;
  /** 1 or 3. */
  readonly servers: number;
}

/** A public address per node index, from the documentation ranges (up to 500 nodes). */
export function addressOf(i: number): string {
  if (i < 250) return `198.51.100.${i + 1}`;
  if (i < 500) return `203.0.113.${i - 249}`;
  throw new Error("the bench cluster has at most 500 nodes");
}

export const BASE_ADMIN = ["192.0.2.0/28"];
export const MORE_ADMIN = ["192.0.2.0/28", "192.0.2.64/28"];
export const BUMPED_VERSION = "v1.33.5+k3s1";

/** Overrides for running the cluster on real (lab) hosts. */
export interface HostOverrides {
  readonly address?: (i: number) => string;
  readonly ssh?: (i: number) => SshConnection;
  readonly install?: K3sInstallOptions;
  readonly adminCidrs?: string[];
  readonly rateLimitSsh?: boolean;
  /** Leave out the mesh stacks (the real-host harness runs the cluster stack only). */
  readonly withoutMesh?: boolean;
}

export interface BuiltCluster {
  readonly cluster: TerraformStack;
  readonly meshes: TerraformStack[];
  readonly servers: K3sServer[];
  readonly agents: K3sAgent[];
  readonly firewall?: PeerFirewall;
}

/**
 * Build the cluster into `app`. Agents are named agent-<i> with i counting from 0 over the base
 * cluster's agents, so a variant's resources keep the base's addresses.
 */
export function buildCluster(app: App, spec: ClusterSpec, variant: Variant = "base", o: HostOverrides = {}): BuiltCluster {
  if (spec.servers < 1 || spec.nodes <= spec.servers) throw new Error(`bench cluster: ${spec.nodes} nodes with ${spec.servers} servers`);
  const defaultSsh: SshConnection = { user: "root", privateKeyPath: "~/.ssh/id_ed25519" };
  const address = o.address ?? addressOf;
  const sshOf = o.ssh ?? (() => defaultSsh);
  const cluster = new TerraformStack(app, "cluster");
  const servers: K3sServer[] = [];
  for (let s = 0; s < spec.servers; s++) {
    const bumped = variant === "k3s-version" || (variant === "k3s-version-server" && s === 0);
    servers.push(new K3sServer(cluster, spec.servers === 1 ? "server" : `server-${s}`, {
      join: servers[0],
      host: { address: address(s), location: `provider-${s % 4}`, ssh: sshOf(s) },
      version: bumped ? BUMPED_VERSION : undefined,
      install: o.install,
    }));
  }
  let agentIds = Array.from({ length: spec.nodes - spec.servers }, (_, i) => i);
  if (variant === "add-agent") agentIds = [...agentIds, agentIds.length];
  const agents = agentIds.map((i) => new K3sAgent(cluster, `agent-${i}`, {
    server: servers[i % servers.length],
    host: { address: address(spec.servers + i), location: `provider-${(spec.servers + i) % 4}`, ssh: sshOf(spec.servers + i) },
    version: variant === "k3s-version" ? BUMPED_VERSION : undefined,
    install: o.install,
    decommission: variant === "remove-agent" && i === 1 ? true : undefined,
  }));
  const nodes: K3sNode[] = [...servers, ...agents];
  const firewall = variant === "no-firewall" ? undefined : new PeerFirewall(cluster, "firewall", {
    nodes,
    adminCidrs: o.adminCidrs ?? (variant === "admin-cidrs" ? MORE_ADMIN : BASE_ADMIN),
    rateLimitSsh: o.rateLimitSsh,
  });
  const meshes = o.withoutMesh ? [] : [servers[0]].map((server) => {
    const mesh = new TerraformStack(app, "mesh");
    new KiloMesh(mesh, "kilo", { server, mtu: variant === "kilo-option" ? 1380 : undefined });
    return mesh;
  });
  return { cluster, meshes, servers, agents, firewall };
}
