/* "Near me": ask the browser for a location, round it here to 2 decimals (about 1 km)
 * so a precise position never reaches our server, put it in the search and submit.
 * Without JavaScript the button stays hidden and the ZIP/neighbourhood search works.
 */
(function () {
  "use strict";
  var button = document.getElementById("near-me");
  var status = document.getElementById("near-me-status");
  if (!button || !status) { return; }
  var form = button.form;
  var typed = form.querySelector('input[name="near"]');

  // Typing a place means "search there", not near the location of an earlier search.
  if (typed) {
    typed.addEventListener("input", function () {
      form.querySelectorAll('input[type="hidden"][name="lat"], ' +
                            'input[type="hidden"][name="lng"]').forEach(function (el) {
        el.remove();
      });
    });
  }
  // Coming back with the Back button: the place box works again.
  window.addEventListener("pageshow", function () {
    if (typed) { typed.disabled = false; }
    button.disabled = false;
  });
  if (!("geolocation" in navigator)) { return; }
  button.hidden = false;

  function say(text) { status.textContent = text; }
  // Words in the page's language come from the button's data-* attributes (translated on
  // the server); the English ones are the fallback.
  function words(name, fallback) { return button.getAttribute("data-" + name) || fallback; }

  function rounded(value) { return (Math.round(value * 100) / 100).toFixed(2); }

  function setHidden(name, value) {
    var input = form.querySelector('input[type="hidden"][name="' + name + '"]');
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    }
    input.value = value;
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    say(words("finding", "Finding your location…"));
    navigator.geolocation.getCurrentPosition(function (position) {
      setHidden("lat", rounded(position.coords.latitude));
      setHidden("lng", rounded(position.coords.longitude));
      // The location replaces a typed place, so the search is not ambiguous.
      // Not sent at all, so the shared URL holds only the rounded point.
      if (typed) { typed.disabled = true; }
      say(words("searching", "Searching near you…"));
      if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
    }, function (error) {
      button.disabled = false;
      if (error.code === error.PERMISSION_DENIED) {
        say(words("refused", "Your location was not shared, and that is fine. Type a ZIP " +
                  "code or a neighbourhood instead."));
      } else {
        say(words("failed", "We could not find your location just now. Type a ZIP code " +
                  "or a neighbourhood instead."));
      }
    }, { enableHighAccuracy: false, timeout: 10000, maximumAge: 600000 });
  });
})();
