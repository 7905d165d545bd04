/** The README's configuration table is the settings table, row for row. */
import * as fs from "node:fs";
import * as path from "node:path";
import { settingsTableMarkdown } from "../../../src/config/settings";

it("README's configuration table lists every setting with its default and meaning, and nothing else", () => {
  const readme = fs.readFileSync(path.resolve(__dirname, "../../../README.md"), "utf8");
  const start = readme.indexOf("### Configuration");
  const tableStart = readme.indexOf("| variable | default | meaning |", start);
  const tableEnd = readme.indexOf("\n\n", tableStart);
  expect(start).toBeGreaterThan(0);
  expect(tableStart).toBeGreaterThan(start);
  // On a mismatch, the expected side is the table to paste into the README.
  expect(readme.slice(tableStart, tableEnd)).toBe(settingsTableMarkdown());
});
