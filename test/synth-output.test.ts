/**
 * What the user sees when an app synthesizes, on each path a user takes, in a `node` process of its
 * own (compiled sources, as a user runs them):
 * - `node main.js` (what `cdktf synth` runs) and `npm run example` (node examples/article-cluster/main.js)
 *   print every synth warning on stderr exactly once, `WARN [construct path]: message`, the same
 *   warnings manifest.json keeps;
 * - under the cdktf CLI (which sets CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS=true for the app and
 *   prints manifest.json's warnings itself) the app prints none of them;
 * - `cdktf-k3s-kilo-report cdktf.out` prints them from manifest.json, each once;
 * - a validation error: the first line on stderr is ours, with the error right under it, before
 *   cdktf's exception.
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..");
let outDir: string;
let work: string;

function listTs(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return listTs(p);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "cdktf-synth-output-"));
  outDir = path.join(work, "build");
  const tsc = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "--outDir", outDir, "--rootDir", ROOT,
    "--target", "ES2020", "--module", "commonjs", "--esModuleInterop", "--skipLibCheck", "--types", "node",
    ...listTs(path.join(ROOT, "lib")), path.join(ROOT, "examples", "article-cluster", "main.ts")], { cwd: ROOT, stdio: "pipe" });
  fs.copyFileSync(path.join(ROOT, "lib", "render", "ufw-converge.py"), path.join(outDir, "lib", "render", "ufw-converge.py"));
}, 180_000);

afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

/** What cdktf-cli 0.21.0 (@cdktf/cli-core src/lib/synth-stack.js) sets for the app it runs. */
const CLI_ENV = (outdir: string) => ({
  CDKTF_OUTDIR: outdir,
  CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS: "true",
  CDKTF_CONTEXT_JSON: JSON.stringify({ cdktfRelativeModules: [] }),
  SYNTH_HCL_OUTPUT: "false",
});

function run(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CDKTF_") && k !== "SYNTH_HCL_OUTPUT"));
  const r = spawnSync(process.execPath, args, {
    cwd: work, encoding: "utf8", timeout: 120_000,
    env: { ...clean, NODE_PATH: path.join(ROOT, "node_modules"), ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The README's program ("What you write"): a server, two agents, a firewall, a mesh; plus a wide admin network. */
function writeProgram(name: string, body: string): string {
  const file = path.join(work, name);
  fs.writeFileSync(file, `const { App, TerraformStack } = require("cdktf");
const { K3sServer, K3sAgent, PeerFirewall, KiloMesh } = require(${JSON.stringify(path.join(outDir, "lib"))});
const app = new App();
const cluster = new TerraformStack(app, "cluster");
const ssh = { user: "ubuntu", privateKeyPath: "~/.ssh/id_ed25519" };
${body}
app.synth();
`);
  return file;
}

const MAIN = `const server = new K3sServer(cluster, "server", { host: { address: "203.0.113.10", ssh } });
["203.0.113.11", "203.0.113.12"].map((address, i) => new K3sAgent(cluster, \`agent-\${i}\`, { server, host: { address, ssh } }));
new PeerFirewall(cluster, "firewall", { server, adminCidrs: ["0.0.0.0/0"] });
const mesh = new TerraformStack(app, "mesh");
new KiloMesh(mesh, "kilo", { server, metricsListen: ":1107" });`;

/** Every warning manifest.json keeps, as the line we print for it. */
function manifestWarnings(outdir: string): string[] {
  const manifest = JSON.parse(fs.readFileSync(path.join(outdir, "manifest.json"), "utf8"));
  return Object.values<any>(manifest.stacks).flatMap((s) => (s.annotations ?? [])
    .filter((a: any) => a.level === "@cdktf/warn")
    .map((a: any) => `WARN [${a.constructPath}]: ${a.message}`));
}

/** Each expected line appears exactly once in `stderr`, and no other warning does. */
function expectEachOnce(stderr: string, expected: string[]): void {
  const lines = stderr.split("\n");
  for (const w of expected) expect([w, lines.filter((l) => l === w).length]).toEqual([w, 1]);
  expect(lines.filter((l) => l.startsWith("WARN ["))).toHaveLength(expected.length);
}

describe("synth warnings reach the user, once each", () => {
  test("node main.js (app.synth()): every warning of manifest.json on stderr, once", () => {
    const outdir = path.join(work, "plain.out");
    const r = run([writeProgram("plain.js", MAIN)], { CDKTF_OUTDIR: outdir });
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.status).toBe(0);
    const expected = manifestWarnings(outdir);
    // The library's warnings, each a line with its construct path.
    expect(expected.join("\n")).toMatch(/WARN \[cluster\]: cdktf-k3s-kilo: SSH host keys not pinned/);
    expect(expected.join("\n")).toMatch(/WARN \[cluster\]: cdktf-k3s-kilo: this stack's state holds the cluster tokens .* local backend/);
    expect(expected.join("\n")).toMatch(/WARN \[cluster\/firewall\]: PeerFirewall "cluster\/firewall": adminCidrs\[0\]: /);
    expect(expected.join("\n")).toMatch(/WARN \[mesh\/kilo\]: KiloMesh "mesh\/kilo": metricsListen/);
    expectEachOnce(r.stderr, expected);
    expect(r.stdout).toBe("");
  });

  test("npm run example (node examples/article-cluster/main.js): its warnings on stderr, once, the summary on stdout", () => {
    const outdir = path.join(work, "example.out");
    const r = run([path.join(outDir, "examples", "article-cluster", "main.js")], { CDKTF_OUTDIR: outdir });
    expect(r.status).toBe(0);
    const expected = manifestWarnings(outdir);
    expect(expected.length).toBeGreaterThanOrEqual(2); // unpinned host keys, local state
    expectEachOnce(r.stderr, expected);
    expect(r.stdout).toMatch(/Stacks \(in deploy order\):/);
    expect(r.stdout).not.toMatch(/WARN \[/);
  });

  test("under cdktf synth (CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS=true) the app prints none: the CLI prints manifest.json's", () => {
    const outdir = path.join(work, "cli.out");
    const r = run([writeProgram("cli.js", MAIN)], CLI_ENV(outdir));
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    expect(manifestWarnings(outdir).length).toBeGreaterThanOrEqual(4);
  });

  test("cdktf-k3s-kilo-report cdktf.out: every warning of manifest.json on stderr, once", () => {
    const outdir = path.join(work, "report.out");
    expect(run([writeProgram("report.js", MAIN)], CLI_ENV(outdir)).status).toBe(0);
    const r = run([path.join(outDir, "lib", "cli", "report.js"), outdir]);
    expect(r.status).toBe(0);
    expectEachOnce(r.stderr, manifestWarnings(outdir));
    expect(r.stdout).toMatch(/Stacks \(in deploy order\):/);
  });

  test("a second app.synth() of the same app prints no warning twice", () => {
    const outdir = path.join(work, "twice.out");
    const r = run([writeProgram("twice.js", `${MAIN}\napp.synth();`)], { CDKTF_OUTDIR: outdir });
    expect(r.status).toBe(0);
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("WARN ["));
    expect(new Set(lines).size).toBe(lines.length);
    expect(lines.length).toBeGreaterThanOrEqual(4);
  });
});

describe("a validation error: our message is the first line", () => {
  const BAD = `new K3sServer(cluster, "server", { host: { address: "203.0.113.300", ssh } });`;

  test("node main.js: the first stderr line is ours, the error under it, cdktf's exception after", () => {
    const r = run([writeProgram("bad.js", BAD)], { CDKTF_OUTDIR: path.join(work, "bad.out") });
    expect(r.status).toBe(1);
    const lines = r.stderr.split("\n");
    expect(lines[0]).toBe('Synth failed: 1 error in stack "cluster":');
    expect(lines[1]).toBe('ERROR [cluster/server]: K3sServer "cluster/server": host.address: "203.0.113.300" is not a valid IPv4 address');
    // cdktf's own report still follows, and the error is printed by us only once.
    expect(r.stderr).toMatch(/skipValidation: true/);
    expect(r.stderr.indexOf("skipValidation")).toBeGreaterThan(r.stderr.indexOf(lines[1]));
    expect(lines.filter((l) => l.startsWith("ERROR ["))).toHaveLength(1);
  });

  test("several errors: all of them first, one line each", () => {
    const r = run([writeProgram("bad2.js", `new K3sServer(cluster, "server", { host: { address: "203.0.113.300", ssh }, clusterCidr: "10.42.0.0/33" });`)],
      { CDKTF_OUTDIR: path.join(work, "bad2.out") });
    const lines = r.stderr.split("\n");
    expect(lines[0]).toBe('Synth failed: 2 errors in stack "cluster":');
    expect(lines[1]).toMatch(/^ERROR \[cluster\/server\]: K3sServer "cluster\/server": /);
    expect(lines[2]).toMatch(/^ERROR \[cluster\/server\]: K3sServer "cluster\/server": /);
    expect(lines.slice(1, 3).join("\n")).toMatch(/clusterCidr/);
  });

  test("under cdktf synth too (the CLI shows the app's stderr when it fails)", () => {
    const r = run([writeProgram("bad-cli.js", BAD)], CLI_ENV(path.join(work, "bad-cli.out")));
    expect(r.status).toBe(1);
    expect(r.stderr.split("\n")[0]).toBe('Synth failed: 1 error in stack "cluster":');
  });

  test("skipValidation: nothing printed, as cdktf validates nothing", () => {
    const file = writeProgram("skip.js", BAD);
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("new App()", "new App({ skipValidation: true })"));
    const r = run([file], CLI_ENV(path.join(work, "skip.out")));
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
  });
});
