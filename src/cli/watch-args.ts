/** Command-line and environment options of `keypool-watch`, parsed without side effects. */
import { readGroup, SETTINGS } from "../config/settings";
import { Provider } from "../../gen/ts/keypool/v1/keypool_pb";
import { PROVIDERS as PROVIDER_INFO } from "../domain/providers";
import { providerName, providerToProto } from "../transport/convert";

export type WireProtocol = "grpc" | "connect" | "grpc-web";

export interface WatchArgs {
  url: string;
  token: string | undefined;
  provider: Provider;
  families: string[];
  protocol: WireProtocol;
  /** HTTP/1.1 or HTTP/2 (gRPC needs 2). */
  httpVersion: "1.1" | "2";
  color: boolean;
  /** PEM file of the CA (or the self-signed certificate) to trust instead of the system's. */
  caCertFile: string | undefined;
  /** The name to expect in the server's certificate (and send as SNI), when not the URL's host. */
  serverName: string | undefined;
  help: boolean;
  version: boolean;
}

export const USAGE = `Usage: keypool-watch [options]

Shows every key of a keypool server live: state, when it is ready, leases in flight, tokens spent.

  --url URL            the server (default: $KEYPOOL_URL or http://127.0.0.1:50051)
  --token TOKEN        a bearer token with the watch or admin role (default: $KEYPOOL_TOKEN)
  --provider NAME      only keys of this provider: openai, anthropic, google, mistral, azure,
                       bedrock, vertex
  --family NAME        only keys serving this model family (repeat for several: any matches)
  --protocol NAME      grpc (default), connect or grpc-web
  --http1              use HTTP/1.1 (connect and grpc-web only)
  --cacert FILE        trust the CA (or self-signed certificate) in this PEM file for https:// URLs
  --servername NAME    the name the server's certificate must carry, when not the URL's host
  --no-color           no colours (also when NO_COLOR is set)
  -h, --help           this text
  -V, --version        the version

Press q or Ctrl-C to quit.`;

export class UsageError extends Error {}

const PROVIDERS: Record<string, Provider> = Object.fromEntries(PROVIDER_INFO.map((p) => [p.id, providerToProto(p.id)]));

export function parseWatchArgs(argv: string[], env: NodeJS.ProcessEnv): WatchArgs {
  const defaults = readGroup(env, SETTINGS.watchClient);
  const args: WatchArgs = {
    url: defaults.url,
    token: defaults.token || undefined,
    provider: Provider.UNSPECIFIED,
    families: [],
    protocol: "grpc",
    httpVersion: "2",
    color: env.NO_COLOR === undefined || env.NO_COLOR === "",
    caCertFile: undefined,
    serverName: undefined,
    help: false,
    version: false,
  };
  let http1 = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const next = argv[++i];
      if (next === undefined || next.startsWith("--")) throw new UsageError(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case "--url":
        args.url = value();
        break;
      case "--token":
        args.token = value();
        break;
      case "--provider": {
        const name = value().toLowerCase();
        const provider = PROVIDERS[name];
        if (provider === undefined) throw new UsageError(`unknown provider "${name}" (expected one of ${Object.keys(PROVIDERS).join(", ")})`);
        args.provider = provider;
        break;
      }
      case "--family":
        args.families.push(...value().split(",").map((f) => f.trim()).filter(Boolean));
        break;
      case "--protocol": {
        const protocol = value();
        if (protocol !== "grpc" && protocol !== "connect" && protocol !== "grpc-web") {
          throw new UsageError(`unknown protocol "${protocol}" (expected grpc, connect or grpc-web)`);
        }
        args.protocol = protocol;
        break;
      }
      case "--http1":
        http1 = true;
        break;
      case "--no-color":
        args.color = false;
        break;
      case "--cacert":
        args.caCertFile = value();
        break;
      case "--servername":
        args.serverName = value();
        break;
      case "-V":
      case "--version":
        args.version = true;
        break;
      case "-h":
      case "--help":
        args.help = true;
        break;
      default:
        throw new UsageError(`unknown option "${arg}"`);
    }
  }
  try {
    const parsed = new URL(args.url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error();
  } catch {
    throw new UsageError(`--url must be an http:// or https:// URL, got "${args.url}"`);
  }
  if ((args.caCertFile !== undefined || args.serverName !== undefined) && !args.url.startsWith("https:")) {
    throw new UsageError(`--cacert and --servername are for https:// URLs, got "${args.url}"`);
  }
  if (http1) {
    if (args.protocol === "grpc") throw new UsageError("gRPC needs HTTP/2: use --protocol connect or grpc-web with --http1");
    args.httpVersion = "1.1";
  }
  return args;
}

/** How the filter reads on the dashboard's title line. */
export function describeFilter(args: WatchArgs): string {
  const parts: string[] = [];
  if (args.provider !== Provider.UNSPECIFIED) parts.push(providerName(args.provider));
  if (args.families.length > 0) parts.push(`families: ${args.families.join(", ")}`);
  return parts.join("; ");
}
