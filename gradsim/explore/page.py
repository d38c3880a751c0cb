"""The ``gradsim explore`` page: Bokeh views of :func:`gradsim.explore.data.build_data`.

A thin shell: no numerics but the covariance image ``|(g - m)(g - m)^T| / var(g)``
(:func:`gradsim.experiments.covariance.images`), which the page computes from the
embedded gradient of the chosen network.  The document is standalone with inline
resources (:data:`bokeh.resources.INLINE`): one HTML file, no server, no network.
Embedded arrays live in named ColumnDataSources, float32, one flat column per family:
``grad_store`` (``(shown, depth, points)``, C order), ``acf_store``
(``(shown, depth, max_lag + 1)``), ``kinks_<family>`` (one source per family: its
breakpoint positions ``pos``, network by network and depth by depth) with ``kink_offsets``
(``kink_nets * depth + 1`` starts per family).
"""

from __future__ import annotations

import html
import shlex

import numpy as np

__all__ = ["PALETTE", "MAX_TICKS", "build_document", "page_html", "command_line",
           "kink_columns"]

#: Okabe and Ito's colour-blind-safe palette (black first for the references).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
FONT = {"title": "17pt", "axis": "16pt", "ticks": "14pt", "legend": "13pt"}
#: A (network, depth) with more breakpoints than this shows its count, not its ticks.
MAX_TICKS = 2000

_JS = """
const f = family.value, d = depth.value - 1, n = Number(network.value) - 1;
const D = meta.depth, P = meta.points, L = meta.max_lag + 1;
const label = meta.labels[f];
const gall = grad_store.data['grad_' + f];
const g = gall.slice((n * D + d) * P, (n * D + d + 1) * P);
gsrc.data = {t: meta.t, g: Array.from(g)};
gfig.title.text = `df/dx: ${label}, depth ${d + 1}, net ${n + 1}`;
const aall = acf_store.data['acf_' + f];
const a = aall.slice((n * D + d) * L, (n * D + d + 1) * L);
asrc.data = {lag: meta.lags, r: Array.from(a)};
afig.title.text = `autocorrelation: ${label}, depth ${d + 1}, net ${n + 1}`;
let m = 0; for (let i = 0; i < P; i++) m += g[i]; m /= P;
let v = 0; for (let i = 0; i < P; i++) v += (g[i] - m) * (g[i] - m); v = Math.max(v / P, 1e-300);
const img = isrc.data.image[0];  // a P x P ndarray from Python, refilled in place
for (let i = 0; i < P; i++)
  for (let j = 0; j < P; j++) img[i * P + j] = Math.abs((g[i] - m) * (g[j] - m)) / v;
const all = Float64Array.from(img).sort();
cmap.high = Math.max(all[Math.floor(0.99 * (all.length - 1))], 1e-12);
isrc.data = {...isrc.data, image: [img]};
ifig.title.text = `covariance: ${label}, depth ${d + 1}, net ${n + 1}`;
marker.location = d + 1;
let lo = Infinity, hi = -Infinity;
for (let i = 0; i < P; i++) { lo = Math.min(lo, g[i]); hi = Math.max(hi, g[i]); }
const h = (hi - lo) || 1;
const note = meta.kink_notes[f];
if (note === null && n < meta.kink_nets) {
  const off = kink_offsets.data['off_' + f], pos = kink_stores[f].data.pos;
  const s = off[n * D + d], e = off[n * D + d + 1];
  const count = kink_offsets.data['count_' + f][n * D + d];
  const xs = Array.from(pos.slice(s, e));
  ksrc.data = {x: xs, y0: xs.map(() => lo - 0.12 * h), y1: xs.map(() => lo - 0.02 * h)};
  kline.data = {t: meta.t, g: Array.from(g)};
  kfig.title.text = `breakpoints of f: ${count} on [-2, 2]` +
                    (e - s < count ? ' (too dense for ticks)' : '') +
                    `; ${label}, depth ${d + 1}, net ${n + 1}`;
} else {
  ksrc.data = {x: [], y0: [], y1: []};
  kline.data = {t: meta.t, g: Array.from(g)};
  kfig.title.text = note === null ? `breakpoints computed for networks 1-${meta.kink_nets} only`
                                  : `breakpoints of f, ${label}: ${note}`;
}
"""


def command_line(settings, out, quick):
    """The exact ``gradsim explore`` command that regenerates the page."""
    from .data import QUICK, ExploreSettings

    base = QUICK if quick else ExploreSettings()
    args = ["gradsim", "explore", "--out", str(out)] + (["--quick"] if quick else [])
    for key, flag in (("depth", "--depth"), ("width", "--width"), ("nets", "--nets"),
                      ("seed", "--seed")):
        if getattr(settings, key) != getattr(base, key):
            args += [flag, str(getattr(settings, key))]
    return shlex.join(args)


def _style(fig):
    fig.title.text_font_size = FONT["title"]
    for ax in (fig.xaxis, fig.yaxis):
        ax.axis_label_text_font_size = FONT["axis"]
        ax.major_label_text_font_size = FONT["ticks"]
    if fig.legend:
        fig.legend.label_text_font_size = FONT["legend"]
        fig.legend.background_fill_alpha = 0.7
    return fig


def _flat(data, keys, field):
    return {f"{field}_{k}": np.ascontiguousarray(data[k][field], np.float32).ravel()
            for k in keys}


def kink_columns(data, keys, depth, max_ticks=MAX_TICKS):
    """``(pos, off)``: per family ``k``, ``pos["pos_k"]`` the breakpoints of every (network,
    depth) in turn, ``off["off_k"]`` where each starts (``kink_nets * depth + 1``) and
    ``off["count_k"]`` how many there are.  A (network, depth) with more than ``max_ticks``
    breakpoints stores its count only: the ticks would be a solid bar."""
    pos, off = {}, {}
    cells = data["settings"]["kink_nets"] * depth
    for k in keys:
        rows = data[k]["kinks"] or []
        flat = [np.asarray(b, np.float32) for net in rows for b in net]
        counts = np.array([len(b) for b in flat] + [0] * (cells - len(flat)), np.int64)
        kept = [b if len(b) <= max_ticks else b[:0] for b in flat]
        starts = np.concatenate([[0], np.cumsum([len(b) for b in kept])]).astype(np.int64)
        off[f"off_{k}"] = np.pad(starts, (0, cells + 1 - len(starts)), mode="edge")
        off[f"count_{k}"] = np.append(counts, 0)  # equal columns: one past the last cell
        pos[f"pos_{k}"] = np.concatenate(kept) if kept else np.zeros(0, np.float32)
    return pos, off


def _first(data, key, d, n):
    """The views' data for family ``key``, depth index ``d``, network ``n``: what the
    page's callback computes, so that the views have data (and ranges) before it runs."""
    g = np.asarray(data[key]["grad"][n, d], np.float32)
    gd = g.astype(float)
    c = gd - gd.mean()
    image = (np.abs(np.outer(c, c)) / max(float(np.mean(c * c)), 1e-300)).astype(np.float32)
    xs = np.zeros(0, np.float32)
    if data[key]["kinks"] is not None and n < len(data[key]["kinks"]):
        xs = np.asarray(data[key]["kinks"][n][d], np.float32)
        xs = xs if len(xs) <= MAX_TICKS else xs[:0]
    lo, hi = float(g.min()), float(g.max())
    h = (hi - lo) or 1.0
    kinks = {"x": xs, "y0": np.full(len(xs), lo - 0.12 * h), "y1": np.full(len(xs), lo - 0.02 * h)}
    return {"g": g, "acf": np.asarray(data[key]["acf"][n, d], np.float32), "image": image,
            "kinks": kinks}


def build_document(data, command):
    """The Bokeh layout of the page (a model tree; :func:`page_html` renders it)."""
    from bokeh.layouts import column, row
    from bokeh.models import (
        ColumnDataSource,
        CustomJS,
        Div,
        LinearColorMapper,
        Select,
        Slider,
        Span,
        Whisker,
    )
    from bokeh.plotting import figure

    s = data["settings"]
    keys, labels = list(data["families"]), data["families"]
    D, t = s["depth"], data["t"]
    lags = np.arange(s["max_lag"] + 1)
    grad_store = ColumnDataSource(_flat(data, keys, "grad"), name="grad_store")
    acf_store = ColumnDataSource(_flat(data, keys, "acf"), name="acf_store")
    pos, off = kink_columns(data, keys, D)
    # one source per family: a source's columns must be equally long
    kink_stores = {k: ColumnDataSource({"pos": pos[f"pos_{k}"]}, name=f"kinks_{k}")
                   for k in keys}
    kink_offsets = ColumnDataSource(off, name="kink_offsets")
    meta = {"depth": D, "points": s["points"], "max_lag": s["max_lag"], "t": t.tolist(),
            "lags": lags.tolist(), "labels": labels, "kink_nets": s["kink_nets"],
            "kink_notes": {k: data[k]["kinks_note"] for k in keys}}

    family = Select(title="family", value=keys[0], options=[(k, labels[k]) for k in keys],
                    name="family", width=320, stylesheets=[":host{font-size:16pt}"])
    depth = Slider(title="depth", start=1, end=D, step=1, value=min(D, 10), name="depth",
                   width=480, stylesheets=[":host{font-size:16pt}"])
    network = Select(title="network", value="1", name="network", width=160,
                     options=[str(i + 1) for i in range(s["shown"])],
                     stylesheets=[":host{font-size:16pt}"])

    tools = "pan,wheel_zoom,box_zoom,reset,save"
    size = dict(width=720, height=400, tools=tools)
    first = _first(data, keys[0], depth.value - 1, 0)  # what the callback draws at once
    gsrc = ColumnDataSource({"t": t, "g": first["g"]}, name="gradient")
    gfig = figure(title="df/dx", x_axis_label="input t on the line x = t", name="gradient_view",
                  y_axis_label="df/dx", **size)
    gfig.line("t", "g", source=gsrc, color=PALETTE[0], line_width=2)
    _style(gfig)

    nfig = figure(title="for comparison: brown and white noise",
                  x_axis_label="grid index", y_axis_label="standardised value",
                  name="noise_view", **size)
    for name, col, dash in (("brown", PALETTE[1], "solid"), ("white", PALETTE[6], "solid")):
        x = np.asarray(data["noise"][name]["signal"], float)
        z = (x - x.mean()) / (x.std() or 1.0)
        nfig.line(np.arange(len(z)), z + (3.0 if name == "brown" else -3.0), color=col,
                  line_dash=dash, line_width=1.5, legend_label=f"{name} noise")
    _style(nfig)

    asrc = ColumnDataSource({"lag": lags, "r": first["acf"]}, name="acf")
    afig = figure(title="autocorrelation", x_axis_label="lag (grid steps)",
                  y_axis_label="autocorrelation", y_range=(-0.5, 1.05), name="acf_view",
                  **size)
    afig.line("lag", "r", source=asrc, color=PALETTE[0], line_width=3, legend_label="df/dx")
    for name, col, dash in (("brown", PALETTE[1], "dashed"), ("white", PALETTE[6], "dotted")):
        afig.line(lags, data["noise"][name]["acf"], color=col, line_dash=dash, line_width=2,
                  legend_label=f"{name} noise")
    _style(afig)

    cmap = LinearColorMapper(palette="Cividis256", low=0.0,
                             high=max(float(np.quantile(first["image"], 0.99)), 1e-12))
    span = float(t[-1] - t[0])
    isrc = ColumnDataSource({"image": [first["image"]],
                             "x": [float(t[0])], "y": [float(t[0])], "dw": [span],
                             "dh": [span]}, name="cov")
    ifig = figure(title="covariance image", x_axis_label="t", y_axis_label="t'",
                  width=560, height=500, tools=tools, name="cov_view", match_aspect=True,
                  x_range=(float(t[0]), float(t[-1])), y_range=(float(t[0]), float(t[-1])))
    ifig.image("image", x="x", y="y", dw="dw", dh="dh", source=isrc, color_mapper=cmap)
    _style(ifig)

    lfig = figure(title="lag-1 autocorrelation against depth (mean ± 2 s.e.)",
                  x_axis_label="depth", y_axis_label="lag-1 autocorrelation",
                  x_axis_type="log", y_range=(-0.3, 1.05), name="lag1_view", width=720,
                  height=420, tools=tools)
    depths = data["depths"]
    for i, k in enumerate(keys):
        m, se = np.asarray(data[k]["lag1"], float), np.asarray(data[k]["lag1_se"], float)
        ok = np.isfinite(m)
        if not ok.any():
            continue  # looks-linear: df/dx is constant, lag-1 undefined (see the panel)
        src = ColumnDataSource({"d": depths[ok], "m": m[ok], "lo": (m - 2 * se)[ok],
                                "hi": (m + 2 * se)[ok]})
        lfig.scatter("d", "m", source=src, size=7, color=PALETTE[i],
                     legend_label=labels[k])
        lfig.add_layout(Whisker(source=src, base="d", lower="lo", upper="hi",
                                line_color=PALETTE[i]))
    th = data["theory"]
    lfig.line(th["depths"], th["lag1"], color=PALETTE[int(keys.index(th["family"]))],
              line_width=3, line_dash="dashed",
              legend_label=f"theory, {labels[th['family']]}: exact infinite width, no BN")
    for name, dash in (("brown", "dashed"), ("white", "dotted")):
        lfig.add_layout(Span(location=data["noise"][name]["lag1"], dimension="width",
                             line_color="#555555", line_dash=dash, line_width=1.5))
    marker = Span(location=depth.value, dimension="height", line_color="#000000",
                  line_width=2, name="depth_marker")
    lfig.add_layout(marker)
    _style(lfig)
    lfig.legend.location = "bottom_left"

    ksrc = ColumnDataSource(first["kinks"], name="kinks")
    kline = ColumnDataSource({"t": t, "g": first["g"]}, name="kinks_gradient")
    kfig = figure(title="breakpoints of f", x_axis_label="input t on the line",
                  y_axis_label="df/dx; ticks: breakpoints", name="kinks_view",
                  width=720, height=420, tools=tools)
    kfig.line("t", "g", source=kline, color=PALETTE[0], line_width=1.5)
    kfig.segment(x0="x", x1="x", y0="y0", y1="y1", source=ksrc, color=PALETTE[1],
                 line_width=1.5)
    _style(kfig)

    args = dict(family=family, depth=depth, network=network, meta=meta,
                grad_store=grad_store, acf_store=acf_store, kink_stores=kink_stores,
                kink_offsets=kink_offsets, gsrc=gsrc, gfig=gfig, asrc=asrc, afig=afig,
                isrc=isrc, ifig=ifig, cmap=cmap, marker=marker, ksrc=ksrc, kline=kline,
                kfig=kfig)
    update = CustomJS(args=args, code=_JS)
    family.js_on_change("value", update)
    depth.js_on_change("value", update)
    network.js_on_change("value", update)
    help_div = Div(text=_help(data), name="help", width=1400,
                   stylesheets=[":host{font-size:15pt; line-height:1.4}"])
    cmd_div = Div(text=f"<b>Regenerate this page:</b> <code>{html.escape(command)}</code>",
                  name="command", width=1400, stylesheets=[":host{font-size:15pt}"])
    layout = column(
        Div(text=f"<h1>Shattered gradients, interactively</h1><p>Random ReLU networks of "
                 f"width {s['width']}, depths 1-{D}, {s['nets']} networks per family "
                 f"(seed {s['seed']}); the line x = t, t in [-2, 2], {s['points']} "
                 "points.</p>", width=1400, stylesheets=[":host{font-size:15pt}"]),
        row(family, depth, network), row(gfig, nfig), row(afig, ifig), row(lfig, kfig),
        help_div, cmd_div)
    return layout, update


def _help(data):
    s = data["settings"]
    return (
        "<h2>How to read this page</h2><ul>"
        "<li><b>df/dx along the line</b>: the input gradient of one random network at the "
        "chosen depth. A shallow net's gradient wanders slowly, like <b>brown noise</b> "
        "(a random walk); a deep feedforward net's jumps about like <b>white noise</b>: "
        "the gradient is <i>shattered</i>. A resnet (small beta especially) stays smooth.</li>"
        "<li><b>autocorrelation against lag</b>: how alike the gradient is at points a lag "
        "apart (1 = identical). Brown noise stays near 1; white noise drops to 0 at lag 1.</li>"
        "<li><b>covariance image</b>: |(g(t) - m)(g(t') - m)| / var(g) for the chosen "
        "network; structure near the diagonal only means the gradient decorrelates fast.</li>"
        "<li><b>lag-1 against depth</b>: one number per depth, mean ± 2 s.e. over "
        f"{s['nets']} networks, every family; the vertical line is the chosen depth; the "
        "horizontal dashed and dotted lines are brown and white noise. The theory curve "
        "assumes infinite width and no batch norm (the exact Gaussian-process covariance), "
        "so it applies to the plain feedforward net only; at a finite width the dots fall "
        "below it as depth approaches the width (the corrections grow like depth / width). "
        "The looks-linear net is exactly "
        "linear at initialisation: its df/dx is constant, so it has no lag-1 to plot.</li>"
        "<li><b>breakpoints of f</b>: the exact places along the line where f, a "
        "piecewise-linear function, changes slope (the ticks), computed exactly for "
        f"networks 1-{s['kink_nets']} (above {MAX_TICKS:,} the title gives the count only: "
        "the ticks would merge). The count grows with depth; in a resnet most breakpoints "
        "bend f only slightly, so many kinks need not mean a shattered gradient.</li>"
        "</ul><p>All numbers were computed by gradsim when the page was built; nothing is "
        "fetched from the network.</p>")


def page_html(data, command, title="gradsim explore"):
    """The standalone HTML (inline Bokeh resources) of the page."""
    from bokeh.document import Document
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    layout, update = build_document(data, command)
    doc = Document()
    doc.add_root(layout)
    doc.js_on_event("document_ready", update)  # draw the first selection when the page opens
    doc.title = title
    return file_html(doc, resources=INLINE, title=title)
