/* The review form: a live character count, and one send per tap.
 *
 * Without JavaScript the form works the same; the server checks the length and keeps
 * what was typed. A second tap on "Send" would send the form twice, and the first answer
 * (the one with the withdrawal code) would be lost, so later taps are ignored.
 */
(function () {
  "use strict";
  var form = document.getElementById("review-form");
  if (!form) { return; }

  var text = document.getElementById("text");
  var count = document.getElementById("text-count");
  if (text && count) {
    var max = parseInt(text.getAttribute("data-max"), 10) || 1000;
    // The sentences come translated from the server, with {count}, {max} and {over} to fill.
    var fits = count.getAttribute("data-fits") || "{count} of {max} characters";
    var over = count.getAttribute("data-over") ||
      "{count} of {max} characters: please shorten it by {over}";
    var update = function () {
      // Line breaks count once, as the server counts them.
      var length = text.value.replace(/\r\n/g, "\n").length;
      count.textContent = (length > max ? over : fits).replace("{count}", length)
        .replace("{max}", max).replace("{over}", length - max);
      count.className = "hint text-count" + (length > max ? " over" : "");
    };
    count.hidden = false;
    text.addEventListener("input", update);
    update();
  }

  var sent = false;
  var button = form.querySelector("button[type=submit]");
  var label = button ? button.textContent : "";
  form.addEventListener("submit", function (event) {
    if (sent) { event.preventDefault(); return; }
    sent = true;
    if (button) {
      button.setAttribute("aria-disabled", "true");
      button.textContent = button.getAttribute("data-sending") || "Sending…";
    }
  });
  // Back to this page from the history: allow sending again.
  window.addEventListener("pageshow", function () {
    sent = false;
    if (button) { button.removeAttribute("aria-disabled"); button.textContent = label; }
  });
})();
