import { test, expect } from "./fixtures";
import { ADMIN_EMAIL, ADMIN_PASSWORD } from "../playwright.config";
import { createReadOnlyKey, freshEmail, open, signIn, signUp } from "./helpers";
import { readFileSync } from "node:fs";

test("the errors page, a key's usage against its limit, and a streamed export with progress", async ({ page }) => {
  await signUp(page, freshEmail("analytics"), "Ada");
  const key = await createReadOnlyKey(page, "analytics key");
  const call = async (path: string) =>
    (await page.request.get(path, { headers: { Authorization: `Bearer ${key}` } })).status();
  expect(await call("/api/v1/me")).toBe(200);
  expect(await call("/api/v1/me")).toBe(200);
  expect(await call("/api/v1/keys/key_nope")).toBe(404);

  // Errors: the rate, where errors come from, and the latest with their messages.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Usage" }).click();
  await page.getByRole("link", { name: "Errors", exact: true }).click();
  await expect(page.getByRole("heading", { name: "Errors", level: 1 })).toBeVisible();
  const rate = page.getByRole("region", { name: "Error rate over time" });
  await expect(rate.getByRole("status")).toHaveText("1 failed of 3 requests (33.3 %)", { timeout: 5000 });
  await expect(page.getByRole("img", { name: "Failed requests by status class, and the error rate" }).locator("canvas")).toHaveCount(1);
  const origin = page.getByRole("region", { name: "Where errors come from" });
  await expect(origin.getByRole("list", { name: "Top error codes" })).toContainText("not_found — 1");
  await expect(origin.getByRole("list", { name: "Failing routes" })).toContainText("/api/v1/keys/{id} — 1");
  await expect(
    origin.getByRole("table", { name: "Latest errors" }).getByRole("row", { name: /404.*not_found.*not found/ }),
  ).toBeVisible();

  // Export: the progress bar runs, then the file holds the rows.
  await page.getByRole("link", { name: "Usage", exact: true }).first().click();
  await expect(page.getByRole("heading", { name: "Usage", level: 1 })).toBeVisible();
  const exportRegion = page.getByRole("region", { name: "Export" });
  const downloading = page.waitForEvent("download");
  await exportRegion.getByRole("button", { name: "Export CSV" }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toMatch(/^usage-org_.*-1h\.csv$/);
  const lines = readFileSync((await download.path())!, "utf8").trim().split("\n");
  expect(lines[0]).toBe("minute,api_key_id,key_name,route,status_class,requests,latency_ms_avg");
  // Two routes' rows (three if the calls straddled a minute), every request counted once.
  const rows = lines.slice(1).filter((l) => l.includes("analytics key"));
  expect(rows.length).toBeGreaterThanOrEqual(2);
  expect(rows.map((l) => Number(l.split(",")[5])).reduce((a, b) => a + b, 0)).toBe(3);
  // The progress bar and the status count the rows that arrived in the body.
  const received = String(lines.length - 1);
  await expect(exportRegion.getByRole("progressbar", { name: "Export progress" })).toHaveAttribute("value", received);
  await expect(exportRegion.getByRole("status")).toHaveText(new RegExp(`^Exported ${received} rows to usage-.*\\.csv\\.$`));

  const downloadingJson = page.waitForEvent("download");
  await exportRegion.getByRole("button", { name: "Export JSON" }).click();
  const json = JSON.parse(readFileSync((await (await downloadingJson).path())!, "utf8"));
  const ours = json.filter((r: { key_name: string }) => r.key_name === "analytics key");
  expect(ours.reduce((a: number, r: { requests: number }) => a + r.requests, 0)).toBe(3);

  // The key's page: what it used of its limit.
  await open(page, "/keys");
  await page.getByRole("table", { name: "API keys" }).getByRole("link", { name: "analytics key" }).click();
  const usage = page.getByRole("region", { name: "Usage against the limit" });
  await expect(usage.getByRole("status")).toContainText("3 of 100 used in the current window (100 per hour), 97 left");
  await expect(usage.getByRole("meter", { name: "Share of the limit used" })).toHaveAttribute("value", "3");
  await expect(usage).toContainText("Last 24 hours: 3 requests, 1 failed");
  // Not an instance admin: no all-organizations table.
  await open(page, "/usage");
  await expect(page.getByRole("region", { name: "Summary" })).toBeVisible();
  await expect(page.getByRole("region", { name: "Organizations" })).toHaveCount(0);
});

test("an instance admin sees every organization's totals", async ({ page }) => {
  // Traffic in an organization of its own: a fresh user's, three requests, one failed.
  // A name of its own, so that the row is this run's even against a reused server.
  const name = `Tess ${Date.now() % 1_000_000}`;
  await signUp(page, freshEmail("totals"), name);
  const key = await createReadOnlyKey(page, "totals key");
  for (const path of ["/api/v1/me", "/api/v1/me", "/api/v1/keys/key_nope"]) {
    await page.request.get(path, { headers: { Authorization: `Bearer ${key}` } });
  }
  await page.getByRole("button", { name: "Sign out" }).click();
  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Usage" }).click();
  const table = page.getByRole("table", { name: "Requests by organization" });
  await expect(table.getByRole("columnheader", { name: "Active keys" })).toBeVisible();
  // Organization, requests, failed, active keys.
  await expect(table.getByRole("row", { name: new RegExp(`${name}.*\\b3\\b.*\\b1\\b.*\\b1\\b`) })).toBeVisible({ timeout: 5000 });
  const refetched = page.waitForResponse((r) => r.url().includes("usage_by_organization"));
  await page.getByRole("search", { name: "Usage filters" }).getByLabel("Range").selectOption("30d");
  expect((await refetched).status()).toBe(200);
  await expect(table.getByRole("row", { name: new RegExp(`${name}.*\\b3\\b.*\\b1\\b.*\\b1\\b`) })).toBeVisible();
});
