/**
 * The kubeconfig fetch program (fetch-kubeconfig.ts) as one self-contained file, which K3sServer
 * copies into each synthesized stack as a TerraformAsset. Terraform then runs the stack's own copy,
 * never a file inside this library's install location: from Python (jsii) that location is a
 * temporary folder deleted when the app exits, so a path into it would be gone at deploy time.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";

let prepared: string | undefined;

/**
 * A file holding the program, prepared once per process and removed when it exits (TerraformAsset
 * copies it into the output at synth). Named .cjs so Node runs it as CommonJS even under a project
 * whose package.json says `"type": "module"`. The compiled program's inline source map is dropped:
 * it points at sources the copy does not have, and without it the copy's bytes (and so the asset's
 * hash and path) do not depend on where or how the library was built.
 */
export function fetchProgramFile(): string {
  if (prepared && existsSync(prepared)) return prepared;
  const dir = mkdtempSync(join(tmpdir(), "cdktf-k3s-kilo-program-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  prepared = join(dir, "fetch-kubeconfig.cjs");
  writeFileSync(prepared, programText(), { mode: 0o644 });
  return prepared;
}

const COMPILED = join(__dirname, "fetch-kubeconfig.js");
const SOURCE = join(__dirname, "fetch-kubeconfig.ts");
const withoutSourceMap = (text: string) => text.replace(/\n\/\/# sourceMappingURL=\S*\s*$/, "\n");

function programText(): string {
  if (existsSync(COMPILED)) return withoutSourceMap(readFileSync(COMPILED, "utf8"));
  if (__filename.endsWith(".ts") && existsSync(SOURCE)) return transpiledProgram();
  throw new Error(`cdktf-k3s-kilo: ${COMPILED} is missing; the package is incomplete (reinstall it, or run \`npm run compile\` in a checkout)`);
}

/**
 * @internal Only when this library runs from its TypeScript sources (its own tests under ts-jest,
 * before a compile): the transform jsii's compile applies, giving the same bytes (checked by
 * test/fetch-kubeconfig.test.ts). An installed package ships the compiled .js.
 */
export function transpiledProgram(): string {
  const ts = require("typescript");
  return withoutSourceMap(ts.transpileModule(readFileSync(SOURCE, "utf8"), {
    compilerOptions: { target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.CommonJS, alwaysStrict: true },
  }).outputText);
}
