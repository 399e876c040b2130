// Keyboard shortcuts for reviewers: m = match, n = not a match, s = skip, Enter on the queue = start.
(function () {
  "use strict";
  function typing(target) {
    var tag = (target && target.tagName) || "";
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }
  var submitting = false;
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var form = document.getElementById("decide-form");
    var keys = { m: "btn-match", n: "btn-no-match", s: "btn-skip" };
    if (form && keys[event.key]) {
      event.preventDefault();
      var button = document.getElementById(keys[event.key]);
      // One decision per page: a second key press while the first is on its way is ignored.
      // (A disabled submitter would drop its verdict from the form, so a flag is used instead.)
      if (button && !submitting) { submitting = true; form.requestSubmit(button); }
      return;
    }
    if (!form && event.key === "Enter" && document.querySelector("table.items")) {
      var next = document.getElementById("next-link");
      if (next) { window.location.href = next.href; }
    }
  });
})();
