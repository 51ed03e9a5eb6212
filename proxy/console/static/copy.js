// Copy buttons: a button with data-copy-target="#id" copies the text of the
// element that selector names. Without JavaScript (or without clipboard
// access) the text is still on the page to select by hand; when the
// clipboard refuses, the text is selected for Ctrl-C instead.
document.addEventListener('click', async (event) => {
  const button = event.target.closest('button[data-copy-target]');
  if (!button) return;
  const target = document.querySelector(button.dataset.copyTarget);
  if (!target) return;
  const label = button.dataset.copyLabel || button.textContent;
  button.dataset.copyLabel = label;
  try {
    await navigator.clipboard.writeText(target.textContent.trim());
    button.textContent = 'Copied';
  } catch {
    const range = document.createRange();
    range.selectNodeContents(target);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = 'Selected: press Ctrl-C';
  }
  setTimeout(() => { button.textContent = label; }, 2000);
});
