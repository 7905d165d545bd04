/** One HTTP request of a check, as the decision code describes it and upstream-client.ts sends it. */
export interface UpstreamRequest {
  /** For logs: which part of the check ("models", "liveness", "organizations"). */
  name: string;
  method: "GET" | "POST";
  url: string;
  /** Holds the secret: never logged. */
  headers: Record<string, string>;
  body?: string;
}
