/* Progressive enhancement only: every page works without this file.
   After htmx swaps a panel in, move the keyboard focus to its heading, so that keyboard
   and screen-reader users land on what appeared (the panel says where it starts with
   data-focus). */
document.addEventListener("htmx:afterSettle", function (event) {
  var target = event.detail && event.detail.target;
  var heading = target && target.querySelector("[data-focus]");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
});
