#!/usr/bin/env node
// Fails when API.md differs from what jsii-docgen makes of the current .jsii assembly.
// Run after `npm run compile`; fix a failure with `npm run docgen` and commit API.md.
const { execFileSync } = require("child_process");
const { mkdtempSync, readFileSync, rmSync } = require("fs");
const { tmpdir } = require("os");
const { join } = require("path");

const dir = mkdtempSync(join(tmpdir(), "api-docs-"));
try {
  const fresh = join(dir, "API.md");
  execFileSync(require.resolve("jsii-docgen/bin/jsii-docgen"), ["-o", fresh], { stdio: "inherit" });
  let committed = "";
  try { committed = readFileSync("API.md", "utf8"); } catch { /* missing counts as stale */ }
  if (readFileSync(fresh, "utf8") !== committed) {
    console.error("API.md is stale: run `npm run docgen` and commit API.md.");
    process.exit(1);
  }
  console.log("API.md is up to date.");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
