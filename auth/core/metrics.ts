/**
 * A small metrics registry with the Prometheus text exposition format (version 0.0.4). Pure: it
 * holds numbers and renders them; reading the process or serving the text is the caller's.
 *
 * Why not prom-client: the per-request work (one labelled counter increment and one histogram
 * observation) measured about 5 ns here against 560–760 ns with prom-client 15.1.3, whose label
 * children hash their labels on every call (the README's Metrics section). Here a child is a plain
 * object, made once per label combination and kept by the caller, so a request builds no string.
 */

/** The exposition format's content type, for the scrape's answer. */
export const EXPOSITION_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value as the text format writes it: backslash, double quote and line feed escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (character) => (character === "\n" ? "\\n" : `\\${character}`));
}

/** A sample value: integers plainly, the infinities and NaN as the format spells them. */
export function formatSampleValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}

/** `{a="x",b="y"}` for the names and values given; `""` when there are none. */
function formatLabels(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return "";
  return `{${names.map((name, i) => `${name}="${escapeLabelValue(values[i]!)}"`).join(",")}}`;
}

export interface MetricOptions {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly string[];
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, ascending; `+Inf` is added. */
  readonly buckets: readonly number[];
}

export class CounterChild {
  value = 0;
  constructor(readonly labels: string) {}

  inc(by = 1): void {
    this.value += by;
  }
}

export class GaugeChild {
  value = 0;
  constructor(readonly labels: string) {}

  set(value: number): void {
    this.value = value;
  }
}

export class HistogramChild {
  /** Per bucket (not cumulative: one increment per observation), the last one is `+Inf`. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: string,
    private readonly bounds: Float64Array,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const { bounds } = this;
    let i = 0;
    // Most observations land in the first buckets: a scan beats a binary search at these sizes.
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]! += 1;
    this.sum += value;
    this.count += 1;
  }
}

type Child = CounterChild | GaugeChild | HistogramChild;

/** One metric family: its children by label values, made on first ask and kept. */
abstract class Family<C extends Child> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly #children = new Map<string, C>();

  constructor(options: MetricOptions) {
    if (!METRIC_NAME.test(options.name)) throw new Error(`bad metric name ${options.name}`);
    const labelNames = options.labelNames ?? [];
    if (labelNames.some((label) => !LABEL_NAME.test(label) || label === "le")) throw new Error(`bad label name in ${options.name}`);
    this.name = options.name;
    this.help = options.help;
    this.labelNames = labelNames;
  }

  abstract readonly type: "counter" | "gauge" | "histogram";
  protected abstract make(labels: string): C;

  /**
   * The child for these label values (as many as the family has names). Callers on a hot path
   * ask once and keep the child: this builds a key.
   */
  child(...values: string[]): C {
    if (values.length !== this.labelNames.length) throw new Error(`${this.name} takes ${this.labelNames.length} label values`);
    const key = values.join("\u0000");
    let found = this.#children.get(key);
    if (found === undefined) this.#children.set(key, (found = this.make(formatLabels(this.labelNames, values))));
    return found;
  }

  get size(): number {
    return this.#children.size;
  }

  /** The family's lines: HELP, TYPE, then one sample per child (several for a histogram). */
  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${this.name} ${this.type}`);
    for (const child of this.#children.values()) this.renderChild(child, lines);
  }

  protected abstract renderChild(child: C, lines: string[]): void;

  /** How many series the family exposes (a histogram's buckets, sum and count each count). */
  abstract countSeries(): number;

  protected children(): IterableIterator<C> {
    return this.#children.values();
  }
}

/** A family of one sample per child: a counter or a gauge. */
abstract class ValueFamily<C extends CounterChild | GaugeChild> extends Family<C> {
  protected renderChild(child: C, lines: string[]): void {
    lines.push(`${this.name}${child.labels} ${formatSampleValue(child.value)}`);
  }
  countSeries(): number {
    return this.size;
  }
}

export class Counter extends ValueFamily<CounterChild> {
  readonly type = "counter";
  protected make(labels: string): CounterChild {
    return new CounterChild(labels);
  }
}

export class Gauge extends ValueFamily<GaugeChild> {
  readonly type = "gauge";
  protected make(labels: string): GaugeChild {
    return new GaugeChild(labels);
  }
}

export class Histogram extends Family<HistogramChild> {
  readonly type = "histogram";
  readonly #bounds: Float64Array;
  /** `le="0.005"` and so on, made once: the bucket labels of every child. */
  readonly #le: readonly string[];

  constructor(options: HistogramOptions) {
    super(options);
    const sorted = options.buckets.every((bound, i) => i === 0 || bound > options.buckets[i - 1]!);
    if (options.buckets.length === 0 || !sorted || options.buckets.some((bound) => !Number.isFinite(bound)))
      throw new Error(`${options.name}: buckets must be finite and ascending`);
    this.#bounds = Float64Array.from(options.buckets);
    this.#le = [...options.buckets.map(formatSampleValue), "+Inf"].map((bound) => `le="${bound}"`);
  }

  protected make(labels: string): HistogramChild {
    return new HistogramChild(labels, this.#bounds);
  }

  protected renderChild(child: HistogramChild, lines: string[]): void {
    // The child's labels with `le` added: `{route="/x",le="0.1"}`, or `{le="0.1"}` without labels.
    const open = child.labels === "" ? "{" : `${child.labels.slice(0, -1)},`;
    let cumulative = 0;
    for (let i = 0; i < this.#le.length; i++) {
      cumulative += child.counts[i]!;
      lines.push(`${this.name}_bucket${open}${this.#le[i]}} ${formatSampleValue(cumulative)}`);
    }
    lines.push(`${this.name}_sum${child.labels} ${formatSampleValue(child.sum)}`);
    lines.push(`${this.name}_count${child.labels} ${formatSampleValue(child.count)}`);
  }

  countSeries(): number {
    return this.size * (this.#le.length + 2);
  }
}

export interface Registry {
  counter(options: MetricOptions): Counter;
  gauge(options: MetricOptions): Gauge;
  histogram(options: HistogramOptions): Histogram;
  /** Runs before each render: gauges read at scrape time (open sockets, queue depth) are set here. */
  beforeRender(collect: () => void): void;
  /** The whole exposition, families in the order they were made. */
  render(): string;
  /** Series exposed now: what the cardinality bound is about. */
  countSeries(): number;
}

export function createRegistry(): Registry {
  const families: Array<Counter | Gauge | Histogram> = [];
  const collectors: Array<() => void> = [];
  const add = <F extends Counter | Gauge | Histogram>(family: F): F => {
    if (families.some((other) => other.name === family.name)) throw new Error(`metric ${family.name} registered twice`);
    families.push(family);
    return family;
  };
  return {
    counter: (options) => add(new Counter(options)),
    gauge: (options) => add(new Gauge(options)),
    histogram: (options) => add(new Histogram(options)),
    beforeRender: (collect) => void collectors.push(collect),
    render() {
      for (const collect of collectors) collect();
      const lines: string[] = [];
      for (const family of families) family.render(lines);
      return `${lines.join("\n")}\n`;
    },
    countSeries: () => families.reduce((total, family) => total + family.countSeries(), 0),
  };
}
