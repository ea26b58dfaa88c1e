import { expect, Page } from "@playwright/test";

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

export async function signUp(page: Page, email: string, name: string) {
  await open(page, "/sign-up");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Display name").fill(name);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("heading", { name: `Welcome, ${name}` })).toBeVisible();
}

export async function signIn(page: Page, email: string, password: string) {
  await open(page, "/sign-in");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

export async function signOut(page: Page) {
  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByRole("heading", { name: "Sign in to Keyward" })).toBeVisible();
}

/** Creates a read-only key from the console's key list; returns its secret (shown once). */
export async function createReadOnlyKey(page: Page, name: string): Promise<string> {
  await open(page, "/keys");
  await page.getByRole("button", { name: "Create key" }).click();
  const form = page.getByRole("region", { name: "Create an API key" });
  await form.getByLabel("Name").fill(name);
  await form.getByLabel("Access", { exact: true }).selectOption("read_only");
  await form.getByRole("button", { name: "Create" }).click();
  const reveal = page.getByRole("region", { name: "New API key" });
  const key = await reveal.getByRole("textbox", { name: "New API key" }).inputValue();
  await reveal.getByRole("button", { name: "I have stored it" }).click();
  return key;
}
