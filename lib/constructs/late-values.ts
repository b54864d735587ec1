/** The renderers' LateValues, backed by cdktf's tokens and Terraform functions. */
import { Fn, Token, Tokenization } from "cdktf";
import { LateValues } from "../render/late-values";

/** cdktf's marker for a string value only Terraform knows (`${TfToken[TOKEN.n]}`). */
const TOKEN_MARKER = /\$\{TfToken\[[A-Z]+\.\d+\]\}/;

export const CDKTF_LATE_VALUES: LateValues = {
  isLate(v: unknown): boolean {
    if (typeof v === "string") return TOKEN_MARKER.test(v) || Token.isUnresolved(v);
    if (typeof v === "number") return Token.isUnresolved(v);
    // A list token is an array (Token.isUnresolved), a boolean variable a bare IResolvable.
    if (v !== null && typeof v === "object") return Tokenization.isResolvable(v) || Token.isUnresolved(v);
    return false;
  },
  replace: (value, search, replacement) => Fn.replace(value, search, replacement),
  jsonencode: (value) => Fn.jsonencode(value),
  join: (separator, list) => Fn.join(separator, list),
  concat: (lists) => Fn.concat(lists as any[]),
  asString: (value) => Token.asString(value),
};
