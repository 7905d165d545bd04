/**
 * The bearer token, kept in this tab's session storage only (never localStorage, never a
 * cookie): it is gone when the tab closes, and other tabs and sites never see it.
 */
const STORAGE_KEY = "keypool.token";

export const session = {
  get token(): string | undefined {
    return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
  },
  set token(value: string | undefined) {
    if (value) sessionStorage.setItem(STORAGE_KEY, value);
    else sessionStorage.removeItem(STORAGE_KEY);
  },
};
