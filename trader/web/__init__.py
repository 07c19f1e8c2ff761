"""The browser side: the live dashboard served by the operator endpoint (``history`` feeds it
from the main thread, ``dashboard`` builds its JSON, ``routes`` answers its paths, ``static``
holds the page and the vendored chart library) and the self-contained HTML report."""
