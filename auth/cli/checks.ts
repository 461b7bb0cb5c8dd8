/** What every doctor check answers: the shape the report lines and `--json` are built from. */
export type CheckStatus = "ok" | "warn" | "fail";

export interface CheckResult {
  /** What was looked at: "configuration", "data directory", "tls", "clock", … */
  readonly check: string;
  readonly status: CheckStatus;
  /** A plain sentence: what is wrong and what to do, or what was found. */
  readonly message: string;
}
