/** The README's configuration table documents every variable the server reads. */
import * as fs from "node:fs";
import * as path from "node:path";
import { SERVER_SETTINGS } from "../../../src/config/server-config";

it("README's server section lists every server setting", () => {
  const readme = fs.readFileSync(path.resolve(__dirname, "../../../README.md"), "utf8");
  const section = readme.slice(readme.indexOf("<!-- section:server"), readme.indexOf("<!-- /section:server -->"));
  for (const setting of SERVER_SETTINGS) expect(section).toContain(`| \`${setting.name}\` |`);
});
