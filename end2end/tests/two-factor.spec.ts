import { createHmac } from "node:crypto";
import { test, expect, Page } from "./fixtures";
import { freshEmail, open, PASSWORD, signIn, signUp, waitForMail } from "./helpers";
import { ADMIN_EMAIL, ADMIN_PASSWORD } from "../playwright.config";

/** RFC 4648 base32 (no padding) to bytes. */
function base32(text: string): Buffer {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of text.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** The code an authenticator app shows (RFC 6238: SHA-1, 30 s, 6 digits), `ahead` steps on. */
function totp(secret: string, ahead = 0): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30_000) + ahead));
  const h = createHmac("sha1", base32(secret)).update(counter).digest();
  const o = h[19] & 0x0f;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1_000_000).padStart(6, "0");
}

/** Sets up the authenticator app in the "Two-factor authentication" card of the page; returns
 * the secret and the recovery codes shown once. */
async function enrol(page: Page): Promise<{ secret: string; codes: string[] }> {
  const card = page.getByRole("region", { name: "Two-factor authentication" });
  await card.getByLabel("Current password").fill(PASSWORD);
  await card.getByRole("button", { name: "Set up authenticator app" }).click();
  await expect(card.getByRole("img", { name: /QR code/ })).toBeVisible();
  const secret = (await card.getByLabel("Secret").textContent())!.trim();
  expect(secret).toMatch(/^[A-Z2-7]{32}$/);
  await card.getByLabel("Code from the app").fill(totp(secret));
  await card.getByRole("button", { name: "Turn on" }).click();
  await expect(card.getByRole("status").first()).toContainText("Two-factor authentication is on");
  const list = card.getByRole("list", { name: "Recovery codes" });
  await expect(list.getByRole("listitem")).toHaveCount(10);
  const codes = (await list.getByRole("listitem").allTextContents()).map((c) => c.trim());
  await expect(card).toContainText("Authenticator app: on");
  return { secret, codes };
}

test("TOTP: enrol on the profile with a computed code, then sign in with a code or a recovery code", async ({ page, browser }) => {
  const email = freshEmail("totp");
  await signUp(page, email, "Tia");
  const other = await (await browser.newContext()).newPage();
  await signIn(other, email, PASSWORD);
  await expect(other.getByRole("heading", { name: "Welcome, Tia" })).toBeVisible();

  await open(page, "/profile");
  const { secret, codes } = await enrol(page);
  // Turning it on signed the other browser out.
  await other.reload();
  await expect(other.getByRole("link", { name: "Sign in" })).toBeVisible();

  // Signed out, the password leads to a second step; a code from the app completes it (the
  // next one: the set-up spent the current one).
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await expect(page.getByRole("link", { name: "Sign in" })).toBeVisible();
  await signIn(page, email, PASSWORD);
  await expect(page.getByRole("heading", { name: "Two-factor authentication" })).toBeVisible();
  await page.getByLabel("Authentication code").fill("000000" === totp(secret, 1) ? "111111" : "000000");
  await page.getByRole("button", { name: "Verify" }).click();
  await expect(page.getByRole("alert")).toContainText("not right");
  await page.getByLabel("Authentication code").fill(totp(secret, 1));
  await page.getByRole("button", { name: "Verify" }).click();
  await expect(page.getByRole("heading", { name: "Welcome, Tia" })).toBeVisible();

  // A recovery code instead, once; its owner is told by email.
  const lost = await (await browser.newContext()).newPage();
  await signIn(lost, email, PASSWORD);
  await expect(lost.getByRole("heading", { name: "Two-factor authentication" })).toBeVisible();
  await lost.getByLabel("Authentication code").fill(codes[0]);
  await lost.getByRole("button", { name: "Verify" }).click();
  await expect(lost.getByRole("heading", { name: "Welcome, Tia" })).toBeVisible();
  const told = await waitForMail(email, "A recovery code was just used");
  expect(told.replace(/\s+/g, " ")).toContain("9 recovery code(s) are left");
  await open(lost, "/profile");
  await expect(lost.getByRole("region", { name: "Two-factor authentication" })).toContainText("Recovery codes left: 9.");

  // Phone and codes both lost: an administrator turns it off; the password alone works again.
  const admin = await (await browser.newContext()).newPage();
  await signIn(admin, ADMIN_EMAIL, ADMIN_PASSWORD);
  await expect(admin.getByRole("heading", { name: "Welcome, admin" })).toBeVisible();
  await open(admin, "/admin/users");
  await admin.getByRole("search", { name: "Filter users" }).getByLabel("Search").fill(email);
  const users = admin.getByRole("table", { name: "Users" });
  const tia = users.getByRole("row", { name: new RegExp(`${email}.*Tia.*active`) });
  await expect(tia.getByRole("cell", { name: "on", exact: true })).toBeVisible();
  await users.getByRole("button", { name: `Turn off two-factor authentication for ${email}` }).click();
  await expect(admin.getByRole("status")).toContainText("Two-factor authentication turned off");
  await expect(tia.getByRole("cell", { name: "off", exact: true })).toBeVisible();
  await expect(users.getByRole("button", { name: `Turn off two-factor authentication for ${email}` })).toHaveCount(0);
  const back = await (await browser.newContext()).newPage();
  await signIn(back, email, PASSWORD);
  await expect(back.getByRole("heading", { name: "Welcome, Tia" })).toBeVisible();
});

test("an organization requiring 2FA sends a member without it to a guided set-up first", async ({ page }) => {
  const email = freshEmail("req");
  await signUp(page, email, "Rae");
  await open(page, "/settings");
  const policies = page.getByRole("region", { name: "Policies" });
  await policies.getByLabel(/Require two-factor authentication/).check();
  await policies.getByRole("button", { name: "Save policies" }).click();
  // The form reloads after the save and is refused (the admin now needs a factor themselves):
  // the refusal says why, and the save's outcome stays on the page.
  await expect(policies.getByRole("alert")).toContainText("requires two-factor authentication");
  await expect(policies.getByRole("status")).toHaveText("Policies saved.");

  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await expect(page.getByRole("link", { name: "Sign in" })).toBeVisible();
  await signIn(page, email, PASSWORD);
  await expect(page.getByRole("heading", { name: "Set up two-factor authentication" })).toBeVisible();
  await expect(page.getByRole("alert")).toContainText("Your organization requires two-factor authentication");
  await expect(page.getByRole("region", { name: "Two-factor authentication" })).toContainText("Required by:");
  // Anything else is refused until then.
  await open(page, "/profile");
  await expect(page.getByRole("region", { name: "Sessions" })).toContainText("requires two-factor authentication");
  await open(page, "/two-factor");
  await enrol(page);
  await expect(page.getByRole("alert")).toHaveCount(0);
  await page.getByRole("link", { name: "Continue to the console" }).click();
  await expect(page.getByRole("heading", { name: "Welcome, Rae" })).toBeVisible();
});
