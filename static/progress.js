// The import progress page reloads itself while the import runs; without JavaScript it offers a refresh link.
// A reload rather than a meta refresh: that one cannot be paused and is an accessibility failure (WCAG 2.2.1).
setTimeout(function () { window.location.reload(); }, 2000);
