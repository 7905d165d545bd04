/** Base URL templates (src/checker/url-template.ts): placeholders filled from a key's credential. */
import { fillUrlTemplate, placeholdersOf } from "../../../src/checker/url-template";

describe("base URL templates", () => {
  it("fills each placeholder with the key's value, in lower case", () => {
    expect(fillUrlTemplate("https://{resource}.azure.gw.example", { resource: "Contoso-East" })).toBe("https://contoso-east.azure.gw.example");
    expect(fillUrlTemplate("https://{region}-vertex.gw.example", { region: "europe-west4" })).toBe("https://europe-west4-vertex.gw.example");
    expect(placeholdersOf("https://bedrock.{region}.gw.example/{x}")).toEqual(["region", "x"]);
  });

  it("a URL without placeholders is used as it is", () => {
    expect(fillUrlTemplate("http://127.0.0.1:8090/azure", { resource: "contoso" })).toBe("http://127.0.0.1:8090/azure");
  });

  it("a value that is not a host label (or none) is refused: a key never picks another host or path", () => {
    expect(() => fillUrlTemplate("https://{resource}.azure.gw.example", { resource: "evil.example/x" })).toThrow(/\{resource\}/);
    expect(() => fillUrlTemplate("https://{resource}.azure.gw.example", { resource: "a@b" })).toThrow();
    expect(() => fillUrlTemplate("https://bedrock.{region}.gw.example", {})).toThrow(/\{region\}/);
  });
});
