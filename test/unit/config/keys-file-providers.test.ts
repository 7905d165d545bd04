import { KeySourceError, parseKeysFile } from "../../../src/config/key-sources";
import { KeyPool } from "../../../src/domain/key-pool";
import { ManualClock } from "../../../src/domain/clock";

/** The README's keys-file example for every provider (kept in step with it by hand). */
const YAML = `
keys:
  - provider: openai
    key: sk-openai-1
  - provider: anthropic
    key: sk-ant-1
  - provider: google
    key: AIzaSy-google-1
  - provider: mistral
    key: mistral-key-1
  - provider: azure
    resourceName: contoso-east
    deploymentId: gpt4o-prod
    apiKey: azure-secret-1
    modelFamilies: [gpt4o]
  - provider: bedrock
    accessKeyId: AKIAIOSFODNN7EXAMPLE
    secretAccessKey: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
    region: us-east-1
  - provider: vertex
    project_id: my-project-123
    region: us-central1
    client_email: pool@my-project-123.iam.gserviceaccount.com
    private_key: |
      -----BEGIN PRIVATE KEY-----
      MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7
      -----END PRIVATE KEY-----
`;

describe("keys files hold keys of every provider, composite ones as fields", () => {
  it("joins the fields into the credential the wire carries, and the pool takes every key", () => {
    const specs = parseKeysFile(YAML, "keys.yaml");
    expect(specs.map((s) => s.provider)).toEqual(["openai", "anthropic", "google", "mistral", "azure", "bedrock", "vertex"]);
    expect(specs[4]).toEqual({ provider: "azure", key: "contoso-east:gpt4o-prod:azure-secret-1", modelFamilies: ["gpt4o"] });
    expect(specs[5].key).toBe("AKIAIOSFODNN7EXAMPLE:us-east-1:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    expect(specs[6].key).toBe(
      "my-project-123:us-central1:pool@my-project-123.iam.gserviceaccount.com:-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----",
    );
    const pool = new KeyPool({ clock: new ManualClock(0) });
    expect(pool.addKeys(specs).added).toBe(7);
  });

  it("the joined form is accepted as key too, in JSON", () => {
    const specs = parseKeysFile('[{"provider": "azure", "key": "contoso-east:gpt4o-prod:azure-secret-1"}]', "k.json");
    expect(specs).toEqual([{ provider: "azure", key: "contoso-east:gpt4o-prod:azure-secret-1" }]);
  });

  it.each([
    ["a part missing", "- provider: bedrock\n  accessKeyId: AKIAIOSFODNN7EXAMPLE\n  secretAccessKey: s3cretvalue\n", "AWS Bedrock keys need region"],
    ["a part empty", "- provider: azure\n  resourceName: r1\n  deploymentId: ''\n  apiKey: s3cretvalue\n", "Azure OpenAI keys need deploymentId"],
    ["another provider's field", "- provider: azure\n  resourceName: r1\n  deploymentId: d1\n  apiKey: s3cretvalue\n  region: us-east-1\n", '"region" is not part of the Azure OpenAI credential'],
    ["key and fields both", "- provider: azure\n  key: r1:d1:s3cretvalue\n  resourceName: r1\n", "either key or the Azure OpenAI credential fields"],
    ["a plain provider with part fields", "- provider: mistral\n  apiKey: s3cretvalue\n", '"apiKey" is not part of the Mistral credential'],
    ["neither", "- provider: vertex\n", "key must be a non-empty string (or the fields projectId, region, clientEmail, privateKey)"],
  ])("names the entry and what is missing on %s, never the secret", (_name, text, expected) => {
    let error: unknown;
    try {
      parseKeysFile(text, "keys.yaml");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KeySourceError);
    expect((error as Error).message).toContain("keys.yaml: entry 1");
    expect((error as Error).message).toContain(expected);
    expect((error as Error).message).not.toContain("s3cretvalue");
  });
});
