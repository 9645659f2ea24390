// el4ner review page: plain JS, no build step. Talks to the JSON API of spacy_el4ner/annotate/app.py.
(function () {
  "use strict";
  var cfg = null;         // {dataset, labels, colors, counts}
  var active = 0;         // index of the active label
  var current = null;     // the task being answered: {task, spans}
  var stash = [];         // tasks handed to this page and set aside by an undo
  var history = [];       // this session's answers, newest first
  var editing = null;     // an earlier answer being changed: {task, spans, answer}
  var busy = false;
  var justSelected = false;
  var $ = function (id) { return document.getElementById(id); };

  function setState(state) { document.body.dataset.state = state; }
  function setStatus(msg) { $("status").textContent = msg || ""; }

  function api(path, body) {
    var opts = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
    return fetch(path, opts).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = JSON.parse(text); } catch (e) { data = {error: text.slice(0, 200)}; }
        if (!r.ok) { throw new Error((data && data.error) || ("HTTP " + r.status)); }
        return data;
      });
    });
  }

  function view(task, answer) {
    return {
      task: task,
      answer: answer,
      spans: task.spans.map(function (s) {
        return {start: s.start, end: s.end, token_start: s.token_start, token_end: s.token_end, label: s.label, score: s.score};
      })
    };
  }
  function shown() { return editing || current; }
  function taskId(v) { return String(v.task._input_hash); }

  // -- rendering -------------------------------------------------------------------------------
  function tokenEl(tok) {
    var el = document.createElement("span");
    el.className = "tok";
    el.dataset.i = String(tok.id);
    el.textContent = tok.text;
    return el;
  }

  // The text exactly as task.text (labels, scores and buttons are drawn by CSS, not text nodes),
  // so that character offsets of a selection are offsets into the text.
  function renderText(el, v, interactive) {
    el.textContent = "";
    var toks = v.task.tokens;
    var spans = v.spans.slice().sort(function (a, b) { return a.start - b.start; });
    var si = 0, i = 0;
    while (i < toks.length) {
      var sp = spans[si];
      if (sp && sp.token_start === i) {
        var mark = document.createElement("mark");
        mark.className = "ent";
        mark.style.background = cfg.colors[sp.label] || "#ddd";
        mark.dataset.index = String(v.spans.indexOf(sp));
        mark.dataset.label = sp.label;
        for (var j = sp.token_start; j <= sp.token_end; j++) {
          mark.appendChild(tokenEl(toks[j]));
          if (j < sp.token_end && toks[j].ws) { mark.appendChild(document.createTextNode(" ")); }
        }
        var lbl = document.createElement("span");
        lbl.className = "lbl";
        lbl.dataset.label = sp.label;
        mark.appendChild(lbl);
        if (sp.score !== undefined && sp.score !== null) {
          var sc = document.createElement("span");
          sc.className = "score";
          sc.dataset.score = Number(sp.score).toFixed(2);
          mark.appendChild(sc);
        }
        if (interactive) {
          var rm = document.createElement("button");
          rm.className = "rm";
          rm.title = "remove";
          rm.setAttribute("aria-label", "remove " + sp.label);
          mark.appendChild(rm);
        }
        el.appendChild(mark);
        if (toks[sp.token_end].ws) { el.appendChild(document.createTextNode(" ")); }
        i = sp.token_end + 1;
        si++;
      } else {
        el.appendChild(tokenEl(toks[i]));
        if (toks[i].ws) { el.appendChild(document.createTextNode(" ")); }
        i++;
      }
    }
  }

  function renderLabels() {
    var nav = $("labels");
    nav.textContent = "";
    cfg.labels.forEach(function (label, i) {
      var b = document.createElement("button");
      b.style.background = cfg.colors[label];
      b.textContent = (i < 9 ? (i + 1) + " " : "") + label;
      b.dataset.label = label;
      if (i === active) { b.className = "active"; }
      b.addEventListener("mousedown", function (e) { e.preventDefault(); });
      b.addEventListener("click", function () { active = i; renderLabels(); });
      nav.appendChild(b);
    });
  }

  function renderCounts(counts) {
    var d = counts.dataset || {};
    $("counts").textContent = (d.accept || 0) + " accepted, " + (d.reject || 0) + " rejected, " + (d.ignore || 0) +
      " ignored in the dataset \u00b7 " + counts.session + " this session \u00b7 " + counts.store + " demonstrations in the store";
  }

  function render() {
    var v = shown();
    var card = $("card");
    $("banner").hidden = !editing;
    if (editing) {
      $("banner").textContent = "Changing an earlier answer (" + editing.answer + "): a, x or space saves it again; Esc goes back.";
    }
    if (!v) {
      card.dataset.task = "";
      $("text").textContent = "No more texts to annotate.";
      $("meta").textContent = "";
      setState("done");
    } else {
      card.dataset.task = taskId(v);
      renderText($("text"), v, true);
      var m = v.task.meta || {};
      var parts = [];
      if (m.confidence !== undefined) { parts.push("confidence " + Number(m.confidence).toFixed(2)); }
      if (m.candidates) { parts.push(m.candidates.length + " candidate(s)"); }
      if (m.demos) { parts.push("suggested with " + m.demos.length + " demonstration(s)"); }
      $("meta").textContent = parts.join(" \u00b7 ");
      setState("ready");
    }
    renderHistory();
  }

  function renderHistory() {
    var ol = $("history");
    ol.textContent = "";
    history.forEach(function (eg) {
      var li = document.createElement("li");
      li.dataset.task = String(eg._input_hash);
      if (editing && taskId(editing) === li.dataset.task) { li.className = "editing"; }
      var badge = document.createElement("span");
      badge.className = "answer " + eg.answer;
      badge.textContent = eg.answer;
      li.appendChild(badge);
      var text = document.createElement("span");
      renderText(text, view(eg), false);
      li.appendChild(text);
      li.addEventListener("click", function () {
        if (busy) { return; }
        editing = view(eg, eg.answer);
        render();
      });
      ol.appendChild(li);
    });
  }

  // -- editing spans ---------------------------------------------------------------------------
  function charOffset(container, node, offset) {
    var r = document.createRange();
    r.selectNodeContents(container);
    r.setEnd(node, offset);
    return r.toString().length;
  }

  // Snap a character range to whole tokens: a boundary inside a token takes the whole token.
  function snap(toks, start, end) {
    var lo = null, hi = null;
    toks.forEach(function (t) {
      if (t.end > start && t.start < end && t.text.trim()) {
        if (lo === null) { lo = t.id; }
        hi = t.id;
      }
    });
    return lo === null ? null : [lo, hi];
  }

  function addSpan(v, lo, hi) {
    var toks = v.task.tokens;
    var label = cfg.labels[active];
    v.spans = v.spans.filter(function (s) { return s.token_end < lo || s.token_start > hi; });
    v.spans.push({start: toks[lo].start, end: toks[hi].end, token_start: lo, token_end: hi, label: label});
    v.spans.sort(function (a, b) { return a.start - b.start; });
  }

  $("text").addEventListener("mouseup", function () {
    var v = shown();
    var sel = window.getSelection();
    if (!v || !sel || sel.isCollapsed || !sel.rangeCount) { return; }
    var range = sel.getRangeAt(0);
    var el = $("text");
    if (!el.contains(range.commonAncestorContainer)) { return; }
    var start = charOffset(el, range.startContainer, range.startOffset);
    var end = charOffset(el, range.endContainer, range.endOffset);
    sel.removeAllRanges();
    var tokens = snap(v.task.tokens, start, end);
    if (!tokens) { return; }
    justSelected = true;  // the click that ends this drag is not a click on a span
    setTimeout(function () { justSelected = false; }, 0);
    addSpan(v, tokens[0], tokens[1]);
    render();
  });

  $("text").addEventListener("click", function (e) {
    if (justSelected) { justSelected = false; return; }
    var v = shown();
    var mark = e.target.closest && e.target.closest("mark.ent");
    if (!v || !mark) { return; }
    var idx = Number(mark.dataset.index);
    if (e.target.classList.contains("rm")) {
      v.spans.splice(idx, 1);
    } else {
      v.spans[idx].label = cfg.labels[active];
      v.spans[idx].score = null;
    }
    render();
  });

  // -- answers ---------------------------------------------------------------------------------
  function remember(example) {
    history = history.filter(function (eg) { return eg._input_hash !== example._input_hash; });
    history.unshift(example);
    history = history.slice(0, 10);
  }

  function advance() {
    if (stash.length) { current = stash.shift(); render(); return Promise.resolve(); }
    setState("busy");
    $("text").textContent = "Suggesting entities\u2026";
    $("meta").textContent = "";
    return api("/api/next", {}).then(function (res) {
      current = res.task ? view(res.task) : null;
      renderCounts(res.counts);
      render();
    });
  }

  function submit(answer) {
    var v = shown();
    if (!v || busy) { return; }
    busy = true;
    setState("busy");
    var body = {
      id: taskId(v), answer: answer,
      spans: v.spans.map(function (s) { return {start: s.start, end: s.end, label: s.label}; })
    };
    api("/api/answer", body).then(function (res) {
      setStatus("");
      remember(res.example);
      renderCounts(res.counts);
      if (editing) { editing = null; render(); return null; }
      return advance();
    }).catch(function (err) { setStatus(err.message); render(); })
      .then(function () { busy = false; if (document.body.dataset.state === "busy") { render(); } });
  }

  function undo() {
    var target = editing || (history.length ? view(history[0], history[0].answer) : null);
    if (!target || busy) { return; }
    busy = true;
    setState("busy");
    api("/api/undo", {id: taskId(target)}).then(function (res) {
      history = history.filter(function (eg) { return String(eg._input_hash) !== taskId(target); });
      if (current) { stash.unshift(current); }
      current = view(res.task);
      editing = null;
      renderCounts(res.counts);
      setStatus("");
      render();
    }).catch(function (err) { setStatus(err.message); render(); })
      .then(function () { busy = false; });
  }

  document.addEventListener("keydown", function (e) {
    if (!cfg || e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (e.key === "a") { e.preventDefault(); submit("accept"); }
    else if (e.key === "x") { e.preventDefault(); submit("reject"); }
    else if (e.key === " ") { e.preventDefault(); submit("ignore"); }
    else if (e.key === "Backspace") { e.preventDefault(); undo(); }
    else if (e.key === "Escape" && editing) { editing = null; render(); }
    else if (/^[1-9]$/.test(e.key) && Number(e.key) <= cfg.labels.length) { active = Number(e.key) - 1; renderLabels(); }
  });

  [["accept", "accept"], ["reject", "reject"], ["ignore", "ignore"]].forEach(function (pair) {
    $(pair[0]).addEventListener("mousedown", function (e) { e.preventDefault(); });
    $(pair[0]).addEventListener("click", function () { submit(pair[1]); });
  });
  $("undo").addEventListener("mousedown", function (e) { e.preventDefault(); });
  $("undo").addEventListener("click", undo);

  // a closed page gives its unanswered tasks back
  window.addEventListener("pagehide", function () {
    [current].concat(stash).forEach(function (v) {
      if (v) {
        fetch("/api/release", {method: "POST", keepalive: true, headers: {"Content-Type": "application/json"},
          body: JSON.stringify({id: taskId(v)})});
      }
    });
  });

  setState("busy");
  api("/api/config").then(function (c) {
    cfg = c;
    $("dataset").textContent = c.dataset;
    renderLabels();
    renderCounts(c.counts);
    return advance();
  }).catch(function (err) { setStatus(err.message); });
}());
