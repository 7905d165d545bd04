/**
 * Leases per second and tokens per minute over the last minutes, in 5-second buckets, drawn as
 * two lines of plain SVG (each scaled to its own peak: their units differ).
 */
export const BUCKET_MS = 5000;
const BUCKETS = 120; // 10 minutes

const MINUTE_BUCKETS = 60_000 / BUCKET_MS;

function sumOfLast(values: number[], n: number): number {
  let sum = 0;
  for (let i = values.length - n; i < values.length; i++) sum += values[i];
  return sum;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export class RateHistory {
  private readonly leases: number[] = new Array(BUCKETS).fill(0);
  private readonly tokens: number[] = new Array(BUCKETS).fill(0);
  private current = { leases: 0, tokens: 0 };

  add(leases: number, tokens: number): void {
    this.current.leases += leases;
    this.current.tokens += tokens;
  }

  /** Closes the current bucket. */
  tick(): void {
    this.leases.push(this.current.leases);
    this.tokens.push(this.current.tokens);
    this.leases.shift();
    this.tokens.shift();
    this.current = { leases: 0, tokens: 0 };
  }

  /** Over the last minute of closed buckets. */
  get leasesPerSecond(): number {
    return sumOfLast(this.leases, MINUTE_BUCKETS) / 60;
  }

  get tokensPerMinute(): number {
    return sumOfLast(this.tokens, MINUTE_BUCKETS);
  }

  draw(svg: SVGSVGElement): void {
    const line = (values: number[], cls: string) => {
      const peak = Math.max(1, ...values);
      const points = values.map((v, i) => `${((i / (BUCKETS - 1)) * 300).toFixed(1)},${(78 - (v / peak) * 74).toFixed(1)}`);
      const el = document.createElementNS(SVG_NS, "polyline");
      el.setAttribute("class", cls);
      el.setAttribute("points", points.join(" "));
      return el;
    };
    // Leases drawn last: on top where the two lines meet.
    svg.replaceChildren(line(this.tokens, "tokens"), line(this.leases, "leases"));
  }
}
