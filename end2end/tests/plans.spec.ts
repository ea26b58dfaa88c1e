import { test, expect, Page } from "./fixtures";
import { ADMIN_EMAIL, ADMIN_PASSWORD } from "../playwright.config";
import { freshEmail, open, signIn, signUp, openCreateKeyForm } from "./helpers";

async function me(page: Page, key: string) {
  return (await page.request.get("/api/v1/me", { headers: { Authorization: `Bearer ${key}` } })).status();
}

test("an admin creates a plan, puts a key on it, and a plan change applies at once", async ({ page }) => {
  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await expect(page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Plans" })).toBeVisible();
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Plans" }).click();
  await expect(page.getByRole("heading", { name: "Plans", level: 1 })).toBeVisible();
  const plans = page.getByRole("table", { name: "Plans" });
  await expect(plans.getByRole("row", { name: /free \(default\).*100 per hour/ })).toBeVisible();

  // Bad input: a readable message, nothing created.
  const form = page.getByRole("region", { name: "New plan" });
  const name = `e2e-${Date.now()}`;
  await form.getByLabel("Name", { exact: true }).fill(name);
  await form.getByLabel("Requests", { exact: true }).fill("2000000000");
  await form.getByRole("button", { name: "Create plan" }).click();
  await expect(form.getByRole("alert")).toContainText("from 1 to 1000000000");
  await expect(plans.getByRole("row", { name: new RegExp(name) })).toHaveCount(0);

  await form.getByLabel("Requests", { exact: true }).fill("2");
  await form.getByLabel("Per", { exact: true }).selectOption("3600");
  await form.getByRole("button", { name: "Create plan" }).click();
  await expect(plans.getByRole("row", { name: new RegExp(`${name}.*2 per hour`) })).toBeVisible();

  // A key on the plan.
  await open(page, "/keys");
  await openCreateKeyForm(page);
  const create = page.getByRole("region", { name: "Create an API key" });
  await create.getByLabel("Name").fill("planned key");
  await create.getByLabel("Access", { exact: true }).selectOption("read_only");
  await create.getByRole("button", { name: "Create" }).click();
  const reveal = page.getByRole("region", { name: "New API key" });
  const key = await reveal.getByRole("textbox", { name: "New API key" }).inputValue();
  await reveal.getByRole("button", { name: "I have stored it" }).click();
  await page.getByRole("table", { name: "API keys" }).getByRole("link", { name: "planned key" }).click();
  const limit = page.getByRole("region", { name: "Rate limit" });
  await expect(limit.getByRole("definition")).toContainText("100 per hour (plan free)");
  await limit.getByLabel("Plan", { exact: true }).selectOption({ label: `${name} — 2 per hour` });
  await limit.getByRole("button", { name: "Save limit" }).click();
  await expect(limit.getByRole("status")).toHaveText("Limit saved.");
  await expect(limit.getByRole("definition")).toContainText(`2 per hour (plan ${name})`);

  expect(await me(page, key)).toBe(200);
  expect(await me(page, key)).toBe(200);
  const refused = await page.request.get("/api/v1/me", { headers: { Authorization: `Bearer ${key}` } });
  expect(refused.status()).toBe(429);
  expect(refused.headers()["retry-after"]).toBeTruthy();
  expect((await refused.json()).error.code).toBe("rate_limited");

  // Raise the plan: the key gets one more request at once.
  await open(page, "/plans");
  await page.getByRole("button", { name: `Edit plan ${name}` }).click();
  await plans.getByLabel("Requests", { exact: true }).fill("3");
  await page.getByRole("button", { name: "Save plan" }).click();
  const raised = plans.getByRole("row", { name: new RegExp(`${name}.*3 per hour`) });
  await expect(raised).toBeVisible();
  // A plan administrator sees how many keys are on each plan (the Keys column).
  await expect(raised.getByRole("cell").nth(2)).toHaveText("1");
  expect(await me(page, key)).toBe(200);
  expect(await me(page, key)).toBe(429);

  // In use: cannot be deleted, and the page says why.
  await page.getByRole("button", { name: `Delete plan ${name}` }).click();
  await expect(page.getByRole("alert")).toContainText("1 key(s) are on the plan");
});

test("a user without plans:write sees the plans but cannot change them", async ({ page }) => {
  await signUp(page, freshEmail("planless"), "Pat");
  await open(page, "/plans");
  const pro = page.getByRole("table", { name: "Plans" }).getByRole("row", { name: /pro.*10000 per hour/ });
  await expect(pro).toBeVisible();
  // How many keys each plan holds spans every organization: not for this user (the Keys column).
  await expect(pro.getByRole("cell").nth(2)).toHaveText("—");
  await expect(page.getByRole("region", { name: "New plan" })).toHaveCount(0);
  await expect(page.getByRole("button", { name: /Edit plan/ })).toHaveCount(0);
});
