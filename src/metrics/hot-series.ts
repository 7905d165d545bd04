/**
 * Counters and histograms for the calls on the hot path (every Lease, report and RPC). prom-client's
 * own hash and validate the label object on every inc() and observe(), even through a child from
 * labels(): several microseconds a Lease. These keep one record per label set, found by the label
 * values the caller already has (up to three, one Map level each, so that a lookup builds no key
 * string), and hand prom-client's registry the same values at scrape time (they implement its
 * metric interface: name, help, type, get()).
 */
import type { Registry } from "prom-client";

type Labels = Record<string, string>;

interface MetricValue {
  labels: Labels;
  value: number;
  metricName?: string;
}

interface ScrapedMetric {
  name: string;
  help: string;
  type: "counter" | "histogram";
  values: MetricValue[];
  aggregator: "sum";
}

/**
 * Records by up to three label values (a series with fewer labels passes "" for the rest), in
 * nested Maps, and every record in the order made, for the scrape.
 */
class SeriesTree<S> {
  private readonly root = new Map<string, Map<string, Map<string, S>>>();
  readonly all: S[] = [];

  get(a: string, b: string, c: string): S | undefined {
    return this.root.get(a)?.get(b)?.get(c);
  }

  set(a: string, b: string, c: string, series: S): void {
    let byB = this.root.get(a);
    if (!byB) this.root.set(a, (byB = new Map()));
    let byC = byB.get(b);
    if (!byC) byB.set(b, (byC = new Map()));
    if (!byC.has(c)) this.all.push(series);
    else this.all[this.all.indexOf(byC.get(c)!)] = series;
    byC.set(c, series);
  }
}

export class HotCounter {
  private readonly series = new SeriesTree<{ labels: Labels; value: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  readonly type = "counter";

  /**
   * Adds `n` to the series of these label values and returns true, or returns false when no such
   * series exists yet (then call `create`): the caller builds a label object only the first time.
   */
  add(a: string, b: string, c: string, n = 1): boolean {
    const series = this.series.get(a, b, c);
    if (!series) return false;
    series.value += n;
    return true;
  }

  create(a: string, b: string, c: string, labels: Labels, n = 1): void {
    this.series.set(a, b, c, { labels, value: n });
  }

  get(): ScrapedMetric {
    const values = this.series.all.map(({ labels, value }) => ({ labels, value }));
    return { name: this.name, help: this.help, type: "counter", values, aggregator: "sum" };
  }
}

interface HistogramSeries {
  labels: Labels;
  /** counts[i]: observations <= buckets[i] and > buckets[i-1]; the last: above every bucket. */
  counts: number[];
  sum: number;
  count: number;
}

export class HotHistogram {
  private readonly series = new SeriesTree<HistogramSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  readonly type = "histogram";

  /** Like HotCounter.add: false when the series of these label values does not exist yet (then call `create`). */
  observe(a: string, b: string, c: string, value: number): boolean {
    const series = this.series.get(a, b, c);
    if (!series) return false;
    this.record(series, value);
    return true;
  }

  create(a: string, b: string, c: string, labels: Labels, value: number): void {
    const series = { labels, counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
    this.series.set(a, b, c, series);
    this.record(series, value);
  }

  private record(series: HistogramSeries, value: number): void {
    let i = 0;
    while (i < this.buckets.length && value > this.buckets[i]) i++;
    series.counts[i]++;
    series.sum += value;
    series.count++;
  }

  get(): ScrapedMetric {
    const values: MetricValue[] = [];
    for (const { labels, counts, sum, count } of this.series.all) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += counts[i];
        values.push({ labels: { le: String(le), ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: "+Inf", ...labels }, value: count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: "histogram", values, aggregator: "sum" };
  }
}
