// Niceties only: the page works fully without this file.
(function () {
  var panel = document.getElementById("filters");
  var wide = window.matchMedia("(min-width: 60rem)");
  // On wide screens the filters are a column beside the results, so always unfolded.
  function unfold() { if (panel && wide.matches) { panel.open = true; } }
  unfold();
  wide.addEventListener("change", unfold);
  // Radius choices in the unit the search will use: the one picked, else the country a postcode is from (a place
  // name keeps them as they are until the search says where it is).
  var place = document.getElementById("location");
  var units = document.getElementById("units");
  var radius = document.getElementById("radius");
  function relabel() {
    var unit = units.value || (/^\s*\d{5}/.test(place.value) ? "mi" : /^\s*[a-z]\d[a-z]/i.test(place.value) ? "km" : "");
    if (!unit) { return; }
    var word = unit === "mi" ? "miles" : "km";
    Array.prototype.forEach.call(radius.options, function (option) {
      option.text = (option.value || option.getAttribute("data-default-" + unit)) + " " + word;
    });
  }
  if (place && units && radius) {
    place.addEventListener("input", relabel);
    units.addEventListener("change", relabel);
  }
  // After a search, the keyboard starts at the results (the next Tab is the first card) without the page moving:
  // the form stays in view above them.
  var results = document.querySelector("[data-focus-first]");
  if (results) { results.focus({ preventScroll: true }); }
})();
