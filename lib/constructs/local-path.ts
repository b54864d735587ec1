/**
 * Paths on the machine running `cdktf deploy`. Not exported from the package.
 */
import { resolve } from "path";
import { Fn, Token } from "cdktf";

/**
 * A path on the deploying machine for a local file resource: `~` expanded there by Terraform (as
 * privateKeyPath is), a relative path made absolute against the project directory (the synth's
 * cwd, where cdktf.json is). Terraform runs in the stack's directory under cdktf.out, where a
 * relative path would otherwise land, and the local provider does not expand `~`.
 */
export function localPath(path: string): string {
  if (Token.isUnresolved(path)) return Fn.pathexpand(path);
  if (path === "~" || path.startsWith("~/")) return Fn.pathexpand(path);
  return resolve(process.cwd(), path);
}
