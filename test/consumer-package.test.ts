/**
 * The consumer's path, end to end: `npm pack` from a copy of the repository without build output
 * (as a fresh clone has it, so `prepack` must build the package), then a new project made in a temp dir by
 * the README's "Quick start" steps, verbatim, and synthesized.
 *
 * The one substitution: the package is not on the npm registry, so the `cdktf-k3s-kilo` argument of
 * the README's `npm install` becomes the packed tarball's path (the README says to do the same).
 * npm runs offline-first (npm_config_prefer_offline) from the machine's npm cache.
 *
 * The synth runs the `app` command of the README's cdktf.json with CDKTF_OUTDIR set, which is what
 * `cdktf synth --output DIR` does: cdktf-cli itself is ~420 MB and not installed by the steps.
 * Opt-ins: CONSUMER_TEST_CDKTN=1 repeats the README's CDK Terrain steps (cdktn aliased as cdktf) and
 * compares the JSON with cdktf 0.21's; CONSUMER_TEST_CDKTF_CLI=1 also runs `npx --package cdktf-cli@0.21.0 cdktf synth` as the
 * README shows; CONSUMER_TEST_NODE22=/path/to/node (e.g. from `npm install node@22`) repeats the
 * synth on that Node.
 *
 * Also: the kubeconfig step the README shows (`KUBECONFIG=... kubectl get nodes`) reads the file the
 * synthesized stack writes, and every relative link and image of the packed README and docs/*.md
 * resolves to a file in the tarball (there is no public repository to link to).
 */
import { execFileSync, spawnSync } from "child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { dirname, join, resolve } from "path";

const REPO = resolve(__dirname, "..");
const README = readFileSync(join(REPO, "README.md"), "utf8");

/** The fenced block that follows `<!-- consumer-step: NAME -->` in the README (or another doc: the cdktn steps are in docs/compatibility.md). */
function step(name: string, doc = "README.md"): string {
  const text = doc === "README.md" ? README : readFileSync(join(REPO, doc), "utf8");
  const m = new RegExp(`<!-- consumer-step: ${name.replace(".", "\\.")} -->\\n\`\`\`\\w*\\n([\\s\\S]*?)\`\`\``).exec(text);
  if (!m) throw new Error(`${doc} has no consumer step "${name}"`);
  return m[1];
}

/** The program under "## What you write". */
function whatYouWrite(): string {
  const m = /## What you write\n\n```ts\n([\s\S]*?)```/.exec(README);
  if (!m) throw new Error("README.md has no ts block under ## What you write");
  return m[1];
}

/** Relative link and image targets of a Markdown text, outside code (Markdown links and images, HTML src/href). */
function relativeLinks(markdown: string): string[] {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, "").replace(/`[^`\n]*`/g, "code");
  const targets = [...prose.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1])
    .concat([...prose.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]));
  return targets.filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t));
}

/** The anchors GitHub (and npm's renderer) give a Markdown file's headings. */
function anchors(markdown: string): Set<string> {
  const headings = markdown.replace(/^```[\s\S]*?^```/gm, "").match(/^#{1,6} .*$/gm) ?? [];
  return new Set(headings.map((h) => h.replace(/^#+ /, "").trim().toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-")));
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeout = 240_000): string {
  const r = spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: "utf8", timeout, maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} in ${cwd} exited ${r.status}${r.signal ? ` (${r.signal})` : ""}\n--- stdout\n${r.stdout?.slice(-4000)}\n--- stderr\n${r.stderr?.slice(-4000)}`);
  }
  return `${r.stdout}\n${r.stderr}`;
}

const NPM_ENV = {
  npm_config_prefer_offline: "true",
  npm_config_audit: "false",
  npm_config_fund: "false",
  npm_config_update_notifier: "false",
};

/** What a fresh clone lacks: installed packages and build output (compiled lib, .jsii, synth output). */
function inFreshClone(path: string): boolean {
  const rel = path.slice(REPO.length + 1);
  if (rel === "") return true;
  if (/(^|\/)(node_modules|\.git|cdktf\.out|dist|coverage|\.build)$/.test(rel)) return false;
  if (rel === ".jsii" || rel.endsWith(".tgz") || rel.endsWith(".tsbuildinfo")) return false;
  if (/^lib\/.*\.(js|d\.ts)$/.test(rel)) return false;
  return true;
}

describe("the packed package in a new consumer project (README steps, verbatim)", () => {
  let work: string;
  let tarball: string;
  let project: string;
  let packLog: string;
  let installLog: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "cdktf-k3s-kilo-consumer-"));
    // A fresh clone: the sources without build output, with the repo's installed node_modules
    // linked in place of `npm ci`.
    const clone = join(work, "clone");
    cpSync(REPO, clone, { recursive: true, filter: inFreshClone });
    symlinkSync(join(REPO, "node_modules"), join(clone, "node_modules"));
    expect(existsSync(join(clone, "lib", "index.js"))).toBe(false);
    packLog = run("npm", ["pack", "--pack-destination", work], clone, NPM_ENV);
    const tgz = readdirSync(work).filter((f) => f.endsWith(".tgz"));
    expect(tgz).toHaveLength(1);
    tarball = join(work, tgz[0]);

    // The README's shell step, with the tarball in place of the registry name.
    const shell = step("shell");
    const install = shell.replace(/^(npm install )cdktf-k3s-kilo /m, `$1${tarball} `);
    expect(install).not.toBe(shell);
    installLog = run("bash", ["-euo", "pipefail", "-c", install], work, NPM_ENV, 600_000);
    project = join(work, "my-cluster");
    writeFileSync(join(project, "cdktf.json"), step("cdktf.json"));
    writeFileSync(join(project, "tsconfig.json"), step("tsconfig.json"));
    writeFileSync(join(project, "main.ts"), whatYouWrite());
  }, 900_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("npm pack of a fresh clone builds the package: compiled code, .jsii, LICENSE, bundled dependencies; no placeholder URL", () => {
    expect(packLog).toMatch(/prepack/);
    const listing = execFileSync("tar", ["tzf", tarball], { encoding: "utf8" }).split("\n");
    for (const f of ["package/lib/index.js", "package/lib/index.d.ts", "package/lib/deploy/fetch-kubeconfig.js", "package/lib/render/ufw-converge.py", "package/lib/cli/report.js", "package/.jsii",
      "package/LICENSE", "package/README.md", "package/API.md", "package/API.python.md", "package/docs/security.md", "package/docs/article-cluster.svg",
      "package/node_modules/ipaddr.js/package.json", "package/node_modules/yaml/package.json"]) {
      expect(listing).toContain(f);
    }
    expect(listing.some((f) => f.startsWith("package/test/") || f.endsWith(".ts") && !f.endsWith(".d.ts"))).toBe(false);
    const license = execFileSync("tar", ["xzOf", tarball, "package/LICENSE"], { encoding: "utf8" });
    expect(license).toMatch(/Apache License\s+Version 2\.0, January 2004/);
    const pkg = JSON.parse(execFileSync("tar", ["xzOf", tarball, "package/package.json"], { encoding: "utf8" }));
    expect(JSON.stringify(pkg)).not.toMatch(/example\.invalid/);
  });

  test("the installed project has the package and its peers, with no engine warnings", () => {
    const installed = JSON.parse(readFileSync(join(project, "node_modules", "cdktf-k3s-kilo", "package.json"), "utf8"));
    expect(installed.name).toBe("cdktf-k3s-kilo");
    for (const peer of Object.keys(installed.peerDependencies)) {
      expect(existsSync(join(project, "node_modules", peer, "package.json"))).toBe(true);
    }
    expect(installLog).toMatch(/added \d+ packages/);
    expect(installLog).not.toMatch(/EBADENGINE|ERESOLVE|peer dep/i);
  });

  /** Each synth warning manifest.json keeps appears in `output` exactly once, as `WARN [construct path]: message`. */
  const expectWarningsOnce = (output: string, outdir: string) => {
    const manifest = JSON.parse(readFileSync(join(outdir, "manifest.json"), "utf8"));
    const warnings = Object.values<any>(manifest.stacks).flatMap((s) => s.annotations ?? [])
      .filter((a: any) => a.level === "@cdktf/warn").map((a: any) => `WARN [${a.constructPath}]: ${a.message}`);
    expect(warnings.join("\n")).toMatch(/^WARN \[cluster\]: cdktf-k3s-kilo: SSH host keys not pinned/m);
    // eslint-disable-next-line no-control-regex
    const lines = output.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").split("\n").map((l) => l.trim());
    for (const w of warnings) expect([w, lines.filter((l) => l === w).length]).toEqual([w, 1]);
  };

  const synthAndCheck = (outdir: string, env: NodeJS.ProcessEnv = {}) => {
    const app = JSON.parse(readFileSync(join(project, "cdktf.json"), "utf8")).app as string;
    const output = run("bash", ["-euo", "pipefail", "-c", app], project, { ...NPM_ENV, ...env, CDKTF_OUTDIR: outdir });
    // `node main.js` prints the synth warnings (stderr), each once.
    expectWarningsOnce(output, outdir);
    const manifest = JSON.parse(readFileSync(join(outdir, "manifest.json"), "utf8"));
    expect(Object.keys(manifest.stacks).sort()).toEqual(["cluster", "mesh"]);
    expect(manifest.stacks.mesh.dependencies).toEqual(["cluster"]);
    const cluster = JSON.parse(readFileSync(join(outdir, manifest.stacks.cluster.synthesizedStackPath), "utf8"));
    const mesh = JSON.parse(readFileSync(join(outdir, manifest.stacks.mesh.synthesizedStackPath), "utf8"));
    // One install per node, one firewall step per node (server + 2 agents, from the node list the server keeps).
    expect(Object.keys(cluster.resource.terraform_data).filter((k) => k.includes("_install_"))).toHaveLength(3);
    expect(Object.keys(cluster.resource.terraform_data).filter((k) => k.startsWith("firewall_"))).toHaveLength(3);
    expect(Object.keys(mesh.resource.kubernetes_manifest).some((k) => k.startsWith("kilo_daemonset"))).toBe(true);
    return { cluster, mesh };
  };

  let reference: { cluster: any; mesh: any } | undefined;

  test("every relative link and image of the packed README and docs/*.md resolves to a file (and heading) in the tarball", () => {
    const root = join(work, "unpacked");
    mkdirSync(root);
    execFileSync("tar", ["xzf", tarball, "-C", root]);
    const pkg = join(root, "package");
    // Every Markdown page and picture of docs/ is packed.
    expect(readdirSync(join(pkg, "docs")).sort()).toEqual(readdirSync(join(REPO, "docs")).filter((f) => /\.(md|svg)$/.test(f)).sort());
    const pages = ["README.md", ...readdirSync(join(pkg, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
    const broken: string[] = [];
    let checked = 0;
    for (const page of pages) {
      for (const target of relativeLinks(readFileSync(join(pkg, page), "utf8"))) {
        checked++;
        const [path, anchor] = target.split("#");
        const file = path === "" ? join(pkg, page) : resolve(dirname(join(pkg, page)), decodeURIComponent(path));
        if (!file.startsWith(pkg + "/") || !existsSync(file)) broken.push(`${page}: ${target}`);
        else if (anchor && file.endsWith(".md") && !anchors(readFileSync(file, "utf8")).has(anchor)) broken.push(`${page}: ${target} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
    expect(checked).toBeGreaterThan(20);
    // The picture is shown in the README, from the package.
    expect(relativeLinks(readFileSync(join(pkg, "README.md"), "utf8"))).toContain("docs/article-cluster.svg");
  });

  test("synthesizes into the directory cdktf passes as CDKTF_OUTDIR (cdktf synth --output)", () => {
    const out = join(work, "custom-out");
    reference = synthAndCheck(out);
    expect(existsSync(join(project, "cdktf.out"))).toBe(false);
    // The command shipped with the package reads the synthesized output.
    const report = run("npx", ["cdktf-k3s-kilo-report", out], project, NPM_ENV);
    expectWarningsOnce(report, out);
    expect(report).toMatch(/agent-1 +agent +203\.0\.113\.12/);
    expect(report).toMatch(/mesh: Kilo, full granularity, 3 WireGuard tunnels/);
    expect(existsSync(join(out, "cluster-report.md"))).toBe(true);
    expect(existsSync(join(out, "cluster-report.dot"))).toBe(true);
  }, 300_000);

  test("the README's kubectl step reads the kubeconfig the README's program makes deploy write (mode 0600)", () => {
    const kubectl = /^KUBECONFIG=(\S+) kubectl get nodes$/m.exec(README);
    if (!kubectl) throw new Error("README.md shows no `KUBECONFIG=... kubectl get nodes` line");
    const files = Object.values<any>(reference!.cluster.resource.local_sensitive_file ?? {});
    expect(files).toHaveLength(1);
    // The command runs in the project directory, as the README says.
    expect(files[0].filename).toBe(resolve(project, kubectl[1]));
    expect(files[0].file_permission).toBe("0600");
    expect(files[0].content).toMatch(/^\$\{.*credentials-secrets.*\.kubeconfig\)\}$/);
  });

  if (process.env.CONSUMER_TEST_NODE22) {
    test("the same on Node 22", () => {
      const node = process.env.CONSUMER_TEST_NODE22!;
      expect(execFileSync(node, ["--version"], { encoding: "utf8" })).toMatch(/^v22\./);
      synthAndCheck(join(work, "node22-out"), { PATH: `${dirname(node)}:${process.env.PATH}` });
    }, 300_000);
  }

  if (process.env.CONSUMER_TEST_CDKTN === "1") {
    // CDK Terrain: cdktn aliased as cdktf (the prebuilt providers peer on cdktf ^0.21, hence --legacy-peer-deps).
    test("docs/compatibility.md's cdktn steps: the same JSON as cdktf 0.21 but for cdktf's version stamp", () => {
      const dir = join(work, "cdktn");
      mkdirSync(dir);
      const shell = step("cdktn", "docs/compatibility.md");
      const install = shell.replace(/^(npm install --legacy-peer-deps )cdktf-k3s-kilo /m, `$1${tarball} `);
      expect(install).not.toBe(shell);
      run("bash", ["-euo", "pipefail", "-c", install], dir, NPM_ENV, 600_000);
      const p = join(dir, "my-cluster");
      expect(JSON.parse(readFileSync(join(p, "node_modules", "cdktf", "package.json"), "utf8")).name).toBe("cdktn");
      expect(JSON.parse(readFileSync(join(p, "node_modules", "constructs", "package.json"), "utf8")).version).toMatch(/^10\.[67]\./);
      writeFileSync(join(p, "cdktf.json"), step("cdktf.json"));
      writeFileSync(join(p, "tsconfig.json"), step("tsconfig.json"));
      writeFileSync(join(p, "main.ts"), whatYouWrite());
      const out = join(dir, "out");
      const app = JSON.parse(readFileSync(join(p, "cdktf.json"), "utf8")).app as string;
      run("bash", ["-euo", "pipefail", "-c", app], p, { ...NPM_ENV, CDKTF_OUTDIR: out });
      const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
      // The project directory differs (the local backend's state path); the version stamp is cdktn's.
      const normalize = (json: any, project: string) => JSON.parse(JSON.stringify(json).split(project).join("<project>")
        .replace(/"version":"0\.(21|24)\.\d+"/g, '"version":"<cdktf>"'));
      expect(readFileSync(join(out, manifest.stacks.cluster.synthesizedStackPath), "utf8")).toMatch(/"version": "0\.24\./);
      for (const stack of ["cluster", "mesh"] as const) {
        const json = JSON.parse(readFileSync(join(out, manifest.stacks[stack].synthesizedStackPath), "utf8"));
        expect(normalize(json, p)).toEqual(normalize(reference![stack], project));
      }
    }, 900_000);
  }

  if (process.env.CONSUMER_TEST_CDKTF_CLI === "1") {
    test("npx --package cdktf-cli@0.21.0 cdktf synth, as the README shows", () => {
      const output = run("npx", ["--yes", "--package", "cdktf-cli@0.21.0", "cdktf", "synth", "--output", "cli-out"], project,
        { ...NPM_ENV, CHECKPOINT_DISABLE: "1", CDKTF_DISABLE_PLUGIN_CACHE_ENV: "1" }, 600_000);
      const manifest = JSON.parse(readFileSync(join(project, "cli-out", "manifest.json"), "utf8"));
      expect(Object.keys(manifest.stacks).sort()).toEqual(["cluster", "mesh"]);
      // The CLI prints manifest.json's warnings; the app, which it runs with
      // CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS=true, adds none: each once.
      expectWarningsOnce(output, join(project, "cli-out"));
    }, 900_000);
  }
});
