"""Results people can act on (issue 15): a hit points at its answer (`matchRange`), scores read
0–1 in every mode, and a relevance floor leaves out what does not match. Real bundled model,
real Qdrant Edge store."""

from __future__ import annotations

from pathlib import Path

import pytest

from zero_latency.engine import Engine
from zero_latency.protocol import result_errors

FILLER = [  # the section's other lines: its topic, none of the query's words
    "The gateway terminates TLS for every service we run in production.",
    "Certificates are issued by the internal authority and renewed by a nightly job.",
    "Secrets live in the vault; nobody copies them to a laptop or a chat.",
    "Access to the vault is granted per team and reviewed every quarter.",
    "Audit logs of every access are kept for a year.",
    "An incident starts with a page to the on-call engineer.",
    "The on-call engineer opens an incident channel and writes down what happened.",
    "Tokens issued to services expire after an hour.",
    "Each service authenticates to the gateway with its own certificate.",
    "Staging uses its own authority, never the production one.",
    "Backups of the vault are encrypted and tested every month.",
    "A compromised laptop is reported to security at once.",
    "Passwords are never reused between environments.",
    "The security team publishes a short report after each incident.",
]
ANSWER = "To rotate the signing keys, run `keyctl rotate --all` and restart the gateway."


def test_a_hit_points_at_the_answer_not_its_heading(engine: Engine, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    lines = ["# Team handbook", "", *FILLER, "", ANSWER, "", "Ask in the channel if unsure."]
    (ws / "handbook.md").write_text("\n".join(lines) + "\n")
    answer_line = lines.index(ANSWER)
    assert answer_line >= 14
    engine.open_workspace(ws)
    engine.index([ws])
    for mode in ("hybrid", "semantic", "keyword"):
        result = engine.search("rotate the signing keys", limit=5, mode=mode)  # type: ignore[arg-type]
        assert result_errors("docs/search", result) == [], result
        hit = result["hits"][0]
        assert hit["range"]["start"]["line"] == 0, hit  # the chunk starts at its heading
        match = hit["matchRange"]
        assert match["start"]["line"] == answer_line, (mode, hit)
        assert match["end"]["line"] == answer_line + 1, (mode, hit)
        assert hit["snippet"].lstrip("…").startswith("To rotate the signing keys"), hit
        assert hit["range"]["start"]["line"] <= match["start"]["line"] < hit["range"]["end"]["line"]


def test_match_range_lines_follow_markup_and_merged_chunks(engine: Engine, tmp_path: Path) -> None:
    """A section that starts with markup-only lines (an HTML comment, an anchor) and is long
    enough for several chunks: the matched sentence's line is still the file's line."""
    ws = tmp_path / "ws"
    ws.mkdir()
    body = [f"Paragraph {i} talks about gardening, soil and the weather in spring." for i in
            range(60)]
    body[47] = "The secret ingredient of the soup is smoked paprika from Spain."
    lines = ["<!-- Old headings. Do not remove or links may break. -->",
             '<a id="soup"></a>', "", "## Kitchen notes", ""]
    for sentence in body:
        lines += [sentence, ""]
    (ws / "notes.md").write_text("\n".join(lines))
    engine.open_workspace(ws)
    engine.index([ws])
    result = engine.search("secret ingredient soup smoked paprika", limit=3, mode="keyword")
    hit = result["hits"][0]
    assert hit["matchRange"]["start"]["line"] == lines.index(body[47]), hit


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
def test_scores_are_0_to_1_with_the_raw_score_beside(engine: Engine, workspace: Path,
                                                     mode: str) -> None:
    engine.open_workspace(workspace)
    engine.index([workspace])
    result = engine.search("how do threads share data safely", limit=10, mode=mode)  # type: ignore[arg-type]
    assert result_errors("docs/search", result) == [], result
    hits = result["hits"]
    assert hits
    for hit in hits:
        assert 0.0 <= hit["score"] <= 1.0 and isinstance(hit["rawScore"], float), hit
    assert hits[0]["score"] >= 0.35, hits[0]  # a good match reads as one
    if mode != "hybrid":  # one monotone map of the ranking score: order and score agree
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True)
    if mode != "keyword":  # BM25 ranks "share" and "data" in the ownership chapter first
        assert "ch16-01-threads.md" in hits[0]["path"]


@pytest.mark.parametrize("mode", ["hybrid", "semantic"])
def test_a_nonsense_query_returns_nothing_and_says_so(engine: Engine, workspace: Path,
                                                      mode: str) -> None:
    engine.open_workspace(workspace)
    engine.index([workspace])
    result = engine.search("zzqxqv", limit=20, mode=mode)  # type: ignore[arg-type]
    assert result_errors("docs/search", result) == [], result
    assert result["hits"] == [], [(h["path"], h["score"], h["rawScore"]) for h in result["hits"]]
    assert result["belowFloor"] >= 1


def test_a_small_folder_returns_only_what_matches(engine: Engine, tmp_path: Path) -> None:
    ws = tmp_path / "six"
    ws.mkdir()
    topics = {
        "bread.md": "# Baking bread\n\nKnead the dough for ten minutes, let it rise for an hour "
                    "and bake at 230 degrees until the crust is brown.",
        "bikes.md": "# Bicycle repair\n\nTo fix a flat tyre, take the wheel off, find the hole "
                    "in the inner tube and glue a patch over it.",
        "tax.md": "# Tax returns\n\nFreelancers file their tax return by the end of July and "
                  "can deduct the costs of a home office.",
        "git.md": "# Version control\n\nCommit often, write messages that say why, and rebase "
                  "a branch before you merge it into main.",
        "birds.md": "# Garden birds\n\nRobins, blackbirds and blue tits visit a feeder in winter "
                    "when seeds and fat balls are put out.",
        "sleep.md": "# Sleep\n\nAdults need seven to nine hours of sleep; a dark, cool room and "
                    "a regular bedtime help.",
    }
    for name, text in topics.items():
        (ws / name).write_text(text + "\n")
    engine.open_workspace(ws)
    engine.index([ws])
    for mode in ("hybrid", "semantic"):
        result = engine.search("how do I repair a punctured bike tyre", limit=10,
                               mode=mode)  # type: ignore[arg-type]
        paths = [h["path"] for h in result["hits"]]
        assert paths and paths[0] == "bikes.md", result
        assert len(paths) <= 2, [(h["path"], h["rawScore"]) for h in result["hits"]]
        assert result.get("belowFloor", 0) >= 4
