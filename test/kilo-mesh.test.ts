/**
 * KiloMesh and KiloPeers as synthesized: the objects in Kilo's order with a bounded rollout wait,
 * every option and default, node annotations from the hosts, the provider built from the
 * server's outputs, the cluster → mesh → peers stack order, and validation errors that say
 * where, what and how to fix it (tokens pass through unchecked).
 */
import { readFileSync } from "fs";
import { join } from "path";
import { App, TerraformStack, TerraformVariable, Testing, Token } from "cdktf";
import { provider as k8sProvider } from "@cdktf/provider-kubernetes";
import { K3sAgent, K3sServer, KiloMesh, KiloMeshProps, KiloPeerOptions, KiloPeers, MeshGranularity } from "../lib";
import { kubernetesSchemaErrors } from "./util/kube-schema";
import { logicalId, resourceOf, synth, Synthesized, validationErrors } from "./util/synth";

const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };
const KEY = Buffer.alloc(32, 7).toString("base64");
const KEY2 = Buffer.alloc(32, 9).toString("base64");

interface World {
  app: App;
  cluster: TerraformStack;
  meshStack: TerraformStack;
  server: K3sServer;
  agents: K3sAgent[];
  mesh: KiloMesh;
  out: Synthesized;
}

/** The article's shape: a server, a NAT'd free-tier VM, a node behind NAT, a plain VPS. */
function world(meshProps: Partial<KiloMeshProps> = {}, serverProps: Record<string, unknown> = {}): World {
  const app = Testing.app();
  const cluster = new TerraformStack(app, "cluster");
  const server = new K3sServer(cluster, "server", { host: { address: "203.0.113.10", ssh, location: "hetzner" }, ...serverProps });
  const agents = [
    new K3sAgent(cluster, "gcp", { server, host: { address: "203.0.113.20", ssh, publicAddressOnInterface: false, location: "gcp" } }),
    new K3sAgent(cluster, "pi", { server, host: { address: "198.51.100.30", ssh, behindNat: true, location: "home" } }),
    new K3sAgent(cluster, "vps", { server, host: { address: "203.0.113.40", ssh } }),
  ];
  const meshStack = new TerraformStack(app, "mesh");
  const mesh = new KiloMesh(meshStack, "kilo", { server, nodes: [server, ...agents], ...meshProps });
  return { app, cluster, meshStack, server, agents, mesh, out: synth(meshStack) };
}

const manifests = (out: Synthesized) => out.resource.kubernetes_manifest;
const object = (out: Synthesized, name: string) => resourceOf(out, "kubernetes_manifest", `kilo_${name}`).manifest;
const daemonSet = (out: Synthesized) => object(out, "daemonset");
const kg = (out: Synthesized) => daemonSet(out).spec.template.spec.containers.find((c: any) => c.name === "kilo");
const ref = (out: Synthesized, type: string, prefix: string) => `${type}.${logicalId(out, type, prefix)}`;

describe("KiloMesh: what it deploys", () => {
  const w = world();
  const out = w.out;

  test("the CRD, ServiceAccount, ClusterRole, binding, CNI ConfigMap and DaemonSet, nothing else", () => {
    const kinds = Object.values(manifests(out)).map((r: any) => `${r.manifest.kind}/${r.manifest.metadata.name}`).sort();
    expect(kinds).toEqual([
      "ClusterRole/kilo", "ClusterRoleBinding/kilo", "ConfigMap/kilo", "CustomResourceDefinition/peers.kilo.squat.ai",
      "DaemonSet/kilo", "ServiceAccount/kilo",
    ]);
    expect(Object.keys(out.resource).sort()).toEqual(["kubernetes_annotations", "kubernetes_manifest"]);
  });

  test("every synthesized object validates against the Kubernetes API schema", () => {
    const objects = Object.values(manifests(out)).map((r: any) => r.manifest);
    const nodes = Object.values(out.resource.kubernetes_annotations).map((r: any) =>
      ({ apiVersion: r.api_version, kind: r.kind, metadata: { ...r.metadata, annotations: r.annotations } }));
    expect(kubernetesSchemaErrors([...objects, ...nodes])).toEqual([...objects, ...nodes].map(() => null));
  });

  test("the DaemonSet comes after the CRD, its RBAC, its CNI config and the node annotations", () => {
    const ds = resourceOf(out, "kubernetes_manifest", "kilo_daemonset");
    expect(ds.depends_on.sort()).toEqual([
      ref(out, "kubernetes_manifest", "kilo_peer-crd"),
      ref(out, "kubernetes_manifest", "kilo_service-account"),
      ref(out, "kubernetes_manifest", "kilo_cluster-role-binding"),
      ref(out, "kubernetes_manifest", "kilo_cni-config"),
      ref(out, "kubernetes_annotations", "kilo_node-server"),
      ref(out, "kubernetes_annotations", "kilo_node-gcp"),
      ref(out, "kubernetes_annotations", "kilo_node-pi"),
    ].sort());
    expect(resourceOf(out, "kubernetes_manifest", "kilo_cluster-role-binding").depends_on.sort()).toEqual([
      ref(out, "kubernetes_manifest", "kilo_cluster-role"), ref(out, "kubernetes_manifest", "kilo_service-account"),
    ].sort());
  });

  test("waits, with a bound, for the CRD to be established and the DaemonSet to roll out", () => {
    const crd = resourceOf(out, "kubernetes_manifest", "kilo_peer-crd");
    expect(crd.wait).toEqual({ condition: [{ type: "Established", status: "True" }] });
    expect(crd.timeouts).toEqual({ create: "2m", update: "2m" });
    const ds = resourceOf(out, "kubernetes_manifest", "kilo_daemonset");
    expect(ds.wait).toEqual({ rollout: true });
    expect(ds.timeouts).toEqual({ create: "10m", update: "10m" });
  });

  test("every resource uses the mesh's own (aliased) provider and field manager", () => {
    for (const r of [...Object.values(manifests(out)), ...Object.values(out.resource.kubernetes_annotations)] as any[]) {
      expect(r.provider).toBe("kubernetes.mesh_kilo");
    }
    for (const r of Object.values(manifests(out)) as any[]) expect(r.field_manager).toEqual({ name: "cdktf-k3s-kilo" });
  });

  test("the DaemonSet never mounts k3s.yaml or anything of K3s's, and passes no kubeconfig", () => {
    const ds = daemonSet(out);
    expect(JSON.stringify(ds)).not.toMatch(/k3s\.yaml|\/etc\/rancher|\/var\/lib\/rancher|--kubeconfig|--master/);
    expect(ds.spec.template.spec.serviceAccountName).toBe("kilo");
  });

  test("the ClusterRole is exactly Kilo's, its CRD read limited to the Peer CRD", () => {
    expect(object(out, "cluster-role").rules).toEqual([
      { apiGroups: [""], resources: ["nodes"], verbs: ["list", "patch", "watch"] },
      { apiGroups: ["kilo.squat.ai"], resources: ["peers"], verbs: ["list", "watch"] },
      { apiGroups: ["apiextensions.k8s.io"], resources: ["customresourcedefinitions"], resourceNames: ["peers.kilo.squat.ai"], verbs: ["get"] },
    ]);
  });

  test("admin credentials reach only the provider block, never a Kubernetes object", () => {
    const resources = JSON.stringify(out.resource);
    expect(resources).not.toMatch(/client_key|client_certificate|kubeconfig|server_credentials|agent-token|server-token/);
  });

  test("no Terraform interpolation sneaks into the rendered objects", () => {
    expect(JSON.stringify(manifests(out))).not.toMatch(/\$\{|%\{/);
  });
});

describe("KiloMesh: defaults", () => {
  const { out, mesh } = world();

  test("pinned Kilo 0.7.0, full mesh, 51820, 10.4.0.0/16, the server's service CIDR, metrics on loopback, MTU auto", () => {
    expect(kg(out).image).toBe("docker.io/squat/kilo:0.7.0");
    expect(kg(out).args).toEqual([
      "--hostname=$(NODE_NAME)", "--mesh-granularity=full", "--port=51820", "--subnet=10.4.0.0/16",
      "--service-cidr=10.43.0.0/16", "--listen=127.0.0.1:1107",
    ]);
    expect(kg(out).ports).toBeUndefined();
    expect(JSON.parse(object(out, "cni-config").data["cni-conf.json"]).plugins[0].mtu).toBe(1420);
    expect(daemonSet(out).spec.template.spec.containers).toHaveLength(1);
    expect(kg(out).env).toContainEqual({ name: "KUBERNETES_SERVICE_PORT", value: "6444" });
    expect(mesh.meshGranularity).toBe(MeshGranularity.FULL);
    expect(mesh.wireguardPort).toBe(51820);
  });

  test("the server is always one of the nodes", () => {
    const app = Testing.app();
    const cluster = new TerraformStack(app, "cluster");
    const server = new K3sServer(cluster, "server", { host: { address: "203.0.113.10", ssh } });
    const m = new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server });
    expect(m.nodes).toEqual([server]);
  });
});

describe("KiloMesh: every option", () => {
  test("image, granularity, port, subnet, service CIDR, MTU, metrics address, extra args, API port, rollout timeout", () => {
    const { out } = world({
      image: "ghcr.io/squat/kilo:0.7.0",
      meshGranularity: MeshGranularity.LOCATION,
      wireguardPort: 51999,
      wireguardSubnet: "10.9.0.0/16",
      serviceCidr: "10.96.0.0/12",
      mtu: 1380,
      metricsListen: "10.0.0.5:9107",
      extraArgs: ["--log-level=debug"],
      localApiServerPort: 7444,
      rolloutTimeout: "20m",
    });
    expect(kg(out).image).toBe("ghcr.io/squat/kilo:0.7.0");
    expect(kg(out).args).toEqual([
      "--hostname=$(NODE_NAME)", "--mesh-granularity=location", "--port=51999", "--subnet=10.9.0.0/16",
      "--service-cidr=10.96.0.0/12", "--listen=10.0.0.5:9107", "--mtu=1380", "--log-level=debug",
    ]);
    expect(kg(out).ports).toEqual([{ name: "metrics", containerPort: 9107, protocol: "TCP" }]);
    expect(kg(out).env).toContainEqual({ name: "KUBERNETES_SERVICE_PORT", value: "7444" });
    expect(JSON.parse(object(out, "cni-config").data["cni-conf.json"]).plugins[0].mtu).toBe(1380);
    expect(resourceOf(out, "kubernetes_manifest", "kilo_daemonset").timeouts).toEqual({ create: "20m", update: "20m" });
  });

  test("the service CIDR defaults to the server's own", () => {
    const { out } = world({}, { serviceCidr: "10.100.0.0/16" });
    expect(kg(out).args).toContain("--service-cidr=10.100.0.0/16");
  });

  test("userspace WireGuard adds the pinned wireguard-go sidecar; its image can be changed", () => {
    const pinned = world({ userspaceWireguard: true }).out;
    const sidecar = daemonSet(pinned).spec.template.spec.containers.find((c: any) => c.name === "wireguard");
    expect(sidecar.image).toBe("ghcr.io/masipcat/wireguard-go-docker:0.0.20230223");
    expect(kg(pinned).args).toEqual(expect.arrayContaining(["--create-interface=false", "--interface=kilo0"]));
    const custom = world({ userspaceWireguard: true, wireguardGoImage: "registry.example/wireguard-go:0.0.20230223" }).out;
    expect(daemonSet(custom).spec.template.spec.containers[1].image).toBe("registry.example/wireguard-go:0.0.20230223");
  });

  test("a Kubernetes provider of the user's own is used as given", () => {
    const app = Testing.app();
    const cluster = new TerraformStack(app, "cluster");
    const server = new K3sServer(cluster, "server", { host: { address: "203.0.113.10", ssh } });
    const meshStack = new TerraformStack(app, "mesh");
    const mine = new k8sProvider.KubernetesProvider(meshStack, "k8s", { configPath: "~/.kube/config", alias: "mine" });
    const mesh = new KiloMesh(meshStack, "kilo", { server, kubernetesProvider: mine });
    const out = synth(meshStack);
    expect(mesh.kubernetesProvider).toBe(mine);
    expect(Object.values(manifests(out)).every((r: any) => r.provider === "kubernetes.mine")).toBe(true);
    expect((out.provider as any).kubernetes).toHaveLength(1);
    expect(validationErrors(meshStack)).toEqual([]);
  });
});

describe("KiloMesh: node annotations from the hosts", () => {
  const { out } = world({ leaders: [] });
  const ann = (prefix: string) => resourceOf(out, "kubernetes_annotations", `kilo_node-${prefix}`);

  test("a NAT'd node (public IP not on its interface) gets its endpoint forced to address:port", () => {
    expect(ann("gcp")).toMatchObject({
      api_version: "v1", kind: "Node", metadata: { name: "gcp" }, field_manager: "cdktf-k3s-kilo",
      annotations: { "kilo.squat.ai/force-endpoint": "203.0.113.20:51820", "kilo.squat.ai/location": "gcp" },
    });
  });

  test("a node behind NAT gets a persistent keepalive; the others do not", () => {
    expect(ann("pi").annotations).toEqual({ "kilo.squat.ai/persistent-keepalive": "25", "kilo.squat.ai/location": "home" });
    expect(ann("server").annotations).toEqual({ "kilo.squat.ai/location": "hetzner" });
  });

  test("a node that needs nothing gets no annotations resource", () => {
    expect(Object.keys(out.resource.kubernetes_annotations).filter((k) => k.includes("vps"))).toEqual([]);
  });

  test("only user annotations are ever set, never the ones kg writes", () => {
    const keys = Object.values(out.resource.kubernetes_annotations).flatMap((r: any) => Object.keys(r.annotations));
    for (const k of keys) expect(["kilo.squat.ai/force-endpoint", "kilo.squat.ai/persistent-keepalive", "kilo.squat.ai/location", "kilo.squat.ai/leader"]).toContain(k);
  });

  test("the forced endpoint follows wireguardPort; keepalive and leaders follow their props", () => {
    const w = world({ wireguardPort: 51999, persistentKeepaliveSeconds: 15, meshGranularity: MeshGranularity.LOCATION });
    expect(resourceOf(w.out, "kubernetes_annotations", "kilo_node-gcp").annotations["kilo.squat.ai/force-endpoint"]).toBe("203.0.113.20:51999");
    expect(resourceOf(w.out, "kubernetes_annotations", "kilo_node-pi").annotations["kilo.squat.ai/persistent-keepalive"]).toBe("15");
    const app = Testing.app();
    const cluster = new TerraformStack(app, "cluster");
    const server = new K3sServer(cluster, "server", { host: { address: "203.0.113.10", ssh, location: "a" } });
    const vps = new K3sAgent(cluster, "vps", { server, host: { address: "203.0.113.40", ssh, location: "a" } });
    const meshStack = new TerraformStack(app, "mesh");
    new KiloMesh(meshStack, "kilo", { server, nodes: [vps], meshGranularity: MeshGranularity.LOCATION, leaders: [vps] });
    expect(resourceOf(synth(meshStack), "kubernetes_annotations", "kilo_node-vps").annotations).toEqual({ "kilo.squat.ai/location": "a", "kilo.squat.ai/leader": "true" });
    expect(validationErrors(meshStack)).toEqual([]);
  });

  test("leaders with the full mesh draw a warning, not an error", () => {
    const plain = world();
    expect(plain.mesh.node.metadata.filter((m) => /warn/.test(m.type))).toEqual([]);
    const w = world({ leaders: [] });
    const stack = new TerraformStack(w.app, "mesh2");
    const m2 = new KiloMesh(stack, "kilo", { server: w.server, nodes: w.agents, leaders: [w.agents[2]] });
    expect(m2.node.metadata.filter((m) => /warn/.test(m.type)).map((m) => m.data)).toEqual([
      'KiloMesh "mesh2/kilo": leaders only matter with MeshGranularity.LOCATION; with FULL every node is its own leader',
    ]);
    expect(validationErrors(stack)).toEqual([]);
  });

  test("IPv6 endpoints are bracketed; an address known only at apply time is bracketed by Terraform", () => {
    const app = Testing.app();
    const cluster = new TerraformStack(app, "cluster");
    const ip = new TerraformVariable(cluster, "gcp_ip", { type: "string" });
    const server = new K3sServer(cluster, "server", { host: { address: "2001:db8::10", ssh, publicAddressOnInterface: false } });
    const gcp = new K3sAgent(cluster, "gcp", { server, host: { address: ip.stringValue, ssh, publicAddressOnInterface: false } });
    const meshStack = new TerraformStack(app, "mesh");
    new KiloMesh(meshStack, "kilo", { server, nodes: [gcp] });
    const out = synth(meshStack);
    expect(resourceOf(out, "kubernetes_annotations", "kilo_node-server").annotations["kilo.squat.ai/force-endpoint"]).toBe("[2001:db8::10]:51820");
    expect(resourceOf(out, "kubernetes_annotations", "kilo_node-gcp").annotations["kilo.squat.ai/force-endpoint"])
      .toBe('${join("", [replace(var.gcp_ip, "/^(.*:.*)$/", "[$1]"), ":", "51820"])}');
  });
});

describe("two stacks, one command", () => {
  test("the mesh stack depends on the cluster stack", () => {
    const { meshStack, cluster } = world();
    expect(meshStack.dependencies).toContain(cluster);
    expect(cluster.dependencies).not.toContain(meshStack);
  });

  test("cdktf's manifest orders cluster, then mesh, then peers; the provider reads the server's outputs", () => {
    const { app, mesh } = world();
    new KiloPeers(new TerraformStack(app, "peers"), "peers", { mesh, peers: [{ name: "laptop", publicKey: KEY, allowedIps: ["10.5.0.1/32"] }] });
    app.synth();
    const manifest = JSON.parse(readFileSync(join(app.outdir, "manifest.json"), "utf8"));
    expect(manifest.stacks.cluster.dependencies).toEqual([]);
    expect(manifest.stacks.mesh.dependencies).toEqual(["cluster"]);
    expect(manifest.stacks.peers.dependencies.sort()).toEqual(["cluster", "mesh"]);

    const meshJson = JSON.parse(readFileSync(join(app.outdir, "stacks", "mesh", "cdk.tf.json"), "utf8"));
    const p = meshJson.provider.kubernetes[0];
    expect(p.host).toBe("https://203.0.113.10:6443");
    for (const field of ["cluster_ca_certificate", "client_certificate", "client_key"]) {
      expect(p[field]).toContain("data.terraform_remote_state.cross-stack-reference-input-cluster.outputs.");
    }
    expect(p.client_key).toMatch(/^\$\{sensitive\(/);
    const clusterJson = JSON.parse(readFileSync(join(app.outdir, "stacks", "cluster", "cdk.tf.json"), "utf8"));
    for (const o of Object.values(clusterJson.output) as any[]) expect(o.sensitive).toBe(true);
  });

  test("a mesh in the same stack as its server is a synth-time error that says what to do", () => {
    const app = Testing.app();
    const cluster = new TerraformStack(app, "cluster");
    const server = new K3sServer(cluster, "server", { host: { address: "203.0.113.10", ssh } });
    new KiloMesh(cluster, "kilo", { server });
    const errors = validationErrors(cluster).filter((e) => e.startsWith("KiloMesh"));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^KiloMesh "cluster\/kilo": server: cluster\/server is in the same stack \("cluster"\) as this KiloMesh\./);
    expect(errors[0]).toMatch(/needs a running API server when Terraform plans/);
    expect(errors[0]).toMatch(/new KiloMesh\(new TerraformStack\(app, "mesh"\), "kilo", \{ server, nodes \}\)/);
    expect(() => app.synth()).toThrow(/same stack/);
  });

  test("the mesh is installed after every node's install (the whole cluster stack is applied first)", () => {
    const { meshStack, cluster, agents, server } = world();
    for (const n of [server, ...agents]) expect(n.stack).toBe(cluster);
    expect(meshStack.dependencies).toEqual([cluster]);
  });
});

describe("KiloMesh: validation", () => {
  const errorsOf = (props: Partial<KiloMeshProps>, serverProps: Record<string, unknown> = {}) =>
    validationErrors(world(props, serverProps).meshStack);

  test("the default mesh is valid", () => {
    expect(errorsOf({})).toEqual([]);
  });

  test.each<[string, Partial<KiloMeshProps>, RegExp]>([
    ["port", { wireguardPort: 70000 }, /KiloMesh "mesh\/kilo": wireguardPort: 70000 is not a port number/],
    ["subnet", { wireguardSubnet: "10.4.0.1/16" }, /wireguardSubnet: "10.4.0.1\/16" has host bits set; did you mean 10.4.0.0\/16/],
    ["subnet overlapping pods", { wireguardSubnet: "10.42.0.0/24" }, /wireguardSubnet: 10.42.0.0\/24 overlaps the pod network \(server clusterCidr\) 10.42.0.0\/16; pick a separate range/],
    ["subnet overlapping services", { wireguardSubnet: "10.0.0.0/8" }, /overlaps the pod network.*|overlaps the service network/],
    ["service CIDR", { serviceCidr: "10.43.0.0" }, /serviceCidr: "10.43.0.0" is not a CIDR block; add the prefix length/],
    ["MTU", { mtu: 100 }, /mtu: 100 must be a whole number between 1280 and 9000/],
    ["metrics address", { metricsListen: "everywhere" }, /metricsListen: "everywhere" is not a listen address; use host:port such as 127.0.0.1:1107/],
    ["keepalive", { persistentKeepaliveSeconds: 0 }, /persistentKeepaliveSeconds: 0 must be a whole number of seconds between 1 and 65535/],
    ["API port", { localApiServerPort: 0 }, /localApiServerPort: 0 is not a port number/],
    ["rollout timeout", { rolloutTimeout: "ten minutes" }, /rolloutTimeout: "ten minutes" is not a duration/],
    ["floating image", { image: "squat/kilo:latest" }, /image: "squat\/kilo:latest" does not pin a version; name a release tag or a digest/],
    ["untagged image", { image: "registry.example:5000/squat/kilo" }, /image: ".*" does not pin a version/],
    ["wireguard-go image without userspace", { wireguardGoImage: "x/wg:1" }, /wireguardGoImage: only used with userspaceWireguard: true/],
    ["managed flag in extraArgs", { extraArgs: ["--port=1"] }, /extraArgs: "--port=1": use the wireguardPort prop/],
    ["kubeconfig in extraArgs", { extraArgs: ["--kubeconfig=/etc/rancher/k3s/k3s.yaml"] }, /extraArgs: "--kubeconfig=\/etc\/rancher\/k3s\/k3s.yaml": Kilo authenticates with its own ServiceAccount/],
    ["master in extraArgs", { extraArgs: ["--master", "https://x"] }, /extraArgs: "--master": /],
    ["not a flag", { extraArgs: ["debug"] }, /extraArgs: "debug" is not a flag; write kg flags as --name=value/],
  ])("%s", (_name, props, message) => {
    const errors = errorsOf(props);
    expect(errors.join("\n")).toMatch(message);
  });

  test("a pinned digest is accepted", () => {
    expect(errorsOf({ image: `docker.io/squat/kilo@sha256:${"a".repeat(64)}` })).toEqual([]);
  });

  test("location granularity refuses nodes without a location (their traffic would be unencrypted)", () => {
    const app = Testing.app();
    const cluster = new TerraformStack(app, "cluster");
    const server = new K3sServer(cluster, "server", { host: { address: "203.0.113.10", ssh, location: "a" } });
    const b = new K3sAgent(cluster, "b", { server, host: { address: "203.0.113.11", ssh } });
    const c = new K3sAgent(cluster, "c", { server, host: { address: "203.0.113.12", ssh }, labels: { "topology.kubernetes.io/region": "eu" } });
    const meshStack = new TerraformStack(app, "mesh");
    new KiloMesh(meshStack, "kilo", { server, nodes: [b, c], meshGranularity: MeshGranularity.LOCATION });
    const errors = validationErrors(meshStack);
    expect(errors).toEqual([
      'KiloMesh "mesh/kilo": meshGranularity: node cluster/b has no host.location: nodes without one share Kilo\'s default location, ' +
      "and traffic inside a location is not encrypted. Give every node a location, or use MeshGranularity.FULL",
    ]);
  });

  test("nodes must belong to this mesh's cluster; leaders must be nodes; the provider must be in the mesh's stack", () => {
    const app = Testing.app();
    const cluster = new TerraformStack(app, "cluster");
    const server = new K3sServer(cluster, "server", { host: { address: "203.0.113.10", ssh } });
    const other = new TerraformStack(app, "other");
    const otherServer = new K3sServer(other, "server2", { host: { address: "203.0.113.50", ssh } });
    const stranger = new K3sAgent(other, "stranger", { server: otherServer, host: { address: "203.0.113.51", ssh } });
    const outsider = new K3sAgent(cluster, "outsider", { server, host: { address: "203.0.113.52", ssh } });
    const meshStack = new TerraformStack(app, "mesh");
    const foreign = new k8sProvider.KubernetesProvider(other, "k8s", { alias: "x" });
    new KiloMesh(meshStack, "kilo", { server, nodes: [stranger], leaders: [outsider], kubernetesProvider: foreign });
    const errors = validationErrors(meshStack).join("\n");
    expect(errors).toMatch(/nodes: other\/stranger joins other\/server2, not this mesh's server cluster\/server/);
    expect(errors).toMatch(/leaders: cluster\/outsider is not one of this mesh's nodes; add it to nodes/);
    expect(errors).toMatch(/kubernetesProvider: other\/k8s belongs to another stack; create it in "mesh"/);
  });

  test("Terraform tokens pass through unvalidated", () => {
    const app = Testing.app();
    const cluster = new TerraformStack(app, "cluster");
    const server = new K3sServer(cluster, "server", { host: { address: "203.0.113.10", ssh } });
    const meshStack = new TerraformStack(app, "mesh");
    const port = new TerraformVariable(meshStack, "port", { type: "number" });
    const text = (id: string) => new TerraformVariable(meshStack, id, { type: "string" }).stringValue;
    new KiloMesh(meshStack, "kilo", {
      server, wireguardPort: port.numberValue, wireguardSubnet: text("subnet"), serviceCidr: text("svc"), image: text("image"),
      metricsListen: text("listen"), mtu: Token.asNumber(port.value), extraArgs: [text("arg")], rolloutTimeout: text("timeout"),
    });
    expect(validationErrors(meshStack)).toEqual([]);
    expect(kg(synth(meshStack)).args).toContain("--port=${var.port}");
  });
});

// ---------------------------------------------------------------------------------------------

function peersWorld(peers: KiloPeerOptions[], where: "peers" | "mesh" | "cluster" = "peers") {
  const w = world();
  const stack = where === "peers" ? new TerraformStack(w.app, "peers") : where === "mesh" ? w.meshStack : w.cluster;
  const kp = new KiloPeers(stack, "peers", { mesh: w.mesh, peers });
  return { ...w, stack, kp };
}

describe("KiloPeers", () => {
  test("a peer becomes a Peer object in its own stack, after the mesh", () => {
    const { stack, meshStack, kp } = peersWorld([{
      name: "alice-laptop", publicKey: KEY, allowedIps: ["10.5.0.1/32"], persistentKeepaliveSeconds: 25,
    }]);
    const psk = new TerraformVariable(stack, "office_psk", { type: "string", sensitive: true });
    kp.addPeer({ name: "office", publicKey: KEY2, allowedIps: ["10.5.1.0/24", "192.168.50.0/24"], endpoint: { dns: "vpn.example.org" }, presharedKey: psk.stringValue });
    const out = synth(stack);
    const alice = resourceOf(out, "kubernetes_manifest", "peers_peer-alice-laptop");
    expect(alice.manifest).toEqual({
      apiVersion: "kilo.squat.ai/v1alpha1", kind: "Peer",
      metadata: { name: "alice-laptop", labels: { "app.kubernetes.io/managed-by": "cdktf-k3s-kilo" } },
      spec: { allowedIPs: ["10.5.0.1/32"], publicKey: KEY, persistentKeepalive: 25 },
    });
    expect(alice.provider).toBe("kubernetes.peers_peers");
    const office = resourceOf(out, "kubernetes_manifest", "peers_peer-office").manifest.spec;
    expect(office.endpoint).toEqual({ dnsOrIP: { dns: "vpn.example.org" }, port: 51820 });
    expect(office.presharedKey).toBe("${sensitive(var.office_psk)}");
    expect(stack.dependencies).toContain(meshStack);
    expect(validationErrors(stack)).toEqual([]);
  });

  test("an endpoint by IP with its own port", () => {
    const { stack } = peersWorld([{ name: "gw", publicKey: KEY, allowedIps: ["10.5.2.0/24"], endpoint: { ip: "198.51.100.20", port: 51821 } }]);
    expect(resourceOf(synth(stack), "kubernetes_manifest", "peers_peer-gw").manifest.spec.endpoint).toEqual({ dnsOrIP: { ip: "198.51.100.20" }, port: 51821 });
  });

  test.each<["mesh" | "cluster", RegExp]>([
    ["mesh", /KiloPeers "mesh\/peers": mesh: this KiloPeers is in stack "mesh", which also holds the KiloMesh\. A Peer is a custom resource that Terraform can only plan once Kilo's CRD exists/],
    ["cluster", /KiloPeers "cluster\/peers": mesh: this KiloPeers is in stack "cluster", which also holds the K3sServer\./],
  ])("peers in the %s stack are a synth-time error that says what to do", (where, message) => {
    const { stack } = peersWorld([{ name: "a", publicKey: KEY, allowedIps: ["10.5.0.1/32"] }], where);
    const errors = validationErrors(stack).filter((e) => e.startsWith("KiloPeers")).join("\n");
    expect(errors).toMatch(message);
    expect(errors).toMatch(/new KiloPeers\(new TerraformStack\(app, "peers"\), "peers", \{ mesh \}\)/);
  });

  test.each<[string, Partial<KiloPeerOptions>, RegExp]>([
    ["short key", { publicKey: "AAAA" }, /KiloPeers "peers\/peers": peers\[0\] \("p"\): publicKey: is not a WireGuard key: expected 44 characters of base64 encoding 32 bytes/],
    ["key of wrong length", { publicKey: Buffer.alloc(33).toString("base64") }, /publicKey: is not a WireGuard key/],
    ["key with a bad last character", { publicKey: KEY.slice(0, 42) + "B=" }, /publicKey: is not a WireGuard key/],
    ["bad preshared key", { presharedKey: "secret" }, /presharedKey: is not a WireGuard key/],
    ["literal preshared key", { presharedKey: KEY }, /presharedKey: a literal key would be written in clear into cdk\.tf\.json and every saved plan; pass it as a token/],
    ["bad name", { name: "Alice_Laptop" }, /peers\[0\] \("Alice_Laptop"\): name: "Alice_Laptop" is not a valid Kubernetes name/],
    ["no allowed IPs", { allowedIps: [] }, /allowedIps: give at least one CIDR, such as 10.5.0.1\/32/],
    ["bare IP", { allowedIps: ["10.5.0.1"] }, /allowedIps: "10.5.0.1" is not a CIDR block; add the prefix length \(for one address: 10.5.0.1\/32\)/],
    ["overlaps pods", { allowedIps: ["10.42.3.0/24"] }, /allowedIps: 10.42.3.0\/24 overlaps the pod network 10.42.0.0\/16; the peer would take over cluster addresses/],
    ["overlaps WireGuard", { allowedIps: ["10.0.0.0/8"] }, /overlaps the WireGuard network 10.4.0.0\/16/],
    ["endpoint without address", { endpoint: {} }, /endpoint: give dns or ip/],
    ["endpoint IP", { endpoint: { ip: "vpn.example.org" } }, /endpoint.ip: "vpn.example.org" is not an IP address/],
    ["endpoint DNS", { endpoint: { dns: "VPN_host" } }, /endpoint.dns: "VPN_host" is not a lower-case RFC 1123 DNS name; for an address use endpoint.ip/],
    ["endpoint port", { endpoint: { ip: "198.51.100.1", port: 0 } }, /endpoint.port: 0 is not a port number/],
    ["keepalive", { persistentKeepaliveSeconds: -1 }, /persistentKeepaliveSeconds: -1 must be a whole number of seconds between 0 and 65535/],
  ])("%s", (_name, override, message) => {
    const { stack } = peersWorld([{ name: "p", publicKey: KEY, allowedIps: ["10.5.0.1/32"], ...override }]);
    expect(validationErrors(stack).join("\n")).toMatch(message);
  });

  test("names must be unique", () => {
    const { stack, kp } = peersWorld([{ name: "p", publicKey: KEY, allowedIps: ["10.5.0.1/32"] }]);
    expect(() => kp.addPeer({ name: "p", publicKey: KEY2, allowedIps: ["10.5.0.2/32"] }))
      .toThrow('KiloPeers "peers/peers": addPeer: a peer named "p" already exists; peer names must be unique');
    expect(validationErrors(stack)).toEqual([]);
  });

  test("tokens pass through unvalidated; the preshared key stays sensitive", () => {
    const w = world();
    const stack = new TerraformStack(w.app, "peers");
    const v = (id: string) => new TerraformVariable(stack, id, { type: "string", sensitive: id === "psk" }).stringValue;
    const cidrs = new TerraformVariable(stack, "cidrs", { type: "list(string)" }).listValue;
    new KiloPeers(stack, "peers", { mesh: w.mesh, peers: [{ name: "p", publicKey: v("pub"), allowedIps: cidrs, presharedKey: v("psk"), endpoint: { dns: v("dns"), port: Token.asNumber(v("port")) } }] });
    expect(validationErrors(stack)).toEqual([]);
    const spec = resourceOf(synth(stack), "kubernetes_manifest", "peers_peer-p").manifest.spec;
    expect(spec.presharedKey).toBe("${sensitive(var.psk)}");
    expect(spec.publicKey).toBe("${var.pub}");
    expect(spec.allowedIPs).toBe("${var.cidrs}");
    expect(spec.endpoint).toEqual({ dnsOrIP: { dns: "${var.dns}" }, port: "${var.port}" });
  });
});
