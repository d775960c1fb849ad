from bot.conversation import Question, Turn, prompt_messages


def test_prompt_keeps_recent_history_within_budget_and_always_the_question() -> None:
    history = [Turn("user", f"q{i} " + "x" * 100) for i in range(0, 10, 2)]
    history = [t for i, q in enumerate(history) for t in (q, Turn("assistant", f"a{i}" * 30))]
    messages = prompt_messages(history, "the question", budget_chars=500)
    assert messages[0]["role"] == "system"
    assert messages[-1] == {"role": "user", "content": "the question"}
    contents = " ".join(m["content"] for m in messages[1:])
    assert "q8" in contents
    assert "q0" not in contents


def test_question_longer_than_budget_is_still_sent() -> None:
    messages = prompt_messages([Turn("user", "old")], "y" * 5000, budget_chars=1000)
    assert messages[1:] == [{"role": "user", "content": "y" * 5000}]


def test_window_never_starts_with_an_assistant_turn_and_roles_alternate() -> None:
    history = [Turn("user", "a" * 400), Turn("assistant", "b" * 50), Turn("user", "c")]
    messages = prompt_messages(history, "d", budget_chars=100)
    roles = [m["role"] for m in messages[1:]]
    assert roles == ["user"]
    assert messages[-1]["content"] == "c\n\nd"


def test_question_round_trips_through_json() -> None:
    q = Question("T", "C", "1.0", "1.1", "U", "hi", "im")
    assert Question.from_json(q.to_json()) == q
    assert q.is_dm


def test_corrupt_turns_are_skipped() -> None:
    assert Turn.from_json("{not json") is None
    assert Turn.from_json('{"role": "system", "content": "x"}') is None
