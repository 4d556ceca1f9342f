/* The suggestion and correction forms, a little kinder with JavaScript; without it they work
   the same (the server lets a chosen filler win; the full edit opens with a tap).

   - "I don't know which fillers it uses" starts ticked: choosing a filler unticks it, and
     ticking it clears the fillers, so the two answers never contradict each other on screen.
   - On a correction, an answer to "What's wrong?" that needs new details (a new phone number,
     a new address, other details) opens the full edit below it. */
(function () {
  "use strict";

  var unknown = document.getElementById("fillers_unknown");
  var fillers = document.querySelectorAll("input[name=fillers]");
  if (unknown) {
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
  }

  var edit = document.querySelector("details.full-edit");
  var opensEdit = { moved: true, wrong_phone: true, wrong_details: true };
  if (edit) {
    Array.prototype.forEach.call(document.querySelectorAll("input[name=problem]"), function (r) {
      r.addEventListener("change", function () {
        if (r.checked && opensEdit[r.value]) {
          edit.open = true;
        }
      });
    });
  }
})();
