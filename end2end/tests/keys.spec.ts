import { test, expect, Page } from "./fixtures";
import { freshEmail, signUp, open, openCreateKeyForm } from "./helpers";

/** Creates a key in the console and returns the secret from the reveal-once panel. */
async function createKey(page: Page, name: string, access = "admin", ipAllowlist = "") {
  await openCreateKeyForm(page);
  const form = page.getByRole("region", { name: "Create an API key" });
  await form.getByLabel("Name").fill(name);
  await form.getByLabel("Access", { exact: true }).selectOption(access);
  if (ipAllowlist) await form.getByLabel("IP allow-list").fill(ipAllowlist);
  await form.getByRole("button", { name: "Create" }).click();
  const reveal = page.getByRole("region", { name: "New API key" });
  await expect(reveal).toBeVisible();
  const secret = await reveal.getByRole("textbox", { name: "New API key" }).inputValue();
  expect(secret).toMatch(/^kw_live_[0-9A-Za-z]{38}$/);
  await reveal.getByRole("button", { name: "I have stored it" }).click();
  await expect(reveal).toHaveCount(0);
  await expect(page.getByRole("row", { name: new RegExp(name) })).toBeVisible();
  return secret;
}

async function callApi(page: Page, key: string) {
  return page.request.get("/api/v1/me", { headers: { Authorization: `Bearer ${key}` } });
}

/** The id of the key that answers `/api/v1/me` for `key` (fails unless it answers 200). */
async function answeringKeyId(page: Page, key: string): Promise<string> {
  const res = await callApi(page, key);
  expect(res.status()).toBe(200);
  return (await res.json()).key_id;
}

/** The key ids the list links to for rows named `name`. */
async function listedKeyIds(page: Page, name: string): Promise<string[]> {
  const links = page.getByRole("row", { name: new RegExp(name) }).getByRole("link", { name });
  const hrefs = await links.evaluateAll((as) => as.map((a) => a.getAttribute("href") ?? ""));
  return hrefs.map((h) => h.split("/").pop() ?? "");
}

test.beforeEach(async ({ page }) => {
  await signUp(page, freshEmail("keys"), "Kim");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "API keys" }).click();
  await expect(page.getByRole("heading", { name: "API keys" })).toBeVisible();
});

test("a new key is revealed once, then never shown again", async ({ page }) => {
  const secret = await createKey(page, "ci pipeline");
  expect(await page.content()).not.toContain(secret);
  await expect(page.getByRole("row", { name: /ci pipeline/ }).getByText(secret.slice(0, 12) + "…")).toBeVisible();
  await open(page, "/keys");
  await expect(page.getByRole("row", { name: /ci pipeline/ })).toBeVisible();
  expect(await page.content()).not.toContain(secret);
  // The key that answers is the one the console lists, not merely some valid key.
  expect(await listedKeyIds(page, "ci pipeline")).toEqual([await answeringKeyId(page, secret)]);
});

test("a disabled key is refused by the API", async ({ page }) => {
  const secret = await createKey(page, "billing");
  expect((await callApi(page, secret)).status()).toBe(200);
  await page.getByRole("button", { name: "Disable billing" }).click();
  await expect(page.getByRole("row", { name: /billing/ }).getByText("disabled")).toBeVisible();
  const res = await callApi(page, secret);
  expect(res.status()).toBe(401);
  expect((await res.json()).error.code).toBe("key_disabled");
});

test("rolling with a grace period keeps old and new keys working", async ({ page }) => {
  const old = await createKey(page, "deploy bot");
  const row = page.getByRole("row", { name: /deploy bot/ }).first();
  await row.getByRole("button", { name: "Roll" }).click();
  await row.getByLabel("Old key keeps working for").selectOption("3600");
  await row.getByLabel("New key expires").selectOption("30");
  await row.getByRole("button", { name: "Roll key" }).click();
  const reveal = page.getByRole("region", { name: "New API key" });
  const fresh = await reveal.getByRole("textbox", { name: "New API key" }).inputValue();
  expect(fresh).not.toBe(old);
  const oldId = await answeringKeyId(page, old);
  const freshId = await answeringKeyId(page, fresh);
  expect(freshId).not.toBe(oldId);
  await reveal.getByRole("button", { name: "I have stored it" }).click();
  await expect(page.getByRole("row", { name: /deploy bot/ })).toHaveCount(2);
  // Newest first: the successor, then the key it replaced.
  expect(await listedKeyIds(page, "deploy bot")).toEqual([freshId, oldId]);
  // The old key had no expiry; its successor was given 30 days.
  const successor = await page.request.get(`/api/v1/keys/${freshId}`, { headers: { Authorization: `Bearer ${fresh}` } });
  expect(successor.status()).toBe(200);
  const days = (Date.parse((await successor.json()).expires_at) - Date.now()) / 86_400_000;
  expect(days).toBeGreaterThan(29.9);
  expect(days).toBeLessThanOrEqual(30);
});

test("revocation asks for confirmation and is final", async ({ page }) => {
  const secret = await createKey(page, "old integration");
  const row = page.getByRole("row", { name: /old integration/ });
  await row.getByRole("button", { name: "Revoke" }).click();
  await row.getByRole("button", { name: "Confirm revoke" }).click();
  await expect(row.getByText("revoked")).toBeVisible();
  await expect(row.getByRole("button", { name: "Enable" })).toHaveCount(0);
  const res = await callApi(page, secret);
  expect((await res.json()).error.code).toBe("key_revoked");
});

test("bulk disable three keys, each result reported", async ({ page }) => {
  const names = ["svc one", "svc two", "svc three"];
  const secrets: string[] = [];
  for (const name of names) secrets.push(await createKey(page, name));
  for (const name of names) await page.getByRole("checkbox", { name: `Select ${name}` }).check();
  const bulk = page.getByRole("group", { name: "Bulk actions" });
  await expect(bulk.getByText("3 selected")).toBeVisible();
  await bulk.getByRole("button", { name: "Disable selected" }).click();
  const results = page.getByRole("status", { name: "Bulk results" });
  await expect(results.getByRole("listitem")).toHaveCount(3);
  await expect(results.getByRole("listitem").filter({ hasText: "disabled" })).toHaveCount(3);
  for (const name of names) {
    await expect(page.getByRole("row", { name: new RegExp(name) }).getByText("disabled")).toBeVisible();
  }
  for (const secret of secrets) {
    const res = await callApi(page, secret);
    expect((await res.json()).error.code).toBe("key_disabled");
  }
});

test("an IP allow-list refuses calls from other addresses", async ({ page }) => {
  // The browser and the test call from 127.0.0.1: outside 10.0.0.0/8, inside 127.0.0.0/8.
  const fenced = await createKey(page, "office only", "admin", "10.0.0.0/8, 2001:db8::/32");
  const res = await callApi(page, fenced);
  expect(res.status()).toBe(403);
  expect((await res.json()).error.code).toBe("ip_not_allowed");
  const local = await createKey(page, "loopback", "admin", "127.0.0.0/8");
  expect((await callApi(page, local)).status()).toBe(200);
});
