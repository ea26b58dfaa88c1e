import { test, expect } from "./fixtures";
import { freshEmail, open, PASSWORD, signIn, signUp, waitForMail, openCreateKeyForm } from "./helpers";

const NEW_PASSWORD = "another long e2e passphrase";

test("change the display name, the password (the other session ends) and the email from the profile", async ({ page, browser }) => {
  const email = freshEmail("pro");
  await signUp(page, email, "Pia");
  // A second session of the same account, elsewhere.
  const other = await (await browser.newContext()).newPage();
  await signIn(other, email, PASSWORD);
  await expect(other.getByRole("heading", { name: "Welcome, Pia" })).toBeVisible();

  await page.getByRole("link", { name: "Pia" }).click();
  await expect(page.getByRole("heading", { name: "Your profile" })).toBeVisible();
  const profile = page.getByRole("region", { name: "Profile" });
  await profile.getByLabel("Display name").fill("Pia Park");
  await profile.getByRole("button", { name: "Save name" }).click();
  await expect(profile.getByRole("status")).toHaveText("Saved: Pia Park");
  await expect(page.getByRole("link", { name: "Pia Park" })).toBeVisible();

  // Password: a wrong current one is refused readably; the right one ends the other session.
  const pw = page.getByRole("region", { name: "Change password" });
  await pw.getByLabel("Current password").fill("not my password");
  await pw.getByLabel("New password").fill(NEW_PASSWORD);
  await pw.getByRole("button", { name: "Change password" }).click();
  await expect(pw.getByRole("alert")).toHaveText("the current password is not right");
  await pw.getByLabel("Current password").fill(PASSWORD);
  await pw.getByRole("button", { name: "Change password" }).click();
  await expect(pw.getByRole("status")).toHaveText("Password changed. Your other sessions were signed out.");
  await other.reload();
  await expect(other.getByRole("link", { name: "Sign in" })).toBeVisible();

  // Email: a link goes to the new address; opening it makes it the one to sign in with.
  const newEmail = freshEmail("pro-new");
  const em = page.getByRole("region", { name: "Change email" });
  await em.getByLabel("New email").fill(newEmail);
  await em.getByLabel("Current password").fill(NEW_PASSWORD);
  await em.getByRole("button", { name: "Send confirmation link" }).click();
  await expect(em.getByRole("status")).toHaveText("Check the new address for a confirmation link.");
  await waitForMail(email, "asked to change its address");
  const mail = await waitForMail(newEmail, "Confirm that this is the new address");
  const link = mail.match(/https?:\/\/\S+\/confirm-email\?token=\S+/)![0];
  await open(page, link);
  await page.getByRole("button", { name: "Confirm new email address" }).click();
  await expect(page.getByRole("status")).toHaveText(`Your address is now ${newEmail}. Use it to sign in.`);

  // Signed out, the new address and the new password sign in.
  await page.getByRole("button", { name: "Sign out" }).click();
  await signIn(page, newEmail, NEW_PASSWORD);
  await expect(page.getByRole("heading", { name: "Welcome, Pia Park" })).toBeVisible();
});

test("the home dashboard shows my keys with their usage against the limit, and those expiring soon", async ({ page }) => {
  await signUp(page, freshEmail("dash"), "Dana");
  await open(page, "/keys");
  await openCreateKeyForm(page);
  const form = page.getByRole("region", { name: "Create an API key" });
  await form.getByLabel("Name").fill("short-lived");
  await form.getByLabel("Expires in (days)").fill("7");
  await form.getByRole("button", { name: "Create" }).click();
  const reveal = page.getByRole("region", { name: "New API key" });
  const key = await reveal.getByRole("textbox", { name: "New API key" }).inputValue();
  await reveal.getByRole("button", { name: "I have stored it" }).click();
  for (let i = 0; i < 2; i++) {
    expect((await page.request.get("/api/v1/me", { headers: { Authorization: `Bearer ${key}` } })).status()).toBe(200);
  }
  // The usage log is written off the request path: reload until the dashboard counts both.
  await expect(async () => {
    await open(page, "/");
    const row = page.getByRole("table", { name: "Your keys and their usage" }).getByRole("row", { name: /short-lived/ });
    await expect(row).toContainText(/(^|\D)2 \/ \d+ per (hour|minute|day)/, { timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  await expect(page.getByRole("region", { name: "Expiring soon" }).getByRole("link", { name: "short-lived" })).toBeVisible();
  await expect(page.getByRole("region", { name: "Recent activity" }).getByRole("link", { name: "0 unread notifications" })).toBeVisible();
});

test("delete my account: re-authentication, then signed out for good", async ({ page, browser }) => {
  const email = freshEmail("leaver");
  await signUp(page, email, "Leaver");
  // Signed in elsewhere too: that session ends with the account.
  const elsewhere = await browser.newContext();
  const other = await elsewhere.newPage();
  await signIn(other, email, PASSWORD);
  await expect(other.getByRole("heading", { name: "Welcome, Leaver" })).toBeVisible();
  await open(page, "/profile");
  const zone = page.getByRole("region", { name: "Delete account" });
  await zone.getByLabel("Current password").fill("not my password at all");
  await zone.getByRole("button", { name: "Delete my account" }).click();
  await expect(zone.getByRole("alert")).toHaveText("the current password is not right");
  await zone.getByLabel("Current password").fill(PASSWORD);
  await zone.getByRole("button", { name: "Delete my account" }).click();
  await expect(page.getByRole("heading", { name: "Sign in to Keyward" })).toBeVisible();
  await signIn(page, email, PASSWORD);
  await expect(page.getByRole("alert")).toHaveText("invalid email or password");
  await open(other, "/profile");
  await expect(other.getByRole("heading", { name: "Sign in to Keyward" })).toBeVisible();
  await elsewhere.close();
});
