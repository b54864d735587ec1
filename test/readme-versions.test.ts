/** The README states the pinned K3s release the library installs by default, and keeps it current. */
import { readFileSync } from "fs";
import { join } from "path";
import { K3S_DEFAULT_VERSION } from "../lib";

test("README's Compatibility section names K3S_DEFAULT_VERSION's value", () => {
  const readme = readFileSync(join(__dirname, "..", "README.md"), "utf8");
  const compatibility = readme.slice(readme.indexOf("## Compatibility"));
  expect(compatibility).toContain(`**${K3S_DEFAULT_VERSION}** (\`K3S_DEFAULT_VERSION\`, lib/versions.ts)`);
});
