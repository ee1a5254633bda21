// Completion: hand the participant back to the recruiting platform.
(function () {
  "use strict";
  var done = document.getElementById("done");
  if (!done) return;
  try { Object.keys(window.localStorage).forEach(function (k) { if (k.indexOf("emostudy-outbox-") === 0 && window.localStorage.getItem(k) === "{}") window.localStorage.removeItem(k); }); } catch (e) { /* no storage */ }
  if (done.dataset.wait === "1") return; // a debrief to read first: the participant goes on by the button or link
  if (done.dataset.kind === "mturk_form") {
    document.getElementById("mturk-form").submit();
  } else if (done.dataset.kind === "redirect") {
    var link = document.getElementById("redirect-link");
    setTimeout(function () { window.location.href = link.href; }, 800);
  }
})();
