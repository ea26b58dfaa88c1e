import { test, expect } from "./fixtures";
import { open } from "./helpers";

test("the API docs page lists every endpoint of the served OpenAPI document, without signing in", async ({ page }) => {
  const res = await page.request.get("/api/v1/openapi.json");
  expect(res.status()).toBe(200);
  const doc = await res.json();
  expect(doc.openapi).toBe("3.1.0");
  const operations: string[] = [];
  for (const [path, item] of Object.entries<Record<string, unknown>>(doc.paths)) {
    for (const method of Object.keys(item)) operations.push(`${method.toUpperCase()} ${path}`);
  }
  expect(operations.length).toBeGreaterThanOrEqual(17);

  await open(page, "/");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "API docs" }).click();
  await expect(page.getByRole("heading", { name: "API reference", level: 1 })).toBeVisible();
  const index = page.getByRole("navigation", { name: "Endpoints" });
  for (const op of operations) {
    await expect(page.getByRole("heading", { name: op, exact: true, level: 2 })).toBeVisible();
    await expect(index.getByRole("link", { name: op, exact: true })).toBeVisible();
  }

  // One endpoint in detail: permission, parameters, body schema, refusal codes, curl.
  const roll = page.getByRole("region", { name: "POST /api/v1/keys/{id}/roll" });
  await expect(roll.getByText("keys:write")).toBeVisible();
  await expect(roll.getByRole("table", { name: "Parameters of POST /api/v1/keys/{id}/roll" })).toContainText("id");
  await expect(roll.getByRole("table", { name: /Request body of POST \/api\/v1\/keys\/\{id\}\/roll/ })).toContainText("grace_seconds");
  await expect(roll.getByText("signature_replayed")).toBeVisible();
  await expect(roll.getByLabel("curl example for POST /api/v1/keys/{id}/roll", { exact: true })).toContainText("curl -X POST");
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"]);
  await roll.getByRole("button", { name: "Copy curl example for POST /api/v1/keys/{id}/roll" }).click();
  await expect(roll.getByRole("button", { name: "Copy curl example for POST /api/v1/keys/{id}/roll" })).toHaveText("Copied");
  // On the clipboard indeed, the example as shown.
  const shown = await roll.getByLabel("curl example for POST /api/v1/keys/{id}/roll", { exact: true }).textContent();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(shown);
});
