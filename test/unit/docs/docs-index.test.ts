/**
 * The newcomer test: docs/README.md names, for each rule of docs/, the one source file that
 * implements it. Every named file must exist, and every page a row names must be a page of docs/.
 */
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = path.resolve(__dirname, "../../..");
const index = fs.readFileSync(path.join(ROOT, "docs/README.md"), "utf8");
const section = index.slice(index.indexOf("## Where each rule lives"));
const rows = section
  .split("\n")
  .filter((line) => line.startsWith("| ") && !line.startsWith("| rule |"))
  .map((line) => line.split(" | ").map((cell) => cell.replace(/^\| |\|$/g, "").trim()));

it("names at least one rule", () => {
  expect(rows.length).toBeGreaterThan(10);
});

it.each(rows.map((r) => [r[0], r[2]]))("%s: %s exists", (_rule, file) => {
  const named = /^`([^`]+)`$/.exec(file ?? "")?.[1];
  expect(named).toBeDefined();
  expect(fs.existsSync(path.join(ROOT, named!))).toBe(true);
});

it.each(rows.map((r) => [r[0], r[1]]))("%s: its pages (%s) are pages of docs/", (_rule, pages) => {
  for (const page of (pages ?? "").split(",").map((p) => p.trim())) {
    expect(fs.existsSync(path.join(ROOT, "docs", `${page}.md`))).toBe(true);
  }
});
