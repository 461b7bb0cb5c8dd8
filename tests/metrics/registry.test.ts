/**
 * The metrics registry (core/metrics.ts) and tokengate's label vocabularies (core/gate-metrics.ts):
 * the text format as Prometheus reads it, and labels that nothing a client sends can multiply.
 */
import { describe, expect, test } from "bun:test";
import { closeCodeLabel, createGateMetrics, statusLabel, UNMATCHED_ROUTE } from "../../auth/core/gate-metrics.ts";
import { banSubjectKind } from "../../auth/guard/refusals.ts";
import { createRegistry, escapeLabelValue, formatSampleValue } from "../../auth/core/metrics.ts";
import { checkMetrics, parseSamples, promtoolAvailable, requirePromtool } from "../support/promtool.ts";

requirePromtool("registry format checks");

describe("the text format", () => {
  test("a labelled counter, a gauge and a histogram render as Prometheus reads them", () => {
    const registry = createRegistry();
    const counter = registry.counter({ name: "t_requests_total", help: "Requests", labelNames: ["route", "code"] });
    counter.child("/a", "200").inc();
    counter.child("/a", "200").inc(2);
    registry.gauge({ name: "t_open", help: "Open" }).child().set(4);
    const histogram = registry.histogram({ name: "t_seconds", help: "Time", labelNames: ["route"], buckets: [0.1, 1] });
    const child = histogram.child("/a");
    for (const value of [0.05, 0.1, 0.5, 3]) child.observe(value);
    expect(registry.render()).toBe(
      [
        "# HELP t_requests_total Requests",
        "# TYPE t_requests_total counter",
        't_requests_total{route="/a",code="200"} 3',
        "# HELP t_open Open",
        "# TYPE t_open gauge",
        "t_open 4",
        "# HELP t_seconds Time",
        "# TYPE t_seconds histogram",
        // `le` is inclusive: 0.1 lands in the 0.1 bucket; buckets are cumulative.
        't_seconds_bucket{route="/a",le="0.1"} 2',
        't_seconds_bucket{route="/a",le="1"} 3',
        't_seconds_bucket{route="/a",le="+Inf"} 4',
        't_seconds_sum{route="/a"} 3.65',
        't_seconds_count{route="/a"} 4',
        "",
      ].join("\n"),
    );
  });

  test("a histogram without labels puts le alone in its braces", () => {
    const registry = createRegistry();
    registry
      .histogram({ name: "t_lag_seconds", help: "Lag", buckets: [1] })
      .child()
      .observe(2);
    expect(registry.render()).toContain('t_lag_seconds_bucket{le="1"} 0\nt_lag_seconds_bucket{le="+Inf"} 1\nt_lag_seconds_sum 2\n');
  });

  test("label values are escaped, sample values spelt as the format wants", () => {
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    expect([0, 1.5, Number.NaN, Infinity, -Infinity].map(formatSampleValue)).toEqual(["0", "1.5", "NaN", "+Inf", "-Inf"]);
    const registry = createRegistry();
    registry
      .counter({ name: "t_total", help: "x", labelNames: ["v"] })
      .child('odd "value"\n')
      .inc();
    expect(parseSamples(registry.render())).toEqual([{ name: "t_total", labels: { v: 'odd "value"\n' }, value: 1 }]);
  });

  test("a child is made once: asking again gives the same object", () => {
    const registry = createRegistry();
    const counter = registry.counter({ name: "t_total", help: "x", labelNames: ["a"] });
    expect(counter.child("x")).toBe(counter.child("x"));
    expect(registry.countSeries()).toBe(1);
  });

  test("mistakes in the declarations are refused when made, not at the scrape", () => {
    const registry = createRegistry();
    registry.counter({ name: "t_total", help: "x" });
    expect(() => registry.counter({ name: "t_total", help: "again" })).toThrow(/twice/);
    expect(() => registry.counter({ name: "bad-name", help: "x" })).toThrow(/name/);
    expect(() => registry.counter({ name: "t2_total", help: "x", labelNames: ["le"] })).toThrow(/label/);
    expect(() => registry.histogram({ name: "t_h", help: "x", buckets: [1, 0.5] })).toThrow(/ascending/);
    expect(() => registry.counter({ name: "t3_total", help: "x", labelNames: ["a"] }).child()).toThrow(/label values/);
  });

  test("collectors run before each render", () => {
    const registry = createRegistry();
    const gauge = registry.gauge({ name: "t_depth", help: "x" }).child();
    let depth = 0;
    registry.beforeRender(() => gauge.set((depth += 1)));
    registry.render();
    expect(registry.render()).toContain("t_depth 2");
  });
});

describe("labels nothing a client sends can multiply", () => {
  test("statuses: the listed ones as themselves, the rest by class", () => {
    expect([200, 401, 429, 502, 101].map(statusLabel)).toEqual(["200", "401", "429", "502", "101"]);
    expect([218, 299, 418, 599, 0, 600, 999, -1, 1.5].map(statusLabel)).toEqual([
      "2xx",
      "2xx",
      "4xx",
      "5xx",
      "none",
      "other",
      "other",
      "other",
      "other",
    ]);
    const labels = new Set(Array.from({ length: 1200 }, (_, status) => statusLabel(status - 100)));
    expect(labels.size).toBeLessThanOrEqual(40);
  });

  test("close codes: RFC 6455's and the gate's own, the rest by range", () => {
    expect([1000, 1001, 1006, 1011, 4401, 4403, 4429].map(closeCodeLabel)).toEqual([
      "1000",
      "1001",
      "1006",
      "1011",
      "4401",
      "4403",
      "4429",
    ]);
    expect([3000, 3999, 4000, 4999, 2000, 5000, 999].map(closeCodeLabel)).toEqual([
      "3xxx",
      "3xxx",
      "4xxx",
      "4xxx",
      "other",
      "other",
      "other",
    ]);
    const labels = new Set(Array.from({ length: 70_000 }, (_, code) => closeCodeLabel(code)));
    expect(labels.size).toBeLessThanOrEqual(40);
  });

  test("a ban's label is its subject's kind, never the subject", () => {
    const subjects = [
      "addr:192.0.2.1",
      "addr:2001:db8::/64",
      "key:0123456789ab",
      "user:alice",
      "codes:key:0123456789ab",
      "codes:user:alice",
    ];
    expect(subjects.map(banSubjectKind)).toEqual(["addr", "addr", "key", "user", "key", "user"]);
  });

  test("the bound the README states: ≤ 260 series no request adds to, ≤ 56 more per route and per service", () => {
    const metrics = createGateMetrics({ version: "0.0.0", startTime: 0 });
    for (let code = -1; code < 70_000; code += 1) metrics.sockets.closed(code);
    const fixed = metrics.registry.countSeries();
    expect(fixed).toBeLessThanOrEqual(260);
    for (let status = -1; status < 1200; status += 1) {
      metrics.routeSeries("/secure-data").answered(status, 0.001);
      metrics.upstreamSeries("grafana").answered(status, 0.001);
    }
    expect(metrics.registry.countSeries() - fixed).toBeLessThanOrEqual(2 * 56);
    expect(parseSamples(metrics.registry.render()).length).toBe(metrics.registry.countSeries());
  });

  test("a route's series is one object per label, made once", () => {
    const metrics = createGateMetrics({ version: "0.0.0", startTime: 0 });
    expect(metrics.routeSeries("/secure-data")).toBe(metrics.routeSeries("/secure-data"));
    const series = metrics.routeSeries(UNMATCHED_ROUTE);
    for (let status = 0; status < 1000; status++) series.answered(status, 0.001);
    const codes = new Set(
      parseSamples(metrics.registry.render())
        .filter((sample) => sample.name === "tokengate_http_requests_total")
        .map((sample) => sample.labels.code),
    );
    expect(codes.size).toBeLessThanOrEqual(40);
  });
});

describe.skipIf(!promtoolAvailable)("promtool", () => {
  test("a fresh registry of every tokengate metric passes promtool check metrics", async () => {
    const metrics = createGateMetrics({ version: "0.1.0", startTime: 1_700_000_000 });
    metrics.routeSeries("/secure-data").answered(200, 0.0001);
    metrics.upstreamSeries("grafana").answered(0, 0.5);
    metrics.sockets.closed(4403).inc();
    expect(await checkMetrics(metrics.registry.render())).toEqual({ exitCode: 0, output: "" });
  });
});
