/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha), so that grpcurl, `buf curl` and
 * Postman work with no .proto at hand. Written once over the descriptors protobuf-es embeds in
 * generated code (real FileDescriptorProtos), and mounted for both versions, whose messages are
 * the same apart from their package.
 */
import { toBinary, type DescFile } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import { quoted } from "../domain/echo";
import { ServerReflection as ServerReflectionV1 } from "../../gen/ts/grpc/reflection/v1/reflection_pb";
import { ServerReflection as ServerReflectionV1Alpha } from "../../gen/ts/grpc/reflection/v1alpha/reflection_pb";

/** The request fields both versions share. */
interface ReflectionRequest {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
}

/** The response fields both versions share (without original_request, added per version). */
type ReflectionAnswer = {
  validHost: string;
  messageResponse:
    | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
    | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
    | { case: "listServicesResponse"; value: { service: { name: string }[] } }
    | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };
};

/** What the server can describe: its services and every file they need. */
export class DescriptorIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly messages = new Set<string>();
  readonly serviceNames: string[];

  /** `services`: fully qualified names of the services to list (those actually mounted). */
  constructor(roots: DescFile[], services: string[]) {
    this.serviceNames = [...services].sort();
    const visit = (file: DescFile) => {
      if (this.files.has(file.proto.name)) return;
      this.files.set(file.proto.name, file);
      for (const type of nestedTypes(file)) {
        this.symbols.set(type.typeName, file);
        if (type.kind === "message") this.messages.add(type.typeName);
        if (type.kind === "service") {
          for (const method of type.methods) this.symbols.set(`${type.typeName}.${method.name}`, file);
        }
      }
      file.dependencies.forEach(visit);
    };
    roots.forEach(visit);
  }

  /** The file and every file it imports, transitively, the file itself first; undefined if unknown. */
  fileWithDependencies(file: DescFile): Uint8Array[] {
    const out: DescFile[] = [];
    const seen = new Set<string>();
    const visit = (f: DescFile) => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      out.push(f);
      f.dependencies.forEach(visit);
    };
    visit(file);
    return out.map((f) => toBinary(FileDescriptorProtoSchema, f.proto));
  }

  fileByName(name: string): DescFile | undefined {
    return this.files.get(name);
  }

  fileContainingSymbol(symbol: string): DescFile | undefined {
    return this.symbols.get(symbol.replace(/^\./, ""));
  }

  isMessage(typeName: string): boolean {
    return this.messages.has(typeName.replace(/^\./, ""));
  }

  answer(req: ReflectionRequest): ReflectionAnswer {
    const notFound = (errorMessage: string): ReflectionAnswer => ({
      validHost: req.host,
      messageResponse: { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage } },
    });
    const files = (file: DescFile): ReflectionAnswer => ({
      validHost: req.host,
      messageResponse: {
        case: "fileDescriptorResponse",
        value: { fileDescriptorProto: this.fileWithDependencies(file) },
      },
    });
    const request = req.messageRequest;
    switch (request.case) {
      case "listServices":
        return {
          validHost: req.host,
          messageResponse: {
            case: "listServicesResponse",
            value: { service: this.serviceNames.map((name) => ({ name })) },
          },
        };
      case "fileByFilename": {
        const file = this.fileByName(request.value);
        return file ? files(file) : notFound(`file ${quoted(request.value)} not found`);
      }
      case "fileContainingSymbol": {
        const file = this.fileContainingSymbol(request.value);
        return file ? files(file) : notFound(`symbol ${quoted(request.value)} not found`);
      }
      case "fileContainingExtension":
        // No file the server describes declares extensions.
        return notFound(
          `no extension ${request.value.extensionNumber} of ${quoted(request.value.containingType)}`,
        );
      case "allExtensionNumbersOfType":
        if (!this.isMessage(request.value)) return notFound(`type ${quoted(request.value)} not found`);
        return {
          validHost: req.host,
          messageResponse: {
            case: "allExtensionNumbersResponse",
            value: { baseTypeName: request.value.replace(/^\./, ""), extensionNumber: [] },
          },
        };
      default:
        return {
          validHost: req.host,
          messageResponse: {
            case: "errorResponse",
            value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" },
          },
        };
    }
  }
}

export function createReflectionV1Service(index: DescriptorIndex): ServiceImpl<typeof ServerReflectionV1> {
  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) yield { ...index.answer(req), originalRequest: req };
    },
  };
}

export function createReflectionV1AlphaService(
  index: DescriptorIndex,
): ServiceImpl<typeof ServerReflectionV1Alpha> {
  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) yield { ...index.answer(req), originalRequest: req };
    },
  };
}
