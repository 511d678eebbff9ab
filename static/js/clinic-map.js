/* Clinic markers for maps rendered by directory/maps.py.
 *
 * Clinic names and addresses come from imported data, so popups are built with
 * textContent and never with innerHTML: no string from the data is ever parsed as HTML.
 * Marker images come from our own static/vendor/leaflet/images (found by leaflet.css).
 */
(function () {
  "use strict";

  function line(parent, tag, text, className) {
    var el = document.createElement(tag);
    el.textContent = text;
    if (className) { el.className = className; }
    parent.appendChild(el);
    return el;
  }

  // The popups' own words, in the page's language (from the server; English fallback).
  var words = {open: "Open now", closed: "Closed now", unknown: "Hours not known yet"};

  function popup(clinic) {
    var box = document.createElement("div");
    box.className = "map-popup";
    var title = document.createElement("p");
    title.className = "map-popup-name";
    // Links only ever point inside this site.
    if (typeof clinic.url === "string" && clinic.url.charAt(0) === "/" &&
        clinic.url.charAt(1) !== "/") {
      var link = line(title, "a", clinic.name);
      link.href = clinic.url;
    } else {
      title.textContent = clinic.name;
    }
    box.appendChild(title);
    if (clinic.address) { line(box, "p", clinic.address); }
    var facts = [];
    if (clinic.distance) { facts.push(clinic.distance); }
    if (clinic.open === true) { facts.push(words.open); }
    else if (clinic.open === false) { facts.push(words.closed); }
    else { facts.push(words.unknown); }
    line(box, "p", facts.join(" · "), "map-popup-facts");
    // The reviews' line is data too: text, never HTML.
    if (typeof clinic.score === "string" && clinic.score) {
      line(box, "p", clinic.score, "map-popup-score");
    }
    return box;
  }

  window.CareMap = {
    addClinics: function (map, layer, data) {
      ["open", "closed", "unknown"].forEach(function (key) {
        if (data.words && typeof data.words[key] === "string") { words[key] = data.words[key]; }
      });
      (data.clinics || []).forEach(function (clinic) {
        var marker = L.marker([clinic.lat, clinic.lng], {
          title: clinic.name,
          alt: clinic.name,
          keyboard: true
        });
        marker.bindPopup(function () { return popup(clinic); });
        layer.addLayer(marker);
      });
      if (data.centre) {
        // The searched place, drawn as a plain dot: no image, not a clinic.
        L.circleMarker([data.centre.lat, data.centre.lng], {
          radius: 7, weight: 3, color: "#5b2a86", fillColor: "#ffffff", fillOpacity: 1,
          interactive: false
        }).addTo(map);
      }
    }
  };
})();
