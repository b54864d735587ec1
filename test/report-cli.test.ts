/**
 * cdktf-k3s-kilo-report: the report of any synthesized app, from cdktf.out alone, is the report the
 * constructs give (ClusterReport) — rules recomputed from the embedded firewall inputs included.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { App } from "cdktf";
import { buildArticleCluster } from "../examples/article-cluster/main";
import { ClusterReport } from "../lib";
import { main } from "../lib/cli/report";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = jest.spyOn(console, "log").mockImplementation((...a) => { out.push(a.join(" ")); });
  const error = jest.spyOn(console, "error").mockImplementation((...a) => { err.push(a.join(" ")); });
  try {
    return { code: await main(args), out: out.join("\n"), err: err.join("\n") };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

test("the article's cluster: summary printed; Markdown and DOT equal ClusterReport's; SVG drawn", async () => {
  const outdir = mkdtempSync(join(tmpdir(), "report-cli-"));
  const reportDir = join(outdir, "report");
  dirs.push(outdir);
  const app = new App({ outdir });
  buildArticleCluster(app);
  app.synth();
  const title = "The article's cluster";
  const r = await runCli([outdir, "--out", reportDir, "--title", title]);
  // The synth warnings manifest.json keeps (only the cdktf CLI prints them otherwise), each once.
  const manifest = JSON.parse(readFileSync(join(outdir, "manifest.json"), "utf8"));
  const warnings = Object.values<any>(manifest.stacks).flatMap((s) => s.annotations ?? [])
    .filter((a: any) => a.level === "@cdktf/warn").map((a: any) => `WARN [${a.constructPath}]: ${a.message}`);
  expect(warnings.join("\n")).toMatch(/^WARN \[cluster\]: cdktf-k3s-kilo: SSH host keys not pinned/m);
  expect(r.err).toBe([...new Set(warnings)].join("\n"));
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/Stacks \(in deploy order\):\n {2}cluster +\d+ resources\n {2}mesh +\d+ resources, after cluster/);
  expect(r.out).toMatch(/home-pi +agent +192\.0\.2\.50 +\(home, behind NAT, keepalive 25s\)/);
  expect(r.out).toMatch(/mesh: Kilo, full granularity, 15 WireGuard tunnels, UDP 51820/);
  const expected = ClusterReport.of(app, { title });
  expect(readFileSync(join(reportDir, "cluster-report.md"), "utf8")).toBe(expected.markdown);
  expect(readFileSync(join(reportDir, "cluster-report.dot"), "utf8")).toBe(expected.dot);
  expect(readFileSync(join(reportDir, "cluster-report.svg"), "utf8")).toMatch(/^<\?xml|<svg/);
}, 120_000);

test("a directory without a synthesized app: a message, not a stack trace", async () => {
  const dir = mkdtempSync(join(tmpdir(), "report-cli-empty-"));
  dirs.push(dir);
  const r = await runCli([dir]);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(/manifest\.json not found: synthesize first/);
  expect(existsSync(join(dir, "cluster-report.md"))).toBe(false);
});
