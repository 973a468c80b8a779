"""Message templates and fingerprints (app.grouping), without a database."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.grouping import MAX_CHARS, fingerprint, mask_line, template_of

ROOT = Path(__file__).resolve().parent.parent
TIMED_OUT = "Connection to <*> timed out after <*>"


def test_the_timed_out_example_gives_one_template():
    """Two timeouts to different hosts after different delays are one event."""
    first = template_of("Connection to 10.0.0.5 timed out after 3000 ms")
    second = template_of("Connection to 10.0.0.7 timed out after 12 ms")
    assert first == second == TIMED_OUT
    assert fingerprint(first) == fingerprint(second)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # numbers, signs, decimals, thousands separators
        ("retrying (attempt 3 of 5)", "retrying (attempt <*> of <*>)"),
        ("balance is -42.50 now", "balance is <*> now"),
        ("processed 1,234,567 rows", "processed <*> rows"),
        # ids: hex, UUIDs, ids with a prefix, block ids, memory addresses, hashes
        ("object at 0x7f3a2b1c0d10 freed", "object at <*> freed"),
        ("commit 9f4ef63 pushed", "commit <*> pushed"),
        ("job 3f2a9c1e-1b2c-4d5e-8f90-123456789abc finished", "job <*> finished"),
        ("task attempt_1445144423722_0020_m_000001 done", "task <*> done"),
        ("deleting blk_-1234567890 and blk_987", "deleting <*> and <*>"),
        ("checksum e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 bad",
         "checksum <*> bad"),
        ("token dGhpcyBpcyBhIHRlc3Q0== expired", "token <*> expired"),
        # network: IPv4 with and without port, IPv6, MAC, hosts with a number
        ("peer 192.168.1.20 left", "peer <*> left"),
        ("peer 192.168.1.20:45307 left", "peer <*> left"),
        ("peer fe80::1ff:fe23:4567:890a left", "peer <*> left"),
        ("peer ::ffff:abcd:ef01 left", "peer <*> left"),
        ("peer [2001:db8::1]:8080 left", "peer [<*>]:<*> left"),
        ("mac FF:EE:DD:CC:BB:AA up", "mac <*> up"),
        ("host web-42.prod.example.com down", "host <*> down"),
        # paths, URLs, e-mail
        ("cannot open /var/log/app/error.log", "cannot open <*>"),
        ("cannot open ./config/app.yaml", "cannot open <*>"),
        ("cannot open ~/notes.txt", "cannot open <*>"),
        ("cannot open C:\\Users\\bob\\file.txt", "cannot open <*>"),
        ("GET /api/users?page=2 failed", "GET <*> failed"),
        ("fetch https://example.com/a/b?x=1#top failed", "fetch <*> failed"),
        ("mail to alice.smith@example.com bounced", "mail to <*> bounced"),
        # quoted values, but not JSON keys
        ('user "carol smith" not found', "user <*> not found"),
        ("user 'bob' not found", "user <*> not found"),
        ('payload {"user": "bob", "id": 42}', 'payload {"user": <*>, "id": <*>}'),
        ("KeyError: 'user_id'", "KeyError: <*>"),
        # durations, sizes, percentages
        ("took 3000ms", "took <*>"),
        ("took 1.5 s", "took <*>"),
        ("took 4 minutes", "took <*>"),
        ("wrote 12 MB", "wrote <*>"),
        ("wrote 512KiB", "wrote <*>"),
        ("disk 85% full", "disk <*> full"),
        # dates and times
        ("since 2024-01-02T03:04:05.123Z ok", "since <*> ok"),
        ("at 12:30:00,123 ok", "at <*> ok"),
        ("started Thu Aug 4 10:22:01 2005", "started <*>"),
        ("started 4 Aug 2005", "started <*>"),
        # key=value
        ("pid=123 uid=1000 ok=true", "pid=<*> uid=<*> ok=<*>"),
        ('tag="View Lock" name=android', "tag=<*> name=<*>"),
        ("ws=WorkSource{10113}, uid=1000", "ws=<*>, uid=<*>"),
    ],
)
def test_each_kind_of_variable_part_is_masked(message, expected):
    """Every class of variable part becomes <*>."""
    assert template_of(message) == expected


@pytest.mark.parametrize(
    "message",
    [
        "Connection refused by peer",
        "can't connect: user's home is not mounted",
        "if x == y then fail",
        "Exception in org.apache.hadoop.mapreduce.JobSubmitter",
        "Decoder failed; Marker missing; Monitor down",
    ],
)
def test_constant_text_is_kept(message):
    """Words, apostrophes, comparisons and class names are not variable parts."""
    assert template_of(message) == message


def test_adjacent_masks_collapse_into_one():
    """An address with its port, or a list of ids of any length, is one variable part."""
    assert template_of("ask 10.0.0.1:50010 to delete blk_1") == "ask <*> to delete <*>"
    many = "ask 10.0.0.1:50010 to delete blk_1 blk_2 blk_3, blk_4"
    assert template_of(many) == "ask <*> to delete <*>"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('ts=2026-11-28T01:02:03Z level=error msg="payment failed for order 1234" user=bob',
         'ts=<*> level=<*> msg="payment failed for order <*>" user=<*>'),
        ('level=error msg="user not found" id=7', 'level=<*> msg="user not found" id=<*>'),
        ("level=info msg=started job=nightly", "level=<*> msg=started job=<*>"),
        ('ERROR="dial tcp 10.0.0.1:5432: connect: connection refused" host=db-1',
         'ERROR="dial tcp <*>: connect: connection refused" host=<*>'),
        ('{"level":"error","msg":"payment failed","order":12,"user":"bob"}',
         '{"level":<*>,"msg":"payment failed","order":<*>,"user":<*>}'),
        ('{"Message" : "card \\"4242\\" declined", "reason": "insufficient funds"}',
         '{"Message" : "card \\<*> declined", "reason": "insufficient funds"}'),
        # only a key of its own: user_msg is a value like any other
        ('user_msg="hello there" msg="sent"', 'user_msg=<*> msg="sent"'),
        # a message key's value holding key=value text masks that text's values
        ('{"msg":"retry attempt=3 of 5"}', '{"msg":"retry attempt=<*> of <*>"}'),
        # a string before it that ends in an escaped backslash has ended
        ('{"path":"C:\\\\","msg":"payment failed for 42"}',
         '{"path":<*>,"msg":"payment failed for <*>"}'),
        # after a separator rather than a space
        ("a=1;msg=stalled", "a=<*>;msg=stalled"),
        ("[msg=stalled]", "[msg=stalled]"),
    ],
)
def test_message_keys_keep_their_words(message, expected):
    """In logfmt and JSON text, the value of msg, message, error and their kin is the
    event's own words: only its variable parts are masked."""
    assert template_of(message) == expected


@pytest.mark.parametrize(("message", "expected"), [
    # in a URL's query string: a value a client chooses, one template whatever it is
    ("GET /login?error=access_denied&state=xyz HTTP/1.1 302", "GET <*>"),
    ('{"path":"/search?msg=hello","status":200}', '{"path":<*>,"status":<*>}'),
    # inside another key's value, in logfmt or JSON
    ('a="x msg=y" b=1', "a=<*> b=<*>"),
    ('{"query":"msg=abc user=42"}', '{"query":<*>}'),
])
def test_message_keys_inside_other_values_are_values(message, expected):
    """Only a key of the line itself names its message: one in a URL or inside another
    quoted value is masked with that value."""
    assert template_of(message) == expected


def test_structured_lines_with_the_same_keys_are_told_apart_by_their_message():
    """Two events logged with the same keys are two templates; one event with other
    values is one."""
    lines = ['level=error msg="payment failed" order=1', 'level=error msg="payment failed" order=2',
             'level=error msg="user not found" order=3']
    assert len({template_of(line) for line in lines}) == 2
    json_lines = ['{"level":"error","msg":"payment failed","order":1}',
                  '{"level":"error","msg":"payment failed","order":22}',
                  '{"level":"error","msg":"user not found","order":3}']
    assert len({template_of(line) for line in json_lines}) == 2


def test_whitespace_is_normalised():
    """Runs of spaces and tabs become one space; the ends are trimmed."""
    assert template_of("  Connection \t to   10.0.0.5  timed out after 3 ms ") == TIMED_OUT


def test_non_ascii_text_is_kept_around_numbers():
    """Letters of other scripts stay; only the number goes."""
    assert template_of("ошибка 42 в модуле") == "ошибка <*> в модуле"
    assert template_of("错误码123连接失败") == "错误码<*>连接失败"


def test_the_same_message_gives_the_same_fingerprint():
    """Fingerprinting is a pure function: repeated calls and cleared caches agree."""
    message = "Connection to 10.0.0.5 timed out after 3000 ms"
    before = fingerprint(template_of(message))
    mask_line.cache_clear()
    fingerprint.cache_clear()
    after = fingerprint(template_of(message))
    assert before == after
    assert re.fullmatch(r"[0-9a-f]{16}", before)


def test_a_fresh_process_computes_the_same_fingerprint():
    """Another interpreter, with another hash seed, gives the same template and fingerprint."""
    message = "Connection to 10.0.0.5 timed out after 3000 ms"
    code = (
        "import sys; from app.grouping import fingerprint, template_of; "
        "t = template_of(sys.argv[1]); print(t); print(fingerprint(t))"
    )
    # A seed other than this process's, so that a fingerprint built on hash() would differ.
    env = {**os.environ, "PYTHONHASHSEED": str(hash("seed") % 1000 + 1)}
    result = subprocess.run(
        [sys.executable, "-c", code, message],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60,
    )
    template = template_of(message)
    assert result.stdout.splitlines() == [template, fingerprint(template)]


def test_the_fingerprint_does_not_change_between_releases():
    """Stored fingerprints stay valid: the digest of a known template is pinned."""
    assert fingerprint(TIMED_OUT) == "8c5ba8f360052894"


def test_different_templates_give_different_fingerprints():
    """Messages that differ in their constant words are different events."""
    messages = [
        "Connection refused",
        "Connection reset",
        "User 5 logged in",
        "User 5 logged out",
        "Disk /dev/sda1 is 85% full",
        "Disk /dev/sda1 is read-only",
        "",
    ]
    templates = [template_of(m) for m in messages]
    assert len(set(templates)) == len(messages)
    assert len({fingerprint(t) for t in templates}) == len(messages)


@pytest.mark.parametrize(
    "message",
    [
        "x" * 1_000_000,
        "user 12 " * 125_000,
        '"' + "a" * 1_000_000,
        "1." * 500_000,
        "a=" + "(" * 1_000_000,
        "(" * 1_000_000 + "\n" + "second line",
    ],
    ids=["one-word", "words", "open-quote", "dots", "open-brackets", "one-long-line"],
)
def test_a_megabyte_message_is_quick_and_bounded(message):
    """Only the start of a 1 MB message is read, so it takes no longer than a short one."""
    mask_line.cache_clear()
    start = time.perf_counter()
    template = template_of(message)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.005
    # A mask is three characters and stands for at least one, next to one that stays.
    assert 0 < len(template) <= 2 * MAX_CHARS


@pytest.mark.parametrize(
    "line",
    ["-a." * 166, "..a" * 166, "a." * 250, "a-" * 250, "." * 500, "1 " * 250, "a:" * 250,
     # values of message keys that never close
     'msg="' * 100, 'a="msg=\\' * 62, '"msg":"' * 71],
)
def test_a_line_of_many_short_tokens_stays_linear(line):
    """No rule rescans a long token from each of its dots or hyphens (quadratic work)."""
    best = min(_time_uncached(line) for _ in range(5))
    assert best < 0.001


def _time_uncached(line: str) -> float:
    """Seconds to template one line with an empty cache."""
    mask_line.cache_clear()
    start = time.perf_counter()
    template_of(line)
    return time.perf_counter() - start


def test_only_the_first_characters_count():
    """What comes after the first MAX_CHARS characters does not change the template."""
    head = "Connection to 10.0.0.5 timed out after 3000 ms " + "padding " * 100
    assert template_of(head + "A" * 1000) == template_of(head + "B" * 1000)
    assert template_of(" " * (MAX_CHARS + 1) + "text after a long blank") == ""


def test_a_long_line_is_cut_at_a_word():
    """The template of an over-long line ends at a whole word, not a fragment of one."""
    message = "word " * 99 + "abcdefghij" + " tail" * 100
    assert len(message.split("\n")[0]) > MAX_CHARS
    template = template_of(message)
    assert template.endswith("word")
    assert template == template_of("word " * 99 + "abcdefghijklmnop" + " more" * 100)


def test_a_multi_line_message_is_keyed_by_its_first_line():
    """Two tracebacks with different frames are one event; the first line decides."""
    first = 'ValueError: bad value 3\nTraceback:\n  File "a.py", line 10, in f\n'
    second = 'ValueError: bad value 7\r\nTraceback:\r\n  File "b.py", line 99, in g\r\n'
    assert template_of(first) == template_of(second) == "ValueError: bad value <*>"
    assert template_of("KeyError: x\nTraceback: same tail") != template_of(
        "TypeError: x\nTraceback: same tail"
    )


def test_leading_blank_lines_are_skipped():
    """A message that starts with blank lines is keyed by its first line with text."""
    assert template_of("\n\n   \nConnection to 10.0.0.5 timed out after 3 ms\nmore") == TIMED_OUT


@pytest.mark.parametrize("message", ["", " ", "\n", " \t\r\n  \n"])
def test_an_empty_or_blank_message_has_the_empty_template(message):
    """Nothing to mask gives the empty template, which still has a fingerprint."""
    assert template_of(message) == ""
    assert fingerprint(template_of(message)) == fingerprint("")
