/* The suggestion and correction forms. "I don't know which fillers it uses" starts ticked;
   choosing a filler unticks it, and ticking it clears the fillers, so the two answers never
   contradict each other on screen. Without JavaScript the server lets a chosen filler win. */
(function () {
  "use strict";

  var unknown = document.getElementById("fillers_unknown");
  if (!unknown) {
    return;
  }
  var fillers = document.querySelectorAll("input[name=fillers]");

  Array.prototype.forEach.call(fillers, function (box) {
    box.addEventListener("change", function () {
      if (box.checked) {
        unknown.checked = false;
      }
    });
  });
  unknown.addEventListener("change", function () {
    if (unknown.checked) {
      Array.prototype.forEach.call(fillers, function (box) {
        box.checked = false;
      });
    }
  });
})();
