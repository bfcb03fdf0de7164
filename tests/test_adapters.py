"""The third-party internals the importer uses are still there: a library release that
moves them fails here, naming the adapter to fix, not somewhere deep in a run."""

from __future__ import annotations

import pytest

from importer import openpyxl_adapter, phonenumbers_adapter


@pytest.mark.parametrize("adapter", [openpyxl_adapter, phonenumbers_adapter],
                         ids=["openpyxl", "phonenumbers"])
def test_each_library_still_has_the_internals_its_adapter_uses(adapter):
    adapter.check_shape()


def test_a_library_that_changed_shape_is_named_with_its_adapter(monkeypatch):
    from phonenumbers import phonenumberutil

    monkeypatch.delattr(phonenumberutil, "_MAX_LENGTH_FOR_NSN")
    with pytest.raises(RuntimeError, match=r"^importer/phonenumbers_adapter\.py: .*"
                                           r"_MAX_LENGTH_FOR_NSN"):
        phonenumbers_adapter.check_shape()

