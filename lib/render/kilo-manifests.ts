/**
 * Kilo's Kubernetes objects as plain data, built from typed settings: the Peer CRD, the CNI
 * ConfigMap, the ServiceAccount and its RBAC, the DaemonSet, Peer objects and the node
 * annotations a public-network mesh needs. No cdktf in here; KiloMesh wires the results into
 * kubernetes_manifest and kubernetes_annotations resources.
 *
 * Written for Kilo 0.7.0 from its sources (squat/kilo: manifests/kilo-k3s.yaml, manifests/crds.yaml,
 * pkg/k8s/apis/kilo/v1alpha1/types.go, pkg/k8s/backend.go, cmd/kg/main.go); the objects are ours.
 *
 * The types below come from kubernetes-models (a devDependency, imported for types only, so
 * nothing of it reaches the compiled JavaScript): a misspelt or misplaced field is a compile error,
 * and the tests validate every object against the Kubernetes API schema as well.
 */
import type { ICustomResourceDefinition } from "kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition";
import type { IJSONSchemaProps } from "kubernetes-models/apiextensions.k8s.io/v1/JSONSchemaProps";
import type { IDaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import type { IClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import type { IClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import type { IPolicyRule } from "kubernetes-models/rbac.authorization.k8s.io/v1/PolicyRule";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import type { IVolume } from "kubernetes-models/v1/Volume";
import type { IVolumeMount } from "kubernetes-models/v1/VolumeMount";

/** A Kubernetes object as plain JSON-able data. */
export type KubeObject = { [key: string]: any };

/** Where Kilo's namespaced objects live (as upstream: it is a node-level system component). */
export const KILO_NAMESPACE = "kube-system";
/** Name of the ServiceAccount, ClusterRole, ClusterRoleBinding, ConfigMap and DaemonSet. */
export const KILO_NAME = "kilo";
/** Field manager recorded on everything this library applies. */
export const FIELD_MANAGER = "cdktf-k3s-kilo";

export const PEER_GROUP = "kilo.squat.ai";
export const PEER_VERSION = "v1alpha1";
export const PEER_CRD_NAME = `peers.${PEER_GROUP}`;

/** The interface name Kilo uses (and wireguard-go creates in userspace mode). */
export const KILO_INTERFACE = "kilo0";
/** The bridge the CNI config attaches pods to; Kilo routes from it. */
export const CNI_BRIDGE = "kube-bridge";
/** The file kg reads and updates (its --cni-path default). */
export const CNI_CONF_FILE = "10-kilo.conflist";

const LABELS = {
  "app.kubernetes.io/name": KILO_NAME,
  "app.kubernetes.io/part-of": KILO_NAME,
};
const MANAGED_BY = { "app.kubernetes.io/managed-by": FIELD_MANAGER };

/** Mesh topology: Kilo's `--mesh-granularity` values. */
export type Granularity = "full" | "location";

/** Everything the DaemonSet and ConfigMap are rendered from. */
export interface KiloSettings {
  /** Image of kg (and of the init container that installs the CNI plugins). */
  readonly image: string;
  readonly granularity: Granularity;
  /** WireGuard UDP port (`--port`). */
  readonly port: number;
  /** CIDR Kilo allocates WireGuard interface addresses from (`--subnet`). */
  readonly subnet: string;
  /** The cluster's service networks (`--service-cidr`, repeatable). */
  readonly serviceCidrs: string[];
  /** WireGuard MTU (`--mtu`); undefined lets kg derive it from the underlay ("auto"). */
  readonly mtu?: number;
  /** MTU of the pods' bridge in the CNI config. */
  readonly cniMtu: number;
  /** Address kg serves health, metrics, pprof and the topology graph on (`--listen`). */
  readonly listen: string;
  /** Run wireguard-go from this image as a sidecar instead of using the kernel module. */
  readonly userspaceWireguardImage?: string;
  /** Further kg flags, appended after the ones rendered here. */
  readonly extraArgs: string[];
  /** The node-local Kubernetes API endpoint kg talks to (see `kiloDaemonSet`). */
  readonly apiServerHost: string;
  readonly apiServerPort: number;
}

/**
 * kg flags this library renders from typed settings. A user who passes one in extraArgs is told
 * which setting to use instead; `kubeconfig` and `master` are refused outright because they
 * would replace the ServiceAccount authentication.
 */
export const MANAGED_ARGS: Record<string, string> = {
  "kubeconfig": "Kilo authenticates with its own ServiceAccount through in-cluster config; a kubeconfig would replace that",
  "master": "the API endpoint is set by localApiServerPort; --master would drop the ServiceAccount token",
  "hostname": "always the pod's node name",
  "mesh-granularity": "use the meshGranularity prop",
  "port": "use the wireguardPort prop",
  "subnet": "use the wireguardSubnet prop",
  "service-cidr": "use the serviceCidr prop",
  "mtu": "use the mtu prop",
  "listen": "use the metricsListen prop",
  "create-interface": "set by userspaceWireguard",
  "interface": "Kilo's interface is kilo0; wireguard-go creates it under that name in userspace mode",
};

/** The CNI network config (a conflist) Kilo expects; kg fills the node's pod CIDR into `ipam`. */
export function cniConfig(mtu: number): KubeObject {
  return {
    cniVersion: "0.4.0",
    name: KILO_NAME,
    plugins: [
      {
        name: "kubernetes",
        type: "bridge",
        bridge: CNI_BRIDGE,
        isDefaultGateway: true,
        forceAddress: true,
        mtu,
        // No ranges: kg writes the node's podCIDR here once it knows it.
        ipam: { type: "host-local" },
      },
      { type: "portmap", snat: true, capabilities: { portMappings: true } },
    ],
  };
}

/** kg's command-line flags, in a stable order. */
export function kiloArgs(s: KiloSettings): string[] {
  const args = [
    "--hostname=$(NODE_NAME)",
    `--mesh-granularity=${s.granularity}`,
    `--port=${s.port}`,
    `--subnet=${s.subnet}`,
    ...s.serviceCidrs.map((c) => `--service-cidr=${c}`),
    `--listen=${s.listen}`,
  ];
  if (s.mtu !== undefined) args.push(`--mtu=${s.mtu}`);
  if (s.userspaceWireguardImage !== undefined) {
    // wireguard-go creates the interface; kg must not race it (Kilo's docs/userspace-wireguard.md).
    args.push("--create-interface=false", `--interface=${KILO_INTERFACE}`);
  }
  return [...args, ...s.extraArgs];
}

/** The flag name of an argument such as `--foo=bar` or `--foo` (without dashes). */
export function argName(arg: string): string {
  return arg.replace(/^-+/, "").split("=")[0];
}

// ---------------------------------------------------------------------------------------------
// CRD

const str = (description: string): IJSONSchemaProps => ({ type: "string", description });

/**
 * The Peer CRD. Field for field what Kilo 0.7.0's PeerSpec (pkg/k8s/apis/kilo/v1alpha1/types.go)
 * reads, with the same required fields; descriptions are ours.
 */
export function kiloPeerCrd(): KubeObject {
  const crd: ICustomResourceDefinition = {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: PEER_CRD_NAME, labels: { ...LABELS, ...MANAGED_BY } },
    spec: {
      group: PEER_GROUP,
      names: { kind: "Peer", listKind: "PeerList", plural: "peers", singular: "peer" },
      scope: "Cluster",
      versions: [{
        name: PEER_VERSION,
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: "object",
            description: "A WireGuard peer outside the cluster (a laptop, a site gateway) that joins the Kilo mesh.",
            required: ["spec"],
            properties: {
              apiVersion: str("The versioned schema of this object."),
              kind: str("The REST resource this object represents."),
              metadata: { type: "object" },
              spec: {
                type: "object",
                description: "How the mesh reaches the peer and what the peer may send.",
                required: ["allowedIPs", "publicKey"],
                properties: {
                  allowedIPs: {
                    type: "array",
                    description: "CIDRs the peer may use as source addresses inside the tunnel, and that the mesh routes to it.",
                    items: { type: "string" },
                  },
                  endpoint: {
                    type: "object",
                    description: "Where the mesh first sends packets for the peer; omit it for peers that connect in.",
                    required: ["dnsOrIP", "port"],
                    properties: {
                      dnsOrIP: {
                        type: "object",
                        description: "A DNS name or an IP address; the IP wins when both are set.",
                        properties: {
                          dns: str("An RFC 1123 DNS name."),
                          ip: str("An IP address."),
                        },
                      },
                      port: { type: "integer", format: "int32", description: "The peer's WireGuard UDP port." },
                    },
                  },
                  persistentKeepalive: {
                    type: "integer",
                    description: "Seconds between keepalive packets to the peer; 0 (the default) sends none.",
                  },
                  presharedKey: str("Optional symmetric key mixed into the handshake (base64, 32 bytes)."),
                  publicKey: str("The peer's WireGuard public key (base64, 32 bytes)."),
                },
              },
            },
          },
        },
      }],
    },
  };
  return crd;
}

// ---------------------------------------------------------------------------------------------
// RBAC

/**
 * What kg 0.7.0 needs, no more (manifests/kilo-k3s.yaml): it lists and watches Nodes and patches
 * its own annotations onto them; lists and watches Peers; and reads the Peer CRD once at start, by
 * name (pkg/k8s/backend.go checks it exists), so that read is limited to that one CRD.
 *
 * Not narrower: `patch` on nodes cannot name "the pod's own node" (one ServiceAccount serves every
 * node's pod, and resourceNames are fixed names), and list/watch ignore resourceNames. So kg on any
 * node may patch every Node object; docs/kilo.md says what that allows.
 */
const RULES: IPolicyRule[] = [
  { apiGroups: [""], resources: ["nodes"], verbs: ["list", "patch", "watch"] },
  { apiGroups: [PEER_GROUP], resources: ["peers"], verbs: ["list", "watch"] },
  { apiGroups: ["apiextensions.k8s.io"], resources: ["customresourcedefinitions"], resourceNames: [PEER_CRD_NAME], verbs: ["get"] },
];
export const KILO_CLUSTER_ROLE_RULES: ReadonlyArray<KubeObject> = RULES;

export function kiloServiceAccount(): KubeObject {
  const sa: IServiceAccount = {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: KILO_NAME, namespace: KILO_NAMESPACE, labels: { ...LABELS, ...MANAGED_BY } },
  };
  return sa;
}

export function kiloClusterRole(): KubeObject {
  const role: IClusterRole = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: KILO_NAME, labels: { ...LABELS, ...MANAGED_BY } },
    rules: RULES.map((r) => ({ ...r, apiGroups: [...r.apiGroups!], resources: [...r.resources!], ...(r.resourceNames ? { resourceNames: [...r.resourceNames] } : {}), verbs: [...r.verbs] })),
  };
  return role;
}

export function kiloClusterRoleBinding(): KubeObject {
  const binding: IClusterRoleBinding = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: KILO_NAME, labels: { ...LABELS, ...MANAGED_BY } },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: KILO_NAME },
    subjects: [{ kind: "ServiceAccount", name: KILO_NAME, namespace: KILO_NAMESPACE }],
  };
  return binding;
}

// ---------------------------------------------------------------------------------------------
// ConfigMap and DaemonSet

export function kiloConfigMap(s: Pick<KiloSettings, "cniMtu">): KubeObject {
  const cm: IConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: KILO_NAME, namespace: KILO_NAMESPACE, labels: { ...LABELS, ...MANAGED_BY } },
    data: { "cni-conf.json": JSON.stringify(cniConfig(s.cniMtu), null, 2) + "\n" },
  };
  return cm;
}

/**
 * The init container's script: copy the CNI plugins shipped in the Kilo image to the host, make
 * Kilo's conflist the only network config (containerd uses the first file by name), and put it
 * in place with a rename so containerd never reads half a file. No `${` or `%{` in here: the
 * text ends up in a Terraform string.
 */
export const INSTALL_CNI_SCRIPT = [
  "set -eu",
  "cp -f /opt/cni/bin/* /host/opt/cni/bin/",
  "dir=/host/etc/cni/net.d",
  `new="$dir/.${CNI_CONF_FILE}.new"`,
  "printf '%s\\n' \"$CNI_NETWORK_CONFIG\" > \"$new\"",
  "for f in \"$dir\"/*; do",
  "  if [ -f \"$f\" ] || [ -L \"$f\" ]; then rm -f \"$f\"; fi",
  "done",
  `mv "$new" "$dir/${CNI_CONF_FILE}"`,
  "",
].join("\n");

/** True for a `--listen` value bound to loopback only. */
export function isLoopbackListen(listen: string): boolean {
  const host = listen.slice(0, listen.lastIndexOf(":"));
  return host === "127.0.0.1" || host === "[::1]" || host === "localhost";
}

/** Port of a `host:port` listen address. */
export function listenPort(listen: string): number {
  return Number(listen.slice(listen.lastIndexOf(":") + 1));
}

/**
 * The Kilo DaemonSet.
 *
 * How kg reaches the API, and why: kg runs with in-cluster config — no `--kubeconfig`, no
 * kubeconfig file, nothing from /etc/rancher/k3s or /var/lib/rancher/k3s mounted — so it
 * authenticates as its ServiceAccount with the token the kubelet projects into the pod. client-go
 * re-reads that token file periodically (rest.Config.BearerTokenFile), so rotation never leaves kg
 * with a stale token, the weakness of upstream's init script, which copies the token into a
 * generated kubeconfig once at pod start (and whose kubeconfig names no cluster, so kg silently
 * fell back to in-cluster config anyway; see squat/kilo manifests/kilo-k3s.yaml, fixed only after
 * 0.7.0).
 *
 * In-cluster config normally dials the `kubernetes` Service's ClusterIP. On K3s that does work
 * before any CNI exists (kube-proxy runs inside the K3s agent and programs the Service rules on a
 * NotReady node too), but it makes kg wait for kube-proxy's first sync and sends every node
 * straight to the server's advertised address on 6443, past the agent's load balancer and its
 * fail-over between servers. Instead
 * KUBERNETES_SERVICE_HOST/PORT point at 127.0.0.1:6444, which on every K3s node is the API
 * without any Service routing: on agents it is the supervisor client load balancer
 * (`--lb-server-port`, default 6444), which K3s's own kubelet and kube-proxy use and which fails
 * over between servers; on servers it is kube-apiserver's own loopback listener (K3s binds it to
 * 127.0.0.1 on https-listen-port + 1 = 6444; pkg/daemons/control/server.go). Both present
 * certificates issued by the cluster's server CA with 127.0.0.1 among their names, and the
 * ServiceAccount's ca.crt is that CA (K3s passes server-ca.crt as the controller manager's
 * root-ca-file). Variables set in the pod spec take precedence over the ones the kubelet injects.
 * This is Kilo's own upstream choice of endpoint (the `server:` of the agent's kubelet.kubeconfig:
 * 127.0.0.1:6444 on agents), made without reading host files.
 */
export function kiloDaemonSet(s: KiloSettings): KubeObject {
  const userspace = s.userspaceWireguardImage !== undefined;
  const volumes: IVolume[] = [
    { name: "cni-bin-dir", hostPath: { path: "/opt/cni/bin", type: "DirectoryOrCreate" } },
    { name: "cni-conf-dir", hostPath: { path: "/etc/cni/net.d", type: "DirectoryOrCreate" } },
    // The node's WireGuard private key lives here and must survive pod restarts.
    { name: "kilo-dir", hostPath: { path: "/var/lib/kilo", type: "DirectoryOrCreate" } },
    { name: "lib-modules", hostPath: { path: "/lib/modules" } },
    // Shared with kube-proxy and K3s so concurrent iptables writers take the same lock.
    { name: "xtables-lock", hostPath: { path: "/run/xtables.lock", type: "FileOrCreate" } },
  ];
  const mounts: IVolumeMount[] = [
    { name: "cni-conf-dir", mountPath: "/etc/cni/net.d" },
    { name: "kilo-dir", mountPath: "/var/lib/kilo" },
    { name: "lib-modules", mountPath: "/lib/modules", readOnly: true },
    { name: "xtables-lock", mountPath: "/run/xtables.lock" },
  ];
  if (userspace) {
    // wireguard-go's UAPI sockets, through which kg configures the interface.
    volumes.push({ name: "wireguard-sockets", hostPath: { path: "/var/run/wireguard", type: "DirectoryOrCreate" } });
    mounts.push({ name: "wireguard-sockets", mountPath: "/var/run/wireguard" });
  }

  const kg: IContainer = {
    name: "kilo",
    image: s.image,
    imagePullPolicy: "IfNotPresent",
    args: kiloArgs(s),
    env: [
      { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
      // In-cluster config against the node-local K3s endpoint: see the comment above.
      { name: "KUBERNETES_SERVICE_HOST", value: s.apiServerHost },
      { name: "KUBERNETES_SERVICE_PORT", value: String(s.apiServerPort) },
    ],
    // Only advertise the metrics port when it is reachable from outside the host at all.
    ...(isLoopbackListen(s.listen) ? {} : { ports: [{ name: "metrics", containerPort: listenPort(s.listen), protocol: "TCP" as const }] }),
    // kg creates interfaces, routes and iptables rules in the host's network namespace.
    securityContext: { privileged: true },
    volumeMounts: mounts,
  };

  const containers: IContainer[] = [kg];
  if (userspace) {
    containers.push({
      name: "wireguard",
      image: s.userspaceWireguardImage,
      imagePullPolicy: "IfNotPresent",
      args: ["wireguard-go", "--foreground", KILO_INTERFACE],
      // Needs /dev/net/tun and CAP_NET_ADMIN in the host network namespace.
      securityContext: { privileged: true },
      volumeMounts: [{ name: "wireguard-sockets", mountPath: "/var/run/wireguard" }],
    });
  }

  const installCni: IContainer = {
    name: "install-cni",
    image: s.image,
    imagePullPolicy: "IfNotPresent",
    command: ["/bin/sh", "-c", INSTALL_CNI_SCRIPT],
    env: [{ name: "CNI_NETWORK_CONFIG", valueFrom: { configMapKeyRef: { name: KILO_NAME, key: "cni-conf.json" } } }],
    // Root to write the host directories, nothing more.
    securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true },
    volumeMounts: [
      { name: "cni-bin-dir", mountPath: "/host/opt/cni/bin" },
      { name: "cni-conf-dir", mountPath: "/host/etc/cni/net.d" },
    ],
  };

  const ds: IDaemonSet = {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: KILO_NAME, namespace: KILO_NAMESPACE, labels: { ...LABELS, ...MANAGED_BY } },
    spec: {
      selector: { matchLabels: { ...LABELS } },
      template: {
        metadata: { labels: { ...LABELS } },
        spec: {
          serviceAccountName: KILO_NAME,
          automountServiceAccountToken: true,
          hostNetwork: true,
          // The node's network depends on it: schedule it first, evict it last.
          priorityClassName: "system-node-critical",
          // A node without a CNI is NotReady and tainted; Kilo is what makes it Ready.
          tolerations: [
            { effect: "NoSchedule", operator: "Exists" },
            { effect: "NoExecute", operator: "Exists" },
          ],
          initContainers: [installCni],
          containers,
          volumes,
        },
      },
    },
  };
  return ds;
}

// ---------------------------------------------------------------------------------------------
// Peers

export interface PeerSettings {
  readonly name: string;
  readonly publicKey: string;
  readonly allowedIps: string[];
  readonly endpointDns?: string;
  readonly endpointIp?: string;
  readonly endpointPort?: number;
  readonly persistentKeepalive?: number;
  readonly presharedKey?: string;
}

/** A Peer object (kilo.squat.ai/v1alpha1), shaped like Kilo's PeerSpec. */
export function kiloPeer(p: PeerSettings): KubeObject {
  const spec: KubeObject = { allowedIPs: [...p.allowedIps], publicKey: p.publicKey };
  if (p.endpointDns !== undefined || p.endpointIp !== undefined) {
    const dnsOrIP: KubeObject = {};
    if (p.endpointDns !== undefined) dnsOrIP.dns = p.endpointDns;
    if (p.endpointIp !== undefined) dnsOrIP.ip = p.endpointIp;
    spec.endpoint = { dnsOrIP, port: p.endpointPort };
  }
  if (p.persistentKeepalive !== undefined) spec.persistentKeepalive = p.persistentKeepalive;
  if (p.presharedKey !== undefined) spec.presharedKey = p.presharedKey;
  return {
    apiVersion: `${PEER_GROUP}/${PEER_VERSION}`,
    kind: "Peer",
    metadata: { name: p.name, labels: { ...MANAGED_BY } },
    spec,
  };
}

// ---------------------------------------------------------------------------------------------
// Node annotations

export const ANNOTATION_FORCE_ENDPOINT = "kilo.squat.ai/force-endpoint";
export const ANNOTATION_PERSISTENT_KEEPALIVE = "kilo.squat.ai/persistent-keepalive";
export const ANNOTATION_LOCATION = "kilo.squat.ai/location";
export const ANNOTATION_LEADER = "kilo.squat.ai/leader";

/** The node annotations users set (docs/annotations.md); this library sets only these. */
export const USER_ANNOTATIONS = [
  ANNOTATION_FORCE_ENDPOINT,
  "kilo.squat.ai/force-internal-ip",
  ANNOTATION_LEADER,
  ANNOTATION_LOCATION,
  ANNOTATION_PERSISTENT_KEEPALIVE,
  "kilo.squat.ai/allowed-location-ips",
];

/** Annotations kg writes itself (pkg/k8s/backend.go); setting them would fight Kilo. */
export const KILO_OWNED_ANNOTATIONS = [
  "kilo.squat.ai/endpoint",
  "kilo.squat.ai/internal-ip",
  "kilo.squat.ai/key",
  "kilo.squat.ai/last-seen",
  "kilo.squat.ai/wireguard-ip",
  "kilo.squat.ai/discovered-endpoints",
  "kilo.squat.ai/granularity",
  "kilo.squat.ai/cni-compatibility-ip",
];

export interface NodeMeshSettings {
  /** `host:port` to force as the node's WireGuard endpoint (already formatted). */
  readonly forceEndpoint?: string;
  /** Keepalive interval in seconds, for nodes behind NAT. */
  readonly persistentKeepalive?: number;
  readonly location?: string;
  readonly leader?: boolean;
}

/** The annotations one node gets; empty when it needs none. */
export function nodeAnnotations(n: NodeMeshSettings): Record<string, string> {
  const a: Record<string, string> = {};
  if (n.forceEndpoint !== undefined) a[ANNOTATION_FORCE_ENDPOINT] = n.forceEndpoint;
  if (n.persistentKeepalive !== undefined) a[ANNOTATION_PERSISTENT_KEEPALIVE] = String(n.persistentKeepalive);
  if (n.location !== undefined) a[ANNOTATION_LOCATION] = n.location;
  // Kilo only checks that the key is present; "true" reads better than "".
  if (n.leader) a[ANNOTATION_LEADER] = "true";
  return a;
}

/** `host:port` as Go's net.SplitHostPort (which Kilo uses) reads it: IPv6 in brackets. */
export function formatEndpoint(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
