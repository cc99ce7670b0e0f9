/*
 * The portal's service worker: shows careloop's Web Push notifications.
 *
 * The payload (careloop.outreach.channels.push) is JSON: {title, body, tag, url}. It is
 * generic by construction ("You have a new secure message from ..."): the message
 * itself is read in the portal after sign-in. `tag` is the outbox message id, so a
 * notification sent again after a crash replaces the first instead of stacking.
 * A click opens (or focuses) the portal page named by `url`, same origin only.
 *
 * Serve it from /portal/ (issue 8) so its scope covers the portal.
 */
"use strict";

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (error) {
    data = {};
  }
  const title = typeof data.title === "string" && data.title ? data.title : "New message";
  const options = {
    body: typeof data.body === "string" ? data.body : "",
    tag: typeof data.tag === "string" ? data.tag : undefined,
    data: { url: typeof data.url === "string" ? data.url : "/portal/" },
  };
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = new URL(event.notification.data.url || "/portal/", self.location.origin);
  if (target.origin !== self.location.origin) {
    return;
  }
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      for (const client of windows) {
        if (client.url === target.href && "focus" in client) {
          return client.focus();
        }
      }
      return self.clients.openWindow(target.href);
    }),
  );
});
