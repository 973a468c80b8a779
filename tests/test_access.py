"""Access: who may read, change and send logs; sessions, CSRF, tokens, headers, limits."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import event, text
from werkzeug.security import generate_password_hash

from app.auth.credentials import create_token, create_user
from app.extensions import db
from tests.conftest import make_app, token_headers
from tests.helpers import post_logs, scalar

PASSWORD = "correct horse battery"


@pytest.fixture
def browser(app):
    """A cookie-keeping client over HTTPS, as a person's browser would be."""
    test_client = app.test_client()
    test_client.environ_base["wsgi.url_scheme"] = "https"
    return test_client


def csrf_from(html: str) -> str:
    """The CSRF token of a page's form."""
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(browser, username: str, password: str = PASSWORD, next_path: str = ""):
    """Submit the sign-in form like a person would."""
    token = csrf_from(browser.get("/login").get_data(as_text=True))
    return browser.post("/login", data={"username": username, "password": password,
                                        "csrf_token": token, "next": next_path})


def session_csrf(browser) -> str:
    """The CSRF token of a signed-in session, read from the sign-in form it renders."""
    return csrf_from(browser.get("/login").get_data(as_text=True))


@pytest.mark.parametrize("path", ["/api/logs", "/api/logs/dashboard", "/api/logs/services",
                                  "/api/logs/alerts/config", "/api/tokens"])
def test_api_needs_a_token_or_a_session(anonymous_client, path):
    """Anonymous API calls get a JSON 401 that says how to authenticate."""
    response = anonymous_client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "Bearer" in response.json["error"]


def test_pages_send_people_to_sign_in(anonymous_client):
    """A browser asking for a page is redirected to the sign-in form, then back."""
    response = anonymous_client.get("/health", headers={"Accept": "text/html"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/health")
    # The page's path as it was sent: decoded, a service's %2F would lead elsewhere.
    page = "/services/..%2F..%2Fapi%2Flogs%2Fdashboard?window=24h"
    response = anonymous_client.get(page, headers={"Accept": "text/html"})
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query)["next"] == [page]


def test_anonymous_requests_take_no_database_connection(anonymous_client):
    """A refusal or a redirect to sign in needs no connection, so anonymous callers cannot
    tie up the pool."""
    taken = []

    def checked_out(*args):
        """Note a connection taken from the pool."""
        taken.append(args)

    event.listen(db.engine, "checkout", checked_out)
    try:
        assert anonymous_client.get("/api/logs/dashboard").status_code == 401
        assert anonymous_client.get("/", headers={"Accept": "text/html"}).status_code == 302
    finally:
        event.remove(db.engine, "checkout", checked_out)
    assert taken == []


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/login", "/static/app.css"])
def test_probes_and_sign_in_are_public(anonymous_client, path):
    """Probes, the form and static files need no sign-in."""
    with anonymous_client.get(path) as response:
        assert response.status_code == 200


def test_ingest_needs_an_ingest_token(app, anonymous_client):
    """No token or a wrong one: 401 and nothing stored; read tokens cannot send logs."""
    line = {"service": "a", "message": "m"}
    assert post_logs(anonymous_client, line).status_code == 401
    bad = post_logs(anonymous_client, line, headers={"Authorization": "Bearer ld_nope"})
    assert bad.status_code == 401
    assert bad.json["error"] == "invalid or revoked API token"
    read_only = post_logs(anonymous_client, line, headers=token_headers("read"))
    assert read_only.status_code == 403
    assert scalar("SELECT count(*) FROM logs.entries") == 0
    assert post_logs(anonymous_client, line, headers=token_headers("ingest")).status_code == 202


def test_open_ingest_accepts_lines_without_a_token(app, anonymous_client, monkeypatch):
    """LOGDASH_OPEN_INGEST lets anyone send logs, and nothing else."""
    monkeypatch.setitem(app.config, "LOGDASH_OPEN_INGEST", True)
    assert post_logs(anonymous_client, {"service": "a", "message": "m"}).status_code == 202
    assert anonymous_client.get("/api/logs").status_code == 401
    # A page of another site posting in the person's browser (text/plain needs no preflight).
    forged = anonymous_client.post("/api/logs", data='{"service": "a", "message": "forged"}',
                                   content_type="text/plain",
                                   headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403 and "other sites" in forged.json["error"]
    # The same page after its name was made to resolve to this machine (DNS rebinding).
    rebound = anonymous_client.post("/api/logs", data='{"service": "a", "message": "forged"}',
                                    content_type="text/plain", base_url="http://rebind.example",
                                    headers={"Origin": "http://rebind.example"})
    assert rebound.status_code == 403 and "other sites" in rebound.json["error"]
    broken = anonymous_client.post("/api/logs", json={"service": "a", "message": "x"},
                                   headers={"Origin": "http://["})
    assert broken.status_code == 403
    own_page = anonymous_client.post("/api/logs", json={"service": "a", "message": "page"},
                                     base_url="http://127.0.0.1:8000",
                                     headers={"Origin": "http://127.0.0.1:8000"})
    assert own_page.status_code == 202
    # A read token is refused as it would be with ingest closed, not let through as open.
    reader = post_logs(anonymous_client, {"service": "a", "message": "by a reader"},
                       headers=token_headers("read"))
    assert reader.status_code == 403 and "read scope" in reader.json["error"]
    assert scalar("SELECT count(*) FROM logs.entries") == 2


def test_token_pinned_to_a_service(anonymous_client):
    """A pinned token names unnamed lines and refuses lines of other services."""
    headers = token_headers("ingest", service="billing")
    response = post_logs(anonymous_client, [{"message": "a"}, {"message": "b", "service": "x"}],
                         headers=headers)
    assert response.json["accepted"] == 1
    assert response.json["errors"] == [
        {"index": 1, "error": "this token only sends logs for service 'billing'"}]
    assert scalar("SELECT service FROM logs.entries") == "billing"


def test_a_pinned_token_makes_only_tokens_pinned_like_it(anonymous_client):
    """An admin token pinned to a service cannot undo its pin by making an unpinned token
    (nor one pinned elsewhere); one pinned the same, or a read token, it may make."""
    pinned = token_headers("admin", service="billing")
    for body in ({"name": "escape", "scope": "ingest"},
                 {"name": "escape", "scope": "admin", "service": "payments"}):
        refused = anonymous_client.post("/api/tokens", json=body, headers=pinned)
        assert refused.status_code == 403
        assert "must be pinned to it too" in refused.json["error"]
    # Nor through the tokens page, which an admin token may post to as well.
    tokens = scalar("SELECT count(*) FROM logs.api_tokens")
    page = anonymous_client.post("/settings/tokens", data={"name": "escape",
                                                           "scope": "ingest"}, headers=pinned)
    assert "must be pinned to it too" in page.get_data(as_text=True)
    assert scalar("SELECT count(*) FROM logs.api_tokens") == tokens
    same = anonymous_client.post("/api/tokens", json={"name": "ok", "scope": "ingest",
                                                      "service": " billing "}, headers=pinned)
    assert same.status_code == 201 and same.json["service"] == "billing"
    reader = anonymous_client.post("/api/tokens", json={"name": "r", "scope": "read"},
                                   headers=pinned)
    assert reader.status_code == 201
    sent = post_logs(anonymous_client, {"service": "payments", "message": "x"},
                     headers={"Authorization": f"Bearer {same.json['token']}"})
    assert sent.json["accepted"] == 0


def test_token_scopes(anonymous_client):
    """ingest only sends, read only reads, admin does everything."""
    config = {"service": "api"}
    ingest, read, admin = (token_headers(s) for s in ("ingest", "read", "admin"))
    assert anonymous_client.get("/api/logs", headers=ingest).status_code == 403
    assert anonymous_client.get("/api/logs", headers=read).status_code == 200
    refused = anonymous_client.post("/api/logs/alerts/config", json=config, headers=read)
    assert refused.status_code == 403
    assert "admin scope" in refused.json["error"]
    assert anonymous_client.get("/api/tokens", headers=read).status_code == 403
    assert anonymous_client.get("/api/tokens", headers=admin).status_code == 200
    created = anonymous_client.post("/api/logs/alerts/config", json=config, headers=admin)
    assert created.status_code == 201


def test_revoked_token_stops_working_and_use_is_recorded(client, anonymous_client):
    """Tokens made over the API work until revoked; values are shown once only."""
    made = client.post("/api/tokens", json={"name": "shipper", "scope": "read"})
    assert made.status_code == 201
    headers = {"Authorization": f"Bearer {made.json['token']}"}
    assert anonymous_client.get("/api/logs", headers=headers).status_code == 200
    listed = {t["id"]: t for t in client.get("/api/tokens").json["tokens"]}
    assert "token" not in listed[made.json["id"]]
    assert listed[made.json["id"]]["last_used_at"] is not None
    assert client.delete(f"/api/tokens/{made.json['id']}").status_code == 204
    assert anonymous_client.get("/api/logs", headers=headers).status_code == 401
    assert client.delete(f"/api/tokens/{made.json['id']}").status_code == 404
    assert client.post("/api/tokens", json={"name": "", "scope": "god"}).status_code == 400


def test_requests_per_token_are_limited(app, anonymous_client, monkeypatch):
    """Past the per-minute limit a token gets 429 with Retry-After."""
    monkeypatch.setitem(app.config, "LOGDASH_TOKEN_RATE_PER_MINUTE", 3)
    headers = token_headers("read")
    statuses = [anonymous_client.get("/api/logs", headers=headers).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = anonymous_client.get("/api/logs", headers=headers)
    assert 1 <= int(limited.headers["Retry-After"]) <= 61


def test_a_csrf_token_with_non_ascii_characters_is_refused_not_a_500(browser):
    """The token is compared in constant time, which Python does for ASCII text only: any
    other token sent is wrong, in the form and in the header."""
    browser.get("/login")
    form = browser.post("/login", data={"username": "x", "password": "y", "csrf_token": "é"})
    assert form.status_code == 400 and "form expired" in form.get_data(as_text=True)
    create_user("ada", PASSWORD, "admin")
    sign_in(browser, "ada")
    header = browser.post("/api/logs/alerts/config", json={"service": "a"},
                          headers={"X-CSRF-Token": "\xe9"})
    assert header.status_code == 403 and "CSRF" in header.json["error"]


@pytest.mark.parametrize("path", ["/api/tokens", "/api/logs/alerts/config",
                                  "/api/logs/alerts/silences",
                                  "/api/logs/alerts/maintenance-windows"])
def test_json_nested_past_the_decoder_is_a_400(client, path):
    """A body nested deeper than Python's decoder follows is not a JSON object to use."""
    response = client.post(path, data="[" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert "JSON object" in response.json["error"]


def test_an_unreadable_host_gets_an_error_page_browsers_can_read(anonymous_client):
    """With a Host header Werkzeug refuses, no URL can be built for a page's links: the
    400 is answered in JSON rather than failing to render the page."""
    response = anonymous_client.get("/login", headers={"Host": "a" * 64,
                                                       "Accept": "text/html"})
    assert response.status_code == 400
    assert "error" in response.json


def test_a_browser_form_refused_gets_a_page_and_htmx_gets_json(browser):
    """A form a browser posts itself (signed out elsewhere, a stale CSRF token, a viewer's
    form) is refused with the error page; htmx's requests, which accept anything, get the
    JSON error the page shows."""
    create_user("vera", PASSWORD, "viewer")
    sign_in(browser, "vera")
    page = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    stale = browser.post("/logout", data={"csrf_token": "stale"}, headers=page)
    assert stale.status_code == 403 and stale.mimetype == "text/html"
    assert "missing or wrong CSRF token" in stale.get_data(as_text=True)
    viewer = browser.post("/alerts", data={"csrf_token": session_csrf(browser)}, headers=page)
    assert viewer.status_code == 403 and "only admins can change this" in viewer.get_data(
        as_text=True)
    htmx = browser.post("/logout", data={"csrf_token": "stale"}, headers={"Accept": "*/*"})
    assert htmx.status_code == 403 and "CSRF" in htmx.json["error"]


def test_a_nul_in_the_sign_in_form_gets_the_error_page(browser):
    """PostgreSQL cannot compare a NUL: the refusal is a page to the browser that sent it."""
    token = csrf_from(browser.get("/login").get_data(as_text=True))
    response = browser.post("/login", data={"username": "a\x00", "password": "x",
                                            "csrf_token": token},
                            headers={"Accept": "text/html"})
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "cannot be stored" in response.get_data(as_text=True)


def test_a_page_whose_session_ended_is_sent_to_sign_in_and_back(anonymous_client):
    """htmx's request from a page signed out elsewhere: 401, and HX-Redirect, which htmx
    follows, to the sign-in form with the page to come back to."""
    response = anonymous_client.post("/alerts", headers={
        "HX-Request": "true", "HX-Current-URL": "https://logdash.example/alerts?service=a%2Fb"})
    assert response.status_code == 401
    assert response.json["error"] == "your session has ended; sign in again"
    target = urlsplit(response.headers["HX-Redirect"])
    assert target.path == "/login"
    assert parse_qs(target.query)["next"] == ["/alerts?service=a%2Fb"]
    elsewhere = anonymous_client.get("/partials/health", headers={
        "HX-Request": "true", "HX-Current-URL": "javascript:alert(1)"})
    assert parse_qs(urlsplit(elsewhere.headers["HX-Redirect"]).query)["next"] == ["/"]


def test_the_session_check_is_empty_to_a_session_and_sends_others_to_sign_in(browser):
    """What a live page asks when its socket cannot reopen: nothing to compute while the
    session holds; once it ended, where to sign in and come back."""
    create_user("vera", PASSWORD, "viewer")
    sign_in(browser, "vera")
    held = browser.get("/session", headers={"HX-Request": "true"})
    assert held.status_code == 204 and held.data == b""
    browser.post("/logout", data={"csrf_token": session_csrf(browser)})
    ended = browser.get("/session", headers={
        "HX-Request": "true", "HX-Current-URL": "https://logdash.example/tail"})
    assert ended.status_code == 401
    assert parse_qs(urlsplit(ended.headers["HX-Redirect"]).query)["next"] == ["/tail"]


def test_sign_in_session_and_roles(browser):
    """Viewers read; admins change with the CSRF token; nobody changes without it."""
    create_user("vera", PASSWORD, "viewer")
    create_user("ada", PASSWORD, "admin")
    assert sign_in(browser, "vera", next_path="/api/logs").headers["Location"] == "/api/logs"
    assert browser.get("/api/logs").status_code == 200
    assert browser.get("/api/tokens").status_code == 403
    token = session_csrf(browser)
    refused = browser.post("/api/logs/alerts/config", json={"service": "a"},
                           headers={"X-CSRF-Token": token})
    assert refused.status_code == 403
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 302
    assert browser.get("/api/logs").status_code == 401

    sign_in(browser, "ada")
    no_csrf = browser.post("/api/logs/alerts/config", json={"service": "a"})
    assert no_csrf.status_code == 403
    assert "CSRF" in no_csrf.json["error"]
    made = browser.post("/api/logs/alerts/config", json={"service": "a"},
                        headers={"X-CSRF-Token": session_csrf(browser)})
    assert made.status_code == 201


def test_wrong_password_and_open_redirects(browser):
    """Wrong passwords are refused alike for unknown users; `next` stays on this site."""
    create_user("ada", PASSWORD, "admin")
    assert sign_in(browser, "ada", "wrong password!").status_code == 401
    assert sign_in(browser, "nobody", "wrong password!").status_code == 401
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example",
                   # Werkzeug sends "////x" as "//x"; browsers drop a tab inside a URL.
                   "////evil.example", "/\t/evil.example"):
        assert sign_in(browser, "ada", next_path=target).headers["Location"] == "/"
    # A page of this site, even with a space in its (decoded) path, is where one goes back.
    assert sign_in(browser, "ada", next_path="/services/a b?window=24h").headers[
        "Location"] == "/services/a%20b?window=24h"


def test_sign_in_attempts_are_limited(app, browser, monkeypatch):
    """Past the limit even the right password waits, with Retry-After."""
    monkeypatch.setitem(app.config, "LOGDASH_LOGIN_ATTEMPTS", 3)
    create_user("ada", PASSWORD, "admin")
    statuses = [sign_in(browser, "ada", "guess number one").status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    blocked = sign_in(browser, "ada")
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0


def test_signing_in_does_not_clear_the_address_failures(app, monkeypatch):
    """Someone with an account who signs in between guesses at other names' passwords
    still meets the address's limit; signing in itself is not counted against it."""
    monkeypatch.setitem(app.config, "LOGDASH_LOGIN_ATTEMPTS", 3)
    create_user("vera", PASSWORD, "viewer")
    sprayer = _from_address(app, "203.0.113.9")
    statuses = []
    for round_number in range(2):
        statuses += [sign_in(sprayer, f"user{round_number}{i}", "guess").status_code
                     for i in range(2)]
        statuses.append(sign_in(sprayer, "vera").status_code)
    assert statuses == [401, 401, 302, 401, 429, 429]
    office = _from_address(app, "198.51.100.20")
    assert [sign_in(office, "vera").status_code for _ in range(5)] == [302] * 5


def test_sign_in_limits_hold_while_redis_extras_are_skipped(app, browser, monkeypatch):
    """A spell of skipped extras (after Redis timed out somewhere) does not lift the
    sign-in limit: the process counts on its own meanwhile, without asking Redis. A
    refused command (an ACL forbidding EVAL) starts no spell at all."""
    import time

    import redis

    from app import redis_extras

    monkeypatch.setitem(app.config, "LOGDASH_LOGIN_ATTEMPTS", 3)
    create_user("ada", PASSWORD, "admin")
    monkeypatch.setattr(redis_extras, "_skip_until", time.monotonic() + 30)
    assert [sign_in(browser, "ada", "guess").status_code for _ in range(4)] == [
        401, 401, 401, 429]
    prefix = app.config["LOGDASH_QUEUE_PREFIX"]
    assert list(app.redis.scan_iter(f"{prefix}:rate:login-user:ada:*")) == []  # not asked
    monkeypatch.setattr(redis_extras, "_skip_until", 0.0)

    def forbidden(*args, **kwargs):
        """What Redis answers a command an ACL does not allow."""
        raise redis.ResponseError("NOPERM this user has no permissions to run 'eval'")

    monkeypatch.setattr(app.redis, "eval", forbidden)
    create_user("bob", PASSWORD, "viewer")
    assert sign_in(_from_address(app, "198.51.100.30"), "bob").status_code == 302
    assert redis_extras._skip_until == 0.0


def test_guesses_refused_at_an_address_do_not_count_against_the_name(app, monkeypatch):
    """Once an address is over its limit its attempts are refused uncounted for the names
    they try: they cannot lock a person out of other places too."""
    monkeypatch.setitem(app.config, "LOGDASH_LOGIN_ATTEMPTS", 3)
    create_user("ada", PASSWORD, "admin")
    attacker = _from_address(app, "203.0.113.7")
    assert [sign_in(attacker, "bob", "guess").status_code for _ in range(3)] == [401] * 3
    assert [sign_in(attacker, "ada", "guess").status_code for _ in range(3)] == [429] * 3
    assert sign_in(_from_address(app, "198.51.100.40"), "ada").status_code == 302


def test_guesses_refused_for_a_name_do_not_use_up_the_address(app, monkeypatch):
    """Whoever keeps a name locked from elsewhere does not make its owner's own retries
    use up the limit of the address they share with others."""
    monkeypatch.setitem(app.config, "LOGDASH_LOGIN_ATTEMPTS", 3)
    create_user("ada", PASSWORD, "admin")
    create_user("bob", PASSWORD, "viewer")
    attacker = _from_address(app, "203.0.113.8")
    assert [sign_in(attacker, "ada", "guess").status_code for _ in range(3)] == [401] * 3
    office = _from_address(app, "198.51.100.50")
    assert [sign_in(office, "ada").status_code for _ in range(5)] == [429] * 5
    assert sign_in(office, "bob").status_code == 302


def test_counts_kept_by_the_process_are_bounded(app, monkeypatch):
    """While Redis is away, whoever varies names cannot grow a process's counts without
    end: past the bound new names share counters (counted too high, never not at all)."""
    import time

    from app import redis_extras
    from app.security import ratelimit

    monkeypatch.setattr(redis_extras, "_skip_until", time.monotonic() + 30)
    monkeypatch.setattr(ratelimit, "MAX_HERE", 5)
    monkeypatch.setattr(ratelimit, "OVERFLOW", 2)
    with app.test_request_context():
        assert [ratelimit.hit(f"name{i}", 1, 60) for i in range(5)] == [0] * 5
        assert ratelimit.hit("name0", 1, 60) > 0
        beyond = [ratelimit.hit(f"more{i}", 1, 60) for i in range(20)]
    assert sum(1 for wait in beyond if wait) >= 18  # 20 names on 2 shared counters
    assert sum(len(counts) for counts in ratelimit._here.values()) <= 5 + 2


def _from_address(app, address: str):
    """A browser connecting from `address`."""
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def test_failed_sign_ins_from_elsewhere_do_not_lock_out_a_known_browser(app, monkeypatch):
    """Whoever fails a user's sign-ins locks out new browsers only: one that signed in as
    that user before still can, and its cookie does not count for another user."""
    monkeypatch.setitem(app.config, "LOGDASH_LOGIN_ATTEMPTS", 3)
    create_user("ada", PASSWORD, "admin")
    create_user("bob", PASSWORD, "viewer")
    adas, bobs = _from_address(app, "198.51.100.7"), _from_address(app, "198.51.100.8")
    assert sign_in(adas, "ada").status_code == 302
    assert sign_in(bobs, "bob").status_code == 302
    attacker = _from_address(app, "203.0.113.5")
    assert [sign_in(attacker, "ada", "guess").status_code for _ in range(3)] == [401] * 3
    assert sign_in(_from_address(app, "198.51.100.9"), "ada").status_code == 429
    assert sign_in(bobs, "ada").status_code == 429
    assert sign_in(adas, "ada").status_code == 302
    # A new password voids the browsers that signed in with the old one.
    db.session.execute(text("UPDATE logs.users SET password_hash = :h WHERE username = 'ada'"),
                       {"h": generate_password_hash("a new password!")})
    db.session.commit()
    assert sign_in(adas, "ada", "a new password!").status_code == 429


def _failed_sign_ins_then_ada(app, count: int) -> int:
    """Fail `count` sign-ins from one address (new user names each time), then sign in as
    ada from another; return ada's status."""
    def from_address(address: str):
        """A browser whose requests a proxy forwards for `address`."""
        browser = app.test_client()
        browser.environ_base.update({"wsgi.url_scheme": "https",
                                     "HTTP_X_FORWARDED_FOR": address,
                                     "HTTP_X_FORWARDED_PROTO": "https"})
        return browser
    attacker = from_address("203.0.113.5")
    statuses = [sign_in(attacker, f"mallory{i}", "guess").status_code for i in range(count)]
    assert statuses == [401] * count
    assert sign_in(attacker, "mallory", "guess").status_code == 429
    return sign_in(from_address("198.51.100.7"), "ada").status_code


def test_behind_a_trusted_proxy_each_client_has_its_own_sign_in_limit(
        app, database_url, redis_url, queue_prefix):
    """With LOGDASH_TRUSTED_PROXIES=1 the limit is per client address as the proxy forwards
    it: one client's failures do not lock everyone else out of signing in."""
    proxied = make_app(database_url, redis_url, queue_prefix, LOGDASH_TRUSTED_PROXIES=1,
                       LOGDASH_LOGIN_ATTEMPTS=3)
    with proxied.app_context():
        try:
            create_user("ada", PASSWORD, "admin")
            assert _failed_sign_ins_then_ada(proxied, 3) == 302
        finally:
            db.session.remove()
            db.engine.dispose()  # this app's own pool: close its connections now


def test_forwarded_addresses_are_not_believed_by_default(app, monkeypatch):
    """Without a trusted proxy anyone could write X-Forwarded-For, so it is ignored: every
    request counts against the address that connected."""
    monkeypatch.setitem(app.config, "LOGDASH_LOGIN_ATTEMPTS", 3)
    create_user("ada", PASSWORD, "admin")
    assert _failed_sign_ins_then_ada(app, 3) == 429


def test_session_cookie_flags(browser):
    """The session cookie is HttpOnly, SameSite=Lax and Secure."""
    create_user("ada", PASSWORD, "admin")
    cookie = sign_in(browser, "ada").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_forged_form_without_csrf_token_cannot_sign_in(browser):
    """The sign-in form itself is protected against cross-site posting."""
    create_user("ada", PASSWORD, "admin")
    response = browser.post("/login", data={"username": "ada", "password": PASSWORD})
    assert response.status_code == 400
    assert browser.get("/api/logs").status_code == 401


def test_security_headers(anonymous_client):
    """CSP allows only the app's own scripts; no sniffing; no framing."""
    headers = anonymous_client.get("/login").headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


def test_answers_are_not_cached_but_static_files_may_be(client, anonymous_client):
    """A new token (shown once), pages and API answers are no-store; static files keep the
    caching Flask gives them."""
    made = client.post("/api/tokens", json={"name": "ci", "scope": "ingest"})
    assert made.status_code == 201 and made.headers["Cache-Control"] == "no-store"
    assert client.get("/api/logs/dashboard").headers["Cache-Control"] == "no-store"
    assert anonymous_client.get("/login").headers["Cache-Control"] == "no-store"
    static = anonymous_client.get("/static/app.js")
    static.close()
    assert static.status_code == 200 and "no-store" not in static.headers["Cache-Control"]


def test_socket_handshake_from_another_site_is_refused(browser):
    """A page elsewhere cannot open a socket with the person's cookie."""
    create_user("ada", PASSWORD, "admin")
    sign_in(browser, "ada")
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}
    response = browser.get("/ws/logs/dashboard",
                           headers={"Origin": "https://evil.example", **upgrade})
    assert response.status_code == 403
    assert "own pages" in response.json["error"]
    anonymous = browser.application.test_client().get("/ws/logs/dashboard", headers=upgrade)
    assert anonymous.status_code == 401


def test_cli_users_and_tokens(app):
    """users create/ensure-admin and tokens create/list/revoke work from the shell."""
    runner = app.test_cli_runner()
    first = runner.invoke(args=["users", "ensure-admin"])
    assert first.exit_code == 0 and "admin / " in first.output
    assert runner.invoke(args=["users", "ensure-admin"]).output == ""
    made = runner.invoke(args=["users", "create", "vera", "--password", PASSWORD])
    assert made.exit_code == 0
    short = runner.invoke(args=["users", "create", "bob", "--password", "short"])
    assert short.exit_code != 0 and "at least 12" in short.output
    token = runner.invoke(args=["tokens", "create", "--name", "vector", "--scope", "ingest"])
    assert token.exit_code == 0 and "ld_" in token.output
    listed = runner.invoke(args=["tokens", "list"]).output
    assert "vector" in listed and "live" in listed and token.output.split()[-1] not in listed
    token_id = token.output.split()[1]
    assert runner.invoke(args=["tokens", "revoke", token_id]).exit_code == 0
    assert "revoked" in runner.invoke(args=["tokens", "list"]).output
    assert runner.invoke(args=["tokens", "revoke", token_id]).exit_code != 0
    assert create_token("x", "read")[1].startswith("ld_")
    pinned = runner.invoke(args=["tokens", "create", "--name", "shipper", "--scope", "ingest",
                                 "--service", "billing"])
    row = next(line for line in runner.invoke(args=["tokens", "list"]).output.splitlines()
               if line.startswith(pinned.output.split()[1] + "\t"))
    assert row.split("\t")[2] == "ingest" and row.split("\t")[-1] == "billing"  # its pin


def test_a_new_password_signs_out_every_session_of_the_old_one(app, browser):
    """`users set-password` takes effect at once: sessions signed in with the old password
    are signed out, the new one signs in, and it is checked like a new user's."""
    create_user("ada", PASSWORD, "admin")
    other = app.test_client()
    other.environ_base["wsgi.url_scheme"] = "https"
    for person in (browser, other):
        assert sign_in(person, "ada").status_code == 302
        assert person.get("/api/logs").status_code == 200
    runner = app.test_cli_runner()
    changed = runner.invoke(args=["users", "set-password", "ada", "--password", "a new one, ada"])
    assert changed.exit_code == 0, changed.output
    assert [person.get("/api/logs").status_code for person in (browser, other)] == [401] * 2
    assert sign_in(browser, "ada").status_code == 401
    assert sign_in(browser, "ada", "a new one, ada").status_code == 302
    assert browser.get("/api/logs").status_code == 200
    short = runner.invoke(args=["users", "set-password", "ada", "--password", "short"])
    assert short.exit_code != 0 and "at least 12" in short.output
    nobody = runner.invoke(args=["users", "set-password", "nobody", "--password", PASSWORD])
    assert nobody.exit_code != 0 and "no user named 'nobody'" in nobody.output


def test_a_session_cookie_without_a_recorded_session_signs_no_one_in(app, browser):
    """A session cookie naming only a user id (as older versions made), or a session id
    never recorded (one made with the secret key by other means), signs no one in."""
    user = create_user("ada", PASSWORD, "admin")
    with browser.session_transaction() as session:
        session["user_id"] = user.id
    assert browser.get("/api/logs").status_code == 401
    with browser.session_transaction() as session:
        session.update(user_id=user.id, session_id="made up")
    assert browser.get("/api/logs").status_code == 401


def copy_of_cookie(app, browser):
    """Another client carrying the same session cookie, as a copy taken from a browser."""
    name = app.config["SESSION_COOKIE_NAME"]
    thief = app.test_client()
    thief.environ_base["wsgi.url_scheme"] = "https"
    thief.set_cookie(name, browser.get_cookie(name).value)
    return thief


def test_signing_out_ends_every_copy_of_the_session(app, browser):
    """A copy of the cookie, kept fresh by using it, stops working once its owner signs
    out; the owner's other sessions go on."""
    create_user("ada", PASSWORD, "admin")
    sign_in(browser, "ada")
    thief = copy_of_cookie(app, browser)
    elsewhere = app.test_client()
    elsewhere.environ_base["wsgi.url_scheme"] = "https"
    sign_in(elsewhere, "ada")
    assert thief.get("/api/logs").status_code == 200
    assert browser.post("/logout", data={"csrf_token": session_csrf(browser)}).status_code == 302
    assert thief.get("/api/logs").status_code == 401
    assert browser.get("/api/logs").status_code == 401
    assert elsewhere.get("/api/logs").status_code == 200
    assert scalar("SELECT count(*) FROM logs.user_sessions") == 1


def test_a_session_idle_for_its_lifetime_has_ended(app, browser):
    """However fresh its cookie, a session not used for as long as a session lasts is
    over; one used is noted as seen (to the minute), and a sign-in sweeps ended ones."""
    create_user("ada", PASSWORD, "admin")
    sign_in(browser, "ada")
    hours = app.config["PERMANENT_SESSION_LIFETIME"] // 3600
    db.session.execute(text("UPDATE logs.user_sessions SET seen_at = now() - interval '2 min'"))
    db.session.commit()
    assert browser.get("/api/logs").status_code == 200
    assert scalar("SELECT now() - seen_at < interval '1 min' FROM logs.user_sessions")
    db.session.execute(text("UPDATE logs.user_sessions SET seen_at = now() - make_interval("
                            "hours => :h, secs => 1)"), {"h": hours})
    db.session.commit()
    assert browser.get("/api/logs").status_code == 401
    assert scalar("SELECT count(*) FROM logs.user_sessions") == 1
    sign_in(browser, "ada")
    assert browser.get("/api/logs").status_code == 200
    assert scalar("SELECT count(*) FROM logs.user_sessions") == 1


def test_deleting_a_user_ends_their_sessions(app, browser):
    """Sessions go with the person."""
    create_user("ada", PASSWORD, "admin")
    sign_in(browser, "ada")
    db.session.execute(text("DELETE FROM logs.users WHERE username = 'ada'"))
    db.session.commit()
    assert scalar("SELECT count(*) FROM logs.user_sessions") == 0
    assert browser.get("/api/logs").status_code == 401


def test_token_pin_follows_the_service_name_rules(client):
    """A pin must be a name a line could carry."""
    bad = client.post("/api/tokens", json={"name": "x", "scope": "ingest", "service": "a\nb"})
    assert bad.status_code == 400
    assert "control characters" in bad.json["error"]
    good = client.post("/api/tokens", json={"name": "x", "scope": "ingest", "service": " api "})
    assert good.json["service"] == "api"
    # Only sending is pinned: a read token "for" a service would still read all.
    pinned = client.post("/api/tokens", json={"name": "x", "scope": "read", "service": "api"})
    assert pinned.status_code == 400 and "a read token sends nothing" in pinned.json["error"]


def test_webhook_urls_are_shown_whole_to_admins_only(client, browser):
    """Many receivers take the URL itself as the credential: viewers and read tokens see
    its scheme and host, on the API and the alerts page; admins see it whole."""
    url = "https://alice:s3cret@hooks.example.com/services/T000/B000/XXXXsecretXXXX"
    assert client.post("/api/logs/alerts/config", json={
        "service": "api", "alert_webhook_url": url}).status_code == 201
    assert client.get("/api/logs/alerts/config/api").json["alert_webhook_url"] == url
    reader = client.application.test_client()
    shown = reader.get("/api/logs/alerts/config/api", headers=token_headers("read")).json
    assert shown["alert_webhook_url"] == "https://hooks.example.com/…"
    create_user("vera", PASSWORD, "viewer")
    sign_in(browser, "vera")
    listed = browser.get("/api/logs/alerts/config").json["configs"]
    assert [c["alert_webhook_url"] for c in listed] == ["https://hooks.example.com/…"]
    page = browser.get("/alerts", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "hooks.example.com" in page and "secret" not in page and "s3cret" not in page


@pytest.mark.parametrize(("url", "shown"), [
    ("https://eo2bzfqp6lx4f5o.m.pipedream.net", "https://….m.pipedream.net/…"),
    ("https://enk3qzvbhwmxlpa.m.pipedream.net", "https://….m.pipedream.net/…"),
    ("https://alerts01.example.com:8443/hook", "https://alerts01.example.com:8443/…"),
    ("https://notifications.example.com/hook", "https://notifications.example.com/…"),
    ("https://ec2-54-12-34-56.compute-1.amazonaws.com/x",
     "https://ec2-54-12-34-56.compute-1.amazonaws.com/…"),
])
def test_a_host_that_is_a_key_is_hidden_from_viewers(client, url, shown):
    """Some receivers put the credential in the host name: a label that looks generated is
    hidden from read tokens too, while names stay readable."""
    assert client.post("/api/logs/alerts/config", json={
        "service": "api", "alert_webhook_url": url}).status_code == 201
    reader = client.application.test_client()
    config = reader.get("/api/logs/alerts/config/api", headers=token_headers("read")).json
    assert config["alert_webhook_url"] == shown


def test_webhook_delivery_targets_are_shown_whole_to_admins_only(client, browser):
    """A delivery's target is the URL it was sent to: viewers and read tokens see its scheme
    and host in the delivery log, on the API, the alerts page and the violation's page."""
    from datetime import UTC, datetime

    from app.models import AlertDelivery, AlertViolation

    url = "https://hooks.example.com/services/T000/B000/XXXXsecretXXXX"
    violation = AlertViolation(service="api", level="error", current_count=5,
                               threshold_value=1, timestamp=datetime.now(UTC))
    db.session.add(violation)
    db.session.flush()
    db.session.add(AlertDelivery(delivery_id="d1", violation_id=violation.id, service="api",
                                 channel="webhook", target=url, event="firing", attempt=1,
                                 status="success", payload={}))
    db.session.commit()
    path = "/api/logs/alerts/deliveries"
    assert [d["target"] for d in client.get(path).json["deliveries"]] == [url]
    reader = client.application.test_client()
    shown = reader.get(path, headers=token_headers("read")).json["deliveries"]
    assert [d["target"] for d in shown] == ["https://hooks.example.com/…"]
    create_user("vera", PASSWORD, "viewer")
    sign_in(browser, "vera")
    for page in ("/alerts", f"/alerts/violations/{violation.id}"):
        html = browser.get(page, headers={"Accept": "text/html"}).get_data(as_text=True)
        assert "hooks.example.com/…" in html and "secret" not in html, page
