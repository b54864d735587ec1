/**
 * The docs state the pinned K3s release the library installs by default, and keep it current:
 * docs/compatibility.md, where versions are explained, and the README's upgrade step, whose
 * example version must stay the next minor release after the default.
 */
import { readFileSync } from "fs";
import { join } from "path";
import { K3S_DEFAULT_VERSION } from "../lib";

const read = (file: string) => readFileSync(join(__dirname, "..", file), "utf8");

test("docs/compatibility.md names K3S_DEFAULT_VERSION's value", () => {
  expect(read("docs/compatibility.md")).toContain(`**${K3S_DEFAULT_VERSION}** (\`K3S_DEFAULT_VERSION\`, lib/versions.ts)`);
});

test("the README's upgrade step names K3S_DEFAULT_VERSION's value and upgrades to the next minor release", () => {
  const readme = read("README.md");
  const upgrade = readme.slice(readme.indexOf("**Upgrade K3s.**"));
  expect(upgrade).toContain(`**${K3S_DEFAULT_VERSION}** (\`K3S_DEFAULT_VERSION\`)`);
  const example = /const version = "(v1\.(\d+)\.\d+\+k3s\d+)"/.exec(upgrade);
  expect(example).not.toBeNull();
  const defaultMinor = Number(/^v1\.(\d+)\./.exec(K3S_DEFAULT_VERSION)![1]);
  expect(Number(example![2])).toBe(defaultMinor + 1);
});
