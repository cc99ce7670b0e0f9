// Shows and hides a form's questions as the patient answers, by the questionnaire's
// enableWhen rules (careloop.intake.answers holds the same rules; the server's
// evaluation on submit is the one that counts). A hidden question's inputs are
// disabled, so its answers are not sent. Without this script every question shows.
(function () {
  "use strict";
  var form = document.querySelector("form[data-intake-form]");
  if (!form) {
    return;
  }
  var items = Array.prototype.slice.call(form.querySelectorAll("[data-link-id]"));
  var rules = {};
  items.forEach(function (el) {
    var raw = el.getAttribute("data-enable-when");
    rules[el.getAttribute("data-link-id")] = raw ? JSON.parse(raw) : [];
  });

  function valuesOf(linkId, enabled) {
    if (!enabled[linkId]) {
      return [];
    }
    var found = [];
    form.querySelectorAll("input, textarea, select").forEach(function (input) {
      if (input.name !== "q-" + linkId) {
        return;
      }
      if ((input.type === "radio" || input.type === "checkbox") && !input.checked) {
        return;
      }
      var text = (input.value || "").trim();
      if (text !== "") {
        found.push(text);
      }
    });
    return found;
  }

  function compare(value, rule) {
    var left = value;
    var right = rule.a;
    if (rule.t === "number") {
      left = parseFloat(value);
      right = parseFloat(rule.a);
      if (isNaN(left)) {
        return rule.op === "!=";
      }
    }
    switch (rule.op) {
      case "=": return left === right;
      case "!=": return left !== right;
      case ">": return rule.t !== "coding" && rule.t !== "boolean" && left > right;
      case "<": return rule.t !== "coding" && rule.t !== "boolean" && left < right;
      case ">=": return rule.t !== "coding" && rule.t !== "boolean" && left >= right;
      case "<=": return rule.t !== "coding" && rule.t !== "boolean" && left <= right;
    }
    return false;
  }

  function holds(rule, enabled) {
    var values = valuesOf(rule.q, enabled);
    if (rule.op === "exists") {
      return (values.length > 0) === (rule.a === "true");
    }
    if (values.length === 0) {
      return false;
    }
    if (rule.op === "!=") {
      return values.every(function (v) { return compare(v, rule); });
    }
    return values.some(function (v) { return compare(v, rule); });
  }

  function pass(enabled) {
    var next = {};
    items.forEach(function (el) {
      var id = el.getAttribute("data-link-id");
      var parent = el.parentElement ? el.parentElement.closest("[data-link-id]") : null;
      var parentOn = !parent || next[parent.getAttribute("data-link-id")];
      var list = rules[id];
      var results = list.map(function (rule) { return holds(rule, enabled); });
      var any = el.getAttribute("data-enable-behavior") === "any";
      var on = results.length === 0 || (any ? results.indexOf(true) >= 0 : results.indexOf(false) < 0);
      next[id] = Boolean(parentOn && on);
    });
    return next;
  }

  function evaluate() {
    var enabled = {};
    items.forEach(function (el) { enabled[el.getAttribute("data-link-id")] = true; });
    for (var round = 0; round <= items.length; round += 1) {
      var next = pass(enabled);
      var same = Object.keys(next).every(function (k) { return next[k] === enabled[k]; });
      enabled = next;
      if (same) {
        break;
      }
    }
    items.forEach(function (el) {
      var on = enabled[el.getAttribute("data-link-id")];
      el.hidden = !on;
      el.querySelectorAll("input, textarea, select").forEach(function (input) {
        input.disabled = !on;
      });
    });
  }

  form.addEventListener("input", evaluate);
  form.addEventListener("change", evaluate);
  evaluate();
})();
