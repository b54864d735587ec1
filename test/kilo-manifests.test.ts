/**
 * Kilo's Kubernetes objects, rendered as plain data: valid against the Kubernetes API schema
 * (kubernetes-models), the Peer CRD field for field what Kilo 0.7.0 reads, RBAC exactly Kilo's,
 * the DaemonSet authenticating with its ServiceAccount only, and the CNI install script run for
 * real in busybox sh (what the Kilo image, Alpine, runs it with).
 */
import { spawnSync } from "child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import {
  CNI_CONF_FILE, cniConfig, formatEndpoint, INSTALL_CNI_SCRIPT, KILO_CLUSTER_ROLE_RULES, KILO_OWNED_ANNOTATIONS, kiloArgs,
  kiloClusterRole, kiloClusterRoleBinding, kiloConfigMap, kiloDaemonSet, KiloSettings, kiloPeer, kiloPeerCrd,
  kiloServiceAccount, nodeAnnotations, USER_ANNOTATIONS,
} from "../lib/render/kilo-manifests";
import { kubernetesSchemaErrors } from "./util/kube-schema";

const BASE: KiloSettings = {
  image: "docker.io/squat/kilo:0.7.0",
  granularity: "full",
  port: 51820,
  subnet: "10.4.0.0/16",
  serviceCidrs: ["10.43.0.0/16"],
  cniMtu: 1420,
  listen: "127.0.0.1:1107",
  extraArgs: [],
  apiServerHost: "127.0.0.1",
  apiServerPort: 6444,
};
const KEY = Buffer.alloc(32, 7).toString("base64");

function container(ds: any, name: string): any {
  return [...ds.spec.template.spec.containers, ...ds.spec.template.spec.initContainers].find((c: any) => c.name === name);
}

describe("every object is valid against the Kubernetes API schema (kubernetes-models)", () => {
  const variants: Array<[string, KiloSettings]> = [
    ["defaults", BASE],
    ["userspace WireGuard, public metrics, fixed MTU, extra args", {
      ...BASE, granularity: "location", mtu: 1380, cniMtu: 1380, listen: "10.0.0.5:9107",
      userspaceWireguardImage: "ghcr.io/masipcat/wireguard-go-docker:0.0.20230223", extraArgs: ["--log-level=debug"],
    }],
  ];
  test.each(variants)("%s", (_name, s) => {
    const objects = [kiloPeerCrd(), kiloServiceAccount(), kiloClusterRole(), kiloClusterRoleBinding(), kiloConfigMap(s), kiloDaemonSet(s)];
    expect(kubernetesSchemaErrors(objects)).toEqual(objects.map(() => null));
  });

  test("the validator does reject a broken object (it is not a no-op)", () => {
    const ds = kiloDaemonSet(BASE);
    ds.spec.template.spec.hostNetwork = "yes";
    const [error] = kubernetesSchemaErrors([ds]);
    expect(error).toMatch(/hostNetwork must be boolean/);
  });

  test("node annotations form a valid Node patch", () => {
    const node = {
      apiVersion: "v1", kind: "Node",
      metadata: { name: "agent-0", annotations: nodeAnnotations({ forceEndpoint: "203.0.113.11:51820", persistentKeepalive: 25, location: "gcp", leader: true }) },
    };
    expect(kubernetesSchemaErrors([node])).toEqual([null]);
  });
});

// ---------------------------------------------------------------------------------------------

/** A minimal structural-schema check, as the API server applies a CRD's openAPIV3Schema. */
function schemaErrors(schema: any, value: any, path = ""): string[] {
  const at = path || "<root>";
  switch (schema.type) {
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) return [`${at}: must be an object`];
      const errors = (schema.required ?? []).filter((k: string) => !(k in value)).map((k: string) => `${at}: ${k} is required`);
      if (!schema.properties) return errors;
      for (const [k, v] of Object.entries(value)) {
        // Fields outside a structural schema are silently pruned by the API server: flag them.
        if (!(k in schema.properties)) errors.push(`${path ? path + "." : ""}${k}: unknown field (would be pruned)`);
        else errors.push(...schemaErrors(schema.properties[k], v, `${path ? path + "." : ""}${k}`));
      }
      return errors;
    }
    case "array":
      if (!Array.isArray(value)) return [`${at}: must be an array`];
      return value.flatMap((v, i) => schemaErrors(schema.items, v, `${path}[${i}]`));
    case "string":
      return typeof value === "string" ? [] : [`${at}: must be a string`];
    case "integer":
      if (!Number.isInteger(value)) return [`${at}: must be an integer`];
      if (schema.format === "int32" && (value < -(2 ** 31) || value >= 2 ** 31)) return [`${at}: out of int32 range`];
      return [];
    default:
      return [`${at}: schema type ${schema.type} not handled by this check`];
  }
}

/** Flatten a schema to path → "type[!required]" for comparison. */
function shape(schema: any, path = "", required = false, out: Record<string, string> = {}): Record<string, string> {
  out[path || "."] = `${schema.type}${schema.format ? `(${schema.format})` : ""}${required ? " required" : ""}`;
  for (const [k, v] of Object.entries(schema.properties ?? {})) shape(v, path ? `${path}.${k}` : k, (schema.required ?? []).includes(k), out);
  if (schema.items) shape(schema.items, `${path}[]`, false, out);
  return out;
}

describe("the Peer CRD", () => {
  const crd = kiloPeerCrd();
  const version = crd.spec.versions[0];
  const schema = version.schema.openAPIV3Schema;

  test("names, group, version and scope are Kilo's (pkg/k8s/apis/kilo/v1alpha1)", () => {
    expect(crd.metadata.name).toBe("peers.kilo.squat.ai");
    expect(crd.spec.group).toBe("kilo.squat.ai");
    expect(crd.spec.names).toEqual({ kind: "Peer", listKind: "PeerList", plural: "peers", singular: "peer" });
    expect(crd.spec.scope).toBe("Cluster");
    expect(crd.spec.versions).toHaveLength(1);
    expect(version).toMatchObject({ name: "v1alpha1", served: true, storage: true });
  });

  test("the schema has exactly PeerSpec's fields, types and required fields (types.go of Kilo 0.7.0)", () => {
    expect(shape(schema)).toEqual({
      ".": "object",
      "apiVersion": "string",
      "kind": "string",
      "metadata": "object",
      "spec": "object required",
      "spec.allowedIPs": "array required",
      "spec.allowedIPs[]": "string",
      "spec.publicKey": "string required",
      "spec.endpoint": "object",
      "spec.endpoint.dnsOrIP": "object required",
      "spec.endpoint.dnsOrIP.dns": "string",
      "spec.endpoint.dnsOrIP.ip": "string",
      "spec.endpoint.port": "integer(int32) required",
      "spec.persistentKeepalive": "integer",
      "spec.presharedKey": "string",
    });
  });

  test("Peer objects, minimal and complete, match the CRD schema without pruned fields", () => {
    const minimal = kiloPeer({ name: "laptop", publicKey: KEY, allowedIps: ["10.5.0.1/32"] });
    const full = kiloPeer({
      name: "gateway", publicKey: KEY, allowedIps: ["10.5.0.0/24", "192.168.50.0/24"],
      endpointDns: "vpn.example.org", endpointIp: "198.51.100.20", endpointPort: 51821, persistentKeepalive: 25, presharedKey: KEY,
    });
    for (const peer of [minimal, full]) {
      expect(peer.apiVersion).toBe("kilo.squat.ai/v1alpha1");
      expect(peer.kind).toBe("Peer");
      expect(schemaErrors(schema, peer)).toEqual([]);
    }
    expect(minimal.spec).toEqual({ allowedIPs: ["10.5.0.1/32"], publicKey: KEY });
    expect(full.spec).toEqual({
      allowedIPs: ["10.5.0.0/24", "192.168.50.0/24"], publicKey: KEY, presharedKey: KEY, persistentKeepalive: 25,
      endpoint: { dnsOrIP: { dns: "vpn.example.org", ip: "198.51.100.20" }, port: 51821 },
    });
  });

  test("the schema check catches what the API server would reject or prune", () => {
    const bad = kiloPeer({ name: "x", publicKey: KEY, allowedIps: ["10.5.0.1/32"] });
    delete bad.spec.publicKey;
    bad.spec.allowedIps = ["oops"];
    expect(schemaErrors(schema, bad)).toEqual(["spec: publicKey is required", "spec.allowedIps: unknown field (would be pruned)"]);
  });
});

describe("RBAC", () => {
  test("the ClusterRole grants Kilo's rules (manifests/kilo-k3s.yaml), the CRD read narrowed to Kilo's own CRD, nothing more", () => {
    expect(kiloClusterRole().rules).toEqual([
      { apiGroups: [""], resources: ["nodes"], verbs: ["list", "patch", "watch"] },
      { apiGroups: ["kilo.squat.ai"], resources: ["peers"], verbs: ["list", "watch"] },
      // kg reads one CRD, by name (pkg/k8s/backend.go, peerBackend.Init): `get` takes resourceNames.
      { apiGroups: ["apiextensions.k8s.io"], resources: ["customresourcedefinitions"], resourceNames: ["peers.kilo.squat.ai"], verbs: ["get"] },
    ]);
    expect(KILO_CLUSTER_ROLE_RULES).toEqual(kiloClusterRole().rules);
    const flat = JSON.stringify(kiloClusterRole());
    for (const broad of ["\"*\"", "secrets", "create", "delete", "update", "escalate", "bind", "impersonate"]) expect(flat).not.toContain(broad);
  });

  test("the binding gives that role to the kilo ServiceAccount only", () => {
    const b = kiloClusterRoleBinding();
    expect(b.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "kilo" });
    expect(b.subjects).toEqual([{ kind: "ServiceAccount", name: "kilo", namespace: "kube-system" }]);
    expect(kiloServiceAccount().metadata).toMatchObject({ name: "kilo", namespace: "kube-system" });
  });
});

describe("the CNI config", () => {
  test("is Kilo's bridge + portmap conflist with no IP ranges (kg fills the node's pod CIDR)", () => {
    const conf = JSON.parse(kiloConfigMap({ cniMtu: 1420 }).data["cni-conf.json"]);
    expect(conf).toEqual(cniConfig(1420));
    expect(conf.cniVersion).toBe("0.4.0");
    expect(conf.plugins[0]).toEqual({
      name: "kubernetes", type: "bridge", bridge: "kube-bridge", isDefaultGateway: true, forceAddress: true, mtu: 1420,
      ipam: { type: "host-local" },
    });
    expect(conf.plugins[1]).toEqual({ type: "portmap", snat: true, capabilities: { portMappings: true } });
  });

  test("the bridge MTU follows the setting", () => {
    expect(JSON.parse(kiloConfigMap({ cniMtu: 1380 }).data["cni-conf.json"]).plugins[0].mtu).toBe(1380);
  });
});

describe("the DaemonSet", () => {
  const ds = kiloDaemonSet(BASE);
  const pod = ds.spec.template.spec;
  const kg = container(ds, "kilo");

  test("authenticates with its own ServiceAccount: in-cluster config, no kubeconfig, no K3s files", () => {
    expect(pod.serviceAccountName).toBe("kilo");
    expect(pod.automountServiceAccountToken).toBe(true);
    const allArgs = [...pod.containers, ...pod.initContainers].flatMap((c: any) => [...(c.args ?? []), ...(c.command ?? [])]);
    expect(allArgs.join(" ")).not.toMatch(/--kubeconfig|--master|k3s\.yaml/);
    const hostPaths = pod.volumes.map((v: any) => v.hostPath?.path).filter(Boolean);
    expect(hostPaths.sort()).toEqual(["/etc/cni/net.d", "/lib/modules", "/opt/cni/bin", "/run/xtables.lock", "/var/lib/kilo"]);
    for (const p of hostPaths) expect(p).not.toMatch(/rancher/);
    expect(JSON.stringify(ds)).not.toContain("k3s.yaml");
  });

  test("talks to the node-local K3s API endpoint, 127.0.0.1:6444, through in-cluster config", () => {
    expect(kg.env).toEqual([
      { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
      { name: "KUBERNETES_SERVICE_HOST", value: "127.0.0.1" },
      { name: "KUBERNETES_SERVICE_PORT", value: "6444" },
    ]);
    const other = container(kiloDaemonSet({ ...BASE, apiServerPort: 7444 }), "kilo");
    expect(other.env[2]).toEqual({ name: "KUBERNETES_SERVICE_PORT", value: "7444" });
  });

  test("runs on every node, before it is Ready, in the host network, and cannot be starved", () => {
    expect(pod.hostNetwork).toBe(true);
    expect(pod.tolerations).toEqual([{ effect: "NoSchedule", operator: "Exists" }, { effect: "NoExecute", operator: "Exists" }]);
    expect(pod.priorityClassName).toBe("system-node-critical");
    expect(ds.spec.selector.matchLabels).toEqual(ds.spec.template.metadata.labels);
    expect(ds.metadata).toMatchObject({ name: "kilo", namespace: "kube-system" });
  });

  test("kg is privileged (it programs the host's network); the CNI installer is not", () => {
    expect(kg.securityContext).toEqual({ privileged: true });
    expect(container(ds, "install-cni").securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
  });

  test("default flags: full mesh, 51820, 10.4.0.0/16, the service CIDR, metrics on loopback, MTU auto", () => {
    expect(kg.args).toEqual([
      "--hostname=$(NODE_NAME)", "--mesh-granularity=full", "--port=51820", "--subnet=10.4.0.0/16",
      "--service-cidr=10.43.0.0/16", "--listen=127.0.0.1:1107",
    ]);
    expect(kiloArgs(BASE)).toEqual(kg.args);
    expect(kg.image).toBe("docker.io/squat/kilo:0.7.0");
    expect(container(ds, "install-cni").image).toBe("docker.io/squat/kilo:0.7.0");
  });

  test("a loopback metrics address is not advertised as a port; a routable one is", () => {
    expect(kg.ports).toBeUndefined();
    const pub = container(kiloDaemonSet({ ...BASE, listen: "10.0.0.5:9107" }), "kilo");
    expect(pub.ports).toEqual([{ name: "metrics", containerPort: 9107, protocol: "TCP" }]);
    expect(pub.args).toContain("--listen=10.0.0.5:9107");
    expect(container(kiloDaemonSet({ ...BASE, listen: "[::1]:1107" }), "kilo").ports).toBeUndefined();
  });

  test("every setting reaches kg's flags", () => {
    const args = kiloArgs({
      ...BASE, image: "registry.example/kilo:0.7.0", granularity: "location", port: 51999, subnet: "10.9.0.0/16",
      serviceCidrs: ["10.96.0.0/12"], mtu: 1380, listen: "127.0.0.1:2107", extraArgs: ["--log-level=debug", "--resync-period=1m"],
    });
    expect(args).toEqual([
      "--hostname=$(NODE_NAME)", "--mesh-granularity=location", "--port=51999", "--subnet=10.9.0.0/16",
      "--service-cidr=10.96.0.0/12", "--listen=127.0.0.1:2107", "--mtu=1380", "--log-level=debug", "--resync-period=1m",
    ]);
  });

  test("userspace WireGuard: a wireguard-go sidecar creates kilo0, kg does not create it", () => {
    const us = kiloDaemonSet({ ...BASE, userspaceWireguardImage: "ghcr.io/masipcat/wireguard-go-docker:0.0.20230223" });
    const sidecar = container(us, "wireguard");
    expect(sidecar.image).toBe("ghcr.io/masipcat/wireguard-go-docker:0.0.20230223");
    expect(sidecar.args).toEqual(["wireguard-go", "--foreground", "kilo0"]);
    expect(container(us, "kilo").args).toEqual(expect.arrayContaining(["--create-interface=false", "--interface=kilo0"]));
    const sock = { name: "wireguard-sockets", mountPath: "/var/run/wireguard" };
    expect(sidecar.volumeMounts).toEqual([sock]);
    expect(container(us, "kilo").volumeMounts).toContainEqual(sock);
    expect(us.spec.template.spec.volumes).toContainEqual({ name: "wireguard-sockets", hostPath: { path: "/var/run/wireguard", type: "DirectoryOrCreate" } });
    expect(container(ds, "wireguard")).toBeUndefined();
    expect(kg.args.join(" ")).not.toContain("create-interface");
  });

  test("the installer reads the conflist from the ConfigMap", () => {
    expect(container(ds, "install-cni").env).toEqual([
      { name: "CNI_NETWORK_CONFIG", valueFrom: { configMapKeyRef: { name: "kilo", key: "cni-conf.json" } } },
    ]);
  });
});

describe("the CNI install script", () => {
  test("is safe inside a Terraform string and passes shellcheck", () => {
    expect(INSTALL_CNI_SCRIPT).not.toMatch(/\$\{|%\{/);
    const r = spawnSync("shellcheck", ["-s", "sh", "-"], { input: INSTALL_CNI_SCRIPT, encoding: "utf8" });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  test("run in busybox sh: copies the plugins, leaves Kilo's conflist as the only config, keeps directories", () => {
    const root = mkdtempSync(join(tmpdir(), "kilo-cni-"));
    const img = join(root, "image-cni-bin"), hostBin = join(root, "host", "opt", "cni", "bin"), hostConf = join(root, "host", "etc", "cni", "net.d");
    for (const d of [img, hostBin, hostConf, join(hostConf, "keep-dir")]) mkdirSync(d, { recursive: true });
    for (const p of ["bridge", "host-local", "loopback", "portmap"]) { writeFileSync(join(img, p), `#!/bin/sh\n# ${p}\n`); chmodSync(join(img, p), 0o755); }
    writeFileSync(join(hostConf, "10-flannel.conflist"), "{}");
    writeFileSync(join(hostConf, CNI_CONF_FILE), "{\"stale\":true}");
    symlinkSync("/nonexistent", join(hostConf, "05-dangling.conf"));
    const script = INSTALL_CNI_SCRIPT.split("/opt/cni/bin/*").join(`${img}/*`).split("/host/").join(`${root}/host/`);
    const conf = JSON.stringify(cniConfig(1420), null, 2);
    const r = spawnSync("busybox", ["sh", "-c", script], { encoding: "utf8", env: { PATH: process.env.PATH, CNI_NETWORK_CONFIG: conf } });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(readdirSync(hostBin).sort()).toEqual(["bridge", "host-local", "loopback", "portmap"]);
    expect(readdirSync(hostConf).sort()).toEqual([CNI_CONF_FILE, "keep-dir"]);
    expect(JSON.parse(readFileSync(join(hostConf, CNI_CONF_FILE), "utf8"))).toEqual(cniConfig(1420));
    // Running it again (a pod restart) gives the same result.
    const again = spawnSync("busybox", ["sh", "-c", script], { encoding: "utf8", env: { PATH: process.env.PATH, CNI_NETWORK_CONFIG: conf } });
    expect(again.status).toBe(0);
    expect(readdirSync(hostConf).sort()).toEqual([CNI_CONF_FILE, "keep-dir"]);
  });

  test("stops at the first failure (no plugins to copy)", () => {
    const root = mkdtempSync(join(tmpdir(), "kilo-cni-"));
    mkdirSync(join(root, "host", "etc", "cni", "net.d"), { recursive: true });
    const script = INSTALL_CNI_SCRIPT.split("/opt/cni/bin/*").join(`${root}/empty/*`).split("/host/").join(`${root}/host/`);
    const r = spawnSync("busybox", ["sh", "-c", script], { encoding: "utf8", env: { PATH: process.env.PATH, CNI_NETWORK_CONFIG: "{}" } });
    expect(r.status).not.toBe(0);
    expect(readdirSync(join(root, "host", "etc", "cni", "net.d"))).toEqual([]);
  });
});

describe("node annotations", () => {
  test("only the annotations users may set, never the ones kg writes", () => {
    const a = nodeAnnotations({ forceEndpoint: "203.0.113.11:51820", persistentKeepalive: 25, location: "gcp", leader: true });
    expect(a).toEqual({
      "kilo.squat.ai/force-endpoint": "203.0.113.11:51820",
      "kilo.squat.ai/persistent-keepalive": "25",
      "kilo.squat.ai/location": "gcp",
      "kilo.squat.ai/leader": "true",
    });
    for (const k of Object.keys(a)) {
      expect(USER_ANNOTATIONS).toContain(k);
      expect(KILO_OWNED_ANNOTATIONS).not.toContain(k);
    }
  });

  test("a plain node needs none", () => {
    expect(nodeAnnotations({})).toEqual({});
    expect(nodeAnnotations({ leader: false })).toEqual({});
  });

  test("endpoints are host:port as Go's SplitHostPort reads them", () => {
    expect(formatEndpoint("203.0.113.11", 51820)).toBe("203.0.113.11:51820");
    expect(formatEndpoint("2001:db8::11", 51820)).toBe("[2001:db8::11]:51820");
    expect(formatEndpoint("node.example.org", 1337)).toBe("node.example.org:1337");
  });
});
