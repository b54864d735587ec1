/**
 * examples/multi-provider synthesizes: DigitalOcean droplets and a GCP free-tier e2-micro from
 * the real prebuilt provider packages, plus a home Pi by address, in one cluster. Node addresses
 * are the providers' attributes, one key file is registered with both providers, no credential
 * is in the synthesized JSON, and the provider packages stay out of the library's package.json.
 *
 * The provider packages are the example's own dependencies (examples/multi-provider/package.json):
 * `npm ci --prefix examples/multi-provider` installs them.
 */
import { existsSync, mkdtempSync, readFileSync } from "fs";
import { tmpdir } from "os";
import { dirname, join } from "path";
import { App, DefaultTokenResolver, StringConcat, Tokenization } from "cdktf";
import { TrafficDirection } from "../lib";
import { collectReportData } from "../lib/constructs/cluster-report";
import { allowedPorts, firewallMatrix, meshTunnels, renderMarkdown } from "../lib/render/cluster-report";

const EXAMPLE = join(__dirname, "..", "examples", "multi-provider");
const installed = existsSync(join(EXAMPLE, "node_modules", "@cdktf", "provider-google", "package.json")) &&
  existsSync(join(EXAMPLE, "node_modules", "@cdktf", "provider-digitalocean", "package.json"));

if (!installed) {
  // Fail loudly: CI must install the example's packages (see examples/multi-provider/README.md).
  test("the example's provider packages are installed", () => {
    throw new Error("examples/multi-provider/node_modules is missing: run `npm ci --prefix examples/multi-provider`");
  });
} else {
  // Loaded only once the packages are known to be there.
  const example = require("../examples/multi-provider/main") as typeof import("../examples/multi-provider/main");
  const settings = example.settingsFromEnv({});

  const build = () => {
    const outdir = mkdtempSync(join(tmpdir(), "multi-provider-"));
    const app = new App({ outdir });
    const built = example.buildMultiProviderCluster(app, settings);
    app.synth();
    const stack = (name: string) => JSON.parse(readFileSync(join(outdir, "stacks", name, "cdk.tf.json"), "utf8"));
    return { app, built, outdir, cluster: stack("cluster"), mesh: stack("mesh"), manifest: JSON.parse(readFileSync(join(outdir, "manifest.json"), "utf8")) };
  };

  describe("examples/multi-provider", () => {
    const s = build();

    test("synthesizes two stacks, the mesh after the cluster", () => {
      expect(Object.keys(s.manifest.stacks)).toEqual(["cluster", "mesh"]);
      expect(s.manifest.stacks.mesh.dependencies).toEqual(["cluster"]);
    });

    test("VPSes from the real provider packages: two droplets, one free-tier e2-micro with an external (NAT) address", () => {
      expect(Object.keys(s.cluster.resource.digitalocean_droplet)).toHaveLength(2);
      const gce = Object.values<any>(s.cluster.resource.google_compute_instance);
      expect(gce).toHaveLength(1);
      expect(gce[0]).toMatchObject({ machine_type: "e2-micro", zone: "us-central1-a", network_interface: [{ access_config: [{}] }] });
      expect(gce[0].boot_disk.initialize_params).toMatchObject({ size: 30, type: "pd-standard" });
    });

    test("one key file, registered with both providers; droplets get it by fingerprint", () => {
      const pub = 'trimspace(file(pathexpand("~/.ssh/id_ed25519.pub")))';
      const doKey = Object.values<any>(s.cluster.resource.digitalocean_ssh_key);
      expect(doKey).toHaveLength(1);
      expect(doKey[0].public_key).toBe(`\${${pub}}`);
      const gce = Object.values<any>(s.cluster.resource.google_compute_instance)[0];
      expect(gce.metadata["ssh-keys"]).toBe(`\${join("", ["ubuntu:", ${pub}])}`);
      for (const d of Object.values<any>(s.cluster.resource.digitalocean_droplet)) {
        expect(d.ssh_keys).toEqual(["${digitalocean_ssh_key.ssh-key.fingerprint}"]);
      }
    });

    test("no credential in code or output: the providers are configured from the environment", () => {
      expect(s.cluster.provider.digitalocean).toEqual([{}]);
      expect(s.cluster.provider.google).toEqual([{ region: "us-central1", zone: "us-central1-a" }]);
      const all = JSON.stringify([s.cluster, s.mesh]);
      expect(all).not.toMatch(/dop_v1_|BEGIN (RSA |OPENSSH )?PRIVATE KEY/);
      // SSH keys are read from the key file by Terraform at apply time, never written into the JSON.
      for (const m of all.matchAll(/"private_key":"([^"\\]*(?:\\.[^"\\]*)*)"/g)) {
        expect(JSON.parse(`"${m[1]}"`)).toMatch(/^\$\{file\(pathexpand\(("~\/\.ssh\/id_ed25519"|self\.input\.([a-z_]+_)?private_key_path)\)\)\}$/);
      }
    });

    test("node addresses are the provider resources' attributes", () => {
      const [server, doAgent, gcp, pi] = [s.built.server, ...s.built.agents];
      const resolve = (v: string) =>
        Tokenization.resolve(v, { scope: s.built.cluster, resolver: new DefaultTokenResolver(new StringConcat()), preparing: false });
      expect(resolve(server.host.address)).toBe("${digitalocean_droplet.k3s-do-server.ipv4_address}");
      expect(resolve(doAgent.host.address)).toBe("${digitalocean_droplet.k3s-do-agent.ipv4_address}");
      expect(resolve(gcp.host.address)).toBe("${google_compute_instance.k3s-gcp-free.network_interface[0].access_config[0].nat_ip}");
      expect(resolve(gcp.host.privateAddress!)).toBe("${google_compute_instance.k3s-gcp-free.network_interface[0].network_ip}");
      expect(gcp.host.publicAddressOnInterface).toBe(false);
      expect(pi.host).toMatchObject({ address: "192.0.2.50", behindNat: true });
      // SSH to each node goes to that address.
      const firewallSteps = Object.entries<any>(s.cluster.resource.terraform_data).filter(([k]) => k.startsWith("firewall_"));
      const hosts = firewallSteps.map(([, r]) => r.connection.host).sort();
      expect(hosts).toEqual([
        "${digitalocean_droplet.k3s-do-agent.ipv4_address}",
        "${digitalocean_droplet.k3s-do-server.ipv4_address}",
        "${google_compute_instance.k3s-gcp-free.network_interface[0].access_config[0].nat_ip}",
        "192.0.2.50",
      ]);
    });

    test("the mesh stack forces the NAT'd endpoint and keeps the Pi's tunnels alive", () => {
      const ann = Object.values<any>(s.mesh.resource.kubernetes_annotations);
      const byNode = new Map(ann.map((a) => [a.metadata.name, a.annotations]));
      expect(Object.keys(byNode.get("gcp-free"))).toContain("kilo.squat.ai/force-endpoint");
      expect(byNode.get("home-pi")["kilo.squat.ai/persistent-keepalive"]).toBe("25");
      expect(byNode.get("do-server")["kilo.squat.ai/force-endpoint"]).toBeUndefined();
    });

    test("Google's VPC firewall lets the peers' WireGuard and kubelet traffic in", () => {
      const fw = Object.values<any>(s.cluster.resource.google_compute_firewall).find((f) => f.name === "k3s-peers");
      expect(fw.allow).toEqual([{ protocol: "udp", ports: ["51820"] }, { protocol: "tcp", ports: ["10250"] }]);
      expect(fw.source_ranges).toEqual([
        '${join("", [digitalocean_droplet.k3s-do-server.ipv4_address, "/32"])}',
        '${join("", [digitalocean_droplet.k3s-do-agent.ipv4_address, "/32"])}',
        '${join("", ["192.0.2.50", "/32"])}',
      ]);
    });

    test("the report: 4 nodes, 6 tunnels, matrix cells equal to rulesFor, addresses as Terraform expressions", () => {
      const data = collectReportData(s.app);
      expect(data.nodes.map((n) => n.name)).toEqual(["do-server", "do-agent", "gcp-free", "home-pi"]);
      expect(meshTunnels(data)).toHaveLength(6);
      const entries = firewallMatrix(data);
      const fw = s.built.firewall;
      const incoming = fw.nodes.flatMap((n) => fw.rulesFor(n).filter((r) => r.direction === TrafficDirection.INCOMING));
      expect(entries).toHaveLength(incoming.length);
      // Token sources are matched back to their nodes: every peer rule names a node, none is left as an address.
      for (const e of entries.filter((x) => ["wireguard", "kubelet"].includes(x.purpose))) expect(e.fromNode).toBe(true);
      expect(allowedPorts(entries, "gcp-free", "do-server")).toEqual(["6443/tcp", "10250/tcp", "51820/udp"]);
      expect(allowedPorts(entries, "home-pi", "gcp-free")).toEqual(["10250/tcp", "51820/udp"]);
      const sshRule = fw.rulesFor(s.built.server).find((r) => r.purpose === "ssh")!;
      expect(allowedPorts(entries, settings.adminCidr, "do-server")).toEqual([sshRule.action === "limit" ? "22/tcp (limited)" : "22/tcp", "6443/tcp"]);
      const md = renderMarkdown(data);
      expect(md).toContain("`${google_compute_instance.k3s-gcp-free.network_interface[0].access_config[0].nat_ip}`");
      expect(md).toContain("| gcp-free | agent | gcp-us-central1 |");
    });

    test("one cdktf and one constructs: the provider packages resolve the root's copies", () => {
      const providerDir = dirname(require.resolve("@cdktf/provider-google/package.json", { paths: [EXAMPLE] }));
      expect(require.resolve("cdktf", { paths: [providerDir] })).toBe(require.resolve("cdktf"));
      expect(require.resolve("constructs", { paths: [providerDir] })).toBe(require.resolve("constructs"));
      const lock = JSON.parse(readFileSync(join(EXAMPLE, "package-lock.json"), "utf8"));
      expect(Object.keys(lock.packages).filter((k) => k !== "").sort()).toEqual([
        "node_modules/@cdktf/provider-digitalocean",
        "node_modules/@cdktf/provider-google",
      ]);
    });

    test("the provider packages are never dependencies of the library", () => {
      const pkg = JSON.parse(readFileSync(join(__dirname, "..", "package.json"), "utf8"));
      for (const field of ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"]) {
        const names = Object.keys(pkg[field] ?? {});
        expect(names).not.toContain("@cdktf/provider-digitalocean");
        expect(names).not.toContain("@cdktf/provider-google");
      }
    });
  });
}
