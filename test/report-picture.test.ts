/**
 * The report's picture in a real browser: Debian's Chromium, headless, draws the SVG that Graphviz
 * (viz.js) laid out, and every text's bounding box — as the browser measured it in the font it
 * actually used — must lie inside the box or table cell it belongs to, and inside the canvas.
 */
import { spawnSync } from "child_process";
import { mkdtempSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { App, TerraformStack, TerraformVariable } from "cdktf";
import { renderSvg } from "../examples/cluster-report";
import { buildArticleCluster } from "../examples/article-cluster/main";
import { ClusterReport, K3sAgent, K3sServer, KiloMesh, PeerFirewall } from "../lib";
import { shortAddress } from "../lib/render/cluster-report";

const CHROMIUM = "/usr/bin/chromium";
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Runs in the page: for each text, the smallest shape of its node that contains its anchor. */
const MEASURE = `
const svg = document.querySelector("svg");
const canvas = svg.querySelector("g.graph > polygon").getBBox();
const problems = [];
let texts = 0;
const inside = (a, b, tol) => a.x >= b.x - tol && a.y >= b.y - tol && a.x + a.width <= b.x + b.width + tol && a.y + a.height <= b.y + b.height + tol;
for (const t of svg.querySelectorAll("text")) {
  texts++;
  const tb = t.getBBox();
  const what = t.textContent;
  if (!inside(tb, canvas, 0.5)) problems.push({ text: what, where: "canvas" });
  const node = t.closest("g.node");
  if (!node) continue;
  const ax = tb.x + tb.width / 2, ay = tb.y + tb.height / 2;
  const shapes = [...node.querySelectorAll("polygon, path, ellipse")].map((s) => s.getBBox())
    .filter((b) => ax >= b.x && ax <= b.x + b.width && ay >= b.y && ay <= b.y + b.height)
    .sort((a, b) => a.width * a.height - b.width * b.height);
  if (shapes.length === 0) continue; // plaintext without a drawn box: only the canvas applies
  if (!inside(tb, shapes[0], 0.5)) problems.push({ text: what, text_box: [tb.x, tb.y, tb.width, tb.height].map(Math.round), shape: [shapes[0].x, shapes[0].y, shapes[0].width, shapes[0].height].map(Math.round) });
}
document.getElementById("result").textContent = JSON.stringify({ texts, problems, font: getComputedStyle(svg.querySelector("text")).fontFamily });
`;

function measure(svg: string): { texts: number; problems: unknown[]; font: string } {
  const dir = mkdtempSync(join(tmpdir(), "report-picture-"));
  dirs.push(dir);
  const page = join(dir, "page.html");
  writeFileSync(page, `<!doctype html><html><body>${svg.replace(/^<\?xml[^>]*>\s*<!DOCTYPE[^>]*>/s, "")}<pre id="result"></pre><script>${MEASURE}</script></body></html>`);
  const r = spawnSync(CHROMIUM, ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", `--user-data-dir=${join(dir, "profile")}`,
    "--dump-dom", `file://${page}`], { encoding: "utf8", timeout: 60_000 });
  const m = /<pre id="result">(.*?)<\/pre>/s.exec(r.stdout ?? "");
  if (!m || !m[1]) throw new Error(`chromium printed no result (exit ${r.status}): ${r.stderr?.slice(-2000)}`);
  return JSON.parse(m[1].replace(/&quot;/g, "\"").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&"));
}

test("the article's cluster: no text overflows its box, cell or the canvas in Chromium", async () => {
  const app = new App({ outdir: mkdtempSync(join(tmpdir(), "report-picture-app-")) });
  dirs.push(app.outdir);
  buildArticleCluster(app);
  const svg = await renderSvg(ClusterReport.of(app, { title: "The article's cluster: 1 server + 5 agents" }).dot);
  const r = measure(svg);
  expect(r.font).toMatch(/DejaVu Sans/);
  expect(r.texts).toBeGreaterThan(60);
  expect(r.problems).toEqual([]);
}, 120_000);

test("addresses known only after apply are shortened and fit their boxes", async () => {
  const app = new App({ outdir: mkdtempSync(join(tmpdir(), "report-picture-app-")) });
  dirs.push(app.outdir);
  const cluster = new TerraformStack(app, "cluster");
  const ip = (name: string) => new TerraformVariable(cluster, name, { type: "string" }).stringValue;
  const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };
  const server = new K3sServer(cluster, "server", { host: { address: ip("google_compute_instance_primary_network_nat_ip"), ssh } });
  new K3sAgent(cluster, "worker", { server, host: { address: ip("digitalocean_droplet_worker_ipv4_address_public"), ssh, behindNat: true } });
  new PeerFirewall(cluster, "fw", { server, adminCidrs: ["192.0.2.0/28"] });
  new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server });
  const dot = ClusterReport.of(app).dot;
  expect(dot).toContain("var.google_compute_inst… (after apply)");
  expect(dot).not.toContain("${var.google_compute_instance_primary_network_nat_ip}");
  const r = measure(await renderSvg(dot));
  expect(r.problems).toEqual([]);
}, 120_000);

test("shortAddress keeps literals and shortens references to resource name and attribute", () => {
  expect(shortAddress("203.0.113.10")).toBe("203.0.113.10");
  expect(shortAddress("${digitalocean_droplet.server.ipv4_address}")).toBe("server.ipv4_address (after apply)");
  expect(shortAddress("${google_compute_instance.gcp.network_interface[0].access_config[0].nat_ip}")).toBe("gcp….nat_ip (after apply)");
});

test("the check can fail: the same picture laid out for Helvetica (missing on Linux, as before) overflows", async () => {
  const app = new App({ outdir: mkdtempSync(join(tmpdir(), "report-picture-app-")) });
  dirs.push(app.outdir);
  buildArticleCluster(app);
  const dot = ClusterReport.of(app).dot;
  expect(dot).toContain('fontname="DejaVu Sans"');
  const r = measure(await renderSvg(dot.replace(/DejaVu Sans/g, "Helvetica")));
  expect(r.problems.length).toBeGreaterThan(0);
}, 120_000);
