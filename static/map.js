// Loaded only when MAP_TILE_URL and MAP_ATTRIBUTION are set: draws the distance view's markers over map tiles with
// Leaflet (static/vendor/leaflet, loaded only once the map is in view). Without this file, or before it runs, the
// distance view drawn by the server stays, and works the same.
(function () {
  var box = document.getElementById("map");
  if (!box || !box.getAttribute("data-tiles")) { return; }
  var base = document.currentScript.src.replace(/map\.js(\?.*)?$/, "vendor/leaflet/");
  var wide = window.matchMedia("(min-width: 75rem)");
  var started = false;
  var map = null;
  var points = [];
  function draw() {
    var holder = box.querySelector(".tiles");
    var svg = box.querySelector("svg");
    holder.hidden = false;
    var origin = box.getAttribute("data-origin").split(",").map(Number);
    map = L.map(holder).setView(origin, 12);
    map.attributionControl.setPrefix("Leaflet");  // credited as text: its own link is told apart by colour alone
    L.tileLayer(box.getAttribute("data-tiles"), { attribution: box.getAttribute("data-attribution"), maxZoom: 18 })
      .addTo(map);
    points = [origin];
    // Over tiles, markers are for the eye and the pointer: the keyboard and screen readers have the cards (and the
    // caption), and clustered markers would overlap as targets.
    Array.prototype.forEach.call(svg.querySelectorAll("a.marker"), function (marker) {
      var number = document.createElement("span");
      number.textContent = marker.getAttribute("data-number");
      number.setAttribute("aria-hidden", "true");
      var point = [Number(marker.getAttribute("data-lat")), Number(marker.getAttribute("data-lon"))];
      points.push(point);
      L.marker(point, { icon: L.divIcon({ className: "tile-marker", html: number, iconSize: [28, 28] }),
                        keyboard: false, title: marker.getAttribute("aria-label") })
        .on("click", function () { window.location.assign(marker.getAttribute("href")); })
        .addTo(map);
    });
    map.fitBounds(points, { padding: [20, 20], maxZoom: 14 });
    svg.setAttribute("hidden", "");  // the same markers, now over the tiles; the caption stays
  }
  function shown() {
    // Open, or unfolded by the stylesheet beside wide results (its summary is then hidden).
    return box.open || getComputedStyle(box.querySelector("summary")).display === "none";
  }
  function start() {
    if (map) { map.invalidateSize(); map.fitBounds(points, { padding: [20, 20], maxZoom: 14 }); }
    if (started || !shown()) { return; }
    started = true;
    var css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = base + "leaflet.css";
    document.head.appendChild(css);
    var script = document.createElement("script");
    script.src = base + "leaflet.js";
    script.onload = draw;
    document.head.appendChild(script);
  }
  box.addEventListener("toggle", start);
  wide.addEventListener("change", start);
  start();
})();
