/**
 * The value a long-lived object's time field is made with, before it is set to its real value
 * (often 0): `{ readyAt: AS_DOUBLE }`, then `record.readyAt = 0`.
 *
 * V8 keeps a number field as a small integer until a value that is not one (a time in ms since
 * the epoch) is written to it; every object made before then is rewritten on its first such write:
 * a runtime call, and a new young box for each such field, which the old object then keeps alive
 * through the next scavenge. In a large pool that is each key's first Lease. Objects made from a
 * literal with a fraction in a field hold that field as a double from the start, and every later
 * write, a 0 included, is in place. Behaviour does not depend on it, only what a write costs.
 */
export const AS_DOUBLE = 0.5;
