/** What a fake upstream endpoint answers (fake-upstream.ts sends it). */
export interface FakeAnswer {
  status: number;
  /** A JSON body, or `stream`: text (server-sent events) written chunk by chunk. */
  body?: unknown;
  stream?: AsyncIterable<string>;
  headers?: Record<string, string>;
}
