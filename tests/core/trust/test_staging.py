import json

import pytest

from stixbridge.engine import coalesce_pages
from stixbridge.errors import StixbridgeError
from stixbridge.model import Page, Provenance, RawItem
from stixbridge.trust.review import _decode_page, _encode_page

PLAIN = Provenance("alliance", "collection-1")
AUTHORED = Provenance("alliance", "collection-1", "identity--a")
FIRST = {"type": "indicator", "id": "indicator--1", "name": "caf\u00e9 \u2028 line"}
SECOND = {"type": "indicator", "id": "indicator--2", "created_by_ref": "identity--a"}


def _body(objects, **extra):
    return json.dumps({"more": False, **extra, "objects": objects}, ensure_ascii=False).encode()


def _bodies_page():
    items = [
        RawItem(FIRST, PLAIN, size=40),
        RawItem(None, PLAIN, raw_text="7", error="entry 1 is a JSON int", reason_code="invalid"),
        RawItem(SECOND, AUTHORED),
    ]
    return Page(items, cursor="c1", bodies=(_body([FIRST, 7]), _body([SECOND], next="n")))


def test_bodies_round_trip():
    page = _bodies_page()

    decoded = _decode_page(_encode_page(page))

    assert decoded == page.items


def test_items_without_bodies_round_trip():
    page = _bodies_page()
    page.bodies = ()

    decoded = _decode_page(_encode_page(page))

    assert decoded == page.items


def test_older_staged_rows_still_decode():
    old = json.dumps([[FIRST, "alliance", "collection-1", "", None, None, 40]])

    assert _decode_page(old) == [RawItem(FIRST, PLAIN, size=40)]


def test_bodies_missing_objects_rejected():
    page = _bodies_page()
    page.bodies = page.bodies[:1]

    with pytest.raises(StixbridgeError, match="lists 3 items but its bodies hold 2 objects"):
        _decode_page(_encode_page(page))


def test_coalesced_page_keeps_bodies():
    first = Page([RawItem(FIRST, PLAIN)], bodies=(_body([FIRST]),))
    second = Page([RawItem(SECOND, AUTHORED)], cursor="c", complete=True, bodies=(_body([SECOND]),))

    (joined,) = coalesce_pages(iter([first, second]), 10)

    assert joined.bodies == first.bodies + second.bodies
    assert _decode_page(_encode_page(joined)) == first.items + second.items


def test_coalesced_page_drops_partial_bodies():
    first = Page([RawItem(FIRST, PLAIN)], bodies=(_body([FIRST]),))
    second = Page([RawItem(SECOND, AUTHORED)], cursor="c", complete=True)

    (joined,) = coalesce_pages(iter([first, second]), 10)

    assert joined.bodies == ()
    assert _decode_page(_encode_page(joined)) == first.items + second.items


def test_empty_page_does_not_drop_bodies():
    first = Page([RawItem(FIRST, PLAIN)], bodies=(_body([FIRST]),))
    empty = Page([], cursor="c", complete=True)

    (joined,) = coalesce_pages(iter([first, empty]), 10)

    assert joined.bodies == first.bodies
