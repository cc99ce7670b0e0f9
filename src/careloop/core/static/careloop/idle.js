// The idle-logout warning (careloop.security.sessions). The server ends a session after
// SESSION_IDLE_TIMEOUT without activity; this shows a banner shortly before, with a
// "Stay signed in" button that makes a real request, and leaves for the sign-in page
// when the time is up. Every response carries X-Careloop-Session-Remaining, so htmx
// swaps (which are activity) restart the countdown. Before warning or leaving, it asks
// the server in the background: another tab may have kept the session alive.
(function () {
  "use strict";
  var banner = document.getElementById("idle-warning");
  if (!banner || !window.fetch) {
    return;
  }
  var warnMs = Number(banner.dataset.warn) * 1000;
  var statusUrl = banner.dataset.statusUrl;
  var loginUrl = banner.dataset.loginUrl;
  var form = banner.querySelector("form");
  var countdown = banner.querySelector("[data-countdown]");
  var deadline = Date.now() + Number(banner.dataset.remaining) * 1000;
  var checking = false;

  function setRemaining(seconds) {
    var value = Number(seconds);
    if (!isNaN(value)) {
      deadline = Date.now() + value * 1000;
    }
  }

  function leave() {
    var next = window.location.pathname;
    window.location.assign(loginUrl + "?next=" + encodeURIComponent(next));
  }

  function ask() {
    // A background request: it reads the session's time without extending it.
    checking = true;
    return fetch(statusUrl, {
      credentials: "same-origin",
      headers: { "X-Careloop-Background": "1", Accept: "application/json" },
    })
      .then(function (response) {
        return response.json();
      })
      .then(function (status) {
        if (!status.signed_in) {
          leave();
          return;
        }
        setRemaining(status.remaining);
      })
      .catch(function () {})
      .then(function () {
        checking = false;
      });
  }

  function format(ms) {
    var total = Math.max(0, Math.ceil(ms / 1000));
    var seconds = total % 60;
    return Math.floor(total / 60) + ":" + (seconds < 10 ? "0" : "") + seconds;
  }

  var asked = false;
  function tick() {
    var left = deadline - Date.now();
    if (left > warnMs) {
      banner.hidden = true;
      asked = false;
      return;
    }
    if (!asked && !checking) {
      asked = true;
      ask();
    }
    if (left <= 0) {
      // The server decides: it ends the session (and says so) or reports more time.
      if (!checking) {
        ask();
      }
      return;
    }
    countdown.textContent = format(left);
    banner.hidden = false;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    fetch(statusUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      body: new FormData(form),
    })
      .then(function (response) {
        return response.json();
      })
      .then(function (status) {
        if (!status.signed_in) {
          leave();
          return;
        }
        setRemaining(status.remaining);
        banner.hidden = true;
        asked = false;
      })
      .catch(function () {});
  });

  document.body.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail && event.detail.xhr;
    var remaining = xhr && xhr.getResponseHeader("X-Careloop-Session-Remaining");
    if (remaining) {
      setRemaining(remaining);
    }
  });

  window.setInterval(tick, 1000);
})();
