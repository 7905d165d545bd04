/**
 * The few browser globals that code passed to Playwright's page.evaluate / waitForFunction uses.
 * That code runs in the page, but is type-checked with the Node project (no DOM library there,
 * on purpose): a test file declares the globals it needs with these types.
 */
export interface PageElement {
  textContent: string | null;
  value: string;
  dataset: Record<string, string | undefined>;
  getBoundingClientRect(): { top: number };
  click(): void;
  dispatchEvent(event: unknown): boolean;
}

export interface PageDocument {
  querySelector(selector: string): PageElement | null;
  getElementById(id: string): PageElement | null;
  readonly documentElement: { readonly scrollWidth: number };
}

export interface PageStorage {
  getItem(key: string): string | null;
  readonly length: number;
}
