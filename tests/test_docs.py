"""The README documents every setting (its table is generated from settings.SETTINGS)."""
from helpers import ROOT

import settings


def test_readme_configuration_table_is_current():
    assert settings.markdown_table() in (ROOT / "README.md").read_text()


def test_readme_starts_with_make_run_and_make_test():
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:12])
    assert "make run" in head and "make test" in head
