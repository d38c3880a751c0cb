"""The ``gradsim explore`` page in a real browser: headless Chromium (Debian's ``chromium``
and ``chromium-driver``, which ``.ci/install-browser`` installs) opens the quick page from
disk with networking off, and the test checks what a lecturer would see.

It skips, with the reason, where there is no browser or no Selenium (the ``browser``
extra); under CI (``CI`` set) it fails instead, since ``.ci/run`` installs both.  The
screenshot is kept as ``explore.png`` in the test's temporary directory.
"""

import os
import shutil
import time

import numpy as np
import pytest

from gradsim.explore import QUICK, build_data

pytestmark = pytest.mark.slow

#: Each figure's data glyph colour (Okabe-Ito), whose pixels prove the data were drawn.
BLUE, VERMILLION = (0, 114, 178), (213, 94, 0)
DRAWN = {"gradient_view": BLUE, "noise_view": VERMILLION, "acf_view": BLUE,
         "lag1_view": VERMILLION, "kinks_view": VERMILLION}

_VIEWS = """
const out = {};
function walk(v) { if (v.model.name) out[v.model.name] = v;
                   for (const c of (v.child_views || [])) walk(c); }
Object.values(Bokeh.index).forEach(walk);
"""

_PIXELS = _VIEWS + """
const res = {};
for (const [name, v] of Object.entries(out)) {
  if (v.model.type !== 'Figure') continue;
  const c = v.canvas_view.primary.canvas;
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const colours = new Set(); let near = 0;
  const [r, g, b] = arguments[0][name] || [-999, -999, -999];
  for (let i = 0; i < px.length; i += 4) {
    colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
    if (Math.abs(px[i] - r) + Math.abs(px[i + 1] - g) + Math.abs(px[i + 2] - b) < 40) near++;
  }
  res[name] = {width: c.width, height: c.height, colours: colours.size, near: near};
}
return res;
"""


def _need(what, reason):
    if what:
        return what
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test: {reason} (.ci/run installs it)")
    pytest.skip(reason)


def _driver(profile):
    webdriver = _need(_import_selenium(), "Selenium is not installed: pip install -e "
                                          "'.[browser]'")
    from selenium.webdriver.chrome.service import Service

    chromium = _need(os.environ.get("GRADSIM_CHROMIUM") or shutil.which("chromium")
                     or shutil.which("chromium-browser"),
                     "no Chromium: run .ci/install-browser (Debian's chromium)")
    driver = _need(shutil.which("chromedriver"),
                   "no ChromeDriver: run .ci/install-browser (Debian's chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1500,1900", f"--user-data-dir={profile}",
                # networking off: every request goes to a closed local port
                "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=opts, service=Service(driver))
    drv.execute_cdp_cmd("Network.enable", {})
    drv.execute_cdp_cmd("Network.emulateNetworkConditions",
                        {"offline": True, "latency": 0, "downloadThroughput": -1,
                         "uploadThroughput": -1})
    return drv


def _import_selenium():
    try:
        from selenium import webdriver
    except ImportError:
        return None
    return webdriver


def _until(drv, script, timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = drv.execute_script(script)
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for: {script}")


def _model(name):
    return f"Bokeh.documents[0].get_model_by_name('{name}')"


def test_page_in_headless_chromium(tmp_path):
    from gradsim.explore.write import write_page

    page = tmp_path / "explore.html"
    write_page(str(page), QUICK, quick=True)
    data = build_data(QUICK)
    drv = _driver(tmp_path / "profile")
    try:
        drv.get(page.as_uri())
        _until(drv, "return !!(window.Bokeh && Bokeh.documents.length && "
                    f"{_model('gradient_view')} && "
                    f"{_model('gradient_view')}.title.text.startsWith('df/dx:'))")
        _until(drv, _VIEWS + "return Object.keys(out).length >= 11 && "
                    "Object.values(out).every(v => v.has_finished())")
        # nothing was fetched: no resource but the file itself
        fetched = drv.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(u.startswith(("file:", "data:", "blob:")) for u in fetched), fetched
        # every view is drawn: its data's colour on its canvas (the image: many colours)
        px = drv.execute_script(_PIXELS, {k: list(v) for k, v in DRAWN.items()})
        assert set(px) == set(DRAWN) | {"cov_view"}, px
        for name, p in px.items():
            assert p["width"] > 300 and p["height"] > 300, (name, p)
            if name == "cov_view":
                assert p["colours"] >= 30, (name, p)
            else:
                assert p["near"] >= 40, (name, p)
        D = QUICK.depth
        start = drv.execute_script(f"return {_model('depth')}.value")
        assert start == min(D, 10)
        g0 = np.array(drv.execute_script(f"return Array.from({_model('gradient')}.data.g)"))
        assert np.array_equal(g0.astype(np.float32), data["ff"]["grad"][0, start - 1])
        # move the slider as a user does: focus its handle, press the left arrow
        handle = drv.execute_script(_VIEWS + "return out.depth.el.shadowRoot"
                                             ".querySelector('.noUi-handle')")
        from selenium.webdriver.common.keys import Keys

        handle.send_keys(Keys.ARROW_LEFT)
        _until(drv, f"return {_model('depth')}.value === {start - 1}", 10)
        _until(drv, f"return {_model('gradient_view')}.title.text.includes('depth {start - 1},')",
               10)
        g1 = np.array(drv.execute_script(f"return Array.from({_model('gradient')}.data.g)"))
        assert not np.array_equal(g1, g0)
        assert np.array_equal(g1.astype(np.float32), data["ff"]["grad"][0, start - 2])
        # another family and network: the views follow, with gradsim's numbers
        drv.execute_script(f"{_model('family')}.value = 'res01'; "
                           f"{_model('network')}.value = '2';")
        _until(drv, f"return {_model('gradient_view')}.title.text.includes('beta = 0.1')", 10)
        g2 = np.array(drv.execute_script(f"return Array.from({_model('gradient')}.data.g)"))
        assert np.array_equal(g2.astype(np.float32), data["res01"]["grad"][1, start - 2])
        acf = np.array(drv.execute_script(f"return Array.from({_model('acf')}.data.r)"),
                       dtype=float)
        np.testing.assert_array_equal(acf.astype(np.float32), data["res01"]["acf"][1, start - 2])
        # network 2 has no kinks computed at the quick size (kink_nets = 1): the view says so
        title = drv.execute_script(f"return {_model('kinks_view')}.title.text")
        assert "networks 1-1 only" in title
        drv.execute_script(f"{_model('network')}.value = '1';")
        _until(drv, f"return {_model('kinks_view')}.title.text.includes('on [-2, 2]')", 10)
        n_kinks = drv.execute_script(f"return {_model('kinks')}.data.x.length")
        assert n_kinks == len(data["res01"]["kinks"][0][start - 2])
        shot = tmp_path / "explore.png"
        assert drv.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
        errors = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        drv.quit()
