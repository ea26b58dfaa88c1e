import { test, expect, Page } from "./fixtures";
import { freshEmail, PASSWORD, signUp } from "./helpers";
import { PASSKEY_ORIGIN } from "../playwright.config";

/** Gives the page's browser Chromium's virtual authenticator (CDP WebAuthn domain): a
 * platform authenticator with resident keys and user verification, answering at once. */
async function virtualAuthenticator(page: Page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    credentials: async () => (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials,
  };
}

/** Opens a page at the passkey origin and waits until the app has hydrated it. */
async function openAt(page: Page, path: string) {
  await page.goto(PASSKEY_ORIGIN + path);
  await expect(page.locator("body[data-hydrated]")).toBeAttached();
}

async function signOutHere(page: Page) {
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await expect(page.getByRole("link", { name: "Sign in" })).toBeVisible();
}

test("passkeys: register one, sign in with it alone, use it after the password, remove it", async ({ page, browser }) => {
  const email = freshEmail("pk");
  await signUp(page, email, "Pia");
  const authenticator = await virtualAuthenticator(page);

  // At the passkey origin, with the password.
  await openAt(page, "/sign-in");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await expect(page.getByRole("heading", { name: "Welcome, Pia" })).toBeVisible();
  const other = await (await browser.newContext()).newPage();
  await openAt(other, "/sign-in");
  await other.getByLabel("Email").fill(email);
  await other.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await other.getByRole("button", { name: "Sign in", exact: true }).click();
  await expect(other.getByRole("heading", { name: "Welcome, Pia" })).toBeVisible();

  // Register: a name and the password, then the authenticator answers.
  await openAt(page, "/profile");
  const card = page.getByRole("region", { name: "Passkeys" });
  await expect(card).toContainText("No passkeys yet.");
  await card.getByLabel("Passkey name").fill("Laptop");
  await card.getByLabel("Current password", { exact: true }).fill("not the password");
  await card.getByRole("button", { name: "Add a passkey" }).click();
  await expect(card.getByRole("alert")).toHaveText("the current password is not right");
  await card.getByLabel("Current password", { exact: true }).fill(PASSWORD);
  await card.getByRole("button", { name: "Add a passkey" }).click();
  await expect(card.getByRole("status")).toContainText('Passkey "Laptop" added');
  await expect(card.getByRole("row", { name: /Laptop/ })).toBeVisible();
  const stored = await authenticator.credentials();
  expect(stored).toHaveLength(1);
  expect(stored[0].isResidentCredential).toBe(true);
  // Adding a factor signed the other browser out.
  await other.reload();
  await expect(other.getByRole("link", { name: "Sign in" })).toBeVisible();

  // Passwordless: no email, no password.
  await signOutHere(page);
  await openAt(page, "/sign-in");
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await expect(page.getByRole("heading", { name: "Welcome, Pia" })).toBeVisible();

  // The password now leads to the second step, which the passkey completes.
  await signOutHere(page);
  await openAt(page, "/sign-in");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await expect(page.getByRole("heading", { name: "Two-factor authentication" })).toBeVisible();
  await page.getByRole("button", { name: "Use a passkey" }).click();
  await expect(page.getByRole("heading", { name: "Welcome, Pia" })).toBeVisible();

  // The profile shows when it was last used; removing it needs the password.
  await openAt(page, "/profile");
  const row = card.getByRole("row", { name: /Laptop/ });
  await expect(row).not.toContainText("never");
  await card.getByLabel("Current password to remove Laptop").fill(PASSWORD);
  await card.getByRole("button", { name: "Remove passkey Laptop" }).click();
  await expect(card.getByRole("status")).toContainText("The passkey was removed");
  await expect(card).toContainText("No passkeys yet.");

  // The activity log names each step.
  await page.reload();
  const activity = page.getByRole("table", { name: "Your activity" });
  for (const action of ["user.passkey_added", "user.passkey_removed", "user.signed_in"]) {
    await expect(activity.getByText(action, { exact: true }).first()).toBeVisible();
  }
});
