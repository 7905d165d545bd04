/**
 * keypool-client: lease upstream API keys from keypool and report back, in one call.
 * See README.md in this folder.
 */
export {
  KeyPoolHelper,
  isRetryableStatus,
  type AttemptContext,
  type AttemptResult,
  type KeyedResult,
  type KeyPoolEvent,
  type KeyPoolHelperOptions,
  type KeyRequest,
  type LeasedKey,
  type ProviderName,
} from "./key-pool-helper";
export { NoKeyError } from "./errors";
export { headersRecord, responseMeta, type HeadersLike, type ResponseLike } from "./response-meta";
export { usageFromAnthropic, usageFromOpenAI, type TokenUsage } from "./usage";
export { Provider } from "../../../gen/ts/keypool/v1/keypool_pb";
