/* Quick exit: leave for a neutral site at once, by the button or by pressing Shift three
 * times within a second (as GOV.UK's "Exit this page").
 *
 * The page is blanked first, so nothing stays on screen while the next site loads, and
 * location.replace() swaps this page out of the tab's history, so Back does not return
 * to it. Without JavaScript the button is still a plain link to the same site.
 */
(function () {
  "use strict";
  var link = document.getElementById("quick-exit");
  if (!link) { return; }
  var target = link.href;
  var shiftTimes = [];

  function leave() {
    document.body.style.display = "none";
    document.title = "";
    window.location.replace(target);
  }

  link.addEventListener("click", function (event) {
    event.preventDefault();
    leave();
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Shift") {
      shiftTimes = [];
      return;
    }
    if (event.repeat) { return; }
    var now = Date.now();
    shiftTimes = shiftTimes.filter(function (t) { return now - t < 1000; });
    shiftTimes.push(now);
    if (shiftTimes.length >= 3) {
      shiftTimes = [];
      leave();
    }
  });

  // A page brought back from the browser's back-forward cache is shown again normally.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { document.body.style.display = ""; }
  });
})();
