"""Settings are structured by their fields' types (cattrs): every type works, wrong values are
refused with the same messages from every source, naming the key."""

from __future__ import annotations

import dataclasses

import pytest

from zero_latency.config import Settings, SettingsError


@dataclasses.dataclass(frozen=True)
class WithAFloat(Settings):
    """A settings class with a float field, as a future setting (a score floor) would be."""

    minScore: float = 0.0


def test_a_float_setting_works() -> None:
    updated, warnings = WithAFloat().merged({"minScore": 0.25, "threads": 2})
    assert warnings == [] and updated.minScore == 0.25 and updated.threads == 2
    assert isinstance(updated, WithAFloat)
    assert WithAFloat().merged({"minScore": 1})[0].minScore == 1.0  # a JSON integer is a number
    with pytest.raises(SettingsError, match=r"^setting 'minScore': must be a number, got str$"):
        WithAFloat().merged({"minScore": "high"})
    with pytest.raises(SettingsError, match="must be a number, got bool"):
        WithAFloat().merged({"minScore": True})


@pytest.mark.parametrize(("values", "message"), [
    ({"maxFileBytes": "big"}, "setting 'maxFileBytes': must be an integer, got str"),
    ({"maxFileBytes": "5"}, "setting 'maxFileBytes': must be an integer, got str"),
    ({"threads": True}, "setting 'threads': must be an integer, got bool"),
    ({"followSymlinks": 1}, "setting 'followSymlinks': must be a boolean, got int"),
    ({"followSymlinks": "no"}, "setting 'followSymlinks': must be a boolean, got str"),
    ({"model": None}, "setting 'model': must be a string, got null"),
    ({"model": {"id": "x"}}, "setting 'model': must be a string, got dict"),
    ({"device": "tpu"}, "setting 'device': must be one of cpu, cuda, got 'tpu'"),
    ({"include": 5}, "setting 'include': must be a list of strings, got int"),
    ({"exclude": ["a", 1]}, "setting 'exclude': must be a list of strings, got list"),
    ({"storeUrl": 5}, "setting 'storeUrl': must be a string, got int"),
    ({"chunkTokens": 8}, "setting 'chunkTokens': must be between 16 and 8192"),
])
def test_wrong_values_are_refused_naming_the_key(values: dict[str, object],
                                                  message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings().merged(values)
    assert str(caught.value) == message
    assert caught.value.key == next(iter(values))


def test_values_of_the_right_type_are_taken() -> None:
    updated, warnings = Settings().merged({
        "include": "docs/**", "exclude": ["a/**", "b/**"], "storeUrl": None,
        "device": "cuda", "maxFileBytes": 10, "respectGitignore": False, "colour": "blue"})
    assert warnings == ["unknown setting 'colour' ignored"]
    assert updated.include == ("docs/**",) and updated.exclude == ("a/**", "b/**")
    assert updated.storeUrl is None and updated.device == "cuda"
    assert updated.maxFileBytes == 10 and updated.respectGitignore is False


def test_internal_fields_are_not_settings() -> None:
    _, warnings = Settings().merged({"boundTo": "/elsewhere"})
    assert warnings == ["unknown setting 'boundTo' ignored"]
