// Niceties only: every Save button is a form that works without this file. With it, a Save or Remove is sent in
// place (the page stays where it is), the button and the header's count change, and the status line says what
// happened for screen readers; the shortlist's Copy link button copies its share link.
(function () {
  var status = document.getElementById("shortlist-status");
  var count = document.querySelector("[data-shortlist-count]");
  function say(message) {
    if (status) { status.textContent = message; }
  }
  function toggle(form, event) {
    event.preventDefault();
    var button = form.querySelector("button");
    var action = form.querySelector("input[name=action]");
    // Not `disabled`: that would drop the keyboard focus from the button.
    if (button.getAttribute("aria-disabled") === "true") { return; }
    button.setAttribute("aria-disabled", "true");
    fetch(form.getAttribute("action"), {  // (form.action would be its field named "action")
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.json();
    }).then(function (answer) {
      if (answer.ok) {
        action.value = answer.saved ? "remove" : "save";
        button.setAttribute("aria-pressed", answer.saved ? "true" : "false");
        button.querySelector(".label").textContent = answer.saved ? "Saved" : "Save";
      }
      if (count) {
        count.textContent = answer.count ? " (" + answer.count + ")" : "";
        count.parentNode.classList.toggle("empty", !answer.count);
      }
      say(answer.message);
    }).catch(function () {
      form.submit();  // whatever went wrong, the plain form still works
    }).then(function () {
      button.removeAttribute("aria-disabled");
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("form[data-save]"), function (form) {
    form.addEventListener("submit", function (event) { toggle(form, event); });
  });
  Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field || !navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(field.value).then(function () {
        say("The share link is copied.");
      }, function () {
        field.select();
        say("Copying was refused: the link is selected, copy it with your keyboard.");
      });
    });
  });
})();
