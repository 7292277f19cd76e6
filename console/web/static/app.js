// Cairn console: live fragments over server-sent events, confirmations, small conveniences.
// No framework, no build step.
(function () {
  'use strict';

  var indicator = document.getElementById('live-indicator');

  function setLive(state, text) {
    if (!indicator) return;
    indicator.dataset.state = state;
    var t = indicator.querySelector('.live-text');
    if (t) t.textContent = text;
  }

  // replace swaps the element of id for the server's new rendering of it, and marks the
  // keyed cells (data-k) whose text changed, so that a person sees what moved.
  function replace(id, html) {
    var old = document.getElementById(id);
    if (!old) return;
    var tpl = document.createElement('template');
    tpl.innerHTML = html.trim();
    var neu = tpl.content.firstElementChild;
    if (!neu) return;
    var before = {};
    old.querySelectorAll('[data-k]').forEach(function (e) { before[e.dataset.k] = e.textContent; });
    neu.querySelectorAll('[data-k]').forEach(function (e) {
      if (Object.prototype.hasOwnProperty.call(before, e.dataset.k) && before[e.dataset.k] !== e.textContent) {
        e.classList.add('changed');
      }
    });
    old.querySelectorAll('details[open][id]').forEach(function (d) {
      var n = neu.querySelector('#' + CSS.escape(d.id));
      if (n) n.open = true;
    });
    old.replaceWith(neu);
  }

  var live = document.body.dataset.live;
  if (live && window.EventSource) {
    var es = new EventSource(live);
    es.addEventListener('open', function () { setLive('on', 'Live'); });
    es.addEventListener('fragments', function (ev) {
      var frags = JSON.parse(ev.data);
      frags.forEach(function (f) { replace(f.id, f.html); });
      document.body.dataset.updates = String(Number(document.body.dataset.updates || '0') + 1);
    });
    es.addEventListener('logout', function () {
      es.close();
      location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search);
    });
    es.addEventListener('error', function () { setLive('off', 'Reconnecting…'); });
    window.addEventListener('pagehide', function () { es.close(); });
  } else if (indicator) {
    indicator.hidden = true;
  }

  // Forms with data-confirm ask first, in a dialog that says what will happen.
  var dialog = document.getElementById('confirm-dialog');
  var pending = null;
  document.addEventListener('submit', function (ev) {
    var f = ev.target;
    if (!dialog || !(f instanceof HTMLFormElement) || !f.dataset.confirm || f.dataset.confirmed) return;
    ev.preventDefault();
    pending = f;
    dialog.querySelector('.confirm-title').textContent = f.dataset.confirmTitle || 'Are you sure?';
    dialog.querySelector('.confirm-text').textContent = f.dataset.confirm;
    var ok = dialog.querySelector('.confirm-ok');
    ok.textContent = f.dataset.confirmButton || 'Confirm';
    ok.className = 'btn confirm-ok ' + (f.dataset.confirmKind === 'danger' ? 'btn-danger-solid' : 'btn-primary');
    dialog.showModal();
    ok.focus();
  });
  if (dialog) {
    dialog.querySelector('.confirm-ok').addEventListener('click', function (ev) {
      ev.preventDefault();
      dialog.close();
      if (!pending) return;
      var f = pending;
      pending = null;
      f.dataset.confirmed = '1';
      // A live update may have replaced the form while the dialog was open.
      if (!f.isConnected) { f.hidden = true; document.body.appendChild(f); }
      f.submit();
    });
    dialog.addEventListener('close', function () { pending = null; });
  }

  // Filters apply as they change.
  document.addEventListener('change', function (ev) {
    var el = ev.target;
    if (el.matches && el.matches('[data-autosubmit]') && el.form) el.form.requestSubmit();
  });

  // Copy buttons.
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest && ev.target.closest('[data-copy]');
    if (!b) return;
    var src = document.getElementById(b.dataset.copy);
    if (src && navigator.clipboard) {
      navigator.clipboard.writeText(src.textContent.trim()).then(function () { b.textContent = 'Copied'; });
    }
  });

  // A flash message goes away by itself after a while.
  var flash = document.querySelector('.flash[data-autohide]');
  if (flash) setTimeout(function () { flash.classList.add('flash-gone'); }, 8000);
})();
