"""The query path's faster keyword evidence gives what the plain definitions give: the share
of query terms found (`term_share`) and the snippet's term matches (`_matcher`) against
`_matches`, the light stem match, word by word (issue 22: hybrid as cheap as semantic).
Whole result lists before/after: benchmarks/search_modes.py --record / --compare."""

from __future__ import annotations

import random

from zero_latency import search


def _reference_share(text: str, terms: list[str]) -> float:
    if not terms:
        return 0.0
    words = {w.lower() for w in search._WORD.findall(text)}
    return sum(1 for t in terms if any(search._matches(w, [t]) for w in words)) / len(terms)


def test_term_share_and_matcher_equal_the_plain_stem_match() -> None:
    rng = random.Random(22)
    for alphabet in ("abc", "abcde", "aéK"):
        def word(alphabet: str = alphabet) -> str:
            return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9)))

        for _ in range(3000):
            terms = [t.lower() for t in dict.fromkeys(word() for _ in range(rng.randint(0, 6)))]
            words = [word() for _ in range(rng.randint(0, 40))]
            text = " ".join(words)
            assert search.term_share(text, terms) == _reference_share(text, terms)
            matches = search._matcher(tuple(terms))
            for w in words:
                assert matches(w.lower()) == search._matches(w.lower(), terms)


def test_term_share_examples() -> None:
    assert search.term_share("Rotating the keys daily", ["rotate", "daily"]) == 1.0
    assert search.term_share("rotated", ["rotate"]) == 1.0
    assert search.term_share("rotational", ["rotate"]) == 0.0  # more than 3 letters longer
    assert search.term_share("Rotate", ["rotate", "daily"]) == 0.5
    assert search.term_share("nothing here", []) == 0.0
