/**
 * The cluster report: nodes, WireGuard tunnels and the firewall matrix, checked against the data
 * the resources are rendered from (PeerFirewall.rulesFor, KiloMesh.nodes and its node
 * annotations), on the article's 1+5 cluster and on small location-granularity meshes. The SVG
 * is drawn by Graphviz (WebAssembly), parsed as XML, and — when Chromium is installed — opened
 * in headless Chromium.
 */
import { execFileSync } from "child_process";
import { existsSync, mkdtempSync, readFileSync, statSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { Document as XmlDocument, DOMParser } from "@xmldom/xmldom";
import { App, TerraformStack, Testing } from "cdktf";
import { buildArticleCluster } from "../examples/article-cluster/main";
import { renderSvg, writeClusterReport } from "../examples/cluster-report";
import { ClusterReport, K3sAgent, K3sNode, K3sServer, KiloMesh, MeshGranularity, PeerFirewall, TrafficDirection } from "../lib";
import { collectReportData } from "../lib/constructs/cluster-report";
import {
  allowedPorts, ClusterReportData, firewallMatrix, meshSegments, meshTunnels, renderDot, renderMarkdown, ReportNode,
} from "../lib/render/cluster-report";

function article() {
  const app = Testing.app();
  buildArticleCluster(app);
  const all = app.node.findAll();
  const firewall = all.find((c): c is PeerFirewall => c instanceof PeerFirewall)!;
  const mesh = all.find((c): c is KiloMesh => c instanceof KiloMesh)!;
  return { app, firewall, mesh, data: collectReportData(app) };
}

const pairKey = (a: string, b: string) => [a, b].sort().join(" <-> ");

/** Ports `from` may reach on `to`, computed here directly from rulesFor (not by the report). */
function portsFromRules(firewall: PeerFirewall, from: K3sNode, to: K3sNode): string[] {
  const sources = [from.host.address, from.host.privateAddress].filter((a) => a !== undefined);
  return [...new Set(firewall.rulesFor(to)
    .filter((r) => r.direction === TrafficDirection.INCOMING && r.from !== undefined && sources.includes(r.from) && r.inInterface === undefined)
    .map((r) => `${r.port}/${r.protocol}${r.action === "limit" ? " (limited)" : ""}`))].sort();
}

/** Parse SVG text strictly: any XML error fails. */
function parseSvg(svg: string): XmlDocument {
  const errors: string[] = [];
  const doc = new DOMParser({ onError: (level, msg) => { if (level !== "warning") errors.push(msg); } })
    .parseFromString(svg, "image/svg+xml");
  expect(errors).toEqual([]);
  return doc;
}

describe("the article's cluster (1 server + 5 agents)", () => {
  test("nodes: role, location, public address, NAT and keepalive as the constructs and Kilo annotations say", () => {
    const { data, mesh } = article();
    expect(data.nodes.map((n) => n.name)).toEqual(mesh.nodes.map((n) => n.nodeName));
    const by = new Map(data.nodes.map((n) => [n.name, n]));
    expect(by.get("k3s-server")).toMatchObject({ role: "server", address: "203.0.113.10", location: "provider-a", behindNat: false, publicAddressOnInterface: true });
    expect(by.get("gcp-free")).toMatchObject({ role: "agent", address: "198.51.100.41", privateAddress: "10.128.0.2", publicAddressOnInterface: false });
    // The keepalive comes from the annotation KiloMesh puts on the node (default 25 s).
    expect(by.get("home-pi")).toMatchObject({ behindNat: true, persistentKeepalive: 25, location: "home" });
    expect(by.get("vps-c")!.sshVia).toBe("203.0.113.10");
    for (const n of data.nodes.filter((x) => x.name !== "home-pi")) expect(n.persistentKeepalive).toBeUndefined();
  });

  test("full mesh: one tunnel for every pair of the mesh's nodes, keepalives from the node behind NAT", () => {
    const { data, mesh } = article();
    expect(data.mesh).toEqual({ granularity: "full", wireguardPort: mesh.wireguardPort, wireguardSubnet: mesh.wireguardSubnet });
    const names = mesh.nodes.map((n) => n.nodeName);
    const expected = new Set<string>();
    names.forEach((a, i) => names.slice(i + 1).forEach((b) => expected.add(pairKey(a, b))));
    const tunnels = meshTunnels(data);
    expect(tunnels).toHaveLength(15);
    expect(new Set(tunnels.map((t) => pairKey(t.a, t.b)))).toEqual(expected);
    for (const t of tunnels) {
      expect(t.keepaliveFrom).toEqual([t.a, t.b].includes("home-pi") ? ["home-pi"] : []);
      expect(t.warning).toBeUndefined();
    }
    // Kilo: one segment per node, sorted by "node:<name>", WireGuard IPs allocated in that order.
    const segments = meshSegments(data);
    expect(segments.map((s) => s.leader)).toEqual([...names].sort());
    expect(segments.map((s) => s.wireguardIp)).toEqual(["10.4.0.1/16", "10.4.0.2/16", "10.4.0.3/16", "10.4.0.4/16", "10.4.0.5/16", "10.4.0.6/16"]);
  });

  test("firewall matrix: every incoming rule of rulesFor is one entry, and every node-to-node cell equals what rulesFor allows", () => {
    const { data, firewall } = article();
    const entries = firewallMatrix(data);
    const incoming = firewall.nodes.flatMap((n) => firewall.rulesFor(n).filter((r) => r.direction === TrafficDirection.INCOMING)
      .map((r) => ({ to: n.nodeName, r })));
    expect(entries).toHaveLength(incoming.length);
    incoming.forEach(({ to, r }, i) => {
      expect(entries[i]).toMatchObject({ to, port: `${r.port ?? "all"}/${r.protocol}`, purpose: r.purpose, action: r.action });
    });
    for (const from of firewall.nodes) {
      for (const to of firewall.nodes) {
        expect(allowedPorts(entries, from.nodeName, to.nodeName).sort()).toEqual(portsFromRules(firewall, from, to));
      }
    }
    const server = "k3s-server";
    // SSH is "22/tcp" or "22/tcp (limited)" as PeerFirewall's rateLimitSsh default decides.
    const sshRule = firewall.rulesFor(firewall.nodes[0]).find((r) => r.purpose === "ssh" && r.from === "192.0.2.0/28")!;
    const ssh = sshRule.action === "limit" ? "22/tcp (limited)" : "22/tcp";
    // The API only on the server; kubelet and WireGuard between all; SSH to vps-c from its bastion.
    expect(allowedPorts(entries, "vps-b", server)).toEqual(["6443/tcp", "10250/tcp", "51820/udp"]);
    expect(allowedPorts(entries, server, "vps-b")).toEqual(["10250/tcp", "51820/udp"]);
    expect(allowedPorts(entries, server, "vps-c")).toEqual([ssh, "10250/tcp", "51820/udp"]);
    expect(allowedPorts(entries, "192.0.2.0/28", server)).toEqual([ssh, "6443/tcp"]);
    expect(allowedPorts(entries, "192.0.2.0/28", "home-pi")).toEqual([ssh]);
    // Kilo's 1107 is never opened; nothing is open to anywhere.
    expect(entries.some((e) => e.port.startsWith("1107"))).toBe(false);
    expect(entries.some((e) => e.from === "anywhere")).toBe(false);
    // The private address of a 1:1 NAT node counts as that node.
    expect(entries.filter((e) => e.from === "10.128.0.2")).toEqual([]);
  });

  test("Markdown: a row per node, a row per tunnel, the matrix cells", () => {
    const { data } = article();
    const md = renderMarkdown(data);
    for (const n of data.nodes) expect(md).toContain(`| ${n.name} | ${n.role} |`);
    for (const t of meshTunnels(data)) expect(md).toContain(`| ${t.a} ↔ ${t.b} |`);
    expect(md).toContain("| vps-b | 6443/tcp, 10250/tcp, 51820/udp |  | 10250/tcp, 51820/udp |");
    expect(md).toContain("| home-pi | agent | home | `192.0.2.50` | — | behind NAT, keepalive 25s |");
    expect(md).toContain("```mermaid");
  });

  test("DOT: the tunnel edges are exactly meshTunnels, the table cells are the matrix's", () => {
    const { data } = article();
    const dot = renderDot(data);
    const label = new Map<string, string>();
    for (const m of dot.matchAll(/^ {2}(n\d+) \[label="([^\\"]+) \(/gm)) label.set(m[1], m[2]);
    const edges = [...dot.matchAll(/^ {2}(n\d+) -> (n\d+) \[color="#2a7a2a"/gm)].map((m) => pairKey(label.get(m[1])!, label.get(m[2])!));
    expect(new Set(edges)).toEqual(new Set(meshTunnels(data).map((t) => pairKey(t.a, t.b))));
    expect(edges).toHaveLength(15);
    expect(dot).toContain("<td><b>vps-b</b></td>");
  });

  test("SVG: Graphviz draws it, it parses as XML with an <svg> root, and names every node", async () => {
    const { data } = article();
    const svg = await renderSvg(renderDot(data));
    const doc = parseSvg(svg);
    expect(doc.documentElement?.nodeName).toBe("svg");
    const texts = Array.from(doc.getElementsByTagName("text")).map((t) => t.textContent ?? "");
    for (const n of data.nodes) expect(texts).toContain(`${n.name} (${n.role})`);
    const edgeGroups = Array.from(doc.getElementsByTagName("g")).filter((g) => g.getAttribute("class") === "edge");
    expect(edgeGroups).toHaveLength(15);
  });

  test("npm run example's report: ClusterReport writes .md and .dot, the example adds the .svg", async () => {
    const { app } = article();
    const dir = mkdtempSync(join(tmpdir(), "report-"));
    const paths = await writeClusterReport(app, dir);
    expect(paths.map((p) => p.slice(dir.length + 1))).toEqual(["cluster-report.md", "cluster-report.dot", "cluster-report.svg"]);
    const report = ClusterReport.of(app);
    expect(readFileSync(paths[0], "utf8")).toBe(report.markdown);
    expect(readFileSync(paths[1], "utf8")).toBe(report.dot);
    expect(report.tunnelCount).toBe(15);
    expect(report.mermaid.split("\n").filter((l) => l.includes("<-")).length).toBe(15);
    parseSvg(readFileSync(paths[2], "utf8"));
  });

  test("the picture in the README (docs/article-cluster.svg) is the current one", async () => {
    const { app } = article();
    const svg = await renderSvg(ClusterReport.of(app, { title: "The article's cluster: 1 server + 5 agents" }).dot);
    const committed = readFileSync(join(__dirname, "..", "docs", "article-cluster.svg"), "utf8");
    if (committed !== svg) {
      throw new Error("docs/article-cluster.svg is stale: run `npm run example && cp cdktf.out/cluster-report.svg docs/article-cluster.svg`");
    }
  });

  const chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
  (chromium ? test : test.skip)("the SVG opens in a browser (headless Chromium renders it to a PNG)", async () => {
    const { app } = article();
    const dir = mkdtempSync(join(tmpdir(), "report-"));
    const [, , svgPath] = await writeClusterReport(app, dir);
    const png = join(dir, "report.png");
    execFileSync(chromium!, ["--headless=new", "--no-sandbox", "--disable-gpu", `--user-data-dir=${join(dir, "profile")}`,
      `--screenshot=${png}`, "--window-size=1600,1200", `file://${svgPath}`], { stdio: "ignore", timeout: 60000 });
    expect(statSync(png).size).toBeGreaterThan(20000); // a drawn picture, not a blank or error page
    const dom = execFileSync(chromium!, ["--headless=new", "--no-sandbox", "--disable-gpu", `--user-data-dir=${join(dir, "profile2")}`,
      "--dump-dom", `file://${svgPath}`], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 60000 });
    expect(dom).toContain("k3s-server (server)");
    expect(dom).not.toContain("parsererror");
  }, 120000);
});

describe("location granularity", () => {
  function locationCluster(leader?: "b2") {
    const app = new App({ outdir: mkdtempSync(join(tmpdir(), "loc-")) });
    const cluster = new TerraformStack(app, "cluster");
    const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };
    const server = new K3sServer(cluster, "server", { nodeName: "a1", host: { address: "203.0.113.10", location: "a", ssh } });
    const mk = (name: string, address: string, location: string) =>
      new K3sAgent(cluster, name, { server, nodeName: name, host: { address, location, ssh } });
    const agents = [mk("a2", "203.0.113.11", "a"), mk("b1", "198.51.100.20", "b"), mk("b2", "198.51.100.21", "b")];
    const nodes = [server, ...agents];
    new PeerFirewall(cluster, "firewall", { nodes, adminCidrs: ["192.0.2.0/28"] });
    new KiloMesh(new TerraformStack(app, "mesh"), "kilo", {
      server, nodes, meshGranularity: MeshGranularity.LOCATION, leaders: leader ? [agents[2]] : undefined,
    });
    return collectReportData(app);
  }

  test("one tunnel between the two location leaders; Kilo's leader is the first public node by name", () => {
    const data = locationCluster();
    expect(meshSegments(data).map((s) => [s.key, s.leader, s.members])).toEqual([
      ["location:a", "a1", ["a1", "a2"]],
      ["location:b", "b1", ["b1", "b2"]],
    ]);
    expect(meshTunnels(data).map((t) => pairKey(t.a, t.b))).toEqual([pairKey("a1", "b1")]);
    expect(renderMarkdown(data)).toContain("traffic inside a location is not encrypted");
    expect(renderDot(data)).toContain("same location");
  });

  test("an annotated leader (KiloMesh leaders) wins", () => {
    const data = locationCluster("b2");
    expect(data.nodes.find((n) => n.name === "b2")!.leader).toBe(true);
    expect(meshTunnels(data).map((t) => pairKey(t.a, t.b))).toEqual([pairKey("a1", "b2")]);
  });
});

describe("pure rules of the mesh", () => {
  const node = (name: string, extra: Partial<ReportNode> = {}): ReportNode =>
    ({ name, role: "agent", address: "203.0.113.1", publicAddressOnInterface: true, behindNat: false, ...extra });

  test("a leader with a private endpoint loses to a public one; two NAT'd ends are flagged", () => {
    const data: ClusterReportData = {
      title: "t",
      nodes: [node("a", { location: "x", address: "10.0.0.5" }), node("b", { location: "x" }),
        node("c", { location: "y", behindNat: true, persistentKeepalive: 25 }),
        node("d", { location: "z", behindNat: true, persistentKeepalive: 25 })],
      mesh: { granularity: "location", wireguardPort: 51820, wireguardSubnet: "10.4.0.0/16" },
      firewalls: [],
    };
    expect(meshSegments(data).map((s) => s.leader)).toEqual(["b", "c", "d"]);
    const cd = meshTunnels(data).find((t) => pairKey(t.a, t.b) === pairKey("c", "d"))!;
    expect(cd.warning).toMatch(/both c and d are behind NAT/);
    expect(cd.keepaliveFrom).toEqual(["c", "d"]);
  });
});
