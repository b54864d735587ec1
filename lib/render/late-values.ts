/**
 * Values only Terraform knows (a variable, another resource's attribute, a generated secret): at
 * synth they are markers, never the value. Renderers stay free of cdktf, so they get this from
 * the caller (lib/constructs/late-values.ts implements it with cdktf) and never guess whether a
 * value is a marker: a renderer without it cannot quote a value at all.
 */
export interface LateValues {
  /** Whether `value` holds a late value: a string with a marker, a number, list or map token, an IResolvable. */
  isLate(value: unknown): boolean;
  /** Terraform's `replace(value, search, replacement)`, computed at apply time. */
  replace(value: string, search: string, replacement: string): string;
  /** Terraform's `jsonencode(value)`, computed at apply time. */
  jsonencode(value: unknown): string;
  /** Terraform's `join(separator, list)`, for a list only Terraform knows. */
  join(separator: string, list: string[]): string;
  /** Terraform's `concat(lists...)`: a list token. */
  concat(lists: unknown[]): unknown;
  /** A late value as text holding its marker (a string is returned as it is). */
  asString(value: unknown): string;
}
