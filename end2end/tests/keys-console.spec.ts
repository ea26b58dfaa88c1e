import { test, expect, Page } from "./fixtures";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import { freshEmail, signUp, open, openCreateKeyForm, openKeyListPanel } from "./helpers";

type Created = { key: string; signingSecret: string };

/** Creates a key in the console; returns the secrets from the reveal-once panel. */
async function createKey(
  page: Page,
  name: string,
  opts: { access?: string; personal?: boolean; signed?: boolean } = {},
): Promise<Created> {
  const form = await openCreateKeyForm(page);
  await form.getByLabel("Name").fill(name);
  await form.getByLabel("Access", { exact: true }).selectOption(opts.access ?? "admin");
  if (opts.personal) await form.getByLabel(/Personal access token/).check();
  if (opts.signed) await form.getByLabel("Require signed requests").check();
  await form.getByRole("button", { name: "Create" }).click();
  const reveal = page.getByRole("region", { name: "New API key" });
  const key = await reveal.getByRole("textbox", { name: "New API key" }).inputValue();
  const signingSecret = await reveal.getByRole("textbox", { name: "Signing secret" }).inputValue();
  expect(signingSecret).toMatch(/^kwsig_[0-9a-f]{64}$/);
  await reveal.getByRole("button", { name: "I have stored it" }).click();
  await expect(reveal).toHaveCount(0);
  return { key, signingSecret };
}

const table = (page: Page) => page.getByRole("table", { name: "API keys" });

test.beforeEach(async ({ page }) => {
  await signUp(page, freshEmail("console"), "Cleo");
  await open(page, "/keys");
  await expect(page.getByRole("heading", { name: "API keys" })).toBeVisible();
});

test("export to JSON, then import the file back: each row reported, new keys work", async ({ page }) => {
  await createKey(page, "exported one", { access: "read_only" });
  await createKey(page, "exported two", { access: "basic" });

  await page.getByRole("button", { name: "Export JSON" }).click();
  const downloading = page.waitForEvent("download");
  await page.getByRole("link", { name: "Download keyward-keys.json" }).click();
  const file = await (await downloading).path();
  const exported = JSON.parse(fs.readFileSync(file, "utf8"));
  expect(exported).toHaveLength(2);
  expect(JSON.stringify(exported)).not.toMatch(/kw_live_[0-9A-Za-z]{38}/);

  const panel = await openKeyListPanel(page, "Import keys", "Import keys");
  await panel.getByLabel("File (JSON or CSV)").setInputFiles(file);
  await expect(panel.getByLabel("Keys to import")).toHaveValue(/exported one/);
  await panel.getByRole("button", { name: "Preview" }).click();
  const preview = panel.getByRole("table", { name: "Import preview" });
  await expect(preview.getByRole("row", { name: /would_issue/ })).toHaveCount(2);
  await expect(table(page).getByRole("row")).toHaveCount(3); // header + 2: nothing written yet

  await panel.getByRole("button", { name: "Import", exact: true }).click();
  await expect(panel.getByRole("status").filter({ hasText: "Import results: 2 of 2 rows ok" })).toBeVisible();
  const issued = panel.getByRole("textbox", { name: "Issued key" });
  await expect(issued).toHaveCount(2);
  const newKey = await issued.first().inputValue();
  const res = await page.request.get("/api/v1/me", { headers: { Authorization: `Bearer ${newKey}` } });
  expect(res.status()).toBe(200);
  await expect(table(page).getByRole("row", { name: /exported one/ })).toHaveCount(2);
  await expect(table(page).getByRole("row", { name: /exported two/ })).toHaveCount(2);
});

test("import a CSV from another system, with a bad row reported", async ({ page }) => {
  const panel = await openKeyListPanel(page, "Import keys", "Import keys");
  const legacy = `legacy_${Date.now()}_abcdefghijklmnop`;
  const csv = `name,key,category\nfrom legacy,${legacy},read_only\n,nameless_key_abcdefghijkl,basic\n`;
  await panel.getByLabel("File (JSON or CSV)").setInputFiles({ name: "legacy.csv", mimeType: "text/csv", buffer: Buffer.from(csv) });
  await expect(panel.getByLabel("Format")).toHaveValue("csv");
  await panel.getByRole("button", { name: "Preview" }).click();
  const preview = panel.getByRole("table", { name: "Import preview" });
  await expect(preview.getByRole("row", { name: /from legacy.*would_import/ })).toBeVisible();
  await expect(preview.getByRole("row", { name: /refused/ })).toContainText("name must be");
  await panel.getByRole("button", { name: "Import", exact: true }).click();
  await expect(panel.getByRole("status").filter({ hasText: "Import results: 1 of 2 rows ok" })).toBeVisible();
  const res = await page.request.get("/api/v1/me", { headers: { Authorization: `Bearer ${legacy}` } });
  expect(res.status()).toBe(200);
  expect((await res.json()).scopes.keys).toBe("read");
});

test("search, filter, sort and page through keys", async ({ page }) => {
  const { key: admin } = await createKey(page, "admin tool");
  // 27 more keys through the API, quicker than the form; made in reverse name order, so that
  // sorting by name differs from sorting by age either way.
  for (let i = 1; i <= 27; i++) {
    const res = await page.request.post("/api/v1/keys", {
      headers: { Authorization: `Bearer ${admin}` },
      data: { name: `svc ${String(28 - i).padStart(2, "0")}`, category: i % 2 ? "read_only" : "basic" },
    });
    expect(res.status()).toBe(201);
  }
  await open(page, "/keys");
  const pages = page.getByRole("navigation", { name: "Pages" });
  await expect(pages).toContainText("Page 1 of 2 · 28 keys");
  await expect(table(page).getByRole("row")).toHaveCount(26);
  await pages.getByRole("button", { name: "Next page" }).click();
  await expect(pages).toContainText("Page 2 of 2");
  await expect(table(page).getByRole("row")).toHaveCount(4);

  const filters = page.getByRole("search", { name: "Filter keys" });
  await filters.getByLabel("Sort").selectOption("name");
  await expect(pages).toContainText("Page 1 of 2");
  await expect(table(page).getByRole("row").nth(1)).toContainText("admin tool");
  await expect(table(page).getByRole("row").nth(2)).toContainText("svc 01");
  await expect(table(page).getByRole("row").nth(3)).toContainText("svc 02");
  await filters.getByLabel("Search").fill("svc 1");
  await expect(pages).toContainText("10 keys");
  await filters.getByLabel("Access level").selectOption("read_only");
  await expect(pages).toContainText("5 keys");
  await filters.getByLabel("Search").fill("");
  await filters.getByLabel("Status").selectOption("disabled");
  await expect(page.getByText("No keys match.")).toBeVisible();
});

test("the key page edits settings, acts on the key and shows its timeline", async ({ page }) => {
  const { key } = await createKey(page, "page key");
  await table(page).getByRole("link", { name: "page key" }).click();
  await expect(page.getByRole("heading", { name: "page key", level: 1 })).toBeVisible();

  const settings = page.getByRole("region", { name: "Settings" });
  await settings.getByLabel("Name").fill("renamed key");
  await settings.getByLabel("IP allow-list").fill("10.0.0.0/8");
  await settings.getByLabel("Reason (for the timeline)").fill("office only from now on");
  await settings.getByRole("button", { name: "Save changes" }).click();
  await expect(page.getByRole("heading", { name: "renamed key", level: 1 })).toBeVisible();
  const timeline = page.getByRole("list", { name: "Status history" });
  const edited = timeline.getByRole("listitem").filter({ hasText: "edited" });
  await expect(edited).toContainText("office only from now on");
  await expect(edited).toContainText("changed: name, ip_allowlist");
  let res = await page.request.get("/api/v1/me", { headers: { Authorization: `Bearer ${key}` } });
  expect((await res.json()).error.code).toBe("ip_not_allowed");

  // A bad value is refused with a readable message.
  await settings.getByLabel("IP allow-list").fill("not an address");
  await settings.getByRole("button", { name: "Save changes" }).click();
  await expect(settings.getByRole("alert")).toContainText("not an IP address");

  await page.getByRole("group", { name: "Key actions" }).getByRole("button", { name: "Disable renamed key" }).click();
  await expect(timeline.getByRole("listitem").filter({ hasText: "disabled" })).toBeVisible();
  await expect(timeline.getByRole("listitem")).toHaveCount(3); // created, edited, disabled
});

test("a personal access token is marked and filtered apart", async ({ page }) => {
  await createKey(page, "team key");
  const { key } = await createKey(page, "my laptop", { personal: true });
  await expect(table(page).getByRole("row", { name: /my laptop/ }).getByText("personal")).toBeVisible();
  await page.getByRole("search", { name: "Filter keys" }).getByLabel("Owner").selectOption("personal");
  await expect(table(page).getByRole("row")).toHaveCount(2);
  await expect(table(page).getByRole("row", { name: /my laptop/ })).toBeVisible();
  const res = await page.request.get("/api/v1/me", { headers: { Authorization: `Bearer ${key}` } });
  expect(res.status()).toBe(200);
});

test("a key that requires signatures refuses unsigned calls and accepts signed ones", async ({ page }) => {
  const { key, signingSecret } = await createKey(page, "signed key", { signed: true });
  let res = await page.request.get("/api/v1/me", { headers: { Authorization: `Bearer ${key}` } });
  expect(res.status()).toBe(401);
  expect((await res.json()).error.code).toBe("signature_missing");

  const t = Math.floor(Date.now() / 1000);
  const bodyHash = crypto.createHash("sha256").update("").digest("hex");
  const v1 = crypto.createHmac("sha256", signingSecret).update(`${t}.GET./api/v1/me.${bodyHash}`).digest("hex");
  const headers = { Authorization: `Bearer ${key}`, Signature: `t=${t},v1=${v1}` };
  res = await page.request.get("/api/v1/me", { headers });
  expect(res.status()).toBe(200);
  res = await page.request.get("/api/v1/me", { headers });
  expect((await res.json()).error.code).toBe("signature_replayed");
});
