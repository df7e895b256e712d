// engine view: the page script of the spec viewer (no dependencies, no build step).
//
// The page's data is the JSON in <script id="viewer-data"> (engine/views/viewer/model.py). Every
// string from a spec reaches the page through textContent or setAttribute, never as markup; the
// one piece of markup, Graphviz's SVG of the diagram, is parsed as XML and stripped of scripts,
// event handlers and links before it is shown. The live viewer re-renders on the server (the
// renderer's `expand` option); the static export carries the pictures one click can lead to.
"use strict";

(function () {
  const DATA = JSON.parse(document.getElementById("viewer-data").textContent);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const state = {
    page: DATA, expand: new Set(DATA.expand || []), selected: null, hovered: null,
    sort: {key: null, dir: 1}, query: "", busy: false, renders: 0,
  };
  window.viewerRenders = 0;

  // ---- small helpers ------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" || typeof child === "number"
        ? document.createTextNode(String(child)) : child);
    }
    return node;
  }

  function human(n) {
    const scales = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
    for (const [scale, suffix] of scales) {
      if (Math.abs(n) >= scale) return (n / scale).toPrecision(3).replace(/\.?0+$/, "") + " " + suffix;
    }
    return String(n);
  }

  function shapeText(shape) {
    return (shape || []).map((s) => "[" + s.join(", ") + "]").join(" ") || "-";
  }

  function valueText(v) {
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  function prefixes(path) {
    const parts = path.split(".");
    return parts.map((_, i) => parts.slice(0, i + 1).join("."));
  }

  function canonical(paths) {
    const out = new Set();
    for (const p of paths) prefixes(p).forEach((q) => out.add(q));
    return Array.from(out).sort();
  }

  function query(extra) {
    const p = state.page;
    const params = new URLSearchParams();
    params.append("a", p.kind === "diff" ? p.id_a : p.id);
    if (p.kind === "diff") params.append("b", p.id);
    for (const s of (p.kind === "diff" ? p.overrides_a : p.overrides) || []) params.append("set", s);
    if (p.kind === "diff") for (const s of p.overrides || []) params.append("set_b", s);
    for (const [k, v] of extra || []) params.append(k, v);
    return params;
  }

  async function getJSON(url) {
    const response = await fetch(url, {cache: "no-store"});
    return response.json();
  }

  // ---- the layout ------------------------------------------------------------------------------
  const app = document.getElementById("app");
  const parts = {};

  function layout() {
    app.textContent = "";
    if (DATA.kind === "index") return indexPage();
    const home = DATA.static ? "index.html" : "/";
    parts.title = el("h1", {id: "title"});
    parts.subtitle = el("div", {class: "subtitle", id: "subtitle"});
    parts.errors = el("pre", {class: "errors", id: "errors", hidden: true});
    parts.notes = el("div", {class: "notes", id: "notes"});
    parts.diagram = el("div", {class: "diagram", id: "diagram"});
    parts.search = el("input", {id: "search", type: "search", placeholder: "search nodes by name",
                                oninput: onSearch, onkeydown: onSearchKey});
    parts.results = el("ul", {class: "results", id: "search-results"});
    parts.details = el("div", {class: "details", id: "details"},
                       el("p", {class: "hint", text: "hover or click a node to see its details"}));
    parts.side = el("div", {class: "side"});
    app.append(
      el("header", {}, el("a", {href: home, class: "home", text: "all specs"}), parts.title,
         parts.subtitle),
      parts.errors,
      el("main", {class: "main"},
         el("section", {class: "canvas"}, parts.notes, parts.diagram),
         el("aside", {class: "panel"}, el("div", {class: "search"}, parts.search, parts.results),
            parts.details, parts.side)));
  }

  function update(page) {
    state.page = page;
    const diff = page.kind === "diff";
    parts.title.textContent = page.title || page.id;
    const files = diff ? page.file_a + " → " + page.file : page.file;
    const totals = page.totals && !diff
      ? " · " + page.totals.params.toLocaleString("en") + " params · " + human(page.totals.macs) + " MACs"
      : "";
    const overrides = (page.overrides || []).length ? " · --set " + page.overrides.join(" --set ") : "";
    parts.subtitle.textContent = files + totals + overrides + (page.watch ? " · watching for saves" : "");
    parts.errors.hidden = !page.errors;
    parts.errors.textContent = page.errors || "";
    document.body.classList.toggle("has-errors", Boolean(page.errors));
    if (page.diagram) showDiagram(page.diagram);
    parts.side.textContent = "";
    if (!page.nodes) return;
    if (diff) diffPanel(page); else specPanel(page);
    if (state.selected && !page.nodes[state.selected]) state.selected = null;
    showDetails(state.selected);
  }

  // ---- the diagram ----------------------------------------------------------------------------
  function sanitize(svg) {
    for (const bad of svg.querySelectorAll("script, foreignObject, iframe, object, embed")) bad.remove();
    for (const node of svg.querySelectorAll("*")) {
      for (const attr of Array.from(node.attributes)) {
        const name = attr.name.toLowerCase();
        if (name.startsWith("on") || ((name === "href" || name === "xlink:href") &&
                                      !attr.value.startsWith("#"))) {
          node.removeAttribute(attr.name);
        }
      }
    }
    return svg;
  }

  function showDiagram(diagram) {
    const doc = new DOMParser().parseFromString(diagram.svg, "image/svg+xml");
    const root = doc.documentElement;
    if (!root || root.namespaceURI !== SVG_NS) return;
    const svg = document.importNode(sanitize(root), true);
    parts.notes.textContent = (diagram.notes || []).join(" ");
    for (const g of svg.querySelectorAll("g.node, g.cluster")) {
      const title = g.querySelector("title");
      const id = title ? title.textContent : "";
      const path = diagram.ids[g.classList.contains("cluster") ? id.replace(/^cluster_/, "") : id];
      if (path === undefined) continue;
      const info = state.page.nodes && state.page.nodes[path];
      g.setAttribute("data-path", path);
      if (info && info.status) g.setAttribute("data-status", info.status);
      if (info) g.setAttribute("data-op", info.op);
      g.classList.add(g.classList.contains("cluster") ? "vcluster" : "vnode");
      if (info && info.block && g.classList.contains("node")) g.classList.add("vblock");
      if (title) title.textContent = path;  // the browser's tooltip: the node's path
    }
    svg.addEventListener("click", onDiagramClick);
    svg.addEventListener("mouseover", onDiagramHover);
    svg.addEventListener("mouseleave", () => { state.hovered = null; showDetails(state.selected); });
    parts.diagram.textContent = "";
    parts.diagram.appendChild(svg);
    markSelection();
    markMatches();
    state.renders += 1;
    window.viewerRenders = state.renders;
    if (window.viewerFirstDiagram === undefined) window.viewerFirstDiagram = performance.now();
  }

  function targetOf(event) {
    return event.target.closest ? event.target.closest("g.vnode, g.vcluster") : null;
  }

  function onDiagramClick(event) {
    const g = targetOf(event);
    if (!g) return;
    const path = g.getAttribute("data-path");
    if (g.classList.contains("vcluster")) return toggle(path, false);
    select(path);
    if (g.classList.contains("vblock")) toggle(path, true);
  }

  function onDiagramHover(event) {
    const g = targetOf(event);
    if (!g || !g.classList.contains("vnode")) return;
    const path = g.getAttribute("data-path");
    if (path !== state.hovered) {
      state.hovered = path;
      showDetails(path);
    }
  }

  function visible(path) {
    return parts.diagram.querySelector('g[data-path="' + CSS.escape(path) + '"]');
  }

  function markSelection() {
    for (const g of parts.diagram.querySelectorAll("g.selected")) g.classList.remove("selected");
    const g = state.selected && visible(state.selected);
    if (g) g.classList.add("selected");
  }

  // ---- opening and closing blocks ----------------------------------------------------------------
  function toggle(path, open) {
    const next = new Set(canonical(state.expand));
    if (open) {
      next.add(path);
    } else {
      for (const p of Array.from(next)) if (p === path || p.startsWith(path + ".")) next.delete(p);
    }
    return redraw(next, open ? path : null);
  }

  async function redraw(expand, opened) {
    if (state.page.static) return redrawStatic(expand, opened);
    state.busy = true;
    const extra = [["expanded", "1"], ...canonical(expand).map((p) => ["expand", p])];
    const page = await getJSON("api/view?" + query(extra)).catch(() => null);
    state.busy = false;
    if (!page || page.internal) return;
    state.expand = new Set(canonical(expand));
    if (!page.diagram) {  // the spec stopped validating since the page was drawn
      keepParams(page, state.page);
      update(page);
    } else if (page.version !== state.page.version || !state.page.nodes) update(page);
    else {
      state.page = page;
      showDiagram(page.diagram);
    }
  }

  function redrawStatic(expand, opened) {
    // the export holds the pictures one click away from the default one: fall back to those
    const pictures = state.page.pictures || {};
    const defaults = canonical(DATA.expand || []);
    const tries = [canonical(expand)];
    if (opened) tries.push(canonical([...defaults, opened]));
    for (const keyPaths of tries) {
      const picture = pictures[keyPaths.join("\n")];
      if (picture) {
        state.expand = new Set(keyPaths);
        showDiagram(picture);
        return;
      }
    }
    parts.notes.textContent = "This static page holds one block opened at a time; " +
      "`engine view` opens any number.";
  }

  // ---- selecting a node -------------------------------------------------------------------------
  function select(path) {
    state.selected = path;
    markSelection();
    showDetails(path);
    for (const row of document.querySelectorAll("tr.selected, li.selected")) row.classList.remove("selected");
    for (const row of document.querySelectorAll('[data-row="' + CSS.escape(path) + '"]')) {
      row.classList.add("selected");
    }
  }

  async function reveal(path) {
    // open the blocks above a node that is drawn inside a collapsed one, then select it
    const nodes = state.page.nodes || {};
    if (!visible(path)) {
      const above = prefixes(path).slice(0, -1).filter((p) => nodes[p] && nodes[p].block);
      if (above.length) await redraw(new Set([...state.expand, ...above]), above[above.length - 1]);
    }
    select(path);
    const g = visible(path);
    if (g && g.scrollIntoView) g.scrollIntoView({block: "center", inline: "center"});
  }

  function showDetails(path) {
    const box = parts.details;
    box.textContent = "";
    const info = path && state.page.nodes && state.page.nodes[path];
    if (!info) {
      box.append(el("p", {class: "hint", text: "hover or click a node to see its details"}));
      return;
    }
    const what = info.repeat ? info.op + " ×" + info.repeat : info.op;
    box.append(el("h2", {id: "detail-path", text: info.path}),
               el("div", {class: "what"}, what + " (" + info.kind + ")" +
                  (info.status ? " · " + info.status : "") + (info.share ? " · shares " + info.share : "")));
    const rows = [["output shape", shapeText(info.shape)],
                  ["parameters", info.params.toLocaleString("en")],
                  ["MACs", info.macs ? info.macs.toLocaleString("en") + " (" + human(info.macs) + ")" : "-"]];
    for (const [k, v] of Object.entries(info.args || {})) rows.push(["  " + k, valueText(v)]);
    box.append(el("table", {class: "facts", id: "detail-facts"},
                  rows.map(([k, v]) => el("tr", {}, el("th", {text: k}), el("td", {text: v})))));
    if (state.page.kind === "diff" && (info.source_a || []).length) {
      box.append(el("div", {class: "sides"},
                    el("div", {class: "side-a"}, el("h3", {text: "A: " + (state.page.title_a || "")}),
                       snippets(info.source_a)),
                    el("div", {class: "side-b"}, el("h3", {text: "B: " + (state.page.title_b || "")}),
                       snippets(info.source))));
    } else {
      box.append(el("h3", {text: "YAML"}), snippets(info.source));
    }
  }

  function snippets(list) {
    const out = el("div", {class: "snippets"});
    for (const s of list || []) {
      const marked = new Set(s.marked);
      const head = s.file + ":" + ranges(s.marked);
      const pre = el("pre", {class: "yaml"});
      s.lines.forEach((text, i) => {
        const n = s.first + i;
        pre.append(el("span", {class: marked.has(n) ? "line hl" : "line", "data-line": n},
                      el("span", {class: "gutter", text: String(n).padStart(5) + " | "}), text + "\n"));
      });
      out.append(el("div", {class: "snippet"}, el("div", {class: "file", text: head}), pre));
    }
    if (!(list || []).length) out.append(el("p", {class: "hint", text: "no YAML lines recorded"}));
    return out;
  }

  function ranges(numbers) {
    // [20, 23, 24] -> "20, 23-24", as a reader names lines
    const out = [];
    let start = numbers[0];
    numbers.forEach((n, i) => {
      if (numbers[i + 1] !== n + 1) {
        out.push(start === n ? String(n) : start + "-" + n);
        start = numbers[i + 1];
      }
    });
    return out.join(", ");
  }

  // ---- search ---------------------------------------------------------------------------------
  function matches() {
    const q = state.query.trim().toLowerCase();
    if (!q || !state.page.nodes) return [];
    return Object.keys(state.page.nodes).filter((p) => p.toLowerCase().includes(q));
  }

  function onSearch() {
    state.query = parts.search.value;
    const found = matches();
    parts.results.textContent = "";
    for (const path of found.slice(0, 30)) {
      parts.results.append(el("li", {"data-row": path, onclick: () => reveal(path), text: path}));
    }
    if (found.length > 30) parts.results.append(el("li", {class: "hint", text: "… " + (found.length - 30) + " more"}));
    markMatches();
  }

  function onSearchKey(event) {
    if (event.key === "Enter") {
      const found = matches();
      if (found.length) reveal(found[0]);
    }
  }

  function markMatches() {
    const found = new Set(matches());
    for (const g of parts.diagram.querySelectorAll("g.vnode")) {
      g.classList.toggle("match", found.has(g.getAttribute("data-path")));
    }
  }

  // ---- one spec: params and the summary table ----------------------------------------------------
  function specPanel(page) {
    parts.side.append(paramsForm(page), summaryTable(page));
  }

  function paramsForm(page) {
    const form = el("form", {class: "params", id: "params", onsubmit: (e) => { e.preventDefault(); applyParams(form); }});
    form.append(el("h3", {text: "params (as --set)"}));
    for (const [name, value] of Object.entries(page.params || {})) {
      form.append(el("label", {}, el("span", {text: name}),
                     el("input", {name: name, value: valueText(value), "data-initial": valueText(value),
                                  disabled: page.static})));
    }
    if (page.static) {
      form.append(el("p", {class: "hint", text: "static page: `engine view` re-resolves edited params"}));
    } else {
      form.append(el("button", {type: "submit", id: "apply", text: "apply"}),
                  el("button", {type: "button", id: "reset", text: "reset",
                                onclick: () => setOverrides([])}));
    }
    return form;
  }

  function applyParams(form) {
    const overrides = new Map((state.page.overrides || []).map((s) => [s.split("=")[0], s]));
    for (const input of form.querySelectorAll("input")) {
      if (input.value !== input.getAttribute("data-initial")) overrides.set(input.name, input.name + "=" + input.value);
    }
    return setOverrides(Array.from(overrides.values()));
  }

  async function setOverrides(overrides) {
    const previous = state.page;
    state.page = Object.assign({}, previous, {overrides: overrides});
    const extra = [["expanded", "1"], ...canonical(state.expand).map((p) => ["expand", p])];
    const page = await getJSON("api/view?" + query(extra)).catch(() => null);
    if (!page || page.internal) { state.page = previous; return; }
    history.replaceState(null, "", "view?" + query());
    keepParams(page, previous);
    update(page);
  }

  function keepParams(page, previous) {
    // a spec that no longer resolves has no params of its own: keep the form to fix it with
    if (!page.nodes && previous.nodes) {
      Object.assign(page, {params: previous.params, nodes: previous.nodes, totals: previous.totals,
                           diagram: previous.diagram, stale: true});
    }
  }

  function summaryTable(page) {
    const columns = [["path", "node"], ["op", "op"], ["shape", "output shape"], ["params", "params"],
                     ["macs", "MACs"]];
    const rows = Object.values(page.nodes);
    if (state.sort.key) {
      const key = state.sort.key;
      const value = (r) => key === "shape" ? shapeText(r.shape) : r[key];
      rows.sort((x, y) => (value(x) > value(y) ? 1 : value(x) < value(y) ? -1 : 0) * state.sort.dir);
    }
    const head = el("tr", {}, columns.map(([key, label]) => el("th", {
      "data-sort": key, class: state.sort.key === key ? (state.sort.dir > 0 ? "asc" : "desc") : null,
      onclick: () => { sortBy(key); }, text: label})));
    const body = el("tbody", {});
    for (const r of rows) {
      const depth = r.path.split(".").length - 1;
      body.append(el("tr", {"data-row": r.path, class: r.path === state.selected ? "selected" : null,
                             onclick: () => reveal(r.path)},
                     el("td", {class: "name", style: "padding-left:" + (0.3 + depth * 0.9) + "em", text: state.sort.key ? r.path : r.name}),
                     el("td", {text: r.repeat ? r.op + " ×" + r.repeat : r.op}),
                     el("td", {text: shapeText(r.shape)}),
                     el("td", {class: "num", text: r.params.toLocaleString("en")}),
                     el("td", {class: "num", text: r.macs ? human(r.macs) : "-"})));
    }
    return el("div", {class: "summary"}, el("h3", {text: "summary"}),
              el("table", {id: "summary", class: "table"}, el("thead", {}, head), body));
  }

  function sortBy(key) {
    state.sort = {key: key, dir: state.sort.key === key ? -state.sort.dir : (key === "path" || key === "op" ? 1 : -1)};
    const old = document.querySelector(".summary");
    if (old) old.replaceWith(summaryTable(state.page));
  }

  // ---- two specs: the changes and the weight transfer ----------------------------------------------
  function diffPanel(page) {
    const t = page.totals;
    parts.side.append(el("p", {class: "totals"},
                         "params " + t.params.a.toLocaleString("en") + " → " + t.params.b.toLocaleString("en") +
                         " · MACs " + human(t.macs.a) + " → " + human(t.macs.b)));
    const list = el("ul", {class: "changes", id: "changes"});
    for (const g of page.added) {
      list.append(change("added", g.paths[0], "+ " + g.label + ": " + (g.count > 1 ? g.count + " × " : "") + g.op + " added"));
    }
    for (const g of page.removed) {
      list.append(change("removed", "removed:" + g.paths[0], "− " + g.label + ": " + (g.count > 1 ? g.count + " × " : "") + g.op + " removed"));
    }
    for (const [a, b] of Object.entries(page.renamed)) list.append(change("renamed", b, "= " + a + " → " + b));
    for (const c of page.changes) list.append(change("changed", c.path, "~ " + c.path + " (" + c.op + "): " + c.text));
    if (!list.children.length) list.append(el("li", {class: "hint", text: "no structural change"}));
    parts.side.append(el("h3", {text: "changes"}), list, weightsTable(page.weights),
                      el("details", {}, el("summary", {text: "engine diff's report"}),
                         el("pre", {class: "report", text: page.report})));
  }

  function change(status, path, text) {
    return el("li", {class: "change " + status, "data-row": path, "data-status": status,
                     onclick: () => reveal(path), text: text});
  }

  function weightsTable(w) {
    const rows = w.rows.slice(0, 500).map((r) => el("tr", {"data-status": r.status},
      el("td", {text: r.key}), el("td", {text: r.status}),
      el("td", {text: r.a ? "[" + r.a.join(", ") + "]" : "-"}), el("td", {text: r.b ? "[" + r.b.join(", ") + "]" : "-"})));
    return el("div", {class: "weights"}, el("h3", {text: "weight transfer (A's state_dict into B)"}),
              el("p", {id: "weights-summary"}, w.unchanged + " load unchanged, " + w.changed + " change shape, " +
                 w.new + " new in B, " + w.dropped + " dropped from A" + (w.renamed ? ", " + w.renamed + " renamed" : "")),
              rows.length ? el("table", {class: "table", id: "weights"},
                               el("thead", {}, el("tr", {}, ["key", "", "A", "B"].map((h) => el("th", {text: h})))),
                               el("tbody", {}, rows)) : null,
              w.rows.length > 500 ? el("p", {class: "hint", text: "… " + (w.rows.length - 500) + " more"}) : null);
  }

  // ---- watching for saves ------------------------------------------------------------------------
  function watch() {
    if (!state.page.watch || state.page.static) return;
    setInterval(async () => {
      if (state.busy) return;
      const answer = await getJSON("api/version?" + query()).catch(() => null);
      if (!answer || answer.version === state.page.version) return;
      state.busy = true;
      const extra = [["expanded", "1"], ...canonical(state.expand).map((p) => ["expand", p])];
      const page = await getJSON("api/view?" + query(extra)).catch(() => null);
      state.busy = false;
      if (page && !page.internal) {
        keepParams(page, state.page);
        update(page);
      }
    }, 300);
  }

  // ---- the index ---------------------------------------------------------------------------------
  function indexPage() {
    const filter = el("input", {id: "filter", type: "search", placeholder: "filter by name or family"});
    const body = el("tbody", {});
    const pick = {a: null, b: null};
    const compare = el("a", {id: "compare", class: "button disabled", text: "diff A → B"});
    const rows = [];
    for (const e of DATA.entries) {
      const href = DATA.static ? e.href : "view?a=" + encodeURIComponent(e.id);
      const params = el("td", {class: "num"}), macs = el("td", {class: "num"});
      if (e.totals) {
        params.textContent = e.totals.params.toLocaleString ? human(e.totals.params.a !== undefined ? e.totals.params.b : e.totals.params) : "";
        macs.textContent = human(e.totals.macs.a !== undefined ? e.totals.macs.b : e.totals.macs);
      }
      const radios = DATA.static ? [el("td", {}), el("td", {})] : ["a", "b"].map((side) => el("td", {},
        el("input", {type: "radio", name: side, value: e.id, title: side.toUpperCase() + " of a diff",
                     onchange: () => { pick[side] = e.id; linkCompare(); }})));
      const row = el("tr", {"data-id": e.id}, radios,
                     el("td", {}, el("a", {href: href, text: e.name})), el("td", {text: e.family}),
                     params, macs, el("td", {class: "about", text: e.summary}));
      rows.push({row: row, entry: e, params: params, macs: macs});
      body.append(row);
    }
    function linkCompare() {
      const ok = pick.a && pick.b;
      compare.classList.toggle("disabled", !ok);
      if (ok) compare.setAttribute("href", "view?a=" + encodeURIComponent(pick.a) + "&b=" + encodeURIComponent(pick.b));
    }
    filter.addEventListener("input", () => {
      const q = filter.value.trim().toLowerCase();
      for (const r of rows) r.row.hidden = q && !(r.entry.name + " " + r.entry.family).toLowerCase().includes(q);
    });
    app.append(el("header", {}, el("h1", {text: "engine view"}),
                  el("div", {class: "subtitle", text: DATA.static ? "exported pages" :
                    "bundled specs and the folders given; pick an A and a B to diff them"})),
               el("div", {class: "index-tools"}, filter, DATA.static ? null : compare),
               el("table", {class: "table index", id: "index"},
                  el("thead", {}, el("tr", {}, ["A", "B", "spec", "family", "params", "MACs", ""].map((h) => el("th", {text: h})))),
                  body));
    if (!DATA.static) fillStats(rows);
    document.body.setAttribute("data-ready", "1");
  }

  function fillStats(rows) {
    // the rows scrolled into view, one spec at a time: the server analyses each (seconds for
    // the largest), and a hundred bundled specs at once would keep it busy for minutes
    const queue = [];
    let running = false;
    const byRow = new Map(rows.map((r) => [r.row, r]));
    const observer = new IntersectionObserver((seen) => {
      for (const e of seen) {
        if (!e.isIntersecting) continue;
        observer.unobserve(e.target);
        queue.push(byRow.get(e.target));
      }
      next();
    });
    rows.forEach((r) => observer.observe(r.row));
    async function next() {
      while (queue.length && queue[0].row.hidden) observer.observe(queue.shift().row);  // filtered out
      if (running || !queue.length) return;
      running = true;
      const r = queue.shift();
      r.params.textContent = "…";
      const s = await getJSON("api/stats?id=" + encodeURIComponent(r.entry.id)).catch(() => null);
      if (s && s.error !== undefined) {
        r.params.textContent = "errors";
        r.params.title = s.error;
      } else if (s) {
        r.params.textContent = human(s.params);
        r.macs.textContent = s.macs ? human(s.macs) : "-";
      }
      running = false;
      next();
    }
  }

  layout();
  if (DATA.kind !== "index") {
    update(DATA);
    document.body.setAttribute("data-ready", "1");  // the first diagram (or the errors) shown
    window.viewerInteractive = performance.now();  // ... and every handler attached
    watch();
  }
})();
