import { test, expect } from "./fixtures";
import { createReadOnlyKey, freshEmail, open, signUp } from "./helpers";

test("the security page flags a key wider than its use and narrows it in one click", async ({ page }) => {
  const email = freshEmail("sec");
  await signUp(page, email, "Sera");
  const key = await createReadOnlyKey(page, "scan key");
  // The key reads its organization's keys, and nothing else.
  const r = await page.request.get("/api/v1/keys", { headers: { Authorization: `Bearer ${key}` } });
  expect(r.status()).toBe(200);

  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Security" }).click();
  await expect(page.getByRole("heading", { name: "Security", exact: true })).toBeVisible();
  await expect(page.getByRole("region", { name: "Administrators without two-factor authentication" })).toContainText(email);
  const keys = page.getByRole("table", { name: "Key findings" });
  const row = keys.getByRole("row", { name: /scan key/ });
  // The request log is written off the request path: look again until the use shows.
  await expect(async () => {
    await open(page, "/security");
    await expect(row).toContainText("scopes wider than what it used", { timeout: 2000 });
  }).toPass({ timeout: 20_000 });
  await expect(row).toContainText("never expires");
  await expect(row.getByRole("cell", { name: "keys:read", exact: true })).toBeVisible();
  await row.getByRole("button", { name: "Narrow scan key to what it uses" }).click();
  await expect(page.getByRole("status")).toHaveText("scan key now holds: keys:read.");
  await expect(row).not.toContainText("scopes wider than what it used");
  await expect(row.getByRole("button", { name: "Narrow scan key to what it uses" })).toHaveCount(0);
  // The key itself is narrower: the members it could read before are refused now (asked only
  // after narrowing: asking before would have been a use), its own keys still answered.
  const as = { headers: { Authorization: `Bearer ${key}` } };
  const members = await page.request.get("/api/v1/members", as);
  expect(members.status()).toBe(403);
  expect((await members.json()).error.code).toBe("forbidden");
  expect((await page.request.get("/api/v1/keys", as)).status()).toBe(200);
});
