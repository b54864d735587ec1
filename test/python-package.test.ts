/**
 * The Python package, as a Python user gets it:
 *
 * 1. `npm run package:python` in a copy of the repository without build output (as a fresh clone
 *    has it) builds the wheel and the sdist with jsii-pacmak. PYTHON_PACKAGE_TEST_WHEEL=/path/x.whl
 *    reuses a wheel built earlier in the same run instead.
 * 2. docs/python.md's install step runs verbatim in a new virtualenv, the built wheel in place of
 *    `cdktf-k3s-kilo`; its pins must be package.json's npm versions. pip installs offline from a
 *    wheelhouse (scripts/pip-wheelhouse.js) that the first run fills from PyPI.
 * 3. docs/python.md's minimal app runs; examples/python/article_cluster.py runs, and both of its
 *    stacks' cdk.tf.json and its manifest are compared with the TypeScript example's
 *    (examples/article-cluster/main.ts, synthesized here). Only the differences named in IGNORED
 *    below are allowed, each a bounded number of times; any other difference fails with the diff.
 * 4. The package's command, cdktf-k3s-kilo-report, runs from the virtualenv.
 *
 * Every subprocess has a timeout; the temp dir is removed at the end; timings are printed.
 */
import { spawn, spawnSync } from "child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join, resolve } from "path";
import { App } from "cdktf";
import { buildArticleCluster } from "../examples/article-cluster/main";

const { ensureWheelhouse, dropWheelhouse, offlineEnv } = require("../scripts/pip-wheelhouse");

const REPO = resolve(__dirname, "..");
const PKG = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8"));
const DOCS = readFileSync(join(REPO, "docs", "python.md"), "utf8");
const JSII_ENV = { JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION: "20" };

/** The fenced block that follows `<!-- python-step: NAME -->` in docs/python.md. */
function step(name: string): string {
  const m = new RegExp(`<!-- python-step: ${name.replace(".", "\\.")} -->\\n\`\`\`\\w*\\n([\\s\\S]*?)\`\`\``).exec(DOCS);
  if (!m) throw new Error(`docs/python.md has no python step "${name}"`);
  return m[1];
}

interface Ran { stdout: string; stderr: string }

function fail(cmd: string, args: string[], cwd: string, status: number | null, signal: string | null, error: unknown, out: Ran): never {
  const why = error ? String(error) : signal ? `killed by ${signal} (timeout?)` : `exit ${status}`;
  throw new Error(`${cmd} ${args.join(" ")} in ${cwd}: ${why}\n--- stdout\n${out.stdout.slice(-4000)}\n--- stderr\n${out.stderr.slice(-4000)}`);
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout: number): Ran {
  const r = spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: "utf8", timeout, maxBuffer: 64 << 20 });
  const out = { stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  if (r.status !== 0) fail(cmd, args, cwd, r.status, r.signal, r.error, out);
  return out;
}

/** `run` without blocking, so the Python apps run side by side (and beside the TypeScript synth). */
function runAsync(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout: number): Promise<Ran> {
  return new Promise((ok, ko) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, timeout, stdio: ["ignore", "pipe", "pipe"] });
    const out = { stdout: "", stderr: "" };
    child.stdout.on("data", (d) => (out.stdout += d));
    child.stderr.on("data", (d) => (out.stderr += d));
    child.on("error", (e) => ko(e));
    child.on("close", (status, signal) => {
      try {
        if (status !== 0) fail(cmd, args, cwd, status, signal, undefined, out);
        ok(out);
      } catch (e) {
        ko(e);
      }
    });
  });
}

const timings: Array<[string, number]> = [];
const suiteStarted = Date.now();
async function timed<T>(label: string, f: () => T | Promise<T>): Promise<T> {
  const t = Date.now();
  try {
    return await f();
  } finally {
    timings.push([label, (Date.now() - t) / 1000]);
  }
}

function timedSync<T>(label: string, f: () => T): T {
  const t = Date.now();
  try {
    return f();
  } finally {
    timings.push([label, (Date.now() - t) / 1000]);
  }
}

/** What a fresh clone lacks: installed packages and build output (as test/consumer-package.test.ts). */
function inFreshClone(path: string): boolean {
  const rel = path.slice(REPO.length + 1);
  if (rel === "") return true;
  if (/(^|\/)(node_modules|\.git|cdktf\.out|dist|coverage|\.build|\.venv|__pycache__)$/.test(rel)) return false;
  if (rel === ".jsii" || rel.endsWith(".tgz") || rel.endsWith(".tsbuildinfo")) return false;
  if (/^lib\/.*\.(js|d\.ts)$/.test(rel)) return false;
  return true;
}

/** The npm packages the Python app needs, pinned to package.json's versions, by their PyPI names. */
function pythonPins(): string[] {
  const names: Record<string, string> = {
    cdktf: "cdktf",
    constructs: "constructs",
    "@cdktf/provider-local": "cdktf-cdktf-provider-local",
    "@cdktf/provider-random": "cdktf-cdktf-provider-random",
    "@cdktf/provider-kubernetes": "cdktf-cdktf-provider-kubernetes",
  };
  expect(Object.keys(PKG.peerDependencies).sort()).toEqual(Object.keys(names).sort());
  return Object.entries(names).map(([npm, py]) => {
    const version = PKG.devDependencies[npm];
    expect(version).toMatch(/^\d+\.\d+\.\d+$/); // an exact npm pin, so the Python side can match it
    return `${py}==${version}`;
  });
}

/** The dist-info METADATA of a wheel, read with Python's zipfile (no unzip needed). */
function wheelMetadata(wheel: string): string {
  const code = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nprint(next(z.read(n).decode() for n in z.namelist() if n.endswith('.dist-info/METADATA')))";
  return run("python3", ["-c", code, wheel], REPO, {}, 60_000).stdout;
}

// ---------------------------------------------------------------------------------------------
// What may differ between the TypeScript and the Python app's output, and nothing else. Each rule
// rewrites a whole string value (never part of one) to a placeholder, on one side, and must match
// exactly `count` values in that file: a new absolute path, or one gone, fails the comparison.
// ---------------------------------------------------------------------------------------------
interface Ignored { what: string; file: string; side: "ts" | "py"; pattern: RegExp; placeholder: string; count: number }

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

function ignoredDifferences(tsCwd: string, pyCwd: string): Ignored[] {
  const state = (cwd: string) => new RegExp(`^${esc(cwd)}/(terraform\\.(cluster|mesh)\\.tfstate)$`);
  return [
    // cdktf's local backend: the state file's absolute path, under the working directory of the
    // process that synthesized (the TypeScript app runs in jest's, the Python app in its project's).
    { what: "terraform.backend.local.path (state file under the app's working directory)", file: "cluster", side: "ts", pattern: state(tsCwd), placeholder: "<app dir>/$1", count: 1 },
    { what: "terraform.backend.local.path (state file under the app's working directory)", file: "cluster", side: "py", pattern: state(pyCwd), placeholder: "<app dir>/$1", count: 1 },
    // The mesh stack's own backend path, and its cross-stack reference to the cluster stack's state
    // (data.terraform_remote_state.cross-stack-reference-input-cluster.config.path): same cause.
    { what: "mesh: backend path and remote state path of the cluster stack", file: "mesh", side: "ts", pattern: state(tsCwd), placeholder: "<app dir>/$1", count: 2 },
    { what: "mesh: backend path and remote state path of the cluster stack", file: "mesh", side: "py", pattern: state(pyCwd), placeholder: "<app dir>/$1", count: 2 },
  ];
}

function normalize(json: unknown, rules: Ignored[]): { json: unknown; counts: number[] } {
  const counts = rules.map(() => 0);
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") {
      for (let i = 0; i < rules.length; i++) {
        if (rules[i].pattern.test(v)) {
          counts[i]++;
          return v.replace(rules[i].pattern, rules[i].placeholder);
        }
      }
      return v;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return { json: walk(json), counts };
}

/**
 * The manifest without the call stacks cdktf attaches to each synth warning: the TypeScript app's
 * run through its own files, the Python app's through the jsii kernel's; level, message and
 * construct path are kept and compared.
 */
function withoutStackTraces(manifest: any): any {
  const copy = JSON.parse(JSON.stringify(manifest));
  for (const s of Object.values(copy.stacks) as any[]) {
    for (const a of s.annotations ?? []) {
      expect(Array.isArray(a.stacktrace)).toBe(true);
      delete a.stacktrace;
    }
  }
  return copy;
}

const readJson = (path: string) => JSON.parse(readFileSync(path, "utf8"));

describe("the Python package (jsii-pacmak wheel, installed in a new virtualenv)", () => {
  let work: string;
  let wheel: string;
  let sdist: string | undefined;
  let project: string;
  let python: string;
  const tsOut = () => join(work, "ts-out");
  const pyOut = () => join(work, "py-out");
  const docsOut = () => join(work, "docs-out");
  let ready = false;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "cdktf-k3s-kilo-python-"));
    const version = PKG.version as string;

    // 1. The wheel.
    if (process.env.PYTHON_PACKAGE_TEST_WHEEL) {
      wheel = resolve(process.env.PYTHON_PACKAGE_TEST_WHEEL);
      if (!existsSync(wheel)) throw new Error(`PYTHON_PACKAGE_TEST_WHEEL=${wheel} does not exist`);
    } else {
      await timed("wheel + sdist: npm run package:python in a fresh copy", () => {
        const clone = join(work, "clone");
        cpSync(REPO, clone, { recursive: true, filter: inFreshClone });
        symlinkSync(join(REPO, "node_modules"), join(clone, "node_modules"));
        expect(existsSync(join(clone, "lib", "index.js"))).toBe(false);
        run("npm", ["run", "package:python"], clone, { npm_config_update_notifier: "false" }, 1_500_000);
        const dist = join(clone, "dist", "python");
        expect(readdirSync(dist).sort()).toEqual([`cdktf_k3s_kilo-${version}-py3-none-any.whl`, `cdktf_k3s_kilo-${version}.tar.gz`]);
        wheel = join(dist, `cdktf_k3s_kilo-${version}-py3-none-any.whl`);
        sdist = join(dist, `cdktf_k3s_kilo-${version}.tar.gz`);
      });
    }

    // 2. The virtualenv, by docs/python.md's install step, offline from the wheelhouse.
    const pins = pythonPins();
    const requiresDist = wheelMetadata(wheel).split("\n").filter((l) => l.startsWith("Requires-Dist:")).sort();
    const install = step("install");
    for (const pin of pins) expect(install.split(/\s+/)).toContain(pin); // the docs pin package.json's versions
    const command = install.replace(/^(pip install )cdktf-k3s-kilo /m, `$1${wheel} `);
    expect(command).not.toBe(install);
    project = join(work, "my-app");
    mkdirSync(project);
    python = join(project, ".venv", "bin", "python");
    const house = () => ensureWheelhouse({
      name: "python-package-test",
      key: { pins, requiresDist },
      requirements: [wheel, ...pins],
      drop: (f: string) => f.startsWith("cdktf_k3s_kilo-"),
    });
    let wheels = await timed("wheelhouse (pip download, first run only)", house);
    await timed(`virtualenv + pip install (${wheels.downloaded ? "wheelhouse just filled" : "warm wheelhouse"}, no index)`, () => {
      try {
        run("bash", ["-euo", "pipefail", "-c", command], project, offlineEnv(wheels.dir), 900_000);
      } catch (e) {
        if (wheels.downloaded) throw e;
        // A wheelhouse that no longer fits (removed files, a changed Python): fill it anew, once.
        dropWheelhouse(wheels.dir);
        rmSync(join(project, ".venv"), { recursive: true, force: true });
        wheels = house();
        run("bash", ["-euo", "pipefail", "-c", command], project, offlineEnv(wheels.dir), 900_000);
      }
    });
    console.log(`python-package: installed ${run(python, ["-m", "pip", "freeze"], project, {}, 60_000).stdout.trim().split("\n").join(", ")}`);

    // 3. The apps: both Python ones side by side, the TypeScript one here meanwhile.
    writeFileSync(join(project, "main.py"), step("main.py"));
    const article = join(REPO, "examples", "python", "article_cluster.py");
    const started = Date.now();
    const pyApps = Promise.all([
      runAsync(python, [article], project, { ...JSII_ENV, CDKTF_OUTDIR: pyOut() }, 600_000)
        .then((r) => { timings.push(["python: examples/python/article_cluster.py", (Date.now() - started) / 1000]); return r; }),
      runAsync(python, ["main.py"], project, { ...JSII_ENV, CDKTF_OUTDIR: docsOut() }, 600_000)
        .then((r) => { timings.push(["python: docs/python.md's main.py", (Date.now() - started) / 1000]); return r; }),
    ]);
    const tsApp = timed("typescript: examples/article-cluster/main.ts (in process)", () => {
      const app = new App({ outdir: tsOut() });
      buildArticleCluster(app);
      app.synth();
    });
    await Promise.all([pyApps, tsApp]); // one await, so neither side's failure goes unhandled
    ready = true;
  }, 2_400_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
    const total = (Date.now() - suiteStarted) / 1000;
    console.log(["python-package timings (the two Python apps and the TypeScript synth run side by side):",
      ...timings.map(([l, t]) => `  ${t.toFixed(1).padStart(6)} s  ${l}`), `  ${total.toFixed(1).padStart(6)} s  whole file, wall clock`].join("\n"));
  });

  test("the wheel and sdist are named for the cdktf ecosystem and depend on the npm package's peers, in the same ranges", () => {
    expect(ready).toBe(true);
    const meta = wheelMetadata(wheel);
    expect(meta).toMatch(/^Name: cdktf-k3s-kilo$/m);
    expect(meta).toMatch(new RegExp(`^Version: ${esc(PKG.version)}$`, "m"));
    expect(meta).toMatch(/^Requires-Python: >=3\.10$/m);
    const requires = meta.split("\n").filter((l) => l.startsWith("Requires-Dist:")).map((l) => l.replace(/\s+/g, " ").trim());
    expect(requires).toEqual(expect.arrayContaining([
      "Requires-Dist: cdktf <0.22.0,>=0.21.0",
      "Requires-Dist: constructs <11.0.0,>=10.4.2",
      "Requires-Dist: cdktf-cdktf-provider-local <12.0.0,>=11.1.1",
      "Requires-Dist: cdktf-cdktf-provider-random <13.0.0,>=12.0.1",
      "Requires-Dist: cdktf-cdktf-provider-kubernetes <13.0.0,>=12.1.1",
    ]));
    if (sdist) expect(statSync(sdist).size).toBeGreaterThan(100_000); // the module and the npm tarball inside
    // The module comes from the virtualenv's site-packages, not from anything in this checkout
    // (found without importing it: an import starts jsii's Node process, seconds).
    const origin = run(python, ["-c", "import importlib.util; print(importlib.util.find_spec('cdktf_k3s_kilo').origin)"], project, {}, 60_000).stdout.trim();
    expect(origin).toMatch(new RegExp(`^${esc(join(project, ".venv"))}/lib/python3\\.\\d+/site-packages/cdktf_k3s_kilo/__init__\\.py$`));
  }, 600_000);

  test("docs/python.md's minimal app synthesizes: two stacks, a node each for server and agents, the from_ rule in the firewall", () => {
    expect(ready).toBe(true);
    const manifest = readJson(join(docsOut(), "manifest.json"));
    expect(Object.keys(manifest.stacks).sort()).toEqual(["cluster", "mesh"]);
    expect(manifest.stacks.mesh.dependencies).toEqual(["cluster"]);
    const cluster = readJson(join(docsOut(), "stacks", "cluster", "cdk.tf.json"));
    const mesh = readJson(join(docsOut(), "stacks", "mesh", "cdk.tf.json"));
    const steps = Object.keys(cluster.resource.terraform_data);
    expect(steps.filter((k) => k.includes("_install_"))).toHaveLength(3);
    expect(steps.filter((k) => k.startsWith("firewall_"))).toHaveLength(3);
    expect(Object.keys(mesh.resource.kubernetes_manifest).some((k) => k.startsWith("kilo_daemonset"))).toBe(true);
    // FirewallRule(from_=[...]) reached the rule set: the cluster description lists it.
    const described = cluster["//"]["cdktf-k3s-kilo"]["cluster/server"].firewall.extraRules;
    expect(described).toEqual([expect.objectContaining({ port: 8443, from: ["192.0.2.128/25"], description: "dashboard" })]);
  });

  test("examples/python/article_cluster.py writes the TypeScript example's JSON, but for the named absolute paths", () => {
    expect(ready).toBe(true);
    const rules = ignoredDifferences(process.cwd(), project);
    const tsManifest = readJson(join(tsOut(), "manifest.json"));
    const pyManifest = readJson(join(pyOut(), "manifest.json"));
    expect(withoutStackTraces(pyManifest)).toEqual(withoutStackTraces(tsManifest));
    for (const stack of ["cluster", "mesh"]) {
      const mine = rules.filter((r) => r.file === stack);
      const side = (s: "ts" | "py", dir: string) => {
        const sideRules = mine.filter((r) => r.side === s);
        const { json, counts } = normalize(readJson(join(dir, "stacks", stack, "cdk.tf.json")), sideRules);
        // Each ignored difference is there exactly as often as named: no more, no fewer.
        expect(sideRules.map((r, i) => [s, r.what, counts[i]])).toEqual(sideRules.map((r) => [s, r.what, r.count]));
        return json;
      };
      const ts = side("ts", tsOut());
      const py = side("py", pyOut());
      expect(py).toEqual(ts);
    }
  });

  test("cdktf-k3s-kilo-report runs from the virtualenv (the package's bin script, through jsii)", () => {
    expect(ready).toBe(true);
    const report = join(project, ".venv", "bin", "cdktf-k3s-kilo-report");
    const out = timedSync("python: cdktf-k3s-kilo-report", () => run(report, [pyOut()], project, JSII_ENV, 300_000)).stdout;
    expect(out).toMatch(/mesh: Kilo, full granularity, 15 WireGuard tunnels/);
    expect(out).toMatch(/home-pi +agent +192\.0\.2\.50/);
    expect(existsSync(join(pyOut(), "cluster-report.md"))).toBe(true);
  }, 300_000);

  // This was a known bug: the JSON ran `node <absolute path of lib/deploy/fetch-kubeconfig.js>`, and
  // from Python that path is inside the jsii kernel's temporary folder, deleted when the app exits,
  // so a deploy failed at that data source. Now every stack carries its own copy (a TerraformAsset).
  test("the kubeconfig fetch program the Python app's JSON runs is in the stack's own output, and runs, after the app has exited", () => {
    expect(ready).toBe(true);
    const stackDir = join(pyOut(), "stacks", "cluster");
    const cluster = readJson(join(stackDir, "cdk.tf.json"));
    const fetches = Object.values(cluster.data.local_command) as Array<{ command: string; arguments: string[] }>;
    expect(fetches).toHaveLength(1);
    expect(fetches[0].command).toBe("node");
    const program = fetches[0].arguments[0];
    // Relative, so Terraform (which runs in the stack directory) finds it there, and nowhere else.
    expect(program).toMatch(/^assets\/[\w-]+\/[0-9A-F]+\/fetch-kubeconfig\.cjs$/);
    expect(existsSync(join(stackDir, program))).toBe(true);
    // The Python process is gone (beforeAll awaited it); the program still loads and runs from
    // there, with no node_modules anywhere above the temporary output folder: its refusal of a
    // request without secrets_file comes from its own code, not a "Cannot find module".
    const r = spawnSync("node", [program], { cwd: stackDir, input: "{}", encoding: "utf8", timeout: 60_000 });
    expect(r.stderr).toBe("cdktf-k3s-kilo: fetching the kubeconfig: secrets_file (an absolute path) is required\n");
    expect(r.status).toBe(1);
  });
});
