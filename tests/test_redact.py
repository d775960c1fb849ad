import pytest

from bot.redact import MASK, mask


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        (
            "DATABASE_URL=postgres://u8a:p4ssw0rdXYZ@ec2-1-2-3-4.compute.amazonaws.com:5432/d1",
            "p4ssw0rdXYZ",
        ),
        ("redis url rediss://:s3cretpassword@host:6379", "s3cretpassword"),
        ("token xoxb-1234567890-abcdefghij", "1234567890-abcdefghij"),
        ("INFERENCE_KEY: inf-0123456789abcdef", "0123456789abcdef"),
        ("HEROKU_API_KEY=HRKU-abcdef0123456789", "abcdef0123456789"),
        ("Authorization: Bearer abcdefghijklmnop1234", "abcdefghijklmnop1234"),
        ('{"api_key": "zzzzyyyyxxxx"}', "zzzzyyyyxxxx"),
        ("aws AKIAABCDEFGHIJKLMNOP here", "AKIAABCDEFGHIJKLMNOP"),
        ("STRIPE_SECRET=sk_live_abcdefgh", "sk_live_abcdefgh"),
    ],
)
def test_credentials_are_masked(raw: str, secret: str) -> None:
    masked = mask(raw)
    assert secret not in masked
    assert MASK in masked


def test_ordinary_output_is_untouched() -> None:
    text = "Applied 3 migrations to shop-staging in 2.1s; see https://dashboard.heroku.com/apps/x"
    assert mask(text) == text


def test_host_of_a_masked_url_stays_readable() -> None:
    assert (
        mask("postgres://user:pw1234@db.example.com/x")
        == f"postgres://user:{MASK}@db.example.com/x"
    )
