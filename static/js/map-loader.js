/* Load the map only after the page (the list of clinics) has loaded.
 *
 * On a slow phone, Leaflet's 60 kB would otherwise compete with the page's own stylesheet
 * and hold back the first paint of the list, which is what people came for. Each map's
 * div names its stylesheets (data-css) and scripts (data-js), all on our own origin; its
 * drawing code waits in a <script type="text/plain"> beside it and is run, once Leaflet
 * is there, as an inline script carrying this page's CSP nonce. Nothing here builds HTML.
 * Without JavaScript nothing loads: the list is the map's twin (see includes/map.html).
 */
(function () {
  "use strict";
  var self = document.currentScript;
  var nonce = self ? self.nonce || self.getAttribute("nonce") : "";

  function ownUrls(text) {
    // Only same-origin paths ("/static/..."), never another host.
    return (text || "").split(" ").filter(function (url) {
      return url.charAt(0) === "/" && url.charAt(1) !== "/";
    });
  }

  function loadScripts(urls, done) {
    if (!urls.length) { done(); return; }
    var script = document.createElement("script");
    script.src = urls[0];
    if (nonce) { script.nonce = nonce; }
    script.onload = function () { loadScripts(urls.slice(1), done); };
    document.head.appendChild(script);
  }

  function draw(div) {
    var code = document.getElementById(div.id + "-code");
    if (!code) { return; }
    var styles = ownUrls(div.getAttribute("data-css"));
    // Draw once every stylesheet and every script is in: Leaflet lays out with its CSS.
    var waiting = styles.length + 1;
    function ready() {
      waiting -= 1;
      if (waiting > 0) { return; }
      var run = document.createElement("script");
      if (nonce) { run.nonce = nonce; }
      run.textContent = code.textContent;
      document.body.appendChild(run);
    }
    styles.forEach(function (href) {
      var link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = href;
      link.onload = ready;
      link.onerror = ready;
      document.head.appendChild(link);
    });
    loadScripts(ownUrls(div.getAttribute("data-js")), ready);
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll(".map[data-js]"), draw);
  }

  if (document.readyState === "complete") { start(); }
  else { window.addEventListener("load", start); }
})();
