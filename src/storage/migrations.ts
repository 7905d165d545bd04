/**
 * The state file's schema, as numbered steps. A file records every step applied in
 * `schema_migrations`; at open the missing steps run in order, each in its own transaction.
 * Steps are only ever appended: never edit or renumber a step that has shipped.
 */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "keys: one row per key ever seen, its state as JSON, its secret and origin",
    sql: `
      CREATE TABLE keys (
        key_hash   TEXT PRIMARY KEY,
        provider   TEXT NOT NULL,
        -- 'config': from the environment or keys file; 'runtime': added by AddKeys.
        origin     TEXT NOT NULL CHECK (origin IN ('config', 'runtime')),
        -- The secret. The file is mode 0600 for this reason.
        secret     TEXT NOT NULL,
        -- Copied out of status for operators reading the file with sqlite3.
        state      TEXT NOT NULL,
        -- The whole KeyStatus (no secret) as JSON: families, usage, cooldown, counts, times.
        status     TEXT NOT NULL,
        -- Epoch ms when RemoveKey took the key out of the pool; 0 while it is in the pool.
        removed_at INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    description: "key_soft: what leases changed in a key since its row in keys was written",
    sql: `
      -- A key leased since its row in keys was written, and nothing else changed: the lease's
      -- fields alone, so that a lease does not rewrite the whole row. Writing the key's row in
      -- keys deletes its row here in the same transaction: a row here is always newer than the
      -- key's status in keys, and its fields override those of the status. No secret.
      CREATE TABLE key_soft (
        key_hash    TEXT PRIMARY KEY,
        -- Epoch ms, as status.lastUsed and status.holdUntil.
        last_used   INTEGER NOT NULL,
        lease_count INTEGER NOT NULL,
        hold_until  INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
];

/** The newest schema this code knows. A file with a newer one was written by a newer keypool. */
export const LATEST_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
