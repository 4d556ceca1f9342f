/* The results map: an extra on top of the list. The list is the page; this script adds a
   List / Map switch and draws the same results on a Leaflet map.

   Leaflet (about 150 KB) is fetched only when someone first asks for the map, so the results
   page stays light on a slow phone connection. Everything shown in a popup comes from the
   card already on the page and is set with textContent, never parsed as HTML. */
(function () {
  "use strict";

  var mapEl = document.getElementById("map");
  if (!mapEl || !mapEl.getAttribute("data-tiles")) {
    return;
  }
  var here = document.currentScript ? document.currentScript.src : window.location.href;
  var vendor = new URL("../vendor/leaflet/", here).href;
  var reduceMotion =
    window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  var leafletLoading = null;
  var map = null;

  function clean(text) {
    return (text || "").replace(/\s+/g, " ").trim();
  }

  function number(value) {
    var n = parseFloat(value);
    return isFinite(n) ? n : null;
  }

  function escapeHtml(text) {
    // Leaflet writes attribution as HTML; ours is plain text from the settings.
    var div = document.createElement("div");
    div.textContent = text;
    return div.innerHTML;
  }

  function loadLeaflet() {
    if (leafletLoading) {
      return leafletLoading;
    }
    var css = new Promise(function (resolve, reject) {
      if (document.querySelector('link[rel="stylesheet"][href*="leaflet.css"]')) {
        resolve();
        return;
      }
      var link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = vendor + "leaflet.css";
      link.onload = resolve;
      link.onerror = reject;
      document.head.appendChild(link);
    });
    var js = new Promise(function (resolve, reject) {
      if (window.L && window.L.map) {
        resolve();
        return;
      }
      var script = document.createElement("script");
      script.src = vendor + "leaflet.js";
      script.onload = resolve;
      script.onerror = reject;
      document.head.appendChild(script);
    });
    leafletLoading = Promise.all([css, js]).then(function () {
      window.L.Icon.Default.imagePath = vendor + "images/";
      return window.L;
    });
    return leafletLoading;
  }

  function popupFor(card) {
    var box = document.createElement("div");
    var link = card.querySelector(".card-title a");
    var a = document.createElement("a");
    a.className = "map-popup-link";
    a.href = link.getAttribute("href");
    a.textContent = clean(link.textContent);
    box.appendChild(a);
    var distance = card.querySelector(".distance");
    if (distance) {
      var p = document.createElement("p");
      var away = words("away", "{distance} away");
      p.textContent = away.replace("{distance}", clean(distance.textContent));
      box.appendChild(p);
    }
    return box;
  }

  // The page's own words, in its language (data-* on the map element); English otherwise.
  function words(name, english) {
    return mapEl.getAttribute("data-" + name) || english;
  }

  function searched(label) {
    return label
      ? words("searched-near", "You searched near {place}").replace("{place}", label)
      : words("searched-here", "You searched here");
  }

  function originPopup(label) {
    var p = document.createElement("p");
    p.textContent = searched(label);
    return p;
  }

  function build(L, cards) {
    var origin = [number(mapEl.getAttribute("data-lat")), number(mapEl.getAttribute("data-lon"))];
    var label = clean(mapEl.getAttribute("data-label"));
    var single = mapEl.hasAttribute("data-single");
    map = L.map(mapEl, {
      zoomAnimation: !reduceMotion,
      fadeAnimation: !reduceMotion,
      markerZoomAnimation: !reduceMotion,
      inertia: !reduceMotion,
      scrollWheelZoom: false
    });
    if (reduceMotion) {
      // Leaflet has no switch for the glide when a popup pans the map into view; jump instead.
      var panBy = map.panBy;
      map.panBy = function (offset, options) {
        return panBy.call(this, offset, L.extend({}, options, { animate: false }));
      };
    }
    L.tileLayer(mapEl.getAttribute("data-tiles"), {
      attribution: escapeHtml(mapEl.getAttribute("data-attribution") || ""),
      maxZoom: 19
    }).addTo(map);

    var points = [];
    if (origin[0] !== null && origin[1] !== null) {
      points.push(origin);
      if (single) {
        L.marker(origin, {
          title: label || words("pin", "Map pin"),
          alt: label || words("pin", "Map pin")
        }).addTo(map);
      } else {
        L.marker(origin, {
          icon: L.divIcon({ className: "map-origin", iconSize: [22, 22] }),
          title: searched(label),
          zIndexOffset: -100
        })
          .bindPopup(originPopup(label))
          .addTo(map);
      }
    }
    cards.forEach(function (card) {
      var point = [number(card.getAttribute("data-lat")), number(card.getAttribute("data-lon"))];
      if (point[0] === null || point[1] === null) {
        return;
      }
      var name = clean(card.querySelector(".card-title a").textContent);
      points.push(point);
      L.marker(point, { title: name, alt: name, riseOnHover: true })
        .bindPopup(popupFor(card))
        .addTo(map);
    });
    if (points.length > 1) {
      map.fitBounds(points, { padding: [32, 32], maxZoom: 15, animate: false });
    } else if (points.length === 1) {
      map.setView(points[0], 14, { animate: false });
    }
    return map;
  }

  function showMap(cards) {
    return loadLeaflet().then(
      function (L) {
        if (!map) {
          build(L, cards);
        } else {
          map.invalidateSize({ animate: false });
        }
      },
      function () {
        mapEl.textContent = words(
          "failed",
          "Sorry, the map could not be loaded. The list has every result."
        );
      }
    );
  }

  if (!mapEl.getAttribute("role")) {
    mapEl.setAttribute("role", "region");
  }

  // A single pin (used on moderation pages): show it straight away, no switch.
  if (mapEl.hasAttribute("data-single")) {
    mapEl.hidden = false;
    showMap([]);
    return;
  }

  var toggle = document.getElementById("view-toggle");
  var list = document.getElementById("results");
  if (!toggle || !list) {
    return;
  }
  var cards = Array.prototype.slice.call(list.querySelectorAll(".card[data-lat][data-lon]"));
  if (!cards.length) {
    return;
  }
  var buttons = Array.prototype.slice.call(toggle.querySelectorAll("button[data-view]"));

  function show(view) {
    buttons.forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-view") === view ? "true" : "false");
    });
    list.hidden = view === "map";
    mapEl.hidden = view !== "map";
    if (view === "map") {
      showMap(cards);
    }
  }

  buttons.forEach(function (b) {
    b.addEventListener("click", function () {
      show(b.getAttribute("data-view"));
    });
  });
  toggle.hidden = false;
})();
