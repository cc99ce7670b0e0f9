/*
 * The preference page's switch for Web Push in this browser (careloop.portal.views_push).
 *
 * Registers the portal's service worker (/portal/sw.js), then shows whether this
 * browser is subscribed and offers to turn notifications on or off. Turning on asks
 * the browser's permission, subscribes with the practice's VAPID public key and POSTs
 * the subscription's JSON; turning off unsubscribes and POSTs the endpoint. Every text
 * comes from the page's data attributes, already in the patient's language.
 */
"use strict";

(() => {
  const section = document.getElementById("push");
  const state = document.getElementById("push-state");
  const button = document.getElementById("push-toggle");
  if (!section || !section.dataset.key || !state || !button) {
    return;
  }
  const text = section.dataset;
  const token = section.querySelector("input[name=csrfmiddlewaretoken]");
  let registration = null;
  let subscription = null;

  const say = (message) => {
    state.textContent = message;
  };

  const show = (consented) => {
    const on = subscription !== null;
    let message = on ? text.textOn : text.textOff;
    if (on && consented === false) {
      message += " " + text.textNoConsent;
    }
    say(message);
    button.textContent = on ? text.labelOff : text.labelOn;
    button.hidden = false;
    button.disabled = false;
  };

  const applicationServerKey = (key) => {
    const padded = (key + "=".repeat((4 - (key.length % 4)) % 4))
      .replace(/-/g, "+")
      .replace(/_/g, "/");
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  };

  const post = async (url, body) => {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token ? token.value : "" },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(answer.error || text.textFailed);
    }
    return answer;
  };

  const turnOn = async () => {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      say(text.textBlocked);
      button.disabled = false;
      return;
    }
    subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: applicationServerKey(text.key),
    });
    try {
      const answer = await post(text.onUrl, { subscription: subscription.toJSON() });
      show(answer.consented);
    } catch (error) {
      // The server would not keep it: do not leave the browser subscribed for nothing.
      await subscription.unsubscribe().catch(() => undefined);
      subscription = null;
      show(null);
      say(error.message);
    }
  };

  const turnOff = async () => {
    const endpoint = subscription.endpoint;
    await subscription.unsubscribe().catch(() => undefined);
    subscription = null;
    await post(text.offUrl, { endpoint });
    show(null);
  };

  button.addEventListener("click", () => {
    button.disabled = true;
    (subscription ? turnOff() : turnOn()).catch(() => {
      say(text.textFailed);
      button.disabled = false;
    });
  });

  const start = async () => {
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !window.Notification) {
      say(text.textUnsupported);
      return;
    }
    if (Notification.permission === "denied") {
      say(text.textBlocked);
      return;
    }
    registration = await navigator.serviceWorker.register(text.worker, { scope: text.scope });
    await navigator.serviceWorker.ready;
    subscription = await registration.pushManager.getSubscription();
    show(null);
  };

  start().catch(() => say(text.textFailed));
})();
