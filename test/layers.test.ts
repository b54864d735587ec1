/**
 * The library's layers, read from its import statements: host and connection model, pure
 * renderers, constructs, the deploy helper and the CLI. Dependencies point one way, so a
 * newcomer can read a layer without the ones above it.
 */
import { readdirSync, readFileSync } from "fs";
import { builtinModules } from "module";
import { dirname, join, normalize, relative } from "path";

const LIB = join(__dirname, "..", "lib");
const modules = ["host", "render", "constructs", "deploy", "cli"].flatMap((dir) =>
  readdirSync(join(LIB, dir)).filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts")).map((f) => `${dir}/${f.slice(0, -3)}`));

/** The library modules each module imports (relative imports only; type-only imports count too). */
const imports = new Map(modules.map((m) => {
  const text = readFileSync(join(LIB, `${m}.ts`), "utf8");
  const targets = [...text.matchAll(/^(?:import|export)\b[^;]*?from "(\.[^"]+)"/gms)]
    .map((x) => relative(LIB, normalize(join(LIB, dirname(m), x[1]))));
  return [m, targets];
}));

test("the import graph was read", () => {
  expect(modules).toContain("constructs/k3s-server");
  expect(imports.get("constructs/k3s-server")).toContain("constructs/k3s-node");
});

test("no module imports itself through others (no import cycle)", () => {
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (m: string) => {
    if (state.get(m) === "done") return;
    if (state.get(m) === "open") { cycles.push([...path.slice(path.indexOf(m)), m].join(" -> ")); return; }
    state.set(m, "open");
    path.push(m);
    for (const t of imports.get(m) ?? []) if (imports.has(t)) visit(t);
    path.pop();
    state.set(m, "done");
  };
  modules.forEach(visit);
  expect(cycles).toEqual([]);
});

test("lower layers never import higher ones", () => {
  const rank: Record<string, number> = { host: 0, render: 1, constructs: 2, deploy: 2, cli: 3 };
  const upward = [...imports].flatMap(([m, targets]) => targets
    .filter((t) => imports.has(t) && rank[t.split("/")[0]] > rank[m.split("/")[0]])
    .map((t) => `${m} -> ${t}`));
  expect(upward).toEqual([]);
});

test("host and render are pure: they import no cdktf or constructs, only node built-ins and data packages", () => {
  // The packages these layers use today; a new one belongs here only if it is as pure.
  const pure = ["yaml", "ipaddr.js", "kubernetes-models"];
  const seen: string[] = [];
  const outside = modules.filter((m) => /^(host|render)\//.test(m)).flatMap((m) => {
    const text = readFileSync(join(LIB, `${m}.ts`), "utf8");
    const specs = [
      ...[...text.matchAll(/^(?:import|export)\b[^;]*?from "([^".][^"]*)"/gms)].map((x) => x[1]),
      ...[...text.matchAll(/\b(?:require|import)\(\s*"([^".][^"]*)"\s*\)/g)].map((x) => x[1]),
    ];
    seen.push(...specs);
    return specs
      .filter((s) => !builtinModules.includes(s.replace(/^node:/, "")))
      .filter((s) => !pure.includes(s.startsWith("@") ? s.split("/").slice(0, 2).join("/") : s.split("/")[0]))
      .map((s) => `${m} imports ${s}`);
  });
  // The imports were read: render/k3s-config's yaml and render/firewall-rules' crypto.
  expect(seen).toEqual(expect.arrayContaining(["yaml", "crypto"]));
  expect(outside).toEqual([]);
});
