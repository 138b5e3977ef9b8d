// Lamplighter's window: renders what the engine returns and sends the user's
// actions back. No state of its own beyond the form being edited.
'use strict';
const invoke = window.__TAURI__.core.invoke;
const listen = window.__TAURI__.event.listen;
const $ = (sel, root = document) => root.querySelector(sel);

function showView() {
  const view = location.hash === '#settings' ? 'settings' : 'inbox';
  for (const v of ['inbox', 'settings']) {
    $(`#view-${v}`).hidden = v !== view;
    const tab = $(`#tab-${v}`);
    if (v === view) tab.setAttribute('aria-current', 'page'); else tab.removeAttribute('aria-current');
  }
}

function renderProblems(problems) {
  const box = $('#problems');
  box.replaceChildren(...problems.map(p => {
    const el = document.createElement('p');
    el.dataset.code = p.code;
    el.textContent = p.message;
    return el;
  }));
}

function renderSnapshot(s) {
  $('#summary').textContent = s.tooltip;
  $('#inbox-hint').hidden = false;
  renderProblems(s.problems);
}

function addPhone(phone = {}, passwordSaved = false) {
  const node = $('#phone-template').content.firstElementChild.cloneNode(true);
  $('[name=uri]', node).value = phone.uri || '';
  $('[name=transport]', node).value = phone.transport || 'udp';
  $('[name=mode]', node).value = phone.mode || 'unsolicited';
  $('[name=username]', node).value = phone.username || '';
  node.dataset.refreshHours = phone.refresh_hours || 12;
  node.dataset.passwordEnv = phone.password_env || '';
  $('[data-note=password]', node).textContent = passwordSaved ? 'A password is saved in the keyring; leave empty to keep it.' : '';
  $('.remove-phone', node).addEventListener('click', () => node.remove());
  $('#phones').appendChild(node);
  return node;
}

let loaded = null;

function renderSettings(view) {
  loaded = view;
  const m = view.form.mailbox || {};
  $('#mailbox-email').value = m.email || '';
  $('#mailbox-ews-url').value = m.ews_url || '';
  $('#mailbox-username').value = m.username || '';
  $('#mailbox-auth').value = m.auth || 'ntlm';
  $('#mailbox-password').value = '';
  $('#mailbox-password-note').textContent = view.mailbox_password_saved
    ? 'A password is saved in the keyring; leave empty to keep it.'
    : (view.keyring_persistent ? 'Kept in the keyring, never in the settings file.' : 'No keyring: the password is kept until Lamplighter quits.');
  $('#phones').replaceChildren();
  (view.form.phone || []).forEach((p, i) => addPhone(p, view.phone_passwords_saved[i]));
  $('#config-file').textContent = view.config_file;
  $('#save').disabled = view.read_only;
  renderProblems(view.problems);
  clearErrors();
}

function clearErrors() {
  document.querySelectorAll('.error').forEach(e => { e.textContent = ''; });
  document.querySelectorAll('[aria-invalid]').forEach(e => e.removeAttribute('aria-invalid'));
}

function showErrors(fields) {
  for (const f of fields) {
    let slot = document.querySelector(`[data-error-for="${f.field}"]`);
    let input = document.querySelector(`[name="${f.field}"]`);
    const m = /^phone\.(\d+)\.(\w+)$/.exec(f.field);
    if (m) {
      const phone = document.querySelectorAll('#phones .phone')[Number(m[1])];
      if (phone) { slot = $(`[data-error="${m[2]}"]`, phone); input = $(`[name="${m[2]}"]`, phone); }
    }
    if (slot) slot.textContent = f.message; else setStatus(`${f.field}: ${f.message}`, 'fail');
    if (input) input.setAttribute('aria-invalid', 'true');
  }
  const first = document.querySelector('[aria-invalid="true"]');
  if (first) first.focus();
}

function collect() {
  const email = $('#mailbox-email').value.trim();
  const prior = (loaded && loaded.form.mailbox) || {};
  const form = {
    ...(loaded ? loaded.form : {}),
    mailbox: email || $('#mailbox-ews-url').value.trim() || $('#mailbox-username').value.trim() ? {
      email,
      ews_url: $('#mailbox-ews-url').value.trim(),
      username: $('#mailbox-username').value.trim(),
      auth: $('#mailbox-auth').value,
      password_env: prior.password_env || '',
      ca_file: prior.ca_file || '',
    } : null,
    phone: [...document.querySelectorAll('#phones .phone')].map(node => ({
      uri: $('[name=uri]', node).value.trim(),
      transport: $('[name=transport]', node).value,
      mode: $('[name=mode]', node).value,
      username: $('[name=username]', node).value.trim(),
      password_env: node.dataset.passwordEnv || '',
      refresh_hours: Number(node.dataset.refreshHours || 12),
    })),
  };
  const phonePasswords = [...document.querySelectorAll('#phones .phone')].map(n => $('[name=password]', n).value || null);
  return { form, mailbox_password: $('#mailbox-password').value || null, phone_passwords: phonePasswords };
}

function setStatus(text, kind) {
  const s = $('#status');
  s.textContent = text;
  s.className = kind || '';
}

async function save(ev) {
  ev.preventDefault();
  clearErrors();
  setStatus('Saving…');
  try {
    renderSettings(await invoke('save_settings', { update: collect() }));
    setStatus('Saved.', 'ok');
  } catch (e) {
    if (e && e.code === 'invalid_settings') {
      showErrors(e.fields);
      setStatus('Please correct the marked fields. Nothing was saved.', 'fail');
    } else {
      setStatus(e && e.message ? e.message : String(e), 'fail');
    }
  }
}

window.addEventListener('hashchange', showView);
$('#settings-form').addEventListener('submit', save);
$('#add-phone').addEventListener('click', () => $('[name=uri]', addPhone()).focus());
showView();
invoke('snapshot').then(renderSnapshot);
invoke('settings_view').then(renderSettings, e => setStatus(e.message || String(e), 'fail'));
listen('snapshot', ev => renderSnapshot(ev.payload));
