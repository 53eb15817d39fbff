import io
import json

import pytest

from stixbridge import jsonstream
from stixbridge.jsonstream import StreamError, iter_bundle_objects


def _objects(text: str) -> list:
    return [e.value for e in iter_bundle_objects(io.StringIO(text))]


def test_stream_bundle_objects_in_order():
    text = json.dumps({"type": "bundle", "id": "bundle--1", "objects": [{"id": "a"}, {"id": "b"}]})
    assert _objects(text) == [{"id": "a"}, {"id": "b"}]


def test_stream_objects_before_other_keys():
    text = '{"objects": [{"id": "a"}], "type": "bundle", "id": "bundle--1"}'
    assert _objects(text) == [{"id": "a"}]


def test_stream_across_chunk_edges(monkeypatch):
    monkeypatch.setattr(jsonstream, "CHUNK", 7)
    objects = [{"id": f"x-{i}", "n": 12345678901234, "s": "\u00e9" * i} for i in range(50)]
    text = json.dumps({"type": "bundle", "objects": objects})
    assert _objects(text) == objects


def test_stream_keeps_element_text():
    text = '{"type": "bundle", "objects": [ {"id": "a", "x": [1, 2]} ]}'
    (element,) = iter_bundle_objects(io.StringIO(text))
    assert element.text == '{"id": "a", "x": [1, 2]}'


def test_stream_bare_array_and_single_object():
    assert _objects('[{"id": "a"}, {"id": "b"}]') == [{"id": "a"}, {"id": "b"}]
    assert _objects('{"type": "indicator", "id": "indicator--1"}') == [{"type": "indicator", "id": "indicator--1"}]


def test_stream_invalid_json_after_good_objects_keeps_them():
    text = '{"type": "bundle", "objects": [{"id": "a"}, {"id": "b"}, {"id": oops}]}'
    stream = iter_bundle_objects(io.StringIO(text))
    assert next(stream).value == {"id": "a"}
    assert next(stream).value == {"id": "b"}
    with pytest.raises(StreamError, match="invalid JSON"):
        next(stream)


@pytest.mark.parametrize("text", ["", "not json", '"a string"', '{"objects": [{"id": "a"}'])
def test_stream_rejects_non_bundles(text):
    with pytest.raises(StreamError):
        _objects(text)


def test_stream_error_says_at_once():
    # The json module's own message ends in "starting at"; the offset must not repeat the "at".
    with pytest.raises(StreamError) as caught:
        _objects('{"objects": [{"id": "x"}, {"id": "cut off')
    message = str(caught.value)
    assert message.startswith("invalid JSON: Unterminated string starting at character ")
    assert "at at" not in message
    assert caught.value.offset == 33
