// Copy buttons: a button with data-copy-target="#id" copies the text of
// the element that selector names. The buttons are hidden in the markup and
// shown here, so a page without JavaScript shows none that cannot work.
// Where the clipboard is refused (no permission, not a secure context), the
// text is selected instead, for Ctrl-C.
(function () {
  'use strict';
  function select(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  function done(button, label) {
    var before = button.dataset.copyLabel || button.textContent;
    button.dataset.copyLabel = before;
    button.textContent = label;
    window.setTimeout(function () { button.textContent = before; }, 1500);
  }
  function copy(button) {
    var el = document.querySelector(button.dataset.copyTarget);
    if (!el) return;
    var text = el.textContent;
    if (!navigator.clipboard || !window.isSecureContext) {
      select(el);
      done(button, 'Selected: press Ctrl-C');
      return;
    }
    navigator.clipboard.writeText(text).then(
      function () { done(button, 'Copied'); },
      function () { select(el); done(button, 'Selected: press Ctrl-C'); });
  }
  function init() {
    document.querySelectorAll('[data-copy-target]').forEach(function (b) { b.hidden = false; });
    document.addEventListener('click', function (e) {
      var b = e.target.closest('[data-copy-target]');
      if (b) copy(b);
    });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
