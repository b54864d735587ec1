#!/usr/bin/env node
// Fails when API.md (TypeScript) or API.python.md (Python) differs from what jsii-docgen makes of
// the current .jsii assembly. Run after `npm run compile`; fix a failure with `npm run docgen` and
// commit both files.
const { execFileSync } = require("child_process");
const { mkdtempSync, readFileSync, rmSync } = require("fs");
const { tmpdir } = require("os");
const { join } = require("path");

// The committed file and the jsii-docgen language that renders it (the `docgen` script's pairs).
const DOCS = [
  ["API.md", "typescript"],
  ["API.python.md", "python"],
];

const dir = mkdtempSync(join(tmpdir(), "api-docs-"));
try {
  const stale = [];
  for (const [file, language] of DOCS) {
    const fresh = join(dir, file);
    execFileSync(require.resolve("jsii-docgen/bin/jsii-docgen"), ["-l", language, "-o", fresh], {
      stdio: "inherit",
      env: { ...process.env, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION: "20" },
      timeout: 300_000,
    });
    let committed = "";
    try { committed = readFileSync(file, "utf8"); } catch { /* missing counts as stale */ }
    if (readFileSync(fresh, "utf8") !== committed) stale.push(file);
  }
  if (stale.length > 0) {
    console.error(`${stale.join(" and ")} ${stale.length > 1 ? "are" : "is"} stale: run \`npm run docgen\` and commit ${stale.join(" and ")}.`);
    process.exit(1);
  }
  console.log(`${DOCS.map(([f]) => f).join(" and ")} are up to date.`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
