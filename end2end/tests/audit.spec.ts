import { readFileSync } from "node:fs";
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
  // The reload cleared the filters: action and actor together now (the actor in capitals:
  // addresses match whatever their case).
  await filters.getByLabel("Action").fill("key.");
  await filters.getByLabel("Action").press("Enter");
  await filters.getByLabel("Actor").fill(email.toUpperCase());
  await filters.getByLabel("Actor").press("Enter");
  await expect(page.getByText("1 entry", { exact: true })).toBeVisible();
  await expect(log.getByRole("row")).toHaveCount(2);
  await expect(created).toBeVisible();
  // The entry in full: who, from where, with which browser, and its request.
  await created.getByRole("button", { name: /^Details of evt_/ }).click();
  const detail = page.getByRole("region", { name: "Audit entry" });
  await expect(detail).toContainText("key.created");
  await expect(detail).toContainText(email);
  await expect(detail).toContainText("Mozilla");
  await expect(detail.getByText(/^[0-9a-f]{16}$/)).toBeVisible();
  await detail.getByRole("button", { name: "Close" }).click();
  await expect(detail).toHaveCount(0);
  // The export holds what the filters show: the header and the one entry.
  const downloading = page.waitForEvent("download");
  await filters.getByRole("link", { name: "Export CSV" }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toMatch(/^audit-org_.*\.csv$/);
  const lines = readFileSync((await download.path())!, "utf8").trim().split("\n");
  expect(lines[0]).toBe("seq,event_id,at,action,actor,actor_email,impersonator,impersonator_email,organization_id,target,target_email,ip,user_agent,request_id,before,after,data");
  expect(lines).toHaveLength(2);
  expect(lines[1]).toContain("key.created");
  const downloadingJson = page.waitForEvent("download");
  await filters.getByRole("link", { name: "Export JSON" }).click();
  const json = JSON.parse(readFileSync((await (await downloadingJson).path())!, "utf8"));
  expect(json.map((e: { action: string }) => e.action)).toEqual(["key.created"]);
  // Another action of the same actor: nothing, on the page and in the export.
  await filters.getByLabel("Action").fill("key.revoked");
  await filters.getByLabel("Action").press("Enter");
  await expect(page.getByText("0 entries", { exact: true })).toBeVisible();
  const downloadingNone = page.waitForEvent("download");
  await filters.getByRole("link", { name: "Export CSV" }).click();
  const none = readFileSync((await (await downloadingNone).path())!, "utf8").trim().split("\n");
  expect(none).toHaveLength(1); // the header only
  // Another actor: nothing.
  await filters.getByLabel("Action").fill("key.");
  await filters.getByLabel("Action").press("Enter");
  await expect(page.getByText("1 entry", { exact: true })).toBeVisible();
  await filters.getByLabel("Actor").fill("nobody@example.org");
  await filters.getByLabel("Actor").press("Enter");
  await expect(page.getByText("0 entries", { exact: true })).toBeVisible();
});
