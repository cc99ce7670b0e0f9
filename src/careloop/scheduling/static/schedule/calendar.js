/* Drag an appointment to another time or provider on the staff calendar.
   The drop posts the cell's start and provider to the appointment's reschedule URL;
   the server decides (careloop.scheduling.booking). On success the block is redrawn
   in its new cell; on a refusal it stays where it was and the reason is shown.
   Without this script every block still has its "Manage" page with a reschedule form. */
(function () {
  "use strict";

  var grid = document.querySelector("[data-calendar]");
  var form = document.getElementById("cal-move-form");
  var status = document.getElementById("calendar-status");
  if (!grid || !form || !status) {
    return;
  }
  var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var dragged = null;

  function say(message, alternatives, isError) {
    status.textContent = "";
    status.className = "cal-message alert " + (isError ? "alert-error" : "alert-info");
    status.setAttribute("role", isError ? "alert" : "status");
    var line = document.createElement("p");
    line.textContent = message;
    status.appendChild(line);
    if (alternatives && alternatives.length) {
      var intro = document.createElement("p");
      intro.textContent = "Next free times:";
      status.appendChild(intro);
      var list = document.createElement("ul");
      alternatives.forEach(function (text) {
        var item = document.createElement("li");
        item.textContent = text;
        list.appendChild(item);
      });
      status.appendChild(list);
    }
  }

  function clearTargets() {
    grid.querySelectorAll(".is-target").forEach(function (cell) {
      cell.classList.remove("is-target");
    });
  }

  function move(block, cell) {
    var body = new FormData();
    body.append("csrfmiddlewaretoken", token);
    body.append("start", cell.dataset.start);
    body.append("provider", cell.dataset.provider);
    block.classList.add("is-moving");
    fetch(block.dataset.moveUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": token },
    })
      .then(function (response) {
        return response.json();
      })
      .then(function (answer) {
        if (!answer.ok) {
          // The block never left its cell: it simply stays (snaps back).
          say(answer.message, answer.alternatives, true);
          return;
        }
        var holder = document.createElement("template");
        holder.innerHTML = answer.block.trim();
        var fresh = holder.content.firstElementChild;
        block.remove();
        cell.querySelector(".cal-stack").appendChild(fresh);
        say(answer.message, [], false);
      })
      .catch(function () {
        say("The appointment could not be moved. Reload the page, or use its Manage page.", [], true);
      })
      .finally(function () {
        block.classList.remove("is-moving");
      });
  }

  grid.addEventListener("dragstart", function (event) {
    var block = event.target.closest && event.target.closest(".cal-block[draggable=true]");
    if (!block) {
      return;
    }
    dragged = block;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", block.dataset.appointment);
    // After the browser has taken its drag image.
    window.setTimeout(function () {
      grid.classList.add("is-dragging");
    }, 0);
  });

  grid.addEventListener("dragend", function () {
    dragged = null;
    grid.classList.remove("is-dragging");
    clearTargets();
  });

  grid.addEventListener("dragover", function (event) {
    var cell = event.target.closest && event.target.closest("td[data-start]");
    if (!dragged || !cell) {
      return;
    }
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    if (!cell.classList.contains("is-target")) {
      clearTargets();
      cell.classList.add("is-target");
    }
  });

  grid.addEventListener("drop", function (event) {
    var cell = event.target.closest && event.target.closest("td[data-start]");
    var block = dragged;
    if (!block || !cell) {
      return;
    }
    event.preventDefault();
    grid.classList.remove("is-dragging");
    clearTargets();
    if (cell.contains(block)) {
      return;
    }
    move(block, cell);
  });
})();
