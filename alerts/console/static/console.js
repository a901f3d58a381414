// fumewatch console: the only script. Served from the package (CSP script-src 'self'); the pages work without it.
(function () {
  "use strict";
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var button = ev.submitter || form.querySelector("button[type=submit]");
    var ask = button && button.getAttribute("data-confirm");
    if (ask && !window.confirm(ask)) {
      ev.preventDefault();
      return;
    }
    // one click, one submission: a second one would only meet the version check
    if (button) {
      window.setTimeout(function () { button.disabled = true; }, 0);
    }
  });
})();
// coming back with the browser's back button: buttons usable again
window.addEventListener("pageshow", function () {
  var buttons = document.querySelectorAll("button[disabled]");
  for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = false; }
});
