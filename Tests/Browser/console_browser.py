#!/usr/bin/env python3
"""Real-browser tests of the Caisson console: headless Chromium (Debian's chromium and
chromium-driver) driven by Selenium, walking the flows a person would, on the simulator and on a
real Docker daemon.

    console_browser.py --caisson .build/debug/caisson [--docker] [--screenshots docs/console]

Flows: a good update, an update whose health check fails and is rolled back, a rejected package,
a rollback from the service list (with its confirmation), the history with audit verification,
and the sign-in page when the console listens beyond loopback. Every page visited is checked for
horizontal scrolling at 1280x800, 1024x600 and phone width, for labelled controls, and the first
screen for Docker jargon. Prints 'N passed, N failed' at the end; exit 1 on any failure.
"""
import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

SIZES = {"desktop": (1280, 800), "kiosk": (1024, 600), "phone": (390, 844)}
JARGON = re.compile(r"\b(docker|container|image|sha256|compose|daemon)\b", re.I)
RESULTS = {"passed": 0, "failed": 0}
STAMP = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "scripts", "stamp-version")


def log(msg):
    print(msg, flush=True)


class Console:
    """A `caisson console` process on a free port."""

    def __init__(self, caisson, services, state, media, host="sim", listen="127.0.0.1:0", env=None):
        args = [caisson, "--services", services, "--state-dir", state, "--host", host, "console", "--listen", listen, "--media", media]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            raise RuntimeError(f"console did not start: {self.url!r} {err}")
        self.base = self.url.split("/?")[0]

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


def browser(size="desktop", javascript=True):
    opts = Options()
    if not javascript:
        opts.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
              "--force-device-scale-factor=1", "--disable-extensions", "--no-first-run"]:
        opts.add_argument(a)
    w, h = SIZES[size]
    opts.add_argument(f"--window-size={w},{h}")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
    driver.set_window_size(w, h)
    # Window size includes no browser chrome in headless mode; make the viewport exact.
    vw, vh = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(w + (w - vw), h + (h - vh))
    return driver


@contextlib.contextmanager
def session(console, label, javascript=True):
    """A browser on a running console; afterwards the browser quits and the console must stop
    cleanly on SIGTERM (a console that does not is a failure of the flow)."""
    try:
        driver = browser(javascript=javascript)
    except BaseException:
        console.stop()
        raise
    try:
        yield driver
    finally:
        driver.quit()
        rc = console.stop()
        if rc != 0:
            RESULTS["failed"] += 1
            log(f"FAIL {label}: the console did not stop cleanly on SIGTERM (exit {rc})")


def page_version(driver):
    """The Caisson version the page was served by (None while the page reloads)."""
    return driver.execute_script("return document.body ? document.body.getAttribute('data-version') : null")


def wait(driver, cond, timeout=60):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(cond)


def text(driver):
    return driver.find_element(By.TAG_NAME, "body").text


def check_page(driver, where):
    """No horizontal scrolling at any size, every control labelled, no inline script."""
    for name, (w, h) in SIZES.items():
        driver.set_window_size(w, h)
        vw = driver.execute_script("return window.innerWidth")
        driver.set_window_size(w + (w - vw), h)
        over = driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert over <= 0, f"{where}: scrolls sideways by {over}px at {name} size"
    w, h = SIZES["desktop"]
    driver.set_window_size(w, h)
    vw, vh = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(w + (w - vw), h + (h - vh))
    unlabelled = driver.execute_script("""
        var bad = [];
        document.querySelectorAll('input:not([type=hidden]), button, select, textarea, a[href], progress').forEach(function (el) {
          var name = (el.getAttribute('aria-label') || el.textContent || el.value || '').trim();
          if (el.id && document.querySelector('label[for="' + el.id + '"]')) { name = name || 'label'; }
          if (!name) { bad.push(el.outerHTML.slice(0, 80)); }
        });
        return bad;""")
    assert not unlabelled, f"{where}: controls without a label: {unlabelled}"
    inline = driver.execute_script("return Array.from(document.scripts).filter(function (s) { return !s.src; }).length")
    assert inline == 0, f"{where}: inline script"


def shot(driver, directory, name):
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    for size in ("desktop", "kiosk"):
        w, h = SIZES[size]
        driver.set_window_size(w, h)
        vw, vh = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        driver.set_window_size(w + (w - vw), h + (h - vh))
        path = os.path.join(directory, f"{name}-{w}x{h}.png")
        driver.save_screenshot(path)
        try:
            from PIL import Image
            img = Image.open(path).convert("RGB").quantize(colors=64)
            img.save(path, optimize=True)
        except ImportError:
            pass
    w, h = SIZES["desktop"]
    driver.set_window_size(w, h)


def sign_in(driver, console):
    driver.get(console.url)
    wait(driver, EC.presence_of_element_located((By.ID, "svc")))
    assert "token=" not in driver.current_url, "the token stays out of the address bar after sign-in"


def start_update(driver, console, package):
    driver.get(console.base + "/")
    row = wait(driver, EC.presence_of_element_located((By.XPATH, f"//li[.//span[@class='name' and text()='{package}']]")))
    row.find_element(By.TAG_NAME, "button").click()


def confirm_update(driver):
    go = wait(driver, EC.element_to_be_clickable((By.ID, "go")))
    return go


def result(driver, timeout=180):
    h = wait(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "#result[data-outcome]")), timeout)
    return h.get_attribute("data-outcome"), h.text


def test(name):
    def deco(fn):
        def run(*a, **k):
            try:
                fn(*a, **k)
                RESULTS["passed"] += 1
                log(f"ok   {name}")
            except Exception:
                RESULTS["failed"] += 1
                log(f"FAIL {name}")
                traceback.print_exc()
        return run
    return deco


def flows(caisson, label, services, state, media, host, good, bad, evil, service, screenshots, env=None):
    console = Console(caisson, services, state, media, host=host, env=env)
    with session(console, label) as driver:
        @test(f"{label}: the first screen shows the device in plain words")
        def first_screen():
            sign_in(driver, console)
            body = text(driver)
            for words in ["This device", "Services", "Update packages", "Running and healthy", good]:
                assert words in body, f"missing {words!r}"
            jargon = JARGON.findall(body)
            assert not jargon, f"jargon on the first screen: {jargon}"
            check_page(driver, "home")
            # Keyboard: the first Tab reaches the skip link, and it leads to the content.
            driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
            focused = driver.switch_to.active_element
            assert focused.get_attribute("class") == "skip", "first Tab goes to the skip link"
            shot(driver, screenshots, "home")
        first_screen()

        @test(f"{label}: a good update, confirmed with one button, ends updated and healthy")
        def good_update():
            start_update(driver, console, good)
            go = confirm_update(driver)
            body = text(driver)
            assert "The package is valid" in body and "What will happen" in body, body[:400]
            check_page(driver, "plan")
            shot(driver, screenshots, "plan")
            # The button can be reached and pressed from the keyboard.
            go.send_keys(Keys.ENTER)
            if label == "sim":
                # The simulator's health check runs in real time in the console: it counts down.
                cd = wait(driver, lambda d: re.search(r"up to (\d+) s", d.find_element(By.ID, "countdown").text)
                          if d.find_elements(By.ID, "countdown") else None, 60)
                assert 0 < int(cd.group(1)) <= 30, cd.group(0)
            outcome, headline = result(driver)
            assert outcome == "updated", (outcome, headline)
            assert "Updated and healthy" in headline
            assert "safe to remove the USB stick" in text(driver)
            check_page(driver, "result")
            shot(driver, screenshots, "updated")
        good_update()

        @test(f"{label}: an update that fails its health check is rolled back")
        def failing_update():
            start_update(driver, console, bad)
            confirm_update(driver).click()
            outcome, headline = result(driver)
            assert outcome == "rolled_back", (outcome, headline)
            assert "previous version is running again" in headline
            # Why it failed (issue 12): the failed container's evidence, in plain words first.
            why = wait(driver, EC.presence_of_element_located((By.ID, "why")))
            assert why.text == "Why it failed", why.text
            item = driver.find_element(By.CSS_SELECTOR, ".evidence-item[data-role='new']")
            assert item.text.startswith("The new version "), item.text
            check_page(driver, "rolled back, with its evidence")
            shot(driver, screenshots, "rolled-back")
        failing_update()

        @test(f"{label}: a rejected package is explained in plain words and changes nothing")
        def rejected():
            start_update(driver, console, evil)
            outcome, headline = result(driver)
            assert outcome == "rejected", (outcome, headline)
            body = text(driver)
            assert "Nothing was changed" in body
            assert "Ask the publisher" in body or "Do not install it" in body, body[:600]
            check_page(driver, "rejected")
            shot(driver, screenshots, "rejected")
        rejected()

        @test(f"{label}: the live progress page follows a reload")
        def reload_progress():
            driver.get(console.base + "/operation")
            assert "Back to this device" in text(driver)
            events = driver.find_elements(By.CSS_SELECTOR, "#events li")
            # The activity log replays from the audit log after the id the page was rendered at.
            assert isinstance(events, list)
        reload_progress()

        @test(f"{label}: roll back from the service list, with a confirmation")
        def rollback():
            driver.get(console.base + "/")
            link = wait(driver, EC.element_to_be_clickable((By.PARTIAL_LINK_TEXT, "Go back to the previous version")))
            link.click()
            confirm = wait(driver, EC.element_to_be_clickable((By.ID, "confirm-rollback")))
            assert "Go back to the previous version of " + service in text(driver)
            shot(driver, screenshots, "rollback-confirm")
            confirm.click()
            outcome, headline = result(driver)
            assert outcome == "updated" and "Rolled back" in headline, (outcome, headline)
        rollback()

        @test(f"{label}: history shows each attempt with its events, and the audit log verifies")
        def history():
            driver.get(console.base + "/history")
            body = text(driver)
            assert "Rollback succeeded" in body and "Update succeeded" in body, body[:500]
            check_page(driver, "history")
            shot(driver, screenshots, "history")
            driver.find_elements(By.CSS_SELECTOR, "ul.history a")[0].click()
            wait(driver, EC.presence_of_element_located((By.XPATH, "//h2[text()='What happened']")))
            shot(driver, screenshots, "attempt")
            driver.get(console.base + "/history")
            driver.find_element(By.ID, "verify").click()
            verdict = wait(driver, EC.presence_of_element_located((By.ID, "verify-result"))).text
            assert "intact" in verdict, verdict
        history()


def handover_flow(caisson, services, state, media):
    """Issue 14 item 5: Caisson is replaced under a running console (as a self-update does: a
    stamped copy renamed over the executable it runs from) and the console is asked to restart
    (SIGHUP; after a real self-update it does so by itself): an open page reconnects and reloads
    on the new version."""
    bindir = tempfile.mkdtemp(prefix="caisson-browser-bin-")
    try:
        installed = os.path.join(bindir, "caisson")
        shutil.copy2(caisson, installed)
        console = Console(installed, services, state, media)
        with session(console, 'sim hand-over') as driver:
            @test("sim: the console restarts on a replaced Caisson and an open page follows it")
            def handover():
                sign_in(driver, console)
                old = page_version(driver)
                assert old and old != "9.8.7", old
                staged = os.path.join(bindir, ".caisson.new")
                subprocess.run([sys.executable, STAMP, caisson, "9.8.7", "-o", staged], check=True, stdout=subprocess.DEVNULL)
                os.rename(staged, installed)
                console.proc.send_signal(signal.SIGHUP)
                # No click, no reload by hand: the page's live events reconnect and it reloads itself.
                wait(driver, lambda d: page_version(d) == "9.8.7", 60)
                banner = wait(driver, EC.presence_of_element_located((By.ID, "handed-over")))
                assert "restarted" in banner.text and "9.8.7" in banner.text, banner.text
                assert "version 9.8.7" in text(driver)
                second = console.proc.stdout.readline().strip()
                assert second.startswith(console.base + "/?token="), second
                check_page(driver, "after the hand-over")
            handover()
    finally:
        shutil.rmtree(bindir, ignore_errors=True)


def self_update_flow(caisson, services, state, media_root):
    """Issue 14: an updater package on the stick updates Caisson itself from the page; the console
    restarts on the new version and the page follows it."""
    bindir = tempfile.mkdtemp(prefix="caisson-browser-selfupdate-")
    try:
        installed = os.path.join(bindir, "caisson")
        shutil.copy2(caisson, installed)
        new = os.path.join(bindir, "caisson-new")
        subprocess.run([sys.executable, STAMP, caisson, "9.8.8", "-o", new], check=True, stdout=subprocess.DEVNULL)
        media = os.path.join(media_root, "usb-caisson")
        os.makedirs(media, exist_ok=True)
        package = "caisson-9.8.8.edgepkg"
        subprocess.run([caisson, "--services", services, "package", "build", "--updater", new, "--version", "9.8.8",
                        "--output", os.path.join(media, package)], check=True, capture_output=True)
        console = Console(installed, services, state, media)
        with session(console, 'sim self-update') as driver:
            @test("sim: Caisson updates itself from the page, and the page follows it onto the new version")
            def self_update():
                sign_in(driver, console)
                assert page_version(driver) != "9.8.8"
                start_update(driver, console, package)
                go = confirm_update(driver)
                assert "Update Caisson itself" in text(driver), text(driver)
                assert go.text == "Update Caisson now", go.text
                check_page(driver, "self-update plan")
                go.click()
                try:
                    wait(driver, lambda d: page_version(d) == "9.8.8", 180)
                except Exception:
                    raise AssertionError(f"the page never came back on 9.8.8: {driver.current_url}: {text(driver)[:2000]}")
                banner = wait(driver, EC.presence_of_element_located((By.ID, "handed-over")))
                assert "updated from version" in banner.text and "9.8.8" in banner.text, banner.text
            self_update()
    finally:
        shutil.rmtree(bindir, ignore_errors=True)


def login_flow(caisson, services, state, media, screenshots):
    env = dict(os.environ, CAISSON_CONSOLE_PASSWORD="kiosk-pass-1234")
    subprocess.run([caisson, "--services", services, "--state-dir", state, "console", "password"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    console = Console(caisson, services, state, media, listen="0.0.0.0:0")
    with session(console, 'sim login') as driver:
        @test("sim: beyond loopback, the console asks for its password")
        def login():
            port = console.base.rsplit(":", 1)[1]
            driver.get(f"http://127.0.0.1:{port}/")
            field = wait(driver, EC.presence_of_element_located((By.ID, "password")))
            assert driver.current_url.endswith("/login")
            check_page(driver, "login")
            shot(driver, screenshots, "login")
            field.send_keys("not the password")
            field.send_keys(Keys.ENTER)
            wait(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "p.alert.bad")))
            assert "not right" in text(driver)
            driver.find_element(By.ID, "password").send_keys("kiosk-pass-1234" + Keys.ENTER)
            wait(driver, EC.presence_of_element_located((By.ID, "svc")))
            cookie = driver.get_cookie("caisson_session")
            assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", cookie
        login()


def hostile_flow(caisson, services, state, media_root, good_path, outside_dir, screenshots):
    """Packages built to attack the page and the device: markup in the file name and in every
    manifest field, a member escaping the package, a symlink leading off the stick."""
    import tarfile
    import io
    stick = os.path.join(media_root, "hostile")
    os.makedirs(stick)
    payload = "<img src=x onerror=\"document.title='pwned'\">"
    with tarfile.open(good_path) as src:
        members = [(m, src.extractfile(m).read()) for m in src.getmembers()]
    manifest = {m.name: data for m, data in members}["manifest.toml"].decode()
    manifest = re.sub(r'package_version = ".*"', 'package_version = "1.9.0<script>document.title=\'pwned\'</script>"', manifest)
    manifest = re.sub(r'service = ".*"', 'service = "frontend\\"><svg onload=alert(1)>"', manifest, count=1)
    hostile = os.path.join(stick, payload.replace("/", "") + ".edgepkg")
    with tarfile.open(hostile, "w", format=tarfile.USTAR_FORMAT) as out:
        for m, data in members:
            data = manifest.encode() if m.name == "manifest.toml" else data
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        evil = b"escaped\n"
        info = tarfile.TarInfo("../../escape.txt")
        info.size = len(evil)
        out.addfile(info, io.BytesIO(evil))
    # A symlink on the stick to a package elsewhere on the device: never offered.
    outside = os.path.join(outside_dir, "outside.edgepkg")
    shutil.copy(good_path, outside)
    os.symlink(outside, os.path.join(stick, "linked-outside.edgepkg"))
    console = Console(caisson, services, state, media_root)
    with session(console, 'sim hostile') as driver:
        @test("sim: a hostile package is shown as text, rejected, and nothing escapes")
        def hostile_package():
            sign_in(driver, console)
            names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "ul.packages .name")]
            assert payload + ".edgepkg" in names, names
            assert "linked-outside.edgepkg" not in names, names
            assert driver.execute_script("return document.images.length") == 0
            row = driver.find_element(By.XPATH, "//li[.//span[@class='name' and starts-with(text(), '<img')]]")
            row.find_element(By.TAG_NAME, "button").click()
            outcome, _ = result(driver)
            assert outcome == "rejected", outcome
            body = text(driver)
            assert "Nothing was changed" in body
            # No tick for the service it names: this device has no such service.
            assert "Made for a service this device does not have: frontend\"><svg onload=alert(1)>" in body, body[:800]
            assert "Made for this device's service" not in body
            # The name is in the title as text; a script that ran would have made it exactly "pwned".
            assert driver.title != "pwned" and driver.title.endswith("· Caisson"), driver.title
            counts = driver.execute_script(
                "return [document.images.length, document.querySelectorAll('svg').length, "
                "Array.from(document.scripts).filter(function (s) { return !/\\/app\\.js$/.test(s.src); }).length]")
            assert counts == [0, 0, 0], counts
            for root in (media_root, os.path.dirname(media_root), os.path.dirname(state)):
                assert not os.path.exists(os.path.join(root, "escape.txt")), root
            check_page(driver, "hostile")
            shot(driver, screenshots, "hostile")
            # Asking for the symlink by its id is refused too (the server maps ids only from a scan).
            driver.get(console.base + "/")
            assert driver.title != "pwned", driver.title
        hostile_package()


def nojs_flow(caisson, services, state, media_root, package_path):
    """The whole update with JavaScript switched off: the upload form, the check, the button."""
    console = Console(caisson, services, state, media_root)
    with session(console, 'sim no-JavaScript', javascript=False) as driver:
        @test("sim: without JavaScript, upload a package with the form and update from it")
        def nojs():
            sign_in(driver, console)
            driver.find_element(By.ID, "upload-file").send_keys(package_path)
            driver.find_element(By.CSS_SELECTOR, "#upload button[type=submit]").click()
            wait(driver, EC.presence_of_element_located((By.ID, "upload-result")))
            assert "Package uploaded" in text(driver), text(driver)[:300]
            check_page(driver, "uploaded")
            driver.find_element(By.XPATH, "//button[text()='Check this package']").click()
            # The page reloads itself (noscript refresh) until the plan is shown.
            wait(driver, EC.element_to_be_clickable((By.ID, "go")), 120).click()
            outcome, headline = result(driver)
            assert outcome == "updated", (outcome, headline)
        nojs()


def docker_setup(caisson, root):
    """A docker-mode service on the private daemon, and packages built from the test images."""
    docker = lambda *a: subprocess.run(["docker", *a], check=True, capture_output=True, text=True).stdout.strip()
    tag = f"caisson-browser-{os.getpid()}"
    name = f"{tag}-web"
    media = os.path.join(root, "media")
    os.makedirs(media)
    services = os.path.join(root, "services.toml")
    with open(services, "w") as f:
        f.write(f"""catalog_version = 1

[[services]]
name = "web"
service_revision = "web-v1"
platform = "linux/amd64"
runtime_mode = "docker"

[services.docker]
container_name = "{name}"
image_reference = "{tag}/web:current"

[services.health_check]
kind = "container_health"
timeout_secs = 20
poll_interval_secs = 1
stable_secs = 2
""")
    docker("tag", "caisson-test/app:1", f"{tag}/web:current")
    docker("run", "-d", "--name", name, f"{tag}/web:current")
    # Settle the world before the flows (as the simulator does): the first screen says "Running
    # and healthy" only once the image's own HEALTHCHECK has passed, which takes a few seconds.
    deadline = time.time() + 90
    while True:
        state = subprocess.run(["docker", "inspect", "--format", "{{.State.Health.Status}}", name],
                               capture_output=True, text=True).stdout.strip()
        if state == "healthy":
            break
        if time.time() > deadline:
            raise RuntimeError(f"the service container {name} did not become healthy (health: {state!r})")
        time.sleep(0.5)
    for version, src in (("2.0.0", "caisson-test/app:2"), ("3.0.0", "caisson-test/app:unhealthy")):
        docker("tag", src, f"{tag}/web:{version}")
        subprocess.run([caisson, "--services", services, "package", "build", "--service", "web", "--image", f"{tag}/web:{version}",
                        "--version", version, "--output", os.path.join(media, f"web-{version}.edgepkg")],
                       check=True, capture_output=True)
        docker("rmi", f"{tag}/web:{version}")
    # Rejected: a damaged copy (bytes changed inside image.tar: its checksum no longer matches).
    damaged = os.path.join(media, "web-damaged.edgepkg")
    shutil.copy(os.path.join(media, "web-2.0.0.edgepkg"), damaged)
    with open(damaged, "r+b") as f:
        f.seek(os.path.getsize(damaged) // 2)
        f.write(b"\xff" * 64)

    def cleanup():
        out = subprocess.run(["docker", "ps", "-aq", "--filter", f"name={tag}"], capture_output=True, text=True).stdout.split()
        if out:
            subprocess.run(["docker", "rm", "-f", *out], capture_output=True)
        imgs = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True).stdout.split()
        for i in imgs:
            if i.startswith(tag) or i.startswith(f"caisson-pin/web"):
                subprocess.run(["docker", "rmi", "-f", i], capture_output=True)
    return services, media, cleanup


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--caisson", required=True)
    ap.add_argument("--docker", action="store_true", help="also walk the flows on the real daemon (DOCKER_HOST)")
    ap.add_argument("--screenshots", help="save screenshots of the main states here (1280x800 and 1024x600)")
    args = ap.parse_args()
    caisson = os.path.abspath(args.caisson)
    # Media on another filesystem than the state (as a USB stick is): /dev/shm is tmpfs.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    root = tempfile.mkdtemp(prefix="caisson-browser-")
    media_root = tempfile.mkdtemp(prefix="caisson-browser-media-", dir=shm)
    try:
        media = os.path.join(media_root, "usb")
        subprocess.run([caisson, "demo", "--prepare", media], check=True, stdout=subprocess.DEVNULL)
        flows(caisson, "sim", os.path.join(media, "services.toml"), os.path.join(root, "state"), media_root, "sim",
              "frontend-1.1.0.edgepkg", "frontend-1.2.0.edgepkg", "frontend-evil.edgepkg", "frontend", args.screenshots)
        login_flow(caisson, os.path.join(media, "services.toml"), os.path.join(root, "state-login"), media_root, args.screenshots)
        handover_flow(caisson, os.path.join(media, "services.toml"), os.path.join(root, "state-handover"), media_root)
        self_update_flow(caisson, os.path.join(media, "services.toml"), os.path.join(root, "state-selfupdate"), root)
        # The demo's catalog and packages, copied aside (the flows above changed nothing in them).
        aside = os.path.join(root, "aside")
        shutil.copytree(media, aside)
        hostile_media = tempfile.mkdtemp(prefix="caisson-browser-hostile-", dir=shm)
        try:
            hostile_flow(caisson, os.path.join(aside, "services.toml"), os.path.join(root, "state-hostile"), hostile_media,
                         os.path.join(aside, "frontend-1.1.0.edgepkg"), root, args.screenshots)
        finally:
            shutil.rmtree(hostile_media, ignore_errors=True)
        empty_media = tempfile.mkdtemp(prefix="caisson-browser-empty-", dir=shm)
        try:
            nojs_flow(caisson, os.path.join(aside, "services.toml"), os.path.join(root, "state-nojs"), empty_media,
                      os.path.join(aside, "frontend-1.1.0.edgepkg"))
        finally:
            shutil.rmtree(empty_media, ignore_errors=True)
        if args.docker:
            droot = tempfile.mkdtemp(prefix="caisson-browser-real-", dir=shm)
            services, dmedia, cleanup = docker_setup(caisson, droot)
            try:
                flows(caisson, "docker", services, os.path.join(root, "state-docker"), dmedia, "docker",
                      "web-2.0.0.edgepkg", "web-3.0.0.edgepkg", "web-damaged.edgepkg", "web", None)
            finally:
                cleanup()
                shutil.rmtree(droot, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(media_root, ignore_errors=True)
    log(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
