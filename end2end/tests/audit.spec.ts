import { test, expect } from "./fixtures";
import { createReadOnlyKey, freshEmail, open, signUp } from "./helpers";

test("the audit log shows who did what, filtered by action and actor, each entry chained", async ({ page }) => {
  const email = freshEmail("aud");
  await signUp(page, email, "Audra");
  await createReadOnlyKey(page, "audited key");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Audit log" }).click();
  await expect(page.getByRole("heading", { name: "Audit log" })).toBeVisible();
  const log = page.getByRole("table", { name: "Audit log" });
  const filters = page.getByRole("search", { name: "Filter the audit log" });
  await filters.getByLabel("Action").fill("key.");
  await filters.getByLabel("Action").press("Enter");
  await expect(log.getByRole("row")).toHaveCount(2); // the header and the key's creation
  const created = log.getByRole("row", { name: /key\.created/ });
  await expect(created.getByRole("cell", { name: email })).toBeVisible();
  // Chained within a second or so: its place replaces "pending" on the next look.
  await expect(async () => {
    await open(page, "/audit");
    await expect(created.getByRole("cell", { name: /^#\d+$/ })).toBeVisible({ timeout: 2000 });
  }).toPass({ timeout: 20_000 });
  await filters.getByLabel("Actor").fill(email.toUpperCase());
  await filters.getByLabel("Actor").press("Enter");
  await expect(created).toBeVisible();
  // Another actor: nothing.
  await filters.getByLabel("Actor").fill("nobody@example.org");
  await filters.getByLabel("Actor").press("Enter");
  await expect(page.getByText("0 entries")).toBeVisible();
});
