import { expect, Page } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";
import { MAIL_DIR } from "../playwright.config";

/** A message as a mail client shows it: a quoted-printable body (which lettre picks for lines
 * longer than 76 characters, such as a long link) decoded. */
function readable(message: string): string {
  if (!/^Content-Transfer-Encoding: quoted-printable/im.test(message)) return message;
  const bytes = message
    .replace(/=\r?\n/g, "")
    .replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(bytes, "latin1").toString("utf8");
}

/** Whether the sink's envelope names `to` as a recipient (`RCPT TO:<…>` lines): a message
 * that merely mentions the address, such as the old address's notice naming the new one, is
 * not a message to it. */
function sentTo(text: string, to: string): boolean {
  const wanted = `<${to.toLowerCase()}>`;
  return (text.match(/^RCPT TO:.*$/gim) ?? []).some((line) => line.toLowerCase().includes(wanted));
}

/** Waits for an email to `to` whose text contains `needle` (read from the SMTP sink's
 * folder); returns its decoded text. */
export async function waitForMail(to: string, needle: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (fs.existsSync(MAIL_DIR)) {
      for (const name of fs.readdirSync(MAIL_DIR).filter((n) => n.endsWith(".eml"))) {
        const text = readable(fs.readFileSync(path.join(MAIL_DIR, name), "utf8"));
        if (sentTo(text, to) && text.includes(needle)) return text;
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no email to ${to} containing "${needle}" within ${timeoutMs} ms`);
}

/** Opens a page and waits until the WASM app has hydrated it. */
export async function open(page: Page, path: string) {
  await page.goto(path);
  await expect(page.locator("body[data-hydrated]")).toBeAttached();
}

let counter = 0;
/** A fresh, unique email for each journey. */
export function freshEmail(who: string) {
  counter += 1;
  return `${who}.${Date.now()}.${counter}@example.org`;
}

export const PASSWORD = "a long e2e passphrase";

/** Fills and sends the sign-up form; the page then asks to check the inbox. */
export async function requestSignUp(page: Page, email: string, name: string, password = PASSWORD) {
  await open(page, "/sign-up");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Display name").fill(name);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("status")).toContainText("Check your inbox");
}

/** The address-confirmation link emailed to `email` after a sign-up. */
export async function confirmationLink(email: string): Promise<string> {
  const mail = await waitForMail(email, "Confirm the address");
  const link = mail.match(/https?:\/\/\S+\/verify-email\?token=\S+/);
  expect(link, mail).not.toBeNull();
  return link![0];
}

/** Signs up, confirms the address through the emailed link, and lands signed in. */
export async function signUp(page: Page, email: string, name: string) {
  await requestSignUp(page, email, name);
  await open(page, await confirmationLink(email));
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Confirm and sign in" }).click();
  await expect(page.getByRole("heading", { name: `Welcome, ${name}` })).toBeVisible();
}

export async function signIn(page: Page, email: string, password: string) {
  await open(page, "/sign-in");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

export async function signOut(page: Page) {
  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByRole("heading", { name: "Sign in to Keyward" })).toBeVisible();
}

/** Creates a read-only key from the console's key list; returns its secret (shown once). */
export async function createReadOnlyKey(page: Page, name: string): Promise<string> {
  await open(page, "/keys");
  const form = await openCreateKeyForm(page);
  await form.getByLabel("Name").fill(name);
  await form.getByLabel("Access", { exact: true }).selectOption("read_only");
  await form.getByRole("button", { name: "Create" }).click();
  const reveal = page.getByRole("region", { name: "New API key" });
  const key = await reveal.getByRole("textbox", { name: "New API key" }).inputValue();
  await reveal.getByRole("button", { name: "I have stored it" }).click();
  return key;
}

/** Opens a panel of the key list that a button toggles. The list is a lazily loaded route: the
 * page can be hydrated a moment before its own chunk binds the button, so a click that came too
 * early is made again (only while the panel is still closed: the button toggles it). */
export async function openKeyListPanel(page: Page, button: string, region: string) {
  const panel = page.getByRole("region", { name: region });
  await expect(async () => {
    if (!(await panel.isVisible())) await page.getByRole("button", { name: button }).click();
    await expect(panel).toBeVisible({ timeout: 3000 });
  }).toPass({ timeout: 30_000 });
  return panel;
}

/** Opens the key list's "Create an API key" form (see [openKeyListPanel]). */
export async function openCreateKeyForm(page: Page) {
  return openKeyListPanel(page, "Create key", "Create an API key");
}
