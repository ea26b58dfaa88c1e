import { test, expect } from "./fixtures";
import { createReadOnlyKey as createKey, freshEmail, open, signUp } from "./helpers";

test("the requests chart shows a request made now within 2 s, and follows range and key filters", async ({ page }) => {
  // The bell's poll is the page's own doing: it does not keep an idle session alive.
  const bellPoll = page.waitForRequest((r) => r.url().includes("/rpc/unread_notifications"));
  await signUp(page, freshEmail("usage"), "Uma");
  expect((await bellPoll).headers()["x-keyward-background"]).toBe("1");
  const first = await createKey(page, "first key");
  await createKey(page, "second key");

  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Usage" }).click();
  await expect(page.getByRole("heading", { name: "Usage", level: 1 })).toBeVisible();
  const chart = page.getByRole("region", { name: "Requests over time" });
  await expect(chart.getByRole("status")).toHaveText("0 requests");
  await expect(chart.getByText(/ buckets of /)).toContainText("60 buckets of 1 min");
  // charming drew into the element (ECharts' canvas).
  await expect(page.getByRole("img", { name: "Requests over time, stacked by status class" }).locator("canvas")).toHaveCount(1);

  // Live: no reload, the request shows up within 2 s, fetched as the page's own doing.
  const liveFetch = page.waitForRequest((r) => r.url().includes("/rpc/usage_series"));
  const res = await page.request.get("/api/v1/me", { headers: { Authorization: `Bearer ${first}` } });
  expect(res.status()).toBe(200);
  await expect(chart.getByRole("status")).toHaveText("1 request", { timeout: 2000 });
  expect((await liveFetch).headers()["x-keyward-background"]).toBe("1");
  const refused = await page.request.get("/api/v1/keys/key_nope", { headers: { Authorization: `Bearer ${first}` } });
  expect(refused.status()).toBe(404);
  await expect(chart.getByRole("status")).toHaveText("2 requests", { timeout: 2000 });
  const summary = page.getByRole("region", { name: "Summary" });
  await expect(summary.getByRole("term")).toHaveText(["Requests", "Errors", "Latency p50 / p95 / p99"]);
  await expect(summary.getByRole("definition")).toHaveText(["2", "1 (50.0 %)", /^[\d.]+ \/ [\d.]+ \/ [\d.]+ ms$/]);
  await expect(summary.getByRole("table", { name: "Recent errors" }).getByRole("row", { name: /404.*not_found/ })).toBeVisible();

  const filters = page.getByRole("search", { name: "Usage filters" });
  // A filter the user changes is the user's doing.
  const userFetch = page.waitForRequest((r) => r.url().includes("/rpc/usage_series") && (r.postData() ?? "").includes("range=24h"));
  await filters.getByLabel("Range").selectOption("24h");
  expect((await userFetch).headers()["x-keyward-background"]).toBeUndefined();
  await expect(chart.getByText(/ buckets of /)).toContainText("96 buckets of 15 min");
  await expect(chart.getByRole("status")).toHaveText("2 requests");
  await filters.getByLabel("Range").selectOption("30d");
  await expect(chart.getByText(/ buckets of /)).toContainText("120 buckets of 6 h");

  await filters.getByLabel("Key").selectOption({ label: "second key" });
  await expect(chart.getByRole("status")).toHaveText("0 requests");
  await filters.getByLabel("Key").selectOption({ label: "first key" });
  await expect(chart.getByRole("status")).toHaveText("2 requests");
  await filters.getByLabel("Route").selectOption("/api/v1/me");
  await expect(chart.getByRole("status")).toHaveText("1 request");
  await expect(page.getByRole("img", { name: "Requests over time, stacked by status class" }).locator("canvas")).toHaveCount(1);
});

test.describe("a usage page loaded in full", () => {
  // UTC, as the server renders: the page does not refetch in the viewer's zone after
  // hydration, so the live feed's refetch is the first fetch of this tab.
  test.use({ timezoneId: "UTC" });

  test("the live feed's refetch is the page's own doing", async ({ page }) => {
    await signUp(page, freshEmail("usage-load"), "Lou");
    const key = await createKey(page, "loaded key");
    // The usage page's data comes with the page (server-rendered); hydration's fetch sends no
    // request, yet the live refetch after it must be recognised as the page's own.
    await open(page, "/usage");
    const chart = page.getByRole("region", { name: "Requests over time" });
    await expect(chart.getByRole("status")).toHaveText("0 requests");

    const liveFetch = page.waitForRequest((r) => r.url().includes("/rpc/usage_series"));
    const res = await page.request.get("/api/v1/me", { headers: { Authorization: `Bearer ${key}` } });
    expect(res.status()).toBe(200);
    await expect(chart.getByRole("status")).toHaveText("1 request", { timeout: 2000 });
    expect((await liveFetch).headers()["x-keyward-background"]).toBe("1");
  });
});

test("a page whose live feed the server refuses says its chart is not live", async ({ page }) => {
  // As the server answers a user past their cap of feeds (eight tabs open): 429 with the
  // JSON error (past the instance's cap it is 503, which the browser treats the same way).
  await page.route("**/events/usage?**", (route) =>
    route.fulfill({
      status: 429,
      contentType: "application/json",
      headers: { "retry-after": "60" },
      body: JSON.stringify({ error: { code: "rate_limited", message: "at most 8 live usage feeds at once; close another tab" } }),
    }),
  );
  // The page's own clock, so that its retry a minute later can be brought forward.
  await page.clock.install();
  await signUp(page, freshEmail("usage-off"), "Otto");
  const key = await createKey(page, "live key");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Usage" }).click();
  const chart = page.getByRole("region", { name: "Requests over time" });
  await expect(chart.getByRole("alert")).toContainText("Live updates are off");
  await page.getByRole("link", { name: "Errors", exact: true }).click();
  const errors = page.getByRole("region", { name: "Error rate over time" });
  await expect(errors.getByRole("alert")).toContainText("Live updates are off");

  // Served again: a minute later the page asks again by itself, and is live once more.
  await page.unroute("**/events/usage?**");
  const feed = page.waitForResponse((r) => r.url().includes("/events/usage?"));
  await page.clock.fastForward(61_000);
  expect((await feed).status()).toBe(200);
  await expect(errors.getByRole("alert")).toHaveCount(0);
  await expect(errors.getByRole("status")).toHaveText("0 failed of 0 requests (0.0 %)");
  // Live indeed: a request refused now shows without a reload.
  const refused = await page.request.get("/api/v1/keys/key_nope", { headers: { Authorization: `Bearer ${key}` } });
  expect(refused.status()).toBe(404);
  await expect(errors.getByRole("status")).toHaveText("1 failed of 1 request (100.0 %)", { timeout: 2000 });
});
