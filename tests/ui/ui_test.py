#!/usr/bin/python3
"""The web UI of `stampede serve` in a real browser: Debian's Chromium, driven by Debian's
chromedriver through Selenium (python3-selenium, hence /usr/bin/python3).

A real `stampede serve` with a token and a real test target, both on 127.0.0.1. The test signs in
(a wrong token first), sends a bad spec from the form and a bad pasted LoadTest and finds each
problem next to its field or in the list, starts a test from the form, watches the live chart gain
points, downloads the results as JSON, CSV and HTML, aborts the test and sees the phase change, in
the view and in the list. Every wait is for something the page shows, bounded in time.

Usage: ui_test.py STAMPEDE TEST_TARGET
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

STAMPEDE, TARGET = sys.argv[1], sys.argv[2]
TOKEN = "ui-test-token-0123456789abcdef"
WAIT = 30  # seconds any one thing the page shows may take


def wait_for_file(path, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and read(path).strip():
            return read(path).strip()
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError(path)


def read(path):
    with open(path) as f:
        return f.read()


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class ServeUiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="stampede-ui-")
        cls.downloads = os.path.join(cls.dir, "downloads")
        os.mkdir(cls.downloads)
        cls.target = subprocess.Popen(
            [TARGET, "--port-file", os.path.join(cls.dir, "target-port")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.target_port = wait_for_file(os.path.join(cls.dir, "target-port"), cls.target)
        with open(os.path.join(cls.dir, "token"), "w") as f:
            f.write(TOKEN + "\n")
        cls.log = open(os.path.join(cls.dir, "serve.log"), "w")
        cls.serve = subprocess.Popen(
            [STAMPEDE, "serve", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0",
             "--port-file", os.path.join(cls.dir, "port"), "--token-file",
             os.path.join(cls.dir, "token"), "--logs", os.path.join(cls.dir, "logs")],
            stdout=cls.log, stderr=subprocess.STDOUT)
        cls.base = "http://127.0.0.1:" + wait_for_file(os.path.join(cls.dir, "port"), cls.serve)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--window-size=1280,1800", "--user-data-dir=" + os.path.join(cls.dir, "profile")]:
            options.add_argument(arg)
        options.add_experimental_option("prefs", {
            "download.default_directory": cls.downloads, "download.prompt_for_download": False})
        cls.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        cls.driver.execute_cdp_cmd("Page.setDownloadBehavior",
                                   {"behavior": "allow", "downloadPath": cls.downloads})

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        for p in (cls.serve, cls.target):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def until(self, what, condition, timeout=WAIT):
        return WebDriverWait(self.driver, timeout).until(lambda d: condition(), message=what)

    def by_id(self, id_):
        return self.driver.find_element(By.ID, id_)

    def field_errors(self):
        return {e.get_attribute("data-for"): e.text
                for e in self.driver.find_elements(By.CSS_SELECTOR, "#form .field-error")}

    def fill(self, name, value):
        e = self.driver.find_element(By.CSS_SELECTOR, f"#form [name={name}]")
        e.clear()
        e.send_keys(value)

    def downloaded(self, suffix):
        def find():
            done = [f for f in os.listdir(self.downloads) if f.endswith(suffix)]
            return os.path.join(self.downloads, done[0]) if done else None
        return self.until("a download ending in " + suffix, find)

    def test_the_ui_without_a_browser(self):
        # The page and its files need no token and carry a policy; the data does need it.
        status, headers, body = get(self.base + "/ui/")
        self.assertEqual(status, 200)
        self.assertIn("script-src 'self'", headers["Content-Security-Policy"])
        self.assertIn("connect-src 'self'", headers["Content-Security-Policy"])
        self.assertIn(b'<script src="app.js"', body)
        self.assertEqual(get(self.base + "/ui/app.js")[0], 200)
        self.assertEqual(get(self.base + "/ui/nothing.js")[0], 401)
        self.assertEqual(get(self.base + "/api/v1/loadtests")[0], 401)
        status, _, body = get(self.base + "/api/v1/info")
        self.assertEqual((status, json.loads(body)), (200, {"readOnly": False, "tokenRequired": True}))

    def test_sign_in_start_watch_download_abort(self):
        d = self.driver
        d.get(self.base + "/")
        self.until("the page to load", lambda: d.execute_script("return document.body.dataset.ready"))
        self.assertTrue(d.current_url.endswith("/ui/"), d.current_url)
        self.assertTrue(self.by_id("signin").is_displayed())
        self.assertFalse(self.by_id("home").is_displayed())

        # A wrong token is refused where the user typed it.
        self.by_id("token").send_keys("not-the-token-at-all")
        self.by_id("signin-form").submit()
        self.until("the refusal", lambda: "refused" in self.by_id("signin-error").text)
        self.by_id("token").clear()
        self.by_id("token").send_keys(TOKEN)
        self.by_id("signin-form").submit()
        self.until("the list", lambda: self.by_id("home").is_displayed())
        self.assertEqual(d.execute_script("return sessionStorage.getItem('stampede.token')"), TOKEN)

        # A bad spec from the form: each problem under its field.
        self.fill("url", "ftp://127.0.0.1/")
        self.fill("level", "0")
        self.fill("duration", "10")
        self.by_id("form").submit()
        self.until("the field errors", lambda: len(self.field_errors()) >= 3)
        errors = self.field_errors()
        self.assertIn("http://", errors["spec.target.url"])
        self.assertIn("spec.load.users", errors["spec.load.users"])
        self.assertIn("no unit", errors["spec.duration"])
        self.assertIn("invalid", self.driver.find_element(
            By.CSS_SELECTOR, "#form [name=url]").get_attribute("class"))

        # A bad pasted LoadTest: its problems, with their paths, under the text.
        self.by_id("tab-paste").click()
        self.by_id("spec").send_keys(
            "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: pasted}\n"
            "spec:\n  target: {url: \"http://127.0.0.1:" + self.target_port + "\"}\n"
            "  load: {users: 1, bogus: 2}\n  duration: 5s\n")
        self.by_id("paste").submit()
        self.until("the pasted spec's problems",
                   lambda: "spec.load.bogus" in self.by_id("paste-problems").text)
        self.assertEqual(get(self.base + "/api/v1/loadtests",
                             {"Authorization": "Bearer " + TOKEN})[2].count(b'"id"'), 0,
                         "an invalid spec started nothing")

        # A good one from the form: the view opens and its charts gain points every second.
        self.by_id("tab-form").click()
        self.fill("name", "from-the-ui")
        self.fill("url", "http://127.0.0.1:" + self.target_port)
        self.fill("path", "/delay/5")
        self.fill("level", "4")
        self.fill("duration", "120s")
        self.by_id("form").submit()
        self.until("the test's view", lambda: self.by_id("view").is_displayed())
        test_id = d.current_url.rsplit("/", 1)[1]
        self.until("the Running phase", lambda: self.by_id("view-phase").text == "Running")
        points = lambda: int(self.by_id("chart-rps").get_attribute("data-points") or 0)
        self.until("two seconds of points", lambda: points() >= 2)
        first = points()
        self.until("the live chart to gain points", lambda: points() >= first + 2)
        latency = int(self.by_id("chart-latency").get_attribute("data-points"))
        self.assertGreater(latency, 0)
        total = d.find_element(By.CSS_SELECTOR, "#summary tr[data-request=total] td.requests")
        self.assertGreater(int(total.text), 0)
        Select(self.by_id("request")).select_by_value("GET /delay/5")
        self.until("the request's chart", lambda: points() > 0)
        self.until("the chart to gain points", lambda: points() >= first + 4)
        if os.environ.get("STAMPEDE_UI_SCREENSHOT"):  # the README's picture: docs/ui.png
            d.set_window_size(1280, 760)
            d.save_screenshot(os.environ["STAMPEDE_UI_SCREENSHOT"])

        # Downloads: the token cannot ride on a link, so each is a fetch turned into a file.
        self.by_id("download-json").click()
        results = json.loads(read(self.downloaded(".json")))
        self.assertEqual(results["kind"], "LoadTestResult")
        self.assertEqual(results["runId"], test_id)
        self.assertGreater(len(results["series"]), 1)
        self.by_id("download-csv").click()
        self.assertTrue(read(self.downloaded(".csv")).startswith("second,request,requests"))
        self.by_id("download-html").click()
        self.assertIn("<svg", read(self.downloaded(".html")))

        # Abort: the phase changes in the view and then in the list.
        self.by_id("abort").click()
        self.until("the Aborted phase", lambda: self.by_id("view-phase").text == "Aborted")
        self.assertFalse(self.by_id("abort").is_enabled())
        d.find_element(By.CSS_SELECTOR, "#view a[href='#/']").click()
        self.until("the list", lambda: self.by_id("home").is_displayed())
        row = lambda: d.find_element(By.CSS_SELECTOR, f"#tests tr[data-id='{test_id}']")
        self.until("the row's phase", lambda: row().find_elements(By.CSS_SELECTOR, "td")[2].text == "Aborted")

        # The token never went into a URL: not the page's, nor any it loaded or fetched.
        urls = d.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".concat([location.href])")
        self.assertTrue(urls)
        for url in urls:
            self.assertNotIn(TOKEN, url)

        # Signing out forgets the token.
        self.by_id("signout").click()
        self.until("the sign-in", lambda: self.by_id("signin").is_displayed())
        self.assertIsNone(d.execute_script("return sessionStorage.getItem('stampede.token')"))


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
