/**
 * KiloMesh: Kilo as the cluster's CNI, so that node-to-node traffic crosses the Internet inside
 * WireGuard. KiloPeers: machines outside the cluster (a laptop, a site gateway) joining the mesh.
 *
 * Both are deployed through the Kubernetes provider, which needs a running API server when
 * Terraform plans; so each lives in a stack of its own, deployed after the stack it depends on
 * (cluster → mesh → peers). `cdktf deploy '*'` follows that order.
 */
import { Annotations, Fn, ITerraformDependable, TerraformStack, Token } from "cdktf";
import { Construct } from "constructs";
import * as annotations from "@cdktf/provider-kubernetes/lib/annotations";
import * as manifest from "@cdktf/provider-kubernetes/lib/manifest";
import * as k8sProvider from "@cdktf/provider-kubernetes/lib/provider";
import * as ipaddr from "ipaddr.js";
import * as v from "./validate";
import {
  argName, CNI_CONF_FILE, FIELD_MANAGER, formatEndpoint, Granularity, KiloSettings, kiloClusterRole, kiloClusterRoleBinding,
  kiloConfigMap, kiloDaemonSet, kiloPeer, kiloPeerCrd, kiloServiceAccount, KubeObject, listenPort, MANAGED_ARGS,
  nodeAnnotations,
} from "../render/kilo-manifests";
import { KILO_IMAGE, WIREGUARD_GO_IMAGE } from "../versions";
import { missingMembers } from "./cluster-checks";
import { constrainProvider, fingerprint } from "./internal";
import { reportAtSynth } from "./synth-output";
import { K3sAgent } from "./k3s-agent";
import { K3sNode } from "./k3s-node";
import { K3sServer } from "./k3s-server";

/** How Kilo lays out the WireGuard mesh. */
export enum MeshGranularity {
  /**
   * Every node gets a WireGuard tunnel to every other node: all node-to-node traffic is
   * encrypted, whoever shares a network with whom. The right choice on public networks.
   */
  FULL = "full",
  /**
   * Nodes are grouped by location (`host.location`); only one leader per location holds tunnels
   * to the other locations, and traffic inside a location travels unencrypted (IP-in-IP). Use it
   * only when each location is a private network you trust.
   */
  LOCATION = "location",
}

/**
 * Settings of the Kilo mesh.
 */
export interface KiloMeshProps {
  /** The K3s server of the cluster. Must be in another stack (see KiloMesh). */
  readonly server: K3sServer;
  /**
   * The cluster's nodes. Each gets the Kilo annotations its host needs (forced endpoint for
   * 1:1 NAT, keepalive behind NAT, location, leader). The server is always included; leaving
   * out another member of the cluster is an error. Create the KiloMesh after the agents.
   * @default - the whole cluster: the server and every agent that joins it (K3sServer.clusterNodes)
   */
  readonly nodes?: K3sNode[];
  /**
   * The Kubernetes provider to deploy with; it must belong to this construct's stack.
   * @default - a provider created in this stack, configured from the server's API URL, CA
   * certificate and admin client certificate (cross-stack references)
   */
  readonly kubernetesProvider?: k8sProvider.KubernetesProvider;
  /**
   * The Kilo image (kg). Pinned; point it at a mirror or at ghcr.io/squat/kilo:0.7.0 if you like.
   * @default KILO_IMAGE ("docker.io/squat/kilo:0.7.0")
   */
  readonly image?: string;
  /**
   * The mesh topology.
   * @default MeshGranularity.FULL
   */
  readonly meshGranularity?: MeshGranularity;
  /**
   * The UDP port WireGuard listens on, on every node. Your firewall must let it in from the
   * other nodes (PeerFirewall does for 51820).
   * @default 51820
   */
  readonly wireguardPort?: number;
  /**
   * The network Kilo assigns WireGuard interface addresses from. Must not overlap the pod or
   * service networks.
   * @default "10.4.0.0/16"
   */
  readonly wireguardSubnet?: string;
  /**
   * The cluster's service network, so Kilo does not masquerade traffic to Services.
   * @default - the K3sServer's serviceCidr
   */
  readonly serviceCidr?: string;
  /**
   * MTU of the WireGuard interface; the pods' bridge gets the same. Lower it when the hosts'
   * own MTU is below 1500 (WireGuard needs 80 bytes of it).
   * @default - kg derives the WireGuard MTU from the host's interface ("auto"); the pods' bridge uses 1420
   */
  readonly mtu?: number;
  /**
   * Where kg serves health checks, Prometheus metrics, pprof and the mesh graph (`host:port`).
   * With host networking, `:1107` would serve them on every address of every node, public ones
   * included; set it to a private address if something must scrape it.
   * @default "127.0.0.1:1107"
   */
  readonly metricsListen?: string;
  /**
   * Run WireGuard in userspace (wireguard-go as a sidecar, kg with `--create-interface=false`),
   * for nodes whose kernel lacks the WireGuard module. Applies to every node.
   * @default false
   */
  readonly userspaceWireguard?: boolean;
  /**
   * The wireguard-go image used when userspaceWireguard is true.
   * @default WIREGUARD_GO_IMAGE ("ghcr.io/masipcat/wireguard-go-docker:0.0.20230223")
   */
  readonly wireguardGoImage?: string;
  /**
   * Further kg flags, such as `--log-level=debug` or `--resync-period=1m`. Flags the typed
   * props set are refused, as are `--kubeconfig` and `--master`, `--iptables-forward-rules`
   * (which Kilo calls potentially insecure) and flags that undo the mesh (`--cni-path`,
   * `--cni=false`, `--compatibility`, `--version`, `--topology-label` with LOCATION granularity).
   * @default - none
   */
  readonly extraArgs?: string[];
  /**
   * Nodes to annotate as their location's leader (the one holding the tunnels to other
   * locations). Only meaningful with MeshGranularity.LOCATION.
   * @default - Kilo picks a leader per location
   */
  readonly leaders?: K3sNode[];
  /**
   * Keepalive interval, in seconds, for nodes whose host is `behindNat`.
   * @default 25
   */
  readonly persistentKeepaliveSeconds?: number;
  /**
   * The node-local port of the Kubernetes API that kg uses: K3s's client load balancer on
   * agents and kube-apiserver's loopback port on servers are both 6444 unless you changed
   * `lb-server-port` or `https-listen-port`.
   * @default 6444
   */
  readonly localApiServerPort?: number;
  /**
   * How long Terraform waits for the DaemonSet to roll out on every node before failing.
   * @default "10m"
   */
  readonly rolloutTimeout?: string;
}

/** A Terraform identifier from a construct path (letters, digits, "_" and "-"; no leading digit). */
function providerAlias(path: string): string {
  const alias = path.replace(/[^A-Za-z0-9_-]/g, "_");
  return /^[A-Za-z_]/.test(alias) ? alias : `_${alias}`;
}

/**
 * The DaemonSet with an annotation that changes exactly when its pod template does. The API server
 * bumps the DaemonSet's `deprecated.daemonset.template.generation` annotation on every template
 * change, and the kubernetes provider plans annotations the configuration does not name from the
 * last state, so an update failed with "Provider produced inconsistent result after apply" (found
 * on a real API, test/mesh-api.test.ts). With an annotation of ours that changes too, the provider
 * plans the annotations as unknown on those updates. Values only Terraform knows are digested by it.
 */
function withTemplateDigest(ds: KubeObject): KubeObject {
  const fp = fingerprint(JSON.stringify((ds as any).spec.template));
  const digest = fp.values === undefined ? fp.text : `${fp.text}-${fp.values}`;
  return { ...ds, metadata: { ...(ds as any).metadata, annotations: { [TEMPLATE_DIGEST_ANNOTATION]: digest } } } as KubeObject;
}

const TEMPLATE_DIGEST_ANNOTATION = "cdktf-k3s-kilo/pod-template-digest";

/** Configuration of the Kubernetes provider, from the server's outputs. */
function providerFor(scope: Construct, id: string, server: K3sServer): k8sProvider.KubernetesProvider {
  return new k8sProvider.KubernetesProvider(scope, id, {
    // An alias keeps it apart from any default kubernetes provider the user has in this stack.
    alias: providerAlias(scope.node.path),
    host: server.apiServerUrl,
    clusterCaCertificate: server.clusterCaCertificate,
    clientCertificate: server.clientCertificate,
    clientKey: server.clientKey,
  });
}

/**
 * Kilo deployed as the cluster's CNI: the Peer CRD, RBAC, the CNI config and the kg DaemonSet,
 * plus the node annotations that describe each host's network.
 *
 * Create it in a stack of its own, not in the K3sServer's: kubernetes_manifest needs a reachable
 * API server at plan time. It configures its Kubernetes provider from the server's outputs,
 * which makes its stack depend on the cluster's; `cdktf deploy '*'` deploys the cluster first.
 */
export class KiloMesh extends Construct {
  /** The cluster's server. */
  public readonly server: K3sServer;
  /** The nodes whose hosts this mesh describes (the server first). */
  public readonly nodes: K3sNode[];
  /** The provider every resource of the mesh is deployed with. */
  public readonly kubernetesProvider: k8sProvider.KubernetesProvider;
  /** The mesh topology. */
  public readonly meshGranularity: MeshGranularity;
  /** WireGuard's UDP port on every node. */
  public readonly wireguardPort: number;
  /** The WireGuard interface network. */
  public readonly wireguardSubnet: string;
  /** The CRD, which Peers need before they can be planned. */
  public readonly peerCrd: manifest.Manifest;
  /** The DaemonSet; depend on it to run after Kilo is up on every node. */
  public readonly daemonSet: manifest.Manifest;

  /** @internal kg's extra flags as given (PeerFirewall reads the encapsulation among them). */
  public readonly _extraArgs: string[];

  constructor(scope: Construct, id: string, props: KiloMeshProps) {
    super(scope, id);
    this.server = props.server;
    this._extraArgs = [...(props.extraArgs ?? [])];
    const cluster = props.server instanceof K3sServer ? props.server.clusterNodes : [];
    const nodes = [props.server, ...(props.nodes ?? cluster)].filter((n) => n !== undefined);
    this.nodes = nodes.filter((n, i) => nodes.indexOf(n) === i);
    this.meshGranularity = props.meshGranularity ?? MeshGranularity.FULL;
    this.wireguardPort = props.wireguardPort ?? 51820;
    this.wireguardSubnet = props.wireguardSubnet ?? "10.4.0.0/16";
    for (const n of this.nodes) if (n instanceof K3sNode) n._useKiloSubnet(this.wireguardSubnet, `KiloMesh ${this.node.path}'s wireguardSubnet`);
    this.node.addValidation({ validate: () => this.validateMesh(props) });
    reportAtSynth(this);
    const listen = props.metricsListen;
    if (listen !== undefined && !v.isToken(listen)) {
      const host = (/^(.*):(\d+)$/.exec(listen)?.[1] ?? "").replace(/^\[(.*)\]$/, "$1");
      const loopback = host === "localhost" || (!v.checkIp(host) && ipaddr.parse(host).range() === "loopback");
      if (!loopback) {
        const where = host === "" || host === "0.0.0.0" || host === "::" ? "every address of every node, public ones included" : `${host}`;
        Annotations.of(this).addWarning(`KiloMesh "${this.node.path}": metricsListen: "${listen}" serves kg's metrics, pprof and mesh graph on ${where}. ` +
          "PeerFirewall opens no port for it, but anything that reaches that address (pods, mesh peers, a shared private network) can read them; keep it on 127.0.0.1 unless something must scrape it.");
      }
    }
    if (this.meshGranularity === MeshGranularity.FULL && (props.leaders ?? []).length > 0) {
      Annotations.of(this).addWarning(`KiloMesh "${this.node.path}": leaders only matter with MeshGranularity.LOCATION; with FULL every node is its own leader`);
    }

    const stack = TerraformStack.of(this);
    const server = props.server;
    if (server instanceof K3sServer && server.stack !== stack) {
      // Implied by the cross-stack references below; explicit so the order never depends on them.
      stack.addDependency(server.stack);
      for (const n of this.nodes) if (n instanceof K3sNode && n.stack !== stack && n.stack !== server.stack) stack.addDependency(n.stack);
    }
    this.kubernetesProvider = props.kubernetesProvider ?? providerFor(this, "kubernetes", server);
    constrainProvider(this, "kubernetes");
    const provider = this.kubernetesProvider;

    const settings: KiloSettings = {
      image: props.image ?? KILO_IMAGE,
      granularity: this.meshGranularity as string as Granularity,
      port: this.wireguardPort,
      subnet: this.wireguardSubnet,
      serviceCidrs: [props.serviceCidr ?? server?.serviceCidr ?? "10.43.0.0/16"],
      mtu: props.mtu,
      cniMtu: props.mtu ?? 1420,
      listen: props.metricsListen ?? "127.0.0.1:1107",
      userspaceWireguardImage: props.userspaceWireguard ? (props.wireguardGoImage ?? WIREGUARD_GO_IMAGE) : undefined,
      extraArgs: props.extraArgs ?? [],
      apiServerHost: "127.0.0.1",
      apiServerPort: props.localApiServerPort ?? 6444,
    };

    const apply = (name: string, object: KubeObject, dependsOn: ITerraformDependable[] = [], extra: Partial<manifest.ManifestConfig> = {}) =>
      new manifest.Manifest(this, name, {
        provider,
        manifest: object,
        fieldManager: { name: FIELD_MANAGER },
        dependsOn: dependsOn.length ? dependsOn : undefined,
        ...extra,
      });

    // The CRD first, established before anything reads or creates Peers.
    this.peerCrd = apply("peer-crd", kiloPeerCrd(), [], {
      wait: { condition: [{ type: "Established", status: "True" }] },
      timeouts: { create: "2m", update: "2m" },
    });
    const serviceAccount = apply("service-account", kiloServiceAccount());
    const clusterRole = apply("cluster-role", kiloClusterRole());
    const binding = apply("cluster-role-binding", kiloClusterRoleBinding(), [clusterRole, serviceAccount]);
    const configMap = apply("cni-config", kiloConfigMap(settings));

    // Node annotations before kg starts, so its first view of each node is already right.
    const annotated: ITerraformDependable[] = [];
    const leaders = new Set(props.leaders ?? []);
    for (const n of this.nodes) {
      if (!(n instanceof K3sNode) || !n.host || n.decommissioned) continue;
      const h = n.host;
      const values = nodeAnnotations({
        forceEndpoint: h.publicAddressOnInterface === false ? this.endpointOf(h.address) : undefined,
        persistentKeepalive: h.behindNat ? (props.persistentKeepaliveSeconds ?? 25) : undefined,
        location: h.location,
        leader: leaders.has(n),
      });
      if (Object.keys(values).length === 0) continue;
      annotated.push(new annotations.Annotations(this, `node-${annotationId(n)}`, {
        provider,
        apiVersion: "v1",
        kind: "Node",
        metadata: { name: n.nodeName },
        annotations: values,
        fieldManager: FIELD_MANAGER,
      }));
    }

    const timeout = props.rolloutTimeout ?? "10m";
    this.daemonSet = apply("daemonset", withTemplateDigest(kiloDaemonSet(settings)),
      [this.peerCrd, serviceAccount, binding, configMap, ...annotated], {
        // Bounded: a node that cannot run Kilo fails the deploy instead of hanging it.
        wait: { rollout: true },
        timeouts: { create: timeout, update: timeout },
      });
  }

  /** The stack the mesh is deployed in. */
  public get stack(): TerraformStack {
    return TerraformStack.of(this);
  }

  /** `address:port` for the force-endpoint annotation; IPv6 in brackets, also for tokens. */
  private endpointOf(address: string): string {
    if (!v.isToken(address)) return formatEndpoint(address, this.wireguardPort);
    // Decided when Terraform knows the address: anything with a colon is IPv6.
    const host = Fn.replace(address, "/^(.*:.*)$/", "[$1]");
    const port = v.isToken(this.wireguardPort) ? Token.asString(this.wireguardPort) : String(this.wireguardPort);
    return Fn.join("", [host, ":", port]);
  }

  private validateMesh(props: KiloMeshProps): string[] {
    const errors: string[] = [];
    const where = `KiloMesh "${this.node.path}"`;
    const err = (field: string, msg: string | undefined) => { if (msg) errors.push(`${where}: ${field}: ${msg}`); };
    const server = props.server;
    if (!(server instanceof K3sServer)) return [`${where}: server: pass the K3sServer of the cluster Kilo runs in`];
    if (server.stack === this.stack) {
      err("server", `${server.node.path} is in the same stack ("${this.stack.node.id}") as this KiloMesh. ` +
        "kubernetes_manifest needs a running API server when Terraform plans, so Kilo cannot be planned in the apply that creates the cluster. " +
        `Create the KiloMesh in a stack of its own, e.g. new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server, nodes }); ` +
        `\`cdktf deploy '*'\` then deploys "${server.stack.node.id}" first`);
    }
    if (props.kubernetesProvider && TerraformStack.of(props.kubernetesProvider) !== this.stack) {
      err("kubernetesProvider", `${props.kubernetesProvider.node.path} belongs to another stack; create it in "${this.stack.node.id}" or leave it out to get one configured from the server`);
    }
    for (const n of props.nodes ?? []) {
      if (!(n instanceof K3sNode)) { err("nodes", "pass K3sServer and K3sAgent constructs"); continue; }
      // One mesh per cluster: an HA cluster's servers share one first server (clusterRoot).
      if (n instanceof K3sAgent && n.server.clusterRoot !== server.clusterRoot) err("nodes", `${n.node.path} joins ${n.server.node.path}, not this mesh's server ${server.node.path}`);
      if (n instanceof K3sServer && n !== server && n.stack !== server.stack) err("nodes", `${n.node.path} is not in the cluster's stack "${server.stack.node.id}"`);
    }
    errors.push(...missingMembers(where, [server.clusterRoot], this.nodes, props.nodes === undefined, "KiloMesh"));
    if (props.serviceCidr !== undefined && !v.isToken(props.serviceCidr) && !v.isToken(server.serviceCidr) && props.serviceCidr !== server.serviceCidr) {
      err("serviceCidr", `${props.serviceCidr} differs from ${server.node.path}'s serviceCidr ${server.serviceCidr}; leave serviceCidr out (it defaults to the server's)`);
    }
    for (const n of props.leaders ?? []) {
      if (!this.nodes.includes(n)) err("leaders", `${n.node.path} is not one of this mesh's nodes; add it to nodes`);
    }
    if (this.meshGranularity === MeshGranularity.LOCATION) {
      for (const n of this.nodes) {
        if (n instanceof K3sNode && n.host && n.host.location === undefined && n.labels["topology.kubernetes.io/region"] === undefined) {
          err("meshGranularity", `node ${n.node.path} has no host.location: nodes without one share Kilo's default location, ` +
            "and traffic inside a location is not encrypted. Give every node a location, or use MeshGranularity.FULL");
        }
      }
    }
    err("wireguardPort", v.checkPort(this.wireguardPort));
    err("wireguardSubnet", v.checkCidr(this.wireguardSubnet));
    if (props.serviceCidr !== undefined) err("serviceCidr", v.checkCidr(props.serviceCidr));
    const overlapsWith: Array<[string, string | undefined]> = [
      ["the pod network (server clusterCidr)", server.clusterCidr],
      ["the service network", props.serviceCidr ?? server.serviceCidr],
    ];
    for (const [what, cidr] of overlapsWith) {
      if (cidr && cidrsOverlap(this.wireguardSubnet, cidr)) err("wireguardSubnet", `${this.wireguardSubnet} overlaps ${what} ${cidr}; pick a separate range`);
    }
    if (props.mtu !== undefined && !v.isToken(props.mtu) && (!Number.isInteger(props.mtu) || props.mtu < 1280 || props.mtu > 9000)) {
      err("mtu", `${props.mtu} must be a whole number between 1280 and 9000`);
    }
    const listen = props.metricsListen;
    if (listen !== undefined && !v.isToken(listen)) {
      const m = /^(.*):(\d+)$/.exec(listen);
      const host = m?.[1] ?? "";
      const hostOk = host === "" || host === "localhost" || !v.checkIp(host.replace(/^\[(.*)\]$/, "$1"));
      if (!m || !hostOk || v.checkPort(listenPort(listen))) {
        err("metricsListen", `"${listen}" is not a listen address; use host:port such as 127.0.0.1:1107 (or [::1]:1107)`);
      }
    }
    const ka = props.persistentKeepaliveSeconds;
    if (ka !== undefined && !v.isToken(ka) && (!Number.isInteger(ka) || ka < 1 || ka > 65535)) {
      err("persistentKeepaliveSeconds", `${ka} must be a whole number of seconds between 1 and 65535 (WireGuard suggests 25)`);
    }
    if (props.localApiServerPort !== undefined) err("localApiServerPort", v.checkPort(props.localApiServerPort));
    if (props.rolloutTimeout !== undefined) err("rolloutTimeout", v.checkDuration(props.rolloutTimeout));
    if (props.wireguardGoImage !== undefined && !props.userspaceWireguard) {
      err("wireguardGoImage", "only used with userspaceWireguard: true; set that too, or remove wireguardGoImage");
    }
    if (props.image !== undefined) err("image", v.checkImage(props.image));
    if (props.wireguardGoImage !== undefined) err("wireguardGoImage", v.checkImage(props.wireguardGoImage));
    for (const arg of props.extraArgs ?? []) {
      // Literal parts of an argument mixed with tokens count: "--iptables-forward-rules=${var.x}" is the flag.
      const shape = v.literalShape(arg);
      const shown = v.showShape(shape);
      if (!v.hasLiteral(arg)) continue;
      if (!shape.startsWith("--")) { if (!shape.startsWith(v.UNKNOWN)) err("extraArgs", `"${shown}" is not a flag; write kg flags as --name=value`); continue; }
      const name = argName(shape);
      if (name.includes(v.UNKNOWN)) continue;
      const value = shape.includes("=") ? shape.slice(shape.indexOf("=") + 1) : undefined;
      const refused = name in MANAGED_ARGS ? MANAGED_ARGS[name] : kgArgRisk(name, value, this.meshGranularity);
      if (refused) err("extraArgs", `"${shown}": ${refused}`);
    }
    return errors;
  }
}

/** pflag's spellings of false (strconv.ParseBool); anything else, a bare flag included, is true or an error. */
const PFLAG_FALSE = /^(0|f|F|false|FALSE|False)$/;

/**
 * Why a kg flag (not one the typed props set) is refused, or undefined: flags Kilo itself calls
 * insecure, and flags that undo what KiloMesh deploys (squat/kilo cmd/kg/main.go, 0.7.0). A value
 * from a Terraform token counts as the worst it could be.
 */
function kgArgRisk(name: string, value: string | undefined, granularity: MeshGranularity): string | undefined {
  const isFalse = value !== undefined && PFLAG_FALSE.test(value);
  switch (name) {
    case "iptables-forward-rules":
      // pkg/mesh/routes.go, Rules(): "-s <pod cidr> -j ACCEPT" and "-d <pod cidr> -j ACCEPT", prepended to FORWARD.
      return isFalse ? undefined : "Kilo's own help calls it \"potentially insecure\": it puts ACCEPT rules for the pod networks at the top of the FORWARD chain, " +
        "matched by address on any interface, ahead of ufw's rules (and contending with K3s's NetworkPolicy chain for that place), so a packet that claims a pod " +
        "address is forwarded whichever interface it arrives on. PeerFirewall already allows the forwarding the mesh needs, bound to kilo0 and kube-bridge; remove the flag";
    case "cni-path":
      return `the DaemonSet mounts /etc/cni/net.d and installs the CNI configuration as /etc/cni/net.d/${CNI_CONF_FILE}, the file kg keeps each node's pod network in; ` +
        "with another path pods get no network. Remove the flag";
    case "cni":
      return value === undefined || (!isFalse && !value.includes(v.UNKNOWN)) ? undefined
        : "KiloMesh deploys Kilo as the CNI (K3s runs without flannel); without it kg leaves the CNI configuration alone and pods get no network. Remove the flag";
    case "compatibility":
      return "runs Kilo beside another CNI (flannel, cilium), but flannel is off here (flannel-backend: none) and Kilo is the CNI. Remove the flag";
    case "topology-label":
      return granularity !== MeshGranularity.LOCATION ? undefined
        : "with MeshGranularity.LOCATION it groups nodes into locations by another label than topology.kubernetes.io/region, which the check that every node " +
          "has a location reads, so nodes could share a location unnoticed, and traffic inside a location is not encrypted. Give every node host.location instead";
    case "version":
      return "kg would print its version and exit, and the DaemonSet would never become ready. Remove the flag";
    default:
      return undefined;
  }
}

/** A readable construct id for a node's annotations: its path below its stack. */
function annotationId(n: K3sNode): string {
  const stackPath = n.stack.node.path;
  return n.node.path.slice(stackPath.length + 1).replace(/\//g, "-");
}

/** Whether two literal CIDRs overlap (false when either is a token or malformed). */
function cidrsOverlap(a: string, b: string): boolean {
  if (v.isToken(a) || v.isToken(b) || v.checkCidr(a) || v.checkCidr(b)) return false;
  const [na, la] = ipaddr.parseCIDR(a);
  const [nb, lb] = ipaddr.parseCIDR(b);
  if (na.kind() !== nb.kind()) return false;
  return la <= lb ? nb.match(na, la) : na.match(nb, lb);
}

// ---------------------------------------------------------------------------------------------
// Peers

/** Where the mesh first sends packets for a peer. Give `dns` or `ip`. */
export interface KiloPeerEndpoint {
  /**
   * A DNS name for the peer (lower-case RFC 1123).
   * @default - none; give ip
   */
  readonly dns?: string;
  /**
   * An IP address for the peer; used over `dns` when both are given.
   * @default - none; give dns
   */
  readonly ip?: string;
  /**
   * The peer's WireGuard UDP port.
   * @default 51820
   */
  readonly port?: number;
}

/** One WireGuard peer outside the cluster. */
export interface KiloPeerOptions {
  /**
   * The Peer's name in Kubernetes (lower-case DNS name); `kgctl showconf peer NAME` uses it.
   */
  readonly name: string;
  /** The peer's WireGuard public key (`wg pubkey`: base64 of 32 bytes). */
  readonly publicKey: string;
  /**
   * Addresses the peer uses inside the mesh, as CIDRs (for one laptop e.g. 10.5.0.1/32).
   * They must not overlap the pod, service or WireGuard networks.
   */
  readonly allowedIps: string[];
  /**
   * Where to reach the peer. Leave it out for peers that connect to the mesh themselves
   * (laptops behind NAT).
   * @default - none
   */
  readonly endpoint?: KiloPeerEndpoint;
  /**
   * Seconds between keepalives the nodes send to the peer.
   * @default - none (0)
   */
  readonly persistentKeepaliveSeconds?: number;
  /**
   * A preshared key (`wg genpsk`) for an extra symmetric layer, as a token from a sensitive
   * variable or secret store: a literal is refused (it would land in clear in cdk.tf.json). It is
   * stored in Terraform state and in the Peer object, which anyone allowed to read Peers can read.
   * @default - none
   */
  readonly presharedKey?: string;
}

/** Settings of a set of Kilo peers. */
export interface KiloPeersProps {
  /** The mesh the peers join. Must be in another stack, deployed before this one. */
  readonly mesh: KiloMesh;
  /**
   * The peers.
   * @default - none; add them with addPeer()
   */
  readonly peers?: KiloPeerOptions[];
  /**
   * The Kubernetes provider to deploy with; it must belong to this construct's stack.
   * @default - a provider created in this stack from the mesh's server outputs
   */
  readonly kubernetesProvider?: k8sProvider.KubernetesProvider;
}

const WG_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** A WireGuard key: base64 of exactly 32 bytes. */
function checkWireguardKey(value: string): string | undefined {
  if (v.isToken(value)) return undefined;
  if (!WG_KEY.test(value) || Buffer.from(value, "base64").length !== 32) {
    return "is not a WireGuard key: expected 44 characters of base64 encoding 32 bytes, as printed by `wg pubkey` or `wg genpsk`";
  }
  return undefined;
}

/**
 * Kilo Peers: WireGuard peers outside the cluster that join the mesh. After deploying, print a
 * peer's configuration with `kgctl showconf peer NAME` and add its own private key.
 *
 * A Peer is a custom resource: Terraform can only plan it once the CRD exists. Create KiloPeers
 * in a third stack; it depends on the mesh's stack, so `cdktf deploy '*'` deploys cluster, then
 * mesh, then peers.
 */
export class KiloPeers extends Construct {
  /** The mesh the peers join. */
  public readonly mesh: KiloMesh;
  /** The provider the Peers are deployed with. */
  public readonly kubernetesProvider: k8sProvider.KubernetesProvider;
  /** The peers added so far (PeerFirewall reads them to keep them off its admin networks). */
  public readonly peers: KiloPeerOptions[] = [];

  constructor(scope: Construct, id: string, props: KiloPeersProps) {
    super(scope, id);
    this.mesh = props.mesh;
    const stack = TerraformStack.of(this);
    if (props.mesh instanceof KiloMesh && props.mesh.stack !== stack && props.mesh.server?.stack !== stack) {
      stack.addDependency(props.mesh.stack);
    }
    this.kubernetesProvider = props.kubernetesProvider ?? providerFor(this, "kubernetes", props.mesh.server);
    constrainProvider(this, "kubernetes");
    this.node.addValidation({ validate: () => this.validatePeers(props) });
    reportAtSynth(this);
    for (const p of props.peers ?? []) this.addPeer(p);
  }

  /** Add a peer to the mesh. */
  public addPeer(peer: KiloPeerOptions): void {
    const literalName = !v.isToken(peer.name) && peer.name ? peer.name : undefined;
    if (literalName !== undefined && this.peers.some((p) => p.name === literalName)) {
      throw new Error(`KiloPeers "${this.node.path}": addPeer: a peer named "${literalName}" already exists; peer names must be unique`);
    }
    const id = literalName !== undefined ? `peer-${literalName}` : `peer-${this.peers.length}`;
    this.peers.push(peer);
    new manifest.Manifest(this, id, {
      provider: this.kubernetesProvider,
      manifest: kiloPeer({
        name: peer.name,
        publicKey: peer.publicKey,
        allowedIps: peer.allowedIps ?? [],
        endpointDns: peer.endpoint?.dns,
        endpointIp: peer.endpoint?.ip,
        endpointPort: peer.endpoint ? (peer.endpoint.port ?? 51820) : undefined,
        persistentKeepalive: peer.persistentKeepaliveSeconds,
        presharedKey: peer.presharedKey === undefined ? undefined : Fn.sensitive(peer.presharedKey),
      }),
      fieldManager: { name: FIELD_MANAGER },
    });
  }

  private validatePeers(props: KiloPeersProps): string[] {
    const where = `KiloPeers "${this.node.path}"`;
    const mesh = props.mesh;
    if (!(mesh instanceof KiloMesh)) return [`${where}: mesh: pass the KiloMesh the peers join`];
    const errors: string[] = [];
    const stack = TerraformStack.of(this);
    if (stack === mesh.stack || stack === mesh.server.stack) {
      errors.push(`${where}: mesh: this KiloPeers is in stack "${stack.node.id}", which also holds ` +
        `${stack === mesh.stack ? "the KiloMesh" : "the K3sServer"}. A Peer is a custom resource that Terraform can only plan once Kilo's CRD exists, ` +
        `so peers need a stack of their own, deployed after "${mesh.stack.node.id}": ` +
        `new KiloPeers(new TerraformStack(app, "peers"), "peers", { mesh })`);
    }
    if (props.kubernetesProvider && TerraformStack.of(props.kubernetesProvider) !== stack) {
      errors.push(`${where}: kubernetesProvider: ${props.kubernetesProvider.node.path} belongs to another stack; create it in "${stack.node.id}" or leave it out`);
    }
    const reserved: Array<[string, string]> = [
      ["the pod network", mesh.server.clusterCidr],
      ["the service network", mesh.server.serviceCidr],
      ["the WireGuard network", mesh.wireguardSubnet],
    ];
    // Addresses a peer's allowed IPs must not claim: the nodes' own (the peer's traffic would then
    // pass as theirs). PeerFirewall checks its admin networks against the peers itself.
    const claimed: Array<[string, string]> = [];
    for (const n of mesh.nodes) {
      if (!(n instanceof K3sNode) || !n.host) continue;
      for (const a of [n.host.address, n.host.privateAddress]) if (a !== undefined && !v.isToken(a) && !v.checkIp(a)) claimed.push([`the address of node ${n.node.path}`, a]);
    }
    const seen = new Map<string, number>();
    this.peers.forEach((p, i) => {
      const at = `${where}: peers[${i}]${p.name && !v.isToken(p.name) ? ` ("${p.name}")` : ""}`;
      const err = (field: string, msg: string | undefined) => { if (msg) errors.push(`${at}: ${field}: ${msg}`); };
      if (!p.name) err("name", "is required: a lower-case DNS name such as \"alice-laptop\"");
      else if (!v.isToken(p.name)) {
        if (p.name.length > 253 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(p.name)) {
          err("name", `"${p.name}" is not a valid Kubernetes name: use lower-case letters, digits, "-" and "."`);
        }
        if (seen.has(p.name)) err("name", `"${p.name}" is also peers[${seen.get(p.name)}]; names must be unique`);
        seen.set(p.name, i);
      }
      if (p.publicKey === undefined) err("publicKey", "is required: the peer's `wg pubkey` output");
      else err("publicKey", checkWireguardKey(p.publicKey));
      if (p.presharedKey !== undefined) {
        err("presharedKey", checkWireguardKey(p.presharedKey) ??
          v.checkNotLiteralSecret(p.presharedKey, "pass it as a token, e.g. a TerraformVariable with sensitive: true or a secret store's data source"));
      }
      if (!p.allowedIps || (!v.isToken(p.allowedIps) && p.allowedIps.length === 0)) {
        err("allowedIps", "give at least one CIDR, such as 10.5.0.1/32 for a single machine");
      }
      for (const cidr of v.isToken(p.allowedIps) ? [] : p.allowedIps ?? []) {
        const bad = v.checkCidr(cidr);
        err("allowedIps", bad);
        if (bad) continue;
        for (const [what, net] of reserved) {
          if (cidrsOverlap(cidr, net)) err("allowedIps", `${cidr} overlaps ${what} ${net}; the peer would take over cluster addresses. Use a range outside it, such as 10.5.0.0/24`);
        }
        for (const [what, net] of claimed) {
          if (v.overlaps(cidr, net)) err("allowedIps", `${cidr} overlaps ${what} (${net}); the peer's traffic would pass for it. Use the peer's own mesh range, such as 10.5.0.1/32`);
        }
      }
      const e = p.endpoint;
      if (e) {
        if (e.dns === undefined && e.ip === undefined) err("endpoint", "give dns or ip");
        if (e.ip !== undefined) err("endpoint.ip", v.checkIp(e.ip));
        if (e.dns !== undefined && !v.isToken(e.dns) && (e.dns.length > 253 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(e.dns))) {
          err("endpoint.dns", `"${e.dns}" is not a lower-case RFC 1123 DNS name; for an address use endpoint.ip`);
        }
        if (e.port !== undefined) err("endpoint.port", v.checkPort(e.port));
      }
      const ka = p.persistentKeepaliveSeconds;
      if (ka !== undefined && !v.isToken(ka) && (!Number.isInteger(ka) || ka < 0 || ka > 65535)) {
        err("persistentKeepaliveSeconds", `${ka} must be a whole number of seconds between 0 and 65535`);
      }
    });
    return errors;
  }
}
