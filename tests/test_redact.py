"""Masking rules, one realistic sample each: the secret goes, what makes the text
recognisable (scheme, user, host, the variable's name, the token's kind) stays."""

import logging
from collections.abc import Callable

import pytest

from bot import logs, text
from bot.inference import translate
from bot.redact import MASK, mask

M = MASK
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFsaWNlIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
HEROKU_KEY = "4f2b9c1e-7d3a-4e8b-9f6c-2a1d0e5b7c93"
PEM_BODY = "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi\nZ1BmQ8JvX2Y0qL5nR7aWc4tE9uHkDfGs\n"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # URLs with a password: scheme, user and host stay.
        (
            "DATABASE_URL=postgres://u8a:p4ssw0rdXYZ@ec2-1-2-3-4.compute.amazonaws.com:5432/d1",
            f"DATABASE_URL=postgres://u8a:{M}@ec2-1-2-3-4.compute.amazonaws.com:5432/d1",
        ),
        ("redis url rediss://:s3cretpassword@host:6379", f"redis url rediss://:{M}@host:6379"),
        (
            "POSTGRES://u:p@ss/w%40rd@db.example.com:5432/x",
            f"POSTGRES://u:{M}@db.example.com:5432/x",
        ),
        (
            "amqps://app:Zx9%2Fq@w/e@rabbit.internal/vhost?heartbeat=30",
            f"amqps://app:{M}@rabbit.internal/vhost?heartbeat=30",
        ),
        # Authorization headers, whatever the scheme.
        ("Authorization: Basic YWxpY2U6aHVudGVyMg==", f"Authorization: Basic {M}"),
        (
            "curl -H 'Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b' https://x",
            f"curl -H 'Authorization: Token {M}' https://x",
        ),
        ('{"Authorization": "Bearer abcdefghijklmnop1234"}', f'{{"Authorization": "Bearer {M}"}}'),
        ("Authorization: Bearer abcdefghijklmnop1234", f"Authorization: Bearer {M}"),
        # A bare JWT.
        (f"session cookie {JWT}; Path=/", f"session cookie eyJ{M}; Path=/"),
        # password: in YAML, 'password': in a Python repr, "password": in JSON.
        (
            "production:\n  adapter: postgresql\n  password: Xk8#pLm2qR\n  pool: 5",
            f"production:\n  adapter: postgresql\n  password: {M}\n  pool: 5",
        ),
        (
            "{'host': 'db', 'user': 'app', 'password': 'hunter2hunter2'}",
            f"{{'host': 'db', 'user': 'app', 'password': '{M}'}}",
        ),
        ('{"api_key": "zzzzyyyyxxxx"}', f'{{"api_key": "{M}"}}'),
        # Names that end in _PASS, _PWD, _SECRET, _CREDENTIALS.
        ("SMTP_PASS=Tr0ub4dor&3", f"SMTP_PASS={M}"),
        ("export DB_PWD=abc12345", f"export DB_PWD={M}"),
        ("AWS_SECRET=wJalrXUtnFEMI/K7MDENG", f"AWS_SECRET={M}"),
        ("GOOGLE_CREDENTIALS=eyJ0eXBlIjoic2VydmljZV9hY2NvdW50In0=", f"GOOGLE_CREDENTIALS={M}"),
        ("spring.datasource.password = s3cr3t!!", f"spring.datasource.password = {M}"),
        # Quoted values, spaces included.
        ('PASSWORD="correct horse battery staple" ok', f'PASSWORD="{M}" ok'),
        ("DB_PASS='two words'", f"DB_PASS='{M}'"),
        ('API_TOKEN="never closed', f'API_TOKEN="{M}"'),
        # Stripe.
        ("charge with sk_live_4eC39HqLyjWDarjtT1zdp7dc", f"charge with sk_live_{M}"),
        ("restricted rk_live_51HqLyjWDarjtT1zdp7dcAbC", f"restricted rk_live_{M}"),
        # Slack: webhooks and every token kind.
        (
            "POST https://hooks.slack.com/services/T0AAA0AAA/B0BBB0BBB/XXXXXXXXXXXXXXXXXXXXXXXX",
            f"POST https://hooks.slack.com/services/{M}",
        ),
        ("token xoxb-1234567890-abcdefghij", f"token xoxb-{M}"),
        ("refresh xoxe-1-My0xLTEyMzQ1Njc4OTAtYWJjZA", f"refresh xoxe-{M}"),
        ("xoxr-123456789012-abcdefABCDEF", f"xoxr-{M}"),
        ("rotated xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4", f"rotated xoxe.xoxp-{M}"),
        # GitHub, Google, AWS, Heroku.
        (
            "git clone https://github_pat_11ABCDEFG0_abcdefghijklmnopqrstuvwxyz012345@github.com/o/r",
            f"git clone https://github_pat_{M}@github.com/o/r",
        ),
        ("GH token github_pat_11ABCDEFG0_abcdefghijklmnopqrstuvwxyz", f"GH token github_pat_{M}"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", f"ghp_{M}"),
        ("maps key=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", f"maps key=AIza{M}"),
        ("aws AKIAABCDEFGHIJKLMNOP here", f"aws AKIA{M} here"),
        ("INFERENCE_KEY: inf-0123456789abcdef", f"INFERENCE_KEY: inf-{M}"),
        ("HEROKU_API_KEY=HRKU-abcdef0123456789", f"HEROKU_API_KEY=HRKU-{M}"),
        (f"HEROKU_API_KEY={HEROKU_KEY}", f"HEROKU_API_KEY={M}"),
        (f"HEROKU_API_KEY:      {HEROKU_KEY}", f"HEROKU_API_KEY:      {M}"),
        (
            f"machine api.heroku.com\n  login me@example.com\n  password {HEROKU_KEY}",
            f"machine api.heroku.com\n  login me@example.com\n  password {M}",
        ),
        # Private keys, with or without their END line.
        (
            f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}-----END RSA PRIVATE KEY-----\nnext",
            f"-----BEGIN RSA PRIVATE KEY----- {M} -----END RSA PRIVATE KEY-----\nnext",
        ),
        (
            f"key:\n-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}(output cut here)",
            f"key:\n-----BEGIN OPENSSH PRIVATE KEY----- {M} -----END OPENSSH PRIVATE KEY-----",
        ),
        (
            f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{PEM_BODY}=Xb4q\n"
            "-----END PGP PRIVATE KEY BLOCK-----",
            f"-----BEGIN PGP PRIVATE KEY BLOCK----- {M} -----END PGP PRIVATE KEY BLOCK-----",
        ),
        (
            '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n'
            '-----END PRIVATE KEY-----\\n", "client_email": "bot@x.iam.gserviceaccount.com"}',
            f'{{"private_key": "{M}", "client_email": "bot@x.iam.gserviceaccount.com"}}',
        ),
    ],
)
def test_each_rule_masks_the_secret_and_keeps_the_rest(raw: str, expected: str) -> None:
    assert mask(raw) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Applied 3 migrations to shop-staging in 2.1s; see https://dashboard.heroku.com/apps/x",
        "Deployed 3f786850e387550fdab836ed7e6dc881de23001b (v142) to shop-production.",
        f"Release {HEROKU_KEY} is live; dyno web.1 restarted.",
        "postgres://db.example.com:5432/shop and https://user@example.com/path",
        "git@github.com:acme/shop.git, mail alice@example.com, ssh://git@host/repo",
        "Set max_tokens: 1000. The password reset link expires; our Basic plan has a token limit.",
        "The API key lives in the config vars: use a Bearer token, never a password in the URL.",
        "primary_key: id",  # too short to be a secret
        "password: null",
        "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----",
        "| id | name |\n|----|------|\n| 1 | a=b |",
    ],
)
def test_ordinary_output_is_untouched(text: str) -> None:
    assert mask(text) == text


def test_a_secret_inside_a_quoted_ordinary_value_is_still_found() -> None:
    assert mask('cmd="export DB_PASS=abc12345 && ./run"') == f'cmd="export DB_PASS={M} && ./run"'


def test_masking_twice_changes_nothing_more() -> None:
    raw = "SLACK_BOT_TOKEN=xoxb-1234567890-abcdefghij DATABASE_URL=postgres://u:pw1234@h/x"
    assert (
        mask(mask(raw))
        == mask(raw)
        == f"SLACK_BOT_TOKEN=xoxb-{M} DATABASE_URL=postgres://u:{M}@h/x"
    )


@pytest.mark.parametrize("clip", [text.clip, translate.clip], ids=["text", "inference-errors"])
def test_a_clip_masks_before_it_cuts(clip: Callable[[str, int], str]) -> None:
    line = "x" * 180 + " postgres://u:Sup3rS3cretPassw0rd@db.internal/shop"
    assert clip(line, 200) == "x" * 180 + f" postgres://u:{M}@…"


def test_plain_log_lines_are_masked_too() -> None:
    args = ("redis://:pa55w0rd@h", "hunter22")
    record = logging.makeLogRecord({"msg": "connecting to %s with %s", "args": args})
    formatted = logs.PlainFormatter(secrets=["hunter22"]).format(record)
    assert formatted.endswith(f"connecting to redis://:{M}@h with {M}")
