"""Near-duplicate Markdown notes, alike but for their animal and number: the embedded ones
share a query's common words ("forages"), and only the queried animal's hold its rare word.
Shared by the tests of search during a backfill."""

from __future__ import annotations

ANIMALS = ("aardvark badger capybara dingo echidna ferret gecko hyrax ibis jackal kinkajou lemur "
           "marmot narwhal ocelot pangolin quokka raccoon serval tapir").split()


def animal_note(n: int, animal: str) -> str:
    """Note `n`: a title and four sections (five chunks)."""
    sections = "\n\n".join(
        f"## Part {k}\n\nThe {animal} number {n} forages in section {k}, far from the river, "
        f"and comes back at dusk with what it found." for k in range(4))
    return f"# Note {n}: the {animal}\n\n{sections}\n"
