/** The page's elements by id (index.html). */
export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

export function banner(text: string, kind: "info" | "error" | "ok" = "info"): void {
  const el = $("banner");
  el.textContent = text;
  el.className = `banner ${kind}`;
  el.hidden = text === "";
}
