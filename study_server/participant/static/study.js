// The participant's study page: consent -> instructions -> listening checks (volume, headphone screen,
// spoken word: as the spec says) -> examples -> trials -> done.
// Every answer is POSTed the moment it is given, with an id made here, and retried with backoff until the
// server acknowledges it; pending answers are kept in localStorage so a reload sends them again.
// Trials are known only by position and an opaque media URL.
(function () {
  "use strict";

  var app = document.getElementById("app");
  var TOKEN = app.dataset.token;
  var API = app.dataset.api; // /api/v1/a/<token>
  var DONE_URL = app.dataset.done;
  var OUTBOX_KEY = "emostudy-outbox-" + TOKEN;

  var state = null;
  var exampleIndex = 0;
  var order = []; // positions still to answer, in batch order
  var orderReady = false;
  var current = null; // {position, endedAt, form state}

  // ------------------------------------------------------------------------------------ helpers
  function $(id) { return document.getElementById(id); }

  // ------------------------------------------------------------------------- the platform's words
  // Every sentence this script shows comes from the server's message catalogue, in the study's language
  // (study_server/participant/i18n.py puts them in the page as JSON); T() looks one up by its English msgid
  // and fills its %(name)s placeholders.
  var UI = (function () {
    try { return JSON.parse($("ui-strings").textContent); } catch (e) { return { text: {}, errors: {} }; }
  })();
  function T(msgid, vars) {
    var s = (UI.text && UI.text[msgid]) || msgid;
    return s.replace(/%\((\w+)\)s/g, function (m, name) { return vars && name in vars ? String(vars[name]) : m; });
  }

  function show(stepId) {
    var steps = document.querySelectorAll(".step");
    for (var i = 0; i < steps.length; i++) steps[i].hidden = steps[i].id !== stepId;
    var heading = $(stepId).querySelector("h1, progress");
    window.scrollTo(0, 0);
    if (heading && heading.focus) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
  }

  function message(title, text) {
    $("message-title").textContent = title;
    $("message-text").textContent = text;
    show("step-message");
  }

  function request(method, path, body, timeoutMs) {
    var opts = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    // A request that hangs is abandoned after timeoutMs and counts as a network error (so it is retried).
    var timer = null;
    if (timeoutMs && window.AbortController) {
      var controller = new AbortController();
      opts.signal = controller.signal;
      timer = setTimeout(function () { controller.abort(); }, timeoutMs);
    }
    return fetch(API + path, opts).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (timer) clearTimeout(timer);
        return { status: resp.status, data: data, headers: resp.headers };
      });
    }, function (err) {
      if (timer) clearTimeout(timer);
      throw err;
    });
  }

  function newId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  // 503 (the server's database is restarting or busy) and 429 (too many requests) pass by themselves: the
  // page says so and sends the request again after the server's Retry-After (docs/server_api.md).
  var UNAVAILABLE_TEXT = T("The study's server is briefly unavailable. Nothing is lost: this page keeps your " +
    "answers and will try again by itself in a few seconds.");
  function passing(r) { return r.status === 503 || r.status === 429; }
  function retryAfterMs(r) {
    var s = parseFloat(r.headers && r.headers.get("Retry-After"));
    return (isFinite(s) && s > 0 ? Math.min(s, 30) : 5) * 1000;
  }
  function requestRetrying(method, path, body, timeoutMs, tries) {
    tries = tries || 0;
    return request(method, path, body, timeoutMs).then(function (r) {
      if (!passing(r) || tries >= 40) {
        if (tries) updateSaving();
        return r;
      }
      $("saving").textContent = UNAVAILABLE_TEXT;
      return sleep(retryAfterMs(r) * (0.75 + Math.random() * 0.5)).then(function () {
        return requestRetrying(method, path, body, timeoutMs, tries + 1);
      });
    });
  }

  function errorText(data) {
    // The catalogue's sentence for the error's code; the API's own (English) message is for programs.
    var code = data && data.error && data.error.code;
    return (code && UI.errors && UI.errors[code]) || UI.generic_error || "";
  }

  // ----------------------------------------------------------------------------------- outbox
  var outbox = loadOutbox(); // answer_id -> body
  var inflight = {};

  function loadOutbox() {
    try { return JSON.parse(window.localStorage.getItem(OUTBOX_KEY) || "{}") || {}; }
    catch (e) { return {}; }
  }

  function saveOutbox() {
    try { window.localStorage.setItem(OUTBOX_KEY, JSON.stringify(outbox)); }
    catch (e) { /* private mode: the in-memory outbox still retries until acknowledged */ }
  }

  function pendingCount() { return Object.keys(outbox).length; }

  function updateSaving() {
    var n = pendingCount();
    $("saving").textContent = n ? T("Saving %(n)s answer(s)\u2026", { n: n }) : "";
  }

  function enqueue(body) {
    outbox[body.answer_id] = body;
    saveOutbox();
    send(body.answer_id);
  }

  function send(answerId) {
    if (inflight[answerId]) return;
    inflight[answerId] = true;
    updateSaving();
    var attempt = 0;
    var atLeast = 0;
    function tryOnce() {
      var body = outbox[answerId];
      if (!body) { delete inflight[answerId]; updateSaving(); return Promise.resolve(); }
      return request("POST", "/answers", body, 15000).then(function (r) {
        if (r.status === 200 || (r.status === 409 && r.data.error && r.data.error.code === "already_answered")) {
          delete outbox[answerId];
          saveOutbox();
          delete inflight[answerId];
          updateSaving();
          return;
        }
        if (r.status === 429 || r.status >= 500) {
          atLeast = passing(r) ? retryAfterMs(r) : 0;
          if (passing(r)) $("saving").textContent = UNAVAILABLE_TEXT;
          throw new Error("retry");
        }
        // A refusal that a retry cannot fix: drop it, say so.
        delete outbox[answerId];
        saveOutbox();
        delete inflight[answerId];
        updateSaving();
        message(T("Sorry"), errorText(r.data));
      }).catch(function () {
        attempt += 1;
        var wait = Math.max(atLeast, Math.min(8000, 250 * Math.pow(2, attempt))) * (0.75 + Math.random() * 0.5);
        atLeast = 0;
        return sleep(wait).then(tryOnce);
      });
    }
    return tryOnce();
  }

  function flushOutbox() {
    Object.keys(outbox).forEach(send);
  }

  function waitForOutbox(timeoutMs) {
    var start = Date.now();
    return new Promise(function (resolve) {
      (function check() {
        if (!pendingCount() || Date.now() - start > timeoutMs) resolve(!pendingCount());
        else setTimeout(check, 100);
      })();
    });
  }

  // ------------------------------------------------------------------------------------- flow
  function start() {
    requestRetrying("GET", "").then(function (r) {
      if (r.status !== 200) { message(T("Sorry"), errorText(r.data)); return; }
      state = r.data;
      flushOutbox();
      route();
    }).catch(function () {
      message(T("Connection problem"), T("The study could not be loaded. Please check your connection and reload the page."));
    });
  }

  function computeOrder() {
    // Positions neither stored on the server nor waiting in the outbox, in batch order.
    var pending = {};
    Object.keys(outbox).forEach(function (k) { pending[outbox[k].position] = true; });
    var answered = {};
    state.answered.forEach(function (p) { answered[p] = true; });
    (state.media_failed || []).forEach(function (p) { answered[p] = true; }); // done, without an answer
    order = state.items.map(function (it) { return it.position; })
      .filter(function (p) { return !answered[p] && !pending[p]; });
    orderReady = true;
  }

  function route() {
    var status = state.status;
    if (state.completion) { window.location.replace(DONE_URL); return; }
    if (status === "allocated") { show("step-consent"); return; }
    if (status === "returned") { message(T("Thank you"), T("You chose not to take part. You may close this page and return the task.")); return; }
    if (status === "declined") { declinedMessage(); return; }
    if (status === "abandoned") { if (state.technical_failure) technicalFailureMessage(); else abandonedMessage(); return; }
    if (status === "expired") { message(T("Sorry"), T("Your place in this study was released after a long pause. Please open the study again from the page that sent you here.")); return; }
    if (status === "rejected" || status === "approved" || status === "submitted" || status === "completed") {
      window.location.replace(DONE_URL); return;
    }
    computeOrder();
    if (state.answered.length || pendingCount()) {
      // Resuming: straight back to the first unanswered item.
      if (state.audio_check.enabled && !state.audio_check.passed) { startChecks(); return; }
      nextTrial();
      return;
    }
    afterConsent();
  }

  $("consent-yes").addEventListener("click", function () {
    this.disabled = true;
    var btn = this;
    requestRetrying("POST", "/start", consentBody()).then(function (r) {
      btn.disabled = false;
      if (r.status !== 200) { message(T("Sorry"), errorText(r.data)); return; }
      state = r.data; // the start reply is the whole state
      afterConsent();
    }).catch(function () { btn.disabled = false; });
  });

  // ------------------------------------------------------------------------- video at its size
  // A clip is shown at the width the spec sets ([participant] video_width) or at its own width, never
  // stretched past twice its own size (a 128 px clip is not blown up to fill the card), and never wider
  // than the page or taller than the room the questions leave (CSS max-width / max-height).
  var VIDEO_WIDTH = parseInt(app.dataset.videoWidth || "0", 10) || 0;
  function sizeVideo(video) {
    if (!video.videoWidth) return;
    var target = VIDEO_WIDTH || video.videoWidth;
    // min(..., 100%): the inline max-width below replaces the stylesheet's max-width: 100%, so the width
    // itself keeps the clip inside a narrow screen
    video.style.width = "min(" + Math.min(target, 2 * video.videoWidth) + "px, 100%)";
    video.style.maxWidth = (2 * video.videoWidth) + "px";  // the 2x cap, read by the browser test
    video.style.aspectRatio = video.videoWidth + " / " + video.videoHeight;
  }
  ["trial-video", "example-video"].forEach(function (id) {
    $(id).addEventListener("loadedmetadata", function () { sizeVideo(this); });
  });

  // ------------------------------------------------------------------------------ demographics
  // The spec's questions about the participant ([demographics]): after the consent or at the end, once.
  var demographicsThen = null;
  function demographicsDue(when) {
    var d = state && state.demographics;
    return !!(d && d.when === when && !d.done && $("step-demographics"));
  }

  function afterConsent() {
    if (demographicsDue("after_consent")) { showDemographics(function () { show("step-instructions"); }); return; }
    show("step-instructions");
  }

  function showDemographics(then) {
    demographicsThen = then;
    $("demographics-feedback").textContent = "";
    show("step-demographics");
  }

  function demographicsValues() {
    var values = {};
    var sets = document.querySelectorAll("#demographics-form fieldset.demo-item");
    Array.prototype.forEach.call(sets, function (fs) {
      var id = fs.dataset.item;
      var prefer = fs.querySelector("input.demo-prefer:checked");
      if (prefer) { values[id] = prefer.value; return; }
      var input = fs.querySelector("input.demo-value");
      if (input) { if (input.value.trim()) values[id] = input.value.trim(); return; }
      var picked = fs.querySelector('input[type="radio"]:checked');
      if (!picked) return;
      values[id] = picked.value === "self" ? "self:" + fs.querySelector("input.demo-self").value : picked.value;
    });
    return values;
  }

  if ($("demographics-form")) {
    $("demographics-form").addEventListener("change", function (ev) {
      // "Prefer not to say" and an answer exclude each other
      var fs = ev.target.closest("fieldset");
      if (!fs || ev.target.type !== "checkbox" || !ev.target.checked) return;
      var input = fs.querySelector("input.demo-value");
      if (input) input.value = "";
    });
    $("demographics-form").addEventListener("input", function (ev) {
      var fs = ev.target.closest("fieldset");
      var prefer = fs && fs.querySelector("input.demo-prefer");
      if (prefer && prefer.type === "checkbox" && ev.target.value) prefer.checked = false;
    });
    $("demographics-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var btn = $("demographics-next");
      btn.disabled = true;
      requestRetrying("POST", "/demographics", { values: demographicsValues() }).then(function (r) {
        btn.disabled = false;
        if (r.status !== 200) { $("demographics-feedback").textContent = errorText(r.data); return; }
        state.demographics.done = true;
        var then = demographicsThen;
        demographicsThen = null;
        if (then) then();
      }).catch(function () { btn.disabled = false; $("demographics-feedback").textContent = T("Connection problem; please try again."); });
    });
  }

  // ------------------------------------------------------------------------ consent statements
  // Each statement of the researcher's consent is a checkbox; "I agree" opens when all are ticked, and the
  // server checks the same ({"agree": [indices]}). "I do not consent" frees the place (status declined).
  function consentBoxes() { return document.querySelectorAll("#consent-statements input.consent-statement"); }

  function consentBody() {
    var boxes = consentBoxes();
    if (!boxes.length) return undefined;
    var agree = [];
    for (var i = 0; i < boxes.length; i++) if (boxes[i].checked) agree.push(parseInt(boxes[i].value, 10));
    return { agree: agree };
  }

  function updateConsentButton() {
    var boxes = consentBoxes();
    var all = true;
    for (var i = 0; i < boxes.length; i++) if (!boxes[i].checked) all = false;
    $("consent-yes").disabled = !all;
  }

  if ($("consent-statements")) $("consent-statements").addEventListener("change", updateConsentButton);

  function declinedMessage() {
    message(T("Thank you"), T("You chose not to take part. Your place has been given back; you may close this page."));
  }

  $("consent-no").addEventListener("click", function () {
    var btn = this;
    btn.disabled = true;
    requestRetrying("POST", "/decline").then(function (r) {
      btn.disabled = false;
      if (r.status !== 200) { message(T("Sorry"), errorText(r.data)); return; }
      state.status = r.data.status;
      declinedMessage();
    }).catch(function () { btn.disabled = false; });
  });

  $("instructions-next").addEventListener("click", function () {
    if (state.audio_check.enabled && !state.audio_check.passed) startChecks();
    else startExamples();
  });

  function abandonedMessage() {
    var L = state && state.listening;
    if (L && L.screen && L.screen.passed === false) {
      message(T("Sorry"), T("This study needs headphones, and the headphone check did not succeed. Please return " +
        "the task (you will not be penalised for it). Thank you for trying."));
    } else {
      message(T("Sorry"), T("This study needs working sound, and the sound check did not succeed. Please return the task. Thank you for trying."));
    }
  }

  function afterChecks() {
    if (state.answered.length || pendingCount()) nextTrial(); else startExamples();
  }

  // ------------------------------------------------- listening checks: volume, headphone screen
  // The screen's sounds come from the server; which interval is right is known only there.
  function startChecks() {
    var L = state.listening;
    if (L && L.screen.passed !== true) {
      if (!L.calibrated) showCalibration(); else showScreen();
      return;
    }
    if (!L || L.words) { startAudioCheck(); return; }
    afterChecks();
  }

  function showCalibration() {
    var audio = $("calibration-audio");
    audio.src = state.listening.calibration_url;
    $("calibration-done").disabled = true;
    show("step-calibration");
  }

  $("calibration-play").addEventListener("click", function () {
    var audio = $("calibration-audio");
    if (!audio.paused) { audio.pause(); this.textContent = T("Play the noise"); return; }
    audio.currentTime = 0;
    audio.play();
    this.textContent = T("Stop the noise");
  });

  $("calibration-audio").addEventListener("playing", function () { $("calibration-done").disabled = false; });

  $("calibration-done").addEventListener("click", function () {
    var btn = this;
    btn.disabled = true;
    $("calibration-audio").pause();
    request("POST", "/listening/calibrated", {}).then(function (r) {
      if (r.status !== 200) { btn.disabled = false; message(T("Sorry"), errorText(r.data)); return; }
      state.listening = r.data.listening;
      showScreen();
    }).catch(function () { btn.disabled = false; });
  });

  var screenPlayed = false;

  function setChoices(enabled) {
    var buttons = $("screen-choices").querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = !enabled;
  }

  function showScreen(feedback) {
    var sc = state.listening.screen;
    $("screen-task").textContent = sc.kind === "antiphase"
      ? T("Press Play: you will hear three tones, one after the other. Which tone is the softest (quietest): 1, 2 or 3?")
      : T("Press Play: you will hear three noises, one after the other. One of them has a faint tone hidden in it. Which one: 1, 2 or 3?");
    $("screen-progress").textContent = T("Sound %(n)s of %(total)s", { n: sc.answered + 1, total: sc.trials });
    $("screen-feedback").textContent = feedback || "";
    $("screen-audio").src = sc.media_url;
    screenPlayed = false;
    setChoices(false);
    $("screen-play").disabled = false;
    show("step-screen");
  }

  $("screen-play").addEventListener("click", function () {
    var audio = $("screen-audio");
    this.disabled = true; // each set of sounds plays once, as in the published tests
    audio.currentTime = 0;
    audio.play().catch(function () { $("screen-play").disabled = false; });
  });

  $("screen-audio").addEventListener("ended", function () {
    screenPlayed = true;
    setChoices(true);
    $("screen-choices").querySelector("button").focus();
  });

  $("screen-audio").addEventListener("error", function () {
    $("screen-feedback").textContent = T("The sound could not be loaded. Please check your connection and press Play again.");
    $("screen-play").disabled = false;
  });

  function answerScreen(value) {
    if (!screenPlayed) return;
    screenPlayed = false;
    setChoices(false);
    var sc = state.listening.screen;
    var leftBefore = sc.attempts_left;
    request("POST", "/listening/answer", { trial: sc.next_trial, answer: value }).then(function (r) {
      if (r.status !== 200) {
        if (r.status === 429 || r.status >= 500) { screenPlayed = true; setChoices(true);
          $("screen-feedback").textContent = T("Connection problem; please choose again."); return; }
        message(T("Sorry"), errorText(r.data)); return;
      }
      state.listening = r.data.listening;
      state.status = r.data.status;
      var now = state.listening.screen;
      if (r.data.status === "abandoned" && r.data.screen_out && r.data.screen_out.url) {
        // The study pays who fails the headphone check a fixed amount on Prolific: back there with its code.
        window.location.replace(r.data.screen_out.url); return;
      }
      if (r.data.status === "abandoned") { abandonedMessage(); return; }
      if (now.passed === true) {
        if (state.listening.words) startAudioCheck();
        else { state.audio_check.passed = true; afterChecks(); }
        return;
      }
      showScreen(now.attempts_left < leftBefore
        ? T("That round did not pass. Please make sure you are wearing headphones (both sides), then try again " +
            "(rounds left: %(n)s).", { n: now.attempts_left })
        : "");
    }).catch(function () {
      screenPlayed = true;
      setChoices(true);
      $("screen-feedback").textContent = T("Connection problem; please choose again.");
    });
  }

  $("screen-choices").addEventListener("click", function (ev) {
    var btn = ev.target.closest ? ev.target.closest("button") : null;
    if (btn && !btn.disabled) answerScreen(parseInt(btn.dataset.answer, 10));
  });

  document.addEventListener("keydown", function (ev) {
    if ($("step-screen").hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "1" || ev.key === "2" || ev.key === "3") answerScreen(parseInt(ev.key, 10));
  });

  // ------------------------------------------------------------------------------ audio check
  function startAudioCheck() {
    $("audio-word").src = state.audio_check.media_url;
    $("audio-feedback").textContent = "";
    show("step-audio");
  }

  $("audio-play").addEventListener("click", function () {
    var audio = $("audio-word");
    audio.currentTime = 0;
    audio.play();
  });

  $("audio-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var input = $("audio-answer");
    if (!input.value.trim()) { input.focus(); return; }
    $("audio-submit").disabled = true;
    requestRetrying("POST", "/audio-check", { answer: input.value }).then(function (r) {
      $("audio-submit").disabled = false;
      if (r.status !== 200) { message(T("Sorry"), errorText(r.data)); return; }
      if (r.data.passed) {
        state.audio_check.passed = true;
        if (state.answered.length || pendingCount()) nextTrial(); else startExamples();
        return;
      }
      if (r.data.status === "abandoned") { abandonedMessage(); return; }
      input.value = "";
      $("audio-word").src = r.data.media_url;
      $("audio-feedback").textContent = T("That was not the word. Please listen to a new word (tries left: %(n)s).",
        { n: r.data.attempts_left });
      input.focus();
    }).catch(function () {
      $("audio-submit").disabled = false;
      $("audio-feedback").textContent = T("Connection problem; please try again.");
    });
  });

  // --------------------------------------------------------------------------------- examples
  function startExamples() {
    if (!state.examples.length) { nextTrial(); return; }
    exampleIndex = 0;
    showExample();
  }

  function showExample() {
    var ex = state.examples[exampleIndex];
    var video = $("example-video");
    exampleFailures = 0;
    $("example-media-error").hidden = true;
    video.src = ex.media_url;
    $("example-label").textContent = T("Example %(n)s: %(label)s", { n: exampleIndex + 1, label: ex.label });
    $("example-progress").textContent = T("Example %(n)s of %(total)s", { n: exampleIndex + 1, total: state.examples.length });
    $("example-next").disabled = true;
    show("step-examples");
  }

  $("example-play").addEventListener("click", function () {
    var video = $("example-video");
    video.currentTime = 0;
    video.play();
  });

  $("example-video").addEventListener("ended", function () {
    $("example-next").disabled = false;
    $("example-next").focus();
  });

  // An example that will not load: a message and a retry; after three failures the participant may go on
  // (examples are not answered, so nothing is recorded).
  var exampleFailures = 0;
  $("example-video").addEventListener("error", function () {
    if (!$("example-video").getAttribute("src")) return;
    exampleFailures += 1;
    var canSkip = exampleFailures >= 3;
    $("example-media-error-text").textContent = canSkip
      ? T("This example could not be loaded (%(n)s tries). You can try again, or press Next to go on.", { n: exampleFailures })
      : T("This example could not be loaded. Please check your internet connection and press Try again.");
    if (canSkip) $("example-next").disabled = false;
    $("example-media-error").hidden = false;
  });

  $("example-retry").addEventListener("click", function () {
    var video = $("example-video");
    $("example-media-error").hidden = true;
    video.src = state.examples[exampleIndex].media_url;
    video.load();
  });

  $("example-next").addEventListener("click", function () {
    exampleIndex += 1;
    if (exampleIndex < state.examples.length) showExample(); else nextTrial();
  });

  // ----------------------------------------------------------------------------------- trials
  function questionsHtml() {
    var box = $("questions");
    box.textContent = "";
    state.questions.forEach(function (q) {
      var fs = document.createElement("fieldset");
      fs.className = "question";
      fs.dataset.qid = q.id;
      fs.dataset.type = q.type;
      fs.disabled = true;
      var legend = document.createElement("legend");
      legend.textContent = q.prompt;
      fs.appendChild(legend);
      var list = document.createElement("div");
      list.className = "options" + (q.type === "scale" ? " scale" : "");
      q.options.forEach(function (o, i) {
        var id = "q-" + q.id + "-" + i;
        var label = document.createElement("label");
        label.className = "option";
        label.htmlFor = id;
        var input = document.createElement("input");
        input.type = q.type === "multi" ? "checkbox" : "radio";
        input.name = "q-" + q.id;
        input.id = id;
        input.value = o.value;
        if (o.exclusive) input.dataset.exclusive = "1";
        label.appendChild(input);
        var span = document.createElement("span");
        span.textContent = o.label;
        label.appendChild(span);
        list.appendChild(label);
      });
      fs.appendChild(list);
      box.appendChild(fs);
    });
  }

  function collect() {
    var values = {};
    var complete = true;
    state.questions.forEach(function (q) {
      var inputs = document.querySelectorAll('input[name="q-' + q.id + '"]:checked');
      var chosen = Array.prototype.map.call(inputs, function (i) { return i.value; });
      if (q.type === "multi") { if (chosen.length) values[q.id] = chosen; }
      else if (chosen.length) values[q.id] = chosen[0];
      if (q.required && !chosen.length) complete = false;
    });
    return { values: values, complete: complete };
  }

  $("questions").addEventListener("change", function (ev) {
    var input = ev.target;
    if (input.type === "checkbox" && input.checked) {
      // An exclusive option ("None") clears the others, and the others clear it.
      var group = document.querySelectorAll('input[name="' + input.name + '"]');
      Array.prototype.forEach.call(group, function (other) {
        if (other !== input && (input.dataset.exclusive || other.dataset.exclusive)) other.checked = false;
      });
    }
    $("trial-next").disabled = !(current && current.endedAt && collect().complete);
  });

  function playedFraction(video) {
    var total = 0;
    for (var i = 0; i < video.played.length; i++) total += video.played.end(i) - video.played.start(i);
    return video.duration ? Math.max(0, Math.min(1, total / video.duration)) : null;
  }

  function nextTrial() {
    if (!orderReady) computeOrder();
    if (!order.length) { finish(); return; }
    var position = order[0];
    var item = state.items.filter(function (it) { return it.position === position; })[0];
    current = { position: position, endedAt: null, failures: 0, mediaUrl: item.media_url };
    questionsHtml();
    $("trial-media-error").hidden = true;
    var video = $("trial-video");
    video.src = item.media_url;
    video.load();
    var done = state.total - order.length;
    $("trial-progress").value = done;
    $("trial-progress-text").textContent = T("Video %(n)s of %(total)s", { n: done + 1, total: state.total });
    $("trial-next").disabled = true;
    $("trial-play").textContent = T("Play");
    $("trial-hint").hidden = false;
    show("step-trial");
    $("trial-play").focus();
  }

  $("trial-play").addEventListener("click", function () {
    var video = $("trial-video");
    video.currentTime = 0;
    var p = video.play();
    if (p && p.catch) p.catch(function () { /* the user can press Play again */ });
  });

  // ------------------------------------------------------------------- a clip that will not load
  // A clear message and a retry; after MAX_MEDIA_FAILURES failed loads the participant may go on, and the
  // trial is recorded on the server as "media failed" (not as an answer).
  var MAX_MEDIA_FAILURES = 3;
  var MEDIA_ERRORS = ["MEDIA_ERR_UNKNOWN", "MEDIA_ERR_ABORTED", "MEDIA_ERR_NETWORK", "MEDIA_ERR_DECODE",
                      "MEDIA_ERR_SRC_NOT_SUPPORTED"];

  $("trial-video").addEventListener("error", function () {
    var video = $("trial-video");
    if (!current || !video.getAttribute("src")) return;
    current.failures += 1;
    current.error = MEDIA_ERRORS[(video.error && video.error.code) || 0] || "MEDIA_ERR_UNKNOWN";
    var canSkip = current.failures >= MAX_MEDIA_FAILURES;
    $("trial-media-error-text").textContent = canSkip
      ? T("This video could not be loaded (%(n)s tries). You can try once more, or go on " +
          "without it: it will be recorded as a video that did not load, not as an answer.", { n: current.failures })
      : T("This video could not be loaded. Please check your internet connection and press Try again " +
          "(try %(n)s of %(total)s).", { n: current.failures, total: MAX_MEDIA_FAILURES });
    $("trial-skip").hidden = !canSkip;
    $("trial-retry").disabled = false;
    $("trial-skip").disabled = false;
    $("trial-media-error").hidden = false;
    $("trial-retry").focus();
  });

  $("trial-retry").addEventListener("click", function () {
    if (!current) return;
    var video = $("trial-video");
    $("trial-media-error").hidden = true;
    video.src = current.mediaUrl;
    video.load();
    $("trial-play").focus();
  });

  $("trial-skip").addEventListener("click", function () {
    if (!current || current.failures < MAX_MEDIA_FAILURES) return;
    var report = { position: current.position, failures: current.failures, error: current.error };
    $("trial-skip").disabled = true;
    $("trial-retry").disabled = true;
    $("trial-media-error-text").textContent = T("Saving\u2026");
    sendMediaFailure(report, 0);
  });

  function sendMediaFailure(report, attempt) {
    request("POST", "/media-failed", report, 15000).then(function (r) {
      var code = r.data && r.data.error && r.data.error.code;
      if (r.status === 200 && r.data.technical_failure) { technicalFailureMessage(); return; }
      if (r.status === 200 || (r.status === 409 && code === "already_answered")) {
        if (!state.media_failed) state.media_failed = [];
        state.media_failed.push(report.position);
        $("trial-video").removeAttribute("src");
        order.shift();
        current = null;
        nextTrial();
        return;
      }
      if (r.status >= 500 || r.status === 429) throw new Error("retry");
      message(T("Sorry"), errorText(r.data));
    }).catch(function () {
      // Offline or overloaded: keep trying, with a growing pause.
      return sleep(Math.min(30000, 1000 * Math.pow(2, attempt))).then(function () {
        sendMediaFailure(report, attempt + 1);
      });
    });
  }

  $("trial-video").addEventListener("ended", function () {
    if (!current) return;
    if (!current.endedAt) current.endedAt = Date.now();
    var sets = document.querySelectorAll("#questions fieldset");
    for (var i = 0; i < sets.length; i++) sets[i].disabled = false;
    $("trial-hint").hidden = true;
    $("trial-play").textContent = T("Play again");
    var first = document.querySelector("#questions input");
    if (first) first.focus();
    $("trial-next").disabled = !collect().complete;
  });

  $("trial-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (!current || !current.endedAt) return;
    var answer = collect();
    if (!answer.complete) return;
    var video = $("trial-video");
    enqueue({
      answer_id: newId(),
      position: current.position,
      values: answer.values,
      rt_ms: Date.now() - current.endedAt,
      played_fraction: playedFraction(video),
    });
    video.pause();
    order.shift();
    current = null;
    nextTrial();
  });

  // ------------------------------------------------------------ issue 29: technical failure (begin)
  // Too many videos would not load: the server ended the session (the researchers review it).
  function technicalFailureMessage() {
    $("trial-video").removeAttribute("src");
    current = null;
    message(T("Sorry"), T("Several videos could not be loaded, so this study cannot go on. The researchers have " +
      "been told and will review your session. Thank you for your time."));
  }
  // -------------------------------------------------------------- issue 29: technical failure (end)

  // ------------------------------------------------------------------ issue 29: media watchdog (begin)
  // A clip whose response never arrives (no reset, no error) would leave the page waiting for ever. After
  // Play, MEDIA_STALL_MS without any media progress counts as a failed load: the same message, "Try again"
  // and, after three, "Go on", as for a load error.
  var MEDIA_STALL_MS = 10000;

  function watchMedia(video, onStall) {
    var timer = null;
    function disarm() { if (timer) { clearTimeout(timer); timer = null; } }
    function arm() {
      disarm();
      timer = setTimeout(function () {
        timer = null;
        if (video.ended || video.paused || !video.getAttribute("src")) return;
        onStall(video);
      }, MEDIA_STALL_MS);
    }
    video.addEventListener("play", arm);
    ["progress", "timeupdate", "loadeddata", "canplaythrough"].forEach(function (name) {
      video.addEventListener(name, function () { if (timer) arm(); });
    });
    ["ended", "error", "emptied", "pause"].forEach(function (name) { video.addEventListener(name, disarm); });
  }

  function stalled(video, errorName) {
    video.pause();
    video.dispatchEvent(new Event("error")); // the load-error handler shows the message and the buttons
    if (errorName && current) current.error = errorName;
  }

  watchMedia($("trial-video"), function (video) { if (current) stalled(video, "MEDIA_STALLED"); });
  watchMedia($("example-video"), function (video) { stalled(video, null); });
  // -------------------------------------------------------------------- issue 29: media watchdog (end)

  // ----------------------------------------------------------------------------------- finish
  function finish() {
    if (demographicsDue("end")) { showDemographics(finish); return; }
    show("step-finish");
    $("finish-retry").hidden = true;
    $("finish-text").textContent = T("Saving your answers\u2026");
    waitForOutbox(120000).then(function (allSaved) {
      if (!allSaved) {
        $("finish-text").textContent = T("Some answers are not saved yet (connection problem). Please keep this page open; press Try again.");
        $("finish-retry").hidden = false;
        return;
      }
      return requestRetrying("POST", "/complete").then(function (r) {
        if (r.status === 200) { window.location.replace(DONE_URL); return; }
        if (r.status === 409 && r.data.error && r.data.error.code === "incomplete") {
          // The server lacks some answers (e.g. dropped while offline): ask them again.
          order = r.data.error.missing.slice();
          nextTrial();
          return;
        }
        $("finish-text").textContent = errorText(r.data);
        $("finish-retry").hidden = false;
      });
    }).catch(function () {
      $("finish-text").textContent = T("Connection problem. Please press Try again.");
      $("finish-retry").hidden = false;
    });
  }

  $("finish-retry").addEventListener("click", function () { flushOutbox(); finish(); });

  window.addEventListener("online", flushOutbox);
  setInterval(function () {
    if (state && (state.status === "started" || state.status === "allocated")) request("POST", "/ping").catch(function () {});
  }, 120000);

  start();
})();
