"""Root tests: their shared helpers (uv_command.py, docs_site.py) are importable from here."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The folder of a `mkdocs build --strict`: the one .ci/run made (``$TINYTORCH_DOCS_BUILD``),
    or else one built here once per session (shared by test_docs.py, test_notebooks.py and
    test_site_browser.py). The build runs every tutorial as its notebook with
    TINYTORCH_DOCS_QUICK=1 and fails when one fails or does not write a figure it shows."""
    import docs_site

    return docs_site.handed_build() or docs_site.build_site(tmp_path_factory.mktemp("site"))
