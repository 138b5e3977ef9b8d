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

let T = {};
const t = key => T[key] || key;

function applyStrings(payload) {
  T = payload.strings || {};
  document.documentElement.lang = payload.lang || 'en';
  document.querySelectorAll('[data-i18n]').forEach(el => { el.textContent = t(el.dataset.i18n); });
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

let revision = -1;
let snapshotNow = null;

function renderSnapshot(s) {
  snapshotNow = s;
  $('#summary').textContent = s.summary_text;
  $('#connection').textContent = s.connection_text || '—';
  $('#connection').dataset.health = s.health;
  $('#paused-note').hidden = !s.notifications_paused;
  $('#demo-note').hidden = !s.mailbox_label;
  renderProblems(s.problems);
  renderPlayback(s.playback);
  $('#microsoft-progress').hidden = !s.sign_in_url;
  $('#microsoft-url').textContent = s.sign_in_url || '';
  if (s.revision !== revision) {
    revision = s.revision;
    refreshLists();
  }
}

const ms = v => { const x = Math.floor((v || 0) / 1000); return `${Math.floor(x / 60)}:${String(x % 60).padStart(2, '0')}`; };

function renderPlayback(p) {
  const box = $('#player');
  box.hidden = !p;
  document.querySelectorAll('#voicemail-list li.playing').forEach(li => li.classList.remove('playing'));
  if (!p) return;
  box.dataset.itemId = p.item_id;
  box.dataset.phase = p.phase;
  const row = document.querySelector(`#voicemail-list li[data-item-id="${CSS.escape(p.item_id)}"]`);
  if (row) row.classList.add('playing');
  $('#player-caller').textContent = row ? $('.caller', row).textContent : '';
  $('#player-state').textContent = t(p.phase === 'ended' ? 'ended' : p.phase);
  // the total size is not known before the download ends: an indeterminate bar and the bytes so far
  const downloading = p.phase === 'downloading';
  $('#download-progress').hidden = !downloading;
  const got = $('#download-bytes');
  got.hidden = !downloading;
  got.dataset.bytes = p.downloaded_bytes;
  got.textContent = p.downloaded_bytes > 0 ? `${Math.round(p.downloaded_bytes / 1024)} KiB` : '';
  const pos = $('#play-position');
  pos.max = p.duration_ms || 1;
  pos.value = Math.min(p.position_ms, pos.max);
  pos.dataset.positionMs = p.position_ms;
  $('#play-time').textContent = `${ms(p.position_ms)} / ${p.duration_ms ? ms(p.duration_ms) : '…'}`;
  $('#player-pause').textContent = t(p.phase === 'paused' ? 'resume' : 'pause');
  $('#player-pause').disabled = !['playing', 'paused'].includes(p.phase);
  $('#player-error').textContent = p.error || '';
  $('#player-open-default').hidden = p.phase !== 'failed';
}

function translate(root) {
  root.querySelectorAll('[data-i18n]').forEach(el => { el.textContent = t(el.dataset.i18n); });
  return root;
}

function fill(node, sel, text) {
  const el = $(sel, node);
  el.textContent = text || '';
  el.hidden = !text;
}

function voicemailRow(v) {
  const li = translate($('#voicemail-template').content.firstElementChild.cloneNode(true));
  li.dataset.itemId = v.item_id;
  li.classList.toggle('unheard', v.unheard);
  fill(li, '.caller', v.caller);
  fill(li, '.number', v.number);
  fill(li, '.urgent', v.urgent ? t('urgent') : '');
  const when = $('.when', li);
  when.textContent = v.when;
  when.title = v.when_exact;
  when.setAttribute('datetime', v.when_exact);
  fill(li, '.duration', v.duration);
  fill(li, '.preview', v.preview);
  $('.play', li).setAttribute('aria-label', `${t('play')}: ${v.caller}`);
  $('.play', li).addEventListener('click', () => act('play', { itemId: v.item_id }));
  const heard = $('.mark-heard', li);
  heard.hidden = !v.unheard;
  heard.addEventListener('click', () => act('mark_heard', { itemId: v.item_id }));
  return li;
}

function callRow(c) {
  const li = translate($('#call-template').content.firstElementChild.cloneNode(true));
  li.dataset.itemId = c.item_id || '';
  li.classList.toggle('unseen', c.unseen);
  fill(li, '.caller', c.caller);
  fill(li, '.number', c.number);
  const when = $('.when', li);
  when.textContent = c.when;
  when.title = c.when_exact;
  fill(li, '.devices', c.devices ? ` · ${c.devices}` : '');
  fill(li, '.reason', c.reason ? ` · ${c.reason}` : '');
  const back = $('.call-back', li);
  back.hidden = !c.call_back;
  back.addEventListener('click', () => act('call_back', { uri: c.call_back }));
  const seen = $('.mark-seen', li);
  seen.hidden = !c.unseen || !c.item_id;
  seen.addEventListener('click', () => act('mark_call_seen', { itemId: c.item_id }));
  return li;
}

async function refreshLists() {
  const lists = await invoke('lists');
  $('#voicemail-list').replaceChildren(...lists.voicemails.map(voicemailRow));
  $('#voicemail-empty').hidden = lists.voicemails.length > 0;
  $('#missed-list').replaceChildren(...lists.missed_calls.map(callRow));
  $('#missed-empty').hidden = lists.missed_calls.length > 0;
  $('#secondary-list').replaceChildren(...lists.secondary_calls.map(callRow));
  $('#secondary-count').textContent = lists.secondary_calls.length;
  if (snapshotNow) renderPlayback(snapshotNow.playback);
  if (pendingFocus) focusItem(pendingFocus);
}

let pendingFocus = null;

function focusItem(id) {
  if (location.hash !== '#inbox') location.hash = '#inbox';
  const li = document.querySelector(`li[data-item-id="${CSS.escape(id)}"]`);
  if (!li) { pendingFocus = id; return; }
  pendingFocus = null;
  document.querySelectorAll('li.focused').forEach(x => x.classList.remove('focused'));
  li.classList.add('focused');
  const details = li.closest('details');
  if (details) details.open = true;
  li.scrollIntoView({ block: 'center' });
  const button = $('button:not([hidden])', li);
  if (button) button.focus();
}

async function act(command, args) {
  try {
    await invoke(command, args);
  } catch (e) {
    $('#player-error').textContent = e && e.message ? e.message : String(e);
    if (command === 'play') { $('#player').hidden = false; $('#player-open-default').hidden = false; }
  }
}

async function runChecks() {
  const out = $('#check-results');
  out.replaceChildren(Object.assign(document.createElement('li'), { textContent: t('checking') }));
  $('#check-settings').disabled = true;
  try {
    const steps = await invoke('check_settings');
    out.replaceChildren(...steps.map(s => {
      const li = document.createElement('li');
      li.className = s.ok ? 'ok' : 'fail';
      li.textContent = `${s.ok ? '✓' : '✗'} ${s.what}`;
      if (s.hint) li.appendChild(Object.assign(document.createElement('div'), { className: 'hint', textContent: s.hint }));
      return li;
    }));
  } catch (e) {
    out.replaceChildren(Object.assign(document.createElement('li'), { className: 'fail', textContent: e.message || String(e) }));
  } finally {
    $('#check-settings').disabled = false;
  }
}

function addPhone(phone = {}, passwordSaved = false) {
  const node = translate($('#phone-template').content.firstElementChild.cloneNode(true));
  $('[name=uri]', node).value = phone.uri || '';
  $('[name=transport]', node).value = phone.transport || 'udp';
  $('[name=mode]', node).value = phone.mode || 'unsolicited';
  $('[name=username]', node).value = phone.username || '';
  // what the window does not edit (refresh_hours, password_env, presence_server,
  // omit_zero_urgent, …) is kept as loaded, so saving never drops it
  node.dataset.prior = JSON.stringify(phone);
  $('[data-note=password]', node).textContent = passwordSaved ? t('password_saved') : '';
  $('.remove-phone', node).addEventListener('click', () => node.remove());
  $('#phones').appendChild(node);
  return node;
}

let loaded = null;

// the password's note: what is saved, where it is kept, and whether the sign-in needs one
function passwordNote() {
  const view = loaded;
  if (!view) return;
  const kept = view.mailbox_password_saved
    ? t('password_saved')
    : (view.keyring_persistent ? t('password_in_keyring') : t('password_session_only'));
  const kerberos = ['negotiate', 'auto'].includes($('#mailbox-auth').value);
  $('#mailbox-password-note').textContent = kerberos ? `${t('password_kerberos')} ${kept}` : kept;
  // OAuth2 signs in with Microsoft in the browser: no password here
  const oauth = $('#mailbox-auth').value === 'oauth2';
  $('#password-fields').hidden = oauth;
  $('#microsoft-fields').hidden = !oauth;
  renderAccount(view.microsoft_account);
}

// who is signed in to Microsoft 365, and the buttons that fit
function renderAccount(who) {
  $('#microsoft-account').textContent = who
    ? `${t('signed_in_as')} ${who.account || '?'} (${(who.scopes || []).map(s => s.split('/').pop()).join(', ')})`
    : t('not_signed_in');
  $('#microsoft-account').dataset.signedIn = who ? 'yes' : 'no';
  $('#microsoft-sign-out').hidden = !who;
}

async function signInMicrosoft() {
  clearErrors();
  setStatus(t('saving'));
  try {
    // the sign-in uses the settings as saved: the client id and authority first
    renderSettings(await invoke('save_settings', { update: collect() }));
  } catch (e) {
    if (e && e.code === 'invalid_settings') { showErrors(e.fields); setStatus(t('fix_fields'), 'fail'); }
    else setStatus(e && e.message ? e.message : String(e), 'fail');
    return;
  }
  $('#microsoft-sign-in').disabled = true;
  setStatus(t('signing_in'));
  try {
    const who = await invoke('sign_in_microsoft');
    renderAccount(who);
    setStatus(`${t('signed_in_as')} ${who.account || '?'}`, 'ok');
  } catch (e) {
    setStatus(e && e.message ? e.message : String(e), 'fail');
  } finally {
    $('#microsoft-sign-in').disabled = false;
  }
}

async function signOutMicrosoft() {
  try {
    await invoke('sign_out_microsoft');
    renderAccount(null);
    setStatus(t('signed_out'), 'ok');
  } catch (e) {
    setStatus(e && e.message ? e.message : String(e), 'fail');
  }
}

function renderSettings(view) {
  loaded = view;
  const m = view.form.mailbox || {};
  $('#mailbox-email').value = m.email || '';
  $('#mailbox-ews-url').value = m.ews_url || '';
  $('#mailbox-username').value = m.username || '';
  $('#mailbox-auth').value = m.auth || 'ntlm';
  $('#mailbox-backend').value = m.backend || 'ews';
  $('#mailbox-client-id').value = m.client_id || '';
  $('#mailbox-password').value = '';
  passwordNote();
  $('#phones').replaceChildren();
  (view.form.phone || []).forEach((p, i) => addPhone(p, view.phone_passwords_saved[i]));
  const n = view.form.notifications || { enabled: true, voicemail: true, missed_calls: true };
  $('#notif-enabled').checked = n.enabled;
  $('#notif-voicemail').checked = n.voicemail;
  $('#notif-missed').checked = n.missed_calls;
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
      // the service and the app registration are edited with OAuth2; what the window does not edit is kept
      backend: $('#mailbox-auth').value === 'oauth2' ? ($('#mailbox-backend').value === 'ews' ? '' : $('#mailbox-backend').value) : (prior.backend || ''),
      graph_url: prior.graph_url || '',
      authority: prior.authority || '',
      client_id: $('#mailbox-auth').value === 'oauth2' ? $('#mailbox-client-id').value.trim() : (prior.client_id || ''),
    } : null,
    notifications: {
      enabled: $('#notif-enabled').checked,
      voicemail: $('#notif-voicemail').checked,
      missed_calls: $('#notif-missed').checked,
    },
    phone: [...document.querySelectorAll('#phones .phone')].map(node => ({
      refresh_hours: 12,
      ...JSON.parse(node.dataset.prior || '{}'),
      uri: $('[name=uri]', node).value.trim(),
      transport: $('[name=transport]', node).value,
      mode: $('[name=mode]', node).value,
      username: $('[name=username]', node).value.trim(),
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
  setStatus(t('saving'));
  try {
    renderSettings(await invoke('save_settings', { update: collect() }));
    setStatus(t('saved'), 'ok');
  } catch (e) {
    if (e && e.code === 'invalid_settings') {
      showErrors(e.fields);
      setStatus(t('fix_fields'), 'fail');
    } else {
      setStatus(e && e.message ? e.message : String(e), 'fail');
    }
  }
}

window.addEventListener('hashchange', showView);
$('#settings-form').addEventListener('submit', save);
$('#add-phone').addEventListener('click', () => $('[name=uri]', addPhone()).focus());
$('#mailbox-auth').addEventListener('change', passwordNote);
$('#retry-now').addEventListener('click', () => act('retry_now', {}));
$('#microsoft-sign-in').addEventListener('click', signInMicrosoft);
$('#microsoft-sign-out').addEventListener('click', signOutMicrosoft);
$('#check-settings').addEventListener('click', runChecks);
$('#player-pause').addEventListener('click', () => act('pause_playback', { paused: $('#player').dataset.phase !== 'paused' }));
$('#player-stop').addEventListener('click', () => act('stop_playback', {}));
$('#player-open-default').addEventListener('click', () => act('open_in_default_player', { itemId: $('#player').dataset.itemId }));
$('#autostart').addEventListener('change', async ev => {
  $('#autostart-error').textContent = '';
  try { ev.target.checked = await invoke('set_autostart', { enabled: ev.target.checked }); }
  catch (e) { $('#autostart-error').textContent = e.message || String(e); ev.target.checked = !ev.target.checked; }
});
showView();
(async () => {
  applyStrings(await invoke('ui_strings'));
  renderSnapshot(await invoke('snapshot'));
  const focus = await invoke('take_focus');
  if (focus) focusItem(focus);
  invoke('autostart').then(on => { $('#autostart').checked = on; }, () => {});
  invoke('settings_view').then(renderSettings, e => setStatus(e.message || String(e), 'fail'));
})();
listen('snapshot', ev => renderSnapshot(ev.payload));
listen('focus-item', ev => { invoke('take_focus'); focusItem(ev.payload); });
// relative times ("5 min ago") move on
setInterval(refreshLists, 60000);
