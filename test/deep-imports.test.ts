/**
 * Loading the library must not load the providers' package indexes: @cdktf/provider-kubernetes's
 * index requires every one of its ~100 resource modules (over a second and ~200 MiB on a small
 * machine), and we use three of them. lib/ imports each module it needs by its own path.
 *
 * The check runs on freshly compiled sources (never a stale lib/index.js) in a child process, so
 * jest's own module registry plays no part: the child requires the library, then lists which
 * provider files sit in require.cache.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..");
const PROVIDERS = ["kubernetes", "local", "random"];

let outDir: string;

beforeAll(() => {
  outDir = fs.mkdtempSync(path.join(os.tmpdir(), "cdktf-deep-imports-"));
  const tsc = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "--outDir", outDir, "--rootDir", path.join(ROOT, "lib"),
    "--target", "ES2020", "--module", "commonjs", "--esModuleInterop", "--skipLibCheck", "--types", "node",
    ...listTs(path.join(ROOT, "lib"))], { cwd: ROOT, stdio: "pipe" });
}, 120_000);

afterAll(() => { if (outDir) fs.rmSync(outDir, { recursive: true, force: true }); });

function listTs(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return listTs(p);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

/** The provider files in require.cache after the child requires `entry`. */
function providerFilesLoaded(entry: string): string[] {
  const program = `require(${JSON.stringify(entry)});
const files = Object.keys(require.cache).filter((f) => /[\\\\/]@cdktf[\\\\/]provider-/.test(f));
process.stdout.write(JSON.stringify(files));`;
  const out = execFileSync(process.execPath, ["-e", program], {
    cwd: ROOT,
    env: { ...process.env, NODE_PATH: path.join(ROOT, "node_modules") },
    encoding: "utf8",
  });
  return (JSON.parse(out) as string[]).map((f) => f.slice(f.lastIndexOf("@cdktf")).split(path.sep).join("/"));
}

test("require(\"cdktf-k3s-kilo\") loads no provider's package index, only the modules it uses", () => {
  const loaded = providerFilesLoaded(path.join(outDir, "index.js"));
  for (const p of PROVIDERS) {
    expect(loaded).not.toContain(`@cdktf/provider-${p}/lib/index.js`);
  }
  // The modules the constructs use are loaded (the check above looks in the right place).
  expect(loaded).toEqual(expect.arrayContaining([
    "@cdktf/provider-kubernetes/lib/manifest/index.js",
    "@cdktf/provider-random/lib/password/index.js",
  ]));
  // A few dozen files at most, not the kubernetes provider's hundred-odd resource modules.
  expect(loaded.filter((f) => f.startsWith("@cdktf/provider-kubernetes/")).length).toBeLessThan(20);
});

test("the check sees a package index when one is loaded (a broad import would fail it)", () => {
  const probe = path.join(outDir, "probe-broad-import.js");
  fs.writeFileSync(probe, `require(${JSON.stringify(path.join(outDir, "index.js"))}); require("@cdktf/provider-kubernetes");\n`);
  expect(providerFilesLoaded(probe)).toContain("@cdktf/provider-kubernetes/lib/index.js");
});
