import { quoted } from "./echo";
import { invalidArgument } from "./errors";
import { PROVIDERS, providerInfo, type FamilyRule } from "./providers";
import type { ProviderId } from "./types";

/** An operator's mapping row: the provider's models matching `pattern` belong to `family`. */
export interface OperatorFamilyRule {
  provider: ProviderId;
  pattern: RegExp;
  family: string;
}

/** What a model name resolves to. */
export interface ResolvedModel {
  provider: ProviderId;
  family: string;
}

const MAPPING_HINT =
  "an operator maps a model with KEYPOOL_MODEL_FAMILIES (e.g. KEYPOOL_MODEL_FAMILIES='openai:^my-model=gpt4o')";

/**
 * Model name → (provider, family), through an ordered table of patterns per provider. The
 * built-in tables come from providers/; operators prepend their own rows, which therefore win.
 * An unknown model is an error, never a silent default family.
 */
export class FamilyTable {
  private readonly rules: ReadonlyMap<ProviderId, readonly FamilyRule[]>;
  private readonly known: ReadonlyMap<ProviderId, ReadonlySet<string>>;

  private constructor(rules: Map<ProviderId, FamilyRule[]>) {
    this.rules = rules;
    const known = new Map<ProviderId, Set<string>>();
    for (const [provider, list] of rules) {
      const families = new Set(providerInfo(provider).defaultFamilies);
      for (const rule of list) families.add(rule.family);
      known.set(provider, families);
    }
    this.known = known;
  }

  /** Every provider's built-in table. */
  static builtIn(): FamilyTable {
    return new FamilyTable(new Map(PROVIDERS.map((p) => [p.id, [...p.familyRules]])));
  }

  /** A new table whose `extra` rows are tried before this table's rows (in their given order). */
  withOperatorRules(extra: readonly OperatorFamilyRule[]): FamilyTable {
    const rules = new Map<ProviderId, FamilyRule[]>();
    for (const [provider, list] of this.rules) {
      const mine = extra
        .filter((r) => r.provider === provider)
        .map((r) => ({ pattern: r.pattern, family: r.family }));
      rules.set(provider, [...mine, ...list]);
    }
    return new FamilyTable(rules);
  }

  /** Providers this table knows, in inference order. */
  providers(): ProviderId[] {
    return [...this.rules.keys()];
  }

  /** The ordered rows of one provider. */
  rulesOf(provider: ProviderId): readonly FamilyRule[] {
    return this.rules.get(provider) ?? [];
  }

  /** Every family a key of this provider can serve (defaults and every row's family). */
  familiesOf(provider: ProviderId): ReadonlySet<string> {
    return this.known.get(provider) ?? new Set();
  }

  /** Every family of every provider. */
  allFamilies(): Set<string> {
    const all = new Set<string>();
    for (const set of this.known.values()) for (const f of set) all.add(f);
    return all;
  }

  /** The family of `model` for one provider, or undefined when no row matches. */
  familyFor(provider: ProviderId, model: string): string | undefined {
    for (const rule of this.rulesOf(provider)) if (rule.pattern.test(model)) return rule.family;
    return undefined;
  }

  /**
   * Resolves a model. With a provider, the model must map in that provider's table; without,
   * the first vendor whose table maps it wins, else the one host whose table maps it (several
   * hosts: the request must name one). Throws InvalidArgument naming the model.
   */
  resolve(model: string, provider?: ProviderId): ResolvedModel {
    const shown = quoted(model);
    if (provider !== undefined) {
      const family = this.familyFor(provider, model);
      if (family !== undefined) return { provider, family };
      const other = this.providers().find((p) => p !== provider && this.familyFor(p, model) !== undefined);
      if (other !== undefined) {
        throw invalidArgument(
          `model ${shown} is a ${providerInfo(other).displayName} model (provider ${other}), but the request asked for provider ${provider}`,
        );
      }
      throw invalidArgument(
        `model ${shown} is not mapped to any ${providerInfo(provider).displayName} model family; ${MAPPING_HINT}`,
      );
    }
    const hosts: ResolvedModel[] = [];
    for (const p of this.providers()) {
      const family = this.familyFor(p, model);
      if (family === undefined) continue;
      if (providerInfo(p).role === "vendor") return { provider: p, family };
      hosts.push({ provider: p, family });
    }
    if (hosts.length === 1) return hosts[0];
    if (hosts.length > 1) {
      throw invalidArgument(
        `model ${shown} is served by several providers (${hosts.map((h) => h.provider).join(", ")}); name the provider in the request`,
      );
    }
    throw invalidArgument(`model ${shown} is not mapped to any model family; ${MAPPING_HINT}`);
  }
}
