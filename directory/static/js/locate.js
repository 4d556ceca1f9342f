/* "Use my location": an extra for browsers that can share a position. Without JavaScript, or
   without geolocation, the button stays hidden and the search box works as before. */
(function () {
  "use strict";

  var button = document.getElementById("use-location");
  if (!button || !("geolocation" in navigator) || !button.form) {
    return;
  }
  var form = button.form;
  var near = document.getElementById("near");
  var lat = document.getElementById("lat");
  var lon = document.getElementById("lon");
  var status = document.getElementById("locate-status");
  var busy = false;

  // The page's own words, in its language (data-* on the status line); English otherwise.
  function words(name, english) {
    return (status && status.getAttribute("data-" + name)) || english;
  }

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function done() {
    busy = false;
    button.removeAttribute("aria-disabled");
  }

  function found(position) {
    lat.value = position.coords.latitude.toFixed(5);
    lon.value = position.coords.longitude.toFixed(5);
    near.value = "";
    say(words("found", "Found you. Searching near your location…"));
    form.submit();
  }

  function failed(error) {
    done();
    if (error && error.code === 1) {
      say(
        words(
          "refused",
          "Your browser did not share your location, so we can't use it. " +
            "Type a ZIP code or a town in the box instead."
        )
      );
    } else if (error && error.code === 3) {
      say(
        words(
          "slow",
          "Finding your location took too long. Please try again, or type a ZIP code or a town."
        )
      );
    } else {
      say(
        words("failed", "We couldn't find your location. Please type a ZIP code or a town instead.")
      );
    }
  }

  // A place typed by hand wins over a position from an earlier "Use my location".
  if (near && lat && lon) {
    near.addEventListener("input", function () {
      lat.value = "";
      lon.value = "";
    });
  }

  button.hidden = false;
  button.addEventListener("click", function () {
    if (busy) {
      return;
    }
    busy = true;
    // aria-disabled rather than disabled, so keyboard focus stays on the button.
    button.setAttribute("aria-disabled", "true");
    say(words("finding", "Finding your location…"));
    try {
      navigator.geolocation.getCurrentPosition(found, failed, {
        enableHighAccuracy: false,
        timeout: 20000,
        maximumAge: 600000
      });
    } catch (e) {
      failed(null);
    }
  });
})();
