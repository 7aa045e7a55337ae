// Niceties only: the page works fully without this file.
(function () {
  var panel = document.getElementById("filters");
  var wide = window.matchMedia("(min-width: 60rem)");
  // On wide screens the filters are a column beside the results, so always unfolded.
  function unfold() { if (panel && wide.matches) { panel.open = true; } }
  unfold();
  wide.addEventListener("change", unfold);
  // After a search, the keyboard starts at the results (the next Tab is the first card) without the page moving:
  // the form stays in view above them.
  var results = document.querySelector("[data-focus-first]");
  if (results) { results.focus({ preventScroll: true }); }
})();
