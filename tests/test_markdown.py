from bot.markdown import byte_len, fit, open_fence
from bot.text import clip


def test_fits_whole_when_room() -> None:
    assert fit("abc", "def", 100) == ("def", None)


def test_cuts_at_paragraph_and_keeps_every_character() -> None:
    sent = ""
    new = "first paragraph here, a bit longer.\n\nsecond paragraph that is long " + "x" * 40
    head, rest = fit(sent, new, 60)
    assert head.endswith("\n\n")
    assert rest is not None
    assert head + rest == new
    assert byte_len(sent + head) <= 60


def test_multibyte_text_is_cut_on_a_character_boundary() -> None:
    new = "é" * 100  # 200 bytes, no spaces
    head, rest = fit("", new, 51)
    assert rest is not None
    assert head + rest == new
    assert byte_len(head) <= 51


def test_code_block_cut_in_two_is_closed_and_reopened() -> None:
    new = "Run:\n```bash\n" + "\n".join(f"echo line {i}" for i in range(50)) + "\n```\nDone."
    head, rest = fit("", new, 200)
    assert rest is not None
    assert head.endswith("\n```")
    assert rest.startswith("```bash\n")
    assert open_fence(head) is None
    assert byte_len(head) <= 200


def test_open_fence_tracks_pairs() -> None:
    assert open_fence("a\n```py\nx = 1\n") == "```py"
    assert open_fence("a\n```py\nx = 1\n```\n") is None


def test_clip_is_short_and_flat() -> None:
    assert clip("a\n\nb") == "a b"
    assert len(clip("x" * 1000, 50)) == 50
