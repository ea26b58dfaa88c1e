import { test, expect } from "./fixtures";
import { createReadOnlyKey as createKey, freshEmail, open, signUp, waitForMail } from "./helpers";

test("a key at 80 % of its limit: the email arrives over SMTP and the bell shows it", async ({ page }) => {
  const email = freshEmail("notify");
  await signUp(page, email, "Nora");
  const key = await createKey(page, "busy key");
  await page.getByRole("table", { name: "API keys" }).getByRole("link", { name: "busy key" }).click();
  const limit = page.getByRole("region", { name: "Rate limit" });
  await limit.getByLabel("Own limit (empty: follow the plan)").fill("5");
  await limit.getByLabel("Own limit per").selectOption("3600");
  await limit.getByRole("button", { name: "Save limit" }).click();
  await expect(limit.getByRole("definition")).toContainText("5 per hour (the key's own limit)");

  const call = async () => {
    const res = await page.request.get("/api/v1/me", { headers: { Authorization: `Bearer ${key}` } });
    expect(res.status()).toBe(200);
  };
  // 60 %: nobody is told yet.
  for (let i = 0; i < 3; i++) await call();
  await expect(waitForMail(email, "of its rate limit", 2000)).rejects.toThrow(/no email/);
  // The fourth request reaches 80 %.
  await call();
  const mail = await waitForMail(email, "used 80 % of its rate limit");
  expect(mail).toContain("busy key");
  expect(mail).toMatch(/\/keys\/org_[0-9A-Za-z]+\/key_[0-9A-Za-z]+/);

  await open(page, "/");
  const bell = page.getByRole("link", { name: "Notifications (1 unread)" });
  await expect(bell).toBeVisible();
  await bell.click();
  await expect(page.getByRole("heading", { name: "Notifications", level: 1 })).toBeVisible();
  const list = page.getByRole("list", { name: "Notifications" });
  await expect(list.getByRole("listitem")).toHaveCount(1);
  await expect(list).toContainText("used 80 % of its rate limit");
  await list.getByRole("button", { name: /Mark .* as read/ }).click();
  await expect(page.getByRole("link", { name: "Notifications", exact: true })).toBeVisible();
});
